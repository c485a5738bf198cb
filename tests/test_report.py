"""The README's results tables come from reports/metrics.json, by a command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnad.report import BEGIN, END, ReportError, main, replace_block, results_block

REPO = Path(__file__).resolve().parents[1]


def _overall(f1: float | None, tp: int) -> dict:
    return {"precision": 0.5, "recall": 0.25, "f1": f1, "f1_point_adjusted_inflated": 0.9,
            "auc_roc": 0.61234, "auc_pr": 0.2, "vus_roc": 0.7, "vus_pr": None,
            "event_precision": 0.5, "event_recall": 1.0, "event_f1": 0.6667, "event_tp": tp,
            "event_fp": 3, "event_fn": 0, "range_precision": 0.1, "range_recall": 0.2,
            "range_f1": 0.1333, "flagged": 12, "points": 100, "anomalous": 10, "series": 2}


METRICS = {
    "detectors": {
        "rnnad": {"overall": _overall(0.333, 2),
                  "nab": {"series": 3, "standard": 12.345, "reward_low_FP_rate": -3.0,
                          "reward_low_FN_rate": 20.0,
                          "half_a": {"series": 2, "standard": 30.0, "reward_low_FP_rate": 1.0,
                                     "reward_low_FN_rate": 2.0},
                          "half_b": {"series": 1, "standard": -5.0, "reward_low_FP_rate": 0.5,
                                     "reward_low_FN_rate": 0.25}}},
        "null": {"overall": _overall(None, 0),
                 "nab": {"standard": 0.0, "reward_low_FP_rate": 0.0, "reward_low_FN_rate": 0.0}},
    },
    "per_series": {
        "catA/s1": {"precision": 0.2, "recall": None, "f1": None, "event_f1": 0.5,
                    "range_f1": 0.1, "auc_roc": None, "auc_pr": None, "vus_pr": None},
        "catA/s2": {"precision": 0.4, "recall": 0.5, "f1": 0.4, "event_f1": 1.0,
                    "range_f1": 0.3, "auc_roc": 0.8, "auc_pr": 0.3, "vus_pr": 0.2},
    },
}


def test_block_holds_every_detector_and_value() -> None:
    block = results_block(METRICS)
    assert block.startswith(BEGIN) and block.endswith(END)
    rows = [line for line in block.splitlines() if line.startswith("| **rnnad**")]
    # the NAB table first: all files and each half, three profiles each
    assert rows[0] == ("| **rnnad** (LSTM encoder-decoder) | 12.35 / -3.00 / 20.00 | "
                       "30.00 / 1.00 / 2.00 | -5.00 / 0.50 / 0.25 |")
    assert "| NAB score: standard / low FP / low FN | all 3 files | half a (2 files, tuning) | " \
        "half b (1 files, held out) |" in block
    assert "| ARTime (published) | 74.90 / 65.20 / 80.40 | – | – |" in block
    assert rows[1].split(" | ")[1:5] == ["12.35", "-3.00", "20.00", "0.667"]
    assert "0.612" in rows[1] and "| 0.900 |" in rows[1]  # AUC-ROC, point-adjusted F1
    null_row = [line for line in block.splitlines() if line.startswith("| null")][1]
    assert "| 0.00 | 0.00 | 0.00 |" in null_row and "| – |" in null_row  # undefined F1
    assert "| 2 / 3 / 0 |" in block
    # category means skip undefined values: precision (0.2+0.4)/2, recall only s2
    cat = next(line for line in block.splitlines() if line.startswith("| catA"))
    assert cat == "| catA | 2 | 0.300 | 0.500 | 0.400 | 0.750 | 0.200 | 0.800 | 0.300 | 0.200 |"
    assert "2 series, 100 test points of which 10 labelled anomalous." in block


def test_replace_block_keeps_the_rest_and_needs_markers() -> None:
    text = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert replace_block(text, "NEW") == "intro\nNEW\noutro\n"
    with pytest.raises(ReportError, match="no results block"):
        replace_block("no markers here", "NEW")
    with pytest.raises(ReportError, match="metrics lack"):
        results_block({"per_series": {}})


def test_command_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    readme = tmp_path / "README.md"
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(METRICS))
    readme.write_text(f"# x\n{BEGIN}\nstale\n{END}\n")
    assert main([str(readme), "--metrics", str(metrics), "--check"]) == 1
    assert main([str(readme), "--metrics", str(metrics)]) == 0
    assert "12.35" in readme.read_text() and "stale" not in readme.read_text()
    assert main([str(readme), "--metrics", str(metrics), "--check"]) == 0
    assert main([str(readme), "--metrics", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_committed_readme_matches_committed_metrics() -> None:
    """The README's tables are what `python -m rnnad.report` makes of reports/metrics.json."""
    assert main([str(REPO / "README.md"), "--metrics", str(REPO / "reports/metrics.json"),
                 "--check"]) == 0
