"""Point-wise metrics and curves against hand-computed values and sklearn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from rnnad.metrics import curves, point_metrics

LABELS = np.array([0, 0, 1, 1, 0, 1, 0, 0])
FLAGS = np.array([0, 1, 1, 0, 0, 1, 0, 1])
SCORES = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.3, 0.05])


def test_point_metrics_hand_computed() -> None:
    m = point_metrics(LABELS, FLAGS, SCORES)
    # TP = points 2 and 5; flagged 4; anomalous 3
    assert m["true_positives"] == 2
    assert m["flagged"] == 4
    assert m["anomalous"] == 3
    assert m["points"] == 8
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(round(2 / 3, 6))
    assert m["f1"] == pytest.approx(round(4 / 7, 6))  # 2 P R / (P + R)
    # 14 of the 15 (positive, negative) pairs are ordered correctly
    assert m["auc_roc"] == pytest.approx(round(14 / 15, 6))
    # average precision: recall steps of 1/3 at precisions 1, 1, 3/4
    assert m["auc_pr"] == pytest.approx(round((1 + 1 + 0.75) / 3, 6))
    assert m["auc_roc"] == pytest.approx(roc_auc_score(LABELS, SCORES), abs=1e-6)
    assert m["auc_pr"] == pytest.approx(average_precision_score(LABELS, SCORES), abs=1e-6)


def test_perfect_detector() -> None:
    m = point_metrics(LABELS, LABELS, LABELS.astype(float))
    assert (m["precision"], m["recall"], m["f1"], m["auc_roc"], m["auc_pr"]) == (1, 1, 1, 1, 1)


def test_no_anomaly_makes_recall_and_aucs_undefined() -> None:
    labels = np.zeros(8, dtype=int)
    m = point_metrics(labels, FLAGS, SCORES)
    assert m["recall"] is None
    assert m["f1"] is None
    assert m["auc_roc"] is None
    assert m["auc_pr"] is None
    assert m["precision"] == 0.0  # defined: 4 flags, none right
    assert m["anomalous"] == 0


def test_no_flag_makes_precision_undefined() -> None:
    m = point_metrics(LABELS, np.zeros(8, dtype=int), SCORES)
    assert m["precision"] is None
    assert m["f1"] is None
    assert m["recall"] == 0.0
    assert m["flagged"] == 0
    assert m["auc_roc"] is not None  # the scores still rank points


def test_all_anomalous_makes_aucs_undefined() -> None:
    m = point_metrics(np.ones(8, dtype=int), FLAGS, SCORES)
    assert m["auc_roc"] is None and m["auc_pr"] is None
    assert m["precision"] == 1.0 and m["recall"] == 0.5


def test_wrong_flags_give_zero_f1() -> None:
    m = point_metrics(LABELS, 1 - LABELS, SCORES)
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)


def test_bad_inputs_raise() -> None:
    bad = SCORES.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        point_metrics(LABELS, FLAGS, bad)
    bad[3] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        point_metrics(LABELS, FLAGS, bad)
    with pytest.raises(ValueError, match="same length"):
        point_metrics(LABELS, FLAGS[:-1], SCORES)


def test_metrics_are_json_numbers() -> None:
    import json

    text = json.dumps(point_metrics(LABELS, FLAGS, SCORES), allow_nan=False)
    assert json.loads(text)["recall"] == 0.666667


def test_curves_small_case_not_thinned() -> None:
    c = curves(LABELS, SCORES, points=200)
    fpr, tpr, _ = roc_curve(LABELS, SCORES)
    assert [r["fpr"] for r in c["roc"]] == pytest.approx(list(fpr))
    assert [r["tpr"] for r in c["roc"]] == pytest.approx(list(tpr))
    recall = [r["recall"] for r in c["pr"]]
    assert recall == sorted(recall)
    assert recall[0] == 0.0 and recall[-1] == 1.0
    assert set(c["pr"][0]) == {"recall", "precision"}


def test_curves_are_thinned_keeping_the_ends() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(5000) < 0.2).astype(int)
    scores = rng.random(5000) + 0.3 * labels
    full = curves(labels, scores, points=10**6)
    thin = curves(labels, scores, points=25)
    assert len(full["roc"]) > 100 and len(full["pr"]) > 100
    for name in ("roc", "pr"):
        assert 2 <= len(thin[name]) <= 25
        assert thin[name][0] == full[name][0]
        assert thin[name][-1] == full[name][-1]
        assert all(row in full[name] for row in thin[name])
    fpr = [r["fpr"] for r in thin["roc"]]
    assert fpr == sorted(fpr) and fpr[0] == 0.0 and fpr[-1] == 1.0
    recall = [r["recall"] for r in thin["pr"]]
    assert recall == sorted(recall)


def test_curves_with_one_class_are_empty() -> None:
    assert curves(np.zeros(8, dtype=int), SCORES, 50) == {"roc": [], "pr": []}
    assert curves(np.ones(8, dtype=int), SCORES, 50) == {"roc": [], "pr": []}
