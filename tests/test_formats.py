"""mdnrnn.formats: conversions checked against hand-written arrays."""

import numpy as np
import pytest

from mdnrnn import formats

# Two strokes drawn by hand: (10, 20) -> (13, 24) -> (13, 30), then (40, 5) -> (41, 5).
STROKES = [np.array([[10, 20], [13, 24], [13, 30]]), np.array([[40, 5], [41, 5]])]
STROKE3 = np.array(
    [[10, 20, 0], [3, 4, 0], [0, 6, 1], [27, -25, 0], [1, 0, 1]], dtype=np.float32
)
STROKE5 = np.array(
    [
        [10, 20, 1, 0, 0],
        [3, 4, 1, 0, 0],
        [0, 6, 0, 1, 0],
        [27, -25, 1, 0, 0],
        [1, 0, 0, 1, 0],
    ],
    dtype=np.float32,
)


def test_strokes_to_stroke3_by_hand():
    np.testing.assert_array_equal(formats.strokes_to_stroke3(STROKES), STROKE3)


def test_stroke3_to_strokes_inverts():
    back = formats.stroke3_to_strokes(STROKE3)
    assert len(back) == 2
    for got, want in zip(back, STROKES):
        np.testing.assert_array_equal(got, want)


def test_origin_shifts_first_offset_only():
    rows = formats.strokes_to_stroke3(STROKES, origin=(10, 10))
    np.testing.assert_array_equal(rows[0], [0, 10, 0])
    np.testing.assert_array_equal(rows[1:], STROKE3[1:])


def test_unfinished_last_stroke_is_kept():
    rows = STROKE3.copy()
    rows[-1, 2] = 0
    assert [len(s) for s in formats.stroke3_to_strokes(rows)] == [3, 2]


def test_stroke3_to_stroke5_by_hand():
    np.testing.assert_array_equal(formats.stroke3_to_stroke5(STROKE3), STROKE5)


def test_stroke3_to_stroke5_pads_with_end_rows():
    padded = formats.stroke3_to_stroke5(STROKE3, max_len=8)
    np.testing.assert_array_equal(padded[:5], STROKE5)
    np.testing.assert_array_equal(padded[5:], np.tile([0, 0, 0, 0, 1], (3, 1)))
    with pytest.raises(ValueError, match="max_len=3"):
        formats.stroke3_to_stroke5(STROKE3, max_len=3)


def test_stroke5_to_stroke3_stops_at_end_and_takes_argmax():
    padded = formats.stroke3_to_stroke5(STROKE3, max_len=8)
    np.testing.assert_array_equal(formats.stroke5_to_stroke3(padded), STROKE3)
    soft = np.array([[1, 2, 0.7, 0.2, 0.1], [3, 4, 0.1, 0.6, 0.3], [9, 9, 0.1, 0.1, 0.8]])
    np.testing.assert_allclose(formats.stroke5_to_stroke3(soft), [[1, 2, 0], [3, 4, 1]])


def test_offsets_and_points_are_inverse():
    points = np.array([[1.0, 1.0], [4.0, 5.0], [4.0, 2.0]])
    offsets = formats.points_to_offsets(points, origin=(1, 0))
    np.testing.assert_array_equal(offsets, [[0, 1], [3, 4], [0, -3]])
    np.testing.assert_array_equal(formats.offsets_to_points(offsets, origin=(1, 0)), points)


def test_times_and_dt_are_inverse():
    times = np.array([2.0, 2.5, 2.5, 4.0])
    dt = formats.times_to_dt(times)
    np.testing.assert_array_equal(dt, [0.0, 0.5, 0.0, 1.5])
    np.testing.assert_array_equal(formats.dt_to_times(dt, start=2.0), times)


def test_normalize_touches_continuous_columns_only():
    rows = np.array([[2.0, 4.0, 1.0], [6.0, 0.0, 0.0]])
    mean, std = np.array([0.0, 0.0]), np.array([2.0, 2.0])
    norm = formats.normalize(rows, mean, std)
    np.testing.assert_array_equal(norm, [[1, 2, 1], [3, 0, 0]])
    np.testing.assert_allclose(formats.denormalize(norm, mean, std), rows)
    touch = np.array([[0.5, 0.25, 0.1]])
    np.testing.assert_allclose(
        formats.normalize(touch, [0.5, 0.5, 0.1], [0.25, 0.25, 0.05]), [[0, -1, 0]]
    )


def test_columns_per_kind():
    assert formats.default_columns("stroke3") == ("dx", "dy", "pen_lift")
    assert formats.default_columns("touch") == ("x", "y", "dt")
    assert formats.default_columns("impsy", 3) == ("dt", "x_1", "x_2")
    assert formats.n_continuous("stroke3", 3) == 2
    assert formats.n_continuous("impsy", 5) == 5
    with pytest.raises(ValueError, match="'midi'"):
        formats.default_columns("midi")
    with pytest.raises(ValueError, match="n_values=0"):
        formats.impsy_columns(0)
