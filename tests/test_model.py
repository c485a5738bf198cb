"""The encoder-decoder, its training loop and the model store."""

from __future__ import annotations

import hashlib
import json
import pickle
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnad.config import ModelParams, Params, TrainParams
from rnnad.datasets.series import Series
from rnnad.models import training
from rnnad.models.encdec import EncDecAD, build_model
from rnnad.models.store import ModelStoreError, load_model, save_model
from rnnad.models.training import TrainingError, fit, seed_everything
from rnnad.pipeline import train as train_pipeline
from rnnad.split import Scaler, Split
from rnnad.windows import sliding_windows

LENGTH = 16
# threads=1: see the one_torch_thread fixture in conftest.py
pytestmark = pytest.mark.usefixtures("one_torch_thread")
FAST = TrainParams(seed=0, epochs=25, batch_size=32, lr=0.01, patience=25, threads=1,
                   min_windows=16)


def sine_windows(n: int, seed: int) -> np.ndarray:
    """[n, LENGTH, 1] windows of a unit sine (period 20) at random phases."""
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, n)
    t = np.arange(LENGTH)
    return np.sin(2 * np.pi * t[None, :] / 20.0 + phases[:, None])[:, :, None].astype(np.float32)


def train_sine(params: TrainParams = FAST, cell: str = "lstm") -> tuple[EncDecAD, float,
                                                                         training.TrainResult]:
    seed_everything(params.seed, params.threads)
    model = build_model(1, ModelParams(cell=cell, hidden=16))
    val = sine_windows(64, seed=2)
    before = training._loss(model, torch.from_numpy(val), 64)
    result = fit(model, sine_windows(256, seed=1), val, params)
    return model, before, result


@pytest.fixture(scope="module")
def trained() -> tuple[EncDecAD, float, training.TrainResult, float]:
    # module-scoped, so it cannot use the function-scoped one_torch_thread fixture:
    # seed_everything(threads=1) in train_sine sets the thread count itself
    start = time.perf_counter()
    model, before, result = train_sine()
    return model, before, result, time.perf_counter() - start


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape(cell: str, layers: int, channels: int) -> None:
    model = build_model(channels, ModelParams(cell=cell, hidden=8, layers=layers, dropout=0.1))
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    assert isinstance(model.encoder, rnn) and isinstance(model.decoder, rnn)
    assert model.encoder.num_layers == layers
    x = torch.randn(5, 12, channels)
    out = model.eval()(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    # a single window and a batch of one agree
    assert torch.allclose(model(x[:1]), out[:1], atol=1e-6)


def test_unknown_cell() -> None:
    with pytest.raises(ValueError, match=r"model\.cell"):
        EncDecAD(1, 8, cell="rnn")


def test_decoder_runs_in_reverse_order() -> None:
    """The decoder's first step (from the encoder state alone) reconstructs the last point."""
    torch.manual_seed(0)
    model = EncDecAD(2, 8).eval()
    x = torch.randn(3, 10, 2)
    with torch.no_grad():
        _, state = model.encoder(x)
        first_step, _ = model.decoder(torch.zeros(3, 1, 1), state)
        out = model(x)
    assert torch.allclose(model.output(first_step)[:, 0], out[:, -1], atol=1e-6)
    assert not torch.allclose(model.output(first_step)[:, 0], out[:, 0], atol=1e-3)


def test_fit_lowers_validation_loss_quickly(trained) -> None:
    model, before, result, seconds = trained
    assert result.best_val_loss < 0.2 * before
    assert result.best_val_loss < 0.05  # unit sine: variance 0.5
    assert seconds < 20
    assert len(result.history) == FAST.epochs
    assert result.history[result.best_epoch]["val_loss"] == result.best_val_loss
    assert not model.training  # left in eval mode


def test_reconstruction_is_in_input_order(trained) -> None:
    model = trained[0]
    x = sine_windows(32, seed=3)
    with torch.no_grad():
        recon = model(torch.from_numpy(x)).numpy()
    aligned = float(np.mean((recon - x) ** 2))
    reversed_ = float(np.mean((recon - x[:, ::-1]) ** 2))
    assert aligned < 0.05
    assert reversed_ > 10 * aligned


def test_early_stopping_restores_best_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted = iter([1.0, 0.5, 0.7, 0.8, 0.9, 0.1, 0.1])
    snapshots: list[dict[str, torch.Tensor]] = []

    def fake_loss(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> float:
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scripted)

    monkeypatch.setattr(training, "_loss", fake_loss)
    seed_everything(0, 1)
    model = build_model(1, ModelParams(hidden=8))
    epochs_seen = []
    params = FAST.model_copy(update={"epochs": 7, "patience": 3})
    result = fit(model, sine_windows(64, 1), sine_windows(16, 2), params,
                 on_epoch=lambda e, tr, va: epochs_seen.append((e, va)))
    # best at epoch 1; epochs 2, 3, 4 do not improve -> stop after epoch 4
    assert result.best_epoch == 1
    assert result.best_val_loss == 0.5
    assert epochs_seen == [(0, 1.0), (1, 0.5), (2, 0.7), (3, 0.8), (4, 0.9)]
    assert [h["val_loss"] for h in result.history] == [1.0, 0.5, 0.7, 0.8, 0.9]
    final = model.state_dict()
    assert all(torch.equal(final[k], snapshots[1][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots[4][k]) for k in final)


def test_restored_model_has_the_best_validation_loss() -> None:
    seed_everything(0, 1)
    model = build_model(1, ModelParams(hidden=8))
    val = sine_windows(32, 2)
    params = FAST.model_copy(update={"epochs": 6, "lr": 0.05})
    result = fit(model, sine_windows(64, 1), val, params)
    assert training._loss(model, torch.from_numpy(val), 8) == pytest.approx(
        result.best_val_loss, rel=1e-5)
    assert result.best_val_loss == min(h["val_loss"] for h in result.history)


def _weights(seed: int) -> dict[str, torch.Tensor]:
    params = FAST.model_copy(update={"seed": seed, "epochs": 3})
    seed_everything(params.seed, params.threads)
    model = build_model(1, ModelParams(cell="gru", hidden=8, layers=2, dropout=0.2))
    fit(model, sine_windows(64, 1), sine_windows(16, 2), params)
    return model.state_dict()


def test_same_seed_gives_identical_weights() -> None:
    a, b, c = _weights(7), _weights(7), _weights(8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_too_few_windows() -> None:
    model = build_model(1, ModelParams(hidden=4))
    with pytest.raises(TrainingError, match=r"10 training windows, fewer than train.min_windows"):
        fit(model, sine_windows(10, 1), sine_windows(4, 2), FAST)
    with pytest.raises(TrainingError, match="no validation window"):
        fit(model, sine_windows(32, 1), sine_windows(0, 2), FAST)


def test_non_finite_loss_is_an_error() -> None:
    model = build_model(1, ModelParams(hidden=4))
    bad = sine_windows(32, 1)
    bad[3, 2, 0] = np.nan
    with pytest.raises(TrainingError, match="loss became nan"):
        fit(model, bad, sine_windows(4, 2), FAST.model_copy(update={"batch_size": 64}))


def test_infinite_data_diverges_with_a_clear_error() -> None:
    """An infinite input value makes the loss non-finite in the first batch that holds it."""
    seed_everything(0, 1)
    model = build_model(1, ModelParams(hidden=4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = sine_windows(64, 1)
    bad[40, 5, 0] = np.inf  # second batch of 32 in the shuffled order, or the first
    with pytest.raises(TrainingError, match=r"training diverged: loss became (nan|inf) at epoch 0 "
                                            r"\(train.lr=0.01\); lower train.lr"):
        fit(model, bad, sine_windows(8, 2), FAST)
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    assert set(before) == set(model.state_dict())


def test_non_finite_gradient_norm_is_an_error_before_any_step() -> None:
    """A finite loss with an infinite gradient (checked before clipping, which would spread NaN
    into every gradient) stops training at that batch; the weights never take the step."""
    seed_everything(0, 1)
    model = build_model(1, ModelParams(hidden=4))
    calls = {"n": 0}

    def blow_up_third_batch(grad: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return grad * float("inf") if calls["n"] == 3 else grad

    model.output.weight.register_hook(blow_up_third_batch)
    snapshots: list[dict[str, torch.Tensor]] = []
    real_step = torch.optim.Adam.step

    def spy_step(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return out

    params = FAST.model_copy(update={"batch_size": 32})  # 64 windows: 2 batches per epoch
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "step", spy_step)
        with pytest.raises(TrainingError, match=r"training diverged: gradient norm became "
                                                r"(inf|nan) at epoch 1 \(train.lr=0.01\); "
                                                r"lower train.lr"):
            fit(model, sine_windows(64, 1), sine_windows(8, 2), params)
    assert len(snapshots) == 2  # the two steps of epoch 0; none with the infinite gradient
    final = model.state_dict()
    assert all(torch.equal(final[k], snapshots[-1][k]) for k in final)
    assert all(torch.isfinite(v).all() for v in final.values())


def test_save_model_refuses_non_finite_weights(tmp_path: Path) -> None:
    params = ModelParams(hidden=4)
    model = build_model(1, params)
    with torch.no_grad():
        model.encoder.weight_hh_l0[1, 2] = float("nan")
    with pytest.raises(ModelStoreError, match=r"cat/series: refusing to save a model with "
                                              r"non-finite weights \(encoder.weight_hh_l0\); "
                                              r"training diverged: lower train.lr"):
        save_model(tmp_path / "models", "cat/series", model,
                   {"channels": 1, "model": params.model_dump()})
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    with torch.no_grad():
        model.encoder.weight_hh_l0[1, 2] = 0.0
        model.output.bias[0] = float("-inf")
    with pytest.raises(ModelStoreError, match=r"\(output.bias\)"):
        save_model(tmp_path, "cat/series", model, {"channels": 1, "model": params.model_dump()})
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "models"])


# --- the train stage on synthetic series (no DVC): errors, atomic output, provenance -------------

def _synthetic_series(series_id: str, n: int = 200, seed: int = 0) -> Series:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = (np.sin(2 * np.pi * t / 20.0) + 0.05 * rng.normal(size=n))[:, None]
    return Series(id=series_id, timestamps=np.arange(n).astype("datetime64[m]").astype(
        "datetime64[ns]"), values=values, labels=np.zeros(n, dtype=np.int8),
        windows=np.zeros((0, 2), dtype=np.int64))


def _run_train_stage(monkeypatch: pytest.MonkeyPatch, root: Path, series: list[Series],
                     params: Params, repo: Path | None = None) -> None:
    """train_stage on in-memory series, writing root/models and root/reports/train (in this
    process: ``train.jobs`` 1, since worker processes would not see the patched loaders)."""
    assert params.train.jobs == 1
    by_file = {f"{s.id}.npz": s for s in series}
    monkeypatch.setattr(train_pipeline, "load_index", lambda _dir: [
        {"id": s.id, "file": name, "sha256": hashlib.sha256(name.encode()).hexdigest()}
        for name, s in by_file.items()])
    monkeypatch.setattr(train_pipeline, "load_series", lambda _dir, entry: by_file[entry["file"]])
    monkeypatch.setattr(train_pipeline, "load_splits", lambda _path: {
        s.id: (Split(len(s), 120, 160), Scaler((0.0,), (1.0,))) for s in series})
    train_pipeline.train_stage(params, root / "processed", root / "splits.json",
                               root / "models", root / "reports" / "train", repo=repo)


TINY = Params.model_validate({"window": {"length": 8}, "model": {"hidden": 4},
                              "train": {"epochs": 2, "threads": 1, "jobs": 1}})


def test_train_stage_error_names_the_series_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = _synthetic_series("cat/good")
    bad = _synthetic_series("cat/bad", seed=1)
    bad.values[50, 0] = np.inf  # in the training part
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "previous.json").write_text("{}")
    with pytest.raises(TrainingError, match=r"^series cat/bad: training diverged: loss became "
                                            r"(nan|inf) at epoch 0 \(train.lr=0.01\); "
                                            r"lower train.lr$"):
        _run_train_stage(monkeypatch, tmp_path, [good, bad], TINY, repo=tmp_path)
    # the previous models are untouched, and no temporary directory is left
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["previous.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "reports"]
    assert list((tmp_path / "reports").iterdir()) == []


def test_train_stage_removes_what_a_killed_run_left(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".models.k1ll3d.tmp").mkdir()
    (tmp_path / ".models.k1ll3d.tmp" / "half.pt").write_bytes(b"partial")
    (tmp_path / ".models.old").mkdir()
    (tmp_path / ".models2.abc.tmp").write_text("")  # another output's temporary: kept
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / ".train.zz9.tmp").mkdir()
    _run_train_stage(monkeypatch, tmp_path, [_synthetic_series("cat/a")], TINY, repo=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".models2.abc.tmp", "models",
                                                         "reports"]
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["train"]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["cat__a.json", "cat__a.pt"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def test_model_spec_records_provenance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "params.yaml").write_text("train: {}\n")
    (repo / "dvc.lock").write_text("schema: '2.0'\n")
    (repo / "reports").mkdir()
    (repo / "reports" / "metrics.json").write_text("{}\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "start")
    head = _git(repo, "rev-parse", "HEAD")
    series = [_synthetic_series("cat/a"), _synthetic_series("cat/b", seed=2)]

    def spec(root: Path, sid: str = "cat/a") -> dict:
        return json.loads((root / "models" / (sid.replace("/", "__") + ".json")).read_text())

    # files the pipeline writes (dvc.lock, reports/) and untracked files do not make it dirty
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (repo / "reports" / "metrics.json").write_text("{\"changed\": 1}\n")
    (repo / "untracked.txt").write_text("x")
    _run_train_stage(monkeypatch, tmp_path / "clean", series, TINY, repo=repo)
    first = (tmp_path / "clean" / "models" / "cat__a.json").read_bytes()
    prov = spec(tmp_path / "clean")["provenance"]
    assert prov == spec(tmp_path / "clean", "cat/b")["provenance"]
    assert prov["git_revision"] == head and len(head) == 40
    assert prov["git_dirty"] is False
    assert prov["python"] == platform.python_version()
    assert prov["packages"] == {"torch": torch.__version__, "numpy": np.__version__,
                                "rnnad": metadata.version("rnnad")}
    # train.jobs says how many series train at once, not what a model is: left out
    groups = {"window": TINY.window.model_dump(), "model": TINY.model.model_dump(),
              "train": TINY.train.model_dump(exclude={"jobs"})}
    canonical = json.dumps(groups, sort_keys=True, separators=(",", ":"))
    assert prov["params_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    # the rest of the spec is what it was
    assert spec(tmp_path / "clean")["train"] == TINY.train.model_dump(exclude={"jobs"})

    # a second run at the same commit writes the same bytes, weights included
    _run_train_stage(monkeypatch, tmp_path / "again", series, TINY, repo=repo)
    for name in ("cat__a.json", "cat__a.pt", "cat__b.json", "cat__b.pt"):
        assert (tmp_path / "again" / "models" / name).read_bytes() == \
            (tmp_path / "clean" / "models" / name).read_bytes(), name
    assert (tmp_path / "again" / "models" / "cat__a.json").read_bytes() == first

    # a modified tracked input makes it dirty; other params give another params hash
    (repo / "params.yaml").write_text("train: {lr: 0.1}\n")
    other = TINY.model_copy(update={"train": TINY.train.model_copy(update={"lr": 0.02})})
    _run_train_stage(monkeypatch, tmp_path / "dirty", series, other, repo=repo)
    dirty = spec(tmp_path / "dirty")["provenance"]
    assert dirty["git_dirty"] is True and dirty["git_revision"] == head
    assert dirty["params_sha256"] != prov["params_sha256"]

    # outside git: unknown revision, dirty null
    outside = tmp_path / "no-git"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    _run_train_stage(monkeypatch, tmp_path / "plain", series, TINY, repo=outside)
    plain = spec(tmp_path / "plain")["provenance"]
    assert plain["git_revision"] == "unknown" and plain["git_dirty"] is None
    assert plain["params_sha256"] == prov["params_sha256"]


def test_store_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(3)
    params = ModelParams(cell="gru", hidden=6, layers=2, dropout=0.1)
    model = build_model(3, params).eval()
    spec = {"channels": 3, "model": params.model_dump(), "window": {"length": 8, "stride": 1}}
    save_model(tmp_path, "cat/some_series", model, spec)
    assert {p.name for p in tmp_path.iterdir()} == {"cat__some_series.pt", "cat__some_series.json"}

    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    loaded, loaded_spec = load_model(tmp_path, "cat/some_series")
    assert calls and all(c.get("weights_only") is True for c in calls)
    assert loaded_spec == spec
    assert not loaded.training
    x = torch.randn(4, 8, 3)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    ref = model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in loaded.state_dict().items())


class _Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_store_refuses_pickled_code(tmp_path: Path) -> None:
    params = ModelParams(hidden=4)
    save_model(tmp_path, "a/b", build_model(1, params), {"channels": 1,
                                                       "model": params.model_dump()})
    torch.save({"evil": _Payload()}, tmp_path / "a__b.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_model(tmp_path, "a/b")


def test_training_windows_from_a_series(sine_series: np.ndarray) -> None:
    """The conftest sine, windowed as the pipeline does, trains like the synthetic windows."""
    w = sliding_windows(sine_series.astype(np.float32), LENGTH)
    assert w.shape == (len(sine_series) - LENGTH + 1, LENGTH, 1)
    seed_everything(0, 1)
    model = build_model(1, ModelParams(hidden=8))
    result = fit(model, w[:400:2], w[400:], FAST.model_copy(update={"epochs": 3}))
    assert np.isfinite(result.best_val_loss)
