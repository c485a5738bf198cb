"""ONNX export: parity with torch, dynamic batch, the detector package and the package stage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from rnnad import export
from rnnad.config import ModelParams, Params, TrainParams
from rnnad.datasets.series import Series
from rnnad.io import read_json, series_filename, sha256_file, write_json
from rnnad.models.encdec import EncDecAD, build_model
from rnnad.models.store import load_model, save_model
from rnnad.split import Scaler, Split

REPO = Path(__file__).resolve().parents[1]
LENGTH = 12
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(cell: str, layers: int, channels: int = 1, hidden: int = 8,
               seed: int = 0) -> EncDecAD:
    torch.manual_seed(seed)
    return build_model(channels, ModelParams(cell=cell, hidden=hidden, layers=layers)).eval()


def random_windows(n: int, channels: int = 1, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, LENGTH, channels)).astype(np.float32)


@pytest.mark.parametrize(("cell", "layers", "channels"),
                         [("lstm", 1, 1), ("lstm", 2, 1), ("gru", 2, 1), ("gru", 3, 3)])
def test_onnx_matches_torch_at_any_batch_size(tmp_path: Path, cell: str, layers: int,
                                              channels: int) -> None:
    model = tiny_model(cell, layers, channels)
    path = tmp_path / "m.onnx"
    export.export_onnx(model, path, LENGTH, channels)
    onnx.checker.check_model(onnx.load(str(path)))
    session = export.ort_session(path)
    batch_dim = session.get_inputs()[0].shape[0]
    assert isinstance(batch_dim, str), f"batch axis is fixed at {batch_dim}"
    windows = random_windows(7, channels)
    for batch in (windows[:1], windows):  # batch sizes 1 and 7, neither the example's 2
        out = export.ort_reconstruct(session, batch)
        assert out.shape == batch.shape
        np.testing.assert_allclose(out, export.torch_reconstruct(model, batch), rtol=0,
                                   atol=1e-5)


def test_dynamo_exporter_also_gives_a_dynamic_batch(tmp_path: Path) -> None:
    model = tiny_model("lstm", 2, hidden=4)
    windows = random_windows(7)
    diff = export.export_checked("dyn", model, tmp_path / "d.onnx", windows, 1e-5, dynamo=True)
    assert diff <= 1e-9
    session = export.ort_session(tmp_path / "d.onnx")
    assert export.ort_reconstruct(session, windows[:1]).shape == (1, LENGTH, 1)


def test_export_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    model = tiny_model("gru", 2)
    export.export_onnx(model, tmp_path / "a.onnx", LENGTH, 1)
    export.export_onnx(model, tmp_path / "b.onnx", LENGTH, 1)
    assert sha256_file(tmp_path / "a.onnx") == sha256_file(tmp_path / "b.onnx")


def test_saved_then_loaded_model_exports_like_the_original(tmp_path: Path) -> None:
    model = tiny_model("lstm", 2, seed=3)
    save_model(tmp_path, "cat/series", model, {"channels": 1, "model": ModelParams(
        cell="lstm", hidden=8, layers=2).model_dump()})
    loaded, spec = load_model(tmp_path, "cat/series")
    assert spec["channels"] == 1
    windows = random_windows(20)
    np.testing.assert_array_equal(export.torch_reconstruct(loaded, windows),
                                  export.torch_reconstruct(model, windows))
    diff = export.export_checked("cat/series", loaded, tmp_path / "s.onnx", windows, 1e-5)
    assert 0 <= diff <= 1e-9  # float64 on both sides
    recon = export.ort_reconstruct(export.ort_session(tmp_path / "s.onnx"), windows)
    np.testing.assert_allclose(recon, export.torch_reconstruct(model, windows), atol=1e-5)


def test_parity_failure_names_the_series_and_the_difference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model("lstm", 1)
    real = export.ort_reconstruct
    monkeypatch.setattr(export, "ort_reconstruct", lambda s, b: real(s, b) + 1e-3)
    expected = r"cat/broken: .* by 0\.001 .*> package.atol 1e-05"
    with pytest.raises(export.ParityError, match=expected):
        export.export_checked("cat/broken", model, tmp_path / "b.onnx", random_windows(5), 1e-5)


def test_parity_windows_come_from_the_test_part_evenly_spread() -> None:
    x = np.arange(100, dtype=np.float32)[:, None]
    w = export.parity_windows(x, test_start=60, length=LENGTH, count=5)
    ends = w[:, -1, 0].astype(int)
    assert ends.tolist() == [60, 70, 80, 89, 99]
    np.testing.assert_array_equal(w[0, :, 0], np.arange(60 - LENGTH + 1, 61))
    assert len(export.parity_windows(x, 95, LENGTH, 256)) == 5  # all there are
    with pytest.raises(ValueError, match="no window"):
        export.parity_windows(x[:10], 5, LENGTH, 3)


def test_detector_json_round_trip(tmp_path: Path) -> None:
    model = tiny_model("gru", 1)
    export.export_onnx(model, tmp_path / "a__b.onnx", LENGTH, 1)
    entry = export.series_entry(tmp_path / "a__b.onnx", window=LENGTH, channels=1,
                                scaler={"mean": [1.0], "std": [2.0]}, threshold=0.5,
                                reduce="mean", data_sha256="d" * 64,
                                model={"cell": "gru"})
    export.write_detector(tmp_path, {"a/b": entry}, "rev", "mean")
    spec = read_json(tmp_path / export.DETECTOR_FILE)
    assert spec["series"]["a/b"]["sha256"] == sha256_file(tmp_path / "a__b.onnx")
    assert spec["git_revision"] == "rev" and spec["format"] == export.DETECTOR_FORMAT
    with pytest.raises(export.PackageError, match="missing"):
        export.write_detector(tmp_path, {"x/y": {**entry, "onnx": "nope.onnx"}}, "rev", "mean")


# ---------------------------------------------------------------- the package stage
def make_pipeline_outputs(root: Path, length: int = LENGTH) -> list[str]:
    """What the stages before ``package`` leave, for two short synthetic series."""
    processed, models = root / "data/processed", root / "models"
    processed.mkdir(parents=True)
    index, splits, thresholds = [], {}, {}
    for k, (sid, cell) in enumerate([("synth/sine", "lstm"), ("synth/saw", "gru")]):
        n = 200
        t = np.arange(n)
        values = (np.sin(t / 5.0) if k == 0 else (t % 17) / 17.0)[:, None] * 3.0 + 10.0
        series = Series(sid, np.arange(n).astype("datetime64[m]").astype("datetime64[ns]"),
                        values, np.zeros(n, np.int8), np.zeros((0, 2), np.int64))
        name = series_filename(sid, ".npz")
        series.save(processed / name)
        index.append({"id": sid, "file": name, "points": n, "channels": 1,
                      "sha256": sha256_file(processed / name)})
        split = Split(n, 100, 130)
        scaler = Scaler.fit(values[:100])
        splits[sid] = {**split.to_dict(), "scaler": scaler.to_dict()}
        model_params = ModelParams(cell=cell, hidden=8, layers=2)
        spec = {"series_id": sid, "channels": 1, "window": {"length": length, "stride": 1},
                "model": model_params.model_dump(), "scaler": scaler.to_dict(),
                "split": split.to_dict(), "data_sha256": index[-1]["sha256"],
                "train": TrainParams().model_dump()}
        torch.manual_seed(k)
        save_model(models, sid, build_model(1, model_params), spec)
        thresholds[sid] = 0.25 + k
    write_json(processed / "index.json", {"dataset": "synth", "series": index})
    write_json(root / "data/split/splits.json", {"protocol": "nab", "series": splits})
    write_json(root / "data/scores/thresholds.json", thresholds)
    return [e["id"] for e in index]


def run_package_stage(root: Path, bentoml_home: Path, **package: object) -> dict:
    """The package stage as DVC runs it: a fresh process, so BENTOML_HOME takes effect."""
    params = Params().model_dump()
    params["window"]["length"] = LENGTH
    params["package"].update(model_name="rnnad_test", build_bento=False, **package)
    write_json(root / "params.json", params)
    code = (
        "import json, sys\nfrom pathlib import Path\n"
        "from rnnad.config import Params\nfrom rnnad.pipeline.package import package_stage\n"
        "p = Params.model_validate(json.loads(Path('params.json').read_text()))\n"
        "package_stage(p, Path('data/processed'), Path('data/split/splits.json'),"
        " Path('models'), Path('data/scores'), Path('data/package'),"
        " Path('reports/package.json'), repo=Path('.'))\n"
    )
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home), "BENTOML_DO_NOT_TRACK": "True"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_json(root / "reports/package.json")


def test_package_stage_writes_package_store_model_and_report(tmp_path: Path,
                                                             bentoml_home: Path) -> None:
    ids = make_pipeline_outputs(tmp_path)
    report = run_package_stage(tmp_path, bentoml_home, parity_windows=16)
    package = tmp_path / "data/package"
    detector = read_json(package / export.DETECTOR_FILE)
    assert sorted(detector["series"]) == sorted(ids)
    assert detector["git_revision"] == export.git_revision(tmp_path)  # "unknown": not in git
    sine = detector["series"]["synth/sine"]
    assert sine["window"] == LENGTH and sine["channels"] == 1 and sine["reduce"] == "mean"
    assert sine["threshold"] == 0.25 and sine["model"]["cell"] == "lstm"
    spec = read_json(tmp_path / "models" / "synth__sine.json")
    assert sine["scaler"] == spec["scaler"] and sine["data_sha256"] == spec["data_sha256"]
    assert sine["params"]["train"] == spec["train"] and sine["params"]["split"] == spec["split"]
    assert sine["params"]["threshold"]["method"] == "quantile"
    # the report: stable numbers at numeric keys, tags and checksums under string keys
    assert report["series"] == 2 and 0 <= report["max_parity_abs_diff"] <= 1e-5
    assert report["bento_tag"] == "" and report["model_tag"].startswith("rnnad_test:")
    assert report["checksums"] == {p.name: sha256_file(p) for p in package.iterdir()}
    assert set(report["parity_max_abs_diff"]) == set(ids)
    # the BentoML model is a copy of the package, in the private store
    version = report["model_tag"].split(":")[1]
    stored = bentoml_home / "models" / "rnnad_test" / version
    for name, digest in report["checksums"].items():
        assert sha256_file(stored / name) == digest
    assert "rnnad_test" in (stored / "model.yaml").read_text()


def test_package_stage_refuses_a_model_trained_on_other_data(tmp_path: Path) -> None:
    make_pipeline_outputs(tmp_path)
    spec_path = tmp_path / "models" / "synth__saw.json"
    spec = read_json(spec_path)
    write_json(spec_path, {**spec, "data_sha256": "0" * 64})
    params = Params().model_dump()
    params["window"]["length"] = LENGTH
    from rnnad.pipeline.package import package_stage

    with pytest.raises(ValueError, match="synth/saw: model trained on other data"):
        package_stage(Params.model_validate(params), tmp_path / "data/processed",
                      tmp_path / "data/split/splits.json", tmp_path / "models",
                      tmp_path / "data/scores", tmp_path / "data/package",
                      tmp_path / "reports/package.json", repo=tmp_path)
    assert not (tmp_path / "data/package").exists()  # nothing half-written
