"""Reading the outputs that several stages share: the processed series, splits and scores."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from rnnad.datasets.series import Series
from rnnad.io import load_npz, read_json, series_filename
from rnnad.split import Scaler, Split

log = logging.getLogger("rnnad")

INDEX = "index.json"
SPLITS = "splits.json"
THRESHOLDS = "thresholds.json"


def load_index(processed_dir: Path) -> list[dict[str, Any]]:
    return read_json(processed_dir / INDEX)["series"]


def load_series(processed_dir: Path, entry: dict[str, Any]) -> Series:
    return Series.load(processed_dir / entry["file"])


def load_splits(path: Path) -> dict[str, tuple[Split, Scaler]]:
    raw = read_json(path)["series"]
    return {
        sid: (Split(d["n"], d["train_end"], d["val_end"]), Scaler.from_dict(d["scaler"]))
        for sid, d in raw.items()
    }


def load_scores(scores_dir: Path, series_id: str) -> dict[str, np.ndarray]:
    return load_npz(scores_dir / series_filename(series_id, ".npz"))
