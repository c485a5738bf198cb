"""Threshold strategies on known arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnad.config import ThresholdParams
from rnnad.thresholds import MIN_THRESHOLD, choose_threshold, dynamic_flags, runs

SCORES = np.array([1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (ThresholdParams(method="quantile", quantile=0.5), 2.5),
        (ThresholdParams(method="quantile", quantile=1.0), 4.0),
        # linear interpolation: position 0.9 * 3 = 2.7 -> 3 + 0.7 * 1
        (ThresholdParams(method="quantile", quantile=0.9), 3.7),
        # mean 2.5, population std sqrt(1.25)
        (ThresholdParams(method="gaussian", k=2.0), 2.5 + 2.0 * math.sqrt(1.25)),
        (ThresholdParams(method="gaussian", k=3.0), 2.5 + 3.0 * math.sqrt(1.25)),
        (ThresholdParams(method="max", factor=1.5), 6.0),
        (ThresholdParams(method="max", factor=0.5), 2.0),
    ],
)
def test_methods_on_known_array(params: ThresholdParams, expected: float) -> None:
    assert choose_threshold(SCORES, params) == pytest.approx(expected)


def test_quantile_on_larger_array() -> None:
    scores = np.arange(1.0, 101.0)
    # numpy's linear method: position 0.99 * 99 = 98.01 -> 99 + 0.01
    assert choose_threshold(scores, ThresholdParams(quantile=0.99)) == pytest.approx(99.01)


def test_non_finite_scores_are_ignored() -> None:
    with_nan = np.array([np.nan, 1.0, 2.0, np.inf, 3.0, 4.0, -np.inf])
    for params in (ThresholdParams(), ThresholdParams(method="gaussian"),
                   ThresholdParams(method="max")):
        assert choose_threshold(with_nan, params) == choose_threshold(SCORES, params)


def test_no_finite_score_is_an_error() -> None:
    with pytest.raises(ValueError, match="no finite validation score"):
        choose_threshold(np.array([np.nan, np.inf]), ThresholdParams())
    with pytest.raises(ValueError, match="no finite validation score"):
        choose_threshold(np.array([]), ThresholdParams())


def test_threshold_is_never_zero() -> None:
    zeros = np.zeros(10)
    for method in ("quantile", "gaussian", "max"):
        value = choose_threshold(zeros, ThresholdParams(method=method))
        assert value == MIN_THRESHOLD > 0
    # so a perfectly reconstructed point (score 0) is never flagged
    assert not (zeros > choose_threshold(zeros, ThresholdParams())).any()


# ------------------------------------------------------------------ dynamic (Hundman 2018)
def _noise_with_spike() -> np.ndarray:
    rng = np.random.default_rng(0)
    e = 1 + 0.05 * rng.standard_normal(2000)
    e[500:510] = 30.0
    return e


def test_dynamic_finds_the_spike_exactly() -> None:
    assert runs(dynamic_flags(_noise_with_spike(), buffer=0)) == [(500, 510)]


def test_dynamic_buffer_widens_and_nan_is_never_flagged() -> None:
    e = _noise_with_spike()
    assert runs(dynamic_flags(e, buffer=5)) == [(495, 515)]
    e[505] = np.nan
    assert runs(dynamic_flags(e, buffer=0)) == [(500, 505), (506, 510)]


def test_dynamic_flags_nothing_on_constant_errors() -> None:
    assert not dynamic_flags(np.ones(100)).any()
    assert not dynamic_flags(np.full(10, np.nan)).any()


def test_dynamic_prunes_the_weak_tail() -> None:
    e = np.ones(1000)
    e[100:105], e[300:305], e[600], e[900] = 20.0, 1.9, 1.3, 1.2
    # one z: the threshold mu + 0.1 sigma (about 1.24) flags the three sequences; sorted
    # maxima 20, 1.9, 1.3 and the largest unflagged error 1.2 step down by 90%, 32%, 8%
    one_z = {"z_min": 0.1, "z_max": 0.1, "buffer": 0}
    assert runs(dynamic_flags(e, prune=0.0, **one_z)) == [(100, 105), (300, 305), (600, 601)]
    assert runs(dynamic_flags(e, prune=0.13, **one_z)) == [(100, 105), (300, 305)]
    assert runs(dynamic_flags(e, prune=0.95, **one_z)) == []


def test_runs() -> None:
    assert runs(np.array([0, 1, 1, 0, 1], dtype=bool)) == [(1, 3), (4, 5)]
    assert runs(np.zeros(3, dtype=bool)) == []
