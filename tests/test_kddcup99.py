"""KDD Cup 99: learn/test layout, one-hot encoding, categories, bad input, recall measures."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnad.datasets import kddcup99 as kdd
from rnnad.datasets.fetch import MIRROR_ENV, read_manifest
from rnnad.datasets.series import DataError, Series

# A synthetic schema: the three textual symbolic features and 38 numeric ones.
FEATURES = ["duration", "protocol_type", "service", "flag", *(f"f{i}" for i in range(5, 42))]


def _record(proto: str, service: str, flag: str, label: str, duration: int = 0,
            f5: float = 0.0) -> str:
    numeric = [f"{f5:g}"] + ["0"] * 36
    return ",".join([str(duration), proto, service, flag, *numeric, label])


TRAIN = [
    _record("tcp", "http", "SF", "normal.", 1, 0.5),
    _record("icmp", "ecr_i", "SF", "smurf.", 0, 9.0),  # attacks of the training file: unused
    _record("udp", "domain_u", "SF", "normal.", 2, 0.25),
    _record("tcp", "ftp", "REJ", "normal.", 3, 0.0),
    _record("tcp", "private", "S0", "neptune.", 0, 7.0),
]
TEST = [
    _record("tcp", "http", "SF", "normal.", 4, 0.1),
    _record("tcp", "gopher", "SF", "normal.", 5, 0.2),  # service unseen in the learn records
    _record("tcp", "smtp", "SF", "mailbomb.", 0, 0.3),  # new dos
    _record("icmp", "ecr_i", "SF", "smurf.", 0, 0.4),  # protocol icmp unseen (attack only)
    _record("tcp", "http", "SF", "httptunnel.", 0, 0.5),  # new u2r
    _record("udp", "snmp", "SF", "snmpgetattack.", 0, 0.6),  # new r2l, service unseen
    _record("tcp", "ftp", "SH", "ipsweep.", 0, 0.7),  # probe, flag unseen
]


def _write_gz(path: Path, lines: list[str]) -> None:
    with gzip.open(path, "wt") as fh:
        fh.write("".join(line + "\n" for line in lines))


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    raw = tmp_path / "kdd"
    raw.mkdir()
    (raw / kdd.NAMES_FILE).write_text(
        "normal,smurf,neptune.\n" + "".join(
            f"{n}: {'symbolic' if n in kdd.ONE_HOT else 'continuous'}.\n" for n in FEATURES))
    (raw / kdd.TYPES_FILE).write_text("smurf dos\nneptune dos\nipsweep probe\nrootkit u2r\n\n")
    _write_gz(raw / kdd.TRAIN_FILE, TRAIN)
    _write_gz(raw / kdd.TEST_FILE, TEST)
    return raw


def test_layout_encoding_and_labels(tiny: Path) -> None:
    assert kdd.available_series(tiny) == ["kddcup99"]
    s = kdd.load_series(tiny, "kddcup99")
    assert len(s) == 3 + 7 and s.learn_end == 3
    assert s.segments.tolist() == [0, 3]
    assert s.labels.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert s.windows.tolist() == [[5, 9]]
    assert s.extra["attack"].tolist() == ["normal"] * 5 + [
        "mailbomb", "smurf", "httptunnel", "snmpgetattack", "ipsweep"]
    assert s.extra["attack"].dtype.kind == "U" and s.extra["category"].dtype.kind == "U"
    assert s.extra["category"].tolist() == ["normal"] * 5 + ["dos", "dos", "u2r", "r2l", "probe"]
    names = s.channel_names
    assert names[:1] == ("duration",)
    # vocabularies of the three normal training records, sorted
    onehot = [n for n in names if "=" in n]
    assert onehot == ["protocol_type=tcp", "protocol_type=udp", "service=domain_u",
                      "service=ftp", "service=http", "flag=REJ", "flag=SF"]
    assert len(names) == 38 + len(onehot)  # constant channels are kept
    v = dict(zip(names, s.values.T, strict=True))
    assert v["duration"].tolist() == [1, 2, 3, 4, 5, 0, 0, 0, 0, 0]
    assert v["f5"].tolist() == [0.5, 0.25, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert v["service=http"].tolist() == [1, 0, 0, 1, 0, 0, 0, 1, 0, 0]
    block = s.values[:, [names.index(n) for n in onehot if n.startswith("service=")]]
    assert block[[4, 5, 6, 8]].sum() == 0  # gopher, smtp, ecr_i, snmp: unseen -> all zero
    assert block[[0, 1, 2, 3, 7, 9]].sum(axis=1).tolist() == [1] * 6
    protocol = s.values[:, [names.index(n) for n in onehot if n.startswith("protocol_type=")]]
    assert protocol[6].sum() == 0 and protocol[[0, 5, 7]].sum() == 3
    assert s.report["unseen_symbols"] == {"protocol_type": 1, "service": 4, "flag": 1}
    assert s.report["unseen_symbol_values"]["service"] == ["ecr_i", "gopher", "smtp", "snmp"]
    assert "f6" in s.report["constant_channels"] and s.report["dropped_channels"] == []
    assert s.report["new_attacks"] == ["httptunnel", "ipsweep", "mailbomb", "snmpgetattack"]
    assert s.report["test_records_by_category"] == {"normal": 2, "dos": 2, "probe": 1, "r2l": 1,
                                                    "u2r": 1}
    assert s.timestamps[0] == np.datetime64("2000-01-01T00:00:00")
    assert (np.diff(s.timestamps) == np.timedelta64(1, "s")).all()
    json.dumps(s.report)


def test_save_load_roundtrip(tiny: Path, tmp_path: Path) -> None:
    s = kdd.load_series(tiny, "kddcup99")
    s.save(tmp_path / "k.npz")
    back = Series.load(tmp_path / "k.npz")
    assert back.extra["attack"].tolist() == s.extra["attack"].tolist()
    assert back.segments.tolist() == [0, 3] and back.learn_end == 3


@pytest.mark.parametrize(
    ("which", "index", "line", "message"),
    [
        (kdd.TEST_FILE, 2, None, r"line 3: expected 42 comma-separated fields, got 43"),
        (kdd.TEST_FILE, 4, "drop", r"line 5: expected 42 comma-separated fields, got 41"),
        (kdd.TRAIN_FILE, 1, "", r"line 2: expected 42 comma-separated fields, got 0"),
        (kdd.TEST_FILE, 3, _record("tcp", "http", "SF", "normal.").replace(",0,", ",x,", 1),
         r"line 4: field 'f5': 'x' is not a number"),
        (kdd.TEST_FILE, 1, _record("tcp", "http", "SF", "normal.").replace(",0,", ",,", 1),
         r"line 2: field 'f5' is empty"),
        (kdd.TEST_FILE, 6, _record("tcp", "http", "SF", "normal.").replace(",0,", ",inf,", 1),
         r"line 7: field 'f5': inf is not finite"),
    ],
)
def test_bad_records(tiny: Path, which: str, index: int, line: str | None, message: str) -> None:
    lines = list(TRAIN if which == kdd.TRAIN_FILE else TEST)
    if line is None:
        lines[index] = lines[index].replace(",normal.", ",0,normal.").replace(
            ",mailbomb.", ",0,mailbomb.")
    elif line == "drop":
        lines[index] = lines[index].replace(",0,", ",", 1)
    else:
        lines[index] = line
    _write_gz(tiny / which, lines)
    with pytest.raises(DataError, match=message) as info:
        kdd.load_series(tiny, "kddcup99")
    assert which in str(info.value)


def test_unknown_label(tiny: Path) -> None:
    _write_gz(tiny / kdd.TEST_FILE, [*TEST, _record("tcp", "http", "SF", "teleport.")])
    with pytest.raises(DataError, match=r"corrected.gz: unknown label\(s\) teleport"):
        kdd.load_series(tiny, "kddcup99")


def test_bad_side_files(tiny: Path) -> None:
    (tiny / kdd.TYPES_FILE).write_text("smurf dos\nneptune flood\n")
    with pytest.raises(DataError, match=r"training_attack_types: line 2"):
        kdd.load_series(tiny, "kddcup99")
    (tiny / kdd.NAMES_FILE).write_text("normal.\nduration: continuous.\n")
    with pytest.raises(DataError, match=r"kddcup.names: expected 41 distinct features"):
        kdd.load_series(tiny, "kddcup99")
    with pytest.raises(DataError, match="unknown series"):
        kdd.load_series(tiny, "other")
    (tiny / kdd.TEST_FILE).unlink()
    with pytest.raises(DataError, match=r"corrected.gz: missing"):
        kdd.available_series(tiny)


def test_new_attack_table() -> None:
    assert len(kdd.NEW_ATTACKS) == 17
    assert set(kdd.NEW_ATTACKS.values()) == {"dos", "probe", "r2l", "u2r"}
    assert kdd.NEW_ATTACKS["httptunnel"] == "u2r" and kdd.NEW_ATTACKS["mscan"] == "probe"


# --------------------------------------------------------------------------- measures


def test_recall_known_answer() -> None:
    attack = np.array(["normal"] * 4 + ["normal", "normal", "smurf", "smurf", "mailbomb",
                                        "ipsweep", "snmpguess", "guess_passwd", "normal"])
    category = np.array(["normal"] * 6 + ["dos", "dos", "dos", "probe", "r2l", "r2l",
                                          "normal"])
    n = len(attack)
    labels = (category != "normal").astype(np.int8)
    s = Series("kddcup99", np.datetime64("2000-01-01", "ns") + np.arange(n) * np.timedelta64(
        1, "s"), np.zeros((n, 1)), labels, np.zeros((0, 2), dtype=np.int64), learn_end=4,
        segments=np.array([0, 4]), extra={"attack": attack, "category": category})
    flags = np.array([1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0], dtype=np.int8)
    test = np.ones(n, dtype=bool)
    test[7] = False  # the second smurf is not measured
    out = kdd.extra_measures(s, flags, test)
    assert out == {
        "recall_dos": 1.0, "recall_probe": 1.0, "recall_r2l": 0.5, "recall_u2r": None,
        "recall_new_attacks": 1.0, "flag_rate_normal": 0.333333,
        "records_normal": 3, "records_dos": 2, "records_probe": 1, "records_r2l": 2,
        "records_u2r": 0, "records_new_attacks": 2,
    }
    json.dumps(out)


# --------------------------------------------------------------------------- real data


def _raw(mirror: Path) -> Path:
    raw = mirror / "kddcup99"
    if not (raw / kdd.TEST_FILE).is_file():
        pytest.skip("no KDD Cup 99 in the shared datasets")
    return raw


def test_packaged_manifest_and_fetch(mirror: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _raw(mirror)
    assert read_manifest(kdd.manifest_path()) == read_manifest(raw / "MANIFEST.tsv")
    assert set(kdd.URLS) == {e.path for e in read_manifest(kdd.manifest_path())}
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    files = kdd.fetch(tmp_path / "raw")
    assert len(files) == 4 and all(f.is_file() for f in files)


def test_real_data(mirror: Path) -> None:
    raw = _raw(mirror)
    s = kdd.load_series(raw, "kddcup99")
    assert s.learn_end == 97_278
    assert len(s) == 97_278 + 311_029
    assert s.segments.tolist() == [0, 97_278]
    assert int(s.labels.sum()) == 250_436
    by_cat = s.report["test_records_by_category"]
    # the KDD Cup 1999 test set's published class sizes
    assert by_cat == {"normal": 60_593, "dos": 229_853, "probe": 4_166, "r2l": 16_189,
                      "u2r": 228}
    assert sum(by_cat.values()) == 311_029
    assert s.report["new_attacks"] == sorted(kdd.NEW_ATTACKS)
    categories, counts = np.unique(s.extra["category"][s.learn_end:], return_counts=True)
    assert dict(zip(categories.tolist(), counts.tolist(), strict=True)) == by_cat
    # one-hot width: the symbols of the normal training records, read independently
    train = pd.read_csv(raw / kdd.TRAIN_FILE, header=None, usecols=[1, 2, 3, 41])
    normal = train[train[41] == "normal."]
    width = sum(normal[c].nunique() for c in (1, 2, 3))
    onehot = [n for n in s.channel_names if "=" in n]
    assert len(onehot) == width
    assert s.channels == 38 + width
    assert s.report["unseen_symbols"]["protocol_type"] == 0
    flags = (s.labels == 1).astype(np.int8)
    out = kdd.extra_measures(s, flags, np.ones(len(s), dtype=bool))
    assert out["recall_dos"] == out["recall_u2r"] == out["recall_new_attacks"] == 1.0
    assert out["flag_rate_normal"] == 0.0 and out["records_u2r"] == 228
