"""Read a timestamped CSV into validated timestamps and values; errors name file, column and row.

Rules beyond those of :mod:`rnnad.datasets.series` (each pinned by ``tests/test_bad_data.py``
and a file in ``tests/data/bad/``):

- the first line is the header; column names are stripped of surrounding spaces, must be
  unique and are case-sensitive (an error suggests the name that differs only in case);
- a data row with more fields than the header is an error naming the line (never silently
  read with its first field as an index); a row with fewer fields has empty trailing cells;
- a timestamp must spell out a four-digit year: strings that would be completed from today's
  date ('now', 'today', '12:00') are rejected, so loading a file never depends on when it runs;
- time zones: timestamps without a UTC offset are kept as written (NAB); when every timestamp
  has an offset ('+02:00', 'Z'), they are converted to UTC and stored without a zone; a file
  mixing timestamps with and without an offset is an error naming the first row that differs;
- timestamps must lie in the range of ``datetime64[ns]`` (1677-09-22 to 2262-04-11).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnad.datasets.series import DataError, check_timestamps, fill_missing

_YEAR = re.compile(r"\d{4}")
_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _read_frame(path: Path) -> pd.DataFrame:
    """Header and data rows as stripped strings; header problems raise :class:`DataError`."""
    try:
        # header=None: the tokenizer then rejects a data row with more fields than the header
        # (with a header, pandas would silently take such rows' first field as an index)
        table = pd.read_csv(path, dtype=str, keep_default_na=False, header=None)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: empty file (expected a header and data rows)") from exc
    except pd.errors.ParserError as exc:
        fields = _FIELDS.search(str(exc))
        if fields is not None:
            expected, line, saw = fields.groups()
            raise DataError(f"{path}: row {line}: {saw} fields, but the header has {expected} "
                            "(a comma inside a value must be quoted)") from exc
        raise DataError(f"{path}: not a readable CSV file: {exc}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV file: {exc}") from exc
    columns = [str(c).strip() for c in table.iloc[0]]
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise DataError(f"{path}: row 1 (the header): column name '{c}' appears more than "
                            f"once (columns: {', '.join(columns)})")
        seen.add(c)
    frame = table.iloc[1:].reset_index(drop=True)
    frame.columns = pd.Index(columns)
    return frame


def _case_hint(name: str, columns: list[str]) -> str:
    close = [c for c in columns if c.lower() == name.lower() and c != name]
    return f"; column names are case-sensitive: did you mean '{close[0]}'?" if close else ""


def _parse_timestamps(path: Path, column: str, raw: pd.Series) -> np.ndarray:
    """Parse the timestamp column to datetime64[ns] (UTC when every stamp has an offset)."""

    def fail(row: int, why: str, detail: str = "") -> DataError:
        return DataError(f"{path}: column '{column}', row {row + 2}: {why} {raw.iloc[row]!r}"
                         f"{detail}")

    no_year = ~raw.str.contains(_YEAR).to_numpy(dtype=bool)
    if no_year.any():
        row = int(np.flatnonzero(no_year)[0])
        raise fail(row, "cannot parse timestamp",
                   " (no four-digit year: a timestamp must spell out its date)"
                   if raw.iloc[row] else "")
    try:
        parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
    except ValueError:  # pandas: "Mixed timezones detected" (several offsets, or some without)
        aware = np.array([_has_offset(text) for text in raw], dtype=bool)
        if not aware.all():
            row = int(np.flatnonzero(aware != aware[0])[0])
            first = "has" if aware[0] else "has no"
            this = "has no" if aware[0] else "has"
            raise DataError(
                f"{path}: column '{column}', row {row + 2}: timestamp {raw.iloc[row]!r} {this} "
                f"UTC offset but row 2 ({raw.iloc[0]!r}) {first}; either every timestamp has an "
                "offset (converted to UTC) or none has"
            ) from None
        parsed = pd.to_datetime(raw, errors="coerce", format="mixed", utc=True)
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise fail(int(np.flatnonzero(bad)[0]), "cannot parse timestamp")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    out_of_range = ((parsed < pd.Timestamp.min) | (parsed > pd.Timestamp.max)).to_numpy()
    if out_of_range.any():
        raise fail(int(np.flatnonzero(out_of_range)[0]), "timestamp",
                   f" outside the supported range {pd.Timestamp.min} .. {pd.Timestamp.max}")
    return parsed.to_numpy(dtype="datetime64[ns]")


def _has_offset(text: str) -> bool:
    try:
        return pd.Timestamp(text).tzinfo is not None
    except (ValueError, TypeError, OverflowError):
        return False


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
    in a text editor: the header is row 1. Every problem raises :class:`DataError` whose message
    starts with the file's path.
    """
    path = Path(path)
    frame = _read_frame(path)
    columns = list(frame.columns)
    if timestamp_column not in columns:
        raise DataError(
            f"{path}: no '{timestamp_column}' column (columns: {', '.join(columns)})"
            + _case_hint(timestamp_column, columns)
        )
    if value_columns is None:
        value_columns = [c for c in columns if c != timestamp_column]
    missing = [c for c in value_columns if c not in columns]
    if missing or not value_columns:
        raise DataError(
            f"{path}: value column(s) {missing or value_columns} not found "
            f"(columns: {', '.join(columns)})"
            + "".join(_case_hint(c, columns) for c in missing)
        )
    if len(frame) == 0:
        raise DataError(f"{path}: header only, no data rows")

    raw_ts = frame[timestamp_column].str.strip()
    ts = _parse_timestamps(path, timestamp_column, raw_ts)
    report: dict[str, Any] = check_timestamps(ts, str(path), timestamp_column, disorder, gap_factor)

    values_out = []
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
        values_out.append(values)
    report["filled_nans"] = filled
    report["rows"] = len(frame)
    return ts, np.stack(values_out, axis=1), report
