"""Range-aware evaluation measures for one series' test region.

Inputs are per-point arrays of equal length:

* ``labels``: 0/1 ground truth (1 = anomalous point);
* ``flags``: 0/1 detections;
* ``scores``: finite float anomaly scores (higher = more anomalous).

A *segment* (or *range*) is a maximal run of consecutive 1s, written as an inclusive
``(start, end)`` index pair. Undefined values (0/0) are ``None``, never a misleading 0.

Measures here:

* :func:`event_counts` / :func:`event_prf`: event-wise (segment) counts and precision/recall/F1,
  the definition Orion and telemanom report, micro-averaged across series;
* :func:`point_adjust`: the point-adjust protocol (inflates results; for comparison only);
* :func:`range_sums` / :func:`range_pr`: range-based precision and recall of Tatbul et al. 2018,
  "Precision and Recall for Time Series" (NeurIPS), micro-averaged across series;
* :func:`range_auc` / :func:`vus`: Range-AUC-ROC/PR and VUS-ROC/PR of Paparrizos et al. 2022,
  "Volume Under the Surface" (VLDB), computed exactly at every distinct score threshold.

Results are plain floats, not rounded.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

CARDINALITIES = ("one", "reciprocal")
BIASES = ("flat", "front", "back", "middle")


# --------------------------------------------------------------------------- input checks


def _binary(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if a.size and not np.isin(a, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0 and 1")
    return a.astype(np.int8)


def _same_length(*arrays: np.ndarray) -> None:
    if len({len(a) for a in arrays}) > 1:
        raise ValueError("labels, flags and scores must have the same length")


def _scores(x: Any) -> np.ndarray:
    s = np.asarray(x, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity")
    return s


def _f1(precision: float | None, recall: float | None) -> float | None:
    """F1 = 2PR/(P+R); None when P or R is None; 0.0 when P + R == 0."""
    if precision is None or recall is None:
        return None
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------- segments


def segments(mask: Any) -> np.ndarray:
    """Maximal runs of nonzero entries of a 1-D ``mask`` (0/1 or bool).

    Returns an int64 array of shape ``[K, 2]`` whose rows are inclusive ``(start, end)`` index
    pairs in increasing order; shape ``[0, 2]`` when the mask has no nonzero entry.
    Example: ``[1, 1, 0, 1]`` -> ``[[0, 1], [3, 3]]``.
    """
    m = np.asarray(mask)
    if m.ndim != 1:
        raise ValueError(f"mask must be one-dimensional, got shape {m.shape}")
    padded = np.concatenate(([0], (m != 0).astype(np.int8), [0]))
    d = np.diff(padded)
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1) - 1
    return np.stack([starts, ends], axis=1).astype(np.int64).reshape(-1, 2)


def _hits(segs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Number of nonzero ``mask`` entries inside each inclusive segment."""
    if len(segs) == 0:
        return np.zeros(0, dtype=np.int64)
    c = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
    return c[segs[:, 1] + 1] - c[segs[:, 0]]


# --------------------------------------------------------------------------- event-wise


class _Summable:
    """Dataclass fields that add up across series: ``a + b`` field by field; :meth:`total`."""

    def __add__(self, other: Any) -> Any:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(*(getattr(self, f.name) + getattr(other, f.name)
                            for f in fields(self)))

    @classmethod
    def total(cls, items: Iterable[Any]) -> Any:
        """Sum of ``items`` (all fields 0 for none)."""
        out = cls()
        for item in items:
            out = out + item
        return out


@dataclass(frozen=True)
class EventCounts(_Summable):
    """Event-wise (segment) counts of one or more series; add them with ``+`` or
    :meth:`total`."""

    tp: int = 0
    fp: int = 0
    fn: int = 0


def event_counts(labels: Any, flags: Any) -> EventCounts:
    """Event-wise counts as Orion and telemanom report them.

    * TP: labelled segments that at least one detected segment (run of ``flags``) overlaps,
      i.e. shares at least one index with; one detected segment spanning two labelled
      segments makes two TPs.
    * FN: labelled segments that no detected segment overlaps.
    * FP: detected segments that overlap no labelled segment (a detection starting one index
      after a labelled segment's end is an FP).
    """
    y, f = _binary(labels, "labels"), _binary(flags, "flags")
    _same_length(y, f)
    real, pred = segments(y), segments(f)
    real_hit = _hits(real, f) > 0
    pred_hit = _hits(pred, y) > 0
    return EventCounts(tp=int(real_hit.sum()), fp=int((~pred_hit).sum()), fn=int((~real_hit).sum()))


def event_prf(counts: EventCounts) -> dict[str, float | None]:
    """Precision tp/(tp+fp), recall tp/(tp+fn) and F1 of (summed) event counts.

    Micro average: sum the counts over series first (``EventCounts.total``), as telemanom
    does, then call this once. Each value is None when its denominator is 0; F1 is None when
    precision or recall is None and 0.0 when both are 0.
    """
    p = counts.tp / (counts.tp + counts.fp) if counts.tp + counts.fp else None
    r = counts.tp / (counts.tp + counts.fn) if counts.tp + counts.fn else None
    return {"precision": p, "recall": r, "f1": _f1(p, r)}


# --------------------------------------------------------------------------- point adjust


def point_adjust(labels: Any, flags: Any) -> np.ndarray:
    """Point-adjusted flags: every point of a labelled segment becomes flagged when at least
    one point of that segment is flagged; flags outside labelled segments are unchanged.

    This is the point-adjust protocol used by many deep anomaly-detection papers. It inflates
    results (a single lucky flag in a long segment counts as detecting all of it, so even
    random scores can reach high F1); report it only next to unadjusted measures.
    Returns an int8 0/1 array.
    """
    y, f = _binary(labels, "labels"), _binary(flags, "flags")
    _same_length(y, f)
    out = f.copy()
    real = segments(y)
    for (s, e), hit in zip(real, _hits(real, f), strict=True):
        if hit:
            out[s : e + 1] = 1
    return out


# --------------------------------------------------------------------------- Tatbul et al.


@dataclass(frozen=True)
class RangeSums(_Summable):
    """Sums behind range-based recall and precision; add them with ``+`` or :meth:`total`.

    ``recall_sum`` is the sum of Recall_T over real (labelled) ranges, ``n_real`` their number;
    ``precision_sum`` the sum of Precision_T over predicted ranges, ``n_pred`` their number.
    Only add sums computed with the same parameters.
    """

    recall_sum: float = 0.0
    n_real: int = 0
    precision_sum: float = 0.0
    n_pred: int = 0


def _cum_weight(m: np.ndarray, length: np.ndarray, bias: str) -> np.ndarray:
    """W(m) = sum_{k=1..m} delta(k, L) for positional bias ``bias`` (closed forms)."""
    m = m.astype(np.float64)
    n = length.astype(np.float64)
    if bias == "flat":  # delta = 1
        return m
    if bias == "back":  # delta = k
        return m * (m + 1) / 2
    if bias == "front":  # delta = L - k + 1

        def front(x: np.ndarray) -> np.ndarray:
            return x * (n + 1) - x * (x + 1) / 2

        return front(m)
    # middle: delta = k for k <= L/2 (i.e. k <= floor(L/2)), else L - k + 1
    h = np.floor(n / 2)
    rising = np.minimum(m, h)
    above = np.maximum(m, h)
    falling = (above * (n + 1) - above * (above + 1) / 2) - (h * (n + 1) - h * (h + 1) / 2)
    return rising * (rising + 1) / 2 + falling


def _range_side(
    own: np.ndarray, other: np.ndarray, bias: str, cardinality: str
) -> tuple[np.ndarray, np.ndarray]:
    """For each range of ``own``: (number of ``other`` ranges overlapping it,
    Cardinality * sum_j omega(own_i, own_i ∩ other_j, delta))."""
    k = len(own)
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if len(other) == 0:
        return np.zeros(k, dtype=np.int64), np.zeros(k)
    s, e = own[:, 0], own[:, 1]
    # other ranges are sorted and disjoint: those with end >= s and start <= e overlap
    lo = np.searchsorted(other[:, 1], s, side="left")
    hi = np.searchsorted(other[:, 0], e, side="right")
    x = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(k), x)
    offsets = np.arange(len(owner)) - np.repeat(np.cumsum(x) - x, x)
    j = np.repeat(lo, x) + offsets
    start, length = s[owner], (e - s + 1)[owner]
    a = np.maximum(start, other[j, 0]) - start + 1  # 1-based positions within own range
    b = np.minimum(e[owner], other[j, 1]) - start + 1
    omega = (_cum_weight(b, length, bias) - _cum_weight(a - 1, length, bias)) / _cum_weight(
        length, length, bias
    )
    total = np.bincount(owner, weights=omega, minlength=k)
    if cardinality == "reciprocal":
        total = total / np.maximum(x, 1)
    return x, total


def range_sums(
    labels: Any,
    flags: Any,
    alpha: float = 0.0,
    cardinality: str = "one",
    bias_recall: str = "flat",
    bias_precision: str = "flat",
) -> RangeSums:
    """Sums of range-based recall and precision (Tatbul et al. 2018) for one series.

    Real ranges R_i are the labelled segments, predicted ranges P_j the runs of ``flags``.

    * Recall_T(R_i) = alpha * Existence(R_i) + (1 - alpha) * Cardinality(R_i, P)
      * sum_j omega(R_i, R_i ∩ P_j, delta_recall); Existence is 1 when some P_j overlaps R_i.
    * Precision_T(P_j) = Cardinality(P_j, R) * sum_i omega(P_j, P_j ∩ R_i, delta_precision)
      (no existence term).
    * omega(range, overlap, delta) = sum over positions k (1-based, k = 1..L, L the range's
      length) that lie in the overlap of delta(k, L), divided by the sum over all k of
      delta(k, L).
    * delta ("bias"): flat 1; front L - k + 1; back k; middle k if k <= L/2 else L - k + 1.
    * cardinality: "one" always 1; "reciprocal" 1/x with x the number of ranges of the other
      side overlapping the range (1 when x <= 1).

    ``alpha`` must lie in [0, 1]. With alpha = 0, cardinality "one" and flat bias, when all
    ranges have length 1 the results equal point-wise precision and recall.
    Combine series with ``+`` and compute the ratios once with :func:`range_pr` (micro
    average, the same as concatenating the series with a 0 separator between them).
    """
    if not (isinstance(alpha, numbers.Real) and 0.0 <= float(alpha) <= 1.0):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if cardinality not in CARDINALITIES:
        raise ValueError(f"cardinality must be one of {CARDINALITIES}, got {cardinality!r}")
    for name, bias in (("bias_recall", bias_recall), ("bias_precision", bias_precision)):
        if bias not in BIASES:
            raise ValueError(f"{name} must be one of {BIASES}, got {bias!r}")
    y, f = _binary(labels, "labels"), _binary(flags, "flags")
    _same_length(y, f)
    real, pred = segments(y), segments(f)
    x_real, overlap_real = _range_side(real, pred, bias_recall, cardinality)
    _, overlap_pred = _range_side(pred, real, bias_precision, cardinality)
    recall = alpha * (x_real > 0) + (1 - alpha) * overlap_real
    return RangeSums(
        recall_sum=float(recall.sum()),
        n_real=len(real),
        precision_sum=float(overlap_pred.sum()),
        n_pred=len(pred),
    )


def range_pr(sums: RangeSums) -> dict[str, float | None]:
    """Range-based precision = precision_sum / n_pred, recall = recall_sum / n_real, and F1.

    Each is None when its denominator is 0 (no predicted / no real ranges); F1 is None when
    precision or recall is None and 0.0 when both are 0.
    """
    p = sums.precision_sum / sums.n_pred if sums.n_pred else None
    r = sums.recall_sum / sums.n_real if sums.n_real else None
    return {"precision": p, "recall": r, "f1": _f1(p, r)}


# --------------------------------------------------------------------------- VUS


class _Series:
    """One series prepared for Range-AUC at buffers up to ``2 * hmax + 1``.

    Soft label (see :func:`range_auc`): 1 inside labelled segments; outside, each segment
    adds sqrt(1 - d/l) at distance d = 1..h = floor(l/2) before its start and after its end;
    the sum is capped at 1. Every added term is >= sqrt(1/2), so an outside point receiving
    two or more terms is capped at 1, and one receiving a single term gets the term of its
    nearest segment border. For each outside point within ``hmax`` of a segment border we
    therefore keep d1, its distance to the nearest border (a previous segment's end or a
    following segment's start), and d2, the second-smallest such distance: at half-width h
    its soft label is 0 if d1 > h, 1 if d2 <= h, else sqrt(1 - d1/l).

    Scores are sorted once (descending) into tie groups, one per distinct score. Only the
    *candidate* groups, those holding a labelled point or a point within ``hmax`` of a border,
    can change TP or the existence count, so the curves are evaluated at those groups only.
    """

    def __init__(self, y: np.ndarray, scores: np.ndarray, hmax: int) -> None:
        n = self.n = len(y)
        ones = np.flatnonzero(y)
        self.n_ones = len(ones)
        real = segments(y)
        self.starts, self.ends = real[:, 0], real[:, 1]
        # distance of outside points to the nearest and second-nearest segment border
        k = len(real)
        far = 2 * n + 2
        out = np.flatnonzero(y == 0)
        i_end = np.searchsorted(self.ends, out)  # number of segments ending before the point
        i_start = np.searchsorted(self.starts, out)  # index of the next segment
        d_a = np.where(i_end >= 1, out - self.ends[np.maximum(i_end - 1, 0)], far)
        d_a2 = np.where(i_end >= 2, out - self.ends[np.maximum(i_end - 2, 0)], far)
        d_b = np.where(i_start < k, self.starts[np.minimum(i_start, k - 1)] - out, far)
        d_b2 = np.where(i_start + 1 < k, self.starts[np.minimum(i_start + 1, k - 1)] - out, far)
        d1 = np.minimum(d_a, d_b)
        d2 = np.minimum(np.maximum(d_a, d_b), np.minimum(d_a2, d_b2))
        near = np.flatnonzero(d1 <= hmax)
        near = near[np.argsort(d1[near], kind="stable")]  # by d1: a prefix per half-width
        self.d1, self.d2 = d1[near], d2[near]
        # tie groups in decreasing score order; after/before: points with score >= / > it
        order = np.argsort(-scores, kind="stable")
        ranked = scores[order]
        new_group = np.concatenate(([False], ranked[1:] != ranked[:-1]))
        group = np.empty(n, dtype=np.int64)
        group[order] = np.cumsum(new_group)
        last_rank = np.append(np.flatnonzero(new_group) - 1, n - 1)
        after = (last_rank + 1).astype(np.float64)
        before = np.concatenate(([0.0], after[:-1]))
        # candidate groups, and each labelled / near point's index among them
        cand = np.unique(np.concatenate([group[ones], group[out[near]]]))
        self.thresholds = ranked[last_rank[cand]]
        self.after = after[cand]
        self.size = after[cand] - before[cand]  # points in the group
        self.gap = before[cand][1:] - after[cand][:-1]  # points between candidate groups
        self.inside_tp = np.bincount(np.searchsorted(cand, group[ones]), minlength=len(cand))
        self.near_cand = np.searchsorted(cand, group[out[near]])
        # sparse table of range maxima: table[j, i] = max(scores[i : i + 2**j])
        levels = max(n.bit_length(), 1)
        table = np.full((levels, n), -np.inf)
        table[0] = scores
        for j in range(1, levels):
            w = 1 << (j - 1)
            table[j, : n - w] = np.maximum(table[j - 1, : n - w], table[j - 1, w:])
        self.table = table

    def range_max(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """max(scores[a_i : b_i + 1]) for inclusive index ranges."""
        j = np.frexp((b - a + 1).astype(np.float64))[1] - 1  # floor(log2(length))
        return np.maximum(self.table[j, a], self.table[j, b - (1 << j) + 1])


def _range_auc(sr: _Series, buffer: int) -> tuple[float, float]:
    """Exact Range-AUC-ROC/PR over all distinct thresholds.

    Between candidate groups TPR is flat while FPR grows, so the ROC area over such a run is
    TPR times the FPR it gains, and the PR sum gains nothing. With t_g the TPR at candidate
    group g, s_g its soft-label mass and N_l the negatives:
    ROC * N_l = sum_g gap_g * t_{g-1} + (size_g - s_g) * (t_g + t_{g-1}) / 2 + the last step
    to (1, 1); PR = sum_g (t_g - t_{g-1}) * TP_g / after_g, with t before the first = 0.
    """
    h = buffer // 2
    k = int(np.searchsorted(sr.d1, h, side="right"))  # near points in the soft support
    soft = np.where(sr.d2[:k] <= h, 1.0, np.sqrt(1.0 - sr.d1[:k] / max(buffer, 1)))
    mass = sr.inside_tp + np.bincount(sr.near_cand[:k], weights=soft, minlength=len(sr.after))
    total = sr.n_ones + float(soft.sum())  # sum of the soft label
    p_l = (sr.n_ones + total) / 2
    n_l = sr.n - p_l
    # soft segments: labelled segments widened by h and merged when their gap is <= 2h;
    # one holds a prediction at theta iff its maximum score is >= theta
    first = np.concatenate(([0], np.flatnonzero(sr.starts[1:] - sr.ends[:-1] - 1 > 2 * h) + 1))
    last = np.append(first[1:] - 1, len(sr.starts) - 1)
    lo = np.maximum(sr.starts[first] - h, 0)
    hi = np.minimum(sr.ends[last] + h, sr.n - 1)
    seg_max = np.sort(sr.range_max(lo, hi))
    tp = np.cumsum(mass)
    t = np.minimum(tp / p_l, 1.0)
    t *= len(seg_max) - np.searchsorted(seg_max, sr.thresholds, side="left")
    t /= len(seg_max)
    fp_mass = sr.size - mass
    roc = np.dot(sr.gap, t[:-1]) + (np.dot(fp_mass, t) + np.dot(fp_mass[1:], t[:-1])) / 2
    fp_last = sr.after[-1] - tp[-1]  # FP at the last candidate group
    fp_all = sr.n - total  # FP at the lowest threshold: every point predicted
    roc += (fp_all - fp_last) * t[-1] + (n_l - fp_all) * (t[-1] + 1.0) / 2
    precision = tp / sr.after
    pr = np.dot(t, precision) - np.dot(t[:-1], precision[1:])
    return float(roc / n_l), float(pr)


def _prepare(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y, s = _binary(labels, "labels"), _scores(scores)
    _same_length(y, s)
    return y, s


def range_auc(labels: Any, scores: Any, buffer: int) -> tuple[float, float]:
    """(Range-AUC-ROC, Range-AUC-PR) of Paparrizos et al. 2022 for one buffer length ``l``.

    * Soft label: 1 inside labelled segments; for a point outside at distance d
      (1..floor(l/2)) before a segment's start or after its end, that segment adds
      sqrt(1 - d/l); the sum is capped at 1.
    * P = number of labelled points; P_l = (P + sum(soft)) / 2; N_l = n - P_l.
    * At threshold theta, pred = scores >= theta; TP_l = sum(soft * pred);
      FP_l = sum(pred) - TP_l; existence = fraction of the soft label's segments (runs where
      soft > 0) that contain a predicted point; TPR = min(TP_l / P_l, 1) * existence;
      FPR = FP_l / N_l; Precision = TP_l / sum(pred).
    * Thresholds: every distinct score value, in decreasing order.
    * ROC: trapezoid area under the curve (FPR, TPR) through (0, 0), the thresholds' points
      and (1, 1). PR: sum over the thresholds of (TPR_k - TPR_{k-1}) * Precision_k with
      TPR_0 = 0 (average-precision style).

    With buffer 0 (or 1) the soft label equals the labels, so the ROC curve is the plain one
    except that TPR = recall * existence (point-wise recall times the fraction of labelled
    segments hit), which lies below sklearn's ROC whenever a segment is missed.

    Computed exactly at every distinct threshold (tied scores enter together) from one sort
    of the scores: TP at each threshold from cumulative sums of the soft label in score order;
    the existence count at theta is the number of soft segments whose maximum score is
    >= theta. Raises ValueError when labels have no 1 or no 0 (undefined).
    """
    if int(buffer) != buffer or buffer < 0:
        raise ValueError(f"buffer must be a non-negative integer, got {buffer!r}")
    y, s = _prepare(labels, scores)
    if not 0 < y.sum() < len(y):
        raise ValueError("range_auc is undefined when labels have no 1 or no 0")
    return _range_auc(_Series(y, s, int(buffer) // 2), int(buffer))


def vus(labels: Any, scores: Any, max_buffer: int, buffer_step: int = 1) -> dict[str, float | None]:
    """VUS-ROC and VUS-PR (Paparrizos et al. 2022): the means of Range-AUC-ROC and
    Range-AUC-PR (see :func:`range_auc`) over buffer lengths l = 0, buffer_step,
    2*buffer_step, ... up to ``max_buffer``, always including 0 and ``max_buffer``.

    Returns ``{"vus_roc": float | None, "vus_pr": float | None}``; both None when labels have
    no 1 or no 0 (undefined). Invariant under strictly increasing transforms of ``scores``.
    The scores are sorted once for all buffers; each buffer then costs time linear in the
    number of distinct scores held by points within max_buffer/2 of a labelled segment (a few
    ms for n = 20000 and buffers 0..64).
    """
    if int(max_buffer) != max_buffer or max_buffer < 0:
        raise ValueError(f"max_buffer must be a non-negative integer, got {max_buffer!r}")
    if int(buffer_step) != buffer_step or buffer_step < 1:
        raise ValueError(f"buffer_step must be a positive integer, got {buffer_step!r}")
    y, s = _prepare(labels, scores)
    if not 0 < y.sum() < len(y):
        return {"vus_roc": None, "vus_pr": None}
    buffers = np.arange(0, int(max_buffer) + 1, int(buffer_step))
    if buffers[-1] != max_buffer:
        buffers = np.append(buffers, int(max_buffer))
    sr = _Series(y, s, int(max_buffer) // 2)
    areas = np.array([_range_auc(sr, int(b)) for b in buffers])
    return {"vus_roc": float(areas[:, 0].mean()), "vus_pr": float(areas[:, 1].mean())}
