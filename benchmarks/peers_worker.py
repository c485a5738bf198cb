"""Fit and score NAB series with a peer library; runs inside the peers' own virtual
environment (made by ``benchmarks/speed.py``), never in the project's.

    python benchmarks/peers_worker.py PEER MIRROR_NAB OUT_DIR SERIES...

PEER is ``pyod_lstmad`` (pyod.models.ts_lstm.LSTMAD) or ``merlion_lstmed``
(merlion.models.anomaly.lstm_ed.LSTMED), each with its library defaults. For each series: fit on
the first ``fit_points`` values (given by the caller, NAB's probationary period), score every
value, and write ``OUT_DIR/<i>.npz`` with the scores (NaN where the library gives none) and the
fit and score times (perf_counter, seconds). The caller computes every measure, with the same
code it uses for rnnad.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def pyod_lstmad(train: np.ndarray, values: np.ndarray, stamps: pd.DatetimeIndex
                ) -> tuple[np.ndarray, float, float]:
    from pyod.models.ts_lstm import LSTMAD

    model = LSTMAD()
    start = time.perf_counter()
    model.fit(train[:, None])
    fitted = time.perf_counter()
    scores = model.decision_function(values[:, None])
    return np.asarray(scores, dtype=np.float64), fitted - start, time.perf_counter() - fitted


def merlion_lstmed(train: np.ndarray, values: np.ndarray, stamps: pd.DatetimeIndex
                   ) -> tuple[np.ndarray, float, float]:
    from merlion.models.anomaly.lstm_ed import LSTMED, LSTMEDConfig
    from merlion.utils import TimeSeries

    n_fit = len(train)
    model = LSTMED(LSTMEDConfig())
    series = pd.Series(values, index=stamps)
    start = time.perf_counter()
    model.train(TimeSeries.from_pd(series.iloc[:n_fit]))
    fitted = time.perf_counter()
    out = model.get_anomaly_score(TimeSeries.from_pd(series.iloc[n_fit:]),
                                  time_series_prev=TimeSeries.from_pd(series.iloc[:n_fit]))
    score_s = time.perf_counter() - fitted
    scored = out.to_pd().iloc[:, 0]
    full = pd.Series(np.nan, index=stamps)
    full.loc[scored.index.intersection(stamps)] = scored.loc[scored.index.intersection(stamps)]
    return full.to_numpy(dtype=np.float64), fitted - start, score_s


PEERS = {"pyod_lstmad": pyod_lstmad, "merlion_lstmed": merlion_lstmed}


def main(argv: list[str]) -> int:
    peer, nab_root, out_dir, jobs = argv[0], Path(argv[1]), Path(argv[2]), json.loads(argv[3])
    run = PEERS[peer]
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, job in enumerate(jobs):
        frame = pd.read_csv(nab_root / "data" / f"{job['series']}.csv")
        # one record per time step, as rnnad and NAB's scorer count them: a regular clock (NAB's
        # timestamps repeat or jump in a few files, which Merlion would resample)
        stamps = pd.date_range("2000-01-01", periods=len(frame), freq="1min")
        values = frame["value"].to_numpy(dtype=np.float64)
        scores, fit_s, score_s = run(values[: job["fit_points"]], values, stamps)
        np.savez(out_dir / f"{i}.npz", scores=scores, fit_s=fit_s, score_s=score_s)
        print(f"{peer} {job['series']}: fit {fit_s:.2f} s, score {score_s:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
