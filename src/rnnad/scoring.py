"""Reconstruction errors -> causal per-point anomaly scores (numpy only; the service uses it).

Scoring runs in float64 (the models train in float32): a recurrence amplifies float32
round-off to ~1e-3 on windows far outside the training range, so two float32 runtimes (torch,
onnxruntime) disagree there; in float64 they agree to ~1e-12 and the service's scores equal the
evaluate stage's.

The score of point t comes from the window ending at t, so it uses no later point:

1. the squared error of each reconstructed (target) channel at each position of the window;
2. divided by that channel's ``error_scale``, its mean squared error on the validation windows
   (stored with the model at training time; 1 for a model with one target channel). Channels
   with very different error levels (a noisy sensor beside a smooth one) then weigh the same:
   a score of 1 means "as badly reconstructed as a typical validation window";
3. the mean over channels, reduced over the window's positions by ``reduce`` (mean, last, max).

A channel's *contribution* to a score is its share of step 3's channel mean, averaged over the
window: what the service reports for a flagged point of a multivariate series.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rnnad.windows import sliding_windows, to_points, window_ends, within_segments

Reconstructor = Callable[[np.ndarray], np.ndarray]
REDUCTIONS = ("mean", "last", "max")
MIN_ERROR_SCALE = 1e-12


def _normalised_errors(windows: np.ndarray, recon: np.ndarray,
                       targets: Sequence[int] | None,
                       error_scale: Sequence[float] | None) -> np.ndarray:
    """[N, L, C_in] inputs, [N, L, C_t] reconstructions -> [N, L, C_t] scaled squared errors."""
    x = windows.astype(np.float64)
    if targets is not None:
        x = x[:, :, list(targets)]
    if x.shape != recon.shape:
        raise ValueError(f"reconstruction shape {recon.shape} != target shape {x.shape}")
    err = np.square(x - recon.astype(np.float64))
    if error_scale is not None:
        scale = np.maximum(np.asarray(error_scale, dtype=np.float64), MIN_ERROR_SCALE)
        if scale.shape != (err.shape[2],):
            raise ValueError(f"{len(scale)} error scales for {err.shape[2]} target channels")
        err = err / scale
    return err


def window_scores(windows: np.ndarray, recon: np.ndarray, reduce: str,
                  targets: Sequence[int] | None = None,
                  error_scale: Sequence[float] | None = None) -> np.ndarray:
    """Inputs [N, L, C_in] and reconstructions [N, L, C_t] -> one error per window, [N]."""
    err = _normalised_errors(windows, recon, targets, error_scale).mean(axis=2)
    if reduce == "mean":
        return err.mean(axis=1)
    if reduce == "last":
        return err[:, -1]
    if reduce == "max":
        return err.max(axis=1)
    raise ValueError(f"evaluate.reduce must be one of {REDUCTIONS}, got {reduce!r}")


def channel_errors(windows: np.ndarray, recon: np.ndarray, targets: Sequence[int] | None = None,
                   error_scale: Sequence[float] | None = None) -> np.ndarray:
    """Mean scaled squared error of each target channel over each window, [N, C_t]."""
    return _normalised_errors(windows, recon, targets, error_scale).mean(axis=1)


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
    *,
    targets: Sequence[int] | None = None,
    error_scale: Sequence[float] | None = None,
    segments: np.ndarray | None = None,
    per_channel: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Per-point scores for normalised values [T, C]; NaN for the first ``length - 1`` points
    of each segment. With ``per_channel``, also each target channel's error per point [T, C_t]
    (NaN rows where there is no score).

    Raises OverflowError when the values or their errors are too large to score (e.g. 1e300 on
    a series whose training data was of order 1): never a NaN or infinite score.
    """
    x_norm = np.asarray(x_norm, dtype=np.float64)
    if not np.isfinite(x_norm).all():
        raise OverflowError("values too large for the model once normalised")
    windows = sliding_windows(x_norm, length)  # a view; window i ends at i + length - 1
    ends = window_ends(len(x_norm), length)
    ends = ends[within_segments(ends, length, segments)]
    n_targets = x_norm.shape[1] if targets is None else len(targets)
    scores = np.empty(len(ends), dtype=np.float64)
    channels = np.empty((len(ends), n_targets), dtype=np.float64) if per_channel else None
    for i in range(0, len(ends), batch_size):
        batch_ends = ends[i : i + batch_size]
        batch = np.ascontiguousarray(windows[batch_ends - (length - 1)])
        recon = reconstruct(batch)
        scores[i : i + len(batch)] = window_scores(batch, recon, reduce, targets, error_scale)
        if channels is not None:
            channels[i : i + len(batch)] = channel_errors(batch, recon, targets, error_scale)
    if not np.isfinite(scores).all():
        raise OverflowError("values too large for the model: their reconstruction error "
                            "overflows (scores would be infinite)")
    points = to_points(scores, ends, len(x_norm))
    if channels is None:
        return points
    per_point = np.full((len(x_norm), n_targets), np.nan)
    per_point[ends] = channels
    return points, per_point
