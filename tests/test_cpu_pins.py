"""The CPU pins set by ``import rnnad`` (``rnnad.CPU_PINS``): the same seed trains the same
weights whatever the CPU's widest instruction set, because MKL, oneDNN and ATen are held to
AVX2 (and training runs without oneDNN). Each case trains a small model in a fresh process, so
the pins are read as a stage script's process reads them."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

import rnnad

TRAIN = textwrap.dedent("""
    import hashlib
    import rnnad  # first, as in a stage script
    import numpy as np
    import torch
    from rnnad.config import ModelParams, TrainParams
    from rnnad.models.encdec import build_model
    from rnnad.models.training import fit, seed_everything

    rng = np.random.default_rng(0)
    t = np.arange(1600)
    x = (np.sin(t / 7.0) + 0.2 * rng.standard_normal(len(t)))[:, None]
    windows = np.stack([x[i : i + 32] for i in range(len(t) - 32)])
    seed_everything(3, 1)
    model = build_model(1, ModelParams(hidden=32))
    fit(model, windows[:1200], windows[1200:],
        TrainParams(epochs=4, batch_size=64, lr=0.01, patience=4, seed=3))
    digest = hashlib.sha256(b"".join(v.detach().numpy().tobytes()
                                     for v in model.state_dict().values())).hexdigest()
    print(torch.backends.cpu.get_cpu_capability(), digest)
""")


def _unpinned_env() -> dict[str, str]:
    """This process's environment without the pins (conftest's import of rnnad set them)."""
    return {k: v for k, v in os.environ.items() if k not in rnnad.CPU_PINS}


def _train(**env: str) -> tuple[str, str]:
    out = subprocess.run([sys.executable, "-c", TRAIN],
                         env={**_unpinned_env(), **env}, capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    return out[0], out[1]


x86 = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                         reason="the pins concern x86-64 CPUs")


def test_import_sets_the_pins_and_keeps_a_users_own() -> None:
    code = "import os, rnnad; print(os.environ['MKL_CBWR'], os.environ['ONEDNN_MAX_CPU_ISA'])"
    clean = _unpinned_env()
    assert subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True,
                          text=True, check=True).stdout.split() == ["AVX2", "AVX2"]
    mine = subprocess.run([sys.executable, "-c", code], env={**clean, "MKL_CBWR": "AUTO"},
                          capture_output=True, text=True, check=True).stdout.split()
    assert mine == ["AUTO", "AVX2"]


@x86
def test_pins_from_the_import_train_what_pins_from_the_environment_train() -> None:
    by_import = _train()  # rnnad's import comes before torch's, as in a stage script
    by_env = _train(MKL_CBWR="AVX2", ONEDNN_MAX_CPU_ISA="AVX2",
                    ATEN_CPU_CAPABILITY="avx2")
    assert by_import == by_env
    assert by_import[0] == "AVX2"


@x86
def test_without_the_pins_an_avx512_machine_trains_other_weights() -> None:
    """Where the CPU has AVX-512, lifting the pins changes the weights: what made the same
    seed give other models (and NAB scores more than a point apart) on two machines."""
    unpinned = _train(MKL_CBWR="AUTO", ONEDNN_MAX_CPU_ISA="ALL", ATEN_CPU_CAPABILITY="avx512")
    if unpinned[0] != "AVX512":
        pytest.skip(f"this CPU's widest set is {unpinned[0]}: nothing to compare")
    assert unpinned[1] != _train()[1]
