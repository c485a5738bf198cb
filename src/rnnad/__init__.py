"""rnnad: time-series anomaly detection with recurrent encoder-decoders (LSTM/GRU).

Importing the package pins the instruction set that PyTorch's CPU math libraries dispatch to
(MKL's conditional numerical reproducibility, oneDNN's and ATen's kernel choice) to AVX2, unless
the environment already sets them. Without the pins, the same seed trains different weights on
an AVX-512 machine and on an AVX2 one (MKL picks other kernels, summing in another order), and
the NAB score of the default run moved by more than a point between two machines of this
project. Training also turns oneDNN off (``rnnad.models.training.seed_everything``), whose
kernels may block by cache size; Intel documents pinned MKL results as the same on its
processors that have the pinned instruction set, at a fixed thread count (other vendors' are
not promised). The pins take effect only when set before torch runs its first operation: the
stage scripts, the service and the tests import rnnad before they import torch.
"""

from __future__ import annotations

import os

CPU_PINS = {"MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}

for _name, _value in CPU_PINS.items():
    os.environ.setdefault(_name, _value)
