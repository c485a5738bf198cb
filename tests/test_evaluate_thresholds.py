"""The evaluate stage's three ways to flag a series: a validation threshold, a fixed alarm
level (post-processed output), and dynamic thresholds on the unlabelled test scores."""

from __future__ import annotations

import numpy as np

from rnnad.config import EvaluateParams, ThresholdParams
from rnnad.datasets.series import Series
from rnnad.pipeline.evaluate import Assessment
from rnnad.report import settings_line
from rnnad.split import Split

N = 3000
SPLIT = Split(n=N, train_end=800, val_end=1000)


def _series(scores_spike: slice) -> tuple[Series, np.ndarray]:
    rng = np.random.default_rng(0)
    scores = 1 + 0.05 * rng.standard_normal(N)
    scores[scores_spike] = 30.0
    labels = np.zeros(N, dtype=np.int8)
    labels[2000:2020] = 1
    series = Series(id="cat/s", timestamps=np.arange(N).astype("datetime64[m]").astype(
        "datetime64[ns]"), values=scores[:, None].copy(), labels=labels,
        windows=np.array([[2000, 2019]]))
    return series, scores


def test_dynamic_flags_come_from_the_test_scores_only() -> None:
    series, scores = _series(slice(2005, 2010))
    scores[900:905] = 30.0  # a spike in validation: never flagged by dynamic thresholds
    run = Assessment(EvaluateParams(threshold=ThresholdParams(method="dynamic")))
    threshold, flags = run.add(series, SPLIT, scores)
    assert np.flatnonzero(flags).tolist() == list(range(1905, 2110))  # spike +- 100 buffer
    m = run.per_series["cat/s"]
    assert (m["event_tp"], m["event_fp"], m["event_fn"]) == (1, 0, 0)
    # the threshold reported (and used to scale the pooled scores) is the validation quantile
    assert threshold == np.quantile(scores[800:1000], 0.99)


def test_fixed_level_ignores_the_validation_scores() -> None:
    series, scores = _series(slice(2005, 2010))
    run = Assessment(EvaluateParams())
    threshold, flags = run.add(series, SPLIT, scores, threshold=29.0)
    assert threshold == 29.0 and np.flatnonzero(flags).tolist() == list(range(2005, 2010))
    assert run.per_series["cat/s"]["threshold"] == 29.0


def test_validation_threshold_by_default() -> None:
    series, scores = _series(slice(2005, 2010))
    threshold, flags = Assessment(EvaluateParams()).add(series, SPLIT, scores)
    assert threshold == np.quantile(scores[800:1000], 0.99)
    assert flags[2005:2010].all() and flags.sum() > 5  # noise above the 0.99 quantile too


def test_settings_line_names_what_differs() -> None:
    assert settings_line(EvaluateParams().model_dump()) == "Default evaluate settings."
    changed = EvaluateParams(threshold=ThresholdParams(method="dynamic")).model_dump()
    assert settings_line(changed) == ("Evaluate settings changed from the defaults: "
                                      "`evaluate.threshold.method=dynamic`.")
    assert settings_line(None) == "Evaluate settings not recorded."
