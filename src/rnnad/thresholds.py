"""Threshold strategies, chosen by name in ``evaluate.threshold.method``; they see validation
scores of normal points only, never test labels."""

from __future__ import annotations

import numpy as np

from rnnad.config import ThresholdParams

MIN_THRESHOLD = 1e-12


def choose_threshold(val_scores: np.ndarray, params: ThresholdParams) -> float:
    """quantile: the q-quantile of validation scores; gaussian: mean + k*std; max: factor*max."""
    s = np.asarray(val_scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        raise ValueError("no finite validation score to choose a threshold from")
    if params.method == "quantile":
        value = float(np.quantile(s, params.quantile))
    elif params.method == "gaussian":
        value = float(s.mean() + params.k * s.std())
    elif params.method == "max":
        value = float(params.factor * s.max())
    else:  # pragma: no cover - guarded by the config's Literal
        raise ValueError(f"unknown threshold method {params.method!r}")
    return max(value, MIN_THRESHOLD)
