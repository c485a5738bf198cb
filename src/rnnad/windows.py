"""Windowing and its inverse, in one place (numpy only: the service uses it too).

A window of length L ending at index t covers points t-L+1 .. t. Scores are causal: the score of
point t comes from the window that ends at t, so it uses no later point. The first L-1 points of
a series (and of each of its segments) have no full window and get NaN.
"""

from __future__ import annotations

import numpy as np


def sliding_windows(x: np.ndarray, length: int, stride: int = 1) -> np.ndarray:
    """Windows of ``x`` [T, C] as a read-only view [N, length, C], N = (T - length)//stride + 1."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected values of shape [time, channels], got {x.shape}")
    if length < 1 or stride < 1:
        raise ValueError("window length and stride must be >= 1")
    if len(x) < length:
        return np.empty((0, length, x.shape[1]), dtype=x.dtype)
    view = np.lib.stride_tricks.sliding_window_view(x, length, axis=0)  # [T-L+1, C, L]
    return view[::stride].transpose(0, 2, 1)


def window_ends(n: int, length: int, stride: int = 1) -> np.ndarray:
    """Index of the last point of each window produced by :func:`sliding_windows`."""
    if n < length:
        return np.empty(0, dtype=np.int64)
    return np.arange(length - 1, n, stride, dtype=np.int64)


def windows_in_range(
    ends: np.ndarray, length: int, first: int, last: int, excluded: np.ndarray | None = None
) -> np.ndarray:
    """Boolean mask over windows (given by their end indices) lying wholly in [first, last).

    With ``excluded`` (a 0/1 per-point mask), windows containing an excluded point are dropped.
    """
    starts = ends - length + 1
    keep = (starts >= first) & (ends < last)
    if excluded is not None and keep.any():
        csum = np.concatenate([[0], np.cumsum(np.asarray(excluded, dtype=np.int64))])
        keep &= (csum[ends + 1] - csum[starts]) == 0
    return keep


def within_segments(ends: np.ndarray, length: int, segments: np.ndarray | None) -> np.ndarray:
    """Boolean mask over windows (by end index): True where the window lies inside one segment.

    ``segments`` holds the start index of each independent stretch of a series (C-MAPSS's
    engines, SMAP's train and test arrays); None or ``[0]`` means one stretch.
    """
    ends = np.asarray(ends, dtype=np.int64)
    if segments is None or len(segments) <= 1:
        return np.ones(len(ends), dtype=bool)
    starts = np.asarray(segments, dtype=np.int64)
    seg_of_end = np.searchsorted(starts, ends, side="right")
    seg_of_start = np.searchsorted(starts, ends - length + 1, side="right")
    return seg_of_end == seg_of_start


def to_points(window_scores: np.ndarray, ends: np.ndarray, n: int) -> np.ndarray:
    """Place one score per window at its end index; points without a window get NaN."""
    out = np.full(n, np.nan, dtype=np.float64)
    out[ends] = window_scores
    return out
