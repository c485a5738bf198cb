"""Bad data: every file in tests/data/bad/ has a pinned outcome, and property tests (hypothesis).

Each file in the folder is either rejected with a DataError whose message starts with the file's
path and names the column and row where that applies, or repaired by a documented rule that its
check below pins. A file dropped in the folder without an entry in ``EXPECTED`` (and a line in
the folder's README.md) fails ``test_every_bad_file_has_an_expectation``.

The ``windows_*.json`` files are NAB label files (``combined_windows.json``'s layout) for the
series ``gap.csv``: the test installs them in a toy NAB corpus as ``bad/gap.csv`` and
``labels/combined_windows.json`` and loads the series the way the preprocess stage does.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnad.config import SplitParams, TrainParams
from rnnad.datasets import nab
from rnnad.datasets.csvfile import read_timeseries_csv
from rnnad.datasets.series import DataError, Series
from rnnad.scoring import score_points
from rnnad.split import Scaler, fit_scaler, make_split

BAD = Path(__file__).resolve().parent / "data" / "bad"
# preprocess defaults (params.yaml)
LOAD = {"max_nan_run": 10, "disorder": "keep", "gap_factor": 3.0}
WINDOW = 32  # params.yaml window.length


def reconstruct(windows: np.ndarray) -> np.ndarray:
    """A deterministic stand-in for a model: scales its input by 0.9."""
    return 0.9 * windows


def ts(*stamps: str) -> np.ndarray:
    return np.array(stamps, dtype="datetime64[ns]")


# ---------------------------------------------------------------- loading a bad file


def load(tmp: Path, name: str) -> Series:
    """Load a bad file as the preprocess stage would: CSVs as a NAB series of their own,
    label files as the windows of ``gap.csv``."""
    raw = tmp / "raw"
    (raw / "data" / "bad").mkdir(parents=True)
    (raw / "labels").mkdir()
    path = BAD / name
    if path.suffix == ".json":
        shutil.copyfile(BAD / "gap.csv", raw / "data" / "bad" / "gap.csv")
        shutil.copyfile(path, raw / nab.WINDOWS_FILE)
        sid = "bad/gap"
    else:
        sid = f"bad/{path.stem}"
        shutil.copyfile(path, raw / "data" / f"{sid}.csv")
        (raw / nab.WINDOWS_FILE).write_text(f'{{"{sid}.csv": []}}')
    return nab.load_series(raw, sid, nab.load_windows(raw), **LOAD)


@dataclass(frozen=True)
class Error:
    """Rejected: a DataError matching ``pattern`` that names the file, column and row."""

    pattern: str
    column: str | None = None
    row: int | None = None


@dataclass(frozen=True)
class Repair:
    """Accepted, possibly repaired: ``check`` pins the documented rule."""

    rule: str
    check: Callable[[Series], None] = field(repr=False)


def _values(*expected: float) -> Callable[[Series], None]:
    def check(s: Series) -> None:
        np.testing.assert_array_equal(s.values[:, 0], expected)
    return check


def _check_short_nan_run(s: Series) -> None:
    np.testing.assert_array_equal(s.values[:, 0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert s.report["filled_nans"] == 2


def _check_gap(s: Series) -> None:
    assert len(s) == 5 and s.report["gaps"] == 1 and s.report["median_step_s"] == 300.0


def _check_duplicate(s: Series) -> None:
    np.testing.assert_array_equal(s.values[:, 0], [1.0, 2.0, 2.5, 3.0, 4.0])
    assert s.report["duplicates"] == 1 and s.report["backward_steps"] == 0


def _check_backward(s: Series) -> None:
    np.testing.assert_array_equal(s.values[:, 0], [1.0, 2.0, 3.0, 3.5, 4.0])
    assert s.report["backward_steps"] == 1 and s.report["duplicates"] == 0


def _check_irregular(s: Series) -> None:
    assert len(s) == 7  # nothing filled, nothing dropped
    assert s.report["median_step_s"] == 60.0
    assert s.report["irregular_steps"] == 2  # the 2-minute and the 1-day step
    assert s.report["gaps"] == 1  # the 1-day step, > 3 x 1 minute


def _check_utc(s: Series) -> None:
    # +01:00, +02:00 (the DST change) and Z: one UTC clock, 5 minutes apart
    np.testing.assert_array_equal(
        s.timestamps, ts("2014-03-30T00:55", "2014-03-30T01:00", "2014-03-30T01:05"))
    assert s.report["median_step_s"] == 300.0 and s.report["irregular_steps"] == 0


def _check_constant(s: Series) -> None:
    assert (s.values == 5.0).all() and len(s) == 64
    scaler = Scaler.fit(s.values[:40])
    assert scaler.std == (1.0,)  # a constant channel gets scale 1
    scores = score_points(scaler.transform(s.values), WINDOW, reconstruct)
    assert np.isnan(scores[: WINDOW - 1]).all()
    np.testing.assert_array_equal(scores[WINDOW - 1 :], 0.0)


def _check_short_series(s: Series) -> None:
    """Loaded, but shorter than one window: training stops with TrainingError (the train stage
    prefixes the series id: 'bad/short_series: 0 training windows, ... window.length')."""
    from rnnad.models.training import TrainingError, fit
    from rnnad.pipeline.train import training_windows

    assert len(s) == 20 < WINDOW
    split = make_split(len(s), SplitParams(), s.id)
    x = fit_scaler(s.values, s.labels, split).transform(s.values)
    train_w, val_w = training_windows(x, s.labels, split, WINDOW, 1)
    assert len(train_w) == 0 and len(val_w) == 0
    with pytest.raises(TrainingError, match=r"0 training windows.*too short for window.length"):
        fit(None, train_w, val_w, TrainParams())  # type: ignore[arg-type]


def _check_extreme(s: Series) -> None:
    """1e300 and -1e300 are finite: accepted. The score path then either scores finitely or
    raises OverflowError, never a NaN or infinite score."""
    assert np.abs(s.values).max() == 1e300
    assert_finite_scores_or_overflow(s.values, prefix=40, length=WINDOW)


def _check_partly_outside(s: Series) -> None:
    # windows running past either end are clipped to the records they cover
    np.testing.assert_array_equal(s.labels, [1, 1, 0, 0, 1])
    np.testing.assert_array_equal(s.windows, [[0, 1], [4, 4]])


LABELS = re.escape(nab.WINDOWS_FILE)
GAP = "'bad/gap.csv'"

EXPECTED: dict[str, Error | Repair] = {
    "empty.csv": Error(r"empty file"),
    "header_only.csv": Error(r"header only, no data rows"),
    "missing_value_column.csv": Error(r"value column\(s\) \['value'\] not found", "value"),
    "missing_timestamp_column.csv": Error(r"no 'timestamp' column", "timestamp"),
    "misnamed_value_column.csv": Error(r"\['value'\] not found.*did you mean 'Value'", "value"),
    "misnamed_timestamp_column.csv": Error(r"no 'timestamp' column.*did you mean 'Timestamp'",
                                           "timestamp"),
    "duplicate_column.csv": Error(r"column name 'value' appears more than once", "value", 1),
    "extra_field.csv": Error(r"3 fields, but the header has 2", None, 3),
    "non_numeric.csv": Error(r"not a number: 'abc'", "value", 4),
    "infinite.csv": Error(r"infinite value", "value", 3),
    "long_nan_run.csv": Error(r"12 missing value\(s\) inside", "value", 7),
    "nan_at_start.csv": Error(r"missing value\(s\) at the start", "value", 2),
    "nan_at_end.csv": Error(r"missing value\(s\) at the end", "value", 4),
    "bad_timestamp.csv": Error(r"cannot parse timestamp '2014-13-45 00:10:00'", "timestamp", 4),
    "blank_timestamp.csv": Error(r"cannot parse timestamp ''", "timestamp", 3),
    "relative_timestamp.csv": Error(r"cannot parse timestamp 'now' \(no four-digit year",
                                    "timestamp", 3),
    "out_of_range_timestamp.csv": Error(r"'3014-01-01 00:05:00' outside the supported range",
                                        "timestamp", 3),
    "mixed_timezones.csv": Error(r"'2014-01-01 00:05:00' has no UTC offset but row 2 "
                                 r"\('2014-01-01 00:00:00\+02:00'\) has", "timestamp", 3),
    "windows_outside.json": Error(rf"{LABELS}: a window of {GAP} lies outside the series' time "
                                  r"range: window 1 \[2015-01-01 00:00:00, 2015-01-02 00:00:00\]"
                                  r", but .*gap.csv spans 2014-01-01 00:00:00 \.\. "
                                  r"2014-01-01 01:15:00"),
    "windows_in_gap.json": Error(rf"{LABELS}: {GAP}, window 0 \[2014-01-01 00:30:00, "
                                 r"2014-01-01 00:50:00\]: contains no record of .*gap.csv"),
    "windows_reversed.json": Error(rf"{LABELS}: {GAP}, window 0 .*end is before its start"),
    "windows_overlap.json": Error(rf"{LABELS}: windows 1 \[2014-01-01 00:00:00, 2014-01-01 "
                                  r"00:05:00\] and 2 \[2014-01-01 00:05:00, 2014-01-01 00:10:00\]"
                                  rf" of {GAP} overlap \(both contain row 3 of .*gap.csv\)"),
    "short_nan_run.csv": Repair("short NaN runs inside the series are interpolated",
                                _check_short_nan_run),
    "gap.csv": Repair("gaps are reported, not filled", _check_gap),
    "irregular_steps.csv": Repair("irregular steps are reported, not resampled", _check_irregular),
    "duplicate_timestamp.csv": Repair("disorder: keep (file order, reported)", _check_duplicate),
    "backward_timestamp.csv": Repair("disorder: keep (file order, reported)", _check_backward),
    "utc_offsets.csv": Repair("all timestamps with an offset: converted to UTC", _check_utc),
    "constant.csv": Repair("accepted; the normaliser's scale is 1, scores are 0",
                           _check_constant),
    "short_series.csv": Repair("accepted; training raises TrainingError", _check_short_series),
    "extreme_values.csv": Repair("accepted; finite scores or OverflowError", _check_extreme),
    "windows_partly_outside.json": Repair("windows are clipped to the series",
                                          _check_partly_outside),
}

BAD_FILES = sorted(p.name for p in BAD.iterdir() if p.name != "README.md")


@pytest.mark.parametrize("name", BAD_FILES)
def test_every_bad_file_has_an_expectation(name: str, tmp_path: Path) -> None:
    if name not in EXPECTED:
        pytest.fail(f"tests/data/bad/{name} has no expected outcome: add it to EXPECTED in "
                    "tests/test_bad_data.py and a line to tests/data/bad/README.md")
    expected = EXPECTED[name]
    if isinstance(expected, Repair):
        expected.check(load(tmp_path, name))
        return
    with pytest.raises(DataError) as info:
        load(tmp_path, name)
    message = str(info.value)
    named = tmp_path / "raw" / (nab.WINDOWS_FILE if name.endswith(".json")
                                else f"data/bad/{name}")
    assert message.startswith(f"{named}: "), message  # the file, first
    assert re.search(expected.pattern, message), message
    if expected.column is not None:
        assert f"'{expected.column}'" in message, message
    if expected.row is not None:
        assert re.search(rf"\brows? {expected.row}\b", message), message
    assert "Traceback" not in message


def test_expectations_and_readme_cover_the_folder() -> None:
    assert sorted(EXPECTED) == BAD_FILES, "EXPECTED names a file that is not in tests/data/bad"
    readme = (BAD / "README.md").read_text()
    undocumented = [n for n in BAD_FILES if f"`{n}`" not in readme]
    assert not undocumented, f"no line in tests/data/bad/README.md for {undocumented}"


def test_header_is_stripped_but_case_sensitive(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(" timestamp , value \n2020-01-01,1\n2020-01-02,2\n")
    _, values, _ = read_timeseries_csv(path, value_columns=["value"])
    assert values[:, 0].tolist() == [1.0, 2.0]


def test_a_time_without_a_date_does_not_depend_on_today(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("timestamp,value\n12:00,1\n12:05,2\n")
    with pytest.raises(DataError, match=r"x.csv: column 'timestamp', row 2: cannot parse "
                                        r"timestamp '12:00' \(no four-digit year"):
        read_timeseries_csv(path)


def test_one_utc_offset_is_converted_to_utc(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("timestamp,value\n2020-01-01T02:00:00+02:00,1\n2020-01-01T02:05:00+02:00,2\n")
    stamps, _, _ = read_timeseries_csv(path)
    np.testing.assert_array_equal(stamps, ts("2020-01-01T00:00", "2020-01-01T00:05"))
    assert stamps.dtype == np.dtype("datetime64[ns]")


@pytest.mark.parametrize(("rows", "row_4", "row_2", "this", "first"), [
    (("2020-01-01 00:00", "2020-01-02 00:00", "2020-01-03T00:00+01:00"),
     "2020-01-03T00:00\\+01:00", "2020-01-01 00:00", "has", "has no"),
    (("2020-01-01T00:00Z", "2020-01-02T00:00Z", "2020-01-03 00:00"),
     "2020-01-03 00:00", "2020-01-01T00:00Z", "has no", "has"),
])
def test_offsets_on_some_rows_only_name_the_row(tmp_path: Path, rows: tuple[str, ...],
                                               row_4: str, row_2: str, this: str,
                                               first: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text("timestamp,value\n" + "".join(f"{r},{i}\n" for i, r in enumerate(rows)))
    with pytest.raises(DataError, match=rf"row 4: timestamp '{row_4}' {this} UTC offset but "
                                        rf"row 2 \('{row_2}'\) {first}\b"):
        read_timeseries_csv(path)


# ---------------------------------------------------------------- extreme magnitudes


def assert_finite_scores_or_overflow(values: np.ndarray, prefix: int, length: int) -> None:
    """Fit the normaliser on ``values[:prefix]``, score every point: the scores after the first
    ``length - 1`` (NaN) are finite, or score_points raises OverflowError."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow inside the normaliser
        x = Scaler.fit(values[:prefix]).transform(values)
        try:
            scores = score_points(x, length, reconstruct)
        except OverflowError as exc:
            assert "too large" in str(exc)
            return
    assert scores.shape == (len(values),)
    assert np.isnan(scores[: length - 1]).all()
    assert np.isfinite(scores[length - 1 :]).all()


def test_huge_values_after_normal_training_data_overflow_clearly() -> None:
    values = np.concatenate([np.sin(np.arange(60.0)), [1e300, -1e300] * 10])[:, None]
    x = Scaler.fit(values[:60]).transform(values)
    with np.errstate(over="ignore"), pytest.raises(OverflowError, match="too large"):
        score_points(x, 8, reconstruct)
    assert_finite_scores_or_overflow(values, 60, 8)


@pytest.mark.parametrize("magnitude", [1e300, 1.7e308])
def test_extreme_values_throughout(magnitude: float) -> None:
    values = np.array([magnitude, -magnitude] * 30)[:, None]
    assert_finite_scores_or_overflow(values, 40, 8)
    assert_finite_scores_or_overflow(np.full((60, 1), magnitude), 40, 8)


# ---------------------------------------------------------------- property tests

PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_OFFSETS = st.sampled_from(["", "", "", "Z", "+02:00", "-05:30", "+0000", " UTC", "+25:00"])
_FORMATS = st.sampled_from(["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%d/%m/%Y %H:%M",
                            "%H:%M", "%Y-%m-%d %H:%M:%S.%f"])


@st.composite
def timestamp_text(draw: st.DrawFn) -> str:
    from datetime import datetime

    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
    return moment.strftime(draw(_FORMATS)) + draw(_OFFSETS)


_GARBAGE = st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=8)
CELL = st.one_of(
    timestamp_text(),
    st.floats().map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: f"{v:.17g}"),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", " ", "NaN", "nan", "inf", "-inf", "Infinity", "1e400", "-1e400", "null",
                     "NA", "now", "today", "abc", '"1,5"', "1,5", '"', "0x10"]),
    _GARBAGE,
)
NAME = st.one_of(st.sampled_from(["timestamp", "value", "Value", "time", " value ", "",
                                  "timestamp", "value"]), _GARBAGE)


@st.composite
def csv_text(draw: st.DrawFn) -> str:
    header = draw(st.lists(NAME, min_size=1, max_size=4))
    if draw(st.booleans()):  # mostly usable headers, so that the cells get exercised
        header = ["timestamp", "value", *header[2:]]
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        width = len(header) + draw(st.sampled_from([0, 0, 0, 0, 0, 0, 1, -1]))
        rows.append(",".join(draw(CELL) for _ in range(max(width, 0))))
    return "\n".join([",".join(header), *rows]) + draw(st.sampled_from(["\n", "", "\n\n"]))


def _check_loaded(stamps: np.ndarray, values: np.ndarray, report: dict[str, Any],
                  channels: int | None) -> None:
    assert stamps.dtype == np.dtype("datetime64[ns]") and stamps.ndim == 1
    assert not np.isnat(stamps).any()
    assert values.dtype == np.float64 and values.ndim == 2
    assert values.shape[0] == len(stamps) == report["rows"] >= 1
    if channels is not None:
        assert values.shape[1] == channels
    assert np.isfinite(values).all()


@PROPERTY
@given(text=csv_text())
def test_property_any_csv_loads_cleanly_or_raises_data_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        (raw / "data" / "prop").mkdir(parents=True)
        (raw / "labels").mkdir()
        path = raw / "data" / "prop" / "random_input.csv"
        path.write_text(text, encoding="utf-8")
        (raw / nab.WINDOWS_FILE).write_text('{"prop/random_input.csv": []}')
        try:
            series = nab.load_series(raw, "prop/random_input", nab.load_windows(raw), **LOAD)
        except DataError as exc:
            assert str(exc).startswith(f"{path}: "), str(exc)
        else:
            _check_loaded(series.timestamps, series.values, series.report, 1)
            assert series.labels.shape == (len(series),) and not series.labels.any()
        try:
            stamps, values, report = read_timeseries_csv(path)  # every non-timestamp column
        except DataError as exc:
            assert str(exc).startswith(f"{path}: "), str(exc)
        else:
            _check_loaded(stamps, values, report, None)


FINITE = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e6, 1e6),
    st.sampled_from([0.0, 1e300, -1e300, 1.7976931348623157e308, -1.7976931348623157e308,
                     5e-324]),
)


@PROPERTY
@given(data=st.data())
def test_property_finite_series_score_finitely_or_overflow(data: st.DataObject) -> None:
    length = data.draw(st.integers(2, 12), label="window")
    n = data.draw(st.integers(length + 1, length + 30), label="points")
    values = data.draw(st.lists(FINITE, min_size=n, max_size=n), label="values")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "finite.csv"
        stamps = np.datetime64("2020-01-01T00:00") + np.arange(n) * np.timedelta64(5, "m")
        path.write_text("timestamp,value\n" + "".join(
            f"{s},{v!r}\n" for s, v in zip(stamps, values, strict=True)))
        _, loaded, _ = read_timeseries_csv(path, value_columns=["value"])
    np.testing.assert_array_equal(loaded[:, 0], values)  # the loader keeps every finite value
    prefix = data.draw(st.integers(1, n), label="prefix")
    assert_finite_scores_or_overflow(loaded, prefix, length)
