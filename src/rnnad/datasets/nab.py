"""The Numenta Anomaly Benchmark: 58 univariate series in 7 categories, with labelled windows.

Upstream: https://github.com/numenta/NAB (MIT), files fetched at a pinned commit and verified
against ``rnnad/manifests/nab.tsv``.
"""

from __future__ import annotations

import itertools
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnad.datasets.csvfile import read_timeseries_csv
from rnnad.datasets.fetch import fetch_files, read_manifest
from rnnad.datasets.series import DataError, Series, labels_from_windows, select_series

# select_series is re-exported: the selection rules first written for NAB are the common ones
__all__ = ["check_windows", "fetch", "load_series", "load_windows", "select_series"]

NAME = "nab"
RAW_URL = "https://raw.githubusercontent.com/numenta/NAB/{commit}/{path}"
WINDOWS_FILE = "labels/combined_windows.json"


def manifest_path() -> Path:
    return Path(str(resources.files("rnnad") / "manifests" / "nab.tsv"))


def fetch(dest: Path, commit: str, *, retries: int = 3, timeout_s: float = 60.0) -> list[Path]:
    """Fetch every NAB file in the manifest into ``dest`` (checksums verified)."""
    entries = read_manifest(manifest_path())
    return fetch_files(
        entries,
        dest,
        NAME,
        lambda p: RAW_URL.format(commit=commit, path=p),
        retries=retries,
        timeout_s=timeout_s,
    )


def available_series(raw: Path) -> list[str]:
    """Series ids (``category/name``) present in ``raw/data``, sorted."""
    return sorted(
        f"{p.parent.name}/{p.stem}" for p in (raw / "data").glob("*/*.csv") if p.is_file()
    )


def load_windows(raw: Path) -> dict[str, list[tuple[np.datetime64, np.datetime64]]]:
    """The label windows of ``raw/labels/combined_windows.json``, parsed and checked by the
    NAB scorer's reader (one parser for the pipeline and the scorer)."""
    from rnnad import nab as nab_scorer

    return nab_scorer.load_windows(raw / WINDOWS_FILE)


def _stamp(value: object) -> str:
    return str(pd.Timestamp(value))  # type: ignore[arg-type]


def check_windows(timestamps: np.ndarray, wins: list[tuple[Any, ...]], labels_file: Path,
                  key: str, data_file: Path) -> None:
    """Reject label windows the NAB scorer could not use, naming the window and the file.

    A window must contain at least one record: one wholly before or after the series, one
    between two records or one that ends before it starts is an error. A window that runs past
    either end of the series is clipped to the records it covers (NAB's windows often do).
    Windows must be disjoint: two windows sharing a record are an error (NAB's scorer counts
    one detection per window), never merged silently.
    """
    ts = timestamps.astype("datetime64[ns]")
    first, last = ts.min(), ts.max()
    bounds = []
    for j, (start, end) in enumerate(wins):
        s, e = np.datetime64(start, "ns"), np.datetime64(end, "ns")
        where = f"window {j} [{_stamp(s)}, {_stamp(e)}]"
        rows = np.flatnonzero((ts >= s) & (ts <= e))
        if e < s:
            raise DataError(f"{labels_file}: '{key}', {where}: its end is before its start")
        if e < first or s > last:
            raise DataError(
                f"{labels_file}: a window of '{key}' lies outside the series' time range: "
                f"{where}, but {data_file} spans {_stamp(first)} .. {_stamp(last)}"
            )
        if rows.size == 0:
            raise DataError(f"{labels_file}: '{key}', {where}: contains no record of "
                            f"{data_file} (it lies between two records)")
        bounds.append((int(rows[0]), int(rows[-1]), j))
    bounds.sort()
    for (_, prev_end, i), (start_row, _, j) in itertools.pairwise(bounds):
        if start_row <= prev_end:
            a, b = sorted((i, j))
            raise DataError(
                f"{labels_file}: windows {a} [{_stamp(wins[a][0])}, {_stamp(wins[a][1])}] and "
                f"{b} [{_stamp(wins[b][0])}, {_stamp(wins[b][1])}] of '{key}' overlap (both "
                f"contain row {start_row + 2} of {data_file}); label windows must be disjoint: "
                "merge them into one window"
            )


def load_series(
    raw: Path,
    series_id: str,
    windows: dict[str, list[list[str]]],
    *,
    max_nan_run: int,
    disorder: str,
    gap_factor: float,
) -> Series:
    path = raw / "data" / f"{series_id}.csv"
    ts, values, report = read_timeseries_csv(
        path,
        value_columns=["value"],
        max_nan_run=max_nan_run,
        disorder=disorder,
        gap_factor=gap_factor,
    )
    key = f"{series_id}.csv"
    if key not in windows:
        raise DataError(f"{raw / WINDOWS_FILE}: no entry for '{key}'")
    wins = [tuple(w) for w in windows[key]]
    check_windows(ts, wins, raw / WINDOWS_FILE, key, path)
    labels, ranges = labels_from_windows(ts, wins)
    report["windows"] = len(ranges)
    report["labelled_points"] = int(labels.sum())
    return Series(series_id, ts, values, labels, ranges, report)
