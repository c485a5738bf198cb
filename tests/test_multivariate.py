"""Multivariate series, segments, the dataset's own split, target channels and per-channel
error scales: the pieces every dataset beyond NAB goes through, on hand-checked cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rnnad.config import ModelParams, Params, SplitParams, TrainParams
from rnnad.datasets.registry import DATASETS, get_dataset
from rnnad.datasets.series import DataError, Series, select_series, windows_from_labels
from rnnad.models.encdec import build_model
from rnnad.models.training import fit
from rnnad.pipeline.train import error_scale, resolve_targets, training_windows
from rnnad.scoring import channel_errors, score_points, window_scores
from rnnad.split import Split, make_split
from rnnad.windows import window_ends, within_segments

REPO = Path(__file__).resolve().parents[1]


def series(n: int = 100, channels: int = 3, **kw) -> Series:
    ts = np.datetime64("2000-01-01") + np.arange(n).astype("timedelta64[m]")
    labels = np.zeros(n, dtype=np.int8)
    labels[70:75] = 1
    return Series("s", ts, np.random.default_rng(0).normal(size=(n, channels)), labels,
                  windows_from_labels(labels), **kw)


def test_series_round_trip_keeps_every_optional_field(tmp_path: Path) -> None:
    s = series(segments=[0, 40, 60], learn_end=40, targets=(0, 2),
               channel_names=("a", "b", "c"),
               extra={"rul": np.arange(100), "kind": np.array(["x"] * 100)})
    s.save(tmp_path / "s.npz")
    back = Series.load(tmp_path / "s.npz")
    assert back.channel_names == ("a", "b", "c") and back.targets == (0, 2)
    assert back.learn_end == 40 and back.segments.tolist() == [0, 40, 60]
    np.testing.assert_array_equal(back.extra["rul"], np.arange(100))
    assert back.extra["kind"][0] == "x"
    plain = series()
    assert plain.channel_names == ("ch0", "ch1", "ch2") and plain.targets is None
    assert plain.segments.tolist() == [0] and plain.learn_end is None


@pytest.mark.parametrize(("kw", "message"), [
    ({"segments": [5, 40]}, "segment starts must begin at 0"),
    ({"segments": [0, 40, 40]}, "segment starts"),
    ({"segments": [0, 100]}, "segment starts"),
    ({"learn_end": 100}, "learn_end 100 outside"),
    ({"targets": (3,)}, "target channels"),
    ({"channel_names": ("a", "a", "b")}, "distinct names"),
    ({"extra": {"rul": np.arange(5)}}, "extra array 'rul'"),
])
def test_series_rejects_inconsistent_fields(kw: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        series(**kw)


def test_windows_from_labels() -> None:
    y = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1])
    assert windows_from_labels(y).tolist() == [[0, 1], [4, 4], [6, 8]]
    assert windows_from_labels(np.zeros(4)).shape == (0, 2)


def test_select_series_on_ids_without_a_category() -> None:
    assert select_series(["FD001"], "all") == ["FD001"]
    assert select_series(["SMAP/A-1", "SMAP/P-1", "MSL/C-1"], "P-1") == ["SMAP/P-1"]
    assert select_series(["SMAP/A-1", "MSL/C-1"], "MSL") == ["MSL/C-1"]
    with pytest.raises(DataError, match="series ids: FD001"):
        select_series(["FD001"], "FD009")


def test_windows_never_cross_a_segment_start() -> None:
    ends = window_ends(20, 4)
    inside = within_segments(ends, 4, np.array([0, 8, 10]))
    # windows [e-3, e]: inside [0, 8) for e <= 7, inside [10, 20) for e >= 13; [8, 10) too short
    assert ends[inside].tolist() == [3, 4, 5, 6, 7, 13, 14, 15, 16, 17, 18, 19]
    assert within_segments(ends, 4, None).all()


def test_the_datasets_own_split_wins_over_the_protocol() -> None:
    split = make_split(1000, SplitParams(protocol="nab", val_fraction=0.25), learn_end=400)
    assert split == Split(n=1000, train_end=300, val_end=400)
    assert make_split(1000, SplitParams(protocol="nab")).val_end == 150  # NAB: 15%


def test_training_windows_respect_segments_labels_and_the_cap() -> None:
    x = np.arange(200, dtype=float)[:, None]
    labels = np.zeros(200, dtype=np.int8)
    labels[50] = 1
    split = Split(n=200, train_end=100, val_end=150)
    train, val = training_windows(x, labels, split, 10, 1, np.array([0, 30, 120]))
    starts = train[:, 0, 0]
    ends = train[:, -1, 0]
    assert not ((starts < 30) & (ends >= 30)).any()  # no window crosses 30
    assert not ((starts <= 50) & (ends >= 50)).any()  # none holds the labelled point
    assert ends.max() < 100
    assert val[:, -1, 0].min() >= 100 and not ((val[:, 0, 0] < 120) & (val[:, -1, 0] >= 120)).any()
    capped, _ = training_windows(x, labels, split, 10, 1, np.array([0, 30, 120]), max_windows=7)
    assert len(capped) == 7
    assert capped[0, 0, 0] == starts[0] and capped[-1, 0, 0] == starts[-1]  # spread, ends kept


def test_scores_scale_each_channel_by_its_validation_error() -> None:
    # a reconstructor that answers zeros: the error of a channel is its value squared
    x = np.tile(np.array([1.0, 5.0, 2.0]), (10, 1))
    zeros = lambda b: np.zeros((b.shape[0], b.shape[1], 2))  # noqa: E731
    scores = score_points(x, 4, zeros, targets=(0, 2))
    assert np.allclose(scores[3:], (1.0 + 4.0) / 2)  # channel 1 is an input only
    scaled = score_points(x, 4, zeros, targets=(0, 2), error_scale=(1.0, 4.0))
    assert np.allclose(scaled[3:], 1.0)  # each channel's error is now 1
    windows = x[None, :4]
    assert channel_errors(windows, zeros(windows), (0, 2), (1.0, 4.0)).tolist() == [[1.0, 1.0]]
    assert window_scores(windows, zeros(windows), "max", (0, 2)).tolist() == [2.5]


def test_scores_restart_at_each_segment() -> None:
    x = np.random.default_rng(1).normal(size=(30, 2))
    recon = lambda b: b * 0.5  # noqa: E731
    scores = score_points(x, 5, recon, segments=np.array([0, 12]))
    assert np.isnan(scores[:4]).all() and np.isfinite(scores[4:12]).all()
    assert np.isnan(scores[12:16]).all() and np.isfinite(scores[16:]).all()
    alone = score_points(x[12:], 5, recon)
    np.testing.assert_array_equal(scores[12:], alone)  # the second segment scored on its own


def test_a_model_reads_all_channels_and_reconstructs_its_targets() -> None:
    t = np.arange(600) / 6.0
    x = np.stack([np.sin(t), np.cos(t), (np.arange(600) % 7 == 0).astype(float)], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(x, 16, axis=0).transpose(0, 2, 1)
    torch.manual_seed(0)
    model = build_model(3, ModelParams(hidden=16), targets=(0, 1))
    assert model(torch.zeros(2, 16, 3)).shape == (2, 16, 2)
    params = TrainParams(epochs=15, batch_size=32, lr=0.01, patience=15)
    before = fit(build_model(3, ModelParams(hidden=16), targets=(0, 1)), windows[:400],
                 windows[400:], TrainParams(epochs=1, lr=1e-9, patience=1)).best_val_loss
    result = fit(model, windows[:400], windows[400:], params)
    assert result.best_val_loss < 0.3 * before
    scale = error_scale(model, windows[400:], (0, 1))
    # the scale is each target channel's mean squared error on those windows, by definition
    with torch.no_grad():
        recon = model.double()(torch.from_numpy(windows[400:].copy())).numpy()
    want = np.square(windows[400:][:, :, :2] - recon).mean(axis=(0, 1))
    np.testing.assert_allclose(scale, want, rtol=1e-6)
    assert error_scale(model, windows[400:], (0,)) == [1.0]  # one target: nothing to balance


def test_resolve_targets() -> None:
    s = series(channel_names=("telemetry", "cmd1", "cmd2"), targets=(0,))
    assert resolve_targets(s, "auto") == (0,)
    assert resolve_targets(s, "all") == (0, 1, 2)
    assert resolve_targets(s, ["cmd2", "telemetry"]) == (2, 0)
    assert resolve_targets(series(), "auto") == (0, 1, 2)
    with pytest.raises(ValueError, match=r"'nope'.*channels: telemetry, cmd1, cmd2"):
        resolve_targets(s, ["nope"])


def test_every_dataset_is_registered_and_unknown_names_are_refused() -> None:
    assert set(DATASETS) == {"nab", "smap", "msl", "cmapss", "kddcup99", "csv"}
    for name in DATASETS:
        d = get_dataset(name)
        assert d.name == name and d.folder
    assert get_dataset("smap").folder == get_dataset("msl").folder == "smap_msl"
    assert get_dataset("cmapss").extra_measures is not None
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        get_dataset("nope")


def test_params_name_the_dataset_and_reject_unknown_ones() -> None:
    assert Params().data.dataset == "nab"
    with pytest.raises(ValueError):
        Params.model_validate({"data": {"dataset": "smapp"}})
