"""The BentoML service: per-point anomaly scores for a batch of named series, on onnxruntime only.

Serve from the repository root (venv active): ``bentoml serve rnnad.service:Detector``, or a
built Bento: ``bentoml serve rnnad_detector:latest``. Settings, from the environment:

- ``RNNAD_MODEL``: the BentoML model holding the detector package (default ``rnnad_nab:latest``;
  a built Bento uses the model version it was built with unless this is set);
- ``RNNAD_ORT_THREADS``: onnxruntime intra-op threads per session (default 1);
- ``RNNAD_MAX_VALUES``: most values one request may send, over all its series (default 100000);
- ``RNNAD_MAX_SERIES``: most series one request may send (default 1000);
- ``BENTOML_HOME``: where the model store is (default ~/bentoml).

Scores are computed exactly as the evaluate stage computes them (:func:`rnnad.scoring.
score_points` on values normalised with the series' training scaler, the model's target
channels and their error scales); only the reconstruction runs on onnxruntime instead of
torch. A multivariate series takes ``values`` as rows [time][channels]; for each flagged point
the answer names the channels that contributed most. This module must not import torch or
training code.

The server keeps no state between requests (it scales out by replicas): a live stream is scored
by :class:`rnnad.client.StreamDetector`, which keeps the last window of points and sends it.
``/metrics`` (BentoML's Prometheus endpoint) also counts the points flagged in answers, per
series (``rnnad_flagged_anomalies_total{series=...}``); a stream client sends exactly one window,
whose only scored point is the newest, so each streamed point is counted once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
import onnxruntime as ort
import prometheus_client
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rnnad.io import read_json, sha256_file
from rnnad.scoring import flag, score_points
from rnnad.split import Scaler

MODEL_ENV = "RNNAD_MODEL"
DEFAULT_MODEL = "rnnad_nab:latest"
THREADS_ENV = "RNNAD_ORT_THREADS"
MAX_VALUES_ENV = "RNNAD_MAX_VALUES"
MAX_SERIES_ENV = "RNNAD_MAX_SERIES"
DETECTOR_FILE = "detector.json"  # the names rnnad.export writes (not imported: it needs torch)
ONNX_INPUT, ONNX_OUTPUT = "x", "recon"
SCORE_BATCH = 4096
TOP_CHANNELS = 3


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name}={raw!r}: expected a positive integer")
    return value


MAX_VALUES = env_int(MAX_VALUES_ENV, 100_000)
MAX_SERIES = env_int(MAX_SERIES_ENV, 1000)
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]


# ---------------------------------------------------------------- request and response models
class SeriesInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    series: str = Field(min_length=1, max_length=300,
                        description="series id, e.g. realKnownCause/nyc_taxi (see /models)")
    values: list[FiniteFloat] | list[list[FiniteFloat]] = Field(
        min_length=1, max_length=MAX_VALUES,
        description="finite values in time order: a list of numbers (univariate) or a list "
        "of rows [time][channels] (multivariate, channels in the order /models lists); at "
        f"most {MAX_VALUES} values")
    timestamps: list[datetime] | None = Field(
        None, description="optional ISO 8601 times, one per value, strictly increasing")

    @field_validator("timestamps")
    @classmethod
    def _timestamps_match_values(cls, ts: list[datetime] | None,
                                 info: ValidationInfo) -> list[datetime] | None:
        if ts is None:
            return ts
        values = info.data.get("values")
        if values is not None and len(ts) != len(values):
            raise ValueError(f"{len(ts)} timestamps given for {len(values)} values")
        if len({t.tzinfo is None for t in ts}) > 1:
            raise ValueError("mixes times with and without a UTC offset")
        for i in range(1, len(ts)):
            if ts[i] <= ts[i - 1]:
                raise ValueError(f"not strictly increasing at index {i} "
                                 f"({ts[i].isoformat()} after {ts[i - 1].isoformat()})")
        return ts

    def ragged(self) -> str | None:
        """Why rows of a multivariate item differ in width (None when they do not); checked
        in the API rather than by pydantic, so the 400 names the field in its message."""
        if not isinstance(self.values[0], list):
            return None
        widths = [len(row) for row in self.values]  # type: ignore[arg-type]  # rows, by pydantic
        if widths[0] == 0:
            return "row 0 has no values"
        for i, width in enumerate(widths):
            if width != widths[0]:
                return f"row {i} has {width} values, row 0 has {widths[0]}"
        return None

    def channels(self) -> int:
        return len(self.values[0]) if isinstance(self.values[0], list) else 1

    def size(self) -> int:
        return len(self.values) * self.channels()

    def array(self) -> np.ndarray:
        """The values as float64 [time, channels]."""
        x = np.asarray(self.values, dtype=np.float64)
        return x[:, None] if x.ndim == 1 else x


class ChannelShare(BaseModel):
    channel: str
    share: float = Field(description="this channel's part of the point's score, 0..1")


class Contribution(BaseModel):
    index: int = Field(description="position of the flagged point in the request's values")
    channels: list[ChannelShare] = Field(description="the channels with the largest errors")


class DetectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[SeriesInput] = Field(
        min_length=1, max_length=MAX_SERIES,
        description=f"the series to score, at most {MAX_SERIES}; scored independently")

    @model_validator(mode="after")
    def _not_too_many_values(self) -> DetectRequest:
        total = sum(item.size() for item in self.items)
        if total > MAX_VALUES:
            raise ValueError(f"{total} values in all; at most {MAX_VALUES} per request "
                             f"({MAX_VALUES_ENV})")
        return self


class SeriesResult(BaseModel):
    series: str
    window: int = Field(description="points per window; the first window-1 scores are null")
    threshold: float = Field(description="a point is flagged when its score exceeds this")
    reduce: str
    scores: list[float | None]
    flags: list[bool]
    anomalies: int
    timestamps: list[datetime] | None = None
    contributions: list[Contribution] | None = Field(
        None, description="multivariate models: for each flagged point, the channels that "
        f"contributed most to its score (at most {TOP_CHANNELS})")


class DetectResponse(BaseModel):
    results: list[SeriesResult] = Field(description="one per item, in request order")


class SeriesInfo(BaseModel):
    series: str
    window: int
    channels: int
    channel_names: list[str] = Field(default_factory=list,
                                     description="the input channels, in the order expected")
    targets: list[int] = Field(default_factory=list,
                               description="the channels the model reconstructs (indices)")
    threshold: float
    reduce: str
    data_sha256: str
    onnx_sha256: str
    model: dict[str, Any]
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="the run's window, model, train, split params")


class ModelsResponse(BaseModel):
    model_tag: str
    git_revision: str
    series: list[SeriesInfo]


# ---------------------------------------------------------------- the detector package
@dataclass(frozen=True)
class SeriesDetector:
    info: SeriesInfo
    scaler: Scaler
    session: ort.InferenceSession

    def reconstruct(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([ONNX_OUTPUT], {ONNX_INPUT: batch})[0]

    error_scale: tuple[float, ...] | None = None

    def scores(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-point scores for raw values [T, C] (NaN where no full window ends) and each
        target channel's scaled error per point [T, targets]."""
        return score_points(self.scaler.transform(values), self.info.window, self.reconstruct,
                            self.info.reduce, SCORE_BATCH, targets=self.info.targets,
                            error_scale=self.error_scale, per_channel=True)

    def contributions(self, flags: np.ndarray, channel_errors: np.ndarray) -> list[Contribution]:
        """The top channels of each flagged point, by share of its channel errors."""
        names = [self.info.channel_names[t] for t in self.info.targets]
        out = []
        for i in np.flatnonzero(flags):
            err = channel_errors[i]
            share = err / err.sum() if err.sum() > 0 else np.full(len(err), 1 / len(err))
            top = np.argsort(-share, kind="stable")[:TOP_CHANNELS]
            out.append(Contribution(index=int(i), channels=[
                ChannelShare(channel=names[k], share=round(float(share[k]), 6)) for k in top]))
        return out


def load_package(path: Path, threads: int = 1) -> tuple[str, dict[str, SeriesDetector]]:
    """Read ``detector.json`` and open one onnxruntime session per series, refusing files whose
    sha256 does not match; returns (git revision, detectors by series id)."""
    spec = read_json(path / DETECTOR_FILE)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    detectors = {}
    for sid, s in spec["series"].items():
        onnx_path = path / s["onnx"]
        if sha256_file(onnx_path) != s["sha256"]:
            raise RuntimeError(f"{onnx_path}: sha256 differs from {DETECTOR_FILE}")
        names = s.get("channel_names") or (["value"] if s["channels"] == 1 else
                                           [f"ch{i}" for i in range(s["channels"])])
        info = SeriesInfo(series=sid, window=s["window"], channels=s["channels"],
                          channel_names=names,
                          targets=s.get("targets") or list(range(s["channels"])),
                          threshold=s["threshold"], reduce=s["reduce"],
                          data_sha256=s["data_sha256"], onnx_sha256=s["sha256"],
                          model=s["model"], params=s.get("params", {}))
        session = ort.InferenceSession(str(onnx_path), opts,
                                       providers=["CPUExecutionProvider"])
        scale = s.get("error_scale")
        detectors[sid] = SeriesDetector(info, Scaler.from_dict(s["scaler"]), session,
                                        None if scale is None else tuple(scale))
    return spec.get("git_revision", "unknown"), detectors


def _error(status: int, field: str, message: str) -> JSONResponse:
    """A 4xx body shaped like BentoML's validation errors: the field in ``loc``."""
    return JSONResponse({"error": f"{field}: {message}",
                         "detail": [{"loc": [field], "msg": message}]}, status_code=status)


def _get_models(request: Request) -> JSONResponse:
    detector = bentoml.get_current_service()
    return JSONResponse(detector.catalog().model_dump(mode="json"))


# Prometheus, on BentoML's /metrics; exported as rnnad_flagged_anomalies_total{series=...}
FLAGGED = prometheus_client.Counter(name="rnnad_flagged_anomalies",
                                  documentation="points flagged anomalous in /detect answers, "
                                  "by series",
                                  labelnames=["series"])


# GET /models beside the POST API of the same path (BentoML APIs are POST only).
extra_routes = Starlette(routes=[Route("/models", _get_models, methods=["GET"])])


@bentoml.service(name="rnnad_detector", traffic={"timeout": 60})
@bentoml.asgi_app(extra_routes, path="/")
class Detector:
    model_ref = bentoml.models.BentoModel(os.environ.get(MODEL_ENV, DEFAULT_MODEL))

    def __init__(self) -> None:
        tag = self._model_tag()
        stored = bentoml.models.BentoModel(tag).stored
        if stored is None:
            home = os.environ.get("BENTOML_HOME", "~/bentoml")
            raise RuntimeError(f"BentoML model {tag} not found in the store at {home}: run "
                               f"`dvc repro package`, or set {MODEL_ENV} / BENTOML_HOME")
        self.model_tag = str(stored.tag)
        self.git_revision, self.detectors = load_package(Path(stored.path),
                                                         env_int(THREADS_ENV, 1))

    @classmethod
    def _model_tag(cls) -> str:
        """``RNNAD_MODEL`` if set; else, served from a built Bento, the model version it was
        built with (``:latest`` could be a newer package); else ``rnnad_nab:latest``."""
        if os.environ.get(MODEL_ENV):
            return os.environ[MODEL_ENV]
        bento = getattr(Detector, "bento", None)
        models = [str(m.tag) for m in bento.info.all_models] if bento is not None else []
        return models[0] if len(models) == 1 else str(cls.model_ref.tag)

    def catalog(self) -> ModelsResponse:
        return ModelsResponse(model_tag=self.model_tag, git_revision=self.git_revision,
                              series=[d.info for d in self.detectors.values()])

    @bentoml.api(route="/models")
    def list_models(self) -> ModelsResponse:
        """Series this detector knows, with window, channels, threshold and checksums."""
        return self.catalog()

    @bentoml.api(route="/detect", input_spec=DetectRequest, output_spec=DetectResponse)
    def detect(self, items: list[SeriesInput]) -> DetectResponse | JSONResponse:
        """Causal per-point scores and flags for each series of the batch. Every item is
        checked before any is scored: one bad item rejects the request, naming it."""
        checked = []
        for i, item in enumerate(items):
            detector = self.detectors.get(item.series)
            if detector is None:
                return _error(404, f"items.{i}.series", f"unknown series {item.series!r}; "
                              f"known: {', '.join(sorted(self.detectors))}")
            info = detector.info
            ragged = item.ragged()
            if ragged is not None:
                return _error(400, f"items.{i}.values", ragged)
            given = item.channels()
            if given != info.channels:
                return _error(400, f"items.{i}.values", f"series {item.series!r} has "
                              f"{info.channels} channel(s) ({', '.join(info.channel_names)}); "
                              f"got {given} per point" + (
                                  ": send a list of numbers" if info.channels == 1 else
                                  ": send one row of values per point"))
            if len(item.values) < info.window:
                return _error(400, f"items.{i}.values", f"{len(item.values)} values given; "
                              f"series {item.series!r} needs at least {info.window} "
                              "(one window)")
            checked.append((item, detector))
        results = []
        for i, (item, detector) in enumerate(checked):
            try:
                scores, errors = detector.scores(item.array())
            except OverflowError as exc:
                return _error(400, f"items.{i}.values", str(exc))
            flags = flag(scores, detector.info.threshold)
            top = detector.contributions(flags, errors) if len(detector.info.targets) > 1 \
                else None
            results.append((item, detector.info, scores, flags, top))
        for item, _, _, flags, _ in results:
            FLAGGED.labels(series=item.series).inc(int(flags.sum()))
        return DetectResponse(results=[SeriesResult(
            series=item.series, window=info.window, threshold=info.threshold,
            reduce=info.reduce, scores=[None if np.isnan(v) else float(v) for v in scores],
            flags=flags.tolist(), anomalies=int(flags.sum()), timestamps=item.timestamps,
            contributions=top)
            for item, info, scores, flags, top in results])
