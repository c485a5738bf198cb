"""Chronological splits and the normaliser fitted on the training part only."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from rnnad.config import SplitParams


def probation_length(n: int) -> int:
    """NAB's probationary period: the first 15% of a file, at most 750 records."""
    return min(math.floor(0.15 * n), 750)


class SplitError(ValueError):
    """A series is too short for the requested split."""


@dataclass(frozen=True)
class Split:
    """Index boundaries: train = [0, train_end), validation = [train_end, val_end),
    test = [val_end, n)."""

    n: int
    train_end: int
    val_end: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def make_split(n: int, params: SplitParams, series_id: str = "",
               learn_end: int | None = None) -> Split:
    """Train / validation / test boundaries of a series of ``n`` points.

    ``learn_end``: the dataset's own split (SMAP/MSL's train array, C-MAPSS's early cycles,
    KDD's normal training records): the model learns from [0, learn_end), its last
    ``val_fraction`` is the validation part, and everything after it is test data, whatever
    ``split.protocol`` says. Otherwise ``split.protocol`` decides: ``nab``, NAB's probationary
    period (the last ``val_fraction`` of it for validation), or ``fractions``.
    """
    if learn_end is not None:
        val = max(1, round(params.val_fraction * learn_end))
        split = Split(n=n, train_end=learn_end - val, val_end=learn_end)
    elif params.protocol == "nab":
        learn = probation_length(n)
        val = max(1, round(params.val_fraction * learn))
        split = Split(n=n, train_end=learn - val, val_end=learn)
    else:
        # floor, tolerating float round-off: (0.7 + 0.2) * 1000 is 899.99999999999989
        train_end = math.floor(params.train_fraction * n + 1e-9)
        val_end = math.floor((params.train_fraction + params.validation_fraction) * n + 1e-9)
        split = Split(n=n, train_end=train_end, val_end=val_end)
    if not 0 < split.train_end < split.val_end < n:
        raise SplitError(
            f"{series_id}: {n} points are too few for the "
            f"{'dataset' if learn_end is not None else repr(params.protocol)} split "
            f"(train ends at {split.train_end}, validation at {split.val_end})"
        )
    return split


@dataclass(frozen=True)
class Scaler:
    """Per-channel standardisation. A constant channel gets scale 1 (values become 0-centred)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, values: np.ndarray, mask: np.ndarray | None = None) -> Scaler:
        x = np.asarray(values, dtype=np.float64)
        if mask is not None:
            x = x[np.asarray(mask, dtype=bool)]
        if len(x) == 0:
            raise SplitError("cannot fit the normaliser on zero points")
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std))

    def transform(self, values: np.ndarray) -> np.ndarray:
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise ValueError(f"expected [time, {len(self.mean)}] values, got {x.shape}")
        return (x - np.asarray(self.mean)) / np.asarray(self.std)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> Scaler:
        return cls(tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]))


def fit_scaler(values: np.ndarray, labels: np.ndarray, split: Split) -> Scaler:
    """Fit on the training part only, leaving out labelled anomalous points."""
    mask = np.zeros(len(values), dtype=bool)
    mask[: split.train_end] = True
    mask &= np.asarray(labels) == 0
    return Scaler.fit(values, mask)
