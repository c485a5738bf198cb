"""Stages fetch, preprocess and split."""

from __future__ import annotations

from pathlib import Path

from rnnad.config import Params
from rnnad.datasets import nab
from rnnad.io import atomic_dir, series_filename, sha256_file, write_json
from rnnad.pipeline.common import INDEX, load_index, load_series, log
from rnnad.split import fit_scaler, make_split


def fetch_stage(params: Params, raw_dir: Path) -> None:
    files = nab.fetch(raw_dir, params.fetch.commit, retries=params.fetch.retries,
                      timeout_s=params.fetch.timeout_s)
    log.info("fetched %d verified files into %s", len(files), raw_dir)


def preprocess_stage(params: Params, raw_dir: Path, out_dir: Path) -> None:
    p = params.preprocess
    chosen = nab.select_series(nab.available_series(raw_dir), p.series)
    windows = nab.load_windows(raw_dir)
    index = []
    with atomic_dir(out_dir) as tmp:
        for sid in chosen:
            series = nab.load_series(raw_dir, sid, windows, max_nan_run=p.max_nan_run,
                                     disorder=p.disorder, gap_factor=p.gap_factor)
            name = series_filename(sid, ".npz")
            series.save(tmp / name)
            index.append({"id": sid, "file": name, "points": len(series),
                          "channels": series.channels, "sha256": sha256_file(tmp / name),
                          **series.report})
            if series.report.get("duplicates") or series.report.get("backward_steps"):
                log.warning("%s: %d duplicated and %d backward timestamps kept in file order",
                            sid, series.report["duplicates"], series.report["backward_steps"])
        write_json(tmp / INDEX, {"dataset": "nab", "series": index})
    log.info("preprocessed %d series into %s", len(index), out_dir)


def split_stage(params: Params, processed_dir: Path, out_path: Path) -> None:
    splits = {}
    for entry in load_index(processed_dir):
        series = load_series(processed_dir, entry)
        split = make_split(len(series), params.split, series.id)
        scaler = fit_scaler(series.values, series.labels, split)
        splits[series.id] = {**split.to_dict(), "scaler": scaler.to_dict()}
    write_json(out_path, {"protocol": params.split.protocol, "series": splits})
