"""Write examples/machine.csv: a synthetic three-sensor machine with labelled faults (seeded).

Run from the repository root: ``python examples/make_machine_csv.py``; the same seed always
writes the same file. 6000 records at 5-minute steps: temperature, vibration and pressure
follow a daily load cycle with noise; four faults are injected and labelled (``label`` = 1):

1. a temperature spike (overheating for 40 minutes);
2. a vibration rise without the temperature that normally goes with it (bearing wear);
3. a frozen pressure sensor (the value stops moving);
4. a slow pressure drift out of its usual relation with the load (a leak).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20261204
N = 6000
OUT = Path(__file__).with_name("machine.csv")


def make(seed: int = SEED, n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    load = 0.5 + 0.4 * np.sin(2 * np.pi * t / 288) + 0.05 * rng.standard_normal(n)  # daily
    temperature = 60 + 15 * load + 0.6 * rng.standard_normal(n)
    vibration = 2.0 + 1.5 * load + 0.08 * rng.standard_normal(n)
    pressure = 5.0 - 1.2 * load + 0.05 * rng.standard_normal(n)
    label = np.zeros(n, dtype=int)

    def fault(start: int, length: int) -> slice:
        label[start : start + length] = 1
        return slice(start, start + length)

    temperature[fault(1800, 8)] += 12.0
    vibration[fault(2900, 60)] += np.linspace(0.5, 1.5, 60)
    s = fault(4000, 48)
    pressure[s] = pressure[s.start]
    pressure[fault(5100, 150)] -= np.linspace(0.0, 0.8, 150)
    return pd.DataFrame({
        "timestamp": pd.date_range("2026-01-05", periods=n, freq="5min").strftime(
            "%Y-%m-%d %H:%M:%S"),
        "temperature": temperature.round(3),
        "vibration": vibration.round(4),
        "pressure": pressure.round(4),
        "label": label,
    })


def main() -> int:
    frame = make()
    tmp = OUT.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(OUT)
    print(f"wrote {OUT}: {len(frame)} rows, {int(frame['label'].sum())} labelled points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
