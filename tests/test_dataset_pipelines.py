"""``data.dataset`` switches every stage: the whole DVC pipeline on the example CSV (3
channels), on C-MAPSS FD001 (17 channels, one segment per engine, lead-time measures) and on two
SMAP channels (telemetry reconstructed, command flags as inputs), in scratch copies of the
repository. Small configurations (few epochs, no Bento build), real data from the mirror."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scratch import copy_project, run_dvc, scratch_env, set_params

pytestmark = pytest.mark.integration

FAST = {"train.epochs": 2, "train.patience": 2, "package.build_bento": False,
        "package.parity_windows": 32, "evaluate.vus.max_buffer": 8, "plot.examples": 2}
CASES = {
    "csv": {"data.dataset": "csv"},
    "cmapss": {"data.dataset": "cmapss", "window.length": 16},
    "smap": {"data.dataset": "smap", "preprocess.series": ["P-1", "A-4"]},
}


@pytest.fixture(scope="module", params=list(CASES))
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
        mirror: Path) -> tuple[str, Path]:
    name = request.param
    root = tmp_path_factory.mktemp(name)
    copy_project(root)
    env = scratch_env(root, mirror)
    run_dvc(root, env, "init", "--no-scm", "-q")
    set_params(root, {**FAST, **CASES[name]})
    run_dvc(root, env, "repro")
    return name, root


def read(root: Path, path: str) -> Any:
    return json.loads((root / path).read_text())


def test_every_stage_ran_on_the_chosen_dataset(run: tuple[str, Path]) -> None:
    name, root = run
    metrics = read(root, "reports/metrics.json")
    assert metrics["dataset"] == name
    overall = metrics["detectors"]["rnnad"]["overall"]
    for key in ("precision", "recall", "f1", "auc_pr", "event_f1", "range_f1", "vus_pr"):
        assert overall[key] is not None and 0.0 <= overall[key] <= 1.0, key
    assert set(metrics["detectors"]) >= {"rnnad", "rolling_gaussian", "isolation_forest"}
    assert "nab" not in metrics["detectors"]["rnnad"]  # NAB's scorer is for the NAB corpus
    index = read(root, "data/processed/index.json")
    assert index["dataset"] == name
    package = read(root, "data/package/detector.json")
    assert set(package["series"]) == set(metrics["per_series"])
    for entry in package["series"].values():
        assert entry["channels"] == len(entry["channel_names"]) > 1
        assert len(entry["error_scale"]) == len(entry["targets"])
    assert (root / "reports/plots/summary/showcase.png").stat().st_size > 10_000
    assert read(root, "reports/package.json")["max_parity_abs_diff"] < 1e-5


def test_models_reconstruct_the_datasets_targets(run: tuple[str, Path]) -> None:
    name, root = run
    specs = [json.loads(p.read_text()) for p in (root / "models").glob("*.json")]
    assert specs
    for spec in specs:
        if name == "smap":  # telemetry only; the command flags are inputs
            assert spec["channels"] == 25 and spec["targets"] == [0]
            assert spec["channel_names"][0] == "telemetry"
        else:
            assert spec["targets"] == list(range(spec["channels"]))
        assert all(v > 0 for v in spec["error_scale"])


def test_the_datasets_own_measures(run: tuple[str, Path]) -> None:
    name, root = run
    overall = read(root, "reports/metrics.json")["detectors"]["rnnad"]["overall"]
    if name == "cmapss":
        assert overall["engines"] == 25 and overall["lead_engines"] >= 0
        assert overall["unscored"] > 0  # the first window-1 cycles of every engine
    elif name == "smap":
        assert overall["series"] == 2 and overall["event_tp"] + overall["event_fn"] >= 2
    else:
        assert overall["anomalous"] > 0 and overall["series"] == 1


def test_a_second_repro_does_nothing(run: tuple[str, Path], mirror: Path) -> None:
    _, root = run
    status = run_dvc(root, scratch_env(root, mirror), "status", "--json").stdout
    assert json.loads(status or "{}") == {}
