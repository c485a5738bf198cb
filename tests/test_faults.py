"""A training run killed mid-way (SIGKILL to ``dvc repro`` and its stage, as a crash or an
out-of-memory kill would) must leave no partial model directory, and the next ``dvc repro`` must
recover on its own: rerun train, clean what the killed run left, and produce exactly the models
of an uninterrupted run.

The scratch project is built as in tests/test_pipeline.py (a copy of what dvc.yaml refers to in a
fresh ``dvc init --no-scm`` repository, the copied library on PYTHONPATH), but only the stages up
to train run, with enough epochs that train takes a few seconds.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from scratch import copy_project, run_dvc, scratch_env, set_params

pytestmark = pytest.mark.integration

SERIES = ["realAdExchange/exchange-2_cpc_results", "realTraffic/speed_7578",
          "artificialWithAnomaly/art_daily_jumpsup"]
TRAIN_OUTS = ("models", "reports/train")


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def _leftovers(root: Path) -> list[Path]:
    """Temporary directories and files of rnnad.io.atomic_dir/atomic_path next to train's
    outputs, and the ``.<name>.old`` of an interrupted swap."""
    found: list[Path] = []
    for out in TRAIN_OUTS:
        path = root / out
        found += [*path.parent.glob(f".{path.name}.*.tmp"), *path.parent.glob(f".{path.name}.old")]
    return sorted(found)


def _kill_during_train(root: Path, env: dict[str, str], *args: str) -> float:
    """Start ``dvc repro *args`` in its own session, wait until train has saved its first model
    (into the temporary directory next to models/), then SIGKILL the whole process group.
    Returns the seconds from start to kill."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", *args], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        while not any(root.glob(".models.*.tmp/*.pt")):
            if proc.poll() is not None:
                pytest.fail(f"dvc repro ended ({proc.returncode}) before train saved a model; "
                            "train must run long enough to be killed mid-way")
            if time.monotonic() - start > 300:
                pytest.fail("train did not save a model within 300 s")
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        return time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)


def test_killed_training_recovers_on_the_next_repro(tmp_path: Path, mirror: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    copy_project(root)
    env = scratch_env(root, mirror)
    run_dvc(root, env, "init", "--no-scm", "-q")
    set_params(root, {
        "preprocess.series": SERIES,
        "window.length": 16,
        "model.hidden": 8,
        # every series trains all its epochs (no early stop): train takes a few seconds
        "train.epochs": 40,
        "train.patience": 40,
        "train.threads": 1,
    })

    # 1. a first run, killed while train is half-way: no models/ at all, only temporaries
    _kill_during_train(root, env, "train")
    assert not (root / "models").exists()
    assert not (root / "reports" / "train").exists()
    assert any(p.name.startswith(".models.") for p in _leftovers(root))  # what the kill left
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert "train" not in lock and {"fetch", "preprocess", "split"} <= set(lock)

    # the next repro reruns train only, removes the leftovers and ends clean
    recovered = run_dvc(root, env, "repro", "train")
    assert "Running stage 'train'" in recovered.stdout
    for stage in ("fetch", "preprocess", "split"):
        assert f"Stage '{stage}' didn't change, skipping" in recovered.stdout
    assert _leftovers(root) == []
    assert run_dvc(root, env, "status", "train").stdout.strip() == \
        "Data and pipelines are up to date."
    after_recovery = _hashes(root / "models")
    assert sorted(after_recovery) == sorted(
        sid.replace("/", "__") + ext for sid in SERIES for ext in (".json", ".pt"))

    # 2. an uninterrupted run gives the same files, byte for byte
    reference = run_dvc(root, env, "repro", "--force", "--single-item", "train")
    assert "Running stage 'train'" in reference.stdout
    assert _hashes(root / "models") == after_recovery

    # 3. killing a forced rerun: models/ is absent (DVC removes a stage's outputs before it
    # runs it) or the complete previous output, never a partial directory
    _kill_during_train(root, env, "--force", "--single-item", "train")
    models = root / "models"
    assert not models.exists() or _hashes(models) == after_recovery
    killed = _leftovers(root)
    assert killed  # the killed run's temporary directory
    # DVC restores train from its run cache (the deps and params of an earlier run) without
    # running the stage, so the leftovers stay until train next runs; they are outside every
    # DVC output (and ignored by git: *.tmp), so nothing reads them
    again = run_dvc(root, env, "repro", "train")
    if "Running stage 'train'" in again.stdout:
        assert _leftovers(root) == []
    else:
        assert "Stage 'train' is cached - skipping run" in again.stdout
        assert _leftovers(root) == killed
    assert run_dvc(root, env, "status", "train").stdout.strip() == \
        "Data and pipelines are up to date."
    assert _hashes(models) == after_recovery
