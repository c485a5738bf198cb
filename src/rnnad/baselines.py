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

import zlib

import numpy as np

from rnnad.config import BaselineParams
from rnnad.split import Split
from rnnad.windows import sliding_windows, to_points, window_ends, windows_in_range

MIN_STD = 1e-6  # on normalised values; a flat stretch followed by a change still scores high
MIN_PERIODS = 8  # rolling Gaussian: past points needed before the first score


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
                     trees: int, max_samples: int, seed: int) -> np.ndarray:
    """Isolation Forest on flattened windows of ``length`` points lying wholly in the training
    part and free of labelled anomalies; NaN for the first ``length - 1`` points."""
    from sklearn.ensemble import IsolationForest

    x = np.asarray(x, dtype=np.float64)
    windows = sliding_windows(x, length)
    flat = windows.reshape(len(windows), -1)
    ends = window_ends(len(x), length)
    train = windows_in_range(ends, length, 0, split.train_end, excluded=labels)
    if not train.any():
        raise ValueError(f"no training window of {length} points for the Isolation Forest")
    forest = IsolationForest(n_estimators=trees, max_samples=min(max_samples, int(train.sum())),
                             random_state=seed)
    forest.fit(flat[train])
    return to_points(-forest.score_samples(flat), ends, len(x))


def null(x: np.ndarray) -> np.ndarray:
    return np.zeros(len(x), dtype=np.float64)


def random_scores(n: int, seed: int, series_id: str) -> np.ndarray:
    """Uniform scores from a generator seeded by ``seed`` and the series id (so a series gets
    the same scores whichever other series a run selects)."""
    rng = np.random.default_rng([seed, zlib.crc32(series_id.encode())])
    return rng.random(n)


def baseline_scores(name: str, x: np.ndarray, labels: np.ndarray, split: Split,
                    series_id: str, window_length: int, params: BaselineParams) -> np.ndarray:
    """Per-point scores of baseline ``name`` for one series."""
    if name == "rolling_gaussian":
        return rolling_gaussian(x, params.gaussian_window)
    if name == "isolation_forest":
        return isolation_forest(x, labels, split, window_length, params.iforest_trees,
                                params.iforest_max_samples, params.seed)
    if name == "null":
        return null(x)
    if name == "random":
        return random_scores(len(x), params.seed, series_id)
    raise ValueError(f"unknown baseline {name!r}")
