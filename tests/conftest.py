"""Shared fixtures: the dataset mirror, small synthetic series, an isolated BentoML home."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import rnnad  # noqa: F401  (first: its CPU pins must be set before torch runs; see rnnad/__init__)

REPO = Path(__file__).resolve().parents[1]
# Developers and CI run with RNNAD_DATA_MIRROR=../shared/datasets (relative to the repo root);
# that is also where the tests look when the variable is not set.
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
BAD_DATA = Path(__file__).resolve().parent / "data" / "bad"


def mirror_path() -> Path:
    """Absolute path of the dataset mirror: $RNNAD_DATA_MIRROR (relative to the repo root) or
    ../shared/datasets."""
    value = os.environ.get("RNNAD_DATA_MIRROR", "").strip()
    return (REPO / Path(value).expanduser()).resolve() if value else SHARED_DATASETS


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The local dataset mirror (laid out as ``<mirror>/<dataset>/<path>``), absolute."""
    path = mirror_path()
    if not (path / "nab" / "labels" / "combined_windows.json").is_file():
        pytest.skip(f"shared datasets not found at {path} (set RNNAD_DATA_MIRROR or put "
                    "shared/datasets next to the repository, with the NAB corpus in nab/)")
    return path


@pytest.fixture(scope="session")
def nab_raw(mirror: Path) -> Path:
    """The NAB corpus as the preprocess stage sees it (``data/``, ``labels/``, ``config/``)."""
    return mirror / "nab"


@pytest.fixture
def bad_data() -> Path:
    return BAD_DATA


@pytest.fixture
def sine_series() -> np.ndarray:
    """A clean, learnable univariate signal [T, 1]: a sine with a period of 20 points."""
    t = np.arange(600, dtype=np.float64)
    return np.sin(2 * np.pi * t / 20.0)[:, None]


@pytest.fixture
def multichannel_series() -> np.ndarray:
    """Three channels [T, 3] with different offsets and scales, seeded noise."""
    rng = np.random.default_rng(0)
    t = np.arange(300, dtype=np.float64)
    return np.stack(
        [
            10.0 + np.sin(t / 7.0),
            -3.0 + 5.0 * np.cos(t / 11.0),
            rng.normal(0.0, 0.1, len(t)),
        ],
        axis=1,
    )


@pytest.fixture
def one_torch_thread():
    """Run torch on one thread (restored afterwards): on small shared machines its thread pool
    costs more than it saves for the tiny models of the tests."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def bentoml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private BENTOML_HOME, so tests never touch the user's model store."""
    home = tmp_path / "bentoml"
    home.mkdir()
    monkeypatch.setenv("BENTOML_HOME", str(home))
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "True")
    return home
