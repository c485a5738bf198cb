"""Speed benchmarks: rnnad's training and scoring throughput, the machine's matmul roofline,
and the peer libraries side by side on the same NAB series, in one run.

    .venv/bin/python benchmarks/speed.py [--series 10] [--peers] [--profile] [--repro]

Writes ``reports/speed.json`` and ``reports/speed.md`` (``--out``). What it measures, all in one
process run so that the ratios share the machine's state (timings on a shared machine are noisy;
compare ratios, not absolute seconds):

- **ours**, per series (``--series`` NAB series spread over the corpus, default 10, or ``all``):
  the pipeline's default params from params.yaml, NAB's protocol (learn from the probationary
  period), the library calls the train and evaluate stages make: fit time (early stopping
  included), scoring time of every window of the series (float64 torch, as the evaluate stage),
  training throughput (training windows x epochs run / fit time) and scoring throughput (points
  / score time), point-wise AUC-PR on the points after the probationary period;
- **roofline**: the FLOP rate torch reaches on a matrix multiply of the model's own shapes
  (the gate matmul [batch, hidden] x [hidden, gates*hidden] at the training batch size in float32
  and at the scoring batch size in float64, with ``train.threads`` threads), the model's FLOPs
  per window (the matmuls of the encoder, decoder and output layer; training counts 3x the
  forward pass), and our throughput as a fraction of that roofline;
- **peers** (``--peers``): pyod's ``LSTMAD`` (``pyod.models.ts_lstm``) and Merlion's ``LSTMED``
  with their library defaults, fitted on the same probationary period and scored on the same
  series, installed in their own virtual environment ``benchmarks/.peers-venv`` (created on
  first use, pinned versions, never in the project's); fit time, score time and AUC-PR per
  series, computed by the same function as ours, and the median ratios peer / ours;
- **profile** (``--profile``): torch.profiler over one series' fit and scoring, the top
  operators by self CPU time, into ``reports/speed_profile.txt``;
- **repro** (``--repro``): a whole ``dvc repro --force`` of the default configuration in a
  scratch copy: wall time and the peak resident memory of the largest process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PEERS_VENV = REPO / "benchmarks" / ".peers-venv"
PEER_PACKAGES = ["torch==2.13.0", "pyod==3.6.7", "salesforce-merlion==2.0.4"]
PEERS = ("pyod_lstmad", "merlion_lstmed")


# ---------------------------------------------------------------- the data
def mirror_nab() -> Path:
    value = os.environ.get("RNNAD_DATA_MIRROR", "").strip()
    root = (REPO / value).resolve() if value else REPO.parent / "shared" / "datasets"
    nab = root / "nab"
    if not (nab / "labels" / "combined_windows.json").is_file():
        raise SystemExit(f"NAB not found under {root}: set RNNAD_DATA_MIRROR "
                         "(e.g. ../shared/datasets)")
    return nab


def choose_series(nab: Path, count: str) -> list[str]:
    """``count`` series spread evenly over the sorted corpus (every k-th), or ``all``."""
    from rnnad.datasets import nab as nab_data

    every = nab_data.available_series(nab)
    if count == "all":
        return every
    n = int(count)
    idx = np.unique(np.linspace(0, len(every) - 1, n).round().astype(int))
    return [every[i] for i in idx]


def load_all(nab: Path, series_ids: list[str], params: Any) -> dict[str, Any]:
    """The series as the preprocess stage loads them (NAB's label file parsed once)."""
    from rnnad.datasets.registry import get_dataset

    dataset = get_dataset("nab")
    return {sid: dataset.load(nab, sid, params) for sid in series_ids}


def auc_pr(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Point-wise AUC-PR by the evaluate stage's own function (rnnad.metrics.point_metrics);
    a point without a score ranks below every scored one."""
    from rnnad.metrics import point_metrics

    s = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(s)
    s = np.where(finite, s, (s[finite].min() - 1.0) if finite.any() else 0.0)
    return point_metrics(labels, np.zeros(len(s), dtype=np.int8), s)["auc_pr"]


# ---------------------------------------------------------------- ours
def ours(series: Any, params: Any) -> dict[str, Any]:
    import torch

    from rnnad.models.encdec import build_model, reconstructor
    from rnnad.models.training import fit, seed_everything
    from rnnad.pipeline.train import training_windows
    from rnnad.scoring import score_points
    from rnnad.split import fit_scaler, make_split

    split = make_split(len(series), params.split, series.id)
    scaler = fit_scaler(series.values, series.labels, split)
    x = scaler.transform(series.values)
    start = time.perf_counter()
    train_w, val_w = training_windows(x, series.labels, split, params.window.length,
                                      params.window.stride, series.segments,
                                      params.train.max_windows)
    seed_everything(params.train.seed, params.train.threads)
    model = build_model(series.channels, params.model)
    result = fit(model, train_w, val_w, params.train)
    fit_s = time.perf_counter() - start
    torch.set_num_threads(params.train.threads)
    start = time.perf_counter()
    scores = score_points(x, params.window.length, reconstructor(model), params.evaluate.reduce,
                          params.evaluate.batch_size)
    score_s = time.perf_counter() - start
    epochs = len(result.history)
    test = slice(split.val_end, None)
    return {"fit_s": fit_s, "score_s": score_s, "fit_plus_score_s": fit_s + score_s,
            "epochs": epochs, "train_windows": len(train_w),
            "train_windows_per_s": len(train_w) * epochs / fit_s,
            "scored_points": len(x) - params.window.length + 1,
            "score_points_per_s": (len(x) - params.window.length + 1) / score_s,
            "auc_pr": auc_pr(series.labels[test], scores[test]), "learn_points": split.val_end}


# ---------------------------------------------------------------- roofline
def matmul_gflops(m: int, k: int, n: int, dtype: Any, threads: int, repeats: int = 7) -> float:
    """Median GFLOP/s of torch.mm([m, k] x [k, n]) over ``repeats`` timings of enough calls
    to last about 0.2 s each."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b)
        if time.perf_counter() - start > 0.05:
            break
        calls *= 4
    calls = max(1, int(calls * 0.2 / max(time.perf_counter() - start, 1e-9)))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b)
        rates.append(2.0 * m * k * n * calls / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def flops_per_window(length: int, channels: int, hidden: int, layers: int, cell: str,
                     targets: int) -> float:
    """Multiply-adds x 2 of one window's forward pass: encoder and decoder (input and
    recurrent gate matmuls of every layer at every step) and the output layer."""
    gates = 4 if cell == "lstm" else 3
    def rnn(inputs: int) -> int:
        first = 2 * gates * hidden * (inputs + hidden)
        rest = 2 * gates * hidden * (2 * hidden) * (layers - 1)
        return length * (first + rest)
    return float(rnn(channels) + rnn(1) + length * 2 * hidden * targets)


def roofline(params: Any) -> dict[str, Any]:
    import torch

    gates = 4 if params.model.cell == "lstm" else 3
    h, threads = params.model.hidden, params.train.threads
    return {
        "threads": threads,
        "train_gflops": matmul_gflops(params.train.batch_size, h, gates * h, torch.float32,
                                      threads),
        "score_gflops": matmul_gflops(params.evaluate.batch_size, h, gates * h, torch.float64,
                                      threads),
        "shape_train": [params.train.batch_size, h, gates * h],
        "shape_score": [params.evaluate.batch_size, h, gates * h],
        "flops_per_window": flops_per_window(params.window.length, 1, h, params.model.layers,
                                             params.model.cell, 1),
    }


# ---------------------------------------------------------------- peers
def peers_python() -> Path:
    python = PEERS_VENV / "bin" / "python"
    if not python.is_file():
        print(f"creating {PEERS_VENV} with {' '.join(PEER_PACKAGES)} (a few minutes) ...",
              flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return python


def run_peer(peer: str, nab: Path, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    python = peers_python()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([str(python), str(REPO / "benchmarks" / "peers_worker.py"), peer,
                               str(nab), tmp, json.dumps(jobs)], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        if proc.returncode != 0:
            raise SystemExit(f"{peer} failed:\n{proc.stderr[-3000:]}")
        out = []
        for i in range(len(jobs)):
            d = np.load(Path(tmp) / f"{i}.npz")
            out.append({"scores": d["scores"], "fit_s": float(d["fit_s"]),
                        "score_s": float(d["score_s"])})
        return out


# ---------------------------------------------------------------- profile and repro
def profile(series: Any, params: Any, out: Path) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        ours(series, params)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"torch.profiler, one fit and scoring of {series.id} (default params)\n\n"
                   + table + "\n")


def repro(tmp_root: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "tests"))
    from scratch import copy_project, scratch_env

    root = tmp_root / "repro"
    root.mkdir()
    copy_project(root)
    env = scratch_env(root, mirror_nab().parent)  # its own HOME and BentoML store
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=root, env=env,
                   check=True)
    # a wrapper process whose own children are only dvc and its stages: its RUSAGE_CHILDREN
    # peak is the largest of them (not this benchmark's other subprocesses)
    wrapper = ("import resource, subprocess, sys, time\n"
               "t = time.perf_counter()\n"
               "rc = subprocess.run(sys.argv[1:], capture_output=True).returncode\n"
               "print(rc, time.perf_counter() - t,"
               " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "dvc", "repro",
                          "--force"], cwd=root, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    if out[0] != "0":
        raise SystemExit(f"dvc repro failed ({out[0]}) in {root}")
    return {"wall_s": float(out[1]), "peak_rss_mib": int(out[2]) / 1024}


# ---------------------------------------------------------------- report
def _median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarise(rows: list[dict[str, Any]], peers: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"series": len(rows)}
    for who in ["rnnad", *peers]:
        out[who] = {k: _median([r[who][k] for r in rows]) for k in
                    ("fit_s", "score_s", "fit_plus_score_s", "auc_pr")}
    for peer in peers:
        out[f"ratio_{peer}_over_rnnad"] = {
            k: _median([r[peer][k] / r["rnnad"][k] for r in rows]) for k in
            ("fit_s", "score_s", "fit_plus_score_s")}
    return out


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown(report: dict[str, Any]) -> str:
    lines = ["# rnnad speed benchmark", "", f"{report['when']} · {report['machine']}", ""]
    roof = report["roofline"]
    s = report["summary"]
    lines += ["## Per series (medians)", "",
              "| detector | fit s | score s | fit + score s | AUC-PR |",
              "|---|---:|---:|---:|---:|"]
    for who in ["rnnad", *report["peers"]]:
        m = s[who]
        lines.append(f"| {who} | {m['fit_s']:.2f} | {m['score_s']:.2f} | "
                     f"{m['fit_plus_score_s']:.2f} | {_fmt(m['auc_pr'])} |")
    for peer in report["peers"]:
        r = s[f"ratio_{peer}_over_rnnad"]
        lines.append("")
        lines.append(f"Median ratio {peer} / rnnad: fit x{r['fit_s']:.1f}, score "
                     f"x{r['score_s']:.1f}, fit + score x{r['fit_plus_score_s']:.1f}.")
    lines += ["", "## Throughput against the roofline", "",
              "| | rnnad (median over series) | roofline (torch.mm of the model's shapes) | "
              "fraction |", "|---|---:|---:|---:|"]
    t = report["throughput"]
    lines.append(f"| training (float32, batch {roof['shape_train'][0]}) | "
                 f"{t['train_gflops']:.2f} GFLOP/s ({t['train_windows_per_s']:.0f} windows/s) | "
                 f"{roof['train_gflops']:.2f} GFLOP/s | {t['train_fraction']:.1%} |")
    lines.append(f"| scoring (float64, batch {roof['shape_score'][0]}) | "
                 f"{t['score_gflops']:.2f} GFLOP/s ({t['score_points_per_s']:.0f} points/s) | "
                 f"{roof['score_gflops']:.2f} GFLOP/s | {t['score_fraction']:.1%} |")
    lines += ["", f"FLOPs per window (forward): {roof['flops_per_window']:.3g}; training counts "
              f"3x. Threads: {roof['threads']}.", ""]
    c = report.get("corpus")
    if c:
        lines += [f"Whole corpus ({c['series']} series, one after another): fit {c['fit_s']:.0f} s "
                  f"({c['train_windows_per_s']:.0f} training windows/s), score "
                  f"{c['score_s']:.0f} s ({c['score_points_per_s']:.0f} points/s).", ""]
    header = ["series", "rnnad fit s", "rnnad score s", "rnnad AUC-PR"]
    for p in report["peers"]:
        header += [f"{p} fit s", f"{p} score s", f"{p} AUC-PR"]
    lines += ["## Series", "", "| " + " | ".join(header) + " |",
              "|---|" + "---:|" * (len(header) - 1)]
    for r in report["rows"]:
        cells = [r["series"]]
        for who in ["rnnad", *report["peers"]]:
            m = r[who]
            cells += [f"{m['fit_s']:.2f}", f"{m['score_s']:.2f}", _fmt(m["auc_pr"])]
        lines.append("| " + " | ".join(cells) + " |")
    if report.get("repro"):
        lines += ["", f"Whole `dvc repro --force` (default): {report['repro']['wall_s']:.0f} s, "
                  f"peak RSS {report['repro']['peak_rss_mib']:.0f} MiB."]
    if report.get("peer_versions"):
        lines += ["", "Peers' environment: " + ", ".join(report["peer_versions"]) + "."]
    lines += ["", "Rerun: `.venv/bin/python benchmarks/speed.py " + report["argv"] + "`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", default="10", help="how many NAB series, or 'all'")
    parser.add_argument("--peers", action="store_true", help="also run pyod and Merlion")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--repro", action="store_true", help="also time a whole dvc repro")
    parser.add_argument("--corpus", action="store_true",
                        help="also fit and score all 58 series: corpus-wide throughput")
    parser.add_argument("--out", default=REPO / "reports" / "speed.json", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    from rnnad.config import load_params
    from rnnad.io import write_json

    params = load_params(REPO / "params.yaml")
    nab = mirror_nab()
    series_ids = choose_series(nab, args.series)
    rows = []
    loaded = load_all(nab, series_ids, params)
    for sid, series in loaded.items():
        r = ours(series, params)
        rows.append({"series": sid, "rnnad": r})
        print(f"rnnad {sid}: fit {r['fit_s']:.2f} s, score {r['score_s']:.2f} s, "
              f"AUC-PR {r['auc_pr']}", flush=True)
    peers = list(PEERS) if args.peers else []
    peer_versions = []
    if peers:
        freeze = subprocess.run([str(peers_python()), "-m", "pip", "freeze"],
                                capture_output=True, text=True, check=True).stdout
        peer_versions = [line for line in freeze.splitlines() if line.split("=")[0].lower() in
                         ("pyod", "salesforce-merlion", "torch", "numpy", "scipy")]
    for peer in peers:
        jobs = [{"series": r["series"], "fit_points": r["rnnad"]["learn_points"]} for r in rows]
        for row, res in zip(rows, run_peer(peer, nab, jobs), strict=True):
            series = loaded[row["series"]]
            test = slice(row["rnnad"]["learn_points"], None)
            row[peer] = {"fit_s": res["fit_s"], "score_s": res["score_s"],
                         "fit_plus_score_s": res["fit_s"] + res["score_s"],
                         "auc_pr": auc_pr(series.labels[test], res["scores"][test])}
            print(f"{peer} {row['series']}: fit {res['fit_s']:.2f} s, AUC-PR "
                  f"{row[peer]['auc_pr']}", flush=True)
    corpus = None
    if args.corpus:
        done = {r["series"]: r["rnnad"] for r in rows}
        totals = {"fit_s": 0.0, "score_s": 0.0, "window_passes": 0, "points": 0}
        rest = [sid for sid in choose_series(nab, "all") if sid not in done]
        for sid, series in load_all(nab, rest, params).items():
            done[sid] = ours(series, params)
        for r in done.values():
            totals["fit_s"] += r["fit_s"]
            totals["score_s"] += r["score_s"]
            totals["window_passes"] += r["train_windows"] * r["epochs"]
            totals["points"] += r["scored_points"]
        corpus = {**totals, "series": len(done),
                  "train_windows_per_s": totals["window_passes"] / totals["fit_s"],
                  "score_points_per_s": totals["points"] / totals["score_s"]}
        print(f"corpus: fit {totals['fit_s']:.0f} s, score {totals['score_s']:.0f} s", flush=True)
    roof = roofline(params)
    train_wps = _median([r["rnnad"]["train_windows_per_s"] for r in rows])
    score_pps = _median([r["rnnad"]["score_points_per_s"] for r in rows])
    throughput = {"train_windows_per_s": train_wps, "score_points_per_s": score_pps,
                  "train_gflops": train_wps * 3 * roof["flops_per_window"] / 1e9,
                  "score_gflops": score_pps * roof["flops_per_window"] / 1e9}
    throughput["train_fraction"] = throughput["train_gflops"] / roof["train_gflops"]
    throughput["score_fraction"] = throughput["score_gflops"] / roof["score_gflops"]
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"Python {platform.python_version()}",
        "argv": " ".join(argv if argv is not None else sys.argv[1:]),
        "params": {"window": params.window.model_dump(), "model": params.model.model_dump(),
                   "train": params.train.model_dump()},
        "peers": peers, "peer_versions": peer_versions, "rows": rows,
        "summary": summarise(rows, peers), "roofline": roof,
        "throughput": throughput, "corpus": corpus,
    }
    if args.profile:
        profile(next(iter(loaded.values())), params, args.out.with_name("speed_profile.txt"))
    if args.repro:
        with tempfile.TemporaryDirectory() as tmp:
            report["repro"] = repro(Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report)
    md = markdown(report)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
