"""Stage evaluate: causal scores of the RNN and the baselines, validation thresholds, and every
measure (point, point-adjusted, event, range, VUS, NAB) computed the same way for each."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnad import measures
from rnnad.config import EvaluateParams, Params, PostprocessParams, ThresholdParams
from rnnad.datasets.registry import Measures, get_dataset
from rnnad.datasets.series import Series
from rnnad.io import atomic_dir, atomic_path, save_npz, series_filename, write_json
from rnnad.metrics import curves, point_metrics
from rnnad.pipeline.common import THRESHOLDS, load_index, load_series, load_splits
from rnnad.postprocess import postprocess
from rnnad.scoring import flag
from rnnad.split import Split
from rnnad.thresholds import choose_threshold, dynamic_flags

DETECTOR = "rnnad"
RAW = "rnnad_raw"  # the same model's raw reconstruction scores, without the post-processing
POSTPROCESSED = "_pp"  # suffix of a baseline given the RNN's post-processing
# per-series entries that are not measures to repeat in the overall block
PER_SERIES_ONLY = ("threshold",)
MEAN_KEYS = ("precision", "recall", "f1", "auc_roc", "auc_pr", "event_f1", "range_f1")


@dataclass
class Assessment:
    """One detector's results, accumulated series by series."""

    params: EvaluateParams
    per_series: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: list[np.ndarray] = field(default_factory=list)
    flags: list[np.ndarray] = field(default_factory=list)
    adjusted: list[np.ndarray] = field(default_factory=list)
    norm_scores: list[np.ndarray] = field(default_factory=list)
    events: measures.EventCounts = field(default_factory=measures.EventCounts)
    ranges: measures.RangeSums = field(default_factory=measures.RangeSums)
    nab_output: dict[str, tuple[Series, np.ndarray]] = field(default_factory=dict)

    def add(self, series: Series, split: Split, scores: np.ndarray,
            extra_measures: Measures | None = None,
            threshold: float | None = None) -> tuple[float, np.ndarray]:
        """Threshold ``scores`` on the validation part's normal points (or at ``threshold``,
        a fixed alarm level), measure the test part; returns the threshold and the flags of
        the whole series.

        The test part is every point after the validation part that has a score: in a series
        of several segments (C-MAPSS's engines, SMAP's train and test arrays) the first
        ``window.length - 1`` points of each segment have none and are left out (counted in
        ``unscored``); in a series of one segment every test point must have a score.
        """
        tp = self.params.threshold
        if threshold is not None:
            flags = flag(scores, threshold).astype(np.int8)
        else:
            threshold = validation_threshold(scores, series.labels, split, tp)
            flags = flag(scores, threshold).astype(np.int8)
            if tp.method == "dynamic":  # flags from the unlabelled test scores instead
                flags[: split.val_end] = 0
                d = tp.dynamic
                flags[split.val_end :] = dynamic_flags(
                    scores[split.val_end :], d.z_min, d.z_max, d.z_step, d.prune, d.buffer,
                    d.max_sequences, d.max_fraction)
        test_mask = np.zeros(len(scores), dtype=bool)
        test_mask[split.val_end :] = True
        unscored = test_mask & ~np.isfinite(scores)
        if unscored.any() and len(series.segments) <= 1:
            raise ValueError(f"{series.id}: a test point has no score; the window "
                             "(window.length or the baseline's) is longer than the training "
                             "period")
        test_mask &= ~unscored
        if not test_mask.any():
            raise ValueError(f"{series.id}: no test point has a score (every segment is "
                             "shorter than window.length)")
        y, f, s = series.labels[test_mask], flags[test_mask], scores[test_mask]
        rp = self.params.range
        events = measures.event_counts(y, f)
        ranges = measures.range_sums(y, f, rp.alpha, rp.cardinality, rp.bias_recall,
                                     rp.bias_precision)
        adjusted = measures.point_adjust(y, f)
        result = point_metrics(y, f, s)
        result["f1_point_adjusted_inflated"] = point_metrics(y, adjusted, s)["f1"]
        result.update(_prefixed("event", measures.event_prf(events)))
        result.update(_event_counts(events))
        result.update(_prefixed("range", measures.range_pr(ranges)))
        result.update(_rounded(measures.vus(y, s, self.params.vus.max_buffer,
                                            self.params.vus.buffer_step)))
        result["threshold"] = round(threshold, 9)
        result["unscored"] = int(unscored.sum())
        if extra_measures is not None:
            result.update(extra_measures(series, flags, test_mask))
        self.per_series[series.id] = result
        self.labels.append(y)
        self.flags.append(f)
        self.adjusted.append(adjusted)
        self.norm_scores.append(s / threshold)
        self.events = self.events + events
        self.ranges = self.ranges + ranges
        self.nab_output[series.id] = (series, np.nan_to_num(scores / threshold, nan=0.0))
        return threshold, flags

    def overall(self) -> dict[str, Any]:
        """Pooled point measures (scores / threshold), event and range measures summed over
        series (micro), VUS and every other measure also as a mean over series where defined."""
        labels = np.concatenate(self.labels)
        scores = np.concatenate(self.norm_scores)
        out = point_metrics(labels, np.concatenate(self.flags), scores)
        out["f1_point_adjusted_inflated"] = point_metrics(
            labels, np.concatenate(self.adjusted), scores)["f1"]
        out.update(_prefixed("event", measures.event_prf(self.events)))
        out.update(_event_counts(self.events))
        out.update(_prefixed("range", measures.range_pr(self.ranges)))
        for key in ("vus_roc", "vus_pr"):
            out[key] = _mean(self.per_series, key)
        for key in MEAN_KEYS:
            out[f"mean_{key}"] = _mean(self.per_series, key)
        out["series"] = len(self.per_series)
        extra = sorted({k for m in self.per_series.values() for k in m} - set(out)
                       - set(PER_SERIES_ONLY))
        if len(self.per_series) == 1:  # one series (C-MAPSS, KDD): its own measures
            only = next(iter(self.per_series.values()))
            out.update({k: only[k] for k in extra})
        return out


def validation_threshold(scores: np.ndarray, labels: np.ndarray, split: Split,
                         params: ThresholdParams) -> float:
    """``evaluate.threshold``'s choice on the validation part's normal points."""
    val = slice(split.train_end, split.val_end)
    val_normal = scores[val][(labels[val] == 0) & np.isfinite(scores[val])]
    return choose_threshold(val_normal, params)


def detector_output(raw: np.ndarray, values: np.ndarray, series: Series,
                    params: PostprocessParams) -> tuple[np.ndarray, float | None]:
    """The post-processed scores of one detector and its fixed alarm level (None: the
    threshold is chosen on validation scores)."""
    out = postprocess(raw, values, params, series.segments)
    return out, (params.level if params.on_likelihood_scale else None)


def _event_counts(counts: measures.EventCounts) -> dict[str, int]:
    return {"event_tp": counts.tp, "event_fp": counts.fp, "event_fn": counts.fn}


def _prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}_{k}": v for k, v in _rounded(values).items()}


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: None if v is None else round(float(v), 6) for k, v in values.items()}


def _mean(per_series: dict[str, dict[str, Any]], key: str) -> float | None:
    vals = [m[key] for m in per_series.values() if m[key] is not None]
    return round(float(np.mean(vals)), 6) if vals else None


def evaluate_stage(params: Params, processed_dir: Path, splits_path: Path, models_dir: Path,
                   scores_dir: Path, metrics_path: Path, curves_dir: Path,
                   raw_root: Path | None = None, nab_results_dir: Path | None = None) -> None:
    """Score every point with the RNN and each baseline, threshold on validation scores, write
    metrics (``detectors.<name>.overall`` and ``.nab``, the RNN's ``per_series``) and the RNN's
    curves. On the NAB corpus, with ``raw_root`` (where fetch put it) also NAB's score of each
    detector, and its output in NAB's results layout under ``nab_results_dir/<detector>/``.
    Dataset-specific measures (C-MAPSS's lead time, KDD's recall per attack category) come
    from the dataset's module."""
    dataset = get_dataset(params.data.dataset)
    raw_dir = raw_root / dataset.folder if raw_root is not None and dataset.nab_scoring \
        else None
    import torch

    from rnnad.baselines import baseline_scores
    from rnnad.models.encdec import reconstructor
    from rnnad.models.store import load_model
    from rnnad.scoring import score_points

    torch.set_num_threads(params.train.threads)
    splits = load_splits(splits_path)
    ev = params.evaluate
    processed = [f"{name}{POSTPROCESSED}" for name in ev.baselines.postprocessed]
    names = [DETECTOR, RAW, *ev.baselines.detectors, *processed]
    runs = {name: Assessment(ev) for name in names}
    thresholds: dict[str, float] = {}
    length = params.window.length
    with atomic_dir(scores_dir) as tmp:
        for entry in load_index(processed_dir):
            series = load_series(processed_dir, entry)
            split, scaler = splits[series.id]
            model, spec = load_model(models_dir, series.id)
            x = scaler.transform(series.values)
            reconstruct = reconstructor(model)
            targets = spec.get("targets")
            raw, channel_err = score_points(
                x, length, reconstruct, ev.reduce, ev.batch_size, targets=targets,
                error_scale=spec.get("error_scale"), segments=series.segments, per_channel=True)
            # the spatial step watches the channels the model reconstructs
            watched = x if targets is None else x[:, list(targets)]
            scores, level = detector_output(raw, watched, series, ev.postprocess)
            threshold, flags = runs[DETECTOR].add(series, split, scores, dataset.extra_measures,
                                                  level)
            # the service flags raw scores: their threshold, whatever the post-processing
            thresholds[series.id], _ = runs[RAW].add(series, split, raw, dataset.extra_measures)
            baseline_raw = {}
            for name in dict.fromkeys([*ev.baselines.detectors, *ev.baselines.postprocessed]):
                baseline_raw[name] = baseline_scores(
                    name, x, series.labels, split, series.id, length, ev.baselines,
                    series.segments)
            for name in ev.baselines.detectors:
                runs[name].add(series, split, baseline_raw[name], dataset.extra_measures)
            for name in ev.baselines.postprocessed:
                out, base_level = detector_output(baseline_raw[name], watched, series,
                                                  ev.postprocess)
                runs[f"{name}{POSTPROCESSED}"].add(series, split, out, dataset.extra_measures,
                                                   base_level)
            ends = _example_ends(scores, series.labels, split, length)
            ex_in = np.stack([x[e - length + 1 : e + 1] for e in ends])
            save_npz(tmp / series_filename(series.id, ".npz"), scores=scores, raw_scores=raw,
                     flags=flags,
                     threshold=np.array(threshold), example_ends=np.array(ends),
                     example_inputs=ex_in, example_recon=reconstruct(ex_in),
                     targets=np.array(targets if targets is not None else
                                      range(series.channels), dtype=np.int64),
                     channel_rank=channel_rank(channel_err, flags, split))
            del channel_err
        write_json(tmp / THRESHOLDS, thresholds)

    detectors: dict[str, Any] = {}
    for name, run in runs.items():
        detectors[name] = {"overall": run.overall()}
        if raw_dir is not None:
            detectors[name]["nab"] = nab_scores(run.nab_output, raw_dir)
    if raw_dir is not None and nab_results_dir is not None:
        write_nab_results(nab_results_dir, {n: r.nab_output for n, r in runs.items()})
    elif nab_results_dir is not None:  # the stage's output exists whatever the dataset
        with atomic_dir(nab_results_dir) as tmp:
            (tmp / "README.txt").write_text(f"No NAB results: data.dataset is {dataset.name}, "
                                            "not the NAB corpus.\n")
    write_json(metrics_path, {"dataset": dataset.name, "detectors": detectors,
                              "per_series": runs[DETECTOR].per_series})
    rnn = runs[DETECTOR]
    curve_data = curves(np.concatenate(rnn.labels), np.concatenate(rnn.norm_scores),
                        ev.curve_points)
    for name, rows in curve_data.items():
        _write_csv(curves_dir / f"{name}.csv", rows)


def nab_scores(output: dict[str, tuple[Series, np.ndarray]], raw_dir: Path) -> dict[str, Any]:
    """NAB's normalised score per profile (threshold optimised over the selected series, as
    NAB's optimiser does) of anomaly scores = score / threshold (0 where no score exists yet).

    Comparable with NAB's scoreboard only when all 58 series are selected.
    """
    from rnnad import nab as nab_scorer

    windows = nab_scorer.load_windows(raw_dir / nab_scorer.WINDOWS_FILE)
    profiles = nab_scorer.load_profiles(raw_dir / nab_scorer.PROFILES_FILE)
    results = nab_scorer.score_arrays(
        {sid: (s.timestamps, scores) for sid, (s, scores) in output.items()}, windows, profiles)
    out: dict[str, Any] = {"series": len(output)}
    for profile, r in results.items():
        out[profile] = round(r.normalised, 4)
    for profile, r in results.items():
        out[f"threshold_{profile}"] = round(r.threshold, 6)
    half = nab_scorer.corpus_halves(list(output))
    for name in nab_scorer.HALVES:
        part = {sid: v for sid, v in output.items() if half[sid] == name}
        if not part:
            continue
        scored = nab_scorer.score_arrays(
            {sid: (s.timestamps, scores) for sid, (s, scores) in part.items()}, windows,
            profiles)
        out[f"half_{name}"] = {"series": len(part),
                               **{p: round(r.normalised, 4) for p, r in scored.items()}}
    return out


def write_nab_results(results_dir: Path,
                      outputs: dict[str, dict[str, tuple[Series, np.ndarray]]]) -> None:
    """``<results_dir>/<detector>/<category>/<detector>_<name>.csv`` for each detector, in
    NAB's results layout, replacing ``results_dir`` as a whole."""
    with atomic_dir(results_dir) as tmp:
        for detector, output in outputs.items():
            for sid, (series, scores) in output.items():
                category, name = sid.split("/", 1)
                _write_nab_csv(tmp / detector / category / f"{detector}_{name}.csv", series,
                               scores)


def _write_nab_csv(path: Path, series: Series, scores: np.ndarray) -> None:
    import pandas as pd

    frame = pd.DataFrame({
        "timestamp": pd.to_datetime(series.timestamps).strftime("%Y-%m-%d %H:%M:%S"),
        "value": series.values[:, 0],
        "anomaly_score": np.round(scores, 9),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def channel_rank(channel_err: np.ndarray, flags: np.ndarray, split: Split,
                 most: int = 8) -> np.ndarray:
    """Target channels (positions in the model's targets) by their summed scaled error over
    the flagged test points, largest first, at most ``most``; over every scored test point
    when nothing is flagged. What the plots show of a series with many channels."""
    test = np.zeros(len(flags), dtype=bool)
    test[split.val_end :] = True
    chosen = test & (flags > 0)
    if not chosen.any():
        chosen = test
    err = channel_err[chosen]
    err = err[np.isfinite(err).all(axis=1)]
    totals = err.sum(axis=0) if len(err) else np.zeros(channel_err.shape[1])
    return np.argsort(-totals, kind="stable")[:most].astype(np.int64)


def _example_ends(scores: np.ndarray, labels: np.ndarray, split: Split, length: int) -> list[int]:
    """Window ends worth showing: the worst test window, a typical one, and one in an anomaly."""
    test_idx = np.arange(split.val_end, split.n)
    test_idx = test_idx[np.isfinite(scores[test_idx])]
    test_scores = scores[test_idx]
    worst = int(test_idx[np.argmax(test_scores)])
    typical = int(test_idx[np.argsort(test_scores)[len(test_scores) // 2]])
    anomalous = np.flatnonzero(labels[test_idx])
    inside = int(test_idx[anomalous[len(anomalous) // 2]]) if len(anomalous) else typical
    return [typical, worst, inside]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    header = list(rows[0]) if rows else ["x", "y"]
    lines = [",".join(header)] + [",".join(str(r[h]) for h in header) for r in rows]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
