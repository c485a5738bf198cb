"""Load test of the rnnad BentoML detector service, plus a study of whether batching would help.

Run from the repository root with the project's venv::

    .venv/bin/python benchmarks/loadtest.py [--duration 10] [--concurrency 1 8 32]
        [--model rnnad_nab:latest] [--workers 1 2] [--out reports/loadtest.json]

What it does:

1. Resolves ``--model`` (e.g. ``rnnad_nab:latest``) to one concrete BentoML model version, so
   that every server start and the batching study use the same package even if a new one is
   saved while the test runs.
2. For each worker count in ``--workers`` (1 is the README's ``bentoml serve``; 2 is set through
   ``BENTOML_CONFIG_OVERRIDES``, without touching ``rnnad.service``), starts
   ``bentoml serve rnnad.service:Detector`` in its own session (process group), waits for
   ``GET /readyz`` and runs two scenarios at each concurrency level:

   - ``single window``: each request is one series with exactly ``window`` real values (what a
     streaming client sends per point);
   - ``batch of 100 series``: each request has 100 items, one window each, cycling over the
     series ``GET /models`` lists.

   Each client is a closed loop (send, wait for the answer, send again) on its own keep-alive
   ``http.client`` connection. Clients are threads spread over a few forked processes (at most
   one per CPU), so that one client interpreter's GIL does not pace the others. After
   ``--warmup`` seconds (not counted) the requests that complete within the next
   ``--duration`` seconds are counted: requests/s, p50/p95/p99 latency (numpy percentiles over
   the successful requests), and errors (non-200 answers, exceptions, timeouts after
   ``--timeout`` seconds). CPU time of the server's process group and of the load generator is
   read from ``/proc`` over the same interval. The server's process group is always killed at
   the end, also on errors and Ctrl-C.
3. Batching study (``--no-batching-study`` to skip): times ``InferenceSession.run`` in process on
   the single-window series' ONNX file (the service's session options: one intra-op thread) for
   batch sizes 1, 8, 32, 100, and compares the model compute per window with the measured
   end-to-end latency and the server CPU time per request.
4. Writes ``--out`` (JSON, atomically) and the same name with ``.md`` (Markdown tables), and
   prints the Markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import json
import math
import multiprocessing as mp
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA_DIRS = (REPO / "data" / "raw" / "nab" / "data",
             REPO.parent / "shared" / "datasets" / "nab" / "data")
SINGLE = "single window"
BATCH = "batch of {n} series"
TARGET_P99_MS = 50.0
TARGET_CLIENTS = 8
BATCH_SIZES = (1, 8, 32, 100)
SERVICE_NAME = "rnnad_detector"  # @bentoml.service(name=...) in rnnad.service
BODY_VARIANTS = 64  # distinct request bodies per scenario, cycled


# ---------------------------------------------------------------- small helpers
def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder + os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def venv_bin(name: str) -> Path:
    """An executable beside the running interpreter (the venv's), else in the repo's .venv."""
    beside = Path(sys.executable).parent / name
    return beside if beside.exists() else REPO / ".venv" / "bin" / name


def resolve_model(tag: str) -> dict[str, str]:
    """The concrete BentoML model version and path of ``tag`` (a subprocess: keeps bentoml out
    of this process, which forks the clients)."""
    code = ("import bentoml, json, sys; m = bentoml.models.get(sys.argv[1]); "
            "print(json.dumps({'tag': str(m.tag), 'path': str(m.path), "
            "'created': m.info.creation_time.isoformat()}))")
    env = dict(os.environ, BENTOML_DO_NOT_TRACK="True")
    out = subprocess.run([sys.executable, "-c", code, tag], capture_output=True, text=True,
                         env=env, check=False, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"cannot resolve BentoML model {tag!r}:\n{out.stderr.strip()[-2000:]}")
    result: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def series_csv(series: str) -> Path | None:
    """The raw NAB csv of a series id (``category/name``), from data/raw or ../shared."""
    for base in DATA_DIRS:
        path = base / f"{series}.csv"
        if path.is_file():
            return path
    return None


def read_values(series: str) -> np.ndarray:
    """The finite values of a series' raw csv (column ``value``)."""
    path = series_csv(series)
    if path is None:
        raise SystemExit(f"no csv for series {series!r} under {', '.join(map(str, DATA_DIRS))}")
    with path.open(newline="", encoding="utf-8") as fh:
        values = np.array([float(row["value"]) for row in csv.DictReader(fh)], dtype=np.float64)
    return values[np.isfinite(values)]


def windows_of(values: np.ndarray, window: int, count: int, offset: int = 0) -> list[list[float]]:
    """``count`` windows of ``values`` at evenly spread starts (shifted by ``offset``)."""
    n_starts = len(values) - window + 1
    if n_starts < 1:
        raise SystemExit(f"series has {len(values)} values, fewer than one window ({window})")
    starts = [(offset + i * max(1, n_starts // count)) % n_starts for i in range(count)]
    return [values[s:s + window].tolist() for s in starts]


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat this script uses."""

    ppid: int
    pgrp: int
    start: int  # clock ticks after boot: tells a pid apart from a later reuse
    cpu_ticks: int  # user + system


def proc_table() -> dict[int, ProcStat]:
    """All live processes (Linux /proc; empty elsewhere)."""
    table = {}
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return table
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        f = stat[stat.rfind(")") + 2:].split()  # f[0] is field 3 (state) of proc(5)
        table[int(entry.name)] = ProcStat(int(f[1]), int(f[2]), int(f[19]),
                                          int(f[11]) + int(f[12]))
    return table


def family(root: int, table: dict[int, ProcStat]) -> dict[int, ProcStat]:
    """The processes of ``root``'s process group and all of ``root``'s descendants (BentoML's
    worker processes run in sessions of their own, outside the group)."""
    children: dict[int, list[int]] = {}
    for pid, st in table.items():
        children.setdefault(st.ppid, []).append(pid)
    found = {pid for pid, st in table.items() if st.pgrp == root}
    todo = [root, *found]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {pid: table[pid] for pid in found if pid in table}


def machine_cpu() -> tuple[float, float] | None:
    """(busy, total) jiffies summed over all CPUs from /proc/stat, or None."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    vals = [float(v) for v in first[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)
    return sum(vals) - idle, sum(vals)


def busy_cores_pct(first: tuple[float, float] | None,
                   second: tuple[float, float] | None) -> float | None:
    """Machine CPU use between two :func:`machine_cpu` readings, 100 = one core busy."""
    if first is None or second is None or second[1] <= first[1]:
        return None
    cpus = os.cpu_count() or 1
    return 100.0 * cpus * (second[0] - first[0]) / (second[1] - first[1])


def wait_for_quiet(max_wait: float, limit_pct: float = 25.0) -> float | None:
    """Wait (at most ``max_wait`` s) until the machine, sampled over 1 s, uses less than
    ``limit_pct`` of a core; the last sample (100 = one core), or None off Linux."""
    deadline = time.monotonic() + max_wait
    while True:
        first = machine_cpu()
        time.sleep(1.0)
        busy = busy_cores_pct(first, machine_cpu())
        if busy is None or busy < limit_pct or time.monotonic() >= deadline:
            return None if busy is None else round(busy, 1)


# ---------------------------------------------------------------- the server
@dataclass
class Server:
    """A ``bentoml serve`` process group started by :func:`start_server`."""

    proc: subprocess.Popen[bytes]
    port: int
    workers: int
    log_path: Path
    startup_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    seen: dict[int, int] = field(default_factory=dict)  # pid -> start time

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        """GET ``path``; (status, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def members(self) -> dict[int, ProcStat]:
        """The server's live processes (its group and the leader's descendants), remembered
        so that :meth:`stop` can still find workers whose parent has died."""
        live = family(self.proc.pid, proc_table())
        for pid, st in live.items():
            self.seen.setdefault(pid, st.start)
        return live

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds of the server's live processes, or None off Linux."""
        live = self.members()
        if not live:
            return None
        return sum(st.cpu_ticks for st in live.values()) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM the process group (BentoML stops its workers), wait; then SIGKILL the group
        and every server process seen, if still alive (same pid and start time)."""
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        self.members()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=15)

        def alive() -> list[int]:
            table = proc_table()
            return [pid for pid, start in self.seen.items()
                    if pid in table and table[pid].start == start]

        deadline = time.monotonic() + 5
        while alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        for pid in alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def worker_ids(self) -> list[str]:
        """The BentoML worker ids (``rnnad_detector:N``) that logged a request."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return sorted(set(re.findall(rf"\[entry_service:{SERVICE_NAME}:(\d+)\]", text)), key=int)


def start_server(model_tag: str, workers: int, log_dir: Path, ready_timeout: float) -> Server:
    """Start ``bentoml serve rnnad.service:Detector`` as the README says (repo root, env
    RNNAD_MODEL, RNNAD_ORT_THREADS=1, BENTOML_DO_NOT_TRACK=True) in a new session, and wait for
    ``GET /readyz`` == 200. ``workers`` > 1 goes through ``BENTOML_CONFIG_OVERRIDES``."""
    port = free_port()
    env = dict(os.environ, RNNAD_MODEL=model_tag, RNNAD_ORT_THREADS="1",
               BENTOML_DO_NOT_TRACK="True")
    env.pop("BENTOML_CONFIG_OPTIONS", None)
    env.pop("BENTOML_CONFIG_OVERRIDES", None)
    if workers != 1:
        env["BENTOML_CONFIG_OVERRIDES"] = json.dumps(
            {"services": {SERVICE_NAME: {"workers": workers}}})
    log_path = log_dir / f"server-workers{workers}.log"
    cmd = [str(venv_bin("bentoml")), "serve", "rnnad.service:Detector",
           "--host", "127.0.0.1", "--port", str(port)]
    t0 = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(proc, port, workers, log_path)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_tail()}")
            if time.monotonic() - t0 > ready_timeout:
                raise RuntimeError(f"server not ready after {ready_timeout} s:\n"
                                   f"{server.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if server.get("/readyz", timeout=2)[0] == 200:
                    break
            time.sleep(0.25)
        server.startup_s = time.monotonic() - t0
        status, body = server.get("/models")
        if status != 200:
            raise RuntimeError(f"GET /models answered {status}: {body[:500]!r}")
        server.info = json.loads(body)
    except BaseException:
        server.stop()
        raise
    return server


# ---------------------------------------------------------------- the load generator
@dataclass(frozen=True)
class Scenario:
    """Request bodies of one scenario (cycled) and what an answer must hold."""

    name: str
    bodies: list[bytes]
    items: int
    window: int


@dataclass
class CellResult:
    """The measurement of one scenario at one concurrency level on one server."""

    workers: int
    scenario: str
    clients: int
    client_procs: int
    duration_s: float
    requests: int
    errors: int
    rps: float
    windows_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    errors_warmup: int
    error_kinds: dict[str, int]
    error_samples: list[str]
    server_cpu_pct: float | None
    server_cpu_ms_per_request: float | None
    client_cpu_pct: float | None
    machine_busy_pct: float | None
    other_cpu_pct: float | None
    idle_before_pct: float | None


def check_answer(body: bytes, scenario: Scenario) -> str | None:
    """None if a /detect answer has one result per item with one score per value."""
    try:
        results = json.loads(body)["results"]
    except (ValueError, KeyError, TypeError) as exc:
        return f"unparseable answer: {exc}"
    if len(results) != scenario.items:
        return f"{len(results)} results for {scenario.items} items"
    for r in results:
        scores = r.get("scores", [])
        if len(scores) != scenario.window or scores[-1] is None:
            return f"result of {r.get('series')!r} has {len(scores)} scores"
    return None


def client_thread(port: int, scenario: Scenario, first_body: int, timeout: float,
                  go: Any, times: Any, ready: threading.Barrier,
                  out: list[tuple[float, float, int]], errors: list[str]) -> None:
    """One closed-loop client on its own keep-alive connection: one checked request, then wait
    for ``go``, then send/answer/send until ``times[1]``. Appends (start, end, status) with
    status 0 for an exception and -1 for a timeout."""
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    conn: http.client.HTTPConnection | None = None
    n = first_body

    def one(body: bytes) -> tuple[int, bytes]:
        nonlocal conn
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("POST", "/detect", body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except BaseException:
            conn.close()
            conn = None
            raise

    try:  # a first request, checked in full; not counted
        status, answer = one(scenario.bodies[n % len(scenario.bodies)])
        problem = (check_answer(answer, scenario) if status == 200
                   else f"HTTP {status}: {answer[:300]!r}")
        if problem:
            errors.append(f"first request: {problem}")
    except Exception as exc:
        errors.append(f"first request: {type(exc).__name__}: {exc}")
    ready.wait()
    go.wait()
    end = times[1]
    while True:
        n += 1
        body = scenario.bodies[n % len(scenario.bodies)]
        t0 = time.monotonic()
        if t0 >= end:
            break
        try:
            status, answer = one(body)
            if status != 200 and len(errors) < 5:
                errors.append(f"HTTP {status}: {answer[:300]!r}")
        except TimeoutError as exc:
            status = -1
            if len(errors) < 5:
                errors.append(f"timeout after {timeout} s: {exc}")
        except Exception as exc:
            status = 0
            if len(errors) < 5:
                errors.append(f"{type(exc).__name__}: {exc}")
        out.append((t0, time.monotonic(), status))
    if conn is not None:
        conn.close()


def client_process(port: int, scenario: Scenario, n_threads: int, first_body: int,
                   timeout: float, go: Any, times: Any, ready_q: Any, result_q: Any) -> None:
    """A load-generator process: ``n_threads`` client threads; puts its records on
    ``result_q``, with its CPU seconds over the measured interval."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends us
    out: list[tuple[float, float, int]] = []
    errors: list[str] = []
    barrier = threading.Barrier(n_threads + 1)
    threads = [threading.Thread(target=client_thread, daemon=True,
                                args=(port, scenario, first_body + i * 7, timeout, go, times,
                                      barrier, out, errors))
               for i in range(n_threads)]
    for t in threads:
        t.start()
    barrier.wait()
    ready_q.put(os.getpid())
    go.wait()
    start, end = times[0], times[1]
    time.sleep(max(0.0, start - time.monotonic()))
    cpu0 = time.process_time()
    time.sleep(max(0.0, end - time.monotonic()))
    cpu1 = time.process_time()
    for t in threads:
        t.join()
    result_q.put({"pid": os.getpid(), "records": out, "errors": errors, "cpu_s": cpu1 - cpu0})


def run_cell(server: Server, scenario: Scenario, clients: int, procs: int, warmup: float,
             duration: float, timeout: float, idle_wait: float) -> CellResult:
    """Run one scenario with ``clients`` closed-loop clients over ``procs`` processes, after
    waiting (at most ``idle_wait`` s) for the machine to be quiet."""
    idle_before = wait_for_quiet(idle_wait) if idle_wait > 0 else None
    ctx = mp.get_context("fork")
    go = ctx.Event()
    times = ctx.Array("d", 2)
    ready_q, result_q = ctx.Queue(), ctx.Queue()
    procs = max(1, min(procs, clients))
    shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    workers = [ctx.Process(target=client_process, daemon=True,
                           args=(server.port, scenario, share, 1000 * i, timeout, go, times,
                                 ready_q, result_q))
               for i, share in enumerate(shares)]
    try:
        for w in workers:
            w.start()
        for _ in workers:
            ready_q.get(timeout=timeout + 120)
        now = time.monotonic()
        times[0] = now + warmup
        times[1] = now + warmup + duration
        go.set()
        time.sleep(max(0.0, times[0] - time.monotonic()))
        srv0, mach0 = server.cpu_seconds(), machine_cpu()
        time.sleep(max(0.0, times[1] - time.monotonic()))
        srv1, mach1 = server.cpu_seconds(), machine_cpu()
        parts = [result_q.get(timeout=timeout + 60) for _ in workers]
        for w in workers:
            w.join(timeout=10)
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
                w.join(timeout=5)

    t_start, t_end = times[0], times[1]
    records = [r for p in parts for r in p["records"]]
    counted = [r for r in records if t_start <= r[1] <= t_end]
    ok = np.array([(e - s) * 1000.0 for s, e, st in counted if st == 200], dtype=np.float64)
    bad = [st for _, _, st in counted if st != 200]
    warm_bad = sum(1 for _, e, st in records if e < t_start and st != 200)
    samples = [e for p in parts for e in p["errors"]][:5]
    first_errors = sum(1 for p in parts for e in p["errors"] if e.startswith("first request"))
    kinds = Counter("timeout" if st == -1 else "exception" if st == 0 else f"HTTP {st}"
                    for st in bad)

    def pct(q: float) -> float | None:
        return round(float(np.percentile(ok, q)), 3) if len(ok) else None

    span = t_end - t_start
    srv_cpu = (srv1 - srv0) if srv0 is not None and srv1 is not None else None
    busy = busy_cores_pct(mach0, mach1)
    client_cpu = 100.0 * sum(p["cpu_s"] for p in parts) / span
    server_cpu = 100.0 * srv_cpu / span if srv_cpu is not None else None
    other = (busy - client_cpu - server_cpu
             if busy is not None and server_cpu is not None else None)
    return CellResult(
        workers=server.workers, scenario=scenario.name, clients=clients, client_procs=procs,
        duration_s=round(span, 3), requests=len(ok), errors=len(bad),
        rps=round(len(ok) / span, 2), windows_per_s=round(len(ok) * scenario.items / span, 1),
        p50_ms=pct(50), p95_ms=pct(95), p99_ms=pct(99),
        mean_ms=round(float(ok.mean()), 3) if len(ok) else None,
        max_ms=round(float(ok.max()), 3) if len(ok) else None,
        errors_warmup=warm_bad + first_errors, error_kinds=dict(kinds), error_samples=samples,
        server_cpu_pct=round(server_cpu, 1) if server_cpu is not None else None,
        server_cpu_ms_per_request=(round(1000.0 * srv_cpu / len(ok), 3)
                                   if srv_cpu is not None and len(ok) else None),
        client_cpu_pct=round(client_cpu, 1),
        machine_busy_pct=round(busy, 1) if busy is not None else None,
        other_cpu_pct=round(max(0.0, other), 1) if other is not None else None,
        idle_before_pct=idle_before)


def build_scenarios(models: dict[str, Any], series: str, batch_items: int) -> list[Scenario]:
    """The single-window and batch scenarios, from real values of the served series."""
    infos = [s for s in models["series"] if s.get("channels", 1) == 1]
    by_id = {s["series"]: s for s in infos}
    if series not in by_id:
        raise SystemExit(f"series {series!r} is not served; known: {', '.join(sorted(by_id))}")
    window = int(by_id[series]["window"])
    single = [json.dumps({"items": [{"series": series, "values": w}]}).encode()
              for w in windows_of(read_values(series), window, BODY_VARIANTS)]
    per_series = {s["series"]: windows_of(read_values(s["series"]), int(s["window"]), 8)
                  for s in infos}
    ids = [s["series"] for s in infos]
    batches = []
    for b in range(BODY_VARIANTS // 8):
        items = []
        for i in range(batch_items):
            k = b * batch_items + i
            sid = ids[k % len(ids)]
            items.append({"series": sid, "values": per_series[sid][(k // len(ids)) % 8]})
        batches.append(json.dumps({"items": items}).encode())
    windows = {int(s["window"]) for s in infos}
    if len(windows) != 1:
        raise SystemExit(f"served series have different windows {sorted(windows)}")
    return [Scenario(SINGLE, single, 1, window),
            Scenario(BATCH.format(n=batch_items), batches, batch_items, window)]


# ---------------------------------------------------------------- the batching study
def batching_study(package_path: Path, series: str, repeats: int) -> dict[str, Any]:
    """Median time of ``InferenceSession.run`` for batch sizes 1, 8, 32, 100 of real windows of
    ``series``, normalised with its scaler, with the service's session options."""
    import onnxruntime as ort

    spec = json.loads((package_path / "detector.json").read_text())
    s = spec["series"][series]
    window = int(s["window"])
    mean = np.asarray(s["scaler"]["mean"], dtype=np.float64)
    std = np.asarray(s["scaler"]["std"], dtype=np.float64)
    values = (read_values(series)[:, None] - mean) / std
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(package_path / s["onnx"]), opts,
                                   providers=["CPUExecutionProvider"])
    rows = []
    for n in BATCH_SIZES:
        idx = np.arange(n)[:, None] * 7 % (len(values) - window) + np.arange(window)[None, :]
        x = np.ascontiguousarray(values[idx], dtype=np.float64)  # [n, window, 1]
        for _ in range(5):
            session.run(["recon"], {"x": x})
        t0 = time.perf_counter()
        session.run(["recon"], {"x": x})
        once = time.perf_counter() - t0
        loops = max(1, int(0.1 / max(once, 1e-6)))  # about 0.1 s per repeat
        per_call = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(loops):
                session.run(["recon"], {"x": x})
            per_call.append((time.perf_counter() - t0) / loops)
        med = float(np.median(per_call))
        rows.append({"batch": n, "ms_per_call": round(med * 1000, 4),
                     "ms_per_window": round(med * 1000 / n, 4),
                     "windows_per_s": round(n / med, 1), "repeats": repeats,
                     "calls_per_repeat": loops})
    return {"onnx": s["onnx"], "series": series, "window": window, "ort_threads": 1,
            "input": "x float64 [N, window, 1]", "output": "recon", "rows": rows,
            "nodes_per_run": nodes_per_run(package_path / s["onnx"], opts, window)}


def nodes_per_run(onnx_path: Path, opts: Any, window: int) -> int | None:
    """How many graph nodes one ``run`` executes (onnxruntime's profiler, one run)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="rnnad-ort-prof-") as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "prof")
        try:
            session = ort.InferenceSession(str(onnx_path), opts,
                                           providers=["CPUExecutionProvider"])
            session.run(["recon"], {"x": np.zeros((1, window, 1), dtype=np.float64)})
            events = json.loads(Path(session.end_profiling()).read_text())
        except (OSError, ValueError):
            return None
        finally:
            opts.enable_profiling = False
    return sum(1 for e in events
               if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"))


def batching_conclusion(study: dict[str, Any], cells: list[CellResult],
                        batch_items: int) -> dict[str, Any]:
    """Compare model compute with the measured request cost; the most batching could give."""
    rows = {r["batch"]: r for r in study["rows"]}
    t1 = rows[1]["ms_per_call"]
    best = min(study["rows"], key=lambda r: r["ms_per_window"])
    one = [c for c in cells if c.workers == 1]

    def cell(scenario: str, clients: int) -> CellResult | None:
        return next((c for c in one if c.scenario == scenario and c.clients == clients), None)

    single_c1 = cell(SINGLE, 1)
    loaded = [c for c in one if c.scenario == SINGLE and c.server_cpu_ms_per_request]
    busiest = max(loaded, key=lambda c: c.clients) if loaded else None
    out: dict[str, Any] = {"model_ms_batch1": t1, "best_batch": best["batch"],
                           "best_ms_per_window": best["ms_per_window"],
                           "speedup_per_window_best_vs_1": round(t1 / best["ms_per_window"], 2)}
    if single_c1 and single_c1.p50_ms:
        out["e2e_p50_ms_single_c1"] = single_c1.p50_ms
        out["model_fraction_of_e2e_p50"] = round(t1 / single_c1.p50_ms, 4)
    if busiest and busiest.server_cpu_ms_per_request:
        cpu = busiest.server_cpu_ms_per_request
        saved = t1 - best["ms_per_window"]
        out["server_cpu_ms_per_request"] = cpu
        out["server_cpu_measured_at_clients"] = busiest.clients
        out["model_fraction_of_server_cpu"] = round(t1 / cpu, 4)
        # perfect batching removes (t1 - best per window) of CPU from every request and nothing
        # else; when the server is CPU-bound, throughput scales with 1 / CPU per request
        out["max_throughput_gain_ideal_batching"] = (
            round(cpu / (cpu - saved), 3) if cpu - saved > 0.05 * cpu else None)
    batch_c1 = cell(BATCH.format(n=batch_items), 1)
    if batch_c1 and batch_c1.p50_ms:
        out["e2e_p50_ms_batch_c1"] = batch_c1.p50_ms
        out["model_fraction_of_batch_request"] = round(batch_items * t1 / batch_c1.p50_ms, 4)
    return out


# ---------------------------------------------------------------- the report
def fmt(v: float | None, digits: int = 1) -> str:
    """A number for the Markdown table ('-' if missing)."""
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def results_table(cells: list[CellResult]) -> list[str]:
    """The Markdown table of some cells."""
    lines = ["| scenario | clients | req/s | p50 ms | p95 ms | p99 ms | errors | windows/s "
             "| server CPU % | client CPU % | other CPU % |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cells:
        lines.append(f"| {c.scenario} | {c.clients} | {fmt(c.rps)} | {fmt(c.p50_ms)} "
                     f"| {fmt(c.p95_ms)} | {fmt(c.p99_ms)} | {c.errors} "
                     f"| {fmt(c.windows_per_s, 0)} | {fmt(c.server_cpu_pct, 0)} "
                     f"| {fmt(c.client_cpu_pct, 0)} | {fmt(c.other_cpu_pct, 0)} |")
    return lines


def target_line(cells: list[CellResult]) -> tuple[str, dict[str, Any]]:
    """The p99 target check on the 1-worker server."""
    c = next((c for c in cells if c.workers == 1 and c.scenario == SINGLE
              and c.clients == TARGET_CLIENTS), None)
    text = (f"p99 under {TARGET_P99_MS:.0f} ms for a single window at {TARGET_CLIENTS} "
            "concurrent clients: ")
    if c is None or c.p99_ms is None:
        return text + "not measured", {"measured": False}
    met = c.p99_ms < TARGET_P99_MS and c.errors == 0
    text += f"{'met' if met else 'not met'} ({c.p99_ms:.1f} ms"
    text += f", {c.errors} errors)" if c.errors else ")"
    return text, {"measured": True, "met": met, "p99_ms": c.p99_ms, "errors": c.errors,
                  "limit_ms": TARGET_P99_MS, "clients": TARGET_CLIENTS, "workers": 1}


def markdown(report: dict[str, Any], cells: list[CellResult]) -> str:
    """The Markdown report."""
    env, cfg = report["environment"], report["config"]
    lines = ["# rnnad service load test", "",
             f"{report['created_utc']} · model `{cfg['model_tag']}` · "
             f"{env['cpu_count']} CPUs (affinity {env['cpu_affinity']}) · "
             f"BentoML {env['bentoml']} · onnxruntime {env['onnxruntime']} · "
             f"Python {env['python']} · RNNAD_ORT_THREADS=1", "",
             f"Load generator: {report['load_generator']}", ""]
    by_workers: dict[int, list[CellResult]] = {}
    for c in cells:
        by_workers.setdefault(c.workers, []).append(c)
    for workers, group in sorted(by_workers.items()):
        srv = next(s for s in report["servers"] if s["workers"] == workers)
        how = ("`bentoml serve rnnad.service:Detector` as in the README" if workers == 1 else
               f"the same with `BENTOML_CONFIG_OVERRIDES="
               f"{{\"services\": {{\"{SERVICE_NAME}\": {{\"workers\": {workers}}}}}}}`")
        lines += [f"## {workers} worker{'s' if workers > 1 else ''}", "",
                  f"Server: {how}; ready in {srv['startup_s']:.1f} s; worker ids that served "
                  f"requests: {', '.join(srv['worker_ids_seen']) or '-'}.", ""]
        lines += results_table(group)
        lines.append("")
        if workers == 1:
            lines += [report["target"]["text"], ""]
    lines += ["Latency percentiles are numpy percentiles over the successful requests that "
              f"completed in the {cfg['duration_s']:g} s window after a {cfg['warmup_s']:g} s "
              "warm-up; errors are non-200 answers, exceptions and timeouts "
              f"({cfg['timeout_s']:g} s). CPU % is CPU time over the window (100 = one core; "
              f"{env['cpu_count']} cores in all): server = the bentoml processes, client = "
              "the load generator, other = the rest of the machine (other jobs).", ""]
    noisy = [c for c in cells if (c.other_cpu_pct or 0.0) > 15.0]
    if noisy:
        worst = max(noisy, key=lambda c: c.other_cpu_pct or 0.0)
        lines += [f"**Caution:** other processes on the machine used CPU during {len(noisy)} "
                  f"of {len(cells)} cells (up to {worst.other_cpu_pct:.0f} % of a core, "
                  f"{worst.workers} worker(s), {worst.scenario} × {worst.clients}); those "
                  "cells understate what the service does on a quiet machine.", ""]
    ws = report.get("workers_study")
    if ws:
        lines += ["## Two workers", "", ws["text"], ""]
    bs = report.get("batching_study")
    if bs:
        lines += ["## Would adaptive batching help?", "",
                  f"`InferenceSession.run` in process on `{bs['onnx']}` (one intra-op thread, "
                  "as the service), real windows, median of "
                  f"{bs['rows'][0]['repeats']} repeats:", "",
                  "| batch | ms per call | ms per window | windows/s |", "|---:|---:|---:|---:|"]
        for r in bs["rows"]:
            lines.append(f"| {r['batch']} | {r['ms_per_call']:.3f} | {r['ms_per_window']:.4f} "
                         f"| {r['windows_per_s']:.0f} |")
        lines += ["", bs["text"], ""]
    lines += ["Rerun:", "", "```sh", report["command"], "```", ""]
    return "\n".join(lines)


def workers_text(cells: list[CellResult], servers: list[dict[str, Any]]) -> dict[str, Any]:
    """Throughput with 2 workers against 1, per cell."""
    one = {(c.scenario, c.clients): c for c in cells if c.workers == 1}
    two = {(c.scenario, c.clients): c for c in cells if c.workers == 2}
    pairs = []
    for key, c2 in two.items():
        c1 = one.get(key)
        if c1 and c1.rps:
            pairs.append({"scenario": key[0], "clients": key[1], "rps_1": c1.rps,
                          "rps_2": c2.rps, "ratio": round(c2.rps / c1.rps, 3),
                          "p99_1": c1.p99_ms, "p99_2": c2.p99_ms})
    srv2 = next((s for s in servers if s["workers"] == 2), None)
    seen = srv2["worker_ids_seen"] if srv2 else []
    parts = [f"{p['scenario']} × {p['clients']}: {p['rps_1']:.0f} → {p['rps_2']:.0f} req/s "
             f"(×{p['ratio']:.2f}; p99 {fmt(p['p99_1'])} → {fmt(p['p99_2'])} ms)"
             for p in pairs]
    text = (f"Set without editing the service: `BENTOML_CONFIG_OVERRIDES` (the JSON form; "
            f"`BENTOML_CONFIG_OPTIONS=services.{SERVICE_NAME}.workers=2` is the deprecated "
            f"form) sets `services.{SERVICE_NAME}.workers`, which BentoML 1.4 reads when it "
            f"starts the service's worker processes. Worker ids that served requests: "
            f"{', '.join(seen) or 'none'}. " + "; ".join(parts) + ".")
    if pairs:
        hi = [p for p in pairs if p["clients"] > 1]
        if hi:
            gain = max(p["ratio"] for p in hi)
            text += (f" Best gain at more than one client: ×{gain:.2f}. The machine has "
                     f"{os.cpu_count()} cores shared by the server and the load generator, "
                     "so a second worker can add at most about one core of server CPU.")
    return {"pairs": pairs, "worker_ids_seen": seen, "text": text}


def study_text(bs: dict[str, Any], conc: dict[str, Any]) -> str:
    """The batching study's conclusion in words, from the numbers."""
    nodes = bs.get("nodes_per_run")
    t = [f"One run executes {nodes} graph nodes (the exported recurrent model is unrolled over "
         "the window): each call pays a large fixed per-node dispatch cost, which a larger batch "
         "shares among its windows." if nodes else "",
         f"One window costs {conc['model_ms_batch1']:.3f} ms of model compute at batch 1 and "
         f"{conc['best_ms_per_window']:.4f} ms per window at batch {conc['best_batch']} "
         f"(×{conc['speedup_per_window_best_vs_1']:.1f} cheaper per window)."]
    if "model_fraction_of_e2e_p50" in conc:
        t.append(f"A single-window request takes {conc['e2e_p50_ms_single_c1']:.2f} ms end to "
                 f"end (p50, one client): model compute is "
                 f"{100 * conc['model_fraction_of_e2e_p50']:.1f} % of it.")
    if "model_fraction_of_server_cpu" in conc:
        t.append(f"Under load ({conc['server_cpu_measured_at_clients']} clients) the server "
                 f"spends {conc['server_cpu_ms_per_request']:.2f} ms of CPU per single-window "
                 f"request; model compute is {100 * conc['model_fraction_of_server_cpu']:.1f} % "
                 "of that. Even ideal batching (every window computed at the best batch "
                 "size's cost, with no dispatch overhead) would cut only that part, so the "
                 "throughput of a CPU-bound server could rise by at most "
                 + (f"×{conc['max_throughput_gain_ideal_batching']:.2f}."
                    if conc["max_throughput_gain_ideal_batching"] else
                    "an amount these noisy numbers cannot bound (model time ≥ CPU time)."))
    if "model_fraction_of_batch_request" in conc:
        t.append(f"In a 100-series request (p50 {conc['e2e_p50_ms_batch_c1']:.1f} ms, one "
                 f"client) model compute at batch 1 is "
                 f"{100 * conc['model_fraction_of_batch_request']:.1f} % of the time; its "
                 "items belong to different series, i.e. different ONNX models, which cannot "
                 "share a batch.")
    frac = conc.get("model_fraction_of_server_cpu", conc.get("model_fraction_of_e2e_p50"))
    if frac is not None:
        if frac < 0.25:
            t.append("Verdict: model compute is a small fraction of a request's cost (HTTP, "
                     "JSON, pydantic validation and BentoML's per-request work dominate), so "
                     "adaptive batching across requests cannot raise throughput much; it would "
                     "also add queueing delay and only batch requests of the same series "
                     "(one ONNX model per series).")
        else:
            t.append("Verdict: model compute is a sizeable part of a request's cost, so "
                     "batching requests of the same series could raise throughput by up to "
                     "the bound above.")
    if (bs.get("other_cpu_pct") or 0.0) > 15.0:
        t.append(f"(Other processes used {bs['other_cpu_pct']:.0f} % of a core during the "
                 "study; the timings may be high.)")
    return " ".join(x for x in t if x)


# ---------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per cell")
    p.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds per cell")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32],
                   help="concurrent closed-loop clients")
    p.add_argument("--model", default="rnnad_nab:latest", help="BentoML model tag to serve")
    p.add_argument("--out", type=Path, default=REPO / "reports" / "loadtest.json",
                   help="JSON report; the Markdown goes beside it (.md)")
    p.add_argument("--series", default="realKnownCause/nyc_taxi",
                   help="series of the single-window scenario")
    p.add_argument("--batch-items", type=int, default=100, help="items per batch request")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                   help="BentoML worker counts to serve with (1 = the README's serve)")
    p.add_argument("--client-procs", type=int, default=0,
                   help="load-generator processes (0: one per CPU, at most one per client)")
    p.add_argument("--timeout", type=float, default=30.0, help="request timeout, seconds")
    p.add_argument("--ready-timeout", type=float, default=180.0,
                   help="seconds to wait for GET /readyz")
    p.add_argument("--repeats", type=int, default=7, help="repeats per batch size (study)")
    p.add_argument("--idle-wait", type=float, default=30.0,
                   help="before each cell, wait at most this long for the machine to be quiet "
                   "(under 25 %% of a core over 1 s); 0: do not wait")
    p.add_argument("--no-batching-study", dest="batching_study", action="store_false",
                   help="skip the in-process onnxruntime batching study")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0 or min(args.concurrency) < 1 or \
            min(args.workers) < 1 or args.batch_items < 1:
        p.error("durations must be positive, concurrency, workers and batch items at least 1")
    return args


def command_line(args: argparse.Namespace) -> str:
    """The command that reruns this test with the same options."""
    out = args.out.resolve()
    with contextlib.suppress(ValueError):
        out = out.relative_to(REPO)
    parts = [".venv/bin/python", "benchmarks/loadtest.py", "--duration", f"{args.duration:g}",
             "--warmup", f"{args.warmup:g}", "--concurrency", *map(str, args.concurrency),
             "--model", args.model, "--workers", *map(str, args.workers), "--out", str(out)]
    if args.series != "realKnownCause/nyc_taxi":
        parts += ["--series", args.series]
    if args.batch_items != 100:
        parts += ["--batch-items", str(args.batch_items)]
    if args.client_procs:
        parts += ["--client-procs", str(args.client_procs)]
    if args.idle_wait != 30.0:
        parts += ["--idle-wait", f"{args.idle_wait:g}"]
    if not args.batching_study:
        parts.append("--no-batching-study")
    return " ".join(parts)


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM/SIGHUP: unwind like Ctrl-C so the server is killed."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the load test and write the reports."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    cpus = os.cpu_count() or 1
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    procs_default = args.client_procs or affinity
    model = resolve_model(args.model)
    print(f"model {args.model} -> {model['tag']} ({model['path']}); {cpus} CPUs", flush=True)
    started = datetime.now(UTC)
    cells: list[CellResult] = []
    servers: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rnnad-loadtest-") as tmp:
        for workers in args.workers:
            print(f"starting bentoml serve with {workers} worker(s) ...", flush=True)
            server = start_server(model["tag"], workers, Path(tmp), args.ready_timeout)
            try:
                served = server.info.get("model_tag")
                if served != model["tag"]:
                    raise RuntimeError(f"server serves {served}, expected {model['tag']}")
                print(f"  ready in {server.startup_s:.1f} s on port {server.port}", flush=True)
                scenarios = build_scenarios(server.info, args.series, args.batch_items)
                for scenario in scenarios:
                    for clients in args.concurrency:
                        cell = run_cell(server, scenario, clients, procs_default, args.warmup,
                                        args.duration, args.timeout, args.idle_wait)
                        cells.append(cell)
                        print(f"  {workers}w {scenario.name:>20} × {clients:>3}: "
                              f"{cell.rps:8.1f} req/s  p50 {fmt(cell.p50_ms)}  "
                              f"p95 {fmt(cell.p95_ms)}  p99 {fmt(cell.p99_ms)} ms  "
                              f"errors {cell.errors}  CPU % server {fmt(cell.server_cpu_pct, 0)} "
                              f"client {fmt(cell.client_cpu_pct, 0)} "
                              f"other {fmt(cell.other_cpu_pct, 0)}", flush=True)
                pids = server.members()
                servers.append({"workers": workers, "port": server.port,
                                "startup_s": round(server.startup_s, 2),
                                "model_tag": served, "processes": len(pids),
                                "worker_ids_seen": server.worker_ids(),
                                "git_revision": server.info.get("git_revision"),
                                "series_served": len(server.info.get("series", []))})
            finally:
                server.stop()
        window = int(next(iter(server.info["series"]))["window"])

    report: dict[str, Any] = {
        "schema": 1,
        "created_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command_line(args),
        "config": {"model": args.model, "model_tag": model["tag"],
                   "model_created": model.get("created"), "duration_s": args.duration,
                   "warmup_s": args.warmup, "concurrency": args.concurrency,
                   "workers": args.workers, "series": args.series, "window": window,
                   "batch_items": args.batch_items, "timeout_s": args.timeout,
                   "client_procs": procs_default, "ort_threads": 1,
                   "idle_wait_s": args.idle_wait},
        "environment": {"cpu_count": cpus, "cpu_affinity": affinity,
                        "platform": platform.platform(), "python": platform.python_version(),
                        "bentoml": package_version("bentoml"),
                        "onnxruntime": package_version("onnxruntime"),
                        "numpy": package_version("numpy"),
                        "loadavg_at_end": list(os.getloadavg())},
        "load_generator": (
            "this script on the same machine: closed-loop clients (send, wait for the answer, "
            "send again), each a thread with its own keep-alive http.client connection, spread "
            f"over min(clients, {procs_default}) forked processes; request bodies are "
            "pre-serialised, answers are read in full and checked for status 200 (the first "
            f"answer of each client is also parsed and checked). It shares the {cpus} cores "
            "with the server, so its CPU (client CPU %) is taken from the server's."),
        "servers": servers,
        "results": [asdict(c) for c in cells],
    }
    text, target = target_line(cells)
    report["target"] = dict(target, text=text)
    if 2 in args.workers and 1 in args.workers:
        report["workers_study"] = workers_text(cells, servers)
    if args.batching_study:
        print("batching study (in-process onnxruntime) ...", flush=True)
        idle = wait_for_quiet(args.idle_wait) if args.idle_wait > 0 else None
        mach0, cpu0, t0 = machine_cpu(), time.process_time(), time.monotonic()
        bs = batching_study(Path(model["path"]), args.series, args.repeats)
        mach1, cpu1, t1 = machine_cpu(), time.process_time(), time.monotonic()
        busy = busy_cores_pct(mach0, mach1)
        bs["idle_before_pct"] = idle
        bs["other_cpu_pct"] = (round(max(0.0, busy - 100.0 * (cpu1 - cpu0) / (t1 - t0)), 1)
                               if busy is not None else None)
        conc = batching_conclusion(bs, cells, args.batch_items)
        bs.update(conclusion=conc, text=study_text(bs, conc))
        report["batching_study"] = bs
    out = args.out if args.out.is_absolute() else Path.cwd() / args.out
    md = markdown(report, cells)
    atomic_write(out, json.dumps(report, indent=2) + "\n")
    atomic_write(out.with_suffix(".md"), md)
    print()
    print(md)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
