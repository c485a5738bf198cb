"""Stages fetch, preprocess and split, for the dataset ``data.dataset`` chooses."""

from __future__ import annotations

from pathlib import Path

from rnnad.config import Params
from rnnad.datasets.registry import get_dataset
from rnnad.datasets.series import select_series
from rnnad.io import atomic_dir, series_filename, sha256_file, write_json
from rnnad.pipeline.common import INDEX, load_index, load_series, log
from rnnad.split import fit_scaler, make_split

RAW_ROOT = Path("data/raw")


def raw_dir(params: Params, root: Path = RAW_ROOT) -> Path:
    """Where the chosen dataset's raw files are: ``<root>/<dataset folder>``."""
    return root / get_dataset(params.data.dataset).folder


def fetch_stage(params: Params, root: Path = RAW_ROOT) -> None:
    dataset = get_dataset(params.data.dataset)
    files = dataset.fetch(root / dataset.folder, params)
    log.info("%s: fetched %d verified files into %s", dataset.name, len(files),
             root / dataset.folder)


def preprocess_stage(params: Params, root: Path, out_dir: Path) -> None:
    p = params.preprocess
    dataset = get_dataset(params.data.dataset)
    raw = root / dataset.folder
    chosen = select_series(dataset.series_ids(raw, params), p.series)
    index = []
    with atomic_dir(out_dir) as tmp:
        for sid in chosen:
            series = dataset.load(raw, sid, params)
            name = series_filename(sid, ".npz")
            series.save(tmp / name)
            index.append({"id": sid, "file": name, "points": len(series),
                          "channels": series.channels, "sha256": sha256_file(tmp / name),
                          **series.report})
            if series.report.get("duplicates") or series.report.get("backward_steps"):
                log.warning("%s: %d duplicated and %d backward timestamps kept in file order",
                            sid, series.report["duplicates"], series.report["backward_steps"])
        write_json(tmp / INDEX, {"dataset": dataset.name, "series": index})
    log.info("%s: preprocessed %d series into %s", dataset.name, len(index), out_dir)


def split_stage(params: Params, processed_dir: Path, out_path: Path) -> None:
    splits = {}
    for entry in load_index(processed_dir):
        series = load_series(processed_dir, entry)
        split = make_split(len(series), params.split, series.id, learn_end=series.learn_end)
        scaler = fit_scaler(series.values, series.labels, split)
        splits[series.id] = {**split.to_dict(), "scaler": scaler.to_dict()}
    write_json(out_path, {"protocol": params.split.protocol, "series": splits})
