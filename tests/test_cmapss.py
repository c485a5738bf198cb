"""C-MAPSS: the learn/test layout, the RUL label rule, bad input, lead-time measures, real FD001."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnad.config import CmapssParams
from rnnad.datasets import cmapss
from rnnad.datasets.fetch import MIRROR_ENV, read_manifest
from rnnad.datasets.series import DataError, Series

PARAMS = CmapssParams(subset="FD001", learn_cycles=10, fault_cycles=5)


def _rows(lengths: list[int], seed: int) -> list[str]:
    """Lines of a synthetic train/test file: 26 fields, two trailing spaces (as NASA's)."""
    rng = np.random.default_rng(seed)
    lines = []
    for unit, n in enumerate(lengths, start=1):
        for cycle in range(1, n + 1):
            settings = [f"{rng.normal(0, 0.002):.4f}", f"{rng.normal(0, 0.0003):.4f}", "100.0"]
            sensors = [f"{600 + cycle * 0.1 + rng.normal(0, 0.5):.2f}" for _ in range(21)]
            sensors[0] = "518.67"  # s1 constant
            sensors[4] = "14.62"  # s5 constant
            lines.append(" ".join([str(unit), str(cycle), *settings, *sensors]) + "  ")
    return lines


def _write(raw: Path, train: list[int], test: list[int], rul: list[int],
           subset: str = "FD001") -> Path:
    folder = raw / "CMAPSSData"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"train_{subset}.txt").write_text("\n".join(_rows(train, 0)) + "\n")
    (folder / f"test_{subset}.txt").write_text("\n".join(_rows(test, 1)) + "\n")
    (folder / f"RUL_{subset}.txt").write_text("".join(f"{r}\n" for r in rul))
    return folder


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    # train engines of 30, 14 and 5 cycles; with learn_cycles 10 and fault_cycles 5 they give
    # 10, 8 (= 14 - 5 - 1: only RUL > 5 is normal) and 0 learn cycles.
    # test engines: 12 cycles ending at RUL 2, 3 ending at RUL 0, 8 ending at RUL 10.
    _write(tmp_path, [30, 14, 5], [12, 3, 8], [2, 0, 10])
    return tmp_path


def test_layout_and_label_rule(tiny: Path) -> None:
    assert cmapss.available_series(tiny, PARAMS) == ["FD001"]
    s = cmapss.load_series(tiny, "FD001", PARAMS)
    assert len(s) == 10 + 8 + 12 + 3 + 8
    assert s.learn_end == 18
    assert s.segments.tolist() == [0, 10, 18, 30, 33]
    unit = s.extra["unit"]
    assert unit.tolist() == [1] * 10 + [2] * 8 + [1001] * 12 + [1002] * 3 + [1003] * 8
    rul = s.extra["rul"]
    assert rul[:10].tolist() == list(range(29, 19, -1))  # train: last_cycle - c
    assert rul[10:18].tolist() == list(range(13, 5, -1))
    assert rul[18:30].tolist() == list(range(13, 1, -1))  # test: RUL_end + last_cycle - c
    assert rul[30:33].tolist() == [2, 1, 0]
    assert rul[33:].tolist() == list(range(17, 9, -1))
    assert s.extra["cycle"][18:30].tolist() == list(range(1, 13))
    assert np.array_equal(s.labels, (rul <= 5).astype(np.int8))
    assert s.labels[:18].sum() == 0
    assert int(s.labels.sum()) == 4 + 3
    # the labels of engines 1001 and 1002 touch, but a window never spans two engines
    assert s.windows.tolist() == [[26, 29], [30, 32]]
    assert s.labels.dtype == np.int8 and s.values.dtype == np.float64
    assert s.timestamps[0] == np.datetime64("2000-01-01T00:00")
    assert (np.diff(s.timestamps) == np.timedelta64(1, "m")).all()
    assert s.timestamps.dtype == np.dtype("datetime64[ns]")
    assert s.report["dropped_channels"] == ["setting3", "s1", "s5"]
    assert s.channel_names[:3] == ("setting1", "setting2", "s2")
    assert s.channels == 24 - 3
    assert s.report["fault_cycles"] == 5
    assert s.report["learn_engines"] == 2 and s.report["short_train_engines"] == 2
    assert s.report["test_engines"] == 3 and s.report["fault_engines"] == 2
    json.dumps(s.report)


def test_save_load_roundtrip(tiny: Path, tmp_path: Path) -> None:
    s = cmapss.load_series(tiny, "FD001", PARAMS)
    s.save(tmp_path / "s.npz")
    back = Series.load(tmp_path / "s.npz")
    assert back.learn_end == s.learn_end and back.channel_names == s.channel_names
    for key in ("unit", "cycle", "rul"):
        assert np.array_equal(back.extra[key], s.extra[key])


def test_no_learnable_engine(tmp_path: Path) -> None:
    _write(tmp_path, [6, 4], [12], [2])
    with pytest.raises(DataError, match="nothing to learn"):
        cmapss.load_series(tmp_path, "FD001", PARAMS)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ls: ls.__setitem__(2, ls[2].rsplit(" ", 3)[0]), r"line 3: expected 26"),
        (lambda ls: ls.__setitem__(4, ls[4].replace("518.67", "abc")),
         r"line 5, field 6: 'abc' is not a finite number"),
        (lambda ls: ls.__setitem__(1, ls[1].replace("518.67", "nan")), r"line 2, field 6"),
        (lambda ls: ls.__setitem__(3, ls[3].replace("1 4 ", "1 6 ", 1)),
         r"line 4: unit 1 goes from cycle 3 to 6"),
        (lambda ls: ls.__setitem__(0, ls[0].replace("1 1 ", "1.5 1 ", 1)),
         r"line 1: unit 1.5 and cycle 1 must be positive integers"),
    ],
)
def test_malformed_train_lines(tiny: Path, edit, message: str) -> None:
    path = tiny / "CMAPSSData" / "train_FD001.txt"
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message) as info:
        cmapss.load_series(tiny, "FD001", PARAMS)
    assert "train_FD001.txt" in str(info.value)


def test_blank_lines_skipped_but_counted(tiny: Path) -> None:
    path = tiny / "CMAPSSData" / "test_FD001.txt"
    lines = path.read_text().splitlines()
    lines.insert(0, "")
    lines[3] = lines[3] + " 7"
    path.write_text("\n".join(lines) + "\n\n")
    with pytest.raises(DataError, match=r"test_FD001.txt: line 4: expected 26 .* got 27"):
        cmapss.load_series(tiny, "FD001", PARAMS)


def test_units_out_of_order(tmp_path: Path) -> None:
    folder = _write(tmp_path, [30, 14], [12, 3], [2, 0])
    path = folder / "test_FD001.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[12:] + lines[:12]) + "\n")
    with pytest.raises(DataError, match=r"test_FD001.txt: line 4: unit 1 after unit 2"):
        cmapss.load_series(tmp_path, "FD001", PARAMS)


def test_rul_file_errors(tiny: Path) -> None:
    rul = tiny / "CMAPSSData" / "RUL_FD001.txt"
    rul.write_text("2\n0\n")
    with pytest.raises(DataError, match=r"RUL_FD001.txt: 2 RUL values, but .*test_FD001.txt "
                                        r"has 3 engines"):
        cmapss.load_series(tiny, "FD001", PARAMS)
    rul.write_text("2\nx\n10\n")
    with pytest.raises(DataError, match=r"RUL_FD001.txt: line 2"):
        cmapss.load_series(tiny, "FD001", PARAMS)


def test_missing_files_and_unknown_subset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"train_FD002\.txt: missing"):
        cmapss.available_series(tmp_path, CmapssParams(subset="FD002"))
    with pytest.raises(DataError, match="unknown series 'FD009'"):
        cmapss.load_series(tmp_path, "FD009", PARAMS)


# --------------------------------------------------------------------------- measures


def _measure_series() -> Series:
    """Learn part of 4 points, then engines A (RUL 9..0), B (12..3), C (8..0), D (40..31);
    fault_cycles 3, so A, B and C have a fault zone and D has none."""
    ruls = [np.arange(13, 9, -1), np.arange(9, -1, -1), np.arange(12, 2, -1),
            np.arange(8, -1, -1), np.arange(40, 30, -1)]
    units = [1, 1001, 1002, 1003, 1004]
    rul = np.concatenate(ruls)
    unit = np.concatenate([np.full(len(r), u) for r, u in zip(ruls, units, strict=True)])
    n = len(rul)
    labels = (rul <= 3).astype(np.int8)
    labels[:4] = 0
    lengths = [len(r) for r in ruls]
    return Series("toy", np.datetime64("2000-01-01", "ns") + np.arange(n) * np.timedelta64(1, "m"),
                  np.zeros((n, 1)), labels, np.zeros((0, 2), dtype=np.int64),
                  report={"fault_cycles": 3},
                  segments=np.concatenate([[0], np.cumsum(lengths)[:-1]]), learn_end=4,
                  extra={"unit": unit, "rul": rul})


def _flag_at(s: Series, pairs: list[tuple[int, int]]) -> np.ndarray:
    flags = np.zeros(len(s), dtype=np.int8)
    for u, r in pairs:
        flags[np.flatnonzero((s.extra["unit"] == u) & (s.extra["rul"] == r))] = 1
    return flags


def test_lead_time_known_answer(tmp_path: Path) -> None:
    s = _measure_series()
    # A flags at RUL 2 and 1 (lead 2); B first at RUL 6, before its fault zone (early, lead 6);
    # C never (missed); D, no fault zone, flags (false alarm); a learn-part flag is ignored.
    flags = _flag_at(s, [(1, 12), (1001, 2), (1001, 1), (1002, 6), (1002, 3), (1004, 35)])
    test = np.ones(len(s), dtype=bool)
    out = cmapss.extra_measures(s, flags, test)
    assert out == {"lead_median_cycles": 4.0, "lead_engines": 2, "engines": 3,
                   "early_alarm_engines": 1, "missed_engines": 1, "false_alarm_engines": 1}
    json.dumps(out)
    # an unmeasured point does not count: A's first measured flag is then at RUL 1
    test[np.flatnonzero((s.extra["unit"] == 1001) & (s.extra["rul"] == 2))] = False
    assert cmapss.extra_measures(s, flags, test)["lead_median_cycles"] == 3.5
    # the same answer from a series loaded back from disk (where report is not kept)
    s.save(tmp_path / "toy.npz")
    assert cmapss.extra_measures(Series.load(tmp_path / "toy.npz"), flags, test)[
        "early_alarm_engines"] == 1


def test_lead_time_no_flags() -> None:
    s = _measure_series()
    out = cmapss.extra_measures(s, np.zeros(len(s), dtype=np.int8), np.ones(len(s), bool))
    assert out["lead_median_cycles"] is None
    assert out["lead_engines"] == 0 and out["missed_engines"] == 3 and out["engines"] == 3
    with pytest.raises(ValueError, match="must both have shape"):
        cmapss.extra_measures(s, np.zeros(3), np.ones(len(s), bool))


# --------------------------------------------------------------------------- fetch / real data


def test_packaged_manifest_matches_shared(mirror: Path) -> None:
    shared = mirror / "cmapss" / "MANIFEST.tsv"
    if not shared.is_file():
        pytest.skip("no C-MAPSS in the shared datasets")
    assert read_manifest(cmapss.manifest_path()) == read_manifest(shared)
    assert cmapss._url("CMAPSSData/train_FD004.txt").endswith("/data/CMAPSS/train_FD004.txt")


def test_fetch_from_mirror(mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (mirror / "cmapss").is_dir():
        pytest.skip("no C-MAPSS in the shared datasets")
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    files = cmapss.fetch(tmp_path / "raw")
    assert len(files) == 13 and all(f.is_file() for f in files)
    assert cmapss.available_series(tmp_path / "raw", CmapssParams()) == ["FD001"]


def test_real_fd001(mirror: Path) -> None:
    raw = mirror / "cmapss"
    if not (raw / "CMAPSSData" / "train_FD001.txt").is_file():
        pytest.skip("no C-MAPSS in the shared datasets")
    params = CmapssParams()  # FD001, learn_cycles 50, fault_cycles 30
    s = cmapss.load_series(raw, "FD001", params)
    test = np.loadtxt(raw / "CMAPSSData" / "test_FD001.txt")
    rul_end = np.loadtxt(raw / "CMAPSSData" / "RUL_FD001.txt").astype(int)
    lengths = np.bincount(test[:, 0].astype(int))[1:]
    assert s.report["train_engines"] == 100 and s.report["test_engines"] == 100
    assert len(lengths) == 100 and len(rul_end) == 100
    assert s.learn_end == 100 * 50
    assert len(s) == 100 * 50 + 13096
    assert len(s.segments) == 200
    fc = params.fault_cycles
    expected = int(np.minimum(lengths, np.maximum(0, fc + 1 - rul_end)).sum())
    assert int(s.labels.sum()) == expected
    assert s.report["fault_engines"] == int((rul_end <= fc).sum()) == len(s.windows)
    assert set(s.report["dropped_channels"]) >= {"setting3", "s1", "s18", "s19"}
    assert len(np.unique(s.extra["unit"])) == 200
    # the last recorded cycle of every test engine has the file's RUL
    last = np.r_[s.segments[1:], len(s)][100:] - 1
    assert s.extra["rul"][last].tolist() == rul_end.tolist()
