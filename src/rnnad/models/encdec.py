"""EncDec-AD (Malhotra et al. 2016): an RNN encoder compresses a window into its final state; an
RNN decoder started from that state reconstructs the window in reverse order (last point first).

Unlike the paper's decoder, which is fed the previous point (the true one in training, its own
prediction at inference), ours is fed zeros in training and inference alike: the encoder's state
is the only path for information, and training and scoring run the same computation (which also
exports to ONNX as one graph without a Python loop).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from rnnad.config import ModelParams

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class EncDecAD(nn.Module):
    """Reads D input channels, reconstructs the target channels (all by default): SMAP/MSL's
    command flags are inputs that help explain the telemetry, not something to reconstruct."""

    def __init__(
        self, channels: int, hidden: int, layers: int = 1, cell: str = "lstm",
        dropout: float = 0.0, targets: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"model.cell must be one of {sorted(_CELLS)}, got {cell!r}")
        targets = tuple(range(channels)) if targets is None else tuple(targets)
        if not targets or any(not 0 <= t < channels for t in targets):
            raise ValueError(f"target channels {targets} outside 0..{channels - 1}")
        rnn = _CELLS[cell]
        drop = dropout if layers > 1 else 0.0
        self.channels = channels
        self.targets = targets
        self.encoder = rnn(channels, hidden, num_layers=layers, batch_first=True, dropout=drop)
        # the decoder is fed zeros; one input channel is enough (the graph is the same size for
        # univariate models, whose decoder input was already one channel of zeros)
        self.decoder = rnn(1, hidden, num_layers=layers, batch_first=True, dropout=drop)
        self.output = nn.Linear(hidden, len(targets))

    def target_values(self, x: torch.Tensor) -> torch.Tensor:
        """The channels of ``x`` [batch, length, channels] this model reconstructs."""
        return x if len(self.targets) == self.channels else x[:, :, list(self.targets)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, length, channels] -> reconstruction [batch, length, targets], in input
        order."""
        _, state = self.encoder(x)
        out, _ = self.decoder(torch.zeros_like(x[:, :, :1]), state)
        reversed_recon = self.output(out)  # step j reconstructs x[L-1-j]
        return torch.flip(reversed_recon, dims=[1])


def reconstructor(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """A float64 copy of ``model`` as a numpy function for :func:`rnnad.scoring.score_points`
    (scoring runs in float64; see that module)."""
    model64 = copy.deepcopy(model).double().eval()

    def reconstruct(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model64(torch.from_numpy(np.asarray(batch, dtype=np.float64))).numpy()

    return reconstruct


def build_model(channels: int, params: ModelParams,
                targets: tuple[int, ...] | None = None) -> EncDecAD:
    return EncDecAD(channels, params.hidden, params.layers, params.cell, params.dropout,
                    targets)
