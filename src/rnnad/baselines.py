"""Baseline detectors, scored by the evaluate stage with exactly the RNN's protocol.

Each baseline maps a series' normalised values ``x`` [T, C] (the scaler fitted on the training
part) to causal per-point scores [T]: the score of point t uses no point after t, and higher
means more anomalous. NaN marks points without a score yet; they are never flagged. Like the
RNN, a baseline learns only from the training part of the split (the first part of NAB's
probationary period); its threshold is then chosen on validation scores by the same rule.

- ``rolling_gaussian``: |z| of each point against the mean and standard deviation of the
  previous ``gaussian_window`` points (root mean square over channels), the idea of NAB's
  windowedGaussian detector.
- ``isolation_forest``: scikit-learn's Isolation Forest fitted on the training windows (the same
  windows of ``window.length`` points the RNN trains on, flattened); the score of point t is
  the anomaly score (``-score_samples``) of the window ending at t.
- ``null``: 0 everywhere (never detects: NAB's normalised score is 0 by definition).
- ``random``: independent uniform scores in [0, 1), seeded per series.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np

from rnnad.config import BaselineParams
from rnnad.split import Split
from rnnad.windows import (
    sliding_windows,
    to_points,
    window_ends,
    windows_in_range,
    within_segments,
)

MIN_STD = 1e-6  # on normalised values; a flat stretch followed by a change still scores high
MIN_PERIODS = 8  # rolling Gaussian: past points needed before the first score
IFOREST_MAX_FIT = 20000  # Isolation Forest: training windows kept at most
SCORE_BATCH = 4096


def rolling_gaussian(x: np.ndarray, window: int) -> np.ndarray:
    """|z| of each point against the previous ``window`` points (RMS over channels); NaN for
    the first ``min(window, MIN_PERIODS)`` points."""
    import pandas as pd

    frame = pd.DataFrame(np.asarray(x, dtype=np.float64))
    past = frame.shift(1).rolling(window, min_periods=min(window, MIN_PERIODS))
    mean, std = past.mean().to_numpy(), past.std(ddof=0).to_numpy()
    z = (frame.to_numpy() - mean) / np.maximum(std, MIN_STD)
    return np.sqrt(np.mean(np.square(z), axis=1))


def isolation_forest(x: np.ndarray, labels: np.ndarray, split: Split, length: int,
                     trees: int, max_samples: int, seed: int,
                     segments: np.ndarray | None = None) -> np.ndarray:
    """Isolation Forest on flattened windows of ``length`` points lying wholly in the training
    part (and in one segment) and free of labelled anomalies; NaN for the first ``length - 1``
    points of each segment. Fitted on at most :data:`IFOREST_MAX_FIT` of those windows (evenly
    spread; each tree samples ``max_samples`` of them anyway) and scored in batches, so a long
    multivariate series never needs all its flattened windows in memory at once."""
    from sklearn.ensemble import IsolationForest

    x = np.asarray(x, dtype=np.float64)
    windows = sliding_windows(x, length)
    ends = window_ends(len(x), length)
    inside = within_segments(ends, length, segments)
    train = np.flatnonzero(windows_in_range(ends, length, 0, split.train_end, excluded=labels)
                           & inside)
    if not len(train):
        raise ValueError(f"no training window of {length} points for the Isolation Forest")
    if len(train) > IFOREST_MAX_FIT:
        train = train[np.linspace(0, len(train) - 1, IFOREST_MAX_FIT).round().astype(np.int64)]
    forest = IsolationForest(n_estimators=trees, max_samples=min(max_samples, len(train)),
                             random_state=seed)
    forest.fit(windows[train].reshape(len(train), -1))
    scored = np.flatnonzero(inside)
    out = np.empty(len(scored))
    for i in range(0, len(scored), SCORE_BATCH):
        batch = scored[i : i + SCORE_BATCH]
        out[i : i + len(batch)] = -forest.score_samples(windows[batch].reshape(len(batch), -1))
    return to_points(out, ends[scored], len(x))


def null(x: np.ndarray) -> np.ndarray:
    return np.zeros(len(x), dtype=np.float64)


def random_scores(n: int, seed: int, series_id: str) -> np.ndarray:
    """Uniform scores from a generator seeded by ``seed`` and the series id (so a series gets
    the same scores whichever other series a run selects)."""
    rng = np.random.default_rng([seed, zlib.crc32(series_id.encode())])
    return rng.random(n)


def rolling_gaussian_segments(x: np.ndarray, window: int,
                              segments: np.ndarray | None) -> np.ndarray:
    """:func:`rolling_gaussian` restarted at each segment start (no statistics across)."""
    if segments is None or len(segments) <= 1:
        return rolling_gaussian(x, window)
    bounds = [*np.asarray(segments, dtype=np.int64).tolist(), len(x)]
    return np.concatenate([rolling_gaussian(x[a:b], window)
                           for a, b in itertools.pairwise(bounds)])


def baseline_scores(name: str, x: np.ndarray, labels: np.ndarray, split: Split,
                    series_id: str, window_length: int, params: BaselineParams,
                    segments: np.ndarray | None = None) -> np.ndarray:
    """Per-point scores of baseline ``name`` for one series (windows and rolling statistics
    never cross a segment start)."""
    if name == "rolling_gaussian":
        return rolling_gaussian_segments(x, params.gaussian_window, segments)
    if name == "isolation_forest":
        return isolation_forest(x, labels, split, window_length, params.iforest_trees,
                                params.iforest_max_samples, params.seed, segments)
    if name == "null":
        return null(x)
    if name == "random":
        return random_scores(len(x), params.seed, series_id)
    raise ValueError(f"unknown baseline {name!r}")
