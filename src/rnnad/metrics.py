"""Point-wise metrics (sklearn). Undefined values (recall with no anomaly, AUC with one class)
are None, never a misleading 0."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def point_metrics(labels: np.ndarray, flags: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Precision, recall, F1 of ``flags`` and AUC-ROC/AUC-PR of ``scores`` against ``labels``."""
    y = np.asarray(labels, dtype=np.int8)
    f = np.asarray(flags, dtype=np.int8)
    s = np.asarray(scores, dtype=np.float64)
    if not (len(y) == len(f) == len(s)):
        raise ValueError("labels, flags and scores must have the same length")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity")
    positives, flagged = int(y.sum()), int(f.sum())
    tp = int(((y == 1) & (f == 1)).sum())
    precision = tp / flagged if flagged else None
    recall = tp / positives if positives else None
    if precision is not None and recall is not None:
        _, _, f1_arr, _ = precision_recall_fscore_support(
            y, f, average="binary", zero_division=0
        )
        f1: float | None = float(f1_arr)
    else:
        f1 = None
    both = 0 < positives < len(y)
    return {
        "precision": _r(precision),
        "recall": _r(recall),
        "f1": _r(f1),
        "auc_roc": _r(roc_auc_score(y, s)) if both else None,
        "auc_pr": _r(average_precision_score(y, s)) if both else None,
        "points": len(y),
        "anomalous": positives,
        "flagged": flagged,
        "true_positives": tp,
    }


def _thin(xs: np.ndarray, ys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(xs) <= n:
        return xs, ys
    idx = np.unique(np.linspace(0, len(xs) - 1, n).round().astype(int))
    return xs[idx], ys[idx]


def curves(labels: np.ndarray, scores: np.ndarray, points: int) -> dict[str, list[dict]]:
    """ROC and PR curves, thinned to about ``points`` rows each, for DVC plots and matplotlib."""
    y = np.asarray(labels, dtype=np.int8)
    if not 0 < y.sum() < len(y):
        return {"roc": [], "pr": []}
    fpr, tpr, _ = roc_curve(y, scores)
    precision, recall, _ = precision_recall_curve(y, scores)
    fpr, tpr = _thin(fpr, tpr, points)
    recall, precision = _thin(recall[::-1], precision[::-1], points)
    return {
        "roc": [
            {"fpr": round(float(a), 6), "tpr": round(float(b), 6)}
            for a, b in zip(fpr, tpr, strict=True)
        ],
        "pr": [
            {"recall": round(float(a), 6), "precision": round(float(b), 6)}
            for a, b in zip(recall, precision, strict=True)
        ],
    }
