"""Two runs with the same params give the same bytes: ``dvc repro --force`` of the pipeline up to
evaluate, twice in one scratch project, writes identical model files (weights and JSON spec,
provenance included) and identical ``reports/metrics.json`` and scores; so does a third run
that trains the series in parallel worker processes (``train.jobs``).

The scratch project is built as in tests/test_pipeline.py (a copy of what dvc.yaml refers to in a
fresh ``dvc init --no-scm`` repository, the copied library on PYTHONPATH), on a tiny
configuration. plot and package are left out: they do not feed the models or the metrics.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from scratch import copy_project, run_dvc, scratch_env, set_params

pytestmark = pytest.mark.integration

SERIES = ["realAdExchange/exchange-2_cpc_results", "realTraffic/speed_7578"]
TARGET = "evaluate"
UPSTREAM = ("fetch", "preprocess", "split", "train", "evaluate")


def _hashes(root: Path) -> dict[str, str]:
    files = [*sorted((root / "models").iterdir()), *sorted((root / "data/scores").iterdir()),
             root / "reports/metrics.json"]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files if p.is_file()}


def test_forced_reruns_give_identical_models_and_metrics(tmp_path: Path, mirror: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    copy_project(root)
    env = scratch_env(root, mirror)

    def dvc(*args: str) -> subprocess.CompletedProcess:
        return run_dvc(root, env, *args)

    dvc("init", "--no-scm", "-q")
    first_jobs = 1
    set_params(root, {
        "preprocess.series": SERIES,
        "window.length": 16,
        "model.hidden": 8,
        "train.epochs": 3,
        "train.threads": 1,
        "train.jobs": first_jobs,
        "evaluate.curve_points": 50,
        "plot.examples": 1,
        "package.build_bento": False,
    })
    runs = []
    for args in (("repro", "--force", TARGET), ("repro", "--force", TARGET)):
        out = dvc(*args)
        for stage in UPSTREAM:  # --force: every stage ran, none came from the run cache
            assert f"Running stage '{stage}'" in out.stdout, (stage, out.stdout)
        runs.append(_hashes(root))
    first, second = runs
    # the number of series trained at once changes how, never what: same bytes again
    set_params(root, {"train.jobs": 2 if first_jobs == 1 else 1})
    dvc("repro", "--force", TARGET)
    assert _hashes(root) == first
    set_params(root, {"train.jobs": first_jobs})
    assert sorted(k for k in first if k.startswith("models/")) == sorted(
        f"models/{sid.replace('/', '__')}{ext}" for sid in SERIES for ext in (".json", ".pt"))
    assert "reports/metrics.json" in first
    assert second == first
    assert json.loads(dvc("status", "--json", TARGET).stdout or "{}") == {}
    spec = json.loads((root / "models" / (SERIES[0].replace("/", "__") + ".json")).read_text())
    assert spec["provenance"]["git_revision"] == "unknown"  # dvc init --no-scm: no git
    assert spec["provenance"]["git_dirty"] is None
