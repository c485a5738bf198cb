"""The NAB scorer: NAB's published windowedGaussian scores reproduced from its published output,
and small hand-checked cases of each scoring rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnad import nab
from rnnad.datasets.series import DataError

STANDARD = nab.DEFAULT_PROFILES["standard"]
LOW_FN = nab.DEFAULT_PROFILES["reward_low_FN_rate"]
SIGMA_M1 = 2 / (1 + math.exp(-5)) - 1  # sigma(-1) = 0.9866142981514303


def prepared(scores: list[float] | np.ndarray, bounds: list[tuple[int, int]],
             probation: int = 0) -> nab.PreparedFile:
    """A file given directly by row indices (no timestamps), with its own probation."""
    arr = np.asarray(scores, dtype=np.float64)
    return nab.PreparedFile("f", arr, np.array(bounds, dtype=np.int64).reshape(-1, 2), probation)


def score_at(rows: list[int], bounds: list[tuple[int, int]], n: int = 100, probation: int = 0,
             cost: nab.CostMatrix = STANDARD) -> float:
    """Raw score of a file of ``n`` rows with detections exactly at ``rows``."""
    scores = np.zeros(n)
    scores[rows] = 1.0
    return nab.score_file(prepared(scores, bounds, probation), 1.0, cost).score


# --- the scaled sigmoid and the probationary period -------------------------------------------


def test_sigmoid_values():
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.9866142981514303, abs=1e-15)
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.9866142981514303, abs=1e-15)
    assert nab.scaled_sigmoid(0.5) == pytest.approx(2 / (1 + math.exp(2.5)) - 1, abs=1e-15)
    assert nab.scaled_sigmoid(3.0) == pytest.approx(-0.9999993881, abs=1e-10)
    with np.errstate(all="raise"):  # no overflow warnings far from a window
        far = nab.scaled_sigmoid(np.array([-1e6, 1e6]))
    assert far.tolist() == [1.0, -1.0]


@pytest.mark.parametrize(("n", "expected"), [(6, 0), (100, 15), (1643, 246), (4032, 604),
                                             (5000, 750), (22695, 750)])
def test_probation_length(n, expected):
    assert nab.probation_length(n) == expected


# --- one file, hand-checked -------------------------------------------------------------------

WINDOW = [(40, 49)]  # 10 rows


def test_detection_on_window_first_row_earns_the_full_tp_weight():
    assert score_at([40], WINDOW) == pytest.approx(1.0, abs=1e-12)


def test_detection_on_window_last_row():
    # y = -1/10: sigma(-0.1) / sigma(-1) = 0.2449186624 / 0.9866142982
    assert score_at([49], WINDOW) == pytest.approx(0.2482415498, abs=1e-9)


def test_detection_in_the_middle_of_a_window():
    # row 45: y = -(49 - 45 + 1) / 10 = -0.5
    assert score_at([45], WINDOW) == pytest.approx((2 / (1 + math.exp(-2.5)) - 1) / SIGMA_M1)


def test_detection_one_row_after_the_window_end():
    # A missed window (-1) and a false positive at y = (50 - 49) / (49 - 40) = 1/9:
    # 0.11 * sigma(1/9) = 0.11 * -0.2708471185
    assert score_at([50], WINDOW) == pytest.approx(-1.0 - 0.11 * 0.2708471185, abs=1e-9)


def test_false_positive_reach_is_three_window_spans():
    at_reach = 49 + 27  # y = 27 / 9 = 3: still on the sigmoid
    beyond = at_reach + 1  # y > 3: the full weight
    assert score_at([at_reach], WINDOW) == pytest.approx(-1 + 0.11 * nab.scaled_sigmoid(3.0))
    assert score_at([at_reach], WINDOW) != -1.11
    assert score_at([beyond], WINDOW) == -1.11


def test_false_positive_before_any_window_costs_the_full_weight():
    assert score_at([10, 40], WINDOW) == pytest.approx(1.0 - 0.11, abs=1e-12)
    assert score_at([10, 40], WINDOW, cost=nab.DEFAULT_PROFILES["reward_low_FP_rate"]) == (
        pytest.approx(1.0 - 0.22, abs=1e-12))


def test_false_positive_is_measured_from_the_nearest_preceding_window():
    two = [(10, 19), (60, 69)]
    # row 71 follows the second window: y = 2/9; a far-away first window would give -1
    expected = -1 + 1 + 0.11 * float(nab.scaled_sigmoid(2 / 9))
    assert score_at([60, 71], two) == pytest.approx(expected, abs=1e-12)


def test_only_the_first_detection_in_a_window_counts():
    assert score_at([40, 41, 45, 49], WINDOW) == pytest.approx(1.0, abs=1e-12)
    assert score_at([45, 46, 49], WINDOW) == pytest.approx(score_at([45], WINDOW), abs=1e-12)
    assert score_at([45], WINDOW) < score_at([44], WINDOW) < 1.0


def test_missed_window_costs_the_fn_weight():
    assert score_at([], WINDOW) == -1.0
    assert score_at([], WINDOW, cost=LOW_FN) == -2.0
    assert score_at([], [(10, 19), (60, 69)], cost=LOW_FN) == -4.0


def test_detections_in_the_probationary_period_are_ignored():
    # 15 probationary rows; detections on rows 0..14 change nothing
    assert score_at(list(range(15)), [(40, 49)], probation=15) == -1.0
    assert score_at(list(range(15)), [], probation=15) == 0.0
    assert score_at([15], [], probation=15) == -0.11  # the first counted row
    result = nab.score_file(prepared(np.ones(100), [], probation=15), 1.0, STANDARD)
    assert (result.fp, result.tn, result.total) == (85, 0, 100)


def test_file_without_windows():
    assert score_at([], []) == 0.0
    assert score_at([20, 50, 90], []) == pytest.approx(-0.33, abs=1e-12)


def test_row_scores_follow_nab_layout():
    det = np.zeros(100, dtype=bool)
    det[[10, 45, 47, 52]] = True
    rows = nab.row_scores(det, np.array([[40, 49]]), 0, STANDARD)
    nonzero = np.flatnonzero(rows).tolist()
    assert nonzero == [10, 40, 52]  # the window's reward sits on its first row
    assert rows[10] == pytest.approx(-0.11)
    assert rows[52] == pytest.approx(0.11 * nab.scaled_sigmoid(3 / 9))


def test_window_bounds_from_timestamps():
    ts = pd.date_range("2020-01-01", periods=10, freq="5min").to_numpy()
    bounds = nab.window_bounds(ts, [("2020-01-01 00:25:00.000000", "2020-01-01 00:35:00"),
                                    ("2020-01-01 00:05:00", "2020-01-01 00:10:00")])
    assert bounds.tolist() == [[1, 2], [5, 7]]
    with pytest.raises(DataError, match="contains no rows"):
        nab.window_bounds(ts, [("2021-01-01", "2021-01-02")], "x.csv")
    with pytest.raises(DataError, match="overlap"):
        nab.window_bounds(ts, [("2020-01-01 00:05", "2020-01-01 00:20"),
                               ("2020-01-01 00:20", "2020-01-01 00:30")], "x.csv")


# --- corpus scores and the threshold optimiser --------------------------------------------------


TOY_WINDOWS = {
    "c/s0.csv": [("2020-01-03 00:00", "2020-01-03 09:00")],
    "c/s1.csv": [("2020-01-04 00:00", "2020-01-04 19:00"), ("2020-01-07 00:00",
                                                            "2020-01-07 09:00")],
    "c/s2.csv": [],
    "c/s3.csv": [("2020-01-02 12:00", "2020-01-02 15:00")],
}


def toy_corpus(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Four 200-row hourly series: uniform noise, somewhat higher inside the windows."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2020-01-01", periods=200, freq="h").to_numpy()
    out = {}
    for key, windows in TOY_WINDOWS.items():
        scores = rng.random(200)
        for s, e in nab.window_bounds(ts, windows):
            scores[s:e + 1] += 0.3 * rng.random(e - s + 1)
        out[key] = (ts, scores)
    return out


def test_null_detector_scores_zero():
    series = {k: (ts, np.zeros(len(ts))) for k, (ts, _) in toy_corpus().items()}
    for result in nab.score_arrays(series, TOY_WINDOWS).values():
        assert result.normalised == 0.0
        assert result.raw == result.null
        assert all(f.tp + f.fp == 0 for f in result.files)
    assert nab.score_arrays(series, TOY_WINDOWS)["reward_low_FN_rate"].null == -8.0


def test_perfect_detector_scores_100():
    series = {}
    for key, (ts, _) in toy_corpus().items():
        scores = np.zeros(len(ts))
        scores[nab.window_bounds(ts, TOY_WINDOWS[key])[:, 0]] = 0.7
        series[key] = (ts, scores)
    for name, result in nab.score_arrays(series, TOY_WINDOWS).items():
        assert result.normalised == pytest.approx(100.0, abs=1e-9), name
        assert result.threshold == 0.7
        assert result.perfect == 4.0  # tpWeight per window


def test_optimiser_finds_the_best_threshold():
    files = [nab.PreparedFile.build(k, ts, s, TOY_WINDOWS[k]) for k, (ts, s) in
             toy_corpus(1).items()]
    for cost in nab.DEFAULT_PROFILES.values():
        thresholds, raws = nab.threshold_curve(files, cost)
        for j in range(0, len(thresholds), 37):  # the curve matches direct scoring
            direct = sum(nab.score_file(f, thresholds[j], cost).score for f in files)
            assert raws[j] == pytest.approx(direct, abs=1e-9)
        best, floor = nab.optimise_threshold(files, cost)
        best_raw = sum(nab.score_file(f, best, cost).score for f in files)
        assert best_raw == pytest.approx(raws.max(), abs=1e-9)
        assert best_raw > nab.null_score(files, cost) + 0.5  # detecting something pays here
        # the same score anywhere in (floor, best]; no grid threshold does better
        just_above_floor = float(np.nextafter(floor, np.inf))
        assert sum(nab.score_file(f, just_above_floor, cost).score for f in files) == (
            pytest.approx(best_raw, abs=1e-9))
        assert sum(nab.score_file(f, floor, cost).score for f in files) < best_raw
        for t in np.linspace(0, 1.31, 263):
            assert sum(nab.score_file(f, t, cost).score for f in files) <= best_raw + 1e-9


def test_optimiser_breaks_ties_towards_the_highest_threshold():
    # tp = fn = fp = 0.11: the window at rows 40.. pays +0.22 at 0.9, two false positives
    # before it cost 0.22 at 0.8, the window at rows 60.. pays +0.22 at 0.7: 0.9 and 0.7 tie.
    cost = nab.CostMatrix(tp_weight=0.11, fn_weight=0.11, fp_weight=0.11)
    scores = np.zeros(100)
    scores[[40, 10, 11, 60]] = [0.9, 0.8, 0.8, 0.7]
    f = prepared(scores, [(40, 49), (60, 69)])
    thresholds, raws = nab.threshold_curve([f], cost)
    assert thresholds[1:4].tolist() == [0.9, 0.8, 0.7]
    assert raws[1] == raws[3] == 0.0
    assert nab.optimise_threshold([f], cost) == (0.9, 0.8)


def test_score_arrays_rejects_bad_input():
    ts, scores = toy_corpus()["c/s0.csv"]
    with pytest.raises(DataError, match="no label windows"):
        nab.score_arrays({"c/other.csv": (ts, scores)}, TOY_WINDOWS)
    with pytest.raises(DataError, match="199 anomaly scores for 200 timestamps"):
        nab.score_arrays({"c/s0.csv": (ts, scores[:-1])}, TOY_WINDOWS)
    bad = scores.copy()
    bad[7] = np.nan
    with pytest.raises(DataError, match="index 7"):
        nab.score_arrays({"c/s0.csv": (ts, bad)}, TOY_WINDOWS)


# --- the results layout and the command line ----------------------------------------------------


@pytest.fixture
def toy_layout(tmp_path: Path) -> tuple[Path, Path]:
    """A NAB folder (data/, labels/, config/) and a detector's results in NAB's layout."""
    root, results = tmp_path / "nab", tmp_path / "results" / "mydet"
    (root / "labels").mkdir(parents=True)
    (root / "config").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(TOY_WINDOWS))
    profiles = {name: {"CostMatrix": {"tpWeight": c.tp_weight, "fnWeight": c.fn_weight,
                                      "fpWeight": c.fp_weight, "tnWeight": 1.0}}
                for name, c in nab.DEFAULT_PROFILES.items()}
    (root / "config" / "profiles.json").write_text(json.dumps(profiles))
    for key, (ts, scores) in toy_corpus().items():
        category, name = key.split("/")
        stamps = pd.DatetimeIndex(ts).strftime("%Y-%m-%d %H:%M:%S")
        (root / "data" / category).mkdir(parents=True, exist_ok=True)
        (results / category).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": stamps, "value": 1.0}).to_csv(
            root / "data" / key, index=False)
        pd.DataFrame({"timestamp": stamps, "value": 1.0, "anomaly_score": scores}).to_csv(
            results / category / f"mydet_{name}", index=False)
    return root, results


def test_results_layout_matches_in_memory_scores(toy_layout):
    root, results = toy_layout
    from_files = nab.score_results_dir(results, data_root=root)
    in_memory = nab.score_arrays(toy_corpus(), TOY_WINDOWS)
    for name in nab.DEFAULT_PROFILES:
        assert from_files[name].normalised == pytest.approx(in_memory[name].normalised, abs=1e-9)
        assert from_files[name].threshold == pytest.approx(in_memory[name].threshold, abs=1e-12)


def test_cli_prints_scores_and_json(toy_layout, capsys):
    root, results = toy_layout
    assert nab.main(["score", str(results), "--data-root", str(root)]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in nab.DEFAULT_PROFILES)
    assert nab.main(["score", str(results), "--data-root", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = nab.score_arrays(toy_corpus(), TOY_WINDOWS)
    for name, r in expected.items():
        assert out[name]["normalised"] == pytest.approx(r.normalised, abs=1e-9)
        assert out[name]["threshold"] == pytest.approx(r.threshold, abs=1e-12)


def test_detector_prefix_found_when_the_folder_is_named_otherwise(toy_layout):
    root, results = toy_layout
    renamed = results.rename(results.parent / "run-42")
    assert nab.score_results_dir(renamed, data_root=root)["standard"].files[0].total == 200


def _edit(path: Path, change) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(frame).to_csv(path, index=False)


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.drop(columns="anomaly_score"), r"mydet_s1\.csv: no 'anomaly_score' column"),
    (lambda f: f.assign(anomaly_score=f.anomaly_score.where(f.index != 9, "high")),
     r"mydet_s1\.csv: column 'anomaly_score', row 11: not a finite number: 'high'"),
    (lambda f: f.assign(anomaly_score=f.anomaly_score.where(f.index != 3, "")),
     r"column 'anomaly_score', row 5: not a finite number: ''"),
    (lambda f: f.iloc[:-1], r"mydet_s1\.csv: 199 rows, but the data file has 200"),
    (lambda f: f.assign(timestamp=f.timestamp.where(f.index != 4, "2020-01-01 04:30:00")),
     r"mydet_s1\.csv: column 'timestamp', row 6: .* differs from the data file"),
    (lambda f: f.assign(timestamp=f.timestamp.where(f.index != 4, "yesterday")),
     r"mydet_s1\.csv: column 'timestamp', row 6: not a timestamp: 'yesterday'"),
])
def test_malformed_results_file_is_named(toy_layout, change, message, capsys):
    root, results = toy_layout
    _edit(results / "c" / "mydet_s1.csv", change)
    with pytest.raises(DataError, match=message):
        nab.score_results_dir(results, data_root=root)
    assert nab.main(["score", str(results), "--data-root", str(root)]) == 1
    assert "rnnad nab: error:" in capsys.readouterr().err


def test_missing_results_file_is_named(toy_layout):
    root, results = toy_layout
    (results / "c" / "mydet_s2.csv").unlink()
    with pytest.raises(DataError, match=r"1 results file\(s\) missing .*mydet_s2\.csv"):
        nab.score_results_dir(results, data_root=root)


def test_missing_data_file_is_named(toy_layout):
    root, results = toy_layout
    (root / "data" / "c" / "s3.csv").unlink()
    with pytest.raises(DataError, match=r"s3\.csv: data file not found"):
        nab.score_results_dir(results, data_root=root)


# --- NAB's published windowedGaussian scores ----------------------------------------------------


@pytest.fixture(scope="module")
def published(request) -> tuple[Path, Path]:
    mirror = request.getfixturevalue("mirror")  # skips when the shared datasets are absent
    results = mirror / "nab_results" / "windowedGaussian"
    if not (results / "windowedGaussian_standard_scores.csv").is_file():
        pytest.skip(f"NAB's published windowedGaussian output not found at {results}")
    return mirror / "nab", results


@pytest.fixture(scope="module")
def wg_files(published) -> list[nab.PreparedFile]:
    root, results = published
    return nab.load_results_dir(results, nab.load_windows(root / nab.WINDOWS_FILE), root)


@pytest.fixture(scope="module")
def wg_scores(published, wg_files) -> dict[str, nab.ProfileResult]:
    root, _ = published
    return nab.score_prepared(wg_files, nab.load_profiles(root / nab.PROFILES_FILE))


def test_windowed_gaussian_published_scores_reproduced(published, wg_scores):
    expected = json.loads((published[1].parent / "published_scores.json").read_text())
    assert set(wg_scores) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    for name, value in expected["windowedGaussian"].items():
        assert wg_scores[name].normalised == pytest.approx(value, abs=0.1), name
    for name, value in {"standard": 39.65, "reward_low_FP_rate": 20.87,
                        "reward_low_FN_rate": 47.41}.items():
        assert wg_scores[name].normalised == pytest.approx(value, abs=0.1), name


def test_windowed_gaussian_thresholds_and_per_file_scores(published, wg_scores):
    root, results = published
    chosen = json.loads((root / "config" / "thresholds.json").read_text())["windowedGaussian"]
    for name, result in wg_scores.items():
        assert result.threshold == chosen[name]["threshold"]
        table = pd.read_csv(results / f"windowedGaussian_{name}_scores.csv")
        table = table[table["File"].notna()].set_index("File")
        assert len(table) == len(result.files) == 58
        for f in result.files:
            row = table.loc[f.name]
            assert f.score == pytest.approx(row["Score"], abs=1e-9), (name, f.name)
            assert (f.tp, f.tn, f.fp, f.fn, f.total) == (
                row["TP"], row["TN"], row["FP"], row["FN"], row["Total_Count"]), (name, f.name)


def test_windowed_gaussian_per_row_scores(published, wg_files):
    root, results = published
    profiles = nab.load_profiles(root / nab.PROFILES_FILE)
    for f in wg_files:
        category, name = f.name.split("/")
        table = pd.read_csv(results / category / f"windowedGaussian_{name}")
        for profile, cost in profiles.items():
            rows = nab.row_scores(f.scores >= 1.0, f.bounds, f.probation, cost)
            np.testing.assert_allclose(rows, table[f"S(t)_{profile}"], rtol=0, atol=1e-9,
                                       err_msg=f"{profile} {f.name}")


def test_default_profiles_match_nab_config(published):
    assert nab.load_profiles(published[0] / nab.PROFILES_FILE) == nab.DEFAULT_PROFILES
