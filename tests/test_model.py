"""The encoder-decoder, its training loop and the model store."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnad.config import ModelParams, TrainParams
from rnnad.models import training
from rnnad.models.encdec import EncDecAD, build_model
from rnnad.models.store import load_model, save_model
from rnnad.models.training import TrainingError, fit, seed_everything
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
        first_step, _ = model.decoder(torch.zeros(3, 1, 2), state)
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
