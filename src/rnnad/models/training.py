"""Training loop: Adam on MSE, early stopping on validation loss, best weights restored.

Divergence is an error, never a silently kept model: a non-finite batch loss, a non-finite
gradient norm (checked before clipping, so no step is taken with it) or non-finite weights at
the end raise :class:`TrainingError` naming the epoch and suggesting a lower ``train.lr``. There
is no automatic recovery (such as retrying at a lower rate): the params that produced a model
are recorded with it, so the fix is a deliberate change of ``train.lr`` in params.yaml.
Gradients are clipped at norm 1 (:data:`MAX_GRAD_NORM`), which keeps ordinary spikes finite.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from rnnad.config import TrainParams
from rnnad.models.store import non_finite_weights

MAX_GRAD_NORM = 1.0


class TrainingError(RuntimeError):
    """Training could not produce a usable model (too little data, divergence)."""


def _diverged(what: str, epoch: int, lr: float) -> TrainingError:
    return TrainingError(f"training diverged: {what} at epoch {epoch} (train.lr={lr}); "
                         "lower train.lr")


@dataclass
class TrainResult:
    best_epoch: int
    best_val_loss: float
    history: list[dict[str, float]] = field(default_factory=list)


def seed_everything(seed: int, threads: int) -> None:
    """Seeds, thread count and deterministic kernels for a training run. oneDNN is turned off
    for it: its LSTM/GRU kernels choose their blocking by CPU (and so the order they sum in);
    without it the recurrent layers run on ATen and MKL, which ``rnnad.CPU_PINS`` hold to
    AVX2, so the same seed trains the same weights on any AVX2 machine (the speed is the
    same here)."""
    torch.backends.mkldnn.enabled = False
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def _loss(model: nn.Module, x: torch.Tensor, batch_size: int) -> float:
    model.eval()
    total = 0.0
    count = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            target = _targets(model, xb)
            total += float(nn.functional.mse_loss(model(xb), target, reduction="sum"))
            count += target.numel()
    return total / max(count, 1)


def _targets(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What ``model`` reconstructs of ``x``: its target channels (all for a plain module)."""
    select = getattr(model, "target_values", None)
    return x if select is None else select(x)


def fit(
    model: nn.Module,
    train_windows: np.ndarray,
    val_windows: np.ndarray,
    params: TrainParams,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on [N, L, C] windows; returns the best epoch's record."""
    if len(train_windows) < params.min_windows:
        raise TrainingError(
            f"{len(train_windows)} training windows, fewer than train.min_windows="
            f"{params.min_windows}: the training period is too short for window.length"
        )
    if len(val_windows) == 0:
        raise TrainingError("no validation window: the validation period is too short")
    generator = torch.Generator().manual_seed(params.seed)
    x_train = torch.from_numpy(np.ascontiguousarray(train_windows, dtype=np.float32))
    x_val = torch.from_numpy(np.ascontiguousarray(val_windows, dtype=np.float32))
    optimiser = torch.optim.Adam(model.parameters(), lr=params.lr)
    best = TrainResult(best_epoch=-1, best_val_loss=float("inf"))
    best_state = copy.deepcopy(model.state_dict())
    stale = 0
    for epoch in range(params.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for i in range(0, len(order), params.batch_size):
            xb = x_train[order[i : i + params.batch_size]]
            optimiser.zero_grad()
            loss = nn.functional.mse_loss(model(xb), _targets(model, xb))
            if not torch.isfinite(loss):
                raise _diverged(f"loss became {loss.item()}", epoch, params.lr)
            loss.backward()
            # the norm before clipping: a non-finite one would turn every gradient into NaN
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=MAX_GRAD_NORM)
            if not torch.isfinite(grad_norm):
                raise _diverged(f"gradient norm became {grad_norm.item()}", epoch, params.lr)
            optimiser.step()
            total += loss.item() * len(xb)
        train_loss = total / len(x_train)
        val_loss = _loss(model, x_val, params.batch_size)
        best.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        if on_epoch is not None:
            on_epoch(epoch, train_loss, val_loss)
        if val_loss < best.best_val_loss:
            best.best_epoch, best.best_val_loss = epoch, val_loss
            best_state = copy.deepcopy(model.state_dict())
            stale = 0
        else:
            stale += 1
            if stale >= params.patience:
                break
    if best.best_epoch < 0:
        raise TrainingError(f"validation loss was never finite (train.lr={params.lr}); "
                            "lower train.lr")
    model.load_state_dict(best_state)
    bad = non_finite_weights(model)
    if bad:
        raise _diverged(f"non-finite weights ({', '.join(bad)})", best.best_epoch, params.lr)
    model.eval()
    return best
