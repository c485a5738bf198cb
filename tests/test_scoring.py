"""Causal per-point scores from window reconstructions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rnnad.scoring import score_points, window_scores


def perfect(batch: np.ndarray) -> np.ndarray:
    return batch.copy()


def local_nonlinear(batch: np.ndarray) -> np.ndarray:
    """A reconstructor that mixes every position of a window (but nothing outside it)."""
    return 0.5 * np.tanh(np.roll(batch, 1, axis=1)) + batch.mean(axis=1, keepdims=True)


@pytest.mark.parametrize("reduce", ["mean", "last", "max"])
def test_perfect_reconstructor_scores_zero(reduce: str) -> None:
    x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    scores = score_points(x, 8, perfect, reduce)
    assert scores.shape == (50,)
    assert np.isnan(scores[:7]).all()
    np.testing.assert_array_equal(scores[7:], 0.0)


@pytest.mark.parametrize("reduce", ["mean", "last", "max"])
def test_constant_offset_gives_known_score(reduce: str) -> None:
    x = np.random.default_rng(1).normal(size=(40, 2)).astype(np.float32)
    offsets = np.array([0.5, 1.5], dtype=np.float32)

    def shifted(batch: np.ndarray) -> np.ndarray:
        return batch + offsets

    scores = score_points(x, 5, shifted, reduce)
    # squared error averaged over channels: (0.25 + 2.25) / 2
    np.testing.assert_allclose(scores[4:], 1.25, rtol=1e-6)
    assert np.isnan(scores[:4]).all()


def test_reductions_hand_checked() -> None:
    windows = np.zeros((1, 3, 2))
    recon = np.array([[[2.0, 0.0], [0.0, 4.0], [1.0, 1.0]]])
    # per-position error (mean over channels of squares): 2, 8, 1
    assert window_scores(windows, recon, "mean")[0] == pytest.approx(11 / 3)
    assert window_scores(windows, recon, "last")[0] == pytest.approx(1.0)
    assert window_scores(windows, recon, "max")[0] == pytest.approx(8.0)


def test_score_points_uses_the_window_ending_at_each_point() -> None:
    x = np.zeros((10, 1), dtype=np.float32)
    x[6] = 2.0  # only windows covering point 6 reconstruct badly with a zero reconstructor

    def zeros(batch: np.ndarray) -> np.ndarray:
        return np.zeros_like(batch)

    last = score_points(x, 3, zeros, "last")
    np.testing.assert_array_equal(last[2:], [0, 0, 0, 0, 4, 0, 0, 0])
    mean = score_points(x, 3, zeros, "mean")
    np.testing.assert_allclose(mean[2:], [0, 0, 0, 0, 4 / 3, 4 / 3, 4 / 3, 0])
    mx = score_points(x, 3, zeros, "max")
    np.testing.assert_array_equal(mx[2:], [0, 0, 0, 0, 4, 4, 4, 0])


def test_reconstructor_sees_contiguous_float64_windows() -> None:
    seen = []

    def spy(batch: np.ndarray) -> np.ndarray:
        seen.append((batch.shape, batch.dtype, batch.flags.c_contiguous))
        return batch

    score_points(np.zeros((20, 3)), 4, spy, batch_size=8)
    assert [s[0] for s in seen] == [(8, 4, 3), (8, 4, 3), (1, 4, 3)]
    assert all(dtype == np.float64 and contiguous for _, dtype, contiguous in seen)


def test_short_series_scores_are_all_nan() -> None:
    scores = score_points(np.zeros((3, 1)), 5, perfect)
    assert scores.shape == (3,)
    assert np.isnan(scores).all()


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"evaluate\.reduce"):
        score_points(np.zeros((10, 1)), 3, perfect, "median")
    with pytest.raises(ValueError, match="reconstruction shape"):
        score_points(np.zeros((10, 1)), 3, lambda b: b[:, :-1])


@pytest.mark.parametrize("reduce", ["mean", "last", "max"])
def test_batch_size_does_not_change_scores(reduce: str) -> None:
    x = np.random.default_rng(2).normal(size=(100, 3)).astype(np.float32)
    reference = score_points(x, 7, local_nonlinear, reduce, batch_size=4096)
    for batch_size in (1, 5, 94, 95):
        np.testing.assert_array_equal(
            score_points(x, 7, local_nonlinear, reduce, batch_size=batch_size), reference
        )


@settings(max_examples=60, deadline=None, database=None)
@given(
    x=arrays(np.float32, st.tuples(st.integers(2, 40), st.integers(1, 3)),
             elements=st.floats(-100, 100, width=32)),
    length=st.integers(1, 10),
    data=st.data(),
    reduce=st.sampled_from(["mean", "last", "max"]),
)
def test_scores_are_causal(x: np.ndarray, length: int, data: st.DataObject, reduce: str) -> None:
    """Changing the value at point k never changes the score of any point before k."""
    k = data.draw(st.integers(0, len(x) - 1), label="k")
    before = score_points(x, length, local_nonlinear, reduce)
    changed = x.copy()
    changed[k] = changed[k] + data.draw(st.floats(1, 1000), label="delta")
    after = score_points(changed, length, local_nonlinear, reduce)
    np.testing.assert_array_equal(after[:k], before[:k])
    # and points whose window does not reach k are unchanged too
    np.testing.assert_array_equal(after[k + length :], before[k + length :])


@pytest.mark.usefixtures("one_torch_thread")
def test_scores_with_a_torch_model_are_causal_and_batch_independent() -> None:
    import torch

    from rnnad.models.encdec import EncDecAD
    from rnnad.models.encdec import reconstructor as torch_reconstructor

    torch.manual_seed(0)
    model = EncDecAD(channels=2, hidden=8).eval()
    reconstruct = torch_reconstructor(model)
    x = np.random.default_rng(3).normal(size=(60, 2)).astype(np.float32)
    scores = score_points(x, 6, reconstruct)
    assert np.isnan(scores[:5]).all() and (scores[5:] > 0).all()
    np.testing.assert_allclose(score_points(x, 6, reconstruct, batch_size=7), scores, rtol=1e-5)
    changed = x.copy()
    changed[40] += 5.0
    after = score_points(changed, 6, reconstruct)
    np.testing.assert_array_equal(after[:40], scores[:40])
    assert (after[40:46] != scores[40:46]).all()


def test_values_too_large_to_score_raise_instead_of_giving_infinite_scores() -> None:
    def offset(batch: np.ndarray) -> np.ndarray:
        return batch * 0.5

    ok = score_points(np.full((10, 1), 1e100), 4, offset)
    assert np.isfinite(ok[3:]).all()
    with pytest.raises(OverflowError, match="overflows"):
        score_points(np.full((10, 1), 1e300), 4, offset)  # squared error is 2.5e599
    with pytest.raises(OverflowError, match="once normalised"):
        score_points(np.array([[1.0], [np.inf], [0.0], [1.0]]), 2, offset)


def test_flag_is_strictly_above_the_threshold_and_never_for_missing_scores() -> None:
    from rnnad.scoring import flag

    got = flag(np.array([np.nan, 0.5, 1.0, 1.0000001, np.inf]), 1.0)
    assert got.tolist() == [False, False, False, True, True]
