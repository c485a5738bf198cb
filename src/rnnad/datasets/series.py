"""The Series type every dataset loads into, its validation rules, and its on-disk form.

Rules applied to every series (documented in the README, pinned by tests):
- timestamps must parse; values must be numeric (an empty cell counts as missing);
- missing values (NaN) are filled by linear interpolation when a run is at most
  ``max_nan_run`` points long and lies inside the series; longer runs, or runs at either end,
  are an error naming the file, column and rows; infinite values are always an error;
- records keep their file order: benchmark labels and NAB's scorer count records, so gaps are
  not filled and the record is the time step. Gaps longer than ``gap_factor`` times the median
  step are counted in the series' report. Duplicated or backward timestamps are either kept in
  file order and reported (``disorder: keep``) or rejected (``disorder: error``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnad.io import load_npz, save_npz


class DataError(ValueError):
    """Input data is malformed; the message names the file, column and row."""


@dataclass
class Series:
    """One time series: values [time, channels], per-point labels and labelled windows."""

    id: str
    timestamps: np.ndarray  # datetime64[ns], shape [T]
    values: np.ndarray  # float64, shape [T, C]
    labels: np.ndarray  # int8 0/1, shape [T]
    windows: np.ndarray  # int64 [K, 2], inclusive index ranges of labelled anomaly windows
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        if self.values.ndim != 2 or self.values.shape[0] != n or self.labels.shape != (n,):
            raise DataError(
                f"{self.id}: inconsistent shapes: timestamps {self.timestamps.shape}, "
                f"values {self.values.shape}, labels {self.labels.shape}"
            )

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def channels(self) -> int:
        return int(self.values.shape[1])

    def save(self, path: str | Path) -> None:
        save_npz(
            path,
            id=np.array(self.id),
            timestamps=self.timestamps.astype("datetime64[ns]").astype(np.int64),
            values=self.values,
            labels=self.labels,
            windows=self.windows.reshape(-1, 2),
        )

    @classmethod
    def load(cls, path: str | Path) -> Series:
        d = load_npz(path)
        return cls(
            id=str(d["id"]),
            timestamps=d["timestamps"].astype("datetime64[ns]"),
            values=d["values"].astype(np.float64),
            labels=d["labels"].astype(np.int8),
            windows=d["windows"].astype(np.int64).reshape(-1, 2),
        )


def fill_missing(values: np.ndarray, max_run: int, source: str, column: str) -> tuple[
    np.ndarray, int
]:
    """Interpolate NaN runs of at most ``max_run`` points inside a 1-D series.

    Returns the filled copy and the number of filled points. ``source`` and ``column`` name the
    input in error messages; rows are reported 1-based as data rows (the header is row 1, so the
    first data row is row 2).
    """
    values = np.asarray(values, dtype=np.float64).copy()
    if np.isinf(values).any():
        row = int(np.flatnonzero(np.isinf(values))[0])
        raise DataError(f"{source}: column '{column}', row {row + 2}: infinite value")
    nan = np.isnan(values)
    if not nan.any():
        return values, 0
    if nan.all():
        raise DataError(f"{source}: column '{column}': no numeric value at all")
    edges = np.diff(np.concatenate([[0], nan.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for s, e in zip(starts, ends, strict=True):
        if s == 0 or e == len(values) or e - s > max_run:
            where = "at the start" if s == 0 else "at the end" if e == len(values) else "inside"
            raise DataError(
                f"{source}: column '{column}', rows {s + 2}-{e + 1}: {e - s} missing value(s) "
                f"{where} of the series; only runs of at most {max_run} inside the series are "
                "interpolated (preprocess.max_nan_run)"
            )
    idx = np.arange(len(values))
    values[nan] = np.interp(idx[nan], idx[~nan], values[~nan])
    return values, int(nan.sum())


def check_timestamps(
    timestamps: np.ndarray, source: str, column: str, disorder: str, gap_factor: float
) -> dict[str, Any]:
    """Validate record timestamps and describe their regularity.

    Raises on duplicated/backward timestamps when ``disorder == 'error'``; otherwise counts them.
    """
    ts = timestamps.astype("datetime64[ns]").astype(np.int64)
    if len(ts) < 2:
        return {"median_step_s": None, "duplicates": 0, "backward_steps": 0,
                "irregular_steps": 0, "gaps": 0}
    steps = np.diff(ts)
    duplicates = int((steps == 0).sum())
    backward = int((steps < 0).sum())
    if disorder == "error" and (duplicates or backward):
        row = int(np.flatnonzero(steps <= 0)[0]) + 1
        kind = "duplicated" if steps[row - 1] == 0 else "earlier than the previous one"
        raise DataError(
            f"{source}: column '{column}', row {row + 2}: timestamp is {kind} "
            "(set preprocess.disorder: keep to keep records in file order)"
        )
    positive = steps[steps > 0]
    median = float(np.median(positive)) if len(positive) else 0.0
    gaps = int((positive > gap_factor * median).sum()) if median > 0 else 0
    irregular = int((positive != median).sum())
    return {
        "median_step_s": median / 1e9,
        "duplicates": duplicates,
        "backward_steps": backward,
        "irregular_steps": irregular,
        "gaps": gaps,
    }


def labels_from_windows(timestamps: np.ndarray, windows_ts: list[tuple[Any, Any]]) -> tuple[
    np.ndarray, np.ndarray
]:
    """Per-point 0/1 labels and inclusive index ranges for windows given as (start, end) times.

    A point is labelled when start <= timestamp <= end (both ends inclusive, as NAB defines it).
    """
    ts = timestamps.astype("datetime64[ns]")
    labels = np.zeros(len(ts), dtype=np.int8)
    ranges = []
    for start, end in windows_ts:
        s, e = np.datetime64(start, "ns"), np.datetime64(end, "ns")
        inside = (ts >= s) & (ts <= e)
        if not inside.any():
            continue
        idx = np.flatnonzero(inside)
        labels[inside] = 1
        ranges.append((int(idx[0]), int(idx[-1])))
    return labels, np.array(ranges, dtype=np.int64).reshape(-1, 2)
