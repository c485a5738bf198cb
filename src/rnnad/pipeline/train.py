"""Stage train: one encoder-decoder per series, curves logged with dvclive."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rnnad.config import Params
from rnnad.io import atomic_dir, series_filename, write_json
from rnnad.pipeline.common import load_index, load_series, load_splits, log
from rnnad.split import Split
from rnnad.windows import sliding_windows, window_ends, windows_in_range


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
