"""Save and load trained models: weights as a torch state dict (loaded with weights_only=True,
so no pickled code runs) next to a JSON spec with everything needed to rebuild and score.
A model with a NaN or infinite weight is refused: nothing is written for it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from rnnad.config import ModelParams
from rnnad.io import atomic_path, read_json, series_filename, write_json
from rnnad.models.encdec import EncDecAD, build_model


class ModelStoreError(ValueError):
    """A model that must not be saved (non-finite weights)."""


def non_finite_weights(model: torch.nn.Module) -> list[str]:
    """Names of the entries of ``model``'s state dict that hold a NaN or an infinity."""
    return [name for name, value in model.state_dict().items()
            if value.is_floating_point() and not bool(torch.isfinite(value).all())]


def save_model(directory: Path, series_id: str, model: EncDecAD, spec: dict[str, Any]) -> None:
    """Write ``<series>.pt`` and ``<series>.json`` atomically; refuse non-finite weights."""
    bad = non_finite_weights(model)
    if bad:
        raise ModelStoreError(
            f"{series_id}: refusing to save a model with non-finite weights ({', '.join(bad)}); "
            "training diverged: lower train.lr")
    # Serialise in memory: torch.save to a path records the (random) temporary file name in
    # the archive, so the same weights would give different bytes on every run.
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    with atomic_path(directory / series_filename(series_id, ".pt")) as tmp:
        tmp.write_bytes(buffer.getvalue())
    write_json(directory / series_filename(series_id, ".json"), spec)


def load_model(directory: Path, series_id: str) -> tuple[EncDecAD, dict[str, Any]]:
    spec = read_json(directory / series_filename(series_id, ".json"))
    targets = spec.get("targets")
    model = build_model(int(spec["channels"]), ModelParams(**spec["model"]),
                        None if targets is None else tuple(targets))
    state = torch.load(directory / series_filename(series_id, ".pt"), weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model, spec
