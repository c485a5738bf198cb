"""The plot stage's figures, on small synthetic series and scores (no pipeline data needed)."""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from rnnad.config import PlotParams
from rnnad.datasets.series import Series
from rnnad.io import save_npz, series_filename, write_json
from rnnad.plots import (
    ROC_PR,
    SERIES_SIZE_IN,
    SHOWCASE,
    THRESHOLD_GID,
    WINDOW_GID,
    ScoreRecord,
    curve_auc,
    curves_figure,
    pick_showcase,
    plot_outputs,
    read_curve,
    save_png,
    series_figure,
)
from rnnad.split import Split

N, L, C = 400, 8, 1
WINDOWS = np.array([[100, 119], [250, 255], [330, 330]])
SPLIT = Split(n=N, train_end=60, val_end=80)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_series(sid: str = "synthetic/one", n: int = N, channels: int = C,
                backward: bool = False) -> Series:
    t = np.arange(n)
    ts = np.datetime64("2024-01-01T00:00", "ns") + t * np.timedelta64(5, "m")
    if backward:
        ts[n // 2 :] -= np.timedelta64(1, "h")
    values = np.stack([10 + np.sin(t / 8 + c) for c in range(channels)], axis=1)
    labels = np.zeros(n, dtype=np.int8)
    for s, e in WINDOWS:
        labels[s : e + 1] = 1
        values[s : e + 1] += 3
    return Series(id=sid, timestamps=ts, values=values, labels=labels, windows=WINDOWS.copy())


def make_record(series: Series, threshold: float = 0.5, all_nan: bool = False,
                ends: tuple[int, ...] = (150, 110, 252)) -> ScoreRecord:
    rng = np.random.default_rng(0)
    n = len(series)
    scores = rng.uniform(0.01, 0.4, n)
    scores[series.labels == 1] = 2.0
    scores[: L - 1] = np.nan
    if all_nan:
        scores[:] = np.nan
    flags = (np.nan_to_num(scores, nan=-np.inf) > threshold).astype(np.int8)
    e = np.array(ends)
    inputs = np.stack([series.values[i - L + 1 : i + 1] - 10 for i in e]).astype(np.float32)
    return ScoreRecord(scores=scores, flags=flags, threshold=threshold, example_ends=e,
                       example_inputs=inputs, example_recon=inputs * 0.9)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def window_spans(ax) -> list:
    return [p for p in ax.patches if p.get_gid() == WINDOW_GID]


# ---------------------------------------------------------------- series figure
def test_series_figure_has_three_panels_windows_and_threshold() -> None:
    series = make_series()
    rec = make_record(series)
    fig = series_figure(series, SPLIT, rec, examples=3, window_length=L)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    ax_val, ax_score, _ = fig.axes
    # one shaded span per labelled window, in the value and score panels
    assert len(window_spans(ax_val)) == len(WINDOWS)
    assert len(window_spans(ax_score)) == len(WINDOWS)
    # the threshold line is horizontal at the threshold
    (thr,) = [ln for ln in ax_score.get_lines() if ln.get_gid() == THRESHOLD_GID]
    assert np.allclose(thr.get_ydata(), rec.threshold)
    assert ax_score.get_yscale() == "log"
    lo, hi = ax_score.get_ylim()
    assert lo < rec.threshold < hi
    # split boundaries: two dashed vertical lines in each time panel
    for ax in (ax_val, ax_score):
        vlines = [ln for ln in ax.get_lines()
                  if ln.get_linestyle() == "--" and ln.get_gid() != THRESHOLD_GID]
        assert len(vlines) == 2
    # detections: exactly the flagged points of the test part, drawn on the values
    (det,) = [ln for ln in ax_val.get_lines() if ln.get_label().startswith("detection")]
    expected = np.flatnonzero(rec.flags[SPLIT.val_end :]) + SPLIT.val_end
    assert len(det.get_xdata()) == len(expected) > 0
    assert np.allclose(det.get_ydata(), series.values[expected, 0])
    assert to_rgba(det.get_color()) == to_rgba("tab:red")


def test_example_panel_titles_and_counts() -> None:
    series = make_series()
    rec = make_record(series)
    fig = series_figure(series, SPLIT, rec, examples=3)
    ax_ex = fig.axes[2]
    assert len(ax_ex.get_lines()) == 2 * 3 * C  # input and reconstruction per example
    titles = [t.get_text() for t in ax_ex.texts]
    assert len(titles) == 3
    assert "2024-01-01 12:30" in titles[0]  # index 150 at 5-minute steps from midnight
    assert "outside labelled windows" in titles[0]
    assert "in a labelled window" in titles[1] and "in a labelled window" in titles[2]
    np.testing.assert_allclose(ax_ex.get_lines()[0].get_ydata(), rec.example_inputs[0, :, 0])


def test_examples_are_limited_and_deduplicated() -> None:
    series = make_series()
    rec = make_record(series, ends=(150, 150, 252))  # no anomaly: typical == inside
    fig = series_figure(series, SPLIT, rec, examples=3)
    assert len(fig.axes[2].texts) == 2
    fig = series_figure(series, SPLIT, make_record(series), examples=1)
    assert len(fig.axes[2].texts) == 1
    assert len(fig.axes[2].get_lines()) == 2


def test_nan_scores_do_not_break_the_figure(tmp_path: Path) -> None:
    series = make_series()
    fig = series_figure(series, SPLIT, make_record(series, all_nan=True))
    assert fig.axes[1].get_yscale() == "linear"
    path = save_png(fig, tmp_path / "nan.png", dpi=40)
    assert png_size(path.read_bytes()) == (int(SERIES_SIZE_IN[0] * 40), int(SERIES_SIZE_IN[1] * 40))
    # leading NaNs (the first window.length - 1 points) are a gap, and are named in the legend
    fig = series_figure(series, SPLIT, make_record(series))
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert any(f"first {L - 1} points" in s for s in labels)


def test_no_labelled_window_and_non_positive_scores() -> None:
    series = make_series()
    series = Series(id=series.id, timestamps=series.timestamps, values=series.values,
                    labels=np.zeros(N, dtype=np.int8), windows=np.empty((0, 2), dtype=np.int64))
    rec = make_record(series)
    rec.scores[L - 1 :] = 0.0  # every finite score is zero: no log scale
    fig = series_figure(series, SPLIT, rec)
    assert window_spans(fig.axes[0]) == []
    assert fig.axes[1].get_yscale() == "linear"


def test_multichannel_and_backward_timestamps() -> None:
    series = make_series(channels=2, backward=True)
    rec = make_record(series)
    fig = series_figure(series, SPLIT, rec)
    ax_val = fig.axes[0]
    value_lines = [ln for ln in ax_val.get_lines() if ln.get_label() in series.channel_names]
    assert len(value_lines) == 2
    # timestamps go backwards, so x is the record number
    np.testing.assert_array_equal(value_lines[0].get_xdata(), np.arange(N))
    assert "record number" in fig.axes[1].get_xlabel()


def test_dates_on_the_time_axis() -> None:
    series = make_series()
    fig = series_figure(series, SPLIT, make_record(series))
    x = fig.axes[0].get_lines()[0].get_xdata()
    assert np.all(np.diff(x) > 0) and x[0] > 10_000  # matplotlib date numbers (days)
    assert fig.axes[1].get_xlabel() == "time"


def test_log_score_axis_labels_powers_of_ten(tmp_path: Path) -> None:
    series = make_series()
    rec = make_record(series)
    rec.scores[200:210] = 1e-5  # six decades between the lowest and the highest score
    fig = series_figure(series, SPLIT, rec)
    ax = fig.axes[1]
    assert ax.get_yscale() == "log"
    save_png(fig, tmp_path / "log.png", dpi=30)  # draws the ticks
    labels = {t.get_text() for t in ax.get_yticklabels()}
    assert {"10\u207b\u2074", "10\u207b\u00b2", "1"} <= labels  # 10^-4, 10^-2, 1


def test_stale_scores_are_refused() -> None:
    series = make_series()
    rec = make_record(make_series(n=N - 1))
    with pytest.raises(ValueError, match="rerun evaluate"):
        series_figure(series, Split(N, 60, 80), rec)
    with pytest.raises(ValueError, match=r"window\.length"):
        series_figure(series, SPLIT, make_record(series), window_length=L + 1)


def test_save_png_is_valid_sized_and_reproducible(tmp_path: Path) -> None:
    series = make_series()
    rec = make_record(series)
    a = save_png(series_figure(series, SPLIT, rec), tmp_path / "a.png", dpi=50).read_bytes()
    b = save_png(series_figure(series, SPLIT, rec), tmp_path / "b.png", dpi=50).read_bytes()
    assert png_size(a) == (600, 450)
    assert a == b
    assert b"matplotlib" not in a.lower()  # no version string in the metadata
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temp files


# ---------------------------------------------------------------- ROC / PR
def write_csv(path: Path, header: str, rows: list[tuple[float, float]]) -> Path:
    path.write_text("\n".join([header] + [f"{a},{b}" for a, b in rows]) + "\n")
    return path


def test_curves_figure_shows_auc_from_the_curve(tmp_path: Path) -> None:
    roc = read_curve(write_csv(tmp_path / "roc.csv", "fpr,tpr",
                               [(0, 0), (0.2, 0.6), (0.5, 0.9), (1, 1)]))
    pr = read_curve(write_csv(tmp_path / "pr.csv", "recall,precision",
                              [(0, 1), (0.5, 0.5), (1.0, 0.25)]))
    assert curve_auc(roc["fpr"], roc["tpr"]) == pytest.approx(0.06 + 0.225 + 0.475)
    assert curve_auc(pr["recall"], pr["precision"]) == pytest.approx(0.375 + 0.1875)
    fig = curves_figure(roc, pr)
    ax_roc, ax_pr = fig.axes
    roc_labels = [t.get_text() for t in ax_roc.get_legend().get_texts()]
    pr_labels = [t.get_text() for t in ax_pr.get_legend().get_texts()]
    assert any("0.760" in s for s in roc_labels)
    assert any("0.562" in s for s in pr_labels)
    assert any("prevalence 0.250" in s for s in pr_labels)
    assert ax_roc.get_xlabel() == "false positive rate" and ax_pr.get_xlabel() == "recall"
    path = save_png(fig, tmp_path / "c.png", dpi=50)
    assert png_size(path.read_bytes()) == (500, 230)


def test_empty_curves(tmp_path: Path) -> None:
    # evaluate writes a header-only CSV when the test parts hold one class only
    roc = read_curve(write_csv(tmp_path / "roc.csv", "x,y", []))
    fig = curves_figure(roc, roc)
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert all("one class" in ax.texts[0].get_text() for ax in fig.axes)
    save_png(fig, tmp_path / "empty.png", dpi=30)


# ---------------------------------------------------------------- the stage
def test_pick_showcase(caplog: pytest.LogCaptureFixture) -> None:
    assert pick_showcase(["a/x", "b/y"], "b/y") == "b/y"
    with caplog.at_level(logging.WARNING, logger="rnnad"):
        assert pick_showcase(["a/x", "b/y"], "c/z") == "a/x"
    assert "c/z" in caplog.text and "a/x" in caplog.text
    with pytest.raises(ValueError):
        pick_showcase([], "a/x")


def make_pipeline_outputs(root: Path, ids: list[str]) -> dict[str, Path]:
    dirs = {k: root / k for k in ("processed", "scores", "curves")}
    for d in dirs.values():
        d.mkdir()
    index, splits = [], {}
    for sid in ids:
        series = make_series(sid)
        name = series_filename(sid, ".npz")
        series.save(dirs["processed"] / name)
        index.append({"id": sid, "file": name, "points": len(series)})
        splits[sid] = {**SPLIT.to_dict(), "scaler": {"mean": [10.0], "std": [1.0]}}
        rec = make_record(series)
        save_npz(dirs["scores"] / name, scores=rec.scores, flags=rec.flags,
                 threshold=np.array(rec.threshold), example_ends=rec.example_ends,
                 example_inputs=rec.example_inputs, example_recon=rec.example_recon)
    write_json(dirs["processed"] / "index.json", {"dataset": "nab", "series": index})
    dirs["splits"] = root / "splits.json"
    write_json(dirs["splits"], {"protocol": "nab", "series": splits})
    write_csv(dirs["curves"] / "roc.csv", "fpr,tpr", [(0, 0), (0.3, 0.7), (1, 1)])
    write_csv(dirs["curves"] / "pr.csv", "recall,precision", [(0, 1), (0.7, 0.4), (1, 0.1)])
    return dirs


def run_outputs(dirs: dict[str, Path], root: Path, showcase: str) -> dict[str, str]:
    return plot_outputs(PlotParams(showcase=showcase, examples=2, dpi=30), L,
                        dirs["processed"], dirs["splits"], dirs["scores"], dirs["curves"],
                        root / "plots" / "series", root / "plots" / "summary")


def test_plot_outputs_writes_every_series_and_the_summary(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ids = ["cat/one", "cat/two", "other/three"]
    dirs = make_pipeline_outputs(tmp_path, ids)
    written = run_outputs(dirs, tmp_path, "cat/two")
    series_dir, summary_dir = tmp_path / "plots" / "series", tmp_path / "plots" / "summary"
    assert written == {sid: series_filename(sid, ".png") for sid in ids}
    assert sorted(p.name for p in series_dir.iterdir()) == sorted(written.values())
    assert sorted(p.name for p in summary_dir.iterdir()) == sorted([SHOWCASE, ROC_PR])
    for p in series_dir.iterdir():
        assert png_size(p.read_bytes()) == (360, 270)
    assert (summary_dir / SHOWCASE).read_bytes() == (series_dir / "cat__two.png").read_bytes()
    assert png_size((summary_dir / ROC_PR).read_bytes()) == (300, 138)
    before = {p.name: p.read_bytes() for p in [*series_dir.iterdir(), *summary_dir.iterdir()]}

    # a showcase that was not selected falls back to the first series, with a warning
    with caplog.at_level(logging.WARNING, logger="rnnad"):
        run_outputs(dirs, tmp_path, "missing/series")
    assert "missing/series" in caplog.text
    assert (summary_dir / SHOWCASE).read_bytes() == before["cat__one.png"]
    # reruns give identical bytes
    after = {p.name: p.read_bytes() for p in series_dir.iterdir()}
    assert after == {k: v for k, v in before.items() if k in after}
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.startswith(".")]


def test_a_failed_run_keeps_the_previous_outputs(tmp_path: Path) -> None:
    dirs = make_pipeline_outputs(tmp_path, ["cat/one", "cat/two"])
    run_outputs(dirs, tmp_path, "cat/one")
    series_dir = tmp_path / "plots" / "series"
    old = sorted(p.name for p in series_dir.iterdir())
    (dirs["scores"] / "cat__two.npz").unlink()
    with pytest.raises(ValueError, match="rerun evaluate"):
        run_outputs(dirs, tmp_path, "cat/one")
    assert sorted(p.name for p in series_dir.iterdir()) == old
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.startswith(".")]
    assert json.loads((dirs["processed"] / "index.json").read_text())["series"][1]["id"]
