"""Figures of the pipeline's results (matplotlib, Agg canvas, no display, no pyplot state).

One function per figure, each returning a :class:`~matplotlib.figure.Figure`:

- :func:`series_figure`: a series with its labelled windows, split boundaries and test
  detections; its per-point anomaly score against the threshold; example windows against their
  reconstructions;
- :func:`curves_figure`: the pooled ROC and precision-recall curves written by ``evaluate``.

:func:`save_png` writes a figure atomically with no version metadata, so that rerunning the stage
on the same inputs gives byte-identical files. :func:`plot_outputs` is the ``plot`` stage.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import matplotlib.dates as mdates
import matplotlib.ticker as mticker
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from rnnad.config import PlotParams
from rnnad.datasets.series import Series
from rnnad.io import atomic_dir, atomic_path, load_npz, series_filename
from rnnad.split import Split

log = logging.getLogger("rnnad")

SERIES_SIZE_IN = (12.0, 9.0)
_LEFT, _WIDTH = 0.07, 0.76  # axes of the series figure; legends go in the right margin
CURVES_SIZE_IN = (10.0, 4.6)
WINDOW_GID = "anomaly-window"
THRESHOLD_GID = "threshold"
SHOWCASE = "showcase.png"
MAX_CHANNELS = 4  # a series with more channels shows those with the largest errors
ROC_PR = "roc_pr.png"

_VALUE = "tab:blue"
_RECON = "tab:orange"
_SCORE = "tab:purple"
_WINDOW = "gold"
_DETECT = "tab:red"
_RC = {"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "path.simplify": True}


@dataclass(frozen=True)
class ScoreRecord:
    """What ``evaluate`` saved for one series (``data/scores/<file>.npz``)."""

    scores: np.ndarray  # float [T]; NaN for the first window.length - 1 points
    flags: np.ndarray  # 0/1 [T]: score > threshold
    threshold: float
    example_ends: np.ndarray  # int [E]: index of the last point of each example window
    example_inputs: np.ndarray  # float [E, L, C], normalised units
    example_recon: np.ndarray  # float [E, L, C_t], normalised units, the target channels
    targets: np.ndarray | None = None  # int [C_t]: input channel of each reconstructed channel
    channel_rank: np.ndarray | None = None  # int: positions in targets, largest error first
    raw_scores: np.ndarray | None = None  # float [T]: reconstruction errors before
    # post-processing (``scores`` is then the post-processed output)

    @classmethod
    def from_arrays(cls, d: Mapping[str, np.ndarray]) -> ScoreRecord:
        return cls(
            scores=np.asarray(d["scores"], dtype=np.float64),
            flags=np.asarray(d["flags"], dtype=np.int8),
            threshold=float(d["threshold"]),
            example_ends=np.asarray(d["example_ends"], dtype=np.int64).reshape(-1),
            example_inputs=np.asarray(d["example_inputs"], dtype=np.float64),
            example_recon=np.asarray(d["example_recon"], dtype=np.float64),
            targets=np.asarray(d["targets"], dtype=np.int64) if "targets" in d else None,
            channel_rank=np.asarray(d["channel_rank"], dtype=np.int64)
            if "channel_rank" in d else None,
            raw_scores=np.asarray(d["raw_scores"], dtype=np.float64)
            if "raw_scores" in d else None,
        )

    @property
    def postprocessed(self) -> bool:
        return self.raw_scores is not None and not np.array_equal(
            self.raw_scores, self.scores, equal_nan=True)

    def target_channels(self, channels: int) -> np.ndarray:
        return np.arange(channels) if self.targets is None else self.targets

    def shown_channels(self, channels: int) -> np.ndarray:
        """Input channels to draw: all up to :data:`MAX_CHANNELS`, else the target channels
        with the largest errors at the detections (``channel_rank``)."""
        if channels <= MAX_CHANNELS:
            return np.arange(channels)
        targets = self.target_channels(channels)
        rank = self.channel_rank if self.channel_rank is not None else np.arange(len(targets))
        return targets[rank[:MAX_CHANNELS]]


def new_figure(size_in: tuple[float, float], layout: str | None = "constrained") -> Figure:
    """A figure on an Agg canvas, independent of pyplot and of any display."""
    fig = Figure(figsize=size_in, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | Path, dpi: int) -> Path:
    """Write ``fig`` as a PNG atomically, without the matplotlib version in the metadata."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    return path


# ---------------------------------------------------------------- series figure
def _time_axis(timestamps: np.ndarray) -> tuple[np.ndarray, bool]:
    """x positions for the records: matplotlib dates when timestamps never go backwards,
    otherwise the record number (records are kept in file order)."""
    ts = timestamps.astype("datetime64[ns]")
    if len(ts) < 2 or bool((np.diff(ts.astype(np.int64)) >= 0).all()):
        return np.asarray(mdates.date2num(ts), dtype=np.float64), True
    return np.arange(len(ts), dtype=np.float64), False


def _format_time_axis(ax: Axes, is_date: bool) -> None:
    if is_date:
        locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _shade_windows(ax: Axes, x: np.ndarray, windows: np.ndarray, label: str | None) -> None:
    """One span per labelled window (inclusive index ranges), up to the next record's x."""
    last = len(x) - 1
    for i, (s, e) in enumerate(windows.reshape(-1, 2)):
        right = x[min(int(e) + 1, last)]
        ax.axvspan(x[int(s)], right, color=_WINDOW, alpha=0.35, lw=0, gid=WINDOW_GID,
                   label=label if (i == 0 and label) else "_nolegend_")


def _mark_split(ax: Axes, x: np.ndarray, split: Split, names: bool) -> None:
    for b in (split.train_end, split.val_end):
        ax.axvline(x[b], color="0.25", ls="--", lw=1.0)
    if not names:
        return
    # Names at the boundaries, on two rows, so that a short validation part stays legible.
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    style = {"transform": trans, "va": "top", "fontsize": 8, "color": "0.2", "style": "italic",
             "bbox": {"facecolor": "white", "alpha": 0.75, "lw": 0, "pad": 1.0}}
    ax.text(x[split.train_end], 0.98, "train \u25c2 ", ha="right", **style)
    ax.text(x[split.train_end], 0.98, " \u25b8 validation", ha="left", **style)
    ax.text(x[split.val_end], 0.88, " \u25b8 test", ha="left", **style)


def _legend_right(ax: Axes) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0.0, frameon=False)


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def _test_summary(labels: np.ndarray, flags: np.ndarray, split: Split) -> str:
    y = labels[split.val_end :].astype(bool)
    f = flags[split.val_end :].astype(bool)
    tp = int((y & f).sum())
    precision = tp / int(f.sum()) if f.any() else None
    recall = tp / int(y.sum()) if y.any() else None
    return (f"test part: {len(y)} points, {int(y.sum())} labelled anomalous, {int(f.sum())} "
            f"flagged (precision {_fmt(precision)}, recall {_fmt(recall)})")


def _example_titles(series: Series, rec: ScoreRecord, ends: np.ndarray) -> list[str]:
    titles = []
    for e in ends:
        when = np.datetime_as_string(series.timestamps[e].astype("datetime64[m]"), unit="m")
        inside = "in a labelled window" if series.labels[e] else "outside labelled windows"
        score = rec.scores[e]
        ratio = score / rec.threshold if rec.threshold > 0 else float("nan")
        error = f"error {rec.raw_scores[e]:.3g}, " if rec.postprocessed else ""
        titles.append(f"ends {when.replace('T', ' ')}\n{inside}\n"
                      f"{error}score {score:.3g} = {ratio:.3g} \u00d7 threshold")
    return titles


def _choose_examples(rec: ScoreRecord, n: int, examples: int) -> np.ndarray:
    """Indices into the saved examples: the first ``examples`` distinct, in-range window ends."""
    seen: set[int] = set()
    chosen = []
    for i, e in enumerate(rec.example_ends.tolist()):
        if 0 <= e < n and e not in seen:
            seen.add(e)
            chosen.append(i)
    return np.asarray(chosen[:examples], dtype=np.int64)


def series_figure(series: Series, split: Split, rec: ScoreRecord, *, examples: int = 3,
                  window_length: int | None = None) -> Figure:
    """Three panels: input series, anomaly score with threshold, example reconstructions."""
    n = len(series)
    if rec.scores.shape != (n,) or rec.flags.shape != (n,) or split.n != n:
        raise ValueError(f"{series.id}: scores ({rec.scores.shape[0]} points) or split "
                         f"({split.n}) do not match the series ({n} points); rerun evaluate")
    if window_length is not None and rec.example_inputs.size and (
            rec.example_inputs.shape[1] != window_length):
        raise ValueError(f"{series.id}: example windows are {rec.example_inputs.shape[1]} long "
                         f"but window.length is {window_length}; rerun evaluate")
    x, is_date = _time_axis(series.timestamps)
    with mpl.rc_context(_RC):
        # Fixed axes positions (figure fractions): as readable as a layout engine for this one
        # fixed-size figure, and several times faster for 58 figures.
        fig = new_figure(SERIES_SIZE_IN, layout=None)
        ax_val = fig.add_axes((_LEFT, 0.625, _WIDTH, 0.265))
        ax_score = fig.add_axes((_LEFT, 0.385, _WIDTH, 0.2), sharex=ax_val)
        ax_ex = fig.add_axes((_LEFT, 0.065, _WIDTH, 0.2))
        fig.suptitle(f"{series.id}: {n} points, {len(series.windows)} labelled anomaly "
                     f"window(s)\n{_test_summary(series.labels, rec.flags, split)}",
                     fontsize=11, y=0.99, va="top")
        _values_panel(ax_val, series, split, rec, x)
        _score_panel(ax_score, series, split, rec, x)
        _format_time_axis(ax_score, is_date)
        ax_val.tick_params(labelbottom=False)
        ax_score.set_xlabel("time" if is_date else
                            "record number (timestamps go backwards: records in file order)")
        ax_val.set_xlim(x[0], x[-1])
        _examples_panel(ax_ex, series, rec, examples)
    return fig


def _values_panel(ax: Axes, series: Series, split: Split, rec: ScoreRecord,
                  x: np.ndarray) -> None:
    many = series.channels > 1
    shown = rec.shown_channels(series.channels)
    for c in shown:
        ax.plot(x, series.values[:, c], lw=0.6, color=None if many else _VALUE,
                label=series.channel_names[c] if many else "value")
    _shade_windows(ax, x, series.windows, "labelled\nanomaly window")
    _mark_split(ax, x, split, names=True)
    test_flagged = np.flatnonzero(rec.flags[split.val_end :]) + split.val_end
    for j, c in enumerate(shown):
        ax.plot(x[test_flagged], series.values[test_flagged, c], ls="none", marker=".", ms=3,
                color=_DETECT, label=f"detection\n({len(test_flagged)} test points)"
                if j == 0 else "_nolegend_")
    ax.yaxis.set_major_formatter(_plain())
    ax.set_ylabel("value (raw units)")
    which = (f"the {len(shown)} of {series.channels} channels with the largest errors at the "
             "detections, " if len(shown) < series.channels else "")
    ax.set_title(f"Input series ({which}labelled anomaly windows, train | validation | test "
                 "boundaries, detections in the test part)", loc="left", y=1.0)
    _legend_right(ax)


def _score_panel(ax: Axes, series: Series, split: Split, rec: ScoreRecord,
                 x: np.ndarray) -> None:
    scores = rec.scores
    finite = scores[np.isfinite(scores)]
    warmup = int(np.argmax(np.isfinite(scores))) if finite.size else len(scores)
    if rec.postprocessed and rec.raw_scores is not None:
        ax.plot(x, rec.raw_scores, lw=0.5, color="0.7", label="reconstruction error")
        raw = rec.raw_scores[np.isfinite(rec.raw_scores)]
        finite = np.concatenate([finite, raw[raw > 0]])
    ax.plot(x, scores, lw=0.6, color=_SCORE,
            label=f"score (none for\nthe first {warmup} points)" if warmup else "score")
    ax.axhline(rec.threshold, color=_DETECT, ls="--", lw=1.2, gid=THRESHOLD_GID,
               label=f"threshold {rec.threshold:.3g}")
    _shade_windows(ax, x, series.windows, None)
    _mark_split(ax, x, split, names=False)
    if not _log_score_axis(ax, finite, rec.threshold):
        ax.yaxis.set_major_formatter(_plain())
        ax.set_ylabel("score")
    if rec.postprocessed:
        ax.set_title("Anomaly score: reconstruction error of the window ending at each point "
                     "(grey) and the post-processed output that is thresholded", loc="left",
                     y=1.0)
    else:
        ax.set_title("Anomaly score: reconstruction error of the window ending at each point "
                     "(squared error, normalised units)", loc="left", y=1.0)
    _legend_right(ax)


def _plain() -> mticker.Formatter:
    """Tick labels that carry their own magnitude, so that no offset text ("1e8") is drawn
    where it would collide with the panel title."""
    return mticker.FuncFormatter(lambda v, _pos: f"{v:.6g}")


_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076"
                             "\u2077\u2078\u2079")


def _power_of_ten(value: float, _pos: int | None = None) -> str:
    """10 with a superscript exponent: as clear as mathtext, and much cheaper to draw."""
    if value <= 0:
        return ""
    exp = round(np.log10(value))
    if not np.isclose(value, 10.0**exp, rtol=1e-6):
        return f"{value:.3g}"
    return "1" if exp == 0 else "10" + str(exp).translate(_SUPERSCRIPT)


def _log_score_axis(ax: Axes, finite: np.ndarray, threshold: float) -> bool:
    """Log scale when the y range spans more than two decades, so that it shows at least two
    labelled powers of ten (narrower ranges read better on a linear axis); returns whether it
    was set."""
    positive = finite[finite > 0]
    if not positive.size or threshold <= 0:
        return False
    lo = min(float(positive.min()), threshold) / 1.5
    hi = max(float(positive.max()), threshold) * 1.5
    decades = np.log10(hi / lo)
    if decades < 2.2:
        return False
    ax.set_yscale("log", nonpositive="mask")
    ax.set_ylim(lo, hi)
    ax.yaxis.set_major_locator(mticker.LogLocator(numticks=8))
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(_power_of_ten))
    if decades <= 8:
        ax.yaxis.set_minor_locator(mticker.LogLocator(subs=(2.0, 5.0), numticks=8))
    else:
        ax.yaxis.set_minor_locator(mticker.NullLocator())
    ax.yaxis.set_minor_formatter(mticker.NullFormatter())
    ax.set_ylabel("score (log scale)")
    return True


def _examples_panel(ax: Axes, series: Series, rec: ScoreRecord, examples: int) -> None:
    chosen = _choose_examples(rec, len(series), examples)
    if chosen.size == 0 or rec.example_inputs.size == 0:
        ax.text(0.5, 0.5, "no example window saved", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return
    inputs, recon = rec.example_inputs[chosen], rec.example_recon[chosen]
    ends = rec.example_ends[chosen]
    length, channels = inputs.shape[1], inputs.shape[2]
    gap = max(2, length // 4)
    pos = np.arange(length)
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    ticks, tick_labels = [], []
    targets = rec.target_channels(channels)
    for j, (title, e) in enumerate(zip(_example_titles(series, rec, ends), ends, strict=True)):
        off = j * (length + gap)
        if series.labels[e]:
            ax.axvspan(off - 0.5, off + length - 0.5, color=_WINDOW, alpha=0.25, lw=0)
        # the target channels worst reconstructed in this window (all when there are few)
        err = np.square(inputs[j][:, targets] - recon[j]).sum(axis=0)
        worst = np.argsort(-err, kind="stable")[:MAX_CHANNELS if len(targets) > MAX_CHANNELS
                                                else len(targets)]
        for k, t in enumerate(worst):
            first = j == 0 and k == 0
            ax.plot(off + pos, inputs[j, :, targets[t]], color=_VALUE, lw=1.2,
                    label="input" if first else "_nolegend_")
            ax.plot(off + pos, recon[j, :, t], color=_RECON, lw=1.2, ls="--",
                    label="reconstruction" if first else "_nolegend_")
        if len(targets) > 1:
            title += "\n" + ", ".join(series.channel_names[targets[t]] for t in worst[:3])
        ax.text(off + (length - 1) / 2, 1.02, title, transform=trans, ha="center",
                va="bottom", fontsize=8)
        ticks += [off, off + length - 1]
        tick_labels += ["0", str(length - 1)]
    ax.set_xticks(ticks, tick_labels)
    ax.set_xlim(-gap / 2, len(ends) * (length + gap) - gap / 2)
    ax.set_xlabel(f"position in the window (length {length}); example windows, shaded when "
                  "the window ends in a labelled anomaly window")
    ax.yaxis.set_major_formatter(_plain())
    ax.set_ylabel("normalised value")
    _legend_right(ax)


# ---------------------------------------------------------------- ROC / PR
def read_curve(path: str | Path) -> dict[str, np.ndarray]:
    """A curve CSV from ``evaluate`` as columns; an empty curve gives empty columns."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        names = reader.fieldnames or []
    return {k: np.array([float(r[k]) for r in rows], dtype=np.float64) for k in names}


def curve_auc(x: np.ndarray, y: np.ndarray) -> float | None:
    """Trapezoidal area under a curve given by its (thinned) points, sorted by x."""
    if len(x) < 2:
        return None
    order = np.argsort(x, kind="stable")
    return float(np.trapezoid(y[order], x[order]))


def curves_figure(roc: Mapping[str, np.ndarray], pr: Mapping[str, np.ndarray]) -> Figure:
    """ROC and precision-recall of all test points pooled (scores divided by each series'
    threshold), the AUC of each from the curve points."""
    with mpl.rc_context(_RC):
        fig = new_figure(CURVES_SIZE_IN)
        ax_roc, ax_pr = fig.subplots(1, 2)
        fig.suptitle("All test points pooled (score / per-series threshold)", fontsize=11)
        fpr, tpr = roc.get("fpr", np.empty(0)), roc.get("tpr", np.empty(0))
        recall, precision = pr.get("recall", np.empty(0)), pr.get("precision", np.empty(0))

        ax_roc.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1, label="chance (AUC 0.5)")
        roc_auc = curve_auc(fpr, tpr)
        if roc_auc is not None:
            ax_roc.plot(fpr, tpr, color=_VALUE, lw=1.6, label=f"model (AUC \u2248 {roc_auc:.3f})")
        ax_roc.set(xlabel="false positive rate", ylabel="true positive rate (recall)",
                   title="ROC", xlim=(0, 1), ylim=(0, 1.01), aspect="equal")

        pr_auc = curve_auc(recall, precision)
        if pr_auc is not None:
            prevalence = float(precision[np.argmax(recall)])  # every point flagged
            ax_pr.axhline(prevalence, color="0.6", ls=":", lw=1,
                          label=f"chance (prevalence {prevalence:.3f})")
            ax_pr.plot(recall, precision, color=_RECON, lw=1.6,
                       label=f"model (AUC \u2248 {pr_auc:.3f})")
        ax_pr.set(xlabel="recall", ylabel="precision", title="Precision-recall",
                  xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
        for ax, auc in ((ax_roc, roc_auc), (ax_pr, pr_auc)):
            ax.grid(True, lw=0.4, alpha=0.5)
            if auc is None:
                ax.text(0.5, 0.5, "no curve: the test parts hold one class only",
                        ha="center", va="center", transform=ax.transAxes)
            else:
                ax.legend(loc="lower right" if ax is ax_roc else "upper right")
    return fig


# ---------------------------------------------------------------- the stage
def pick_showcase(selected: Sequence[str], wanted: str) -> str:
    """``wanted`` if it was selected, otherwise the first selected series (with a warning)."""
    if not selected:
        raise ValueError("no series to plot: data/processed holds none")
    if wanted in selected:
        return wanted
    log.warning("plot.showcase %r is not among the %d selected series; showing %r instead",
                wanted, len(selected), selected[0])
    return selected[0]


@dataclass(frozen=True)
class _SeriesJob:
    """One series figure to draw (picklable: it crosses to a worker process)."""

    series_file: Path
    scores_file: Path
    split: Split
    out: Path
    examples: int
    dpi: int
    window_length: int


def _draw_series(job: _SeriesJob) -> str:
    series = Series.load(job.series_file)
    try:
        rec = ScoreRecord.from_arrays(load_npz(job.scores_file))
    except FileNotFoundError as exc:
        raise ValueError(f"{series.id}: no scores at {job.scores_file}; rerun evaluate") from exc
    fig = series_figure(series, job.split, rec, examples=job.examples,
                        window_length=job.window_length)
    save_png(fig, job.out, job.dpi)
    return series.id


def _workers(jobs: int) -> int:
    """Processes for the series figures: the CPUs this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus, jobs))


def plot_outputs(plot: PlotParams, window_length: int, processed_dir: Path, splits_path: Path,
                 scores_dir: Path, curves_dir: Path, series_dir: Path,
                 summary_dir: Path) -> dict[str, str]:
    """Write one PNG per series into ``series_dir`` and the README's figures into
    ``summary_dir``; each directory is replaced as a whole. Returns {series id: file name}.

    Series figures are drawn in a few worker processes (the bytes do not depend on how many).
    """
    from rnnad.pipeline.common import load_index, load_splits

    index = load_index(processed_dir)
    splits = load_splits(splits_path)
    showcase = pick_showcase([e["id"] for e in index], plot.showcase)
    missing = [e["id"] for e in index if e["id"] not in splits]
    if missing:
        raise ValueError(f"{len(missing)} series not in {splits_path} (first: {missing[0]}); "
                         "rerun split")
    written = {e["id"]: series_filename(e["id"], ".png") for e in index}
    with atomic_dir(series_dir) as tmp_series, atomic_dir(summary_dir) as tmp_summary:
        jobs = [_SeriesJob(processed_dir / e["file"], scores_dir / series_filename(e["id"], ".npz"),
                           splits[e["id"]][0], tmp_series / written[e["id"]], plot.examples,
                           plot.dpi, window_length) for e in index]
        workers = _workers(len(jobs))
        if workers == 1:
            done = [_draw_series(job) for job in jobs]
        else:
            with ProcessPoolExecutor(workers) as pool:
                done = list(pool.map(_draw_series, jobs))
        if done != list(written):
            raise ValueError(f"series ids in {processed_dir} do not match their files; "
                             "rerun preprocess")
        shutil.copyfile(tmp_series / written[showcase], tmp_summary / SHOWCASE)
        fig = curves_figure(read_curve(curves_dir / "roc.csv"), read_curve(curves_dir / "pr.csv"))
        save_png(fig, tmp_summary / ROC_PR, plot.dpi)
    log.info("plotted %d series (%d processes) into %s; %s and %s (showcase %s) into %s",
             len(written), workers, series_dir, SHOWCASE, ROC_PR, showcase, summary_dir)
    return written
