"""Read a timestamped CSV into validated timestamps and values; errors name file, column and row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnad.datasets.series import DataError, check_timestamps, fill_missing


def read_timeseries_csv(
    path: str | Path,
    *,
    timestamp_column: str = "timestamp",
    value_columns: list[str] | None = None,
    max_nan_run: int = 10,
    disorder: str = "keep",
    gap_factor: float = 3.0,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Return (timestamps datetime64[ns] [T], values float64 [T, C], report).

    ``value_columns`` defaults to every column except the timestamp column. Rows are numbered as
    in a text editor: the header is row 1.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: empty file (expected a header and data rows)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if timestamp_column not in frame.columns:
        raise DataError(
            f"{path}: no '{timestamp_column}' column (columns: {', '.join(frame.columns)})"
        )
    if value_columns is None:
        value_columns = [c for c in frame.columns if c != timestamp_column]
    missing = [c for c in value_columns if c not in frame.columns]
    if missing or not value_columns:
        raise DataError(
            f"{path}: value column(s) {missing or value_columns} not found "
            f"(columns: {', '.join(frame.columns)})"
        )
    if len(frame) == 0:
        raise DataError(f"{path}: header only, no data rows")

    raw_ts = frame[timestamp_column].str.strip()
    timestamps = pd.to_datetime(raw_ts, errors="coerce", format="mixed")
    bad = timestamps.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column '{timestamp_column}', row {row + 2}: cannot parse timestamp "
            f"{raw_ts.iloc[row]!r}"
        )
    ts = timestamps.to_numpy(dtype="datetime64[ns]")
    report: dict[str, Any] = check_timestamps(ts, str(path), timestamp_column, disorder, gap_factor)

    columns = []
    filled = 0
    for col in value_columns:
        text = frame[col].str.strip()
        numbers = pd.to_numeric(text.replace("", np.nan), errors="coerce")
        not_numeric = numbers.isna().to_numpy() & (text.to_numpy() != "") & ~text.str.lower().isin(
            ["nan", "na", "null"]
        ).to_numpy()
        if not_numeric.any():
            row = int(np.flatnonzero(not_numeric)[0])
            raise DataError(
                f"{path}: column '{col}', row {row + 2}: not a number: {text.iloc[row]!r}"
            )
        values, n_filled = fill_missing(numbers.to_numpy(dtype=np.float64), max_nan_run,
                                        str(path), col)
        filled += n_filled
        columns.append(values)
    report["filled_nans"] = filled
    report["rows"] = len(frame)
    return ts, np.stack(columns, axis=1), report
