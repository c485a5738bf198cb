"""Export trained encoder-decoders to ONNX, prove onnxruntime reproduces torch, and publish the
detector package (one ONNX file per series + ``detector.json``) to the BentoML model store.

The exporter is torch's TorchScript-based one (``dynamo=False``): on a 2-core machine it exports
a window-32 LSTM in about 0.3 s, where the dynamo exporter takes 7-9 s per model (torch.export
decomposes and traces the recurrent cells step by step), i.e. minutes for the 58 NAB models.
Either exports :class:`UnrolledEncDec` (explicit cell arithmetic, not a fused LSTM/GRU node)
in float64, the precision scoring runs in (see :mod:`rnnad.scoring`); ``dynamo=True`` selects
the dynamo exporter. Every exported file is checked: a dynamic batch axis (runs at batch 1 and
3) and parity with the torch model on ``package.parity_windows`` real test windows within
``package.atol`` (1e-5; measured: ~1e-12).
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from rnnad.io import atomic_path, sha256_file, write_json
from rnnad.models.encdec import reconstructor
from rnnad.windows import sliding_windows, window_ends

ONNX_INPUT = "x"
ONNX_OUTPUT = "recon"
OPSET = 17
EXAMPLE_BATCH = 2  # a batch of 1 can let an exporter fix the batch size
DETECTOR_FILE = "detector.json"
DETECTOR_FORMAT = 1


class ParityError(RuntimeError):
    """onnxruntime does not reproduce the torch model within the tolerance."""


class PackageError(RuntimeError):
    """Saving the detector to the BentoML store or building the Bento failed."""


# ---------------------------------------------------------------- ONNX export and checks
@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporters' deprecation and 'batch size other than 1' warnings: dynamic batch
    is verified on every exported file instead (see :func:`check_dynamic_batch`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*batch.size other than 1.*")
        warnings.filterwarnings("ignore", message=".*were assigned during export.*")
        yield


class UnrolledEncDec(torch.nn.Module):
    """The same function as an :class:`~rnnad.models.encdec.EncDecAD`, written with explicit
    cell arithmetic (MatMul, Sigmoid, Tanh) unrolled over the window, for export only.

    onnxruntime's fused LSTM kernel has no float64 version (and in float32 it differed from
    torch by up to 1.4e-5 on trained NAB models); the unrolled graph runs on onnxruntime's
    element-wise float64 operators. It reads the weights of the wrapped model.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.cell = "lstm" if isinstance(model.encoder, torch.nn.LSTM) else "gru"

    def _run(self, rnn: torch.nn.RNNBase, x: torch.Tensor, state: list[tuple[torch.Tensor, ...]]
             ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
        final = []
        for layer in range(rnn.num_layers):
            w_ih = getattr(rnn, f"weight_ih_l{layer}")
            w_hh = getattr(rnn, f"weight_hh_l{layer}")
            b_ih = getattr(rnn, f"bias_ih_l{layer}")
            b_hh = getattr(rnn, f"bias_hh_l{layer}")
            inputs = x @ w_ih.T + b_ih  # [B, L, G*H] for every step at once
            carry = state[layer]
            outputs = []
            for t in range(x.shape[1]):
                carry = self._step(inputs[:, t], carry, w_hh, b_hh)
                outputs.append(carry[0])
            x = torch.stack(outputs, dim=1)
            final.append(carry)
        return x, final

    def _step(self, gi: torch.Tensor, carry: tuple[torch.Tensor, ...], w_hh: torch.Tensor,
              b_hh: torch.Tensor) -> tuple[torch.Tensor, ...]:
        gh = carry[0] @ w_hh.T + b_hh
        if self.cell == "lstm":
            i, f, g, o = (gi + gh).chunk(4, dim=1)
            c = torch.sigmoid(f) * carry[1] + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return ((1 - z) * n + z * carry[0],)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.model.encoder
        zeros = x.new_zeros(x.shape[0], enc.hidden_size)
        start = [(zeros, zeros) if self.cell == "lstm" else (zeros,)] * enc.num_layers
        _, state = self._run(enc, x, start)
        out, _ = self._run(self.model.decoder, torch.zeros_like(x[:, :, :1]), state)
        return torch.flip(self.model.output(out), dims=[1])


def export_onnx(model: torch.nn.Module, path: Path, length: int, channels: int, *,
                dynamo: bool = False) -> None:
    """Write ``model`` ([batch, length, channels] -> [batch, length, targets]) to ``path`` with
    a dynamic batch axis."""
    example = torch.zeros(EXAMPLE_BATCH, length, channels, dtype=torch.float64)
    axes = {ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}}
    options: dict[str, Any] = {"dynamo": dynamo}
    if dynamo:  # its own default opset (18); the batch dimension of the one positional input
        options.update(dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    else:
        options.update(dynamic_axes=axes, opset_version=OPSET)
    with atomic_path(path) as tmp, _quiet_exporter(), torch.no_grad():
        graph = UnrolledEncDec(copy.deepcopy(model).double()).eval()
        torch.onnx.export(graph, (example,), str(tmp), input_names=[ONNX_INPUT],
                          output_names=[ONNX_OUTPUT], **options)


def ort_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_reconstruct(session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
    return session.run([ONNX_OUTPUT], {ONNX_INPUT: np.ascontiguousarray(batch, np.float64)})[0]


def torch_reconstruct(model: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    """The torch model's float64 reconstruction of ``batch`` (what the evaluate stage scores)."""
    return reconstructor(model)(batch)


def check_dynamic_batch(session: ort.InferenceSession, length: int, channels: int,
                        targets: int | None = None) -> None:
    """Fail unless the session accepts batches of 1 and 3 (a fixed batch axis would refuse)
    and answers ``targets`` (default: ``channels``) reconstructed channels."""
    for batch in (1, 3):
        out = ort_reconstruct(session, np.zeros((batch, length, channels)))
        expected = (batch, length, channels if targets is None else targets)
        if out.shape != expected:
            raise ParityError(f"ONNX output shape {out.shape} for input "
                              f"{(batch, length, channels)}, expected {expected}: the batch "
                              "axis is not dynamic")


def max_abs_diff(model: torch.nn.Module, session: ort.InferenceSession, windows: np.ndarray,
                 batch_size: int = 512) -> float:
    torch_recon = reconstructor(model)
    worst = 0.0
    for i in range(0, len(windows), batch_size):
        batch = windows[i : i + batch_size]
        diff = np.abs(ort_reconstruct(session, batch) - torch_recon(batch))
        worst = max(worst, float(diff.max()))
    return worst


def parity_windows(x_norm: np.ndarray, test_start: int, length: int, count: int) -> np.ndarray:
    """Up to ``count`` windows [N, length, C] ending in the test part (index >= ``test_start``),
    evenly spread over it, so that labelled anomalies are likely among them."""
    ends = window_ends(len(x_norm), length)
    idx = np.flatnonzero(ends >= test_start)
    if len(idx) == 0:
        raise ValueError(f"no window of length {length} ends in the test part "
                         f"(points {test_start}..{len(x_norm) - 1})")
    if len(idx) > count:
        idx = idx[np.unique(np.linspace(0, len(idx) - 1, count).round().astype(np.int64))]
    return np.ascontiguousarray(sliding_windows(np.asarray(x_norm, np.float64), length)[idx])


def export_checked(series_id: str, model: torch.nn.Module, path: Path, windows: np.ndarray,
                   atol: float, *, dynamo: bool = False) -> float:
    """Export, then check the batch axis and parity on ``windows``; returns the max abs diff."""
    _, length, channels = windows.shape
    export_onnx(model, path, length, channels, dynamo=dynamo)
    session = ort_session(path)
    check_dynamic_batch(session, length, channels, len(getattr(model, "targets", ())) or None)
    diff = max_abs_diff(model, session, windows)
    if not diff <= atol:  # also catches NaN
        raise ParityError(f"{series_id}: onnxruntime differs from torch by {diff:.3g} "
                          f"(max abs over {len(windows)} test windows) > package.atol {atol:g}")
    return diff


# ---------------------------------------------------------------- the detector package
def series_entry(onnx_path: Path, *, window: int, channels: int, scaler: dict[str, list[float]],
                 threshold: float, reduce: str, data_sha256: str,
                 model: dict[str, Any], params: dict[str, Any] | None = None,
                 channel_names: list[str] | None = None, targets: list[int] | None = None,
                 error_scale: list[float] | None = None) -> dict[str, Any]:
    """One series of ``detector.json``: what the service needs to score it (the channels it
    reads, those it reconstructs and their error scales), and provenance (``params``: the
    run's parameters that made this model and its threshold)."""
    return {"onnx": onnx_path.name, "sha256": sha256_file(onnx_path), "window": int(window),
            "channels": int(channels), "scaler": scaler, "threshold": float(threshold),
            "reduce": reduce, "data_sha256": data_sha256, "model": model,
            "params": params or {},
            "channel_names": channel_names or (["value"] if channels == 1 else
                                               [f"ch{i}" for i in range(channels)]),
            "targets": list(range(channels)) if targets is None else list(targets),
            "error_scale": error_scale}


def write_detector(directory: Path, series: dict[str, dict[str, Any]], git_revision: str,
                   reduce: str) -> None:
    """Write ``detector.json`` (read by :func:`rnnad.service.load_package`) into ``directory``,
    which must already hold the ONNX files named in ``series``."""
    for sid, entry in series.items():
        if not (directory / entry["onnx"]).is_file():
            raise PackageError(f"{sid}: {entry['onnx']} missing from {directory}")
    write_json(directory / DETECTOR_FILE, {"format": DETECTOR_FORMAT,
                                           "git_revision": git_revision, "reduce": reduce,
                                           "series": series})


# ---------------------------------------------------------------- BentoML store and build
def git_revision(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                             text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def save_detector(package_dir: Path, name: str, metadata: dict[str, Any],
                  labels: dict[str, str] | None = None) -> str:
    """Save the files of ``package_dir`` as a new version of BentoML model ``name`` (in
    ``$BENTOML_HOME``, default ~/bentoml); returns its tag ``name:version``."""
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    import bentoml

    if not (package_dir / DETECTOR_FILE).is_file():
        raise PackageError(f"{package_dir}: no {DETECTOR_FILE}; not a detector package")
    with bentoml.models.create(name, metadata=metadata, labels=labels or {}) as model:
        for src in sorted(package_dir.iterdir()):
            if src.is_file():
                shutil.copy2(src, Path(model.path) / src.name)
    return str(model.tag)


def build_bento(repo: Path, model_tag: str, bentofile: str = "bentofile.yaml",
                timeout_s: float = 600.0) -> str:
    """Run ``bentoml build`` in ``repo`` with the service pinned to ``model_tag``; returns the
    Bento's tag. Needs ``python: lock_packages: false`` in the bentofile to work offline."""
    env = {**os.environ, "RNNAD_MODEL": model_tag, "BENTOML_DO_NOT_TRACK": "True"}
    cmd = [sys.executable, "-m", "bentoml", "build", "-f", bentofile, "-o", "tag", "."]
    try:
        out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True,
                             timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise PackageError(f"bentoml build took longer than {timeout_s:.0f} s") from exc
    tags = [line.split("__tag__:", 1)[1].strip() for line in out.stdout.splitlines()
            if "__tag__:" in line]
    if out.returncode != 0 or not tags:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-20:])
        raise PackageError(f"bentoml build failed (exit {out.returncode}):\n{tail}")
    return tags[-1]


def file_checksums(directory: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(directory.iterdir()) if p.is_file()}
