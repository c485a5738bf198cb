"""NASA C-MAPSS turbofan engine degradation (run-to-failure) data, one series per sub-dataset.

Upstream: NASA Ames PCoE Prognostics Data Repository, "Turbofan Engine Degradation Simulation"
(Saxena et al., PHM 2008), distributed as ``CMAPSSData.zip``. The zip is not fetchable file by
file, so :func:`fetch` takes the twelve text files and ``readme.txt`` from
alireza-javanmardi/conformal-RUL-intervals at a pinned commit, whose git blobs equal NASA's
files (see ``shared/datasets/cmapss/SOURCE.md``); every file is checked against
``rnnad/manifests/cmapss.tsv``. With ``RNNAD_DATA_MIRROR`` set, files are copied from
``<mirror>/cmapss/CMAPSSData/``.

How a sub-dataset (``FD001`` .. ``FD004``) becomes one :class:`Series` (``CmapssParams``):

- **Learn part** (first, up to ``learn_end``): every training engine (``train_FDxxx.txt``, run
  to failure) contributes its first ``learn_cycles`` cycles, its early life, taken as normal.
  An engine too short for that contributes only the cycles the label rule calls normal (RUL >
  ``fault_cycles``), i.e. at most its length minus ``fault_cycles + 1``, or nothing.
- **Test part** (from ``learn_end`` on): every test engine (``test_FDxxx.txt``), its full
  recorded run, in unit order. Its true RUL after the last recorded cycle comes from
  ``RUL_FDxxx.txt``; the RUL at cycle ``c`` is ``RUL_end + (last_cycle - c)``. For training
  engines, which run to failure, the RUL at cycle ``c`` is ``last_cycle - c``.
- **Labels**: 1 where RUL <= ``fault_cycles`` (the last ``fault_cycles + 1`` cycles before
  failure, RUL 0 included), else 0. C-MAPSS has no point labels of its own; this is the
  documented, parameterised rule. The learn part has none by construction. Label windows are
  the runs of 1 within each engine (a window never spans two engines).
- **segments**: one start per engine (learn engines, then test engines), so no model window
  crosses from one engine into the next.
- **Channels**: the 3 operational settings and 21 sensors (``setting1`` .. ``setting3``,
  ``s1`` .. ``s21``); channels constant over the learn part carry no information and are
  dropped (listed in ``report["dropped_channels"]``).
- **timestamps**: synthetic, ``2000-01-01 00:00`` plus one minute per position (the record is
  the time step; cycles are not clock times).
- **extra**: ``unit`` (engine id; test engines are offset by :data:`TEST_UNIT_OFFSET`, so test
  unit 1 is 1001), ``cycle`` and ``rul`` (int64).

File format (``readme.txt``): whitespace-separated numbers, 26 per line (unit, cycle,
3 settings, 21 sensors), trailing spaces allowed, blank lines skipped. A line with another field
count or a non-numeric / non-finite field, an engine whose rows are not contiguous or whose
cycles do not step by one, and an RUL file with a different number of engines than the test
file are :class:`DataError`, naming the file and line.
"""

from __future__ import annotations

import itertools
from importlib import resources
from pathlib import Path

import numpy as np

from rnnad.config import CmapssParams
from rnnad.datasets.fetch import fetch_files, read_manifest
from rnnad.datasets.series import DataError, Series, measured_points, windows_from_labels

FOLDER = "cmapss"
DATA_DIR = "CMAPSSData"
SUBSETS = ("FD001", "FD002", "FD003", "FD004")
# Files whose git blobs equal NASA's (SOURCE.md); manifest paths are CMAPSSData/<name>.
RAW_URL = ("https://raw.githubusercontent.com/alireza-javanmardi/conformal-RUL-intervals/"
           "37e450ac8b656229d44aed3ac39dcf85ea11b86c/data/CMAPSS/{name}")
FIELDS = 26
CHANNELS = ("setting1", "setting2", "setting3", *(f"s{i}" for i in range(1, 22)))
TEST_UNIT_OFFSET = 1000
START = np.datetime64("2000-01-01T00:00", "ns")
STEP = np.timedelta64(1, "m")
LABEL_RULE = ("label 1 where RUL <= fault_cycles; RUL at cycle c = RUL_end + (last_cycle - c) "
              "for test engines (RUL_end from RUL_FDxxx.txt), last_cycle - c for training "
              "engines")


def manifest_path() -> Path:
    return Path(str(resources.files("rnnad") / "manifests" / "cmapss.tsv"))


def _url(path: str) -> str:
    return RAW_URL.format(name=path.removeprefix(f"{DATA_DIR}/"))


def fetch(dest: Path, *, retries: int = 3, timeout_s: float = 60.0) -> list[Path]:
    """Fetch every C-MAPSS file in the manifest into ``dest`` (``dest/CMAPSSData/...``),
    sha256-verified; from ``$RNNAD_DATA_MIRROR/cmapss/`` when that is set."""
    entries = read_manifest(manifest_path())
    return fetch_files(entries, dest, FOLDER, _url, retries=retries, timeout_s=timeout_s)


def _files(raw: Path, subset: str) -> tuple[Path, Path, Path]:
    if subset not in SUBSETS:
        raise DataError(f"C-MAPSS: unknown series {subset!r}; one of {', '.join(SUBSETS)}")
    folder = raw / DATA_DIR
    train, test, rul = (folder / f"{kind}_{subset}.txt" for kind in ("train", "test", "RUL"))
    for path in (train, test, rul):
        if not path.is_file():
            raise DataError(f"{path}: missing; run the fetch stage (or set RNNAD_DATA_MIRROR)")
    return train, test, rul


def available_series(raw: Path, params: CmapssParams) -> list[str]:
    """The one series the params choose (``params.subset``), after checking its files exist."""
    _files(raw, params.subset)
    return [params.subset]


# --------------------------------------------------------------------------- parsing


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file ({exc})") from exc


def read_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a train/test file as float64 [N, 26] and their 1-based line numbers [N]."""
    rows: list[list[str]] = []
    linenos: list[int] = []
    for lineno, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != FIELDS:
            raise DataError(f"{path}: line {lineno}: expected {FIELDS} whitespace-separated "
                            f"fields (unit, cycle, 3 settings, 21 sensors), got {len(parts)}")
        rows.append(parts)
        linenos.append(lineno)
    if not rows:
        raise DataError(f"{path}: no data lines")
    try:
        data = np.array(rows, dtype=np.float64)
    except ValueError:
        data = None
    if data is None or not np.isfinite(data).all():
        for parts, lineno in zip(rows, linenos, strict=True):
            for col, text in enumerate(parts, start=1):
                try:
                    value = float(text)
                except ValueError:
                    value = float("nan")
                if not np.isfinite(value):
                    raise DataError(f"{path}: line {lineno}, field {col}: {text!r} is not a "
                                    "finite number")
    if data is None:  # numpy refused a spelling float() accepts (e.g. "1_0")
        data = np.array([[float(t) for t in parts] for parts in rows], dtype=np.float64)
    return data, np.asarray(linenos, dtype=np.int64)


def _engines(data: np.ndarray, linenos: np.ndarray, path: Path) -> list[tuple[int, int, int]]:
    """(unit, first row, end row) of every engine, in file order; checks the file's structure:
    integral positive unit and cycle, each unit's rows contiguous with ascending unit ids, and
    cycles stepping by one within a unit."""
    unit, cycle = data[:, 0], data[:, 1]
    bad = np.flatnonzero((unit != np.round(unit)) | (unit < 1) | (cycle != np.round(cycle))
                         | (cycle < 1))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{path}: line {linenos[i]}: unit {unit[i]:g} and cycle {cycle[i]:g} "
                        "must be positive integers")
    starts = np.flatnonzero(np.diff(unit) != 0) + 1
    backward = np.flatnonzero(np.diff(unit[np.concatenate([[0], starts])]) < 0)
    if len(backward):
        i = int(starts[backward[0]])
        raise DataError(f"{path}: line {linenos[i]}: unit {int(unit[i])} after unit "
                        f"{int(unit[i - 1])}; units must appear in ascending order, each unit's "
                        "rows together")
    new_unit = np.zeros(len(unit), dtype=bool)
    new_unit[starts] = True
    jumps = np.flatnonzero(~new_unit[1:] & (np.diff(cycle) != 1)) + 1
    if len(jumps):
        i = int(jumps[0])
        raise DataError(f"{path}: line {linenos[i]}: unit {int(unit[i])} goes from cycle "
                        f"{int(cycle[i - 1])} to {int(cycle[i])}; cycles must step by one")
    bounds = np.concatenate([[0], starts, [len(unit)]])
    return [(int(unit[s]), int(s), int(e)) for s, e in itertools.pairwise(bounds)]


def read_rul(path: Path) -> np.ndarray:
    """The true RUL after each test engine's last cycle, one non-negative integer per line."""
    values = []
    for lineno, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 1 or not parts[0].isdigit():
            raise DataError(f"{path}: line {lineno}: expected one non-negative integer (RUL in "
                            f"cycles), got {line.strip()!r}")
        values.append(int(parts[0]))
    return np.asarray(values, dtype=np.int64)


# --------------------------------------------------------------------------- loading


def load_series(raw: Path, series_id: str, params: CmapssParams) -> Series:
    """Load sub-dataset ``series_id`` (e.g. ``FD001``) as one series; see the module doc."""
    train_path, test_path, rul_path = _files(raw, series_id)
    train, train_lines = read_table(train_path)
    test, test_lines = read_table(test_path)
    train_engines = _engines(train, train_lines, train_path)
    test_engines = _engines(test, test_lines, test_path)
    rul_end = read_rul(rul_path)
    if len(rul_end) != len(test_engines):
        raise DataError(f"{rul_path}: {len(rul_end)} RUL values, but {test_path} has "
                        f"{len(test_engines)} engines; the RUL file needs one value per test "
                        "engine, in unit order")
    learn_cycles, fault_cycles = params.learn_cycles, params.fault_cycles

    blocks: list[np.ndarray] = []  # rows of the source table, per engine
    units: list[np.ndarray] = []
    ruls: list[np.ndarray] = []
    short = 0
    for unit, s, e in train_engines:
        n = e - s
        # Cycles with RUL > fault_cycles are normal under the label rule: n - fault_cycles - 1.
        take = min(learn_cycles, max(0, n - fault_cycles - 1))
        short += take < learn_cycles
        if take == 0:
            continue
        rows = train[s:s + take]
        blocks.append(rows)
        units.append(np.full(take, unit, dtype=np.int64))
        ruls.append(int(train[e - 1, 1]) - rows[:, 1].astype(np.int64))
    learn_engines = len(blocks)
    if not learn_engines:
        raise DataError(f"{train_path}: no training engine has a cycle with RUL > fault_cycles "
                        f"({fault_cycles}); nothing to learn from")
    learn_end = sum(len(b) for b in blocks)
    for (unit, s, e), end in zip(test_engines, rul_end, strict=True):
        rows = test[s:e]
        blocks.append(rows)
        units.append(np.full(e - s, TEST_UNIT_OFFSET + unit, dtype=np.int64))
        ruls.append(int(end) + int(test[e - 1, 1]) - rows[:, 1].astype(np.int64))

    lengths = np.array([len(b) for b in blocks], dtype=np.int64)
    segments = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    table = np.concatenate(blocks)
    rul = np.concatenate(ruls)
    unit_arr = np.concatenate(units)
    cycle = table[:, 1].astype(np.int64)
    values = table[:, 2:]
    labels = (rul <= fault_cycles).astype(np.int8)
    labels[:learn_end] = 0  # already 0 by construction; the learn part is normal

    constant = np.ptp(values[:learn_end], axis=0) == 0
    dropped = [name for name, c in zip(CHANNELS, constant, strict=True) if c]
    if constant.all():
        raise DataError(f"{train_path}: every channel is constant over the learn part")
    values = np.ascontiguousarray(values[:, ~constant])
    names = tuple(name for name, c in zip(CHANNELS, constant, strict=True) if not c)

    windows = [windows_from_labels(labels[s:s + n]) + s
               for s, n in zip(segments, lengths, strict=True)]
    windows_arr = np.concatenate(windows).astype(np.int64).reshape(-1, 2)
    test_units = unit_arr[learn_end:]
    fault_engines = len(np.unique(test_units[labels[learn_end:] == 1]))
    report = {
        "subset": series_id,
        "label_rule": LABEL_RULE,
        "learn_cycles": learn_cycles,
        "fault_cycles": fault_cycles,
        "train_engines": len(train_engines),
        "learn_engines": learn_engines,
        "short_train_engines": int(short),
        "test_engines": len(test_engines),
        "fault_engines": int(fault_engines),
        "learn_points": int(learn_end),
        "test_points": int(len(rul) - learn_end),
        "labelled_points": int(labels.sum()),
        "windows": len(windows_arr),
        "dropped_channels": dropped,
        "test_unit_offset": TEST_UNIT_OFFSET,
        "timestamps": "synthetic: 2000-01-01 00:00 plus one minute per position",
    }
    n = len(rul)
    return Series(
        id=series_id,
        timestamps=START + np.arange(n) * STEP,
        values=values,
        labels=labels,
        windows=windows_arr,
        report=report,
        channel_names=names,
        segments=segments,
        learn_end=int(learn_end),
        extra={"unit": unit_arr, "cycle": cycle, "rul": rul},
    )


# --------------------------------------------------------------------------- measures


def extra_measures(series: Series, flags: np.ndarray,
                   test: np.ndarray) -> dict[str, float | int | None]:
    """Lead time of the alarms on the measured test engines.

    ``flags`` (0/1 per point of the series) and ``test`` (bool, the measured points) cover the
    whole series; only measured points at or after ``learn_end`` count. An engine's first alarm
    is its first flagged measured point, and its lead is the RUL there (cycles before failure).

    - ``engines``: test engines with a labelled (fault-zone) measured point;
    - ``lead_engines``: those of them that flag at all; ``missed_engines``: those that never do;
    - ``lead_median_cycles``: median lead over ``lead_engines`` (None when there are none);
    - ``early_alarm_engines``: lead engines whose first alarm comes before the fault zone
      (RUL > fault_cycles). The labels are the rule RUL <= fault_cycles, so this is read off
      the label at the first alarm, which also holds for a series loaded back from disk
      (where ``report`` is not kept);
    - ``false_alarm_engines``: measured test engines without a fault zone that flag.
    """
    flags, measured = measured_points(series, flags, test, ("unit", "rul"), "C-MAPSS")
    unit = np.asarray(series.extra["unit"])[measured]
    rul = np.asarray(series.extra["rul"])[measured]
    label = series.labels[measured].astype(bool)
    flag = flags[measured]

    leads: list[int] = []
    early = missed = false_alarms = engines = 0
    for u in np.unique(unit):
        mine = unit == u
        hits = np.flatnonzero(flag[mine])
        if not label[mine].any():
            false_alarms += len(hits) > 0
            continue
        engines += 1
        if not len(hits):
            missed += 1
            continue
        first = hits[0]  # rows keep file order within an engine: cycles ascend
        leads.append(int(rul[mine][first]))
        early += not label[mine][first]
    return {
        "lead_median_cycles": round(float(np.median(leads)), 6) if leads else None,
        "lead_engines": len(leads),
        "engines": engines,
        "early_alarm_engines": int(early),
        "missed_engines": int(missed),
        "false_alarm_engines": int(false_alarms),
    }
