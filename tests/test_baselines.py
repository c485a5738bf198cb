"""Baseline detectors: causal, seeded, and scoring what they claim to."""

from __future__ import annotations

import numpy as np
import pytest

from rnnad.baselines import (
    MIN_PERIODS,
    baseline_scores,
    isolation_forest,
    random_scores,
    rolling_gaussian,
)
from rnnad.config import BaselineParams
from rnnad.split import Split


def test_rolling_gaussian_known_value() -> None:
    # previous 4 points -1, 1, -1, 1: mean 0, std 1 (population), so a 3 scores |z| = 3
    x = np.array([[-1.0], [1.0], [-1.0], [1.0], [3.0]])
    scores = rolling_gaussian(x, window=4)
    assert np.isnan(scores[:4]).all()  # fewer than min(window, MIN_PERIODS) past points
    assert scores[4] == pytest.approx(3.0)


def test_rolling_gaussian_uses_only_the_last_window_points() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 1))
    x[:100] *= 100.0  # far past, outside the window of the last point
    window = 20
    scores = rolling_gaussian(x, window)
    past = x[-window - 1 : -1, 0]
    expected = abs(x[-1, 0] - past.mean()) / past.std()
    assert scores[-1] == pytest.approx(expected)


def test_rolling_gaussian_is_causal_and_multichannel_rms() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 2))
    before = rolling_gaussian(x, 16)
    changed = x.copy()
    changed[60:] += 50.0
    after = rolling_gaussian(changed, 16)
    np.testing.assert_array_equal(before[:60], after[:60])
    assert after[60] > 10 * before[60]
    assert np.isnan(before[:MIN_PERIODS]).all() and np.isfinite(before[MIN_PERIODS:]).all()
    z0 = rolling_gaussian(x[:, :1], 16)[-1]
    z1 = rolling_gaussian(x[:, 1:], 16)[-1]
    assert before[-1] == pytest.approx(np.sqrt((z0**2 + z1**2) / 2))


def _sine(n: int = 600) -> np.ndarray:
    t = np.arange(n)
    noise = np.random.default_rng(5).normal(scale=0.1, size=n)
    return (np.sin(2 * np.pi * t / 25) + noise)[:, None]


def test_isolation_forest_scores_a_level_shift_above_normal_windows() -> None:
    x = _sine()
    x[450:] += 3.0
    labels = np.zeros(len(x), dtype=np.int8)
    split = Split(n=len(x), train_end=300, val_end=360)
    scores = isolation_forest(x, labels, split, length=16, trees=50, max_samples=128, seed=3)
    assert np.isnan(scores[:15]).all() and np.isfinite(scores[15:]).all()
    # windows wholly after the shift score above every normal test window
    assert scores[465:].min() > np.nanmax(scores[360:440])
    again = isolation_forest(x, labels, split, length=16, trees=50, max_samples=128, seed=3)
    np.testing.assert_array_equal(scores, again)


def test_isolation_forest_is_causal_and_learns_from_training_part_only() -> None:
    x = _sine()
    labels = np.zeros(len(x), dtype=np.int8)
    split = Split(n=len(x), train_end=300, val_end=360)
    base = isolation_forest(x, labels, split, 16, 50, 128, 3)
    changed = x.copy()
    changed[500:] = 9.0  # after the training part: earlier scores must not move
    after = isolation_forest(changed, labels, split, 16, 50, 128, 3)
    np.testing.assert_array_equal(base[:500], after[:500])


def test_isolation_forest_without_training_windows_fails_clearly() -> None:
    x = _sine(100)
    labels = np.ones(100, dtype=np.int8)
    with pytest.raises(ValueError, match="no training window"):
        isolation_forest(x, labels, Split(100, 50, 60), 16, 10, 64, 0)


def test_random_scores_are_seeded_per_series() -> None:
    a = random_scores(50, 7, "cat/a")
    np.testing.assert_array_equal(a, random_scores(50, 7, "cat/a"))
    assert not np.array_equal(a, random_scores(50, 7, "cat/b"))
    assert not np.array_equal(a, random_scores(50, 8, "cat/a"))
    assert ((a >= 0) & (a < 1)).all()


def test_baseline_scores_dispatch() -> None:
    x = _sine(200)
    labels = np.zeros(200, dtype=np.int8)
    split = Split(200, 100, 120)
    params = BaselineParams()
    for name in params.detectors:
        s = baseline_scores(name, x, labels, split, "c/s", 16, params)
        assert s.shape == (200,)
    np.testing.assert_array_equal(baseline_scores("null", x, labels, split, "c/s", 16, params),
                                  np.zeros(200))
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_scores("oracle", x, labels, split, "c/s", 16, params)
