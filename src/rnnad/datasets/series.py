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


EXTRA_PREFIX = "extra__"


@dataclass
class Series:
    """One time series: values [time, channels], per-point labels and labelled windows.

    Datasets beyond NAB fill the optional fields:

    - ``channel_names``: one name per channel (default ``value`` for one channel, else
      ``ch0``, ``ch1``, ...);
    - ``segments``: start indices of independent stretches (C-MAPSS engines, KDD's two files):
      no window crosses a segment start, so the first ``window - 1`` points of every segment
      have no score. Default: one segment starting at 0;
    - ``learn_end``: the dataset's own split (SMAP/MSL's train array, C-MAPSS's early cycles of
      the training engines, KDD's normal training records): points before it may be learned
      from, every later point is test data. None: the split protocol decides;
    - ``targets``: the channels the model reconstructs by default (SMAP/MSL: the telemetry
      channel; the command flags are inputs only). None: all channels;
    - ``extra``: per-point arrays [T] a dataset's measures need (KDD's attack category,
      C-MAPSS's remaining useful life and engine unit).
    """

    id: str
    timestamps: np.ndarray  # datetime64[ns], shape [T]
    values: np.ndarray  # float64, shape [T, C]
    labels: np.ndarray  # int8 0/1, shape [T]
    windows: np.ndarray  # int64 [K, 2], inclusive index ranges of labelled anomaly windows
    report: dict[str, Any] = field(default_factory=dict)
    channel_names: tuple[str, ...] = ()
    segments: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    learn_end: int | None = None
    targets: tuple[int, ...] | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        if self.values.ndim != 2 or self.values.shape[0] != n or self.labels.shape != (n,):
            raise DataError(
                f"{self.id}: inconsistent shapes: timestamps {self.timestamps.shape}, "
                f"values {self.values.shape}, labels {self.labels.shape}"
            )
        c = self.values.shape[1]
        if not self.channel_names:
            self.channel_names = ("value",) if c == 1 else tuple(f"ch{i}" for i in range(c))
        self.channel_names = tuple(str(name) for name in self.channel_names)
        if len(self.channel_names) != c or len(set(self.channel_names)) != c:
            raise DataError(f"{self.id}: {c} channels need {c} distinct names, got "
                            f"{list(self.channel_names)}")
        self.segments = np.asarray(self.segments, dtype=np.int64).reshape(-1)
        seg = self.segments
        if len(seg) == 0 or seg[0] != 0 or (np.diff(seg) <= 0).any() or seg[-1] >= max(n, 1):
            raise DataError(f"{self.id}: segment starts must begin at 0, increase and lie "
                            f"inside the series, got {seg.tolist()[:10]}")
        if self.learn_end is not None and not 0 < self.learn_end < n:
            raise DataError(f"{self.id}: learn_end {self.learn_end} outside 1..{n - 1}")
        if self.targets is not None:
            self.targets = tuple(int(t) for t in self.targets)
            if not self.targets or any(not 0 <= t < c for t in self.targets):
                raise DataError(f"{self.id}: target channels {self.targets} outside 0..{c - 1}")
        for key, arr in self.extra.items():
            if np.asarray(arr).shape != (n,):
                raise DataError(f"{self.id}: extra array '{key}' has shape "
                                f"{np.asarray(arr).shape}, expected ({n},)")

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
            channel_names=np.array(self.channel_names, dtype=str),
            segments=self.segments,
            learn_end=np.array(-1 if self.learn_end is None else self.learn_end),
            targets=np.array(self.targets or (), dtype=np.int64),
            **{EXTRA_PREFIX + k: np.asarray(v) for k, v in self.extra.items()},
        )

    @classmethod
    def load(cls, path: str | Path) -> Series:
        d = load_npz(path)
        learn_end = int(d["learn_end"]) if "learn_end" in d else -1
        targets = tuple(int(t) for t in d["targets"]) if "targets" in d else ()
        return cls(
            id=str(d["id"]),
            timestamps=d["timestamps"].astype("datetime64[ns]"),
            values=d["values"].astype(np.float64),
            labels=d["labels"].astype(np.int8),
            windows=d["windows"].astype(np.int64).reshape(-1, 2),
            channel_names=tuple(str(c) for c in d["channel_names"]) if "channel_names" in d
            else (),
            segments=d["segments"] if "segments" in d else np.zeros(1, dtype=np.int64),
            learn_end=None if learn_end < 0 else learn_end,
            targets=targets or None,
            extra={k.removeprefix(EXTRA_PREFIX): v for k, v in d.items()
                   if k.startswith(EXTRA_PREFIX)},
        )


def select_series(available: list[str], selection: str | list[str]) -> list[str]:
    """Resolve ``preprocess.series``: 'all', a category (the part of an id before '/'), a
    series id, a series' bare name when unique, or a list of those."""
    wanted = [selection] if isinstance(selection, str) else list(selection)
    if not wanted:
        raise DataError("preprocess.series: empty selection")
    categories = sorted({s.split("/")[0] for s in available if "/" in s})
    chosen: list[str] = []
    for item in wanted:
        item = item.removesuffix(".csv")
        if item == "all":
            matches = available
        elif item in categories:
            matches = [s for s in available if s.split("/")[0] == item]
        elif item in available:
            matches = [item]
        else:
            by_name = [s for s in available if s.rsplit("/", 1)[-1] == item]
            if len(by_name) != 1:
                raise DataError(
                    f"preprocess.series: unknown series or category {item!r}; categories: "
                    f"{', '.join(categories) or 'none'}; series ids: "
                    f"{', '.join(available[:4])}{', ...' if len(available) > 4 else ''}"
                )
            matches = by_name
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def measured_points(series: Series, flags: np.ndarray, test: np.ndarray,
                    required: tuple[str, ...], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The common start of a dataset's ``extra_measures``: ``flags`` as bools and the mask of
    the measured points (``test``, never before ``learn_end``), after checking their shapes
    and that ``series.extra`` holds the ``required`` arrays (else: not a ``kind`` series)."""
    n = len(series)
    flags = np.asarray(flags).reshape(-1).astype(bool)
    test = np.asarray(test).reshape(-1).astype(bool)
    if flags.shape != (n,) or test.shape != (n,):
        raise ValueError(f"{series.id}: flags {flags.shape} and test {test.shape} must both "
                         f"have shape ({n},)")
    for key in required:
        if key not in series.extra:
            raise DataError(f"{series.id}: extra array '{key}' missing; not a {kind} series")
    measured = test.copy()
    if series.learn_end is not None:
        measured[: series.learn_end] = False
    return flags, measured


def windows_from_labels(labels: np.ndarray) -> np.ndarray:
    """Inclusive [start, end] index ranges of the runs of 1 in a 0/1 label array, [K, 2]."""
    y = np.asarray(labels, dtype=np.int8).reshape(-1)
    edges = np.diff(np.concatenate([[0], y, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return np.stack([starts, ends], axis=1).astype(np.int64).reshape(-1, 2)


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
