"""Threshold strategies on known arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnad.config import ThresholdParams
from rnnad.thresholds import MIN_THRESHOLD, choose_threshold

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
