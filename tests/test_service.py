"""The BentoML service: request validation, the detector package it loads, and (integration)
real ``bentoml serve`` processes, from source and from a built Bento, on a private BENTOML_HOME."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from conftest import mirror_path
from pydantic import ValidationError

from rnnad import export
from rnnad.config import ModelParams
from rnnad.models.encdec import build_model
from rnnad.models.encdec import reconstructor as torch_reconstructor
from rnnad.scoring import score_points
from rnnad.split import Scaler

REPO = Path(__file__).resolve().parents[1]
SHARED_NAB = mirror_path() / "nab"  # $RNNAD_DATA_MIRROR, else ../shared/datasets
MAX_VALUES = 1000  # RNNAD_MAX_VALUES for the test servers
pytestmark = [  # raised inside bentoml 1.4.40 itself, on import and on building API models
    pytest.mark.filterwarnings("ignore:GitWildMatchPattern:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The `__get_pydantic_core_schema__`"),
]


# ---------------------------------------------------------------- helpers
def nab_values(series_id: str) -> np.ndarray:
    path = SHARED_NAB / "data" / f"{series_id}.csv"
    if not path.is_file():
        pytest.skip(f"NAB data not found at {path}")
    with path.open() as fh:
        return np.array([float(row["value"]) for row in csv.DictReader(fh)])


def make_package(directory: Path, specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Export one random-init model per series into ``directory`` with ``detector.json``, as the
    package stage does; returns {series: (model, scaler, window, threshold)}."""
    directory.mkdir(parents=True, exist_ok=True)
    entries, made = {}, {}
    for k, (sid, s) in enumerate(specs.items()):
        torch.manual_seed(k)
        params = ModelParams(cell=s["cell"], hidden=8, layers=s["layers"])
        train = s["train"] if s["train"].ndim == 2 else s["train"][:, None]
        channels = train.shape[1]
        model = build_model(channels, params, s.get("targets")).eval()
        scaler = Scaler.fit(train)
        onnx_path = directory / f"s{k}.onnx"
        x = scaler.transform(train)
        windows = export.parity_windows(x, len(x) // 2, s["window"], 64)
        export.export_checked(sid, model, onnx_path, windows, 1e-5)
        threshold = s.get("threshold", 1.0)
        if "probe" in s:  # the median score of the probe values: some flags on, some off
            probe = s["probe"] if s["probe"].ndim == 2 else s["probe"][:, None]
            scores = score_points(scaler.transform(probe), s["window"],
                                  torch_reconstructor(model), targets=model.targets,
                                  error_scale=s.get("error_scale"))
            threshold = float(np.nanmedian(scores))
        entries[sid] = export.series_entry(
            onnx_path, window=s["window"], channels=channels, scaler=scaler.to_dict(),
            threshold=threshold, reduce="mean", data_sha256="ab" * 32,
            model=params.model_dump(), params={"model": params.model_dump()},
            channel_names=s.get("names"), targets=list(model.targets),
            error_scale=s.get("error_scale"))
        made[sid] = (model, scaler, s["window"], threshold)
    export.write_detector(directory, entries, "test-revision", "mean")
    return made


def save_in_store(package: Path, home: Path, name: str = "rnnad_test") -> str:
    """rnnad.export.save_detector (what the package stage calls), in a process whose
    BENTOML_HOME is ``home``."""
    code = ("import sys\nfrom pathlib import Path\nfrom rnnad.export import save_detector\n"
            "print(save_detector(Path(sys.argv[1]), sys.argv[2], {'test': True}))")
    proc = subprocess.run([sys.executable, "-c", code, str(package), name],
                          env=server_env(home), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def server_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RNNAD_")}
    return {**env, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True",
            "RNNAD_MAX_VALUES": str(MAX_VALUES), **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, path: str, body: Any = None, raw: bytes | None = None,
         method: str = "POST") -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextlib.contextmanager
def bentoml_serve(target: str, env: dict[str, str], cwd: Path, log: Path,
                  timeout_s: float = 60.0) -> Iterator[str]:
    """``bentoml serve TARGET`` on a free loopback port; yields its URL once /readyz answers;
    always stops the server's process group."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", target, "--host",
                                 "127.0.0.1", "--port", str(port)], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"bentoml serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(url + "/readyz", timeout=2).status == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"bentoml serve not ready in {timeout_s:.0f} s:\n"
                            f"{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# ---------------------------------------------------------------- without a server
def test_service_imports_no_torch_and_the_bento_holds_all_it_imports() -> None:
    import pathspec

    code = ("import json, sys\nimport rnnad.service\n"
            "files = [m.__file__ for n, m in sys.modules.items()"
            " if n.startswith('rnnad.') and getattr(m, '__file__', None)]\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'files': files}))")
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not found["torch"], "rnnad.service imports torch"
    bentofile = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    include = pathspec.PathSpec.from_lines("gitignore", bentofile["include"])
    rel = [Path(f).resolve().relative_to(REPO).as_posix() for f in found["files"]]
    assert "src/rnnad/service.py" in rel
    missing = [f for f in rel if not include.match_file(f)]
    assert not missing, f"bentofile.yaml does not include modules the service imports: {missing}"


def test_bentofile_is_offline_and_pinned_as_the_lock() -> None:
    bentofile = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    assert bentofile["service"] == "rnnad.service:Detector"
    assert bentofile["python"]["lock_packages"] is False
    assert bentofile["python"]["is_src_layout"] is True
    lock = dict(line.strip().split("==", 1) for line in (REPO / "requirements.lock").open()
                if "==" in line and not line.startswith("#"))
    lock = {k.lower(): v for k, v in lock.items()}
    pins = dict(p.split("==", 1) for p in bentofile["python"]["packages"])
    assert {"numpy", "onnxruntime", "pydantic"} <= {k.lower() for k in pins}
    for name, version in pins.items():
        assert lock.get(name.lower()) == version, f"{name}=={version} vs requirements.lock"
    assert not any(k.lower().startswith("torch") for k in pins)


def test_detect_request_validation() -> None:
    from rnnad.service import DetectRequest

    ok = DetectRequest.model_validate_json(
        '{"items": [{"series": "a/b", "values": [1, 2.5], "timestamps": ["2020-01-01T00:00:00",'
        ' "2020-01-01 00:05"]}, {"series": "a/c", "values": [3]}]}')
    assert ok.items[0].values == [1.0, 2.5] and len(ok.items[0].timestamps) == 2
    assert ok.items[1].timestamps is None
    bad = {
        '{"series": "a/b", "values": [1, NaN]}': ("items", 0, "values"),
        '{"series": "a/b", "values": [1, Infinity]}': ("items", 0, "values"),
        '{"series": "a/b", "values": ["1"]}': ("items", 0, "values"),
        '{"series": "a/b", "values": [true]}': ("items", 0, "values"),
        '{"series": "a/b", "values": []}': ("items", 0, "values"),
        '{"series": 3, "values": [1]}': ("items", 0, "series"),
        '{"series": "a/b", "values": [1], "extra": 1}': ("items", 0, "extra"),
        '{"series": "a/b", "values": [1, 2], "timestamps": ["2020-01-01"]}':
            ("items", 0, "timestamps"),
        '{"series": "a/b", "values": [1, 2], "timestamps": ["2020-01-02", "2020-01-01"]}':
            ("items", 0, "timestamps"),
        '{"series": "a/b", "values": [1, 2], "timestamps": ["2020-01-01T00:00:00Z",'
        ' "2020-01-01T01:00:00"]}': ("items", 0, "timestamps"),
        '{"series": "a/b", "values": [1], "timestamps": ["yesterday"]}':
            ("items", 0, "timestamps"),
    }
    for item, loc in bad.items():
        with pytest.raises(ValidationError) as info:
            DetectRequest.model_validate_json('{"items": [' + item + "]}")
        assert loc in {tuple(e["loc"][:3]) for e in info.value.errors()}, item
    for body in ('{"items": []}', '{"series": "a/b", "values": [1]}', '{"items": {}}'):
        with pytest.raises(ValidationError):
            DetectRequest.model_validate_json(body)


def test_load_package_scores_like_torch_and_refuses_altered_files(tmp_path: Path) -> None:
    from rnnad.service import load_package

    rng = np.random.default_rng(0)
    train = np.sin(np.arange(300) / 4.0) * 5 + 20 + rng.normal(0, 0.2, 300)
    made = make_package(tmp_path, {"x/one": {"cell": "gru", "layers": 2, "window": 10,
                                             "train": train}})
    revision, detectors = load_package(tmp_path)
    assert revision == "test-revision" and list(detectors) == ["x/one"]
    model, scaler, window, _ = made["x/one"]
    values = train[:, None] + rng.normal(0, 1.0, (300, 1))
    got, per_channel = detectors["x/one"].scores(values)
    assert per_channel.shape == (300, 1)
    want = score_points(scaler.transform(values), window, torch_reconstructor(model))
    assert np.isnan(got[: window - 1]).all() and np.isfinite(got[window - 1 :]).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    with (tmp_path / "s0.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(RuntimeError, match="sha256"):
        load_package(tmp_path)


def machine_values(n: int, seed: int, fault: bool = False) -> np.ndarray:
    """Three channels: two phase-shifted sines and their sum; with ``fault`` the third breaks
    away from the others in the last 30 points."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 5.0
    x = np.stack([np.sin(t), np.cos(t), np.sin(t) + np.cos(t)], axis=1)
    x = x + rng.normal(0, 0.05, x.shape)
    if fault:
        x[-30:, 2] += 6.0
    return x


def machine_spec() -> dict[str, Any]:
    """A multivariate model reading 3 channels and reconstructing channels 0 and 2, with very
    different error scales."""
    return {"cell": "lstm", "layers": 1, "window": 12, "train": machine_values(400, 0),
            "targets": (0, 2), "names": ["inlet", "outlet", "sum"],
            "error_scale": [0.5, 2.0], "probe": machine_values(120, 1, fault=True)}


def test_multivariate_package_scores_like_torch_and_names_channels(tmp_path: Path) -> None:
    from rnnad.service import load_package

    spec = machine_spec()
    made = make_package(tmp_path, {MACHINE: spec})
    _, detectors = load_package(tmp_path)
    d = detectors[MACHINE]
    assert d.info.channels == 3 and d.info.targets == [0, 2]
    assert d.info.channel_names == ["inlet", "outlet", "sum"]
    model, scaler, window, threshold = made[MACHINE]
    got, per_channel = d.scores(spec["probe"])
    want = score_points(scaler.transform(spec["probe"]), window, torch_reconstructor(model),
                        targets=(0, 2), error_scale=spec["error_scale"])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # the score is the mean of the scaled channel errors (reduce=mean)
    np.testing.assert_allclose(per_channel[window - 1 :].mean(axis=1), got[window - 1 :],
                               rtol=1e-9)
    flags = np.nan_to_num(got, nan=-np.inf) > threshold
    assert flags.any()
    top = d.contributions(flags, per_channel)
    assert [c.index for c in top] == np.flatnonzero(flags).tolist()
    for c in top:
        assert {s.channel for s in c.channels} <= {"inlet", "sum"}  # targets only
        assert abs(sum(s.share for s in c.channels) - 1.0) < 1e-5
        assert c.channels[0].share >= c.channels[-1].share


# ---------------------------------------------------------------- real servers
TAXI = "realKnownCause/nyc_taxi"
SPEED = "realTraffic/speed_7578"
MACHINE = "machine/m1"


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    taxi, speed = nab_values(TAXI), nab_values(SPEED)
    root = tmp_path_factory.mktemp("service")
    home = root / "bentoml"
    probe = taxi[-200:]
    made = make_package(root / "package", {
        TAXI: {"cell": "lstm", "layers": 2, "window": 16, "train": taxi[:1000], "probe": probe},
        SPEED: {"cell": "gru", "layers": 1, "window": 8, "train": speed[:500]},
        MACHINE: machine_spec(),
    })
    tag = save_in_store(root / "package", home)
    return {"root": root, "home": home, "tag": tag, "made": made, "probe": probe}


@pytest.fixture(scope="module")
def server(detector: dict[str, Any]) -> Iterator[str]:
    env = server_env(detector["home"], RNNAD_MODEL=detector["tag"], RNNAD_ORT_THREADS="1")
    with bentoml_serve("rnnad.service:Detector", env, REPO,
                       detector["root"] / "serve.log") as url:
        yield url


def detect(url: str, *items: dict[str, Any]) -> tuple[int, Any]:
    return call(url, "/detect", {"items": list(items)})


def flagged_counter(url: str) -> dict[str, float]:
    """rnnad_flagged_anomalies_total by series, from BentoML's Prometheus /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("rnnad_flagged_anomalies_total{"):
            labels, value = line.rsplit(" ", 1)
            series = labels.split('series="', 1)[1].split('"', 1)[0]
            out[series] = out.get(series, 0.0) + float(value)
    return out


@pytest.mark.integration
def test_detect_scores_match_torch_and_flags_the_threshold(server: str,
                                                           detector: dict[str, Any]) -> None:
    values = detector["probe"]
    stamps = [f"2015-01-{1 + i // 48:02d}T{(i % 48) // 2:02d}:{30 * (i % 2):02d}:00"
              for i in range(len(values))]
    before = flagged_counter(server).get(TAXI, 0.0)
    status, out = detect(server, {"series": TAXI, "values": values.tolist(),
                                  "timestamps": stamps})
    assert status == 200, out
    [res] = out["results"]
    model, scaler, window, threshold = detector["made"][TAXI]
    assert res["window"] == window == 16 and res["threshold"] == threshold
    scores = res["scores"]
    assert len(scores) == len(res["flags"]) == len(values)
    assert scores[: window - 1] == [None] * (window - 1)
    assert all(isinstance(s, float) for s in scores[window - 1 :])
    want = score_points(scaler.transform(values[:, None]), window, torch_reconstructor(model))
    np.testing.assert_allclose(np.array(scores, dtype=float), want, rtol=0, atol=1e-5)
    flags = [s is not None and s > threshold for s in scores]
    assert res["flags"] == flags and 0 < sum(flags) < len(values) - window
    assert res["anomalies"] == sum(flags) and len(res["timestamps"]) == len(values)
    # the Prometheus counter of flagged anomalies, per series
    assert flagged_counter(server).get(TAXI, 0.0) - before == sum(flags)


@pytest.mark.integration
def test_a_batch_scores_each_series_as_alone_in_request_order(server: str,
                                                               detector: dict[str, Any]) -> None:
    taxi = detector["probe"][:100].tolist()
    speed = nab_values(SPEED)[500:620].tolist()
    items = [{"series": SPEED, "values": speed}, {"series": TAXI, "values": taxi},
             {"series": SPEED, "values": speed[:40]}]
    status, out = detect(server, *items)
    assert status == 200, out
    assert [r["series"] for r in out["results"]] == [SPEED, TAXI, SPEED]
    for item, res in zip(items, out["results"], strict=True):
        status, alone = detect(server, item)
        assert status == 200 and alone["results"][0]["scores"] == res["scores"]
    # scores are causal: the first 40 points score the same alone and as part of 120
    assert out["results"][2]["scores"] == out["results"][0]["scores"][:40]


@pytest.mark.integration
def test_models_lists_the_series_by_get_and_post(server: str, detector: dict[str, Any]) -> None:
    for method in ("GET", "POST"):
        status, out = call(server, "/models", {} if method == "POST" else None, method=method)
        assert status == 200, (method, out)
        assert out["model_tag"] == detector["tag"] and out["git_revision"] == "test-revision"
        by_id = {s["series"]: s for s in out["series"]}
        assert set(by_id) == {TAXI, SPEED, MACHINE}
        assert by_id[MACHINE]["channels"] == 3 and by_id[MACHINE]["targets"] == [0, 2]
        assert by_id[SPEED]["window"] == 8 and by_id[SPEED]["channels"] == 1
        assert by_id[TAXI]["threshold"] == detector["made"][TAXI][3]
        assert by_id[TAXI]["data_sha256"] == "ab" * 32
        assert by_id[TAXI]["params"]["model"]["cell"] == "lstm"


def _item(**fields: Any) -> dict[str, Any]:
    return {"items": [{"series": TAXI, "values": [1.0] * 20, **fields}]}


@pytest.mark.integration
@pytest.mark.parametrize(("body", "status", "field"), [
    (_item(series="realKnownCause/nope"), 404, "items.0.series"),
    (_item(values=[1.0] * 15), 400, "values"),  # window 16
    (b'{"items": [{"series": "realKnownCause/nyc_taxi", "values": [1, 2, NaN]}]}', 400,
     "values"),
    (_item(values=["1.0", "x"]), 400, "values"),
    (_item(values="1,2,3"), 400, "values"),
    (_item(series=["a"]), 400, "series"),
    (_item(values=[1.0] * (MAX_VALUES + 1)), 400, "values"),
    ({"items": [{"series": TAXI, "values": [1.0] * 600}] * 2}, 400, "1200 values in all"),
    ({"items": [{"series": SPEED, "values": [1.0] * 10},
                {"series": "nope/x", "values": [1.0] * 20}]}, 404, "items.1.series"),
    (_item(timestamps=["2020-01-01T00:00:00"] * 20), 400, "timestamps"),
    (_item(timestamps=["2020-01-01T00:00:00"]), 400, "timestamps"),
    (_item(values=[1e300] * 20), 400, "values"),
    ({"items": []}, 400, "items"),
    ({"series": TAXI, "values": [1.0] * 20}, 400, "items"),
    (b"{not json", 400, ""),
])
def test_invalid_requests_get_4xx_naming_the_field(server: str, body: Any, status: int,
                                                   field: str) -> None:
    got, out = call(server, "/detect", raw=body) if isinstance(body, bytes) \
        else call(server, "/detect", body)
    assert got == status, out
    assert field in (out if isinstance(out, str) else json.dumps(out)), out
    if status == 404:
        assert TAXI in out and SPEED in out  # lists the valid ones


@pytest.mark.integration
def test_built_bento_serves_by_tag_with_the_model_it_was_built_with(
        detector: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    home, tag = detector["home"], detector["tag"]
    monkeypatch.setenv("BENTOML_HOME", str(home))  # build_bento passes its environment on
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "True")
    bento = export.build_bento(REPO, tag)
    assert bento.startswith("rnnad_detector:")
    newer = save_in_store(detector["root"] / "package", home)  # a later model version
    assert newer != tag
    with bentoml_serve(bento, server_env(home), detector["root"],
                       detector["root"] / "bento.log") as url:
        status, out = call(url, "/models", method="GET")
        assert status == 200 and out["model_tag"] == tag, out
        status, out = detect(url, {"series": SPEED, "values": [3.0] * 10})
        assert status == 200 and out["results"][0]["scores"][:7] == [None] * 7, out


@pytest.mark.integration
def test_stream_client_gives_the_batch_scores_point_by_point(server: str,
                                                             detector: dict[str, Any],
                                                             tmp_path: Path) -> None:
    from rnnad.client import StreamDetector

    values = detector["probe"][:80]
    status, out = detect(server, {"series": TAXI, "values": values.tolist()})
    assert status == 200
    batch = out["results"][0]
    with StreamDetector(server, TAXI) as stream:
        points = list(stream.feed(values.tolist()))
    assert [p.score for p in points] == batch["scores"]  # no look-ahead: same as the batch
    assert [p.flag for p in points] == batch["flags"]
    # the command line on a CSV in NAB's layout
    csv_path = tmp_path / "taxi.csv"
    rows = [f"2015-01-01 {i // 60:02d}:{i % 60:02d}:00,{float(v)!r}"
            for i, v in enumerate(values)]
    csv_path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    proc = subprocess.run([sys.executable, "-m", "rnnad.client", server, TAXI, str(csv_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "timestamp,value,score,flag" and len(lines) == len(values) + 1
    assert float(lines[-1].split(",")[2]) == pytest.approx(batch["scores"][-1], rel=1e-12)


# ---------------------------------------------------------------- fuzzing the running service
def _fuzz_bodies() -> Any:
    from hypothesis import strategies as st

    floats = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**30, 10**30)
    scalars = st.none() | st.booleans() | floats | st.text(max_size=20)
    junk = st.recursive(scalars, lambda c: st.lists(c, max_size=4)
                        | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)
    stamps = st.lists(st.datetimes().map(lambda t: t.isoformat()) | st.text(max_size=12),
                      max_size=40)
    item = st.fixed_dictionaries(
        {"series": st.sampled_from([TAXI, SPEED, "", "x" * 400, "nope/x"]) | junk,
         "values": st.lists(floats, max_size=60) | junk},
        optional={"timestamps": stamps | junk, "extra": junk})
    requests = st.fixed_dictionaries({"items": st.lists(item, max_size=4) | junk})
    raw = st.binary(max_size=200).map(lambda b: ("raw", b))
    return (requests | junk).map(lambda body: ("json", body)) | raw


@pytest.mark.integration
def test_fuzzed_requests_get_2xx_or_4xx_with_a_message_never_5xx(server: str) -> None:
    from hypothesis import HealthCheck, given, settings

    seen: dict[int, int] = {}

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_fuzz_bodies())
    def check(case: tuple[str, Any]) -> None:
        kind, body = case
        raw = body if kind == "raw" else json.dumps(body, allow_nan=True).encode()
        status, out = call(server, "/detect", raw=raw)  # 30 s timeout: a hang fails
        seen[status] = seen.get(status, 0) + 1
        assert 200 <= status < 300 or 400 <= status < 500, (status, raw[:300], out)
        if status >= 400:
            assert out, "a 4xx without a message"

    check()
    assert any(400 <= s < 500 for s in seen), seen
    with urllib.request.urlopen(server + "/readyz", timeout=10) as resp:
        assert resp.status == 200  # the worker survived


@pytest.mark.integration
def test_multivariate_detect_names_the_contributing_channels(server: str,
                                                             detector: dict[str, Any]) -> None:
    probe = machine_spec()["probe"]
    status, out = detect(server, {"series": MACHINE, "values": probe.tolist()})
    assert status == 200, out
    [res] = out["results"]
    model, scaler, window, _ = detector["made"][MACHINE]
    want = score_points(scaler.transform(probe), window, torch_reconstructor(model),
                        targets=(0, 2), error_scale=[0.5, 2.0])
    got = np.array([np.nan if v is None else v for v in res["scores"]])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    flagged = [i for i, f in enumerate(res["flags"]) if f]
    assert flagged and [c["index"] for c in res["contributions"]] == flagged
    # the fault is in 'sum' (the last 30 points): there it contributes most
    late = [c for c in res["contributions"] if c["index"] >= len(probe) - 25]
    assert late and all(c["channels"][0]["channel"] == "sum" for c in late)
    status, out = call(server, "/models", method="GET")
    info = next(s for s in out["series"] if s["series"] == MACHINE)
    assert info["channel_names"] == ["inlet", "outlet", "sum"] and info["targets"] == [0, 2]


@pytest.mark.integration
@pytest.mark.parametrize(("values", "message"), [
    (list(range(40)), "3 channel(s) (inlet, outlet, sum); got 1 per point"),
    ([[1.0, 2.0]] * 40, "got 2 per point"),
    ([[1.0, 2.0, 3.0]] * 20 + [[1.0, 2.0]] * 20, "row 20 has 2 values"),
    ([[1.0, 2.0, 3.0]] * 5, "needs at least 12"),
])
def test_multivariate_input_of_the_wrong_shape_gets_4xx(server: str, values: Any,
                                                        message: str) -> None:
    status, body = detect(server, {"series": MACHINE, "values": values})
    assert 400 <= status < 500 and message in str(body), (status, body)


@pytest.mark.integration
def test_stream_client_on_a_multivariate_series(server: str) -> None:
    from rnnad.client import StreamDetector

    probe = machine_spec()["probe"]
    status, out = detect(server, {"series": MACHINE, "values": probe.tolist()})
    assert status == 200
    batch = out["results"][0]
    with StreamDetector(server, MACHINE) as stream:
        points = list(stream.feed(probe.tolist()))
    assert [p.score for p in points] == batch["scores"]  # no look-ahead: same as the batch
    assert [p.flag for p in points] == batch["flags"]
    flagged = [p for p in points if p.flag]
    assert flagged and all(p.channels and p.channels[0][0] in {"inlet", "sum"}
                           for p in flagged)
