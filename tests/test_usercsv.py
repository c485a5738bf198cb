"""data.dataset csv: the user's own file, labels from a 0/1 column or a JSON file of windows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnad.config import CsvParams
from rnnad.datasets import usercsv
from rnnad.datasets.series import DataError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "machine.csv"


def load(tmp_path: Path, params: CsvParams, root: Path | None = None):
    raw = tmp_path / "raw"
    usercsv.fetch(raw, params, root=root or tmp_path)
    [sid] = usercsv.available_series(raw, params)
    return usercsv.load_series(raw, sid, params, max_nan_run=10, disorder="keep", gap_factor=3)


def write(tmp_path: Path, text: str, name: str = "m.csv") -> str:
    (tmp_path / name).write_text(text)
    return name


def test_the_example_csv_loads_with_three_channels_and_its_labels(tmp_path: Path) -> None:
    s = load(tmp_path, CsvParams(), root=REPO)
    assert s.id == "machine" and s.values.shape == (6000, 3)
    assert s.channel_names == ("temperature", "vibration", "pressure")
    assert int(s.labels.sum()) == 266 and len(s.windows) == 4  # the four injected faults
    assert s.windows.tolist()[0] == [1800, 1807]
    record = json.loads((tmp_path / "raw" / usercsv.SOURCE_FILE).read_text())
    assert record["path"]["source"] == "examples/machine.csv"
    assert len(record["path"]["sha256"]) == 64


def test_the_example_csv_is_what_its_seeded_script_writes(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_machine_csv",
                                                  REPO / "examples" / "make_machine_csv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make().to_csv(tmp_path / "again.csv", index=False)
    assert (tmp_path / "again.csv").read_bytes() == EXAMPLE.read_bytes()


def test_chosen_value_columns_and_labels_from_a_windows_file(tmp_path: Path) -> None:
    name = write(tmp_path, "time,a,b,c\n" + "".join(
        f"2024-01-01 00:{m:02d}:00,{m},{2 * m},{m % 3}\n" for m in range(40)))
    (tmp_path / "w.json").write_text(json.dumps([["2024-01-01 00:10:00", "2024-01-01 00:12:00"]]))
    s = load(tmp_path, CsvParams(path=name, timestamp_column="time", value_columns=["c", "a"],
                                 label_column=None, labels_file="w.json"))
    assert s.channel_names == ("c", "a") and s.values[5].tolist() == [2.0, 5.0]
    assert s.windows.tolist() == [[10, 12]] and int(s.labels.sum()) == 3


def test_a_file_without_the_default_label_column_is_unlabelled(tmp_path: Path) -> None:
    name = write(tmp_path, "timestamp,x\n" + "".join(
        f"2024-01-01 00:{m:02d}:00,{m}\n" for m in range(40)))
    s = load(tmp_path, CsvParams(path=name))
    assert s.channel_names == ("x",) and s.labels.sum() == 0 and len(s.windows) == 0


@pytest.mark.parametrize(("text", "params", "message"), [
    ("timestamp,x,label\n2024-01-01,1,0\n2024-01-02,2,yes\n", {},
     r"column 'label', row 3: label must be 0 or 1, got 'yes'"),
    ("timestamp,x\n2024-01-01,1\n2024-01-02,oops\n", {"label_column": None},
     r"column 'x', row 3: not a number: 'oops'"),
    ("timestamp,x\n2024-01-01,1\n", {"label_column": "anomaly", "value_columns": ["x"]},
     r"no label column 'anomaly'"),
    ("time,x\n2024-01-01,1\n", {"label_column": None}, r"no 'timestamp' column"),
])
def test_bad_files_name_the_file_column_and_row(tmp_path: Path, text: str, params: dict,
                                                message: str) -> None:
    name = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as caught:
        load(tmp_path, CsvParams(path=name, **params))
    assert str(caught.value).startswith(name)  # the user's file, not the pipeline's copy


def test_a_missing_file_names_the_param(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data.csv.path: .*nope.csv does not exist"):
        usercsv.fetch(tmp_path / "raw", CsvParams(path="nope.csv"), root=tmp_path)


def test_a_bad_windows_file_is_an_error(tmp_path: Path) -> None:
    name = write(tmp_path, "timestamp,x\n" + "".join(
        f"2024-01-01 00:{m:02d}:00,{m}\n" for m in range(10)))
    (tmp_path / "w.json").write_text('{"not": "a list"}')
    with pytest.raises(DataError, match=r"w\.json: expected a JSON list"):
        load(tmp_path, CsvParams(path=name, label_column=None, labels_file="w.json"))
