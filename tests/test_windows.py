"""Windowing and its inverse: shapes, values, alignment of window ends, range masks."""

from __future__ import annotations

import numpy as np
import pytest

from rnnad.windows import sliding_windows, to_points, window_ends, windows_in_range


def _ramp(t: int, c: int) -> np.ndarray:
    # value encodes (time, channel): x[t, c] = 10 * t + c
    return (10 * np.arange(t)[:, None] + np.arange(c)[None, :]).astype(np.float64)


@pytest.mark.parametrize(
    ("t", "length", "stride"),
    [(10, 3, 1), (10, 3, 2), (10, 3, 4), (10, 10, 1), (10, 1, 1), (11, 4, 3), (100, 32, 5)],
)
def test_sliding_windows_shape_values_and_ends(t: int, length: int, stride: int) -> None:
    x = _ramp(t, 2)
    w = sliding_windows(x, length, stride)
    ends = window_ends(t, length, stride)
    n = (t - length) // stride + 1
    assert w.shape == (n, length, 2)
    assert ends.shape == (n,)
    assert ends[0] == length - 1
    assert np.all(np.diff(ends) == stride)
    assert ends[-1] <= t - 1 < ends[-1] + stride
    for i in range(n):
        start = i * stride
        np.testing.assert_array_equal(w[i], x[start : start + length])
        # the window's last point is the point its end index names
        np.testing.assert_array_equal(w[i, -1], x[ends[i]])


def test_sliding_windows_known_small_case() -> None:
    x = np.arange(5, dtype=np.float64)[:, None]
    w = sliding_windows(x, 3, 2)
    np.testing.assert_array_equal(w[:, :, 0], [[0, 1, 2], [2, 3, 4]])
    np.testing.assert_array_equal(window_ends(5, 3, 2), [2, 4])


def test_sliding_windows_is_read_only_view() -> None:
    x = _ramp(8, 1)
    w = sliding_windows(x, 4)
    assert not w.flags.writeable
    assert np.shares_memory(w, x)


def test_too_short_series_gives_no_windows() -> None:
    x = _ramp(3, 2)
    assert sliding_windows(x, 4).shape == (0, 4, 2)
    assert window_ends(3, 4).shape == (0,)


def test_sliding_windows_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="time, channels"):
        sliding_windows(np.arange(5.0), 2)
    with pytest.raises(ValueError, match=">= 1"):
        sliding_windows(_ramp(5, 1), 0)
    with pytest.raises(ValueError, match=">= 1"):
        sliding_windows(_ramp(5, 1), 2, stride=0)


def test_windows_in_range_without_exclusions() -> None:
    # T = 10, L = 3: windows end at 2..9 and start at 0..7
    ends = window_ends(10, 3)
    keep = windows_in_range(ends, 3, first=2, last=8)
    # wholly inside [2, 8): start >= 2 and end <= 7 -> ends 4, 5, 6, 7
    np.testing.assert_array_equal(ends[keep], [4, 5, 6, 7])
    assert windows_in_range(ends, 3, 0, 10).all()
    assert not windows_in_range(ends, 3, 0, 2).any()  # no window fits in [0, 2)


def test_windows_in_range_with_excluded_points() -> None:
    ends = window_ends(10, 3)
    excluded = np.zeros(10, dtype=np.int8)
    excluded[5] = 1
    keep = windows_in_range(ends, 3, 0, 10, excluded)
    # windows containing point 5 end at 5, 6, 7
    np.testing.assert_array_equal(ends[keep], [2, 3, 4, 8, 9])
    excluded[0] = 1  # point 0 is only in the first window
    keep = windows_in_range(ends, 3, 0, 10, excluded)
    np.testing.assert_array_equal(ends[keep], [3, 4, 8, 9])
    # combined with a range
    keep = windows_in_range(ends, 3, 2, 9, excluded)
    np.testing.assert_array_equal(ends[keep], [4, 8])


def test_windows_in_range_with_stride() -> None:
    ends = window_ends(12, 4, stride=3)  # ends 3, 6, 9
    np.testing.assert_array_equal(ends, [3, 6, 9])
    excluded = np.zeros(12)
    excluded[7] = 1  # only in the window covering 6..9
    np.testing.assert_array_equal(windows_in_range(ends, 4, 0, 12, excluded), [True, True, False])


def test_to_points_places_scores_at_ends() -> None:
    t, length = 9, 4
    ends = window_ends(t, length)
    scores = np.arange(len(ends), dtype=np.float64) + 1.0
    points = to_points(scores, ends, t)
    assert points.shape == (t,)
    assert np.isnan(points[: length - 1]).all()
    np.testing.assert_array_equal(points[length - 1 :], scores)


def test_to_points_inverse_length_relation() -> None:
    for t in (5, 17, 64):
        for length in (1, 2, 5):
            ends = window_ends(t, length)
            points = to_points(np.zeros(len(ends)), ends, t)
            assert len(ends) == t - length + 1
            assert int(np.isnan(points).sum()) == length - 1
            assert np.isfinite(points).sum() == len(sliding_windows(np.zeros((t, 1)), length))
