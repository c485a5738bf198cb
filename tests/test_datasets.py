"""Datasets: fetching (mirror, checksums, no network), the CSV loader's errors and repairs, NAB."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnad.datasets import fetch as fetch_mod
from rnnad.datasets import nab
from rnnad.datasets.csvfile import read_timeseries_csv
from rnnad.datasets.fetch import (
    MIRROR_ENV,
    FetchError,
    ManifestEntry,
    fetch_files,
    mirror_root,
    read_manifest,
)
from rnnad.datasets.series import DataError, Series, check_timestamps, fill_missing
from rnnad.datasets.series import labels_from_windows as labels_from_windows_

# ---------------------------------------------------------------- fetch


def _entry(root: Path, rel: str, content: bytes) -> ManifestEntry:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return ManifestEntry(rel, len(content), hashlib.sha256(content).hexdigest())


def _no_url(path: str) -> str:
    raise AssertionError(f"the network was used for {path} although a mirror was given")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def toy_mirror(tmp_path: Path) -> tuple[Path, list[ManifestEntry]]:
    mirror = tmp_path / "mirror"
    entries = [
        _entry(mirror / "toy", "data/a.csv", b"timestamp,value\n"),
        _entry(mirror / "toy", "labels/w.json", b"{}"),
    ]
    return mirror, entries


def test_fetch_from_mirror(tmp_path: Path, toy_mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror, entries = toy_mirror
    dest = tmp_path / "raw"
    out = fetch_files(entries, dest, "toy", _no_url, mirror=mirror)
    assert out == [dest / "data/a.csv", dest / "labels/w.json"]
    assert (dest / "labels/w.json").read_bytes() == b"{}"
    assert _files(dest) == sorted(out)  # no temporary file left behind

    # verified files are kept, not copied again
    copied = []
    monkeypatch.setattr(fetch_mod.shutil, "copyfile", lambda *a: copied.append(a))
    assert fetch_files(entries, dest, "toy", _no_url, mirror=mirror) == out
    assert copied == []


def test_fetch_uses_the_mirror_env(tmp_path: Path, toy_mirror,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    mirror, entries = toy_mirror
    monkeypatch.setenv(MIRROR_ENV, f"  {mirror}  ")
    assert mirror_root() == mirror
    dest = tmp_path / "raw"
    fetch_files(entries, dest, "toy", _no_url)
    assert (dest / "data/a.csv").read_bytes() == b"timestamp,value\n"
    monkeypatch.setenv(MIRROR_ENV, "")
    assert mirror_root() is None


def test_fetch_replaces_a_corrupted_local_file(tmp_path: Path, toy_mirror) -> None:
    mirror, entries = toy_mirror
    dest = tmp_path / "raw"
    (dest / "labels").mkdir(parents=True)
    (dest / "labels/w.json").write_bytes(b"corrupted")
    fetch_files(entries, dest, "toy", _no_url, mirror=mirror)
    assert (dest / "labels/w.json").read_bytes() == b"{}"


def test_checksum_mismatch_leaves_no_file(tmp_path: Path, toy_mirror) -> None:
    mirror, entries = toy_mirror
    (mirror / "toy/labels/w.json").write_bytes(b'{"tampered": 1}')
    dest = tmp_path / "raw"
    with pytest.raises(FetchError, match=r"checksum mismatch for labels/w.json") as info:
        fetch_files(entries, dest, "toy", _no_url, mirror=mirror)
    assert entries[1].sha256 in str(info.value)
    assert "nothing was written" in str(info.value)
    assert not (dest / "labels/w.json").exists()
    # the first (good) file is there; nothing else, no temporary file
    assert _files(dest) == [dest / "data/a.csv"]


def test_mirror_without_the_dataset_folder(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    with pytest.raises(FetchError, match=r"has no 'toy/' folder.*RNNAD_DATA_MIRROR"):
        fetch_files([ManifestEntry("a", 1, "0" * 64)], tmp_path / "raw", "toy", _no_url,
                    mirror=tmp_path)


def test_file_missing_from_the_mirror(tmp_path: Path, toy_mirror) -> None:
    mirror, entries = toy_mirror
    (mirror / "toy/data/a.csv").unlink()
    with pytest.raises(FetchError, match=r"a.csv: missing from the mirror"):
        fetch_files(entries, tmp_path / "raw", "toy", _no_url, mirror=mirror)
    assert _files(tmp_path / "raw") == []


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network_and_no_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    port = _closed_port()
    entries = [ManifestEntry("data/a.csv", 3, "0" * 64)]
    dest = tmp_path / "raw"
    with pytest.raises(FetchError) as info:
        fetch_files(entries, dest, "toy", lambda p: f"http://127.0.0.1:{port}/{p}",
                    retries=1, timeout_s=5)
    message = str(info.value)
    assert f"http://127.0.0.1:{port}/data/a.csv" in message
    assert "after 1 attempts" in message
    assert f"export {MIRROR_ENV}=../shared/datasets" in message
    assert _files(dest) == []


def test_download_is_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Downloaded bytes go through the same checksum check (network stubbed)."""
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    good = b"1,2,3\n"
    entries = [ManifestEntry("x.csv", len(good), hashlib.sha256(good).hexdigest())]

    def fake_download(url: str, dest: Path, timeout_s: float) -> None:
        dest.write_bytes(payload)

    monkeypatch.setattr(fetch_mod, "_download", fake_download)
    payload = b"evil\n"
    with pytest.raises(FetchError, match="checksum mismatch"):
        fetch_files(entries, tmp_path / "a", "toy", lambda p: f"https://example.invalid/{p}")
    assert _files(tmp_path / "a") == []
    payload = good
    fetch_files(entries, tmp_path / "a", "toy", lambda p: f"https://example.invalid/{p}")
    assert (tmp_path / "a/x.csv").read_bytes() == good


class _FlakyHandler:
    """Build a loopback HTTP handler that serves ``body``; the first ``cut`` requests announce
    the full length but send only half the bytes and close (an interrupted transfer)."""

    @staticmethod
    def make(body: bytes, cut: int, served: list[int]) -> type:
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.append(1)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if len(served) <= cut:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.mark.parametrize(("cut", "retries", "ok"), [(1, 3, True), (2, 3, True), (3, 3, False)])
def test_interrupted_download_is_retried_and_leaves_no_partial_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: int, retries: int, ok: bool) -> None:
    import http.server
    import threading

    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setattr(fetch_mod.time, "sleep", lambda s: None)
    body = b"timestamp,value\n" + b"2014-01-01 00:00:00,1.0\n" * 2000
    served: list[int] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             _FlakyHandler.make(body, cut, served))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        entries = [ManifestEntry("data/a.csv", len(body), hashlib.sha256(body).hexdigest())]
        dest = tmp_path / "raw"
        if ok:
            fetch_files(entries, dest, "toy", lambda p: f"{url}/{p}", retries=retries,
                        timeout_s=5)
            assert (dest / "data/a.csv").read_bytes() == body
            assert len(served) == cut + 1
        else:
            with pytest.raises(FetchError, match=r"could not download .* after 3 attempts"):
                fetch_files(entries, dest, "toy", lambda p: f"{url}/{p}", retries=retries,
                            timeout_s=5)
            assert _files(dest) == []  # no partial file, no temporary left
            assert len(served) == 3
    finally:
        server.shutdown()
        server.server_close()


def test_corrupted_transfer_is_retried_but_a_changed_upstream_file_stops(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setattr(fetch_mod.time, "sleep", lambda s: None)
    good = b"1,2,3\n"
    entries = [ManifestEntry("x.csv", len(good), hashlib.sha256(good).hexdigest())]
    payloads: list[bytes] = []

    def fake_download(url: str, dest: Path, timeout_s: float) -> None:
        dest.write_bytes(payloads.pop(0))

    monkeypatch.setattr(fetch_mod, "_download", fake_download)
    payloads[:] = [b"1,2,\x00\n", good]  # one corrupted transfer, then the right bytes
    fetch_files(entries, tmp_path / "a", "toy", lambda p: f"https://example.invalid/{p}")
    assert (tmp_path / "a/x.csv").read_bytes() == good and payloads == []

    payloads[:] = [b"new upstream\n", b"new upstream\n", good]  # the same wrong bytes twice
    with pytest.raises(FetchError, match=r"checksum mismatch .* upstream file changed") as info:
        fetch_files(entries, tmp_path / "b", "toy", lambda p: f"https://example.invalid/{p}")
    assert "in 2 attempts" in str(info.value) and "manifest" in str(info.value)
    assert payloads == [good]  # stopped without a third attempt
    assert _files(tmp_path / "b") == []


@pytest.mark.parametrize(
    "bad_line",
    [
        "data/a.csv\t12",  # two fields
        "data/a.csv\t12\t" + "a" * 63,  # short digest
        "data/a.csv\ttwelve\t" + "a" * 64,  # size not a number
        "data/a.csv\t12\t" + "z" * 64,  # digest not hex
        "data/a.csv\t12\t" + "a" * 64 + "\textra",
    ],
)
def test_manifest_errors(tmp_path: Path, bad_line: str) -> None:
    path = tmp_path / "m.tsv"
    path.write_text("path\tsize_bytes\tsha256\nok.csv\t1\t" + "b" * 64 + "\n" + bad_line + "\n")
    with pytest.raises(FetchError, match=r"m.tsv:3: expected 'path<TAB>size<TAB>sha256'"):
        read_manifest(path)


def test_manifest_parsing(tmp_path: Path) -> None:
    path = tmp_path / "m.tsv"
    path.write_text("path\tsize_bytes\tsha256\n\na/b.csv\t10\t" + "AB" * 32 + "\n")
    assert read_manifest(path) == [ManifestEntry("a/b.csv", 10, "ab" * 32)]
    path.write_text("path\tsize_bytes\tsha256\n")
    with pytest.raises(FetchError, match="lists no files"):
        read_manifest(path)


def test_packaged_nab_manifest() -> None:
    entries = read_manifest(nab.manifest_path())
    paths = [e.path for e in entries]
    assert sum(p.startswith("data/") and p.endswith(".csv") for p in paths) == 58
    assert nab.WINDOWS_FILE in paths
    assert len(set(paths)) == len(paths)


def test_nab_fetch_from_the_shared_mirror(tmp_path: Path, mirror: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    dest = tmp_path / "nab"
    files = nab.fetch(dest, "ea702d75cc2258d9d7dd35ca8e5e2539d71f3140", retries=1)
    entries = read_manifest(nab.manifest_path())
    assert files == [dest / e.path for e in entries]
    assert all(p.stat().st_size == e.size for p, e in zip(files, entries, strict=True))
    assert _files(dest) == sorted(files)
    assert len(nab.available_series(dest)) == 58


# ---------------------------------------------------------------- CSV loader: errors


def _read(path: Path, **kwargs):
    return read_timeseries_csv(path, value_columns=["value"], **kwargs)


@pytest.mark.parametrize(
    ("name", "kwargs", "pattern"),
    [
        ("empty.csv", {}, r"empty file"),
        ("header_only.csv", {}, r"header only, no data rows"),
        ("missing_value_column.csv", {},
         r"value column\(s\) \['value'\] not found \(columns: timestamp, reading\)"),
        ("missing_timestamp_column.csv", {}, r"no 'timestamp' column \(columns: time, value\)"),
        ("non_numeric.csv", {}, r"column 'value', row 4: not a number: 'abc'"),
        ("infinite.csv", {}, r"column 'value', row 3: infinite value"),
        ("long_nan_run.csv", {}, r"column 'value', rows 7-18: 12 missing value\(s\) inside"),
        ("nan_at_start.csv", {}, r"column 'value', rows 2-3: 2 missing value\(s\) at the start"),
        ("nan_at_end.csv", {}, r"column 'value', rows 4-4: 1 missing value\(s\) at the end"),
        ("bad_timestamp.csv", {},
         r"column 'timestamp', row 4: cannot parse timestamp '2014-13-45 00:10:00'"),
        ("blank_timestamp.csv", {}, r"column 'timestamp', row 3: cannot parse timestamp ''"),
        ("duplicate_timestamp.csv", {"disorder": "error"},
         r"column 'timestamp', row 4: timestamp is duplicated"),
        ("backward_timestamp.csv", {"disorder": "error"},
         r"column 'timestamp', row 5: timestamp is earlier than the previous one"),
        ("long_nan_run.csv", {"max_nan_run": 11}, r"rows 7-18.*at most 11"),
        ("short_nan_run.csv", {"max_nan_run": 0}, r"rows 4-5: 2 missing value\(s\) inside"),
    ],
)
def test_csv_errors_name_file_column_and_row(bad_data: Path, name: str, kwargs: dict,
                                             pattern: str) -> None:
    path = bad_data / name
    with pytest.raises(DataError, match=pattern) as info:
        _read(path, **kwargs)
    assert str(info.value).startswith(f"{path}: ")


def test_csv_inf_written_differently(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("timestamp,value\n2014-01-01,1\n2014-01-02,-Infinity\n2014-01-03,1e400\n")
    with pytest.raises(DataError, match=r"x.csv: column 'value', row 3: infinite value"):
        _read(path)


# ---------------------------------------------------------------- CSV loader: repairs


def test_short_nan_run_is_interpolated(bad_data: Path) -> None:
    ts, values, report = _read(bad_data / "short_nan_run.csv")
    # 2.0, <empty>, nan, 5.0 -> linear interpolation gives 3.0 and 4.0
    np.testing.assert_array_equal(values[:, 0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert values.dtype == np.float64 and values.shape == (6, 1)
    assert report["filled_nans"] == 2
    assert report["rows"] == 6
    assert ts.dtype == np.dtype("datetime64[ns]")
    assert ts[2] == np.datetime64("2014-01-01T00:10:00")


def test_long_run_is_interpolated_when_allowed(bad_data: Path) -> None:
    _, values, report = _read(bad_data / "long_nan_run.csv", max_nan_run=12)
    np.testing.assert_allclose(values[:, 0], np.arange(20.0))  # the series is a ramp
    assert report["filled_nans"] == 12


@pytest.mark.parametrize(
    ("name", "duplicates", "backward", "values"),
    [
        ("duplicate_timestamp.csv", 1, 0, [1.0, 2.0, 2.5, 3.0, 4.0]),
        ("backward_timestamp.csv", 0, 1, [1.0, 2.0, 3.0, 3.5, 4.0]),
    ],
)
def test_disorder_keep_keeps_file_order_and_reports(bad_data: Path, name: str, duplicates: int,
                                                    backward: int, values: list) -> None:
    ts, got, report = _read(bad_data / name, disorder="keep")
    np.testing.assert_array_equal(got[:, 0], values)  # file order, nothing dropped
    assert len(ts) == 5
    assert report["duplicates"] == duplicates
    assert report["backward_steps"] == backward


def test_gaps_are_reported_not_filled(bad_data: Path) -> None:
    _, values, report = _read(bad_data / "gap.csv")
    assert len(values) == 5  # no rows invented
    assert report["median_step_s"] == 300.0
    assert report["gaps"] == 1  # the 60-minute step, > 3 x 5 minutes
    assert report["irregular_steps"] == 1
    assert _read(bad_data / "gap.csv", gap_factor=20.0)[2]["gaps"] == 0


def test_default_value_columns_and_multichannel(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text("a, timestamp ,b\n1, 2020-01-01 00:00:00 ,2\n3,2020-01-01 00:01:00,4\n")
    _, values, _ = read_timeseries_csv(path)
    np.testing.assert_array_equal(values, [[1.0, 2.0], [3.0, 4.0]])
    _, only_b, _ = read_timeseries_csv(path, value_columns=["b"])
    np.testing.assert_array_equal(only_b, [[2.0], [4.0]])


def test_report_keys_do_not_depend_on_length() -> None:
    one = check_timestamps(np.array(["2020-01-01"], dtype="datetime64[ns]"), "f", "t", "keep", 3)
    two = check_timestamps(np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[ns]"),
                           "f", "t", "keep", 3)
    assert set(one) == set(two)


def test_fill_missing_directly() -> None:
    values, n = fill_missing(np.array([0.0, np.nan, np.nan, np.nan, 8.0]), 3, "src", "c")
    np.testing.assert_array_equal(values, [0, 2, 4, 6, 8])
    assert n == 3
    unchanged, n = fill_missing(np.array([1.0, 2.0]), 0, "src", "c")
    assert n == 0 and unchanged.tolist() == [1.0, 2.0]
    with pytest.raises(DataError, match="src: column 'c': no numeric value at all"):
        fill_missing(np.array([np.nan, np.nan]), 5, "src", "c")


# ---------------------------------------------------------------- Series


def test_series_save_load_round_trip(tmp_path: Path) -> None:
    ts = np.array(["2020-01-01T00:00", "2020-01-01T00:05", "2020-01-01T00:10"],
                  dtype="datetime64[ns]")
    s = Series("cat/x", ts, np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.5]]),
               np.array([0, 1, 0], dtype=np.int8), np.array([[1, 1]]))
    s.save(tmp_path / "x.npz")
    back = Series.load(tmp_path / "x.npz")
    assert back.id == "cat/x" and len(back) == 3 and back.channels == 2
    np.testing.assert_array_equal(back.timestamps, ts)
    np.testing.assert_array_equal(back.values, s.values)
    np.testing.assert_array_equal(back.labels, s.labels)
    np.testing.assert_array_equal(back.windows, [[1, 1]])
    assert back.labels.dtype == np.int8 and back.windows.dtype == np.int64


def test_series_shape_check() -> None:
    ts = np.zeros(3, dtype="datetime64[ns]")
    with pytest.raises(DataError, match="cat/x: inconsistent shapes"):
        Series("cat/x", ts, np.zeros(3), np.zeros(3, dtype=np.int8), np.zeros((0, 2)))
    with pytest.raises(DataError, match="inconsistent shapes"):
        Series("cat/x", ts, np.zeros((3, 1)), np.zeros(2, dtype=np.int8), np.zeros((0, 2)))


# ---------------------------------------------------------------- NAB


def test_labels_from_windows_inclusive_borders() -> None:
    ts = np.arange("2020-01-01T00", "2020-01-01T10", dtype="datetime64[h]").astype(
        "datetime64[ns]")  # hourly points 0..9
    labels, ranges = labels_from_windows_(
        ts,
        [
            ("2020-01-01 02:00:00.000000", "2020-01-01 04:00:00.000000"),  # exactly on points
            ("2020-01-01 05:30:00", "2020-01-01 06:30:00"),  # between points: only 6
            ("2020-01-01 09:00:00", "2020-01-02 00:00:00"),  # runs past the end: only 9
            ("2019-12-31 00:00:00", "2019-12-31 23:00:00"),  # before the series: no point
        ],
    )
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 1, 0, 1, 0, 0, 1])
    assert labels.dtype == np.int8
    np.testing.assert_array_equal(ranges, [[2, 4], [6, 6], [9, 9]])
    empty_labels, empty_ranges = labels_from_windows_(ts, [])
    assert not empty_labels.any() and empty_ranges.shape == (0, 2)


AVAILABLE = ["a/x", "a/y", "b/x", "b/z", "c/w"]


def test_select_series_on_a_known_list() -> None:
    assert nab.select_series(AVAILABLE, "all") == AVAILABLE
    assert nab.select_series(AVAILABLE, "a") == ["a/x", "a/y"]
    assert nab.select_series(AVAILABLE, "b/z") == ["b/z"]
    assert nab.select_series(AVAILABLE, "z") == ["b/z"]  # a bare name, unique
    assert nab.select_series(AVAILABLE, "z.csv") == ["b/z"]
    assert nab.select_series(AVAILABLE, ["c/w", "a", "a/x", "w"]) == ["c/w", "a/x", "a/y"]
    with pytest.raises(DataError, match=r"unknown series or category 'x'"):
        nab.select_series(AVAILABLE, "x")  # ambiguous bare name
    with pytest.raises(DataError, match=r"unknown series or category 'nope'.*categories: a, b, c"):
        nab.select_series(AVAILABLE, ["a", "nope"])
    with pytest.raises(DataError, match="empty selection"):
        nab.select_series(AVAILABLE, [])


def test_select_series_on_nab(nab_raw: Path) -> None:
    available = nab.available_series(nab_raw)
    assert len(available) == 58
    assert len(nab.select_series(available, "all")) == 58
    known_cause = nab.select_series(available, "realKnownCause")
    assert len(known_cause) == 7
    assert all(s.startswith("realKnownCause/") for s in known_cause)
    assert nab.select_series(available, "realKnownCause/nyc_taxi") == ["realKnownCause/nyc_taxi"]
    assert nab.select_series(available, "nyc_taxi") == ["realKnownCause/nyc_taxi"]
    chosen = nab.select_series(available, ["realTraffic/speed_7578", "realAdExchange",
                                           "nyc_taxi"])
    assert chosen[0] == "realTraffic/speed_7578" and chosen[-1] == "realKnownCause/nyc_taxi"
    assert len(chosen) == 1 + 6 + 1
    with pytest.raises(DataError, match="unknown series or category 'realKnownCause/nope'"):
        nab.select_series(available, "realKnownCause/nope")


def test_load_nyc_taxi(nab_raw: Path, tmp_path: Path) -> None:
    windows = nab.load_windows(nab_raw)
    series = nab.load_series(nab_raw, "realKnownCause/nyc_taxi", windows, max_nan_run=10,
                             disorder="error", gap_factor=3.0)
    assert series.id == "realKnownCause/nyc_taxi"
    assert len(series) == 10320
    assert series.values.shape == (10320, 1)
    # independent check against the CSV and the label JSON, with pandas
    frame = pd.read_csv(nab_raw / "data/realKnownCause/nyc_taxi.csv")
    np.testing.assert_array_equal(series.values[:, 0], frame["value"].to_numpy(float))
    stamps = pd.to_datetime(frame["timestamp"])
    expected = np.zeros(len(frame), dtype=bool)
    json_windows = json.loads((nab_raw / nab.WINDOWS_FILE).read_text())[
        "realKnownCause/nyc_taxi.csv"]
    assert len(json_windows) == 5
    for k, (start, end) in enumerate(json_windows):
        inside = ((stamps >= pd.Timestamp(start)) & (stamps <= pd.Timestamp(end))).to_numpy()
        expected |= inside
        first, last = series.windows[k]
        np.testing.assert_array_equal(np.flatnonzero(inside), np.arange(first, last + 1))
        # NAB's window borders are existing timestamps, and both are labelled
        assert series.timestamps[first] == np.datetime64(pd.Timestamp(start))
        assert series.timestamps[last] == np.datetime64(pd.Timestamp(end))
    np.testing.assert_array_equal(series.labels.astype(bool), expected)
    assert series.report["windows"] == 5
    assert series.report["labelled_points"] == int(expected.sum()) > 0
    assert series.report["median_step_s"] == 1800.0  # half-hourly
    assert series.report["filled_nans"] == 0

    series.save(tmp_path / "nyc.npz")
    back = Series.load(tmp_path / "nyc.npz")
    np.testing.assert_array_equal(back.labels, series.labels)
    np.testing.assert_array_equal(back.windows, series.windows)


def test_load_series_without_windows(nab_raw: Path) -> None:
    windows = nab.load_windows(nab_raw)
    series = nab.load_series(nab_raw, "artificialNoAnomaly/art_flatline", windows,
                             max_nan_run=10, disorder="keep", gap_factor=3.0)
    assert series.labels.sum() == 0 and series.windows.shape == (0, 2)


def _toy_raw(tmp_path: Path, windows: object) -> Path:
    raw = tmp_path / "raw"
    (raw / "data/cat").mkdir(parents=True)
    (raw / "labels").mkdir()
    rows = "\n".join(f"2020-01-01 0{h}:00:00,{h}" for h in range(6))
    (raw / "data/cat/s.csv").write_text("timestamp,value\n" + rows + "\n")
    (raw / nab.WINDOWS_FILE).write_text(json.dumps(windows))
    return raw


def test_toy_nab_layout(tmp_path: Path) -> None:
    raw = _toy_raw(tmp_path, {"cat/s.csv": [["2020-01-01 01:00:00", "2020-01-01 02:00:00"]]})
    assert nab.available_series(raw) == ["cat/s"]
    s = nab.load_series(raw, "cat/s", nab.load_windows(raw), max_nan_run=1, disorder="keep",
                        gap_factor=3.0)
    np.testing.assert_array_equal(s.labels, [0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(s.windows, [[1, 2]])


def test_window_outside_the_series_is_an_error(tmp_path: Path) -> None:
    raw = _toy_raw(tmp_path, {"cat/s.csv": [["2021-01-01 00:00:00", "2021-01-02 00:00:00"]]})
    with pytest.raises(DataError, match=r"combined_windows.json: a window of 'cat/s.csv' lies "
                                        r"outside"):
        nab.load_series(raw, "cat/s", nab.load_windows(raw), max_nan_run=1, disorder="keep",
                        gap_factor=3.0)


def test_missing_label_entry_is_an_error(tmp_path: Path) -> None:
    raw = _toy_raw(tmp_path, {"cat/other.csv": []})
    with pytest.raises(DataError, match=r"no entry for 'cat/s.csv'"):
        nab.load_series(raw, "cat/s", nab.load_windows(raw), max_nan_run=1, disorder="keep",
                        gap_factor=3.0)


def test_bad_label_file(tmp_path: Path) -> None:
    raw = _toy_raw(tmp_path, ["not", "a", "mapping"])
    with pytest.raises(DataError, match="expected an object mapping"):
        nab.load_windows(raw)
    (raw / nab.WINDOWS_FILE).write_text("{broken")
    with pytest.raises(DataError, match="cannot read label windows"):
        nab.load_windows(raw)
    (raw / nab.WINDOWS_FILE).unlink()
    with pytest.raises(DataError, match="cannot read label windows"):
        nab.load_windows(raw)
