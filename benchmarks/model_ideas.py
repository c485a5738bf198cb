"""Issue 8's model-side ideas, measured against the default run's models with NAB's score.

Each idea changes how the raw anomaly scores are made; the default post-processing
(``evaluate.postprocess``) and NAB's optimiser then score them on half a, half b and all 58
files, beside the default's own raw scores:

- ``continual``: continual learning within NAB's rules. Every ``--every`` of a series' length
  after its validation part, the model is fine-tuned (``--epochs`` epochs at ``--lr``, early
  stopping on the last 20% of the windows) on ``--max-windows`` windows spread evenly over
  everything seen so far, labels unused; the next stretch is scored by that model. Only
  earlier points train a model that scores a point.
- ``mahalanobis``: Malhotra et al. 2016's Gaussian of error vectors. The absolute errors of a
  window's positions form a vector; a Gaussian (mean, covariance, ridge 1e-3 of the error
  variance) fitted to the validation windows' vectors scores each window by its squared
  Mahalanobis distance.
- ``ensemble``: the mean raw score of the default model (train.seed) and models trained from
  ``--seeds`` with everything else the same; each of those seeds alone is a row too (the seed
  spread of the default configuration).

Usage, from the repository root after ``make run``::

    .venv/bin/python benchmarks/model_ideas.py       # writes reports/model_ideas.md

About 20 minutes on 2 cores (the ensemble trains two more models per series).
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

import rnnad  # noqa: F401  (its CPU pins come before torch)
from rnnad.config import Params, load_params
from rnnad.io import atomic_path
from rnnad.pipeline.common import load_index, load_series, load_splits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nab_tuning import Corpus

IDEAS = ("continual", "mahalanobis", "ensemble")


@functools.cache
def _run_inputs(root: Path) -> tuple[Params, dict[str, Any]]:
    """params.yaml and splits.json, read once per worker process."""
    return load_params(root / "params.yaml"), load_splits(root / "data/split/splits.json")


def _context(root: Path, entry: dict[str, Any]) -> tuple[Params, Any, Any, np.ndarray, Any, dict]:
    from rnnad.models.store import load_model

    params, splits = _run_inputs(root)
    series = load_series(root / "data/processed", entry)
    split, scaler = splits[series.id]
    model, spec = load_model(root / "models", series.id)
    return params, series, split, scaler.transform(series.values), model, spec


def _scored_windows(x: np.ndarray, length: int, segments: Any) -> tuple[np.ndarray, np.ndarray]:
    """All windows of ``x`` (a view) and the ends of those that score a point (none crossing
    a segment start), as :func:`rnnad.scoring.score_points` picks them."""
    from rnnad.windows import sliding_windows, window_ends, within_segments

    ends = window_ends(len(x), length)
    return sliding_windows(x, length), ends[within_segments(ends, length, segments)]


def _score(params: Params, model: Any, spec: dict, x: np.ndarray, series: Any) -> np.ndarray:
    from rnnad.models.encdec import reconstructor
    from rnnad.scoring import score_points

    ev = params.evaluate
    return score_points(x, params.window.length, reconstructor(model), ev.reduce,
                        ev.batch_size, targets=spec["targets"], error_scale=spec["error_scale"],
                        segments=series.segments)


def continual(root: Path, entry: dict[str, Any], every: float, epochs: int, lr: float,
              max_windows: int) -> tuple[str, np.ndarray]:
    from rnnad.models.training import fit, seed_everything

    params, series, split, x, model, spec = _context(root, entry)
    length = params.window.length
    raw = _score(params, model, spec, x, series)
    tune = params.train.model_copy(update={"epochs": epochs, "lr": lr, "patience": 3})
    seed_everything(params.train.seed, params.train.threads)
    windows, ends = _scored_windows(x, length, series.segments)
    step = max(int(every * len(x)), 200)
    start = split.val_end + step
    while start < len(x):
        seen = ends[ends < start]  # windows wholly before the stretch to score
        pick = seen[np.linspace(0, len(seen) - 1, min(max_windows, len(seen)))
                    .round().astype(np.int64)]
        cut = int(0.8 * len(pick))
        fit(model, windows[pick[:cut] - length + 1], windows[pick[cut:] - length + 1], tune)
        stop = min(len(x), start + step)
        raw[start:stop] = _score(params, model, spec, x, series)[start:stop]
        start = stop
    return series.id, raw


def mahalanobis(root: Path, entry: dict[str, Any]) -> tuple[str, np.ndarray]:
    from rnnad.models.encdec import reconstructor
    from rnnad.pipeline.train import training_windows

    params, series, split, x, model, spec = _context(root, entry)
    length, targets = params.window.length, list(spec["targets"])
    _, val = training_windows(x, series.labels, split, length, 1, series.segments,
                              params.train.max_windows)
    reconstruct = reconstructor(model)

    def vectors(w: np.ndarray) -> np.ndarray:
        w = np.ascontiguousarray(w, dtype=np.float64)
        return np.abs(w[:, :, targets] - reconstruct(w)).mean(axis=2)  # [N, L]

    fitted = vectors(val)
    mean = fitted.mean(axis=0)
    cov = np.cov(fitted, rowvar=False) + np.eye(length) * max(1e-12, 1e-3 * fitted.var())
    inverse = np.linalg.inv(cov)
    windows, ends = _scored_windows(x, length, series.segments)
    out = np.full(len(x), np.nan)
    for i in range(0, len(ends), 4096):
        e = ends[i : i + 4096]
        d = vectors(windows[e - length + 1]) - mean
        out[e] = np.einsum("ij,jk,ik->i", d, inverse, d)
    return series.id, out


def seed_model(root: Path, entry: dict[str, Any], seed: int) -> tuple[str, np.ndarray]:
    from rnnad.models.encdec import build_model
    from rnnad.models.training import fit, seed_everything
    from rnnad.pipeline.train import training_windows

    params, series, split, x, _, spec = _context(root, entry)
    train_w, val_w = training_windows(x, series.labels, split, params.window.length,
                                      params.window.stride, series.segments,
                                      params.train.max_windows)
    seed_everything(seed, params.train.threads)
    model = build_model(series.channels, params.model, tuple(spec["targets"]))
    fit(model, train_w, val_w, params.train.model_copy(update={"seed": seed}))
    return series.id, _score(params, model, spec, x, series)


def _all(fn: Any, entries: list[dict[str, Any]], jobs: int) -> dict[str, np.ndarray]:
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return dict(pool.map(fn, entries))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--out", type=Path, default=Path("reports/model_ideas.md"))
    parser.add_argument("--ideas", nargs="*", default=list(IDEAS), choices=IDEAS)
    parser.add_argument("--every", type=float, default=0.15)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--max-windows", type=int, default=2000,
                        help="continual: windows (evenly spread over the past) per fine-tuning")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2])
    args = parser.parse_args(argv)
    root = args.root.resolve()
    params = load_params(root / "params.yaml")
    corpus = Corpus(root)
    entries = load_index(root / "data/processed")
    jobs = params.train.jobs
    default_raw = dict(corpus.raw)
    rows: list[tuple[str, dict[str, np.ndarray], float | None]] = [
        ("default (main)", default_raw, None)]
    for idea in args.ideas:
        start = time.perf_counter()
        if idea == "continual":
            raw = _all(partial(continual, root, every=args.every, epochs=args.epochs,
                               lr=args.lr, max_windows=args.max_windows), entries, jobs)
            label = (f"continual (every {args.every}, {args.epochs} epochs, lr {args.lr}, "
                     f"{args.max_windows} windows)")
        elif idea == "mahalanobis":
            raw = _all(partial(mahalanobis, root), entries, jobs)
            label = "mahalanobis (Gaussian of error vectors)"
        else:
            members = [default_raw] + [_all(partial(seed_model, root, seed=s), entries, jobs)
                                       for s in args.seeds]
            for seed, member in zip(args.seeds, members[1:], strict=True):  # the seed spread
                rows.append((f"seed {seed} alone (the default otherwise)", member, None))
            raw = {sid: np.mean([m[sid] for m in members], axis=0) for sid in default_raw}
            label = f"ensemble (seeds {params.train.seed}, {', '.join(map(str, args.seeds))})"
        seconds = time.perf_counter() - start
        rows.append((label, raw, seconds))
        print(f"{label}: {seconds:.0f} s", flush=True)
    lines = [
        "# Model-side ideas (issue 8)",
        "",
        "Generated by `benchmarks/model_ideas.py` from the models and raw scores of a default "
        "run; each idea's raw scores go through the default post-processing and NAB's "
        "optimiser (one threshold per profile for the files scored). NAB score: standard / "
        "reward low FP / reward low FN.",
        "",
        "| raw scores | half a | half b | all 58 | seconds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, raw, took_s in rows:
        cells = []
        for half in ("a", "b", None):
            s = corpus.score_params(params.evaluate.postprocess, half, raw)
            cells.append(" / ".join(f"{v:.2f}" for v in s.values()))
        took = "-" if took_s is None else f"{took_s:.0f}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {took} |")
    lines.append("")
    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
