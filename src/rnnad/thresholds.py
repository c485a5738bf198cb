"""Threshold strategies, chosen by name in ``evaluate.threshold.method``; they see validation
scores of normal points only, never test labels."""

from __future__ import annotations

import numpy as np

from rnnad.config import ThresholdParams
from rnnad.measures import segments

MIN_THRESHOLD = 1e-12


def choose_threshold(val_scores: np.ndarray, params: ThresholdParams) -> float:
    """quantile: the q-quantile of validation scores; gaussian: mean + k*std; max: factor*max;
    dynamic: the q-quantile too (its flags come from :func:`dynamic_flags`)."""
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
    elif params.method == "dynamic":  # flags come from dynamic_flags; this scales the scores
        value = float(np.quantile(s, params.quantile))
    else:  # pragma: no cover - guarded by the config's Literal
        raise ValueError(f"unknown threshold method {params.method!r}")
    return max(value, MIN_THRESHOLD)


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in ``flags``."""
    return [(int(a), int(b) + 1) for a, b in segments(np.asarray(flags, dtype=bool))]


def dynamic_flags(errors: np.ndarray, z_min: float = 2.5, z_max: float = 12.0,
                  z_step: float = 0.5, prune: float = 0.13, buffer: int = 0,
                  max_sequences: int = 5, max_fraction: float = 0.5) -> np.ndarray:
    """Hundman et al.'s (2018) nonparametric threshold on (smoothed) errors, unsupervised.

    The threshold mu + z * sigma (z from ``z_min`` to ``z_max``) that most reduces the mean and
    the standard deviation of the errors left below it, relative to how many points and
    sequences it flags: ``(dmu / mu + dsigma / sigma) / (n_flagged + n_sequences ** 2)``,
    among the thresholds that flag at most ``max_sequences`` sequences and less than
    ``max_fraction`` of the points (telemanom's limits: without them, noise flagged everywhere
    and merged by the buffer into one sequence would "detect" every labelled event).
    Flagged sequences (each widened by ``buffer`` points on both sides, merged where they
    meet) are then pruned: with their maxima in decreasing order and the largest unflagged
    error after them, a sequence is kept only if some step down from it or a later one to the
    next is at least ``prune`` (a fraction); the weak tail of near-equal maxima is dropped.
    NaN errors are never flagged.
    """
    e = np.asarray(errors, dtype=np.float64)
    ok = np.isfinite(e)
    out = np.zeros(len(e), dtype=bool)
    if ok.sum() < 2:
        return out
    v = e[ok]
    mu, sigma = float(v.mean()), float(v.std())
    if sigma <= 0 or mu <= 0:
        return out
    best, best_eps = -np.inf, None
    for z in np.arange(z_min, z_max + 1e-9, z_step):
        eps = mu + z * sigma
        below = v[v < eps]
        above = v > eps
        if not above.any() or len(below) < 2:
            continue
        n_seq = len(runs(above))
        if n_seq > max_sequences or above.sum() >= max_fraction * len(v):
            continue
        score = ((mu - below.mean()) / mu + (sigma - below.std()) / sigma) / (
            above.sum() + n_seq ** 2)
        if score > best:
            best, best_eps = score, eps
    if best_eps is None:
        return out
    flagged = np.nan_to_num(e, nan=-np.inf) > best_eps
    seqs = runs(flagged)
    if buffer > 0 and seqs:
        widened = np.zeros(len(e), dtype=bool)
        for a, b in seqs:
            widened[max(0, a - buffer) : min(len(e), b + buffer)] = True
        seqs = runs(widened & ok)
    maxima = np.array([np.nanmax(e[a:b]) for a, b in seqs])
    if len(seqs) == 0:
        return out
    rest = e[ok & ~np.isin(np.arange(len(e)), np.concatenate(
        [np.arange(a, b) for a, b in seqs]))]
    order = np.argsort(-maxima, kind="stable")
    tail = np.append(maxima[order], rest.max() if len(rest) else 0.0)
    drops = (tail[:-1] - tail[1:]) / np.maximum(tail[:-1], MIN_THRESHOLD)
    big = np.flatnonzero(drops >= prune)
    keep = order[: big[-1] + 1] if len(big) else order[:0]
    for i in keep:
        a, b = seqs[i]
        out[a:b] = True
    return out & ok
