"""Typed pipeline parameters, loaded from ``params.yaml``: the one source of defaults.

Every group matches a top-level key of ``params.yaml``. Unknown keys are rejected so that a typo
in ``dvc exp run -S`` fails loudly instead of being ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvParams(_Strict):
    """``data.dataset: csv``: a user's file with a timestamp column and value columns."""

    path: str = "examples/machine.csv"
    timestamp_column: str = "timestamp"
    value_columns: list[str] = Field(default_factory=list)  # empty: every other column
    label_column: str | None = "label"  # a 0/1 column, or None
    labels_file: str | None = None  # or a JSON file of [start, end] timestamp windows


class CmapssParams(_Strict):
    """``data.dataset: cmapss``: which sub-dataset and the rule that turns RUL into labels."""

    subset: Literal["FD001", "FD002", "FD003", "FD004"] = "FD001"
    learn_cycles: int = Field(50, ge=2)  # learn from each training engine's first N cycles
    fault_cycles: int = Field(30, ge=1)  # label the last N cycles before failure anomalous


class DataParams(_Strict):
    dataset: Literal["nab", "smap", "msl", "cmapss", "kddcup99", "csv"] = "nab"
    csv: CsvParams = CsvParams()
    cmapss: CmapssParams = CmapssParams()


class FetchParams(_Strict):
    commit: str = Field("ea702d75cc2258d9d7dd35ca8e5e2539d71f3140", min_length=7)
    retries: int = Field(3, ge=1)
    timeout_s: float = Field(60.0, gt=0)


class PreprocessParams(_Strict):
    # "all", a category name (e.g. "realKnownCause"), one series id
    # (e.g. "realKnownCause/nyc_taxi"), or a list of categories and/or series ids.
    series: str | list[str] = "all"
    disorder: Literal["keep", "error"] = "keep"
    max_nan_run: int = Field(10, ge=0)
    gap_factor: float = Field(3.0, gt=1.0)


class SplitParams(_Strict):
    protocol: Literal["nab", "fractions"] = "nab"
    # nab protocol: the last `val_fraction` of the probationary period is the validation set.
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    # fractions protocol: train = first train_fraction, validation = next validation_fraction.
    train_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    validation_fraction: float = Field(0.1, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _fractions_leave_a_test_part(self) -> SplitParams:
        if self.train_fraction + self.validation_fraction >= 1.0:
            raise ValueError("split.train_fraction + split.validation_fraction must be < 1")
        return self


class WindowParams(_Strict):
    length: int = Field(32, ge=2)
    stride: int = Field(1, ge=1)


class ModelParams(_Strict):
    cell: Literal["lstm", "gru"] = "lstm"
    # channels to reconstruct: auto = the dataset's choice (SMAP/MSL: the telemetry; else all),
    # all, or a list of channel names
    targets: Literal["auto", "all"] | list[str] = "auto"
    hidden: int = Field(64, ge=1)
    layers: int = Field(1, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class TrainParams(_Strict):
    seed: int = 42
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-2, gt=0)
    patience: int = Field(8, ge=1)
    threads: int = Field(1, ge=1)
    jobs: int = Field(2, ge=1)  # series trained at once, one worker process each
    min_windows: int = Field(16, ge=1)
    # at most this many training (and validation) windows per series, an evenly spread subset:
    # bounds memory and time on long learning parts (KDD's 97k records); NAB's are far shorter
    max_windows: int = Field(20000, ge=1)


class DynamicThresholdParams(_Strict):
    """Hundman et al.'s (2018) nonparametric threshold on the test part's scores."""

    z_min: float = Field(2.5, gt=0.0)
    z_max: float = Field(12.0, gt=0.0)
    z_step: float = Field(0.5, gt=0.0)
    prune: float = Field(0.0, ge=0.0, lt=1.0)  # minimum step down between sequence maxima
    buffer: int = Field(100, ge=0)  # points added on each side of a flagged sequence
    max_sequences: int = Field(5, ge=1)  # a threshold flagging more sequences is not chosen
    max_fraction: float = Field(0.5, gt=0.0, le=1.0)  # nor one flagging this share of points

    @model_validator(mode="after")
    def _z_range(self) -> DynamicThresholdParams:
        if self.z_max < self.z_min:
            raise ValueError(f"evaluate.threshold.dynamic: z_max {self.z_max} < z_min "
                             f"{self.z_min}")
        return self


class ThresholdParams(_Strict):
    """quantile / gaussian / max: one threshold from the validation part's normal scores.
    dynamic: flags chosen on each series' unlabelled test scores (see rnnad.thresholds); the
    quantile threshold still scales the scores for the pooled curves and NAB output."""

    method: Literal["quantile", "gaussian", "max", "dynamic"] = "quantile"
    quantile: float = Field(0.99, gt=0.0, le=1.0)
    k: float = Field(3.0, gt=0.0)
    factor: float = Field(1.5, gt=0.0)
    dynamic: DynamicThresholdParams = DynamicThresholdParams()


class LikelihoodParams(_Strict):
    """Numenta's anomaly likelihood on the scores (window 0: off)."""

    window: int = Field(500, ge=0)  # past points the Gaussian is fitted to (0: off)
    short: int = Field(10, ge=1)  # points averaged into the current value
    transform: Literal["none", "log"] = "none"

    @model_validator(mode="after")
    def _window_holds_the_short_mean(self) -> LikelihoodParams:
        if 0 < self.window < max(self.short, 2):
            raise ValueError(f"evaluate.postprocess.likelihood.window {self.window} must be 0 "
                             f"(off) or at least max(short, 2) = {max(self.short, 2)}")
        return self


class PostprocessParams(_Strict):
    """Causal steps from raw scores to the detector's output (rnnad.postprocess).

    With the likelihood on, the output lies in [0, 1] and a point is an alarm when its output
    reaches ``level`` (then ``evaluate.threshold`` only sets the raw-score threshold the service
    uses); ``spatial`` and ``suppress`` need the likelihood (they act on that scale).
    """

    smooth: float = Field(10.0, ge=0.0)  # EWMA span in points (0: off)
    likelihood: LikelihoodParams = LikelihoodParams()
    spatial: float = Field(0.05, ge=0.0)  # range-breach tolerance (0: off)
    suppress: int = Field(50, ge=0)  # points silenced after an alarm (0: off)
    level: float = Field(0.7, gt=0.0, le=1.0)  # alarm level on the likelihood scale

    @model_validator(mode="after")
    def _scale_steps_need_the_likelihood(self) -> PostprocessParams:
        if 0 < self.smooth < 1:
            raise ValueError(f"evaluate.postprocess.smooth {self.smooth} must be 0 (off) or an "
                             "EWMA span of at least 1 point")
        if self.likelihood.window == 0:
            on = [f"evaluate.postprocess.{name}" for name in ("spatial", "suppress")
                  if getattr(self, name) > 0]
            if on:
                raise ValueError(f"{' and '.join(on)} need the likelihood step "
                                 "(evaluate.postprocess.likelihood.window > 0); set them to 0 "
                                 "too")
        return self

    @property
    def on_likelihood_scale(self) -> bool:
        return self.likelihood.window > 0


class RangeParams(_Strict):
    """Range-based precision and recall (Tatbul et al. 2018)."""

    alpha: float = Field(0.0, ge=0.0, le=1.0)  # weight of existence in range recall
    cardinality: Literal["one", "reciprocal"] = "reciprocal"
    bias_recall: Literal["flat", "front", "middle", "back"] = "flat"
    bias_precision: Literal["flat", "front", "middle", "back"] = "flat"


class VusParams(_Strict):
    """VUS-ROC / VUS-PR (Paparrizos et al. 2022): range-AUCs averaged over buffer lengths."""

    max_buffer: int = Field(64, ge=0)
    buffer_step: int = Field(1, ge=1)


BASELINES = ("rolling_gaussian", "isolation_forest", "null", "random")


class BaselineParams(_Strict):
    """Simple detectors scored with exactly the same protocol and measures as the RNN."""

    detectors: list[Literal["rolling_gaussian", "isolation_forest", "null", "random"]] = Field(
        default_factory=lambda: list(BASELINES))
    # also given the RNN's post-processing (reported as <name>_pp): what the RNN adds to it
    postprocessed: list[Literal["rolling_gaussian", "isolation_forest", "null", "random"]] = \
        Field(default_factory=lambda: ["null", "rolling_gaussian"])
    seed: int = 7
    gaussian_window: int = Field(256, ge=2)  # rolling Gaussian: past points in mean and std
    iforest_trees: int = Field(100, ge=1)
    iforest_max_samples: int = Field(256, ge=2)

    @field_validator("detectors", "postprocessed", mode="before")
    @classmethod
    def _yaml_null_is_the_null_detector(cls, value: object) -> object:
        # unquoted `null` in a YAML list is None: in this list it can only mean the null detector
        if isinstance(value, list):
            return ["null" if v is None else v for v in value]
        return value


class EvaluateParams(_Strict):
    reduce: Literal["mean", "last", "max"] = "mean"
    batch_size: int = Field(4096, ge=1)
    postprocess: PostprocessParams = PostprocessParams()
    threshold: ThresholdParams = ThresholdParams()
    curve_points: int = Field(200, ge=10)
    range: RangeParams = RangeParams()
    vus: VusParams = VusParams()
    baselines: BaselineParams = BaselineParams()


class PlotParams(_Strict):
    showcase: str = "realKnownCause/nyc_taxi"
    examples: int = Field(3, ge=1)
    dpi: int = Field(80, ge=30)


class PackageParams(_Strict):
    # BentoML model name; auto: rnnad_<data.dataset> (rnnad_nab for the default run)
    model_name: str = Field("auto", pattern=r"^[a-z0-9_\-]+$")
    atol: float = Field(1e-5, gt=0)
    parity_windows: int = Field(256, ge=1)
    build_bento: bool = True


class Params(_Strict):
    data: DataParams = DataParams()
    fetch: FetchParams = FetchParams()
    preprocess: PreprocessParams = PreprocessParams()
    split: SplitParams = SplitParams()
    window: WindowParams = WindowParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    plot: PlotParams = PlotParams()
    package: PackageParams = PackageParams()


class ParamsError(ValueError):
    """params.yaml is missing, unreadable or has invalid values."""


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; errors name the file and the offending key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ParamsError(f"{path}: not found") from exc
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ParamsError(f"{path}: {problems}") from exc
