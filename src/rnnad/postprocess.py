"""Causal post-processing of per-point anomaly scores (numpy, pandas and scipy only).

Every step uses only the current and earlier points, so a score at time t never sees t + 1
(NAB's no-look-ahead rule) and the service can apply the same steps to a stream:

1. ``smooth``: an exponentially weighted moving average of the scores (span in points;
   Hundman et al. 2018 smooth prediction errors the same way before thresholding).
2. ``likelihood``: Numenta's anomaly-likelihood step (Ahmad et al. 2017) on reconstruction
   errors: the mean of the last ``short`` scores against a Gaussian fitted to the mean of
   ``short`` scores over the previous ``window`` points (the errors' own recent behaviour, so
   an error level that drifts slowly stops alarming). The output is the tail probability on
   NAB's log scale, ``log(Q + 1e-10) / log(1e-10)`` in [0, 1]: 0.5 is a 1e-5 tail.
   ``transform: log`` fits the Gaussian to log errors (squared errors are heavy-tailed).
3. ``spatial``: a value outside every value seen so far, widened by ``spatial`` times their
   range on each side, scores 1 (what Numenta's NAB detector adds to its likelihood).
4. ``suppress``: after a score at or above ``level`` (the alarm level), the next ``suppress`` points
   score 0 (NAB rewards only the first detection in a window and penalises every other one
   outside it).

A step with its parameter 0 (or ``likelihood.window`` 0) is skipped: all zeros give the raw
scores back unchanged.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np

from rnnad.config import PostprocessParams

LOG_FLOOR = 1e-10  # NAB's log-likelihood floor: a tail of 1e-10 or less scores 1
MIN_STD = 1e-6  # relative to the history's mean level: a flat history still gives finite z
EPS = 1e-12


def ewma(scores: np.ndarray, span: float) -> np.ndarray:
    """Causal EWMA (pandas' ``ewm(span, adjust=True)``) ignoring NaN (kept NaN)."""
    import pandas as pd

    s = pd.Series(np.asarray(scores, dtype=np.float64))
    out = s.ewm(span=span, adjust=True, ignore_na=True).mean().to_numpy().copy()
    out[np.isnan(s.to_numpy())] = np.nan
    return out


def likelihood_scores(scores: np.ndarray, window: int, short: int,
                      transform: Literal["none", "log"] = "none") -> np.ndarray:
    """NAB log-likelihood score in [0, 1] of each point (NaN where the score is NaN, 0 until
    ``max(short, 2)`` past scores exist)."""
    import pandas as pd
    from scipy.stats import norm

    s = np.asarray(scores, dtype=np.float64)
    if transform == "log":
        s = np.log(np.maximum(s, EPS))
    frame = pd.Series(s)
    recent = frame.rolling(short, min_periods=1).mean()
    history = recent.shift(1).rolling(window, min_periods=max(short, 2))
    mean, std = history.mean().to_numpy(), history.std(ddof=0).to_numpy()
    scale = np.maximum(std, MIN_STD * np.maximum(1.0, np.abs(mean)))
    z = (recent.to_numpy() - mean) / scale
    log_tail = norm.logsf(np.nan_to_num(z, nan=-np.inf))
    out = np.clip(np.log(np.exp(log_tail) + LOG_FLOOR) / np.log(LOG_FLOOR), 0.0, 1.0)
    out[np.isnan(mean)] = 0.0
    out[np.isnan(s)] = np.nan
    return out


def spatial_breach(values: np.ndarray, tolerance: float) -> np.ndarray:
    """1 where any channel's value lies outside the range of all its earlier values widened by
    ``tolerance`` times that range on each side; else 0 (0 for the first two points)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    lo = np.minimum.accumulate(x, axis=0)
    hi = np.maximum.accumulate(x, axis=0)
    lo, hi = np.vstack([x[:1], lo[:-1]]), np.vstack([x[:1], hi[:-1]])
    margin = tolerance * (hi - lo)
    out = ((x < lo - margin) | (x > hi + margin)) & (hi - lo > 0)
    out[:2] = False
    return out.any(axis=1).astype(np.float64)


def suppress(scores: np.ndarray, level: float, length: int) -> np.ndarray:
    """Scores after each kept score >= ``level`` set to 0 for ``length`` points (NaN stays
    NaN)."""
    s = np.asarray(scores, dtype=np.float64).copy()
    quiet_until = -1
    for i in np.flatnonzero(np.nan_to_num(s, nan=-np.inf) >= level):
        if i <= quiet_until:
            s[i] = 0.0
            continue
        stop = min(len(s), i + length + 1)
        block = s[i + 1 : stop]
        block[~np.isnan(block)] = 0.0
        quiet_until = stop - 1
    return s


def postprocess(scores: np.ndarray, values: np.ndarray, params: PostprocessParams,
                segments: np.ndarray | None = None) -> np.ndarray:
    """The configured steps in order (see the module docstring), restarted at each segment
    start (no history crosses one); ``values`` are the series' values [T, C] (for
    ``spatial``)."""
    scores = np.asarray(scores, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if len(values) != len(scores):
        raise ValueError(f"{len(scores)} scores for {len(values)} values")
    starts = [] if segments is None else np.asarray(segments, dtype=np.int64).tolist()
    bounds = sorted({0, *(b for b in starts if 0 < b < len(scores)), len(scores)})
    return np.concatenate([_steps(scores[a:b], values[a:b], params)
                           for a, b in itertools.pairwise(bounds)])


def _steps(scores: np.ndarray, values: np.ndarray, params: PostprocessParams) -> np.ndarray:
    out = scores
    if params.smooth > 0:
        out = ewma(out, params.smooth)
    lk = params.likelihood
    if lk.window > 0:
        out = likelihood_scores(out, lk.window, lk.short, lk.transform)
    if params.spatial > 0:
        breach = spatial_breach(values, params.spatial)
        out = np.where(np.isnan(out), out, np.maximum(np.nan_to_num(out), breach))
    if params.suppress > 0:
        out = suppress(out, params.level, params.suppress)
    return out
