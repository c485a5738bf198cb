"""Post-processing: hand-checked values of each step, causality, segments, and the fixed
NAB halves."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rnnad.config import LikelihoodParams, PostprocessParams
from rnnad.nab import corpus_halves
from rnnad.postprocess import (
    ewma,
    likelihood_scores,
    postprocess,
    spatial_breach,
    suppress,
)

OFF = PostprocessParams(smooth=0, likelihood=LikelihoodParams(window=0), spatial=0, suppress=0)
ALL = PostprocessParams(smooth=3, likelihood=LikelihoodParams(window=50, short=4),
                        spatial=0.05, suppress=5, level=0.6)


def test_all_steps_off_returns_the_scores() -> None:
    s = np.array([np.nan, 1.0, 3.0, 0.5])
    np.testing.assert_array_equal(postprocess(s, np.zeros((4, 1)), OFF), s)


def test_likelihood_known_tail() -> None:
    # history 0, 2, 0, 2, ...: mean 1, std 1 (ddof 0); the next value 4 is z = 3
    s = np.array([0.0, 2.0] * 50 + [4.0])
    out = likelihood_scores(s, window=100, short=1)
    q = 0.5 * math.erfc(3 / math.sqrt(2))  # upper tail of z = 3
    assert out[-1] == pytest.approx(math.log(q + 1e-10) / math.log(1e-10), rel=1e-9)
    # a value at the history's mean is a tail of 0.5: log(0.5)/log(1e-10), about 0.03
    assert likelihood_scores(np.array([0.0, 2.0] * 50 + [1.0]), 100, 1)[-1] == pytest.approx(
        math.log(0.5 + 1e-10) / math.log(1e-10), rel=1e-9)


def test_likelihood_short_average_and_warm_up() -> None:
    s = np.array([0.0, 2.0] * 50 + [4.0, 4.0])
    short2 = likelihood_scores(s, window=1000, short=2)
    # the current value is the mean of the last 2 scores (4, 4); the history is the 2-point
    # means before it (1 everywhere but the first point's 0 and the (2, 4) mean of 3)
    assert short2[-1] > likelihood_scores(s, window=1000, short=1)[-2]
    assert short2[0] == 0.0 and short2[1] == 0.0  # fewer past points than max(short, 2)
    nan_first = likelihood_scores(np.array([np.nan, 1.0, 2.0, 3.0]), 10, 1)
    assert np.isnan(nan_first[0]) and np.isfinite(nan_first[1:]).all()


def test_log_transform_fits_log_errors() -> None:
    s = np.array([1.0, 100.0] * 50 + [1e4])
    # log10 history: 0 and 2 (mean 1, std 1), log10(1e4) = 4 is z = 3 on the log scale
    direct = likelihood_scores(np.log(s), 100, 1)
    assert likelihood_scores(s, 100, 1, transform="log")[-1] == pytest.approx(direct[-1])


def test_suppress_silences_after_each_kept_alarm() -> None:
    s = np.array([0.0, 0.8, 0.9, 0.1, 0.8, np.nan, 0.75])
    out = suppress(s, level=0.7, length=2)
    np.testing.assert_array_equal(out, [0.0, 0.8, 0.0, 0.0, 0.8, np.nan, 0.0])


def test_spatial_breach_widened_range() -> None:
    x = np.array([1.0, 2.0, 1.5, 2.05, 3.0, 0.0])
    # at 2.05 the range so far is [1, 2], widened by 0.1 to [0.9, 2.1]: inside; 3.0 is above
    # [0.895, 2.155]; 0.0 is below [0.8, 3.2]
    np.testing.assert_array_equal(spatial_breach(x, 0.1), [0, 0, 0, 0, 1, 1])
    # multivariate: any channel
    both = np.column_stack([x, np.zeros(6)])
    np.testing.assert_array_equal(spatial_breach(both, 0.1), [0, 0, 0, 0, 1, 1])


def test_ewma_is_causal_and_keeps_nan() -> None:
    s = np.array([np.nan, 1.0, 2.0, 3.0])
    out = ewma(s, 3)
    assert np.isnan(out[0]) and out[1] == 1.0
    assert out[2] == pytest.approx((2 + 0.5 * 1) / 1.5)  # span 3: alpha 0.5, adjusted weights


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=20, max_value=180), st.integers(min_value=0, max_value=2**31))
def test_no_look_ahead(cut: int, seed: int) -> None:
    """Changing every point from ``cut`` on leaves every output before ``cut`` unchanged."""
    rng = np.random.default_rng(seed)
    scores = rng.gamma(1.0, size=200)
    values = rng.normal(size=(200, 2))
    base = postprocess(scores, values, ALL)
    scores2, values2 = scores.copy(), values.copy()
    scores2[cut:] = rng.gamma(5.0, size=200 - cut) * 10
    values2[cut:] += 50
    np.testing.assert_array_equal(postprocess(scores2, values2, ALL)[:cut], base[:cut])


def test_segments_restart_every_step() -> None:
    rng = np.random.default_rng(0)
    scores, values = rng.gamma(1.0, size=120), rng.normal(size=(120, 1))
    whole = postprocess(scores, values, ALL, segments=np.array([0, 70]))
    np.testing.assert_array_equal(whole[70:], postprocess(scores[70:], values[70:], ALL))
    np.testing.assert_array_equal(whole[:70], postprocess(scores[:70], values[:70], ALL))


def test_scale_steps_need_the_likelihood() -> None:
    with pytest.raises(ValidationError, match=r"postprocess\.suppress need the likelihood"):
        PostprocessParams(likelihood=LikelihoodParams(window=0), spatial=0, suppress=5)
    with pytest.raises(ValidationError, match=r"postprocess\.spatial need the likelihood"):
        PostprocessParams(likelihood=LikelihoodParams(window=0), suppress=0, spatial=0.1)
    with pytest.raises(ValidationError, match=r"spatial and evaluate\.postprocess\.suppress"):
        PostprocessParams(likelihood=LikelihoodParams(window=0))


def test_params_the_steps_cannot_run_with_are_rejected() -> None:
    with pytest.raises(ValidationError, match=r"smooth 0\.5 must be 0 \(off\) or"):
        PostprocessParams(smooth=0.5)
    with pytest.raises(ValidationError, match=r"likelihood\.window 5 must be 0 \(off\) or at "
                       r"least max\(short, 2\) = 10"):
        LikelihoodParams(window=5, short=10)
    with pytest.raises(ValidationError, match=r"= 2"):
        LikelihoodParams(window=1, short=1)
    assert LikelihoodParams(window=2, short=1).window == 2


def test_corpus_halves_alternate_within_each_category() -> None:
    ids = ["b/x3", "a/z", "b/x1", "a/y", "b/x2", "c/only"]
    assert corpus_halves(ids) == {"a/y": "a", "a/z": "b", "b/x1": "a", "b/x2": "b",
                                  "b/x3": "a", "c/only": "a"}
    # a category's halves do not depend on which other categories are selected
    assert corpus_halves(["b/x1", "b/x2", "b/x3"]) == {"b/x1": "a", "b/x2": "b", "b/x3": "a"}


def test_segment_starts_need_not_include_zero() -> None:
    rng = np.random.default_rng(1)
    scores, values = rng.gamma(1.0, size=50), rng.normal(size=(50, 1))
    np.testing.assert_array_equal(postprocess(scores, values, ALL, segments=np.array([20])),
                                  postprocess(scores, values, ALL, segments=np.array([0, 20])))
    assert len(postprocess(scores, values, ALL, segments=np.array([], dtype=np.int64))) == 50
