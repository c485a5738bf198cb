"""``data.dataset: csv``: a CSV file a user brings, one or more value columns.

- ``data.csv.path``: the file (relative to the repository root). The fetch stage copies it into
  ``data/raw/csv/`` and records its sha256, so a changed file re-runs the pipeline.
- ``data.csv.timestamp_column``: parsed by :func:`rnnad.datasets.csvfile.read_timeseries_csv`
  (its rules: four-digit years, offsets all or none, ...).
- ``data.csv.value_columns``: the channels; empty means every column except the timestamp and
  the label column. Missing values: runs of at most ``preprocess.max_nan_run`` are interpolated.
- labels, one of: ``data.csv.label_column``, a 0/1 column (any other value is an error naming
  the row), or ``data.csv.labels_file``, a JSON list of ``[start, end]`` timestamp windows
  (inclusive; rules of :func:`rnnad.datasets.nab.check_windows`). Neither: no labels (the
  pipeline still trains and scores; measures that need labels are null).

The series id is the file's stem; the split protocol (``split.protocol``) decides what the model
learns from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from rnnad.config import CsvParams
from rnnad.datasets.csvfile import read_timeseries_csv
from rnnad.datasets.series import DataError, Series, labels_from_windows, windows_from_labels
from rnnad.io import atomic_path, sha256_file, write_json

FOLDER = "csv"
SOURCE_FILE = "source.json"


def fetch(dest: Path, params: CsvParams, root: Path | None = None) -> list[Path]:
    """Copy the user's CSV (and labels file) into ``dest``, recording their sha256."""
    root = Path.cwd() if root is None else root
    copied = []
    record = {}
    for key, name in (("path", params.path), ("labels_file", params.labels_file)):
        if name is None:
            continue
        src = (root / name) if not Path(name).is_absolute() else Path(name)
        if not src.is_file():
            raise DataError(f"data.csv.{key}: {src} does not exist (paths are relative to the "
                            "repository root)")
        target = dest / ("labels.json" if key == "labels_file" else "data.csv")
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(src, tmp)
        record[key] = {"source": str(name), "sha256": sha256_file(target)}
        copied.append(target)
    write_json(dest / SOURCE_FILE, record)
    return copied


def available_series(raw: Path, params: CsvParams) -> list[str]:
    return [Path(params.path).stem]


def _label_column(path: Path, params: CsvParams) -> np.ndarray:
    assert params.label_column is not None
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=[params.label_column])
    text = frame[params.label_column].str.strip()
    bad = ~text.isin(["0", "1", "0.0", "1.0"]).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: column '{params.label_column}', row {row + 2}: label must be "
                        f"0 or 1, got {text.iloc[row]!r}")
    return text.astype(float).astype(np.int8).to_numpy()


def load_series(raw: Path, series_id: str, params: CsvParams, *, max_nan_run: int,
                disorder: str, gap_factor: float) -> Series:
    path = raw / "data.csv"
    header = [c.strip() for c in pd.read_csv(path, nrows=0).columns] if path.stat().st_size \
        else []
    label_column = params.label_column if params.labels_file is None else None
    if label_column is not None and header and label_column not in header:
        if params.label_column != "label" or params.value_columns:
            raise DataError(f"{params.path}: no label column '{label_column}' (columns: "
                            f"{', '.join(header)}); set data.csv.label_column: null for none")
        label_column = None  # the default name, absent: an unlabelled file
    values_wanted = list(params.value_columns) or [
        c for c in header if c not in (params.timestamp_column, label_column)]
    try:
        ts, values, report = read_timeseries_csv(
            path, timestamp_column=params.timestamp_column,
            value_columns=values_wanted or None, max_nan_run=max_nan_run, disorder=disorder,
            gap_factor=gap_factor)
        labels = _label_column(path, params) if label_column is not None else None
    except DataError as exc:  # name the user's file, not the pipeline's copy of it
        raise DataError(str(exc).replace(str(path), params.path)) from exc
    if labels is not None:
        windows = windows_from_labels(labels)
    elif params.labels_file is not None:
        from rnnad.datasets.nab import check_windows

        labels_path = raw / "labels.json"
        try:
            wins = json.loads(labels_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{params.labels_file}: not valid JSON: {exc}") from exc
        if not isinstance(wins, list) or any(
                not isinstance(w, list) or len(w) != 2 for w in wins):
            raise DataError(f"{params.labels_file}: expected a JSON list of [start, end] "
                            "timestamp pairs")
        check_windows(ts, [tuple(w) for w in wins], Path(params.labels_file), series_id,
                      Path(params.path))
        labels, windows = labels_from_windows(ts, [tuple(w) for w in wins])
    else:
        labels = np.zeros(len(ts), dtype=np.int8)
        windows = np.zeros((0, 2), dtype=np.int64)
    report["windows"] = len(windows)
    report["labelled_points"] = int(labels.sum())
    return Series(series_id, ts, values, labels, windows, report,
                  channel_names=tuple(values_wanted))
