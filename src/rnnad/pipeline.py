"""What each DVC stage does, as library functions; ``stages/*.py`` only wire params to these."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from rnnad.config import Params
from rnnad.datasets import nab
from rnnad.datasets.series import Series
from rnnad.io import (
    atomic_dir,
    load_npz,
    read_json,
    save_npz,
    series_filename,
    sha256_file,
    write_json,
)
from rnnad.metrics import curves, point_metrics
from rnnad.split import Scaler, Split, fit_scaler, make_split
from rnnad.thresholds import choose_threshold
from rnnad.windows import sliding_windows, window_ends, windows_in_range

log = logging.getLogger("rnnad")

INDEX = "index.json"
SPLITS = "splits.json"
THRESHOLDS = "thresholds.json"


# ---------------------------------------------------------------- fetch / preprocess / split
def fetch_stage(params: Params, raw_dir: Path) -> None:
    files = nab.fetch(raw_dir, params.fetch.commit, retries=params.fetch.retries,
                      timeout_s=params.fetch.timeout_s)
    log.info("fetched %d verified files into %s", len(files), raw_dir)


def preprocess_stage(params: Params, raw_dir: Path, out_dir: Path) -> None:
    p = params.preprocess
    chosen = nab.select_series(nab.available_series(raw_dir), p.series)
    windows = nab.load_windows(raw_dir)
    index = []
    with atomic_dir(out_dir) as tmp:
        for sid in chosen:
            series = nab.load_series(raw_dir, sid, windows, max_nan_run=p.max_nan_run,
                                     disorder=p.disorder, gap_factor=p.gap_factor)
            name = series_filename(sid, ".npz")
            series.save(tmp / name)
            index.append({"id": sid, "file": name, "points": len(series),
                          "channels": series.channels, "sha256": sha256_file(tmp / name),
                          **series.report})
            if series.report.get("duplicates") or series.report.get("backward_steps"):
                log.warning("%s: %d duplicated and %d backward timestamps kept in file order",
                            sid, series.report["duplicates"], series.report["backward_steps"])
        write_json(tmp / INDEX, {"dataset": "nab", "series": index})
    log.info("preprocessed %d series into %s", len(index), out_dir)


def load_index(processed_dir: Path) -> list[dict[str, Any]]:
    return read_json(processed_dir / INDEX)["series"]


def load_series(processed_dir: Path, entry: dict[str, Any]) -> Series:
    return Series.load(processed_dir / entry["file"])


def split_stage(params: Params, processed_dir: Path, out_path: Path) -> None:
    splits = {}
    for entry in load_index(processed_dir):
        series = load_series(processed_dir, entry)
        split = make_split(len(series), params.split, series.id)
        scaler = fit_scaler(series.values, series.labels, split)
        splits[series.id] = {**split.to_dict(), "scaler": scaler.to_dict()}
    write_json(out_path, {"protocol": params.split.protocol, "series": splits})


def load_splits(path: Path) -> dict[str, tuple[Split, Scaler]]:
    raw = read_json(path)["series"]
    return {
        sid: (Split(d["n"], d["train_end"], d["val_end"]), Scaler.from_dict(d["scaler"]))
        for sid, d in raw.items()
    }


def training_windows(
    x_norm: np.ndarray, labels: np.ndarray, split: Split, length: int, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training windows lie wholly in the training part, validation windows end in the
    validation part; neither contains a labelled anomalous point."""
    windows = sliding_windows(x_norm, length, stride)
    ends = window_ends(len(x_norm), length, stride)
    train = windows_in_range(ends, length, 0, split.train_end, labels)
    val = windows_in_range(ends, length, 0, split.val_end, labels) & (ends >= split.train_end)
    return windows[train], windows[val]


# ---------------------------------------------------------------- train
def train_stage(params: Params, processed_dir: Path, splits_path: Path, models_dir: Path,
                live_dir: Path) -> None:
    from dvclive import Live

    from rnnad.models.encdec import build_model
    from rnnad.models.store import save_model
    from rnnad.models.training import TrainingError, fit, seed_everything

    splits = load_splits(splits_path)
    summary = {}
    with atomic_dir(models_dir) as tmp_models, atomic_dir(live_dir) as tmp_live:
        for entry in load_index(processed_dir):
            series = load_series(processed_dir, entry)
            split, scaler = splits[series.id]
            x = scaler.transform(series.values)
            train_w, val_w = training_windows(x, series.labels, split, params.window.length,
                                              params.window.stride)
            seed_everything(params.train.seed, params.train.threads)
            model = build_model(series.channels, params.model)
            start = time.perf_counter()
            with Live(dir=str(tmp_live / series_filename(series.id, "")), save_dvc_exp=False,
                      dvcyaml=None, report=None) as live:
                def on_epoch(epoch: int, train_loss: float, val_loss: float, live=live) -> None:
                    live.log_metric("train_loss", train_loss)
                    live.log_metric("val_loss", val_loss)
                    live.next_step()
                try:
                    result = fit(model, train_w, val_w, params.train, on_epoch)
                except TrainingError as exc:
                    raise TrainingError(f"{series.id}: {exc}") from exc
            seconds = time.perf_counter() - start
            spec = {
                "series_id": series.id,
                "channels": series.channels,
                "window": params.window.model_dump(),
                "model": params.model.model_dump(),
                "train": params.train.model_dump(),
                "scaler": scaler.to_dict(),
                "split": split.to_dict(),
                "data_sha256": entry["sha256"],
                "train_windows": len(train_w),
                "val_windows": len(val_w),
                "best_epoch": result.best_epoch,
                "epochs_run": len(result.history),
                "best_val_loss": result.best_val_loss,
            }
            save_model(tmp_models, series.id, model, spec)
            summary[series.id] = {k: spec[k] for k in ("train_windows", "best_epoch",
                                                        "epochs_run", "best_val_loss")}
            log.info("%s: %d windows, best epoch %d, val loss %.5f, %.1f s", series.id,
                     len(train_w), result.best_epoch, result.best_val_loss, seconds)
        write_json(tmp_live / "summary.json", summary)


# ---------------------------------------------------------------- evaluate
def evaluate_stage(params: Params, processed_dir: Path, splits_path: Path, models_dir: Path,
                   scores_dir: Path, metrics_path: Path, curves_dir: Path) -> None:
    import torch

    from rnnad.models.encdec import reconstructor
    from rnnad.models.store import load_model
    from rnnad.scoring import score_points

    torch.set_num_threads(params.train.threads)
    splits = load_splits(splits_path)
    per_series: dict[str, Any] = {}
    thresholds: dict[str, float] = {}
    pooled_labels, pooled_flags, pooled_scores = [], [], []
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
            flags = (np.nan_to_num(scores, nan=-np.inf) > threshold).astype(np.int8)
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
    write_json(metrics_path, {"overall": overall, "per_series": per_series})
    curve_data = curves(labels, norm_scores, params.evaluate.curve_points)
    for name, rows in curve_data.items():
        _write_csv(curves_dir / f"{name}.csv", rows)


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
    from rnnad.io import atomic_path

    header = list(rows[0]) if rows else ["x", "y"]
    lines = [",".join(header)] + [",".join(str(r[h]) for h in header) for r in rows]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def load_scores(scores_dir: Path, series_id: str) -> dict[str, np.ndarray]:
    return load_npz(scores_dir / series_filename(series_id, ".npz"))


# ---------------------------------------------------------------- plot
def plot_stage(params: Params, processed_dir: Path, splits_path: Path, scores_dir: Path,
               curves_dir: Path, series_dir: Path, summary_dir: Path) -> None:
    # The work is in rnnad.plots, which dvc.yaml lists as a dependency of the plot stage.
    from rnnad.plots import plot_outputs

    plot_outputs(params.plot, params.window.length, processed_dir, splits_path, scores_dir,
                 curves_dir, series_dir, summary_dir)


# ---------------------------------------------------------------- package
def package_stage(params: Params, processed_dir: Path, splits_path: Path, models_dir: Path,
                  scores_dir: Path, out_dir: Path, report_path: Path,
                  repo: Path = Path(".")) -> dict[str, Any]:
    """One ONNX file per series (parity with torch checked) and ``detector.json`` in
    ``out_dir``; saved as a BentoML model, a Bento built from ``repo/bentofile.yaml`` when
    ``package.build_bento``; the tags, checksums and parity written to ``report_path``."""
    from rnnad import export
    from rnnad.models.store import load_model

    start = time.perf_counter()
    p, length = params.package, params.window.length
    splits = load_splits(splits_path)
    thresholds = read_json(scores_dir / THRESHOLDS)
    series_info: dict[str, Any] = {}
    parity: dict[str, float] = {}
    revision = export.git_revision(repo)
    with atomic_dir(out_dir) as tmp:
        for entry in load_index(processed_dir):
            sid = entry["id"]
            model, spec = load_model(models_dir, sid)
            split, scaler = splits[sid]
            _check_package_inputs(sid, spec, entry, scaler, thresholds, length)
            x = scaler.transform(load_series(processed_dir, entry).values)
            windows = export.parity_windows(x, split.val_end, length, p.parity_windows)
            onnx_name = series_filename(sid, ".onnx")
            parity[sid] = export.export_checked(sid, model, tmp / onnx_name, windows, p.atol)
            series_info[sid] = export.series_entry(
                tmp / onnx_name, window=length, channels=spec["channels"],
                scaler=scaler.to_dict(), threshold=thresholds[sid],
                reduce=params.evaluate.reduce, data_sha256=spec["data_sha256"],
                model=spec["model"])
        if not series_info:
            raise ValueError(f"{processed_dir}: no series to package")
        export.write_detector(tmp, series_info, revision, params.evaluate.reduce)
    checksums = export.file_checksums(out_dir)
    metadata = {"format": export.DETECTOR_FORMAT, "series": len(series_info), "window": length,
                "reduce": params.evaluate.reduce, "git_revision": revision,
                "detector_sha256": checksums[export.DETECTOR_FILE]}
    model_tag = export.save_detector(out_dir, p.model_name, metadata,
                                     {"project": "rnnad", "git_revision": revision})
    log.info("saved %d series as BentoML model %s", len(series_info), model_tag)
    bento_tag = export.build_bento(repo, model_tag) if p.build_bento else ""
    if bento_tag:
        log.info("built Bento %s", bento_tag)
    report = {
        "series": len(series_info),
        "max_parity_abs_diff": max(parity.values(), default=0.0),
        "atol": p.atol,
        "model_tag": model_tag,
        "bento_tag": bento_tag,
        "git_revision": revision,
        "checksums": checksums,
        "parity_max_abs_diff": parity,
    }
    write_json(report_path, report)
    log.info("packaged %d series in %.1f s (max parity diff %.2g)", len(series_info),
             time.perf_counter() - start, report["max_parity_abs_diff"])
    return report


def _check_package_inputs(sid: str, spec: dict[str, Any], entry: dict[str, Any],
                          scaler: Scaler, thresholds: dict[str, float], length: int) -> None:
    """The model, split, scores and processed data must come from one pipeline run."""
    if sid not in thresholds:
        raise ValueError(f"{sid}: no threshold in {THRESHOLDS}; rerun the evaluate stage")
    if spec["window"]["length"] != length:
        raise ValueError(f"{sid}: model trained with window {spec['window']['length']} but "
                         f"window.length is {length}; rerun the train stage")
    if spec["data_sha256"] != entry["sha256"]:
        raise ValueError(f"{sid}: model trained on other data than {entry['file']} "
                         "(sha256 differs); rerun the train stage")
    if Scaler.from_dict(spec["scaler"]) != scaler:
        raise ValueError(f"{sid}: model's scaler differs from {SPLITS}; rerun the train stage")
