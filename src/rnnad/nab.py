"""The Numenta Anomaly Benchmark score (Lavin & Ahmad 2015; Ahmad et al. 2017).

Written from the published method and checked row by row against NAB's published output of its
windowedGaussian detector (the ``S(t)_<profile>`` columns and per-file scores). The conventions,
with ``s``/``e`` the first/last row index of a labelled window and ``i`` a detection's row index:

- A row is a detection when ``anomaly_score >= threshold``. Detections in the probationary
  period, the first ``min(floor(0.15 * n), 750)`` rows of a file, are ignored.
- Only a window's first detection counts: it earns ``tpWeight * sigma(y) / sigma(-1)`` with
  ``y = -(e - i + 1) / (e - s + 1)``, so a detection on the window's first row earns exactly
  ``tpWeight`` and one on its last row ``tpWeight * sigma(-1 / (e - s + 1)) / sigma(-1)``.
  A window without a detection costs ``-fnWeight``.
- A detection outside every window costs ``fpWeight * sigma(y)`` (negative) with
  ``y = (i - e) / (e - s)`` measured from the nearest preceding window; ``-fpWeight`` when no
  window precedes it or when ``y > 3``.
- ``sigma(y) = 2 / (1 + exp(5 y)) - 1``.
- Normalised score: ``100 * (raw - null) / (perfect - null)`` over the corpus, where the null
  detector detects nothing and the perfect detector detects each window on its first row.
- The threshold is the one maximising the corpus raw score, per profile, found exactly: the raw
  score only changes at the detector's own score values, and each file contributes a step
  function of the threshold that is precomputed once.

Command line: ``python -m rnnad.nab score RESULTS_DIR`` scores detector output in NAB's results
layout (``<category>/<detector>_<name>.csv`` with ``timestamp`` and ``anomaly_score`` columns).
In memory: :func:`score_arrays`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnad.datasets.series import DataError
from rnnad.split import probation_length

STEEPNESS = 5.0
FP_REACH = 3.0  # a false positive further than this many window lengths after a window: -fpWeight
WINDOWS_FILE = "labels/combined_windows.json"
PROFILES_FILE = "config/profiles.json"
DEFAULT_DATA_ROOT = Path("data/raw/nab")
TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class CostMatrix:
    """One application profile's weights (NAB's ``CostMatrix``); ``tn_weight`` is unused."""

    tp_weight: float
    fn_weight: float
    fp_weight: float
    tn_weight: float = 1.0


# NAB's three profiles, as in its config/profiles.json.
DEFAULT_PROFILES: dict[str, CostMatrix] = {
    "standard": CostMatrix(tp_weight=1.0, fn_weight=1.0, fp_weight=0.11),
    "reward_low_FP_rate": CostMatrix(tp_weight=1.0, fn_weight=1.0, fp_weight=0.22),
    "reward_low_FN_rate": CostMatrix(tp_weight=1.0, fn_weight=2.0, fp_weight=0.11),
}

Window = tuple[Any, Any]


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid ``2 / (1 + exp(5 y)) - 1``: 1 at -inf, 0 at 0, -1 at +inf."""
    z = np.clip(STEEPNESS * np.asarray(y, dtype=np.float64), -700.0, 700.0)
    return 2.0 / (1.0 + np.exp(z)) - 1.0


SIGMA_WINDOW_START = float(scaled_sigmoid(-1.0))


# ---------------------------------------------------------------------------------------------
# Labels and profiles


def _to_datetime64(value: Any) -> np.datetime64:
    return np.datetime64(pd.Timestamp(value).to_datetime64(), "ns")


def load_windows(path: str | Path) -> dict[str, list[tuple[np.datetime64, np.datetime64]]]:
    """``combined_windows.json``: ``{"<category>/<name>.csv": [[start, end], ...]}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read label windows: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object mapping '<category>/<name>.csv' to windows")
    out: dict[str, list[tuple[np.datetime64, np.datetime64]]] = {}
    for key, wins in data.items():
        if not isinstance(wins, list):
            raise DataError(f"{path}: {key}: expected a list of [start, end] windows")
        parsed = []
        for j, win in enumerate(wins):
            try:
                start, end = win
                parsed.append((_to_datetime64(start), _to_datetime64(end)))
            except (TypeError, ValueError) as exc:
                raise DataError(f"{path}: {key}: window {j}: expected [start, end] timestamps, "
                                f"got {win!r}") from exc
        out[key] = parsed
    return out


def load_profiles(path: str | Path) -> dict[str, CostMatrix]:
    """NAB's ``config/profiles.json``: ``{profile: {"CostMatrix": {"tpWeight": ...}}}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        return {
            name: CostMatrix(
                tp_weight=float(p["CostMatrix"]["tpWeight"]),
                fn_weight=float(p["CostMatrix"]["fnWeight"]),
                fp_weight=float(p["CostMatrix"]["fpWeight"]),
                tn_weight=float(p["CostMatrix"].get("tnWeight", 1.0)),
            )
            for name, p in data.items()
        }
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read profiles: {exc}") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{path}: expected {{profile: {{'CostMatrix': {{'tpWeight': ..., "
                        f"'fnWeight': ..., 'fpWeight': ...}}}}}}: {exc!r}") from exc


def window_bounds(timestamps: np.ndarray, windows: Sequence[Window], name: str = "") -> np.ndarray:
    """Row index ``[first, last]`` of each window (rows whose timestamp lies in [start, end]),
    sorted by start; shape ``[k, 2]``. Windows must hold rows and must not overlap."""
    ts = np.asarray(timestamps).astype("datetime64[ns]")
    bounds = []
    for start, end in windows:
        rows = np.flatnonzero((ts >= _to_datetime64(start)) & (ts <= _to_datetime64(end)))
        if rows.size == 0:
            raise DataError(f"{name}: label window [{start}, {end}] contains no rows")
        bounds.append((int(rows[0]), int(rows[-1])))
    out = np.array(sorted(bounds), dtype=np.int64).reshape(-1, 2)
    if len(out) > 1 and (out[1:, 0] <= out[:-1, 1]).any():
        raise DataError(f"{name}: label windows overlap")
    return out


# ---------------------------------------------------------------------------------------------
# Scoring one file


@dataclass(frozen=True)
class FileResult:
    """One file's NAB score at a threshold, and its point counts after the probationary period
    (as in NAB's ``<detector>_<profile>_scores.csv``)."""

    name: str
    threshold: float
    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    total: int


@dataclass
class PreparedFile:
    """A detector's scores for one file, with its window rows and probationary length."""

    name: str
    scores: np.ndarray
    bounds: np.ndarray
    probation: int
    _geometry: tuple[np.ndarray, ...] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, name: str, timestamps: np.ndarray, scores: np.ndarray,
              windows: Sequence[Window]) -> PreparedFile:
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim != 1 or len(s) != len(timestamps):
            raise DataError(f"{name}: {len(s)} anomaly scores for {len(timestamps)} timestamps")
        bad = np.flatnonzero(~np.isfinite(s))
        if bad.size:
            raise DataError(f"{name}: anomaly score at index {bad[0]} is {s[bad[0]]}")
        return cls(name, s, window_bounds(timestamps, windows, name), probation_length(len(s)))

    @property
    def n(self) -> int:
        return len(self.scores)

    def window_mask(self) -> np.ndarray:
        edges = np.zeros(self.n + 1, dtype=np.int64)
        np.add.at(edges, self.bounds[:, 0], 1)
        np.add.at(edges, self.bounds[:, 1] + 1, -1)
        return np.cumsum(edges[:-1]) > 0

    def geometry(self) -> tuple[np.ndarray, ...]:
        """Profile-free pieces of the score as a function of the threshold (cached):

        - ``fp_values``, ``fp_unit``: each counted row outside the windows, its score and its
          cost per unit fpWeight (``sigma(y)`` or -1), paid when ``score >= threshold``;
        - ``rec_values``, ``rec_unit``, ``rec_window``: each window's running-maximum records
          (the rows that become the window's first detection as the threshold falls), their
          scores, reward per unit tpWeight, and window number.
        """
        if self._geometry is None:
            self._geometry = _geometry(self.scores, self.bounds, self.probation)
        return self._geometry


def _fp_unit_costs(rows: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Cost per unit fpWeight of a detection at each of ``rows`` (all outside the windows)."""
    unit = np.full(len(rows), -1.0)
    if len(bounds) == 0 or len(rows) == 0:
        return unit
    prev = np.searchsorted(bounds[:, 1], rows, side="left") - 1
    after = prev >= 0
    s, e = bounds[prev[after], 0], bounds[prev[after], 1]
    dist = (rows[after] - e).astype(np.float64)
    span = (e - s).astype(np.float64)
    with np.errstate(divide="ignore"):
        y = np.where(span > 0, dist / np.where(span > 0, span, 1.0), np.inf)
    unit[after] = np.where(y <= FP_REACH, scaled_sigmoid(y), -1.0)
    return unit


def _tp_unit_rewards(rows: np.ndarray, start: int, end: int) -> np.ndarray:
    """Reward per unit tpWeight of a window's first detection at each of ``rows``."""
    y = -(end - rows + 1) / (end - start + 1)
    return scaled_sigmoid(y) / SIGMA_WINDOW_START


def _geometry(scores: np.ndarray, bounds: np.ndarray,
              probation: int) -> tuple[np.ndarray, ...]:
    n = len(scores)
    inside = np.zeros(n, dtype=bool)
    for s, e in bounds:
        inside[s:e + 1] = True
    counted = np.arange(n) >= probation
    fp_rows = np.flatnonzero(counted & ~inside)
    fp_values, fp_unit = scores[fp_rows], _fp_unit_costs(fp_rows, bounds)
    values, units, wins = [], [], []
    for k, (s, e) in enumerate(bounds):
        first = max(int(s), probation)
        if first > e:
            continue
        seg = scores[first:e + 1]
        running = np.maximum.accumulate(seg)
        new_max = np.ones(len(seg), dtype=bool)
        new_max[1:] = running[1:] > running[:-1]
        rec = np.flatnonzero(new_max)
        values.append(seg[rec])
        units.append(_tp_unit_rewards(first + rec, int(s), int(e)))
        wins.append(np.full(len(rec), k))
    return (fp_values, fp_unit, _concat(values, np.float64), _concat(units, np.float64),
            _concat(wins, np.int64))


def _concat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


def row_scores(detected: np.ndarray, bounds: np.ndarray, probation: int,
               cost: CostMatrix) -> np.ndarray:
    """Per-row contributions laid out as NAB's ``S(t)_<profile>`` columns: a window's reward or
    miss penalty on its first row, a false positive's cost on its own row, 0 elsewhere."""
    det = np.asarray(detected, dtype=bool).copy()
    det[:probation] = False
    out = np.zeros(len(det))
    inside = np.zeros(len(det), dtype=bool)
    for s, e in bounds:
        inside[s:e + 1] = True
        hits = np.flatnonzero(det[s:e + 1])
        if hits.size:
            out[s] = cost.tp_weight * float(_tp_unit_rewards(s + hits[:1], int(s), int(e))[0])
        else:
            out[s] = -cost.fn_weight
    fp_rows = np.flatnonzero(det & ~inside)
    out[fp_rows] = cost.fp_weight * _fp_unit_costs(fp_rows, bounds)
    return out


def score_file(f: PreparedFile, threshold: float, cost: CostMatrix) -> FileResult:
    """NAB score of one file at ``threshold`` (a detection is ``score >= threshold``)."""
    det = f.scores >= threshold
    total = float(row_scores(det, f.bounds, f.probation, cost).sum())
    counted = np.arange(f.n) >= f.probation
    inside = f.window_mask()
    tp = int((det & inside & counted).sum())
    fp = int((det & ~inside & counted).sum())
    fn = int((~det & inside & counted).sum())
    tn = int((~det & ~inside & counted).sum())
    return FileResult(f.name, float(threshold), total, tp, tn, fp, fn, f.n)


# ---------------------------------------------------------------------------------------------
# Corpus scores and threshold optimisation


@dataclass(frozen=True)
class ProfileResult:
    """A profile's corpus result: any threshold in (``threshold_floor``, ``threshold``] gives
    the same ``raw`` score (``threshold`` is the highest such value)."""

    profile: str
    threshold: float
    threshold_floor: float
    raw: float
    null: float
    perfect: float
    normalised: float
    files: tuple[FileResult, ...]


def null_score(files: Sequence[PreparedFile], cost: CostMatrix) -> float:
    """Raw corpus score of a detector that detects nothing."""
    return -cost.fn_weight * sum(len(f.bounds) for f in files)


def perfect_score(files: Sequence[PreparedFile], cost: CostMatrix) -> float:
    """Raw corpus score of a detector that detects each window on its first row only."""
    total = 0.0
    for f in files:
        det = np.zeros(f.n, dtype=bool)
        det[f.bounds[:, 0]] = True
        total += float(row_scores(det, f.bounds, f.probation, cost).sum())
    return total


def normalise(raw: float, null: float, perfect: float) -> float:
    """100 for the perfect detector, 0 for the null detector."""
    if perfect == null:
        raise ValueError("perfect and null scores are equal (no labelled windows?)")
    return 100.0 * (raw - null) / (perfect - null)


def threshold_curve(files: Sequence[PreparedFile],
                    cost: CostMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Every distinct threshold at which the corpus raw score changes, descending, with the raw
    score at that threshold. The first entry is the no-detection threshold (above every score)."""
    thresholds, raws, _ = _curve(files, cost)
    return thresholds, raws


def _curve(files: Sequence[PreparedFile],
           cost: CostMatrix) -> tuple[np.ndarray, np.ndarray, float]:
    fp_v, fp_d, rec_v, rec_d = [], [], [], []
    for f in files:
        fv, fu, rv, ru, rw = f.geometry()
        fp_v.append(fv)
        fp_d.append(cost.fp_weight * fu)
        reward = cost.tp_weight * ru
        # A record's step: its reward minus that of the next (later) record, or of a miss.
        nxt = np.empty_like(reward)
        nxt[:-1] = reward[1:]
        last = np.ones(len(rw), dtype=bool)
        last[:-1] = rw[1:] != rw[:-1]
        nxt[last] = -cost.fn_weight
        rec_v.append(rv)
        rec_d.append(reward - nxt)
    values = np.concatenate([*fp_v, *rec_v]) if files else np.zeros(0)
    deltas = np.concatenate([*fp_d, *rec_d]) if files else np.zeros(0)
    base = null_score(files, cost)
    order = np.argsort(-values, kind="stable")
    v, c = values[order], base + np.cumsum(deltas[order])
    run_end = np.ones(len(v), dtype=bool)
    run_end[:-1] = v[1:] != v[:-1]
    top = float(np.nextafter(v[0], np.inf)) if len(v) else 1.0
    # Scores closer than the running sum's rounding error count as ties.
    tolerance = TIE_TOLERANCE * (1.0 + float(np.abs(deltas).sum()))
    return (np.concatenate([[top], v[run_end]]), np.concatenate([[base], c[run_end]]),
            tolerance)


def optimise_threshold(files: Sequence[PreparedFile], cost: CostMatrix) -> tuple[float, float]:
    """The threshold maximising the corpus raw score (the highest one on ties) and the exclusive
    lower end of the range of thresholds that give the same result."""
    thresholds, raws, tolerance = _curve(files, cost)
    best = int(np.flatnonzero(raws >= raws.max() - tolerance)[0])
    floor = float(thresholds[best + 1]) if best + 1 < len(thresholds) else -np.inf
    return float(thresholds[best]), floor


def score_profile(files: Sequence[PreparedFile], profile: str, cost: CostMatrix,
                  threshold: float | None = None) -> ProfileResult:
    """Corpus result for one profile, at ``threshold`` or at the optimised one."""
    if threshold is None:
        threshold, floor = optimise_threshold(files, cost)
    else:
        floor = float("nan")
    per_file = tuple(score_file(f, threshold, cost) for f in files)
    raw = float(sum(r.score for r in per_file))
    null, perfect = null_score(files, cost), perfect_score(files, cost)
    return ProfileResult(profile, float(threshold), floor, raw, null, perfect,
                         normalise(raw, null, perfect), per_file)


def score_prepared(files: Sequence[PreparedFile],
                   profiles: Mapping[str, CostMatrix] | None = None,
                   thresholds: Mapping[str, float] | None = None) -> dict[str, ProfileResult]:
    """Every profile's corpus result (thresholds optimised unless given per profile)."""
    profiles = DEFAULT_PROFILES if profiles is None else profiles
    return {
        name: score_profile(files, name, cost, (thresholds or {}).get(name))
        for name, cost in profiles.items()
    }


def score_arrays(series: Mapping[str, tuple[np.ndarray, np.ndarray]],
                 windows: Mapping[str, Sequence[Window]],
                 profiles: Mapping[str, CostMatrix] | None = None,
                 thresholds: Mapping[str, float] | None = None) -> dict[str, ProfileResult]:
    """NAB scores of in-memory detector output.

    ``series`` maps a series name to ``(timestamps, anomaly_scores)``; ``windows`` maps the same
    names (``.csv`` suffix optional) to ``[(start, end), ...]`` label windows. Every series is
    scored; a series missing from ``windows`` is an error.
    """
    files = []
    for name, (ts, scores) in series.items():
        key = name if name in windows else f"{name}.csv"
        if key not in windows:
            raise DataError(f"{name}: no label windows for this series")
        files.append(PreparedFile.build(name, np.asarray(ts), scores, windows[key]))
    return score_prepared(files, profiles, thresholds)


HALVES = ("a", "b")


def corpus_halves(series_ids: Sequence[str]) -> dict[str, str]:
    """The fixed split of NAB's files into two halves used to choose hyperparameters on one
    ("a") and check them on the other ("b"): within each category, files in name order
    alternate a, b, a, ... (so each half holds about half of every category). A series' half
    depends only on the names in its category, not on which other categories are selected."""
    half: dict[str, str] = {}
    by_category: dict[str, list[str]] = {}
    for sid in series_ids:
        by_category.setdefault(sid.split("/", 1)[0], []).append(sid)
    for ids in by_category.values():
        for i, sid in enumerate(sorted(ids)):
            half[sid] = HALVES[i % 2]
    return half


# ---------------------------------------------------------------------------------------------
# NAB results layout


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: empty file (expected a header and data rows)") from exc
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _column(frame: pd.DataFrame, path: Path, column: str) -> pd.Series:
    if column not in frame.columns:
        raise DataError(f"{path}: no '{column}' column (columns: {', '.join(frame.columns)})")
    return frame[column].str.strip()


def _timestamps(frame: pd.DataFrame, path: Path) -> np.ndarray:
    raw = _column(frame, path, "timestamp")
    ts = pd.to_datetime(raw, errors="coerce", format="ISO8601")
    bad = np.flatnonzero(ts.isna().to_numpy())
    if bad.size:
        # Rows as in a text editor: the header is row 1.
        raise DataError(f"{path}: column 'timestamp', row {bad[0] + 2}: not a timestamp: "
                        f"{raw.iloc[bad[0]]!r}")
    return ts.to_numpy().astype("datetime64[ns]")


def read_result_file(path: Path, data_timestamps: np.ndarray) -> np.ndarray:
    """The ``anomaly_score`` column of one results file, checked against its data file."""
    frame = _read_csv(path)
    raw = _column(frame, path, "anomaly_score")
    ts = _timestamps(frame, path)
    if len(frame) != len(data_timestamps):
        raise DataError(f"{path}: {len(frame)} rows, but the data file has "
                        f"{len(data_timestamps)}")
    differ = np.flatnonzero(ts != data_timestamps)
    if differ.size:
        r = differ[0]
        raise DataError(f"{path}: column 'timestamp', row {r + 2}: {ts[r]} differs from the "
                        f"data file's {data_timestamps[r]}")
    scores = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise DataError(f"{path}: column 'anomaly_score', row {bad[0] + 2}: not a finite "
                        f"number: {raw.iloc[bad[0]]!r}")
    return scores


def _detector_name(results_dir: Path, keys: Sequence[str]) -> str:
    """The ``<detector>`` prefix of the results files: the folder's name when files use it,
    else the prefix found on the first labelled file present."""
    if any((results_dir / k).with_name(f"{results_dir.name}_{Path(k).name}").is_file()
           for k in keys):
        return results_dir.name
    for key in keys:
        category, name = key.split("/", 1)
        for p in sorted((results_dir / category).glob(f"*_{name}")):
            return p.name[: -len(name) - 1]
    raise DataError(f"{results_dir}: no results files '<category>/<detector>_<name>.csv' for "
                    f"any labelled file (e.g. {keys[0] if keys else '?'})")


def load_results_dir(results_dir: str | Path, windows: Mapping[str, Sequence[Window]],
                     data_root: str | Path = DEFAULT_DATA_ROOT,
                     detector: str | None = None) -> list[PreparedFile]:
    """Every labelled file's results from ``results_dir/<category>/<detector>_<name>.csv``,
    checked against ``data_root/data/<category>/<name>.csv``."""
    results_dir, data_root = Path(results_dir), Path(data_root)
    if not results_dir.is_dir():
        raise DataError(f"{results_dir}: results folder not found")
    keys = sorted(windows)
    detector = detector or _detector_name(results_dir, keys)
    paths = {k: results_dir / k.split("/", 1)[0] / f"{detector}_{k.split('/', 1)[1]}"
             for k in keys}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataError(f"{len(missing)} results file(s) missing for detector '{detector}': "
                        + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    files = []
    for key in keys:
        data_path = data_root / "data" / key
        if not data_path.is_file():
            raise DataError(f"{data_path}: data file not found (is --data-root the NAB folder?)")
        data_ts = _timestamps(_read_csv(data_path), data_path)
        scores = read_result_file(paths[key], data_ts)
        files.append(PreparedFile.build(key, data_ts, scores, windows[key]))
    return files


def score_results_dir(results_dir: str | Path, *, data_root: str | Path = DEFAULT_DATA_ROOT,
                      labels: str | Path | None = None, profiles: str | Path | None = None,
                      detector: str | None = None) -> dict[str, ProfileResult]:
    """NAB scores of a detector's output in NAB's results layout."""
    data_root = Path(data_root)
    windows = load_windows(labels or data_root / WINDOWS_FILE)
    costs = load_profiles(profiles or data_root / PROFILES_FILE)
    files = load_results_dir(results_dir, windows, data_root, detector)
    return score_prepared(files, costs)


def summary(results: Mapping[str, ProfileResult], files: bool = False) -> dict[str, Any]:
    """JSON-ready summary: per profile the normalised score, threshold and raw scores."""
    out: dict[str, Any] = {}
    for name, r in results.items():
        d = asdict(r)
        if not files:
            d.pop("files")
        # JSON has no infinity or NaN: an unbounded or unknown threshold_floor becomes null.
        if not math.isfinite(d["threshold_floor"]):
            d["threshold_floor"] = None
        out[name] = d
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnad.nab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("score", help="score detector output in NAB's results layout")
    sc.add_argument("results_dir", type=Path,
                    help="folder holding <category>/<detector>_<name>.csv")
    sc.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT,
                    help="NAB folder with data/, labels/, config/ (default: %(default)s)")
    sc.add_argument("--labels", type=Path, help="label windows JSON "
                    "(default: DATA_ROOT/labels/combined_windows.json)")
    sc.add_argument("--profiles", type=Path,
                    help="profiles JSON (default: DATA_ROOT/config/profiles.json)")
    sc.add_argument("--detector", help="file-name prefix (default: the folder's name, or found)")
    sc.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sc.add_argument("--files", action="store_true", help="with --json: per-file results too")
    args = parser.parse_args(argv)
    try:
        results = score_results_dir(args.results_dir, data_root=args.data_root,
                                    labels=args.labels, profiles=args.profiles,
                                    detector=args.detector)
    except (DataError, ValueError) as exc:
        print(f"rnnad nab: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary(results, files=args.files), indent=2))
    else:
        print(f"{'profile':<20} {'score':>8} {'threshold':>20} {'raw':>12}")
        for name, r in results.items():
            print(f"{name:<20} {r.normalised:8.2f} {r.threshold:20.12g} {r.raw:12.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
