"""Stage package: ONNX export with parity checks, BentoML model and Bento."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rnnad.config import Params
from rnnad.io import atomic_dir, read_json, series_filename, write_json
from rnnad.pipeline.common import (
    SPLITS,
    THRESHOLDS,
    load_index,
    load_series,
    load_splits,
    log,
)
from rnnad.split import Scaler


def package_stage(params: Params, processed_dir: Path, splits_path: Path, models_dir: Path,
                  scores_dir: Path, out_dir: Path, report_path: Path,
                  repo: Path = Path(".")) -> dict[str, Any]:
    """One ONNX file per series (parity with torch checked) and ``detector.json`` in
    ``out_dir``; saved as a BentoML model, a Bento built from ``repo/bentofile.yaml`` when
    ``package.build_bento``; the tags, checksums and parity written to ``report_path``."""
    from rnnad import export
    from rnnad.models.store import load_model

    start = time.perf_counter()
    p, length = params.package, params.window.length
    splits = load_splits(splits_path)
    thresholds = read_json(scores_dir / THRESHOLDS)
    series_info: dict[str, Any] = {}
    parity: dict[str, float] = {}
    revision = export.git_revision(repo)
    with atomic_dir(out_dir) as tmp:
        for entry in load_index(processed_dir):
            sid = entry["id"]
            model, spec = load_model(models_dir, sid)
            split, scaler = splits[sid]
            _check_package_inputs(sid, spec, entry, scaler, thresholds, length)
            x = scaler.transform(load_series(processed_dir, entry).values)
            windows = export.parity_windows(x, split.val_end, length, p.parity_windows)
            onnx_name = series_filename(sid, ".onnx")
            parity[sid] = export.export_checked(sid, model, tmp / onnx_name, windows, p.atol)
            series_info[sid] = export.series_entry(
                tmp / onnx_name, window=length, channels=spec["channels"],
                scaler=scaler.to_dict(), threshold=thresholds[sid],
                reduce=params.evaluate.reduce, data_sha256=spec["data_sha256"],
                model=spec["model"], channel_names=spec.get("channel_names"),
                targets=spec.get("targets"), error_scale=spec.get("error_scale"), params={
                    "window": spec["window"], "model": spec["model"], "train": spec["train"],
                    "split": spec["split"], "reduce": params.evaluate.reduce,
                    "threshold": params.evaluate.threshold.model_dump()})
        if not series_info:
            raise ValueError(f"{processed_dir}: no series to package")
        export.write_detector(tmp, series_info, revision, params.evaluate.reduce)
    checksums = export.file_checksums(out_dir)
    metadata = {"format": export.DETECTOR_FORMAT, "series": len(series_info), "window": length,
                "reduce": params.evaluate.reduce, "git_revision": revision,
                "detector_sha256": checksums[export.DETECTOR_FILE]}
    name = f"rnnad_{params.data.dataset}" if p.model_name == "auto" else p.model_name
    model_tag = export.save_detector(out_dir, name, metadata,
                                     {"project": "rnnad", "git_revision": revision})
    log.info("saved %d series as BentoML model %s", len(series_info), model_tag)
    bento_tag = export.build_bento(repo, model_tag) if p.build_bento else ""
    if bento_tag:
        log.info("built Bento %s", bento_tag)
    report = {
        "series": len(series_info),
        "max_parity_abs_diff": max(parity.values(), default=0.0),
        "atol": p.atol,
        "model_tag": model_tag,
        "bento_tag": bento_tag,
        "git_revision": revision,
        "checksums": checksums,
        "parity_max_abs_diff": parity,
    }
    write_json(report_path, report)
    log.info("packaged %d series in %.1f s (max parity diff %.2g)", len(series_info),
             time.perf_counter() - start, report["max_parity_abs_diff"])
    return report


def _check_package_inputs(sid: str, spec: dict[str, Any], entry: dict[str, Any],
                          scaler: Scaler, thresholds: dict[str, float], length: int) -> None:
    """The model, split, scores and processed data must come from one pipeline run."""
    if sid not in thresholds:
        raise ValueError(f"{sid}: no threshold in {THRESHOLDS}; rerun the evaluate stage")
    if spec["window"]["length"] != length:
        raise ValueError(f"{sid}: model trained with window {spec['window']['length']} but "
                         f"window.length is {length}; rerun the train stage")
    if spec["data_sha256"] != entry["sha256"]:
        raise ValueError(f"{sid}: model trained on other data than {entry['file']} "
                         "(sha256 differs); rerun the train stage")
    if Scaler.from_dict(spec["scaler"]) != scaler:
        raise ValueError(f"{sid}: model's scaler differs from {SPLITS}; rerun the train stage")
