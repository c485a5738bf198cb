"""KDD Cup 1999 network connections as one sequence: normal training traffic, then the test set.

Upstream: UCI KDD Archive, "KDD Cup 1999 Data" (from the 1998 DARPA Intrusion Detection
Evaluation, MIT Lincoln Laboratory). :func:`fetch` takes each file from the public copy whose
bytes the manifest pins (``shared/datasets/kddcup99/SOURCE.md``: UCI's own ``corrected.gz``
differs from it in the gzip header and its ``kddcup.names`` could not be matched byte for
byte); every file is checked against ``rnnad/manifests/kddcup99.tsv``. With
``RNNAD_DATA_MIRROR`` set, files are copied from ``<mirror>/kddcup99/``.

How the data become one :class:`Series` (id ``kddcup99``); records keep file order, and the
record is the time step:

- **Learn part** (``[0, learn_end)``): the ``normal.`` records of
  ``kddcup.data_10_percent.gz`` in file order (97,278). The attacks of that file are not used.
- **Test part** (from ``learn_end``): every record of ``corrected.gz`` in file order (311,029).
  ``segments = [0, learn_end]``: no model window spans the two files.
- **Labels**: 1 for every non-``normal.`` record of the test part; the learn part has none.
  Label windows are the runs of 1.
- **Channels**: the 41 features of ``kddcup.names``, in its order. The three textual symbolic
  features (``protocol_type``, ``service``, ``flag``) are one-hot encoded with the vocabulary of
  the learn records, sorted (channels ``protocol_type=tcp``, ``service=http``, ...). A symbol
  never seen there maps to an all-zero block; such records are counted per feature in
  ``report["unseen_symbols"]`` (the symbols in ``report["unseen_symbol_values"]``). The
  0/1 features that ``kddcup.names`` also calls symbolic (``land``, ``logged_in``,
  ``is_host_login``, ``is_guest_login``) and all numeric features are kept raw: the pipeline's
  scaler standardises them on the training part.
- **Constant channels are kept**: a feature constant over the normal learn records can
  still depart from that constant in an attack (``wrong_fragment`` is 0 in every normal
  training record and not in teardrop or pod), which is just what an anomaly detector should
  see; the pipeline's scaler gives a zero-spread channel a scale of 1. They are listed in
  ``report["constant_channels"]`` (``report["dropped_channels"]`` is always empty).
- **timestamps**: synthetic, ``2000-01-01 00:00:00`` plus one second per record.
- **extra**: ``attack`` (the label without its trailing dot, e.g. ``normal``, ``smurf``) and
  ``category`` (``normal``, ``dos``, ``probe``, ``r2l``, ``u2r``), fixed-width unicode.

Attack categories: the 22 training attacks from ``training_attack_types``; the 17 attacks that
appear only in ``corrected`` from :data:`NEW_ATTACKS`, the KDD Cup 1999 test-set grouping (the
one behind the test set's published class sizes: normal 60,593, dos 229,853, probe 4,166,
r2l 16,189, u2r 228). Note that ``httptunnel`` is u2r there, while the DARPA 1999 evaluation's
taxonomy (Lippmann et al., 2000) lists it as r2l. A label in neither table is a
:class:`DataError` naming it.

Errors: a record with another number of fields than 42, or an empty or non-numeric value in a
numeric feature, is a :class:`DataError` naming the file and line.
"""

from __future__ import annotations

import gzip
import itertools
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnad.datasets.fetch import fetch_files, read_manifest
from rnnad.datasets.series import DataError, Series, measured_points, windows_from_labels

FOLDER = "kddcup99"
SERIES_ID = "kddcup99"
TRAIN_FILE = "kddcup.data_10_percent.gz"
TEST_FILE = "corrected.gz"
NAMES_FILE = "kddcup.names"
TYPES_FILE = "training_attack_types"
# The public copies whose bytes the manifest pins (SOURCE.md), at fixed commits.
URLS = {
    TRAIN_FILE: "https://raw.githubusercontent.com/Kapetis/ST2/"
                "6d94539ad0398088efa114c7749637d61a2b4f10/kddcup.data_10_percent.gz",
    TEST_FILE: "https://raw.githubusercontent.com/raghavpatel2507/"
               "Celebal_Technology_Internship/2ce5fd14fd5e8084b797efb510cb9d3cdd3c1413/"
               "corrected.gz",
    NAMES_FILE: "https://raw.githubusercontent.com/samsja/network_intrusion_detection/"
                "5552b8c3b17b1aa4a1e18c0cbc0b96abcb1894ba/data/kddcup.names",
    TYPES_FILE: "https://raw.githubusercontent.com/samsja/network_intrusion_detection/"
                "5552b8c3b17b1aa4a1e18c0cbc0b96abcb1894ba/data/training_attack_types",
}
ONE_HOT = ("protocol_type", "service", "flag")
LABEL = "label"
NORMAL = "normal"
CATEGORIES = (NORMAL, "dos", "probe", "r2l", "u2r")
# Attacks of corrected.gz absent from the training data, with their KDD Cup 1999 categories.
NEW_ATTACKS: dict[str, str] = {
    "apache2": "dos", "mailbomb": "dos", "processtable": "dos", "udpstorm": "dos",
    "mscan": "probe", "saint": "probe",
    "named": "r2l", "sendmail": "r2l", "snmpgetattack": "r2l", "snmpguess": "r2l",
    "worm": "r2l", "xlock": "r2l", "xsnoop": "r2l",
    "httptunnel": "u2r", "ps": "u2r", "sqlattack": "u2r", "xterm": "u2r",
}
START = np.datetime64("2000-01-01T00:00:00", "ns")
STEP = np.timedelta64(1, "s")


def manifest_path() -> Path:
    return Path(str(resources.files("rnnad") / "manifests" / "kddcup99.tsv"))


def fetch(dest: Path, *, retries: int = 3, timeout_s: float = 60.0) -> list[Path]:
    """Fetch every KDD Cup 99 file in the manifest into ``dest``, sha256-verified; from
    ``$RNNAD_DATA_MIRROR/kddcup99/`` when that is set."""
    entries = read_manifest(manifest_path())
    return fetch_files(entries, dest, FOLDER, URLS.__getitem__, retries=retries,
                       timeout_s=timeout_s)


def available_series(raw: Path) -> list[str]:
    """The one series, ``kddcup99``, after checking its files exist."""
    for name in (TRAIN_FILE, TEST_FILE, NAMES_FILE, TYPES_FILE):
        _require(raw / name)
    return [SERIES_ID]


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: missing; run the fetch stage (or set RNNAD_DATA_MIRROR)")
    return path


# --------------------------------------------------------------------------- reading


def read_names(path: Path) -> list[str]:
    """The 41 feature names of ``kddcup.names`` (first line: the class list; then
    ``name: continuous.`` or ``name: symbolic.`` per feature)."""
    names = []
    for lineno, line in enumerate(path.read_text().splitlines()[1:], start=2):
        if not line.strip():
            continue
        m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(continuous|symbolic)\.?\s*", line)
        if m is None:
            raise DataError(f"{path}: line {lineno}: expected 'name: continuous.' or "
                            f"'name: symbolic.', got {line!r}")
        names.append(m.group(1))
    missing = [n for n in ONE_HOT if n not in names]
    if len(names) != 41 or len(set(names)) != 41 or missing:
        raise DataError(f"{path}: expected 41 distinct features including "
                        f"{', '.join(ONE_HOT)}; got {len(names)} (missing: {missing})")
    return names


def read_attack_types(path: Path) -> dict[str, str]:
    """``attack -> category`` from ``training_attack_types`` (``name category`` per line)."""
    table = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in CATEGORIES[1:]:
            raise DataError(f"{path}: line {lineno}: expected 'attack category' with a "
                            f"category among {', '.join(CATEGORIES[1:])}, got {line!r}")
        table[parts[0]] = parts[1]
    if not table:
        raise DataError(f"{path}: no attack types")
    return table


def _line(path: Path, lineno: int) -> str:
    with gzip.open(path, "rt", errors="replace") as fh:
        return next(itertools.islice(fh, lineno - 1, None), "").rstrip("\n")


def read_records(path: Path, features: list[str]) -> pd.DataFrame:
    """One row per record (41 features and ``label``), in file order, checked."""
    columns = [*features, LABEL]
    text_columns = {*ONE_HOT, LABEL}
    try:
        df = pd.read_csv(path, names=columns, header=None, index_col=False,
                         compression="gzip", skip_blank_lines=False, low_memory=False,
                         dtype={c: str for c in text_columns})
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m is None:
            raise DataError(f"{path}: cannot parse: {exc}") from exc
        raise DataError(f"{path}: line {m.group(2)}: expected {len(columns)} comma-separated "
                        f"fields, got {m.group(3)}") from exc
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read as gzip text: {exc}") from exc
    if df.empty:
        raise DataError(f"{path}: no records")
    missing = df.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing.any(axis=1))[0])
        line = _line(path, row + 1)
        fields = len(line.split(",")) if line.strip() else 0
        if fields != len(columns):
            raise DataError(f"{path}: line {row + 1}: expected {len(columns)} comma-separated "
                            f"fields, got {fields}")
        col = columns[int(np.flatnonzero(missing[row])[0])]
        raise DataError(f"{path}: line {row + 1}: field '{col}' is empty")
    for col in features:
        if col in text_columns:
            continue
        if not pd.api.types.is_numeric_dtype(df[col]):
            bad = pd.to_numeric(df[col], errors="coerce").isna().to_numpy()
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: line {row + 1}: field '{col}': {df[col].iloc[row]!r} is "
                            "not a number")
        finite = np.isfinite(df[col].to_numpy(dtype=np.float64))
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            raise DataError(f"{path}: line {row + 1}: field '{col}': {df[col].iloc[row]} is "
                            "not finite")
    return df


def _categories(attacks: np.ndarray, table: dict[str, str], path: Path) -> np.ndarray:
    known = {NORMAL: NORMAL, **table, **NEW_ATTACKS}
    unknown = sorted(set(np.unique(attacks).tolist()) - set(known))
    if unknown:
        raise DataError(f"{path}: unknown label(s) {', '.join(unknown)}: neither in "
                        f"{TYPES_FILE} nor among the attacks new in {TEST_FILE} "
                        "(rnnad.datasets.kddcup99.NEW_ATTACKS)")
    uniq, inverse = np.unique(attacks, return_inverse=True)
    return np.array([known[a] for a in uniq.tolist()], dtype=f"<U{max(map(len, CATEGORIES))}"
                    )[inverse]


def _attacks(df: pd.DataFrame) -> np.ndarray:
    labels = df[LABEL].str.strip().str.removesuffix(".")
    return labels.to_numpy(dtype=str)


# --------------------------------------------------------------------------- loading


def load_series(raw: Path, series_id: str = SERIES_ID) -> Series:
    """Load the one KDD Cup 99 series; see the module doc for the rules."""
    if series_id != SERIES_ID:
        raise DataError(f"KDD Cup 99: unknown series {series_id!r}; the only one is "
                        f"{SERIES_ID!r}")
    train_path, test_path = _require(raw / TRAIN_FILE), _require(raw / TEST_FILE)
    features = read_names(_require(raw / NAMES_FILE))
    table = read_attack_types(_require(raw / TYPES_FILE))

    train = read_records(train_path, features)
    train_attacks = _attacks(train)
    _categories(train_attacks, table, train_path)
    learn_mask = train_attacks == NORMAL
    if not learn_mask.any():
        raise DataError(f"{train_path}: no '{NORMAL}.' record to learn from")
    learn = train[learn_mask].reset_index(drop=True)
    test = read_records(test_path, features)
    test_attacks = _attacks(test)
    test_categories = _categories(test_attacks, table, test_path)
    learn_end = len(learn)
    n = learn_end + len(test)
    both = pd.concat([learn, test], ignore_index=True)

    numeric = [c for c in features if c not in ONE_HOT]
    vocabs = {col: sorted(set(learn[col].tolist())) for col in ONE_HOT}
    names: list[str] = []
    for col in features:
        names.extend([f"{col}={v}" for v in vocabs[col]] if col in ONE_HOT else [col])
    values = np.zeros((n, len(names)), dtype=np.float64)
    unseen: dict[str, int] = {}
    unseen_values: dict[str, list[str]] = {}
    j = 0
    for col in features:
        if col not in ONE_HOT:
            values[:, j] = both[col].to_numpy(dtype=np.float64)
            j += 1
            continue
        vocab = vocabs[col]
        codes = pd.Index(vocab).get_indexer(both[col]).astype(np.int64)  # -1: unseen
        seen = codes >= 0
        values[np.flatnonzero(seen), j + codes[seen]] = 1.0
        unseen[col] = int((~seen).sum())
        unseen_values[col] = sorted(set(both[col][~seen].tolist()))
        j += len(vocab)
    constant = np.ptp(values[:learn_end], axis=0) == 0
    constant_names = [name for name, c in zip(names, constant, strict=True) if c]

    labels = np.zeros(n, dtype=np.int8)
    labels[learn_end:] = test_attacks != NORMAL
    attack = np.concatenate([np.full(learn_end, NORMAL), test_attacks])
    category = np.concatenate([np.full(learn_end, NORMAL), test_categories])
    width = max(len(a) for a in attack.tolist())
    train_attack_set = set(train_attacks.tolist()) - {NORMAL}
    new_in_test = sorted(set(test_attacks.tolist()) - train_attack_set - {NORMAL})
    windows = windows_from_labels(labels)
    report: dict[str, Any] = {
        "learn_records": learn_end,
        "test_records": len(test),
        "train_file_records": len(train),
        "labelled_points": int(labels.sum()),
        "windows": len(windows),
        "test_records_by_category": {c: int((test_categories == c).sum()) for c in CATEGORIES},
        "new_attacks": new_in_test,
        "one_hot_features": list(ONE_HOT),
        "numeric_features": len(numeric),
        "unseen_symbols": unseen,
        "unseen_symbol_values": unseen_values,
        "constant_channels": constant_names,
        "dropped_channels": [],
        "timestamps": "synthetic: 2000-01-01 00:00:00 plus one second per record",
    }
    return Series(
        id=SERIES_ID,
        timestamps=START + np.arange(n) * STEP,
        values=values,
        labels=labels,
        windows=windows,
        report=report,
        channel_names=tuple(names),
        segments=np.array([0, learn_end], dtype=np.int64),
        learn_end=learn_end,
        extra={"attack": attack.astype(f"<U{width}"),
               "category": category.astype(f"<U{max(map(len, CATEGORIES))}")},
    )


# --------------------------------------------------------------------------- measures


def extra_measures(series: Series, flags: np.ndarray,
                   test: np.ndarray) -> dict[str, float | int | None]:
    """Recall per attack category over the measured test records, and on the new attacks.

    ``flags`` (0/1 per record) and ``test`` (bool, the measured records) cover the whole
    series; only measured records at or after ``learn_end`` count.

    - ``recall_<category>`` (dos, probe, r2l, u2r): flagged / all measured records of that
      category (None when there are none); ``records_<category>``: their count (normal too);
    - ``recall_new_attacks``: the same over the attacks absent from the training file
      (:data:`NEW_ATTACKS`), with ``records_new_attacks``;
    - ``flag_rate_normal``: the fraction of measured normal records flagged (false alarms).
    """
    flags, measured = measured_points(series, flags, test, ("attack", "category"), "KDD Cup 99")
    category = np.asarray(series.extra["category"]).astype(str)[measured]
    attack = np.asarray(series.extra["attack"]).astype(str)[measured]
    flag = flags[measured]

    def rate(mask: np.ndarray) -> float | None:
        count = int(mask.sum())
        return round(float(flag[mask].sum()) / count, 6) if count else None

    out: dict[str, float | int | None] = {}
    for cat in CATEGORIES[1:]:
        out[f"recall_{cat}"] = rate(category == cat)
    new = np.isin(attack, list(NEW_ATTACKS))
    out["recall_new_attacks"] = rate(new)
    out["flag_rate_normal"] = rate(category == NORMAL)
    for cat in CATEGORIES:
        out[f"records_{cat}"] = int((category == cat).sum())
    out["records_new_attacks"] = int(new.sum())
    return out
