"""Reconstruction errors -> causal per-point anomaly scores (numpy only; the service uses it).

Scoring runs in float64 (the models train in float32): a recurrence amplifies float32
round-off to ~1e-3 on windows far outside the training range, so two float32 runtimes (torch,
onnxruntime) disagree there; in float64 they agree to ~1e-12 and the service's scores equal the
evaluate stage's.

The score of point t is the reconstruction error of the window ending at t (mean over channels
of the squared error, reduced over the window's positions by ``reduce``): it uses no later point.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnnad.windows import sliding_windows, to_points, window_ends

Reconstructor = Callable[[np.ndarray], np.ndarray]
REDUCTIONS = ("mean", "last", "max")


def window_scores(windows: np.ndarray, recon: np.ndarray, reduce: str) -> np.ndarray:
    """[N, L, C] inputs and reconstructions -> one error per window, [N]."""
    if windows.shape != recon.shape:
        raise ValueError(f"reconstruction shape {recon.shape} != input shape {windows.shape}")
    err = np.square(windows.astype(np.float64) - recon.astype(np.float64)).mean(axis=2)
    if reduce == "mean":
        return err.mean(axis=1)
    if reduce == "last":
        return err[:, -1]
    if reduce == "max":
        return err.max(axis=1)
    raise ValueError(f"evaluate.reduce must be one of {REDUCTIONS}, got {reduce!r}")


def flag(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Anomaly flags: score strictly above the threshold; points without a score are never
    flagged."""
    return np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf) > threshold


def score_points(
    x_norm: np.ndarray,
    length: int,
    reconstruct: Reconstructor,
    reduce: str = "mean",
    batch_size: int = 4096,
) -> np.ndarray:
    """Per-point scores for normalised values [T, C]; NaN for the first ``length - 1`` points.

    Raises OverflowError when the values or their errors are too large to score (e.g. 1e300 on
    a series whose training data was of order 1): never a NaN or infinite score.
    """
    x_norm = np.asarray(x_norm, dtype=np.float64)
    if not np.isfinite(x_norm).all():
        raise OverflowError("values too large for the model once normalised")
    windows = sliding_windows(x_norm, length)
    ends = window_ends(len(x_norm), length)
    scores = np.empty(len(windows), dtype=np.float64)
    for i in range(0, len(windows), batch_size):
        batch = np.ascontiguousarray(windows[i : i + batch_size])
        scores[i : i + len(batch)] = window_scores(batch, reconstruct(batch), reduce)
    if not np.isfinite(scores).all():
        raise OverflowError("values too large for the model: their reconstruction error "
                            "overflows (scores would be infinite)")
    return to_points(scores, ends, len(x_norm))
