"""Stage train: one encoder-decoder per series, curves logged with dvclive.

Each model's JSON spec records where it came from (``provenance``): the git revision of the
working tree, whether tracked files differed from it, the Python and package versions and a
hash of the params groups this stage reads. None of it depends on time or on the run, so two
runs at the same commit write identical files; the weights never depend on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import platform
import shutil
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

from rnnad.config import Params
from rnnad.datasets.series import Series
from rnnad.io import atomic_dir, series_filename, write_json
from rnnad.pipeline.common import load_index, load_series, load_splits, log
from rnnad.split import Scaler, Split
from rnnad.windows import sliding_windows, window_ends, windows_in_range, within_segments


def training_windows(
    x_norm: np.ndarray, labels: np.ndarray, split: Split, length: int, stride: int,
    segments: np.ndarray | None = None, max_windows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Training windows lie wholly in the training part, validation windows end in the
    validation part; neither contains a labelled anomalous point nor crosses a segment start.
    Beyond ``max_windows`` of either kind, an evenly spread subset of that many is kept."""
    windows = sliding_windows(x_norm, length, stride)
    ends = window_ends(len(x_norm), length, stride)
    inside = within_segments(ends, length, segments)
    train = windows_in_range(ends, length, 0, split.train_end, labels) & inside
    val = windows_in_range(ends, length, 0, split.val_end, labels) & (ends >= split.train_end)
    return (windows[_spread(np.flatnonzero(train), max_windows)],
            windows[_spread(np.flatnonzero(val & inside), max_windows)])


def _spread(index: np.ndarray, most: int | None) -> np.ndarray:
    """At most ``most`` entries of ``index``, evenly spaced (deterministic, order kept)."""
    if most is None or len(index) <= most:
        return index
    return index[np.linspace(0, len(index) - 1, most).round().astype(np.int64)]


def resolve_targets(series: Series, choice: str | list[str]) -> tuple[int, ...]:
    """``model.targets`` -> channel indices: auto (the dataset's choice, else all), all, or
    channel names."""
    every = tuple(range(series.channels))
    if choice == "auto":
        return series.targets or every
    if choice == "all":
        return every
    names = list(series.channel_names)
    unknown = [c for c in choice if c not in names]
    if unknown or not choice:
        raise ValueError(f"model.targets: {unknown or choice} not channels of {series.id} "
                         f"(channels: {', '.join(names)})")
    return tuple(names.index(c) for c in choice)


def error_scale(model: torch.nn.Module, windows: np.ndarray, targets: tuple[int, ...],
                batch_size: int = 4096) -> list[float]:
    """Each target channel's mean squared reconstruction error on ``windows`` (validation), in
    float64 as the evaluate stage scores: the per-channel normaliser of the anomaly score.

    A model with one target channel has nothing to balance: its scale is 1 and its score
    stays the plain squared error (dividing by a constant would change no flag, but would
    turn a series reconstructed perfectly, such as a constant one, from "errors of 1e-14,
    below any threshold" into "as bad as usual")."""
    from rnnad.models.encdec import reconstructor

    if len(targets) == 1:
        return [1.0]

    reconstruct = reconstructor(model)
    sums = np.zeros(len(targets))
    for i in range(0, len(windows), batch_size):
        batch = np.ascontiguousarray(windows[i : i + batch_size], dtype=np.float64)
        err = np.square(batch[:, :, list(targets)] - reconstruct(batch))
        sums += err.sum(axis=(0, 1))
    scale = sums / (len(windows) * windows.shape[1])
    # a channel the model reconstructs (almost) perfectly on validation data, e.g. a constant
    # one: floor it at 1e-3 of the median so its tiny errors elsewhere cannot dominate
    floor = 1e-3 * float(np.median(scale)) if np.median(scale) > 0 else 1e-12
    return [round(float(v), 12) for v in np.maximum(scale, max(floor, 1e-12))]


PROVENANCE_PACKAGES = ("torch", "numpy", "rnnad")
TRAIN_PARAM_GROUPS = ("window", "model", "train")
# Tracked files that the pipeline itself rewrites during a run (dvc.lock after each stage, the
# uncached metrics, curves and summary plots under reports/): not what a model came from, and
# counting them would make the second of two runs at one commit look dirty.
PIPELINE_WRITTEN = ("dvc.lock", "reports")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30,
                          check=True).stdout


def git_state(repo: Path) -> tuple[str, bool | None]:
    """``(revision, dirty)`` of the git working tree at ``repo``: HEAD's hash ("unknown"
    without a commit or git) and whether a tracked file under ``repo`` differs from HEAD, other
    than :data:`PIPELINE_WRITTEN` (None when ``repo`` is not in a git working tree)."""
    try:
        status = _git(repo, "status", "--porcelain", "--untracked-files=no", "--", ".",
                      *(f":(exclude){path}" for path in PIPELINE_WRITTEN))
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    try:
        revision = _git(repo, "rev-parse", "--verify", "HEAD").strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        revision = "unknown"
    return revision, bool(status.strip())


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def params_sha256(params: Params) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of the params groups train reads."""
    groups = {name: getattr(params, name).model_dump(mode="json") for name in TRAIN_PARAM_GROUPS}
    groups["train"] = train_params_recorded(params)
    text = json.dumps(groups, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def provenance(params: Params, repo: Path) -> dict[str, Any]:
    revision, dirty = git_state(repo)
    return {
        "git_revision": revision,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PROVENANCE_PACKAGES},
        "params_sha256": params_sha256(params),
    }


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Remove what a killed earlier run left next to output ``out``: the temporary directories
    and files of :func:`rnnad.io.atomic_dir` / ``atomic_path`` (``.<name>.*.tmp``) and the
    ``.<name>.old`` of an interrupted swap. DVC runs one stage at a time per output (its
    rwlock), so none of them can belong to a live writer. Returns what was removed."""
    parent = out.parent
    if not parent.is_dir():
        return []
    stale = [*parent.glob(f".{out.name}.*.tmp"), parent / f".{out.name}.old"]
    removed = []
    for path in sorted(stale):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink(missing_ok=True)
        else:
            continue
        removed.append(path)
    return removed


@dataclass(frozen=True)
class _Job:
    """What one worker needs to train one series (picklable: sent to a process)."""

    params: Params
    processed_dir: Path
    entry: dict[str, Any]
    split: Split
    scaler: Scaler
    tmp_models: Path
    tmp_live: Path
    origin: dict[str, Any]


def _train_one(job: _Job) -> tuple[str, dict[str, Any], float]:
    """Train, check and save one series' model and curves; returns (id, summary, seconds).
    Runs in the stage's process or in a worker process: the same seed and thread count give
    the same weights either way."""
    from dvclive import Live

    from rnnad.models.encdec import build_model
    from rnnad.models.store import save_model
    from rnnad.models.training import TrainingError, fit, seed_everything

    params = job.params
    series = load_series(job.processed_dir, job.entry)
    split, scaler = job.split, job.scaler
    x = scaler.transform(series.values)
    train_w, val_w = training_windows(x, series.labels, split, params.window.length,
                                      params.window.stride, series.segments,
                                      params.train.max_windows)
    targets = resolve_targets(series, params.model.targets)
    seed_everything(params.train.seed, params.train.threads)
    model = build_model(series.channels, params.model, targets)
    start = time.perf_counter()
    with Live(dir=str(job.tmp_live / series_filename(series.id, "")), save_dvc_exp=False,
              dvcyaml=None, report=None) as live:
        def on_epoch(epoch: int, train_loss: float, val_loss: float, live=live) -> None:
            live.log_metric("train_loss", train_loss)
            live.log_metric("val_loss", val_loss)
            live.next_step()
        try:
            result = fit(model, train_w, val_w, params.train, on_epoch)
        except TrainingError as exc:
            raise TrainingError(f"series {series.id}: {exc}") from exc
    scale = error_scale(model, val_w, targets)
    seconds = time.perf_counter() - start
    spec = {
        "series_id": series.id,
        "channels": series.channels,
        "channel_names": list(series.channel_names),
        "targets": list(targets),
        "error_scale": scale,
        "window": params.window.model_dump(),
        "model": params.model.model_dump(),
        "train": train_params_recorded(params),
        "scaler": scaler.to_dict(),
        "split": split.to_dict(),
        "data_sha256": job.entry["sha256"],
        "train_windows": len(train_w),
        "val_windows": len(val_w),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "best_val_loss": result.best_val_loss,
        "provenance": job.origin,
    }
    save_model(job.tmp_models, series.id, model, spec)
    summary = {k: spec[k] for k in ("train_windows", "best_epoch", "epochs_run",
                                    "best_val_loss")}
    return series.id, summary, seconds


def train_params_recorded(params: Params) -> dict[str, Any]:
    """The train params a model records: all but ``jobs``, which changes how many series
    train at once, never what a model is."""
    return params.train.model_dump(exclude={"jobs"})


def train_stage(params: Params, processed_dir: Path, splits_path: Path, models_dir: Path,
                live_dir: Path, repo: Path | None = None) -> None:
    """Train one model per series into ``models_dir`` (replaced as a whole, only when every
    series trained) and its curves into ``live_dir``; ``repo`` (default: the working directory)
    is where provenance looks for git. ``train.jobs`` series train at once, each in its own
    worker process (spawned, ``train.threads`` threads each); the models are the same for any
    number of jobs. A failure in any series stops the stage, naming the series."""
    splits = load_splits(splits_path)
    for out in (models_dir, live_dir):
        for path in remove_stale_temporaries(out):
            log.info("removed %s, left by an interrupted run", path)
    origin = provenance(params, Path.cwd() if repo is None else repo)
    entries = load_index(processed_dir)
    summary: dict[str, Any] = {}
    with atomic_dir(models_dir) as tmp_models, atomic_dir(live_dir) as tmp_live:
        jobs = [_Job(params, processed_dir, entry, *splits[entry["id"]], tmp_models, tmp_live,
                     origin) for entry in entries]
        workers = min(params.train.jobs, len(jobs))
        with contextlib.ExitStack() as stack:
            run = map  # one job: in this process
            if workers > 1:
                run = stack.enter_context(ProcessPoolExecutor(
                    workers, mp_context=multiprocessing.get_context("spawn"))).map
            for sid, record, seconds in run(_train_one, jobs):
                log.info("%s: %d windows, best epoch %d, val loss %.5f, %.1f s", sid,
                         record["train_windows"], record["best_epoch"],
                         record["best_val_loss"], seconds)
                summary[sid] = record
        write_json(tmp_live / "summary.json", summary)
