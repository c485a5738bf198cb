"""The DVC pipeline end to end, on two short NAB series, in a scratch copy of the repository.

The copy holds what ``dvc.yaml`` refers to (dvc.yaml, params.yaml, .dvcignore, stages/, src/ and
any other top-level file a stage depends on) in a fresh ``dvc init --no-scm`` repository; the
stages run the copied library (PYTHONPATH), so the code that runs is the code DVC hashes.
``dvc exp run`` needs git, so the parameter experiment edits params.yaml and runs ``dvc repro``,
which is what ``dvc exp run -S`` does underneath.

Stages whose own code is not in the repository yet are left out (and their checks skipped), so
the test covers every stage that exists.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scratch import REPO, copy_project, dvc_stages, run_dvc, scratch_env, set_params, source_deps

pytestmark = pytest.mark.integration

SERIES = ["realAdExchange/exchange-2_cpc_results", "realTraffic/speed_7578"]


def _present_stages() -> list[str]:
    return [name for name, stage in dvc_stages().items()
            if all((REPO / d).exists() for d in source_deps(stage))]


PRESENT = _present_stages()
ALL_STAGES = list(dvc_stages())


def _needs(stage: str) -> None:
    if stage not in PRESENT:
        missing = [d for d in source_deps(dvc_stages()[stage]) if not (REPO / d).exists()]
        pytest.skip(f"stage '{stage}' is not in the repository yet (missing {missing})")


class Project:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run_dvc(self.root, self.env, *args, check=check)

    def repro(self) -> subprocess.CompletedProcess:
        # the whole pipeline when every stage exists; else every stage that does
        targets = [] if PRESENT == ALL_STAGES else PRESENT
        return self.dvc("repro", *targets)

    def status(self) -> Any:
        targets = [] if PRESENT == ALL_STAGES else PRESENT
        return json.loads(self.dvc("status", "--json", *targets).stdout or "{}")

    def set_params(self, **updates: Any) -> None:
        set_params(self.root, updates)

    def metrics(self) -> dict[str, Any]:
        return json.loads((self.root / "reports/metrics.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Project:
    """The scratch project after a first ``dvc repro``; ``mirror`` (conftest.py) is the absolute
    dataset mirror, by default Path(__file__).resolve().parents[2] / "shared" / "datasets"."""
    root = tmp_path_factory.mktemp("pipeline")
    copy_project(root)
    env = scratch_env(root, mirror)
    p = Project(root, env)
    p.dvc("init", "--no-scm", "-q")
    p.set_params(**{
        "preprocess.series": SERIES,
        "train.epochs": 3,
        "train.threads": 1,
        "window.length": 16,
        "evaluate.curve_points": 50,
        "plot.showcase": SERIES[1],
        "plot.examples": 1,
        "package.build_bento": False,
        "package.parity_windows": 32,
    })
    p.first = p.repro()
    return p


def test_first_run_produces_metrics_for_every_series(project: Project) -> None:
    lock = yaml.safe_load((project.root / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(PRESENT)
    metrics = project.metrics()
    per_series = metrics["per_series"]
    assert sorted(per_series) == sorted(SERIES)
    splits = json.loads((project.root / "data/split/splits.json").read_text())["series"]
    for sid in SERIES:
        m = per_series[sid]
        split = splits[sid]
        # nab protocol: the test part starts after the probationary period
        assert split["val_end"] == min(int(0.15 * split["n"]), 750)
        assert m["points"] == split["n"] - split["val_end"]
        assert m["anomalous"] > 0
        assert m["threshold"] > 0
        for key in ("auc_roc", "auc_pr"):
            assert isinstance(m[key], float) and 0.0 <= m[key] <= 1.0, (sid, key, m[key])
        assert m["precision"] is None or 0.0 <= m["precision"] <= 1.0
        scores = np.load(project.root / "data/scores" / (sid.replace("/", "__") + ".npz"))
        assert scores["scores"].shape == (split["n"],)
        assert np.isnan(scores["scores"][:15]).all()
        assert np.isfinite(scores["scores"][15:]).all()
        model_spec = json.loads(
            (project.root / "models" / (sid.replace("/", "__") + ".json")).read_text())
        assert model_spec["window"]["length"] == 16
        assert model_spec["epochs_run"] <= 3
        # the detector's output is the post-processed likelihood, flagged at its level; the
        # raw reconstruction scores are kept beside it (the service's threshold is theirs)
        out = scores["scores"][15:]
        assert (out >= 0).all() and (out <= 1).all()
        assert m["threshold"] == 0.7 and float(scores["threshold"]) == 0.7
        assert scores["raw_scores"].shape == (split["n"],)
        assert not np.array_equal(scores["raw_scores"][15:], out)
        service_threshold = json.loads((project.root / "data/scores/thresholds.json")
                                       .read_text())[sid]
        assert service_threshold == metrics_raw_threshold(project, sid)
    detectors = metrics["detectors"]
    assert list(detectors) == ["rnnad", "rnnad_raw", "rolling_gaussian", "isolation_forest",
                               "null", "random", "null_pp", "rolling_gaussian_pp"]
    # NAB on the fixed halves: each series is the first (half a) of its category here, so
    # half b is empty and left out
    assert detectors["rnnad"]["nab"]["half_a"]["series"] == 2
    assert "half_b" not in detectors["rnnad"]["nab"]
    for name, d in detectors.items():
        overall = d["overall"]
        assert overall["series"] == 2
        assert overall["points"] == sum(per_series[s]["points"] for s in SERIES)
        assert overall["anomalous"] == sum(per_series[s]["anomalous"] for s in SERIES)
        for key in ("auc_roc", "auc_pr", "vus_roc", "vus_pr"):
            assert isinstance(overall[key], float) and 0.0 <= overall[key] <= 1.0, (name, key)
        windows = overall["event_tp"] + overall["event_fn"]
        assert windows == per_series[SERIES[0]]["event_tp"] + per_series[SERIES[1]]["event_tp"] \
            + per_series[SERIES[0]]["event_fn"] + per_series[SERIES[1]]["event_fn"]
        assert d["nab"]["series"] == 2
        results = sorted((project.root / "reports/nab_results" / name).rglob("*.csv"))
        assert [f.name for f in results] == sorted(
            f"{name}_{sid.split('/')[1]}.csv" for sid in SERIES)
    # the null detector never detects: NAB normalises it to 0, its event recall is 0
    assert detectors["null"]["overall"]["flagged"] == 0
    assert detectors["null"]["overall"]["event_recall"] == 0.0
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert detectors["null"]["nab"][profile] == 0.0
    roc = (project.root / "reports/curves/roc.csv").read_text().splitlines()
    assert roc[0] == "fpr,tpr" and 2 < len(roc) <= 51


def metrics_raw_threshold(project: Project, sid: str) -> float:
    """The raw-score threshold the evaluate stage chose (validation quantile), recomputed."""
    from rnnad.config import load_params
    from rnnad.pipeline.common import load_series, load_splits
    from rnnad.pipeline.evaluate import validation_threshold

    params = load_params(project.root / "params.yaml")
    split = load_splits(project.root / "data/split/splits.json")[sid][0]
    entry = {"file": sid.replace("/", "__") + ".npz"}
    series = load_series(project.root / "data/processed", entry)
    raw = np.load(project.root / "data/scores" / (sid.replace("/", "__") + ".npz"))["raw_scores"]
    return validation_threshold(raw, series.labels, split, params.evaluate.threshold)


def test_second_run_does_nothing(project: Project) -> None:
    watched = [project.root / "reports/metrics.json", *sorted((project.root / "models").iterdir())]
    before = {p: p.stat().st_mtime_ns for p in watched}
    assert project.status() == {}
    again = project.repro()
    assert "Running stage" not in again.stdout
    for stage in PRESENT:
        assert f"Stage '{stage}' didn't change, skipping" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    assert project.status() == {}


def test_changing_a_param_reruns_only_what_depends_on_it(project: Project) -> None:
    before = project.metrics()
    project.set_params(**{"model.hidden": 8})
    changed = project.status()
    assert "train" in changed
    assert not {"fetch", "preprocess", "split"} & set(changed)
    run = project.repro()
    for stage in ("fetch", "preprocess", "split"):
        assert f"Stage '{stage}' didn't change, skipping" in run.stdout
    assert "Running stage 'train'" in run.stdout
    assert "Running stage 'evaluate'" in run.stdout
    after = project.metrics()
    assert after != before
    assert any(after["per_series"][s]["auc_roc"] != before["per_series"][s]["auc_roc"]
               or after["per_series"][s]["threshold"] != before["per_series"][s]["threshold"]
               for s in SERIES)
    spec = json.loads((project.root / "models" / (SERIES[0].replace("/", "__") + ".json"))
                      .read_text())
    assert spec["model"]["hidden"] == 8
    assert project.status() == {}


def test_plot_stage_outputs(project: Project) -> None:
    _needs("plot")
    for out in ("reports/plots/series", "reports/plots/summary"):
        path = project.root / out
        assert path.is_dir() and any(path.iterdir()), out


def test_package_stage_outputs(project: Project) -> None:
    _needs("package")
    report = json.loads((project.root / "reports/package.json").read_text())
    assert report, "reports/package.json is empty"
    package = [p.name for p in (project.root / "data/package").iterdir()]
    for sid in SERIES:  # one exported model per series
        assert any(name.startswith(sid.replace("/", "__")) for name in package), (sid, package)
    # the model went to the test's private BentoML store, not the user's
    store = Path(project.env["BENTOML_HOME"]) / "models"
    assert store.is_dir() and any(store.iterdir())
