"""Chronological splits (NAB probation rule, fractions) and the training-only normaliser."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnad.config import SplitParams
from rnnad.split import Scaler, Split, SplitError, fit_scaler, make_split, probation_length


@pytest.mark.parametrize(
    ("n", "probation"),
    [(1000, 150), (4032, 604), (22695, 750), (5000, 750), (4999, 749), (20, 3)],
)
def test_probation_length_is_nab_rule(n: int, probation: int) -> None:
    assert probation_length(n) == probation


@pytest.mark.parametrize(
    ("n", "train_end", "val_end"),
    # probation p = min(floor(0.15 n), 750); validation = round(0.2 p) at its end
    [(1000, 120, 150), (4032, 483, 604), (22695, 600, 750)],
)
def test_nab_split(n: int, train_end: int, val_end: int) -> None:
    split = make_split(n, SplitParams())
    assert split == Split(n=n, train_end=train_end, val_end=val_end)


def test_nab_split_val_fraction() -> None:
    split = make_split(1000, SplitParams(val_fraction=0.5))
    assert (split.train_end, split.val_end) == (75, 150)
    # at least one validation point even for a tiny fraction
    split = make_split(1000, SplitParams(val_fraction=0.001))
    assert (split.train_end, split.val_end) == (149, 150)


def test_fractions_split() -> None:
    params = SplitParams(protocol="fractions", train_fraction=0.5, validation_fraction=0.1)
    assert make_split(200, params) == Split(200, 100, 120)
    params = SplitParams(protocol="fractions", train_fraction=0.7, validation_fraction=0.2)
    assert make_split(1000, params) == Split(1000, 700, 900)  # 0.7 + 0.2 < 0.9 in floats
    params = SplitParams(protocol="fractions", train_fraction=0.29, validation_fraction=0.1)
    assert make_split(100, params) == Split(100, 29, 39)  # 0.29 * 100 < 29 in floats
    params = SplitParams(protocol="fractions", train_fraction=0.5, validation_fraction=0.25)
    assert make_split(10, params) == Split(10, 5, 7)  # boundaries are floored


@pytest.mark.parametrize("protocol", ["nab", "fractions"])
def test_too_short_series_is_an_error(protocol: str) -> None:
    with pytest.raises(SplitError, match=r"demo/tiny: 5 points are too few"):
        make_split(5, SplitParams(protocol=protocol, train_fraction=0.1), "demo/tiny")


def test_split_to_dict() -> None:
    d = make_split(1000, SplitParams()).to_dict()
    assert d == {"n": 1000, "train_end": 120, "val_end": 150}
    assert Split(**json.loads(json.dumps(d))) == make_split(1000, SplitParams())


def _series(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    values = np.stack([rng.normal(5.0, 2.0, n), rng.normal(-1.0, 0.5, n)], axis=1)
    return values, np.zeros(n, dtype=np.int8)


def test_scaler_fit_on_train_normal_points_only() -> None:
    values, labels = _series()
    split = Split(200, 100, 150)
    scaler = fit_scaler(values, labels, split)
    np.testing.assert_allclose(scaler.mean, values[:100].mean(axis=0))
    np.testing.assert_allclose(scaler.std, values[:100].std(axis=0))
    transformed = scaler.transform(values[:100])
    np.testing.assert_allclose(transformed.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(transformed.std(axis=0), 1.0, atol=1e-5)

    # a huge value after the training part does not move the scaler
    spiked = values.copy()
    spiked[120] = 1e9
    spiked[180] = -1e9
    assert fit_scaler(spiked, labels, split) == scaler

    # nor does a labelled anomaly inside the training part
    with_anomaly = values.copy()
    with_anomaly[10] = 1e6
    labels_a = labels.copy()
    labels_a[10] = 1
    scaler_a = fit_scaler(with_anomaly, labels_a, split)
    normal = np.ones(200, dtype=bool)
    normal[10] = False
    normal[100:] = False
    np.testing.assert_allclose(scaler_a.mean, values[normal].mean(axis=0))
    np.testing.assert_allclose(scaler_a.std, values[normal].std(axis=0))
    assert abs(scaler_a.mean[0]) < 100


def test_scaler_constant_channel() -> None:
    values = np.stack([np.full(50, 7.0), np.arange(50.0)], axis=1)
    scaler = Scaler.fit(values)
    assert scaler.std[0] == 1.0
    assert scaler.mean[0] == 7.0
    out = scaler.transform(values)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, 0], 0.0)
    # large constant: float round-off in the std must not create a tiny scale
    big = np.full((50, 1), 1e8 + 0.1)
    assert Scaler.fit(big).std == (1.0,)


def test_scaler_transform_shape_and_dtype() -> None:
    scaler = Scaler((1.0, 2.0), (2.0, 4.0))
    out = scaler.transform(np.array([[3.0, 10.0], [1.0, 2.0]]))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [[1.0, 2.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match=r"\[time, 2\]"):
        scaler.transform(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\[time, 2\]"):
        scaler.transform(np.zeros(4))


def test_scaler_needs_points() -> None:
    with pytest.raises(SplitError, match="zero points"):
        Scaler.fit(np.zeros((4, 1)), mask=np.zeros(4, dtype=bool))
    values, labels = _series(20)
    labels[:] = 1  # every training point is anomalous
    with pytest.raises(SplitError, match="zero points"):
        fit_scaler(values, labels, Split(20, 10, 15))


def test_scaler_dict_round_trip() -> None:
    values, labels = _series()
    scaler = fit_scaler(values, labels, Split(200, 100, 150))
    restored = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert restored == scaler
    np.testing.assert_array_equal(restored.transform(values), scaler.transform(values))


def test_scaler_is_per_channel(multichannel_series: np.ndarray) -> None:
    n = len(multichannel_series)
    split = make_split(n, SplitParams(protocol="fractions"))
    scaler = fit_scaler(multichannel_series, np.zeros(n, dtype=np.int8), split)
    x = scaler.transform(multichannel_series)
    assert x.shape == multichannel_series.shape
    train = x[: split.train_end]
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-4)
    # channel means differ (10, -3, 0), so one shared scale could not do this
    assert scaler.mean[0] > 9 and scaler.mean[1] < -1
