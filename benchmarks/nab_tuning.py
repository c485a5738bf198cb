"""The search that chose ``evaluate.postprocess``: a grid over its steps, scored with NAB on
half a of the corpus only (``rnnad.nab.corpus_halves``), from the RNN's raw scores of the
last ``dvc repro`` (``data/scores/*.npz``, key ``raw_scores``). Half b and the whole corpus are
shown for the chosen settings only, after the choice.

Usage, from the repository root after ``make run``::

    .venv/bin/python benchmarks/nab_tuning.py            # writes reports/nab_tuning.md

Each grid point post-processes half a's 31 series and runs NAB's optimiser (about a third of
a second); the grid below has 1440 points. The winner is what ``params.yaml`` holds; the DVC
experiments in ``reports/experiments.md`` then measure each step's share with the whole
pipeline.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rnnad import nab
from rnnad.config import PostprocessParams
from rnnad.io import atomic_path
from rnnad.pipeline.common import load_index, load_scores, load_series, load_splits
from rnnad.postprocess import postprocess

# every combination is scored (5 * 3 * 4 * 4 * 3 * 2 = 1440 settings); transform: log and
# longer suppressions are single DVC experiments (reports/experiments.md)
GRID: dict[str, list[Any]] = {
    "likelihood.window": [250, 500, 1000, 2000, 8640],
    "likelihood.short": [1, 5, 10],
    "spatial": [0.0, 0.02, 0.05, 0.2],
    "suppress": [30, 50, 100, 200],
    "level": [0.5, 0.7, 0.9],
    "smooth": [0, 10],
}
SHOWN = 20


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        head, _, rest = key.partition(".")
        if rest:
            out.setdefault(head, {})[rest] = value
        else:
            out[head] = value
    return out


class Corpus:
    def __init__(self, root: Path) -> None:
        processed = root / "data/processed"
        self.series = {}
        for entry in load_index(processed):
            s = load_series(processed, entry)
            self.series[s.id] = s
        splits = load_splits(root / "data/split/splits.json")
        self.values = {sid: splits[sid][1].transform(s.values) for sid, s in self.series.items()}
        self.raw = {sid: load_scores(root / "data/scores", sid)["raw_scores"]
                    for sid in self.series}
        raw_nab = root / "data/raw/nab"
        self.windows = nab.load_windows(raw_nab / nab.WINDOWS_FILE)
        self.profiles = nab.load_profiles(raw_nab / nab.PROFILES_FILE)
        self.half = nab.corpus_halves(list(self.series))

    def score(self, flat: dict[str, Any], half: str | None) -> dict[str, float]:
        """NAB scores of the grid point ``flat`` (dotted keys) on ``half`` (None: all)."""
        return self.score_params(PostprocessParams.model_validate(_nested(flat)), half)

    def score_params(self, params: PostprocessParams, half: str | None,
                     raw: dict[str, np.ndarray] | None = None) -> dict[str, float]:
        """NAB scores of ``raw`` scores (default: the run's) post-processed with ``params``."""
        raw = self.raw if raw is None else raw
        chosen = {sid: s for sid, s in self.series.items() if half is None or
                  self.half[sid] == half}
        output = {sid: (s.timestamps, np.nan_to_num(
            postprocess(raw[sid], self.values[sid], params, s.segments), nan=0.0))
            for sid, s in chosen.items()}
        results = nab.score_arrays(output, self.windows, self.profiles)
        return {p: round(r.normalised, 2) for p, r in results.items()}


def search(corpus: Corpus) -> tuple[dict[str, Any], list[str]]:
    keys = list(GRID)
    rows = []
    for i, combo in enumerate(itertools.product(*GRID.values())):
        trial = dict(zip(keys, combo, strict=True))
        rows.append((corpus.score(trial, "a"), trial))
        if i % 100 == 0:
            print(f"{i} settings scored", flush=True)
    rows.sort(key=lambda r: -r[0]["standard"])
    lines = [f"{len(rows)} settings; the best {SHOWN} on half a (the choice uses only those "
             "columns; half b's standard score is added afterwards, to show how the top of "
             "half a fares on the held-out half):", "",
             "| " + " | ".join(keys) + " | standard | low FP | low FN | half b standard |",
             "| " + " | ".join(["---"] * (len(keys) + 4)) + " |"]
    for scores, trial in rows[:SHOWN]:
        held_out = corpus.score(trial, "b")["standard"]
        lines.append("| " + " | ".join(str(trial[k]) for k in keys) + " | " +
                     " | ".join(f"{v:.2f}" for v in scores.values()) + f" | {held_out:.2f} |")
    lines.append("")
    for key in keys:  # each value's best score: how much each step's setting matters
        best = {v: max(r[0]["standard"] for r in rows if r[1][key] == v) for v in GRID[key]}
        lines.append(f"- best half-a standard score with `{key}` = " +
                     ", ".join(f"{v}: {b:.2f}" for v, b in best.items()))
    lines.append("")
    return rows[0][1], lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--out", type=Path, default=Path("reports/nab_tuning.md"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    corpus = Corpus(args.root)
    best, lines = search(corpus)
    report = [
        "# How `evaluate.postprocess` was chosen",
        "",
        "Generated by `benchmarks/nab_tuning.py` from the raw RNN scores of a default run. "
        "Every setting below is scored on **half a** of NAB (31 files: within each category, "
        "files in name order alternate a, b); half b (27 files) is scored only after the "
        "choice, for the top rows and the winner, and the whole corpus for the winner. "
        "NAB score: standard / reward low FP / reward low FN.",
        "",
        *lines,
        "## The winner",
        "",
        "| setting | " + " | ".join(best) + " |",
        "| " + " | ".join(["---"] * (len(best) + 1)) + " |",
        "| value | " + " | ".join(str(v) for v in best.values()) + " |",
        "",
        "| part | standard | low FP | low FN |",
        "| --- | --- | --- | --- |",
    ]
    for label, half in (("half a (tuning)", "a"), ("half b (held out)", "b"), ("all 58", None)):
        scores = corpus.score(best, half)
        report.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in scores.values()) + " |")
    report += ["", f"Search time: {time.perf_counter() - start:.0f} s.", ""]
    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(report))
    print(f"wrote {args.out}; winner {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
