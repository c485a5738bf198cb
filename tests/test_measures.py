"""Range-aware measures (rnnad.measures) against hand-computed values and slow references."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from rnnad.measures import (
    EventCounts,
    RangeSums,
    event_counts,
    event_prf,
    point_adjust,
    range_auc,
    range_pr,
    range_sums,
    segments,
    vus,
)


def arr(*xs: int) -> np.ndarray:
    return np.array(xs, dtype=np.int64)


def zeros_with(n: int, *spans: tuple[int, int]) -> np.ndarray:
    """0/1 array of length n with ones on the inclusive spans."""
    a = np.zeros(n, dtype=np.int64)
    for s, e in spans:
        a[s : e + 1] = 1
    return a


# --------------------------------------------------------------------------- segments


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        ([], []),
        ([0, 0, 0], []),
        ([1], [[0, 0]]),
        ([1, 1, 1, 1], [[0, 3]]),
        ([1, 0, 0, 1], [[0, 0], [3, 3]]),
        ([1, 1, 0, 1, 0, 1, 1], [[0, 1], [3, 3], [5, 6]]),
        ([False, True, True], [[1, 2]]),
    ],
)
def test_segments(mask: list, expected: list) -> None:
    got = segments(np.array(mask))
    assert got.dtype == np.int64
    assert got.shape == (len(expected), 2)
    assert got.tolist() == expected


def test_segments_rejects_2d() -> None:
    with pytest.raises(ValueError, match="one-dimensional"):
        segments(np.zeros((2, 2)))


# --------------------------------------------------------------------------- event-wise


def test_event_counts_no_labels() -> None:
    # two detected runs ([1,2] and [5,5]), nothing labelled: both are FPs
    c = event_counts(arr(0, 0, 0, 0, 0, 0, 0), arr(0, 1, 1, 0, 0, 1, 0))
    assert c == EventCounts(tp=0, fp=2, fn=0)
    prf = event_prf(c)
    assert prf == {"precision": 0.0, "recall": None, "f1": None}


def test_event_counts_no_detections() -> None:
    c = event_counts(zeros_with(10, (2, 4), (7, 8)), np.zeros(10, dtype=int))
    assert c == EventCounts(tp=0, fp=0, fn=2)
    assert event_prf(c) == {"precision": None, "recall": 0.0, "f1": None}


def test_event_counts_window_edges_are_inside() -> None:
    labels = zeros_with(12, (3, 6))
    # a single detected point on the window's first index, or on its last index: TP
    assert event_counts(labels, zeros_with(12, (3, 3))) == EventCounts(1, 0, 0)
    assert event_counts(labels, zeros_with(12, (6, 6))) == EventCounts(1, 0, 0)
    # one index after the end (or before the start): the detection is an FP, the window an FN
    assert event_counts(labels, zeros_with(12, (7, 7))) == EventCounts(0, 1, 1)
    assert event_counts(labels, zeros_with(12, (2, 2))) == EventCounts(0, 1, 1)


def test_event_counts_one_detection_spanning_two_windows() -> None:
    labels = zeros_with(12, (1, 3), (6, 8))
    flags = zeros_with(12, (2, 7))
    assert event_counts(labels, flags) == EventCounts(tp=2, fp=0, fn=0)


def test_event_counts_summed_across_series_micro() -> None:
    a = event_counts(zeros_with(10, (1, 2), (6, 7)), zeros_with(10, (2, 2), (4, 4)))
    b = event_counts(zeros_with(8, (3, 5)), zeros_with(8, (0, 0), (6, 7)))
    assert a == EventCounts(tp=1, fp=1, fn=1)
    assert b == EventCounts(tp=0, fp=2, fn=1)
    total = a + b
    assert total == EventCounts(tp=1, fp=3, fn=2)
    assert EventCounts.total([a, b]) == total
    assert EventCounts.total([]) == EventCounts()
    prf = event_prf(total)
    # P = 1/4, R = 1/3, F1 = 2 (1/12) / (7/12) = 2/7: from the sums, not a mean of per-series
    assert prf["precision"] == pytest.approx(0.25)
    assert prf["recall"] == pytest.approx(1 / 3)
    assert prf["f1"] == pytest.approx(2 / 7)


def test_event_prf_zero_f1() -> None:
    assert event_prf(EventCounts(tp=0, fp=1, fn=1)) == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
    }


def test_event_counts_validates() -> None:
    with pytest.raises(ValueError, match="same length"):
        event_counts(arr(0, 1), arr(0, 1, 0))
    with pytest.raises(ValueError, match="only 0 and 1"):
        event_counts(arr(0, 2), arr(0, 1))


# --------------------------------------------------------------------------- point adjust


def test_point_adjust() -> None:
    labels = arr(0, 1, 1, 1, 0, 0, 1, 1, 0, 0)
    flags = arr(1, 0, 1, 0, 0, 0, 0, 0, 0, 1)
    # segment [1,3] has a flag at 2 -> all of it flagged; [6,7] has none -> unchanged;
    # flags at 0 and 9 (outside) stay as they are
    expected = arr(1, 1, 1, 1, 0, 0, 0, 0, 0, 1)
    got = point_adjust(labels, flags)
    assert got.tolist() == expected.tolist()
    assert flags.tolist() == [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]  # input untouched


# --------------------------------------------------------------------------- Tatbul et al.

# Real range R = [2, 6] (L = 5), predicted range P = [5, 9] (L = 5), n = 12.
# In R the overlap is indices 5, 6 -> positions k = 4, 5; in P it is k = 1, 2.
#   flat:   delta 1,1,1,1,1 (sum 5)   recall 2/5          precision 2/5
#   front:  delta 5,4,3,2,1 (sum 15)  recall (2+1)/15=1/5  precision (5+4)/15=3/5
#   back:   delta 1,2,3,4,5 (sum 15)  recall (4+5)/15=3/5  precision (1+2)/15=1/5
#   middle: delta 1,2,3,2,1 (sum 9)   recall (2+1)/9=1/3   precision (1+2)/9=1/3
BIAS_CASES = {
    "flat": (Fraction(2, 5), Fraction(2, 5)),
    "front": (Fraction(1, 5), Fraction(3, 5)),
    "back": (Fraction(3, 5), Fraction(1, 5)),
    "middle": (Fraction(1, 3), Fraction(1, 3)),
}


@pytest.mark.parametrize("bias", sorted(BIAS_CASES))
def test_range_bias_worked_examples(bias: str) -> None:
    recall, precision = BIAS_CASES[bias]
    sums = range_sums(zeros_with(12, (2, 6)), zeros_with(12, (5, 9)), 0.0, "one", bias, bias)
    assert (sums.n_real, sums.n_pred) == (1, 1)
    assert sums.recall_sum == pytest.approx(float(recall), abs=1e-12)
    assert sums.precision_sum == pytest.approx(float(precision), abs=1e-12)
    out = range_pr(sums)
    assert out["recall"] == pytest.approx(float(recall), abs=1e-12)
    assert out["precision"] == pytest.approx(float(precision), abs=1e-12)
    f1 = 2 * precision * recall / (precision + recall)
    assert out["f1"] == pytest.approx(float(f1), abs=1e-12)


def test_range_middle_bias_even_length() -> None:
    # R = [0, 3] (L = 4): middle delta 1,2,2,1 (sum 6); P = [0, 1] covers k = 1, 2 -> 3/6
    sums = range_sums(zeros_with(6, (0, 3)), zeros_with(6, (0, 1)), bias_recall="middle")
    assert sums.recall_sum == pytest.approx(0.5)
    # P itself is fully covered: precision 1 for any bias
    assert sums.precision_sum == pytest.approx(1.0)


def test_range_alpha_mixes_existence() -> None:
    # flat overlap 2/5 as above; alpha 0.5: 0.5 * 1 + 0.5 * 2/5 = 7/10
    sums = range_sums(zeros_with(12, (2, 6)), zeros_with(12, (5, 9)), alpha=0.5)
    assert sums.recall_sum == pytest.approx(0.7)
    # precision has no existence term: still 2/5
    assert sums.precision_sum == pytest.approx(0.4)


def test_range_cardinality_one_vs_reciprocal() -> None:
    # Real [0, 9] (L = 10) overlapped by two predicted ranges [1, 2] and [6, 8]:
    # flat omega 2/10 + 3/10 = 1/2; "one" keeps 1/2, "reciprocal" halves it (x = 2) to 1/4.
    # Each predicted range lies inside the real one: precision 1 each, x = 1 -> no change.
    labels = zeros_with(12, (0, 9))
    flags = zeros_with(12, (1, 2), (6, 8))
    one = range_sums(labels, flags, cardinality="one")
    rec = range_sums(labels, flags, cardinality="reciprocal")
    assert (one.n_real, one.n_pred) == (1, 2)
    assert one.recall_sum == pytest.approx(0.5)
    assert one.precision_sum == pytest.approx(2.0)
    assert rec.recall_sum == pytest.approx(0.25)
    assert rec.precision_sum == pytest.approx(2.0)


def test_range_cardinality_on_precision() -> None:
    # Predicted [1, 3] (L = 3) overlaps real [0, 1] at k = 1 and real [3, 4] at k = 3:
    # flat precision 1/3 + 1/3 = 2/3 ("one") or 1/3 ("reciprocal", x = 2).
    # Recall: each real range has one of its two points covered, x = 1: 1/2 + 1/2 = 1.
    labels = zeros_with(6, (0, 1), (3, 4))
    flags = zeros_with(6, (1, 3))
    one = range_sums(labels, flags, cardinality="one")
    rec = range_sums(labels, flags, cardinality="reciprocal")
    assert one.precision_sum == pytest.approx(2 / 3)
    assert rec.precision_sum == pytest.approx(1 / 3)
    assert one.recall_sum == pytest.approx(1.0)
    assert rec.recall_sum == pytest.approx(1.0)
    assert range_pr(rec)["recall"] == pytest.approx(0.5)


def test_range_alpha_one_is_existence_only() -> None:
    # real [0, 9] touched by one predicted point, real [11, 12] missed: (1 + 0) / 2
    sums = range_sums(zeros_with(15, (0, 9), (11, 12)), zeros_with(15, (5, 5)), alpha=1.0)
    assert range_pr(sums)["recall"] == pytest.approx(0.5)
    # the single predicted point is inside a real range: precision 1
    assert range_pr(sums)["precision"] == pytest.approx(1.0)


def test_range_no_predictions_and_no_labels() -> None:
    none_pred = range_pr(range_sums(zeros_with(8, (2, 4)), np.zeros(8, dtype=int)))
    assert none_pred == {"precision": None, "recall": 0.0, "f1": None}
    none_real = range_pr(range_sums(np.zeros(8, dtype=int), zeros_with(8, (2, 4))))
    assert none_real == {"precision": 0.0, "recall": None, "f1": None}
    empty = range_pr(range_sums(np.zeros(8, dtype=int), np.zeros(8, dtype=int)))
    assert empty == {"precision": None, "recall": None, "f1": None}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": -0.1}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": "0.5"}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"cardinality": "two"}, "cardinality"),
        ({"bias_recall": "centre"}, "bias_recall"),
        ({"bias_precision": "Flat"}, "bias_precision"),
    ],
)
def test_range_invalid_params(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        range_sums(arr(0, 1, 0), arr(0, 1, 0), **kwargs)


def _isolated(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random 0/1 array whose runs of 1s all have length 1."""
    x = rng.random(n) < 0.3
    x[1:] &= ~x[:-1]
    return x.astype(np.int64)


def test_range_equals_pointwise_for_unit_ranges() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        y, f = _isolated(rng, n), _isolated(rng, n)
        out = range_pr(range_sums(y, f, 0.0, "one", "flat", "flat"))
        tp = int((y & f).sum())
        assert out["precision"] == (pytest.approx(tp / f.sum()) if f.sum() else None)
        assert out["recall"] == (pytest.approx(tp / y.sum()) if y.sum() else None)


def test_range_sums_micro_equals_concatenation() -> None:
    rng = np.random.default_rng(11)
    for _ in range(50):
        parts = [(rng.random(20) < 0.4).astype(int) for _ in range(4)]
        y1, f1, y2, f2 = parts
        kw = {
            "alpha": 0.3,
            "cardinality": "reciprocal",
            "bias_recall": "middle",
            "bias_precision": "back",
        }
        added = RangeSums.total([range_sums(y1, f1, **kw), range_sums(y2, f2, **kw)])
        joined = range_sums(np.r_[y1, 0, y2], np.r_[f1, 0, f2], **kw)
        assert added.n_real == joined.n_real and added.n_pred == joined.n_pred
        assert added.recall_sum == pytest.approx(joined.recall_sum)
        assert added.precision_sum == pytest.approx(joined.precision_sum)


# --------------------------------------------------------------------------- VUS: references


def _slow_soft(y: np.ndarray, buffer: int) -> np.ndarray:
    soft = y.astype(float)
    n = len(y)
    for s, e in segments(y):
        for d in range(1, buffer // 2 + 1):
            w = math.sqrt(1 - d / buffer)
            if s - d >= 0:
                soft[s - d] += w
            if e + d < n:
                soft[e + d] += w
    return np.minimum(soft, 1.0)


def _slow_range_auc(y: np.ndarray, s: np.ndarray, buffer: int) -> tuple[float, float]:
    """The plain definition, looping over every distinct threshold."""
    n = len(y)
    soft = _slow_soft(y, buffer)
    p_l = (y.sum() + soft.sum()) / 2
    n_l = n - p_l
    soft_segs = segments(soft > 0)
    roc_pts = [(0.0, 0.0)]
    pr = 0.0
    prev_tpr = 0.0
    for theta in sorted(set(s.tolist()), reverse=True):
        pred = s >= theta
        tp = float(np.sum(soft * pred))
        fp = pred.sum() - tp
        hit = sum(1 for a, b in soft_segs if pred[a : b + 1].any())
        tpr = min(tp / p_l, 1.0) * hit / len(soft_segs)
        fpr = fp / n_l
        roc_pts.append((fpr, tpr))
        pr += (tpr - prev_tpr) * tp / pred.sum()
        prev_tpr = tpr
    roc_pts.append((1.0, 1.0))
    roc = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in itertools.pairwise(roc_pts))
    return roc, pr


# --------------------------------------------------------------------------- VUS


def test_vus_perfect_scores_buffer_zero() -> None:
    labels = zeros_with(9, (3, 5))
    out = vus(labels, labels.astype(float), max_buffer=0)
    # threshold 1: TPR 1, FPR 0, precision 1; threshold 0: (1, 1) -> both areas 1
    assert out["vus_roc"] == pytest.approx(1.0)
    assert out["vus_pr"] == pytest.approx(1.0)


def test_range_auc_hand_computed_buffer_two() -> None:
    labels = arr(0, 0, 1, 1, 0, 0)
    scores = np.array([0.1, 0.2, 0.9, 0.5, 0.7, 0.3])
    # buffer 2: one point each side gets w = sqrt(1 - 1/2); soft = [0, w, 1, 1, w, 0]
    # P = 2, P_l = (2 + 2 + 2w) / 2 = 2 + w, N_l = 4 - w; one soft segment [1, 4].
    # thresholds (desc) -> predicted set, TP, FP, TPR, FPR, precision:
    #   .9 {2}           1     0     1/(2+w)      0             1
    #   .7 {2,4}         1+w   1-w   (1+w)/(2+w)  (1-w)/(4-w)   (1+w)/2
    #   .5 {2,3,4}       2+w   1-w   1            (1-w)/(4-w)   (2+w)/3
    #   .3, .2, .1:      TPR stays 1 (TP/P_l capped), FPR grows, precision irrelevant
    # ROC: (0,0)->(0,a) adds 0; (0,a)->(b,c) adds b(a+c)/2 with a+c = 1; then y = 1 to x = 1:
    #   area = b/2 + (1 - b) = 1 - b/2, b = (1-w)/(4-w)
    # PR: a*1 + (c-a)*(1+w)/2 + (1-c)*(2+w)/3 = 1/(2+w) + w(1+w)/(2(2+w)) + 1/3
    w = math.sqrt(0.5)
    b = (1 - w) / (4 - w)
    roc_expected = 1 - b / 2
    pr_expected = 1 / (2 + w) + w * (1 + w) / (2 * (2 + w)) + 1 / 3
    roc, pr = range_auc(labels, scores, 2)
    assert roc == pytest.approx(roc_expected, abs=1e-12)
    assert pr == pytest.approx(pr_expected, abs=1e-12)
    # buffer 3 has the same half-width 1 but w = sqrt(1 - 1/3): check it differs
    assert range_auc(labels, scores, 3)[0] != pytest.approx(roc_expected, abs=1e-9)


def test_range_auc_existence_buffer_zero() -> None:
    # two segments [1,1] and [4,5]; scores rank 1 > 4 > others
    labels = arr(0, 1, 0, 0, 1, 1, 0, 0)
    scores = np.array([0, 5, 0, 0, 4, 0, 0, 0], dtype=float)
    # P = 3, N = 5. theta 5: TP 1, TPR = (1/3) * (1/2) = 1/6, FPR 0, precision 1
    #               theta 4: TP 2, TPR = (2/3) * 1 = 2/3, FPR 0, precision 1
    #               theta 0: all, TPR 1, FPR 1, precision 3/8
    # ROC: rises at x = 0 to 2/3, then trapezoid to (1, 1): (2/3 + 1)/2 = 5/6
    # PR: 1/6 + (2/3 - 1/6) + (1/3) * 3/8 = 2/3 + 1/8 = 19/24
    roc, pr = range_auc(labels, scores, 0)
    assert roc == pytest.approx(5 / 6)
    assert pr == pytest.approx(19 / 24)


def test_range_auc_constant_scores() -> None:
    labels = arr(0, 1, 1, 0, 0, 0)
    # one threshold: everything predicted, TPR 1, FPR 1, precision 2/6.
    # ROC through (0,0), (1,1), (1,1): 1/2. PR: (1 - 0) * 2/6 = 1/3.
    roc, pr = range_auc(labels, np.full(6, 0.4), 0)
    assert roc == pytest.approx(0.5)
    assert pr == pytest.approx(1 / 3)


def test_vus_undefined() -> None:
    s = np.array([0.1, 0.5, 0.2])
    assert vus(arr(0, 0, 0), s, 4) == {"vus_roc": None, "vus_pr": None}
    assert vus(arr(1, 1, 1), s, 4) == {"vus_roc": None, "vus_pr": None}
    with pytest.raises(ValueError, match="undefined"):
        range_auc(arr(1, 1, 1), s, 0)


def test_vus_validates() -> None:
    with pytest.raises(ValueError, match="NaN"):
        vus(arr(0, 1, 0), np.array([0.0, np.nan, 1.0]), 2)
    with pytest.raises(ValueError, match="max_buffer"):
        vus(arr(0, 1, 0), np.zeros(3), -1)
    with pytest.raises(ValueError, match="buffer_step"):
        vus(arr(0, 1, 0), np.zeros(3), 4, buffer_step=0)
    with pytest.raises(ValueError, match="same length"):
        vus(arr(0, 1, 0), np.zeros(4), 2)


def test_vus_invariant_under_increasing_transform() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random(200) < 0.1).astype(int)
    labels[50:60] = 1
    scores = np.round(rng.random(200), 2)  # with ties
    a = vus(labels, scores, 12, 2)
    b = vus(labels, np.exp(3 * scores) - 7.0, 12, 2)
    assert a["vus_roc"] == pytest.approx(b["vus_roc"], abs=1e-12)
    assert a["vus_pr"] == pytest.approx(b["vus_pr"], abs=1e-12)


def test_vus_buffer_grid_includes_max() -> None:
    rng = np.random.default_rng(5)
    labels = zeros_with(40, (5, 8), (20, 20), (30, 34))
    scores = rng.random(40)
    # step 2 up to 5: buffers 0, 2, 4 and 5
    parts = np.array([range_auc(labels, scores, b) for b in (0, 2, 4, 5)])
    out = vus(labels, scores, 5, buffer_step=2)
    assert out["vus_roc"] == pytest.approx(parts[:, 0].mean())
    assert out["vus_pr"] == pytest.approx(parts[:, 1].mean())


def test_range_auc_matches_slow_reference() -> None:
    rng = np.random.default_rng(2024)
    checked = 0
    while checked < 60:
        n = int(rng.integers(2, 35))
        labels = (rng.random(n) < rng.uniform(0.1, 0.5)).astype(int)
        if not 0 < labels.sum() < n:
            continue
        # coarse rounding makes many ties; sometimes continuous scores
        scores = rng.random(n)
        if rng.random() < 0.6:
            scores = np.round(scores * rng.integers(1, 6)) / 5
        for buffer in (0, 1, 2, 3, 4, 7, 10):
            fast = range_auc(labels, scores, buffer)
            slow = _slow_range_auc(labels, scores, buffer)
            assert fast == pytest.approx(slow, abs=1e-10), (labels, scores, buffer)
        if checked % 10 == 0:  # buffers longer than the series, and a longer series
            for buffer in (33, 64):
                fast = range_auc(labels, scores, buffer)
                slow = _slow_range_auc(labels, scores, buffer)
                assert fast == pytest.approx(slow, abs=1e-10), (labels, scores, buffer)
        out = vus(labels, scores, 7, buffer_step=3)  # buffers 0, 3, 6, 7
        ref = np.array([_slow_range_auc(labels, scores, b) for b in (0, 3, 6, 7)]).mean(axis=0)
        assert out["vus_roc"] == pytest.approx(ref[0], abs=1e-10)
        assert out["vus_pr"] == pytest.approx(ref[1], abs=1e-10)
        checked += 1


def test_range_auc_matches_slow_reference_longer_series() -> None:
    rng = np.random.default_rng(99)
    for _ in range(4):
        n = 300
        labels = np.zeros(n, dtype=int)
        for s in rng.integers(0, n - 20, size=int(rng.integers(1, 12))):
            labels[s : s + int(rng.integers(1, 20))] = 1
        scores = np.round(rng.random(n) + 0.5 * labels, int(rng.integers(1, 4)))
        for buffer in (0, 5, 16, 40):
            fast = range_auc(labels, scores, buffer)
            slow = _slow_range_auc(labels, scores, buffer)
            assert fast == pytest.approx(slow, abs=1e-10), buffer
