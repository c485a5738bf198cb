"""NASA SMAP and MSL spacecraft telemetry (Hundman et al., KDD 2018, "telemanom").

81 labelled channels (SMAP 54, MSL 27), each a ``train`` and a ``test`` array of shape
[time, inputs] (float64): column 0 is the telemetry value, the other columns are one-hot command
flags (SMAP 25 columns, MSL 55). ``labeled_anomalies.csv`` gives, per channel, the anomaly
sequences as inclusive ``[start, end]`` index pairs into the **test** array, and ``num_values``,
the test array's length.

Sources (pinned; see ``shared/datasets/smap_msl/SOURCE.md``): the label file from
khundman/telemanom, the arrays from the airMeng/mask-time-series-modeling GitHub copy (the
authors' own S3/Kaggle copies are not reachable here).

Layout in ``dest`` (``data/raw/smap_msl``), whatever the source:
``labeled_anomalies.csv``, ``train/<chan>.npy.gz``, ``test/<chan>.npy.gz`` (each array gzip'd on
its own). From the mirror (``RNNAD_DATA_MIRROR``) the ``.gz`` files are copied and verified
against ``rnnad/manifests/smap_msl.tsv``. From upstream the plain ``.npy`` files are downloaded,
verified against ``rnnad/manifests/smap_msl.decompressed.tsv`` (the sha256 of each array after
gunzip), then gzip'd into place (``gzip -9``, no name or timestamp). A file already in ``dest`` is
kept when either its own checksum or its decompressed checksum matches.

How a channel becomes a :class:`Series` (id ``"<spacecraft>/<chan>"``, e.g. ``"SMAP/P-1"``):

- ``values``: the train array followed by the test array, [len(train) + len(test), C];
  ``channel_names`` = ``("telemetry", "cmd1", ..., "cmd<C-1>")``;
- ``targets = (0,)``: the model reconstructs the telemetry; the command flags are inputs only;
- ``learn_end = len(train)``: only the train array may be learned from, every later point is test;
- ``segments = [0, len(train)]``: the two arrays are separate recordings, no window crosses them;
- ``timestamps``: the arrays have none, so a regular synthetic clock is used:
  ``2000-01-01T00:00 + index`` minutes (the same for every channel; it carries no meaning);
- ``labels``: 1 inside every ``[start, end]`` (inclusive) of the channel's anomaly sequences,
  offset by ``len(train)``; ``windows``: the runs of 1 as inclusive indices into the full series
  (overlapping or touching sequences become one window);
- ``report``: ``train_points``, ``test_points``, ``windows``, ``labelled_points``, ``spacecraft``.

Checks and quirks (every error is a :class:`DataError` naming the file):

- a channel with two rows in the label file (upstream: ``P-2``, rows ``[[5350, 6575]]`` and
  ``[[5300, 6420]]``): when the rows agree on spacecraft and ``num_values`` their sequences are
  merged (their union: P-2 gets one window, test indices 5300..6575); rows that disagree are an
  error naming the file, the channel and both lines;
- a channel with arrays but no label row (upstream: ``T-10``, 55 columns, so MSL-shaped) is not
  listed by :func:`available_series` (a warning names it; :func:`unlabelled_channels` lists
  them) and :func:`load_series` of it raises, saying it has no labels;
- ``num_values`` must equal the test array's length (error naming the file, line, channel);
- every sequence must lie inside the test array (error naming file, channel, sequence);
- the arrays must be 2-D with the spacecraft's column count and finite (a non-finite value is an
  error naming the array file and its row, 0-based).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import shutil
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rnnad.datasets.fetch import (
    FetchError,
    ManifestEntry,
    fetch_files,
    mirror_root,
    read_manifest,
)
from rnnad.datasets.series import DataError, Series, windows_from_labels
from rnnad.io import atomic_path, sha256_file

log = logging.getLogger("rnnad")

FOLDER = "smap_msl"
LABELS_FILE = "labeled_anomalies.csv"
COLUMNS = {"SMAP": 25, "MSL": 55}
LABEL_COLUMNS = ("chan_id", "spacecraft", "anomaly_sequences", "class", "num_values")

TELEMANOM_COMMIT = "2e6c5b6c3558e7835601519b7bdef37c649bdbdc"
ARRAYS_COMMIT = "c52f1649597f426b8d16a6e4a41b9c3638561006"
LABELS_URL = f"https://raw.githubusercontent.com/khundman/telemanom/{TELEMANOM_COMMIT}/{LABELS_FILE}"
ARRAY_URL = ("https://raw.githubusercontent.com/airMeng/mask-time-series-modeling/"
             f"{ARRAYS_COMMIT}/data/{{path}}")

CLOCK_START = np.datetime64("2000-01-01T00:00", "ns")
CLOCK_STEP = np.timedelta64(1, "m")
STAGING = ".npy-download"


# --------------------------------------------------------------------------------------------
# fetching


def manifest_path() -> Path:
    """Manifest of the stored files (``labeled_anomalies.csv`` and the ``.npy.gz`` arrays)."""
    return Path(str(resources.files("rnnad") / "manifests" / "smap_msl.tsv"))


def decompressed_manifest_path() -> Path:
    """Manifest of the arrays after gunzip (``train/<chan>.npy``): the upstream bytes."""
    return Path(str(resources.files("rnnad") / "manifests" / "smap_msl.decompressed.tsv"))


def upstream_url(path: str) -> str:
    """Upstream URL of a file: the label file, or a plain ``train|test/<chan>.npy`` array."""
    if path == LABELS_FILE:
        return LABELS_URL
    return ARRAY_URL.format(path=path.removesuffix(".gz"))


def _gunzip_sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except (OSError, EOFError, zlib.error):
        return None
    return digest.hexdigest()


def _present(target: Path, entry: ManifestEntry, plain: ManifestEntry | None) -> bool:
    """``target`` holds the right content: its own checksum, or (a ``.gz`` recompressed here
    from the upstream ``.npy``) the checksum of its decompressed bytes."""
    if not target.is_file():
        return False
    if sha256_file(target) == entry.sha256:
        return True
    return plain is not None and _gunzip_sha256(target) == plain.sha256


def _plain_entries(entries: list[ManifestEntry],
                   plain: list[ManifestEntry]) -> dict[str, ManifestEntry]:
    """Map each ``.npy.gz`` path of ``entries`` to its decompressed entry."""
    by_path = {e.path: e for e in plain}
    out = {}
    for entry in entries:
        if entry.path.endswith(".npy.gz"):
            match = by_path.get(entry.path.removesuffix(".gz"))
            if match is None:
                raise FetchError(f"{decompressed_manifest_path()}: no entry for "
                                 f"{entry.path.removesuffix('.gz')} (listed gzip'd in "
                                 f"{manifest_path()})")
            out[entry.path] = match
    return out


def _gzip_into(src: Path, target: Path) -> None:
    with (open(src, "rb") as fin, atomic_path(target) as tmp, open(tmp, "wb") as raw,
          gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz):
        shutil.copyfileobj(fin, gz, 1 << 20)


def _fetch_upstream(dest: Path, entries: list[ManifestEntry], plain: list[ManifestEntry], *,
                    retries: int, timeout_s: float) -> list[Path]:
    """Download ``entries`` from upstream into ``dest``: the label file as is, each array as
    the plain ``.npy`` (verified with its decompressed checksum, into ``dest/.npy-download``),
    then gzip'd into ``dest/<path>.npy.gz``. Verified downloads in the staging folder are kept
    when a later one fails (a rerun resumes); the folder is removed once every file is in place.
    """
    plain_of = _plain_entries(entries, plain)
    targets = [dest / e.path for e in entries]
    missing = [e for e, t in zip(entries, targets, strict=True)
               if not _present(t, e, plain_of.get(e.path))]
    files = [e for e in missing if e.path not in plain_of]
    arrays = [e for e in missing if e.path in plain_of]
    if files:
        fetch_files(files, dest, FOLDER, upstream_url, retries=retries, timeout_s=timeout_s)
    if arrays:
        stage = dest / STAGING
        try:
            staged = fetch_files([plain_of[e.path] for e in arrays], stage, FOLDER,
                                 upstream_url, retries=retries, timeout_s=timeout_s)
            for entry, src in zip(arrays, staged, strict=True):
                _gzip_into(src, dest / entry.path)
                src.unlink()
        finally:
            if not any(p.is_file() for p in stage.rglob("*")):
                shutil.rmtree(stage, ignore_errors=True)
    return targets


def fetch(dest: Path, *, retries: int = 3, timeout_s: float = 60.0) -> list[Path]:
    """Fetch every SMAP/MSL file into ``dest`` (sha256-verified); returns the paths in manifest
    order. From ``$RNNAD_DATA_MIRROR/smap_msl/`` when the variable is set (the ``.npy.gz`` files
    are copied), else from the pinned upstream URLs (plain ``.npy``, gzip'd here)."""
    dest = Path(dest)
    entries = read_manifest(manifest_path())
    plain = read_manifest(decompressed_manifest_path())
    mirror = mirror_root()
    if mirror is None:
        return _fetch_upstream(dest, entries, plain, retries=retries, timeout_s=timeout_s)
    plain_of = _plain_entries(entries, plain)
    missing = [e for e in entries if not _present(dest / e.path, e, plain_of.get(e.path))]
    if missing:
        fetch_files(missing, dest, FOLDER, upstream_url, retries=retries, timeout_s=timeout_s,
                    mirror=mirror)
    return [dest / e.path for e in entries]


# --------------------------------------------------------------------------------------------
# the label file


@dataclass(frozen=True)
class ChannelLabels:
    """One channel's label row(s): ``sequences`` are inclusive [start, end] test indices."""

    chan: str
    spacecraft: str
    sequences: tuple[tuple[int, int], ...]
    num_values: int
    lines: tuple[int, ...]  # line numbers in the label file (the header is line 1)


def _parse_sequences(text: str, where: str) -> list[tuple[int, int]]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: anomaly_sequences {text!r} is not a list of [start, end] "
                        f"pairs ({exc})") from exc
    if not isinstance(parsed, list):
        raise DataError(f"{where}: anomaly_sequences {text!r} is not a list of [start, end] pairs")
    out = []
    for item in parsed:
        if (not isinstance(item, list) or len(item) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)):
            raise DataError(f"{where}: anomaly sequence {item!r} is not an integer [start, end] "
                            "pair")
        start, end = item
        if start < 0 or end < start:
            raise DataError(f"{where}: anomaly sequence [{start}, {end}] needs "
                            "0 <= start <= end")
        out.append((start, end))
    return out


def read_labels(raw: Path) -> dict[str, ChannelLabels]:
    """Parse ``raw/labeled_anomalies.csv`` into one entry per channel, duplicates merged."""
    path = Path(raw) / LABELS_FILE
    if not path.is_file():
        raise DataError(f"{path}: missing (fetch the smap_msl dataset first)")
    out: dict[str, ChannelLabels] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in LABEL_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: line 1: missing column(s) {missing}; expected "
                            f"{list(LABEL_COLUMNS)}")
        for row in reader:
            line = reader.line_num
            chan = (row["chan_id"] or "").strip()
            where = f"{path}: line {line}, channel '{chan}'"
            if not chan or "/" in chan:
                raise DataError(f"{path}: line {line}: bad chan_id {row['chan_id']!r}")
            spacecraft = (row["spacecraft"] or "").strip()
            if spacecraft not in COLUMNS:
                raise DataError(f"{where}: spacecraft {spacecraft!r} is not one of "
                                f"{sorted(COLUMNS)}")
            text = (row["num_values"] or "").strip()
            if not text.isdigit() or int(text) < 1:
                raise DataError(f"{where}: num_values {text!r} is not a positive integer")
            seqs = _parse_sequences(row["anomaly_sequences"] or "", where)
            entry = ChannelLabels(chan, spacecraft, tuple(seqs), int(text), (line,))
            prev = out.get(chan)
            if prev is not None:
                if (prev.spacecraft, prev.num_values) != (entry.spacecraft, entry.num_values):
                    raise DataError(
                        f"{path}: channel '{chan}' is listed twice and the rows disagree: line "
                        f"{prev.lines[0]} says {prev.spacecraft}, num_values {prev.num_values}; "
                        f"line {line} says {spacecraft}, num_values {entry.num_values}"
                    )
                entry = ChannelLabels(chan, spacecraft,
                                      tuple(sorted(set(prev.sequences) | set(seqs))),
                                      prev.num_values, (*prev.lines, line))
            out[chan] = entry
    return out


# --------------------------------------------------------------------------------------------
# arrays and series


def spacecraft_of(series_id: str) -> str:
    """``"SMAP"`` or ``"MSL"`` for a series id such as ``"SMAP/P-1"``."""
    return _split_id(series_id)[0]


def _split_id(series_id: str) -> tuple[str, str]:
    spacecraft, sep, chan = str(series_id).partition("/")
    if not sep or spacecraft not in COLUMNS or not chan or "/" in chan:
        raise DataError(f"{series_id!r} is not a SMAP/MSL series id; ids look like 'SMAP/P-1' "
                        "or 'MSL/M-6'")
    return spacecraft, chan


def _array_path(raw: Path, part: str, chan: str) -> Path:
    return Path(raw) / part / f"{chan}.npy.gz"


def _array_channels(raw: Path) -> list[str]:
    """Channels with both a train and a test array in ``raw``."""
    train = {p.name.removesuffix(".npy.gz") for p in (Path(raw) / "train").glob("*.npy.gz")}
    test = {p.name.removesuffix(".npy.gz") for p in (Path(raw) / "test").glob("*.npy.gz")}
    return sorted(train & test)


def _columns(path: Path) -> int | None:
    """Column count of an array file, None when it cannot be read (unlabelled channels only,
    so loading the whole array is cheap enough)."""
    try:
        with gzip.open(path, "rb") as fh:
            shape = np.load(fh, allow_pickle=False).shape
    except (OSError, EOFError, ValueError, zlib.error):
        return None
    return int(shape[1]) if len(shape) == 2 else None


def unlabelled_channels(raw: Path) -> list[str]:
    """Channels with arrays in ``raw`` but no row in the label file (upstream: ``T-10``)."""
    labels = read_labels(raw)
    return [c for c in _array_channels(raw) if c not in labels]


def available_series(raw: Path, spacecraft: str) -> list[str]:
    """Labelled series ids of one spacecraft (``"SMAP/P-1"``, ...), sorted.

    Channels with arrays but no label row are left out, with a warning naming them (matched to
    the spacecraft by their column count). A labelled channel whose arrays are missing is an
    error (an incomplete fetch).
    """
    if spacecraft not in COLUMNS:
        raise DataError(f"spacecraft {spacecraft!r} is not one of {sorted(COLUMNS)}")
    raw = Path(raw)
    labels = read_labels(raw)
    arrays = set(_array_channels(raw))
    ids = []
    for chan, entry in labels.items():
        if entry.spacecraft != spacecraft:
            continue
        if chan not in arrays:
            raise DataError(
                f"{raw / LABELS_FILE}: line {entry.lines[0]}, channel '{chan}' is labelled but "
                f"{_array_path(raw, 'train', chan)} or {_array_path(raw, 'test', chan)} is "
                "missing (fetch the smap_msl dataset again)"
            )
        ids.append(f"{spacecraft}/{chan}")
    unlabelled = [c for c in sorted(arrays - set(labels))
                  if _columns(_array_path(raw, "train", c)) == COLUMNS[spacecraft]]
    if unlabelled:
        log.warning("%s: channel(s) %s have arrays but no row in %s: left out (no labels)",
                    spacecraft, ", ".join(unlabelled), raw / LABELS_FILE)
    return sorted(ids)


def read_array(path: Path, columns: int | None = None) -> np.ndarray:
    """Load one gzip'd ``.npy`` array as float64 [time, columns], checked 2-D and finite."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing (fetch the smap_msl dataset first)")
    try:
        with gzip.open(path, "rb") as fh:
            arr = np.load(fh, allow_pickle=False)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable gzip'd .npy array ({exc})") from exc
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise DataError(f"{path}: expected a non-empty 2-D array [time, inputs], got shape "
                        f"{arr.shape}")
    if columns is not None and arr.shape[1] != columns:
        raise DataError(f"{path}: {arr.shape[1]} columns, expected {columns}")
    try:
        arr = arr.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: dtype {arr.dtype} is not numeric ({exc})") from exc
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{path}: row {row} (0-based), column {col}: non-finite value "
                        f"{arr[row, col]} ({int(bad.any(axis=1).sum())} row(s) affected)")
    return arr


def load_series(raw: Path, series_id: str) -> Series:
    """Load one labelled channel as a :class:`Series` (rules in the module docstring)."""
    raw = Path(raw)
    spacecraft, chan = _split_id(series_id)
    labels_file = raw / LABELS_FILE
    labels_of = read_labels(raw)
    train_path, test_path = _array_path(raw, "train", chan), _array_path(raw, "test", chan)
    entry = labels_of.get(chan)
    if entry is None:
        if train_path.is_file() or test_path.is_file():
            raise DataError(f"{series_id}: channel '{chan}' has arrays but no row in "
                            f"{labels_file}: it has no labels (unlabelled channels are not "
                            "listed by available_series)")
        raise DataError(f"{series_id}: unknown channel '{chan}': no row in {labels_file} and no "
                        f"arrays in {raw}")
    lines = ", ".join(map(str, entry.lines))
    if entry.spacecraft != spacecraft:
        raise DataError(f"{labels_file}: line {lines}: channel '{chan}' belongs to "
                        f"{entry.spacecraft}, not {spacecraft} (series id {series_id!r})")
    if len(entry.lines) > 1:
        log.info("%s: channel '%s' is listed on lines %s: their anomaly sequences are merged",
                 labels_file, chan, lines)
    train = read_array(train_path, COLUMNS[spacecraft])
    test = read_array(test_path, COLUMNS[spacecraft])
    if entry.num_values != len(test):
        raise DataError(f"{labels_file}: line {lines}, channel '{chan}': num_values "
                        f"{entry.num_values}, but {test_path} has {len(test)} rows")
    n_train, n = len(train), len(train) + len(test)
    labels = np.zeros(n, dtype=np.int8)
    for start, end in entry.sequences:
        if end >= len(test):
            raise DataError(f"{labels_file}: line {lines}, channel '{chan}': anomaly sequence "
                            f"[{start}, {end}] lies outside the test array {test_path} "
                            f"({len(test)} rows, indices 0..{len(test) - 1})")
        labels[n_train + start:n_train + end + 1] = 1
    windows = windows_from_labels(labels)
    c = train.shape[1]
    report: dict[str, Any] = {
        "train_points": n_train,
        "test_points": len(test),
        "windows": len(windows),
        "labelled_points": int(labels.sum()),
        "spacecraft": spacecraft,
    }
    return Series(
        id=f"{spacecraft}/{chan}",
        timestamps=(CLOCK_START + np.arange(n, dtype=np.int64) * CLOCK_STEP)
        .astype("datetime64[ns]"),
        values=np.concatenate([train, test], axis=0),
        labels=labels,
        windows=windows,
        report=report,
        channel_names=("telemetry", *(f"cmd{i}" for i in range(1, c))),
        segments=np.array([0, n_train], dtype=np.int64),
        learn_end=n_train,
        targets=(0,),
    )
