"""The datasets ``data.dataset`` chooses from, behind one interface the stages call.

Each dataset is one module (``nab``, ``smap_msl``, ``cmapss``, ``kddcup99``, ``usercsv``) with
``fetch``, ``available_series`` and ``load_series``, and optionally ``extra_measures`` (its own
measures, e.g. C-MAPSS's lead time). A :class:`Dataset` adapts one module to the pipeline's
params; adding a dataset means one module and one entry in :data:`DATASETS`, no stage changes.
Raw files live in ``data/raw/<folder>/``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnad.config import Params
from rnnad.datasets.series import Series

Measures = Callable[[Series, np.ndarray, np.ndarray], dict[str, Any]]


@dataclass(frozen=True)
class Dataset:
    name: str
    folder: str  # data/raw/<folder>, and <mirror>/<folder>
    fetch: Callable[[Path, Params], list[Path]]
    series_ids: Callable[[Path, Params], list[str]]
    load: Callable[[Path, str, Params], Series]
    extra_measures: Measures | None = None
    nab_scoring: bool = False  # NAB's scorer applies (the NAB corpus)


def _nab() -> Dataset:
    from rnnad.datasets import nab

    windows = functools.cache(nab.load_windows)  # one parse of the label file per stage run

    def load(raw: Path, sid: str, p: Params) -> Series:
        return nab.load_series(raw, sid, windows(raw), max_nan_run=p.preprocess.max_nan_run,
                               disorder=p.preprocess.disorder,
                               gap_factor=p.preprocess.gap_factor)

    return Dataset("nab", "nab",
                   lambda dest, p: nab.fetch(dest, p.fetch.commit, retries=p.fetch.retries,
                                             timeout_s=p.fetch.timeout_s),
                   lambda raw, p: nab.available_series(raw), load, nab_scoring=True)


def _smap_msl(spacecraft: str) -> Dataset:
    from rnnad.datasets import smap_msl

    return Dataset(spacecraft.lower(), smap_msl.FOLDER,
                   lambda dest, p: smap_msl.fetch(dest, retries=p.fetch.retries,
                                                  timeout_s=p.fetch.timeout_s),
                   lambda raw, p: smap_msl.available_series(raw, spacecraft),
                   lambda raw, sid, p: smap_msl.load_series(raw, sid))


def _cmapss() -> Dataset:
    from rnnad.datasets import cmapss

    return Dataset("cmapss", cmapss.FOLDER,
                   lambda dest, p: cmapss.fetch(dest, retries=p.fetch.retries,
                                                timeout_s=p.fetch.timeout_s),
                   lambda raw, p: cmapss.available_series(raw, p.data.cmapss),
                   lambda raw, sid, p: cmapss.load_series(raw, sid, p.data.cmapss),
                   extra_measures=cmapss.extra_measures)


def _kddcup99() -> Dataset:
    from rnnad.datasets import kddcup99

    return Dataset("kddcup99", kddcup99.FOLDER,
                   lambda dest, p: kddcup99.fetch(dest, retries=p.fetch.retries,
                                                  timeout_s=p.fetch.timeout_s),
                   lambda raw, p: kddcup99.available_series(raw),
                   lambda raw, sid, p: kddcup99.load_series(raw, sid),
                   extra_measures=kddcup99.extra_measures)


def _csv() -> Dataset:
    from rnnad.datasets import usercsv

    def load(raw: Path, sid: str, p: Params) -> Series:
        return usercsv.load_series(raw, sid, p.data.csv, max_nan_run=p.preprocess.max_nan_run,
                                   disorder=p.preprocess.disorder,
                                   gap_factor=p.preprocess.gap_factor)

    return Dataset("csv", usercsv.FOLDER, lambda dest, p: usercsv.fetch(dest, p.data.csv),
                   lambda raw, p: usercsv.available_series(raw, p.data.csv), load)


DATASETS: dict[str, Callable[[], Dataset]] = {
    "nab": _nab,
    "smap": lambda: _smap_msl("SMAP"),
    "msl": lambda: _smap_msl("MSL"),
    "cmapss": _cmapss,
    "kddcup99": _kddcup99,
    "csv": _csv,
}


def get_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"data.dataset: unknown dataset {name!r}; one of {', '.join(DATASETS)}")
    return DATASETS[name]()
