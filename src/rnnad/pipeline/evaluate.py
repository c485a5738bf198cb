"""Stage evaluate: causal scores, validation thresholds, point-wise metrics, NAB score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rnnad.config import Params
from rnnad.datasets.series import Series
from rnnad.io import atomic_dir, atomic_path, save_npz, series_filename, write_json
from rnnad.metrics import curves, point_metrics
from rnnad.pipeline.common import THRESHOLDS, load_index, load_series, load_splits
from rnnad.split import Split
from rnnad.thresholds import choose_threshold


def evaluate_stage(params: Params, processed_dir: Path, splits_path: Path, models_dir: Path,
                   scores_dir: Path, metrics_path: Path, curves_dir: Path,
                   raw_dir: Path | None = None, nab_results_dir: Path | None = None) -> None:
    """Score every point, threshold on validation scores, write metrics and curves. With
    ``raw_dir`` (the fetched NAB corpus) also NAB's score of this detector, and its output in
    NAB's results layout under ``nab_results_dir``."""
    import torch

    from rnnad.models.encdec import reconstructor
    from rnnad.models.store import load_model
    from rnnad.scoring import flag, score_points

    torch.set_num_threads(params.train.threads)
    splits = load_splits(splits_path)
    per_series: dict[str, Any] = {}
    thresholds: dict[str, float] = {}
    pooled_labels, pooled_flags, pooled_scores = [], [], []
    nab_output: dict[str, tuple[Series, np.ndarray]] = {}
    length = params.window.length
    with atomic_dir(scores_dir) as tmp:
        for entry in load_index(processed_dir):
            series = load_series(processed_dir, entry)
            split, scaler = splits[series.id]
            model, _ = load_model(models_dir, series.id)
            x = scaler.transform(series.values)
            reconstruct = reconstructor(model)
            scores = score_points(x, length, reconstruct, params.evaluate.reduce,
                                  params.evaluate.batch_size)
            val = slice(split.train_end, split.val_end)
            val_normal = scores[val][(series.labels[val] == 0) & np.isfinite(scores[val])]
            threshold = choose_threshold(val_normal, params.evaluate.threshold)
            flags = flag(scores, threshold).astype(np.int8)
            test = slice(split.val_end, split.n)
            if np.isnan(scores[test]).any():
                raise ValueError(f"{series.id}: a test point has no full window; "
                                 "window.length is longer than the training period")
            per_series[series.id] = point_metrics(series.labels[test], flags[test], scores[test])
            per_series[series.id]["threshold"] = round(threshold, 9)
            thresholds[series.id] = threshold
            pooled_labels.append(series.labels[test])
            pooled_flags.append(flags[test])
            pooled_scores.append(scores[test] / threshold)
            nab_output[series.id] = (series, np.nan_to_num(scores / threshold, nan=0.0))
            ends = _example_ends(scores, series.labels, split, length)
            ex_in = np.stack([x[e - length + 1 : e + 1] for e in ends])
            save_npz(tmp / series_filename(series.id, ".npz"), scores=scores, flags=flags,
                     threshold=np.array(threshold), example_ends=np.array(ends),
                     example_inputs=ex_in, example_recon=reconstruct(ex_in))
        write_json(tmp / THRESHOLDS, thresholds)

    labels = np.concatenate(pooled_labels)
    norm_scores = np.concatenate(pooled_scores)
    overall = point_metrics(labels, np.concatenate(pooled_flags), norm_scores)
    for key in ("precision", "recall", "f1", "auc_roc", "auc_pr"):
        vals = [m[key] for m in per_series.values() if m[key] is not None]
        overall[f"mean_{key}"] = round(float(np.mean(vals)), 6) if vals else None
    overall["series"] = len(per_series)
    metrics: dict[str, Any] = {"overall": overall}
    if raw_dir is not None:
        metrics["nab"] = nab_scores(nab_output, raw_dir, nab_results_dir)
    metrics["per_series"] = per_series
    write_json(metrics_path, metrics)
    curve_data = curves(labels, norm_scores, params.evaluate.curve_points)
    for name, rows in curve_data.items():
        _write_csv(curves_dir / f"{name}.csv", rows)


def nab_scores(output: dict[str, tuple[Series, np.ndarray]], raw_dir: Path,
               results_dir: Path | None, detector: str = "rnnad") -> dict[str, Any]:
    """NAB's normalised score per profile (threshold optimised over the selected series, as
    NAB's optimiser does) of anomaly scores = score / threshold (0 where no window ends yet).

    Comparable with NAB's scoreboard only when all 58 series are selected. With
    ``results_dir``, also writes ``<detector>/<category>/<detector>_<name>.csv`` in NAB's layout.
    """
    from rnnad import nab as nab_scorer

    windows = nab_scorer.load_windows(raw_dir / nab_scorer.WINDOWS_FILE)
    profiles = nab_scorer.load_profiles(raw_dir / nab_scorer.PROFILES_FILE)
    results = nab_scorer.score_arrays(
        {sid: (s.timestamps, scores) for sid, (s, scores) in output.items()}, windows, profiles)
    if results_dir is not None:
        with atomic_dir(results_dir) as tmp:
            for sid, (series, scores) in output.items():
                category, name = sid.split("/", 1)
                _write_nab_csv(tmp / detector / category / f"{detector}_{name}.csv", series,
                               scores)
    out: dict[str, Any] = {"series": len(output)}
    for profile, r in results.items():
        out[profile] = round(r.normalised, 4)
    for profile, r in results.items():
        out[f"threshold_{profile}"] = round(r.threshold, 6)
    return out


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


def _example_ends(scores: np.ndarray, labels: np.ndarray, split: Split, length: int) -> list[int]:
    """Window ends worth showing: the worst test window, a typical one, and one in an anomaly."""
    test_idx = np.arange(split.val_end, split.n)
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
