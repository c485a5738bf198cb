"""NASA SMAP/MSL: fetching (mirror and upstream layouts), the label file's quirks, Series rules."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from rnnad.datasets import fetch as fetch_mod
from rnnad.datasets import smap_msl as sm
from rnnad.datasets.fetch import MIRROR_ENV, FetchError, read_manifest
from rnnad.datasets.series import DataError
from rnnad.io import sha256_file

# From shared/datasets/smap_msl/SOURCE.md: 82 channels with arrays, 81 labelled (P-2 has two
# label rows, T-10 has none).
SMAP_LABELLED, MSL_LABELLED = 54, 27


@pytest.fixture(scope="module")
def smap_mirror(mirror: Path) -> Path:
    if not (mirror / sm.FOLDER / sm.LABELS_FILE).is_file():
        pytest.skip(f"SMAP/MSL not found in the mirror {mirror}")
    return mirror


@pytest.fixture(scope="module")
def fetched(smap_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    dest = tmp_path_factory.mktemp("raw") / sm.FOLDER
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MIRROR_ENV, str(smap_mirror))
        paths = sm.fetch(dest)
    return dest, paths


@pytest.fixture(scope="module")
def raw(fetched: tuple[Path, list]) -> Path:
    return fetched[0]


def label_rows(raw: Path) -> list[dict[str, str]]:
    with open(raw / sm.LABELS_FILE, newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------------------------
# the real data, fetched from the mirror


def test_fetch_from_mirror(fetched: tuple[Path, list], smap_mirror: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    dest, paths = fetched
    entries = read_manifest(sm.manifest_path())
    assert len(entries) == 165 and len(paths) == 165
    assert paths == [dest / e.path for e in entries]
    for entry, path in zip(entries, paths, strict=True):
        assert sha256_file(path) == entry.sha256, path
    assert sum(1 for p in paths if p.name.endswith(".npy.gz")) == 164
    # a second fetch keeps every file as it is
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    monkeypatch.setenv(MIRROR_ENV, str(smap_mirror))
    assert sm.fetch(dest) == paths
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps


def test_available_series(raw: Path, caplog: pytest.LogCaptureFixture) -> None:
    smap = sm.available_series(raw, "SMAP")
    with caplog.at_level(logging.WARNING, logger="rnnad"):
        msl = sm.available_series(raw, "MSL")
    assert len(smap) == SMAP_LABELLED and len(msl) == MSL_LABELLED
    assert smap == sorted(smap) and msl == sorted(msl)
    assert all(s.startswith("SMAP/") for s in smap) and all(s.startswith("MSL/") for s in msl)
    assert "SMAP/P-1" in smap and "SMAP/P-2" in smap and "MSL/M-6" in msl
    assert "MSL/T-10" not in msl and "SMAP/T-10" not in smap
    assert sm.unlabelled_channels(raw) == ["T-10"]
    assert "T-10" in caplog.text
    assert sm.spacecraft_of("SMAP/P-1") == "SMAP" and sm.spacecraft_of("MSL/M-6") == "MSL"
    with pytest.raises(DataError, match="spacecraft"):
        sm.available_series(raw, "Voyager")


@pytest.mark.parametrize(("series_id", "columns"), [("SMAP/P-1", 25), ("MSL/C-1", 55)])
def test_load_channel(raw: Path, series_id: str, columns: int) -> None:
    chan = series_id.split("/")[1]
    (row,) = [r for r in label_rows(raw) if r["chan_id"] == chan]
    seqs = json.loads(row["anomaly_sequences"])
    n_test = int(row["num_values"])
    s = sm.load_series(raw, series_id)
    n_train = s.learn_end
    assert n_train is not None and n_train > 0
    assert s.id == series_id
    assert s.values.shape == (n_train + n_test, columns) and s.values.dtype == np.float64
    assert s.channel_names[0] == "telemetry" and s.channel_names[1] == "cmd1"
    assert len(s.channel_names) == columns
    assert s.targets == (0,)
    assert s.segments.tolist() == [0, n_train]
    assert s.labels.dtype == np.int8 and s.timestamps.dtype == np.dtype("datetime64[ns]")
    assert s.timestamps[0] == np.datetime64("2000-01-01T00:00", "ns")
    assert (np.diff(s.timestamps) == np.timedelta64(1, "m")).all()
    assert len(s.windows) == len(seqs)
    expected = sorted([n_train + a, n_train + b] for a, b in seqs)
    assert s.windows.tolist() == expected
    assert int(s.labels.sum()) == sum(b - a + 1 for a, b in seqs)
    assert s.labels[:n_train].sum() == 0
    assert s.report == {"train_points": n_train, "test_points": n_test,
                        "windows": len(seqs), "labelled_points": int(s.labels.sum()),
                        "spacecraft": series_id.split("/")[0]}
    with gzip.open(raw / "train" / f"{chan}.npy.gz") as fh:
        np.testing.assert_array_equal(s.values[:n_train], np.load(fh))


def test_duplicated_label_row_is_merged(raw: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [r for r in label_rows(raw) if r["chan_id"] == "P-2"]
    assert [json.loads(r["anomaly_sequences"]) for r in rows] == [[[5350, 6575]],
                                                                   [[5300, 6420]]]
    with caplog.at_level(logging.INFO, logger="rnnad"):
        s = sm.load_series(raw, "SMAP/P-2")
    assert "P-2" in caplog.text and "merged" in caplog.text
    n = s.learn_end
    assert n is not None
    assert s.windows.tolist() == [[n + 5300, n + 6575]]  # union of the two rows
    assert s.report["labelled_points"] == 6575 - 5300 + 1


def test_unlabelled_real_channel(raw: Path) -> None:
    with pytest.raises(DataError, match=r"T-10.*no labels"):
        sm.load_series(raw, "MSL/T-10")


def test_corrupted_mirror_file(smap_mirror: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    src = smap_mirror / sm.FOLDER
    bad_mirror = tmp_path / "mirror"
    folder = bad_mirror / sm.FOLDER
    for entry in read_manifest(sm.manifest_path()):
        target = folder / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(src / entry.path)
    broken = folder / "test" / "A-1.npy.gz"
    broken.unlink()
    data = bytearray((src / "test" / "A-1.npy.gz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    monkeypatch.setenv(MIRROR_ENV, str(bad_mirror))
    dest = tmp_path / "raw"
    with pytest.raises(FetchError, match=r"test/A-1\.npy\.gz"):
        sm.fetch(dest)
    assert not (dest / "test" / "A-1.npy.gz").exists()
    assert not list(dest.rglob("*.tmp"))


# --------------------------------------------------------------------------------------------
# the upstream layout: plain .npy downloads, verified after gunzip, stored gzip'd


def test_upstream_urls() -> None:
    assert sm.upstream_url("labeled_anomalies.csv").startswith(
        "https://raw.githubusercontent.com/khundman/telemanom/")
    assert sm.upstream_url("train/A-1.npy.gz") == (
        "https://raw.githubusercontent.com/airMeng/mask-time-series-modeling/"
        f"{sm.ARRAYS_COMMIT}/data/train/A-1.npy")


def test_fetch_without_mirror_goes_upstream(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setattr(sm, "_fetch_upstream", lambda dest, entries, plain, **kw: calls.append(
        (dest, len(entries), len(plain))) or [])
    sm.fetch(tmp_path)
    assert calls == [(tmp_path, 165, 164)]


def fake_upstream(mirror: Path, urls: list[str], corrupt: str | None = None):
    """A stand-in for the HTTP download: serves the mirror's files as upstream has them."""

    def download(url: str, dest: Path, timeout_s: float) -> None:
        urls.append(url)
        if url == sm.LABELS_URL:
            data = (mirror / sm.FOLDER / sm.LABELS_FILE).read_bytes()
        else:
            path = url.split("/data/", 1)[1]
            with gzip.open(mirror / sm.FOLDER / f"{path}.gz") as fh:
                data = fh.read()
            if path == corrupt:
                data = data[:-1] + b"\x01"
        Path(dest).write_bytes(data)

    return download


def test_fetch_upstream_layout(smap_mirror: Path, raw: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    urls: list[str] = []
    monkeypatch.setattr(fetch_mod, "_download", fake_upstream(smap_mirror, urls))
    wanted = {sm.LABELS_FILE, "train/A-1.npy.gz", "test/A-1.npy.gz"}
    entries = [e for e in read_manifest(sm.manifest_path()) if e.path in wanted]
    plain = read_manifest(sm.decompressed_manifest_path())
    dest = tmp_path / "raw"
    paths = sm._fetch_upstream(dest, entries, plain, retries=1, timeout_s=1.0)
    assert paths == [dest / e.path for e in entries]
    assert len(urls) == 3 and all(u.startswith("https://raw.githubusercontent.com/") for u in urls)
    assert not (dest / sm.STAGING).exists()
    sha = {e.path: e.sha256 for e in plain}
    for part in ("train", "test"):
        with gzip.open(dest / part / "A-1.npy.gz") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == sha[f"{part}/A-1.npy"]
    a = sm.load_series(dest, "SMAP/A-1")
    b = sm.load_series(raw, "SMAP/A-1")
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.labels, b.labels)
    # files already in place (checked after gunzip) are not downloaded again
    sm._fetch_upstream(dest, entries, plain, retries=1, timeout_s=1.0)
    assert len(urls) == 3


def test_fetch_upstream_checksum_mismatch(smap_mirror: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setattr(fetch_mod, "_download",
                        fake_upstream(smap_mirror, [], corrupt="test/A-1.npy"))
    entries = [e for e in read_manifest(sm.manifest_path()) if e.path == "test/A-1.npy.gz"]
    dest = tmp_path / "raw"
    with pytest.raises(FetchError, match=r"checksum mismatch for test/A-1\.npy"):
        sm._fetch_upstream(dest, entries, read_manifest(sm.decompressed_manifest_path()),
                           retries=1, timeout_s=1.0)
    assert not (dest / "test" / "A-1.npy.gz").exists()
    assert not [p for p in dest.rglob("*") if p.is_file()]
    assert not (dest / sm.STAGING).exists()


# --------------------------------------------------------------------------------------------
# synthetic files: the rules and every error message


def write_array(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as fh:
        np.save(fh, arr)


def make_raw(root: Path, channels: dict[str, tuple[int, int, int]],
             rows: list[tuple[str, str, str, int]]) -> Path:
    """``channels``: name -> (train length, test length, columns); ``rows`` of the label file:
    (chan, spacecraft, anomaly_sequences, num_values)."""
    rng = np.random.default_rng(0)
    for chan, (n_train, n_test, cols) in channels.items():
        for part, n in (("train", n_train), ("test", n_test)):
            arr = np.zeros((n, cols))
            arr[:, 0] = rng.uniform(-1, 1, n)
            arr[np.arange(n), 1 + np.arange(n) % (cols - 1)] = 1.0
            write_array(root / part / f"{chan}.npy.gz", arr)
    with open(root / sm.LABELS_FILE, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(sm.LABEL_COLUMNS)
        for chan, sc, seqs, num in rows:
            cls = "[" + ", ".join(["point"] * len(json.loads(seqs))) + "]"
            writer.writerow([chan, sc, seqs, cls, num])
    return root


def test_synthetic_channel(tmp_path: Path) -> None:
    raw = make_raw(tmp_path, {"X-1": (10, 20, 25), "Y-1": (5, 8, 55)},
                   [("X-1", "SMAP", "[[10, 12], [2, 4], [4, 6]]", 20),
                    ("Y-1", "MSL", "[[0, 7]]", 8)])
    assert sm.available_series(raw, "SMAP") == ["SMAP/X-1"]
    assert sm.available_series(raw, "MSL") == ["MSL/Y-1"]
    s = sm.load_series(raw, "SMAP/X-1")
    assert s.values.shape == (30, 25) and s.learn_end == 10
    assert s.windows.tolist() == [[12, 16], [20, 22]]  # overlapping sequences merged
    assert s.report == {"train_points": 10, "test_points": 20, "windows": 2,
                        "labelled_points": 8, "spacecraft": "SMAP"}
    y = sm.load_series(raw, "MSL/Y-1")
    assert y.windows.tolist() == [[5, 12]] and y.channels == 55


def test_synthetic_duplicate_rows(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "same", {"X-1": (10, 20, 25)},
                   [("X-1", "SMAP", "[[2, 4]]", 20), ("X-1", "SMAP", "[[2, 4]]", 20)])
    assert sm.available_series(raw, "SMAP") == ["SMAP/X-1"]
    assert sm.load_series(raw, "SMAP/X-1").windows.tolist() == [[12, 14]]
    raw = make_raw(tmp_path / "differ", {"X-1": (10, 20, 25)},
                   [("X-1", "SMAP", "[[2, 4]]", 20), ("X-1", "SMAP", "[[2, 4]]", 19)])
    with pytest.raises(DataError, match=r"labeled_anomalies\.csv: channel 'X-1' is listed twice"):
        sm.load_series(raw, "SMAP/X-1")
    raw = make_raw(tmp_path / "craft", {"X-1": (10, 20, 25)},
                   [("X-1", "SMAP", "[[2, 4]]", 20), ("X-1", "MSL", "[[2, 4]]", 20)])
    with pytest.raises(DataError, match=r"'X-1'.*line 2.*line 3"):
        sm.available_series(raw, "SMAP")


def test_wrong_num_values(tmp_path: Path) -> None:
    raw = make_raw(tmp_path, {"X-1": (10, 20, 25)}, [("X-1", "SMAP", "[[2, 4]]", 21)])
    with pytest.raises(DataError, match=r"labeled_anomalies\.csv: line 2, channel 'X-1': "
                                        r"num_values 21.*test/X-1\.npy\.gz has 20 rows"):
        sm.load_series(raw, "SMAP/X-1")


def test_sequence_outside_test_array(tmp_path: Path) -> None:
    raw = make_raw(tmp_path, {"X-1": (10, 20, 25)},
                   [("X-1", "SMAP", "[[2, 4], [15, 20]]", 20)])
    with pytest.raises(DataError, match=r"labeled_anomalies\.csv: line 2, channel 'X-1': "
                                        r"anomaly sequence \[15, 20\] lies outside"):
        sm.load_series(raw, "SMAP/X-1")


@pytest.mark.parametrize("seqs", ["[[5, 2]]", "[[-1, 2]]", "[[1, 2, 3]]", "not a list"])
def test_malformed_sequences(tmp_path: Path, seqs: str) -> None:
    raw = make_raw(tmp_path, {"X-1": (10, 20, 25)}, [("X-1", "SMAP", "[[2, 4]]", 20)])
    with open(raw / sm.LABELS_FILE, "a", newline="") as fh:
        csv.writer(fh).writerow(["X-2", "SMAP", seqs, "[point]", 20])
    with pytest.raises(DataError, match=r"labeled_anomalies\.csv: line 3, channel 'X-2'"):
        sm.available_series(raw, "SMAP")


@pytest.mark.parametrize(("part", "bad"), [("test", np.nan), ("train", np.inf)])
def test_non_finite_value(tmp_path: Path, part: str, bad: float) -> None:
    raw = make_raw(tmp_path, {"X-1": (10, 20, 25)}, [("X-1", "SMAP", "[[2, 4]]", 20)])
    path = raw / part / "X-1.npy.gz"
    with gzip.open(path) as fh:
        arr = np.load(fh)
    arr[7, 0] = bad
    write_array(path, arr)
    with pytest.raises(DataError, match=rf"{part}/X-1\.npy\.gz: row 7 \(0-based\)"):
        sm.load_series(raw, "SMAP/X-1")


def test_unlabelled_and_missing_channels(tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    raw = make_raw(tmp_path, {"X-1": (10, 20, 25), "Y-1": (10, 20, 55)},
                   [("X-1", "SMAP", "[[2, 4]]", 20)])
    with caplog.at_level(logging.WARNING, logger="rnnad"):
        assert sm.available_series(raw, "MSL") == []
    assert "Y-1" in caplog.text
    assert sm.unlabelled_channels(raw) == ["Y-1"]
    with pytest.raises(DataError, match=r"'Y-1' has arrays but no row.*no labels"):
        sm.load_series(raw, "MSL/Y-1")
    with pytest.raises(DataError, match="unknown channel 'Z-9'"):
        sm.load_series(raw, "SMAP/Z-9")
    (raw / "test" / "X-1.npy.gz").unlink()
    with pytest.raises(DataError, match=r"'X-1' is labelled but .*missing"):
        sm.available_series(raw, "SMAP")


def test_wrong_columns_and_ids(tmp_path: Path) -> None:
    raw = make_raw(tmp_path, {"X-1": (10, 20, 24)}, [("X-1", "SMAP", "[[2, 4]]", 20)])
    with pytest.raises(DataError, match=r"train/X-1\.npy\.gz: 24 columns, expected 25"):
        sm.load_series(raw, "SMAP/X-1")
    with pytest.raises(DataError, match="belongs to SMAP, not MSL"):
        sm.load_series(raw, "MSL/X-1")
    for bad in ("X-1", "Voyager/X-1", "SMAP/", "SMAP/a/b"):
        with pytest.raises(DataError, match="not a SMAP/MSL series id"):
            sm.spacecraft_of(bad)
    shutil.rmtree(raw / "train")
    (raw / sm.LABELS_FILE).unlink()
    with pytest.raises(DataError, match=r"labeled_anomalies\.csv: missing"):
        sm.load_series(raw, "SMAP/X-1")
