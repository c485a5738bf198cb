"""Typed parameters: params.yaml is the one source of defaults; errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rnnad.config import Params, ParamsError, SplitParams, load_params

REPO = Path(__file__).resolve().parents[1]


def test_defaults_equal_params_yaml() -> None:
    loaded = load_params(REPO / "params.yaml")
    assert loaded == Params()
    # and every key of params.yaml is a field (extra keys would have been rejected above),
    # with the same value as the code's default
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(raw) == set(Params.model_fields)
    assert Params().model_dump() == Params.model_validate(raw).model_dump()


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("")
    assert load_params(path) == Params()


def test_partial_file_overrides_only_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("model:\n  hidden: 8\npreprocess:\n  series: [realKnownCause, nyc_taxi]\n")
    p = load_params(path)
    assert p.model.hidden == 8
    assert p.model.cell == "lstm"
    assert p.preprocess.series == ["realKnownCause", "nyc_taxi"]
    assert p.train == Params().train


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("model:\n  hiden: 8\n", "model.hiden"),
        ("modle:\n  hidden: 8\n", "modle"),
        ("evaluate:\n  threshold:\n    methd: max\n", "evaluate.threshold.methd"),
    ],
)
def test_unknown_key_is_named(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=rf"params.yaml: {key}: Extra inputs are not permitted"):
        load_params(path)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("model:\n  hidden: 0\n", "model.hidden"),
        ("model:\n  cell: rnn\n", "model.cell"),
        ("train:\n  epochs: many\n", "train.epochs"),
        ("window:\n  length: 1\n", "window.length"),
        ("evaluate:\n  threshold:\n    quantile: 1.5\n", "evaluate.threshold.quantile"),
        ("preprocess:\n  disorder: sort\n", "preprocess.disorder"),
        ("package:\n  model_name: Has Spaces\n", "package.model_name"),
    ],
)
def test_bad_value_is_named(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=rf"params.yaml: {key}: "):
        load_params(path)


def test_fractions_must_leave_a_test_part(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("split:\n  train_fraction: 0.7\n  validation_fraction: 0.3\n")
    with pytest.raises(ParamsError, match=r"split: .*train_fraction \+ split.validation_fraction"):
        load_params(path)
    assert SplitParams(train_fraction=0.7, validation_fraction=0.2).train_fraction == 0.7


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"nope.yaml: not found"):
        load_params(tmp_path / "nope.yaml")
    path = tmp_path / "params.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(ParamsError, match=r"params.yaml: not valid YAML"):
        load_params(path)


def test_params_are_frozen() -> None:
    p = Params()
    with pytest.raises(ValueError, match="frozen"):
        p.model.hidden = 3  # type: ignore[misc]


def test_stage_runner_turns_bad_params_into_one_line(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    from rnnad.cli import run_stage

    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: 0\n")
    ran = []
    with pytest.raises(SystemExit) as info:
        run_stage("train", ran.append, str(path))
    assert info.value.code == 1
    assert ran == []
    err = capsys.readouterr().err
    assert err.startswith("rnnad train: error: ") and "train.epochs" in err
    assert "Traceback" not in err
    path.write_text("")
    run_stage("train", ran.append, str(path))
    assert ran == [Params()]
