"""scripts/eval_touch.py: its statistics against small performances checked by hand."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "eval_touch", Path(__file__).resolve().parents[1] / "scripts" / "eval_touch.py"
)
eval_touch = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(eval_touch)

# A tap on the left border, a three-point swipe (steps 0.3 and 0.4), then a tap in the
# bottom-right corner; 1.0 s in all.
PERFORMANCE = np.array(
    [
        [0.0, 0.5, 0.0],  # tap, on the border (x = 0)
        [0.2, 0.2, 0.5],  # swipe starts (dt > 0.1)
        [0.2, 0.5, 0.05],  # step 0.3
        [0.6, 0.5, 0.05],  # step 0.4
        [1.0, 1.0, 0.4],  # tap, on the border (corner)
    ]
)


def test_performance_metrics_by_hand():
    m = eval_touch.performance_metrics(PERFORMANCE)
    assert m["border"] == pytest.approx(2 / 5)
    np.testing.assert_allclose(m["step"], [0.3, 0.4])
    np.testing.assert_allclose(m["dt"], [0.5, 0.05, 0.05, 0.4])
    np.testing.assert_array_equal(m["swipe points"], [1, 3, 1])
    assert m["touches/s"] == pytest.approx(3 / 1.0)  # three touches in 1.0 s


def test_tap_threshold_splits_touches():
    m = eval_touch.performance_metrics(PERFORMANCE, tap_threshold=0.45)
    np.testing.assert_array_equal(m["swipe points"], [1, 4])  # the 0.4 s gap no longer splits
    np.testing.assert_allclose(m["step"], [0.3, 0.4, np.hypot(0.4, 0.5)])


def test_empty_and_single_row_performances():
    empty = eval_touch.performance_metrics(np.zeros((0, 3)))
    assert np.isnan(empty["border"]) and len(empty["step"]) == 0
    one = eval_touch.performance_metrics([[0.5, 0.5, 0.0]])
    assert one["border"] == 0 and np.isnan(one["touches/s"]) and list(one["swipe points"]) == [1]


def test_compare_gives_zero_for_the_same_set_and_one_for_disjoint_sets():
    same = eval_touch.compare([PERFORMANCE], [PERFORMANCE])
    assert all(ks == 0 for _, _, ks in same.values())
    slow = PERFORMANCE.copy()
    slow[1:, 2] = 2.0  # every gap 2 s: five taps in 8 s, the same points
    result = eval_touch.compare([PERFORMANCE], [slow])
    assert result["dt"][2] == 1.0  # no overlap at all
    assert result["border"][2] == 0.0
    assert result["touches/s"][:2] == pytest.approx((3.0, 5 / 8.0))


def test_side_by_side_svg_holds_both_columns():
    svg = eval_touch.side_by_side_svg([PERFORMANCE] * 3, [PERFORMANCE] * 2, rows=4)
    assert svg.count("<image") == 4  # two rows (the shorter set) x two columns
    assert "real" in svg and "generated" in svg


def test_cut_keeps_the_rows_within_the_duration():
    # Running times 0, 0.5, 0.55, 0.6, 1.0: the row that would cross 0.58 s is dropped.
    np.testing.assert_array_equal(eval_touch.cut(PERFORMANCE, 0.58), PERFORMANCE[:3])
    np.testing.assert_array_equal(eval_touch.cut(PERFORMANCE, 1.0), PERFORMANCE)
    assert len(eval_touch.cut(PERFORMANCE, 0.4)) == 1  # the first touch, at time 0


def test_one_step_figures_by_hand():
    # Real: a tap at (0.1, 0.1), then a swipe from (0.5, 0.5) by 0.1, 0.2 (touch starts at
    # rows 0 and 1; row 0 is followed by a new touch, row 1 by a continuation of 0.1).
    real = [np.array([[0.1, 0.1, 0.0], [0.5, 0.5, 0.5], [0.6, 0.5, 0.02], [0.6, 0.7, 0.02]])]
    # Sampled after rows 0, 1, 2: a continuation 0.3 away, a new touch, a step of 0.4.
    sampled = [np.array([[0.4, 0.1, 0.03], [0.9, 0.9, 0.4], [0.6, 0.9, 0.05]])]
    figures = eval_touch.one_step_figures(real, sampled)
    assert figures["new touch after a touch start"] == (0.5, 0.5)
    real_mean, sampled_mean, ks = figures["first swipe step"]
    assert (real_mean, sampled_mean, ks) == pytest.approx((0.1, 0.3, 1.0))
    real_mean, sampled_mean, ks = figures["swipe step"]  # real [0.1, 0.2], sampled [0.3, 0.4]
    assert (real_mean, sampled_mean, ks) == pytest.approx((0.15, 0.35, 1.0))


def _swipes(touches, points, step, seconds):
    """Rows of `touches` swipes of `points` points `step` apart, spread evenly over `seconds`."""
    rows = []
    for k in range(touches):
        for j in range(points):
            dt = seconds / touches - 0.02 * (points - 1) if j == 0 else 0.02
            rows.append([0.1 + step * j, 0.1 + 0.8 * k / touches, dt])
    return np.array(rows)


def test_style_persistence_ranks_the_halves():
    # Performance k: its first 3 s rise with k in touches, points and step; its next 3 s fall
    # (each block within 2.9 s, so that no rounding moves a row across a half; a tap at 6.3 s).
    tail = [[0.5, 0.5, 0.5]]
    performances = [
        np.r_[_swipes(2 + k, 2 + k, 0.01 * (1 + k), 2.9), _swipes(6 - k, 6 - k, 0.01 * (5 - k), 2.9), tail]
        for k in range(4)
    ]
    count, kept = eval_touch.style_persistence(performances + [performances[0][:3]], seconds=6.0)  # short: left out
    assert count == 4
    assert kept == pytest.approx({"touches/s": -1.0, "points per touch": -1.0, "swipe step": -1.0})
    same = [np.r_[_swipes(2 + k, 3, 0.01 * (1 + k), 2.9), _swipes(2 + k, 4, 0.01 * (1 + k), 2.9), tail]
            for k in range(4)]
    count, kept = eval_touch.style_persistence(same, seconds=6.0)
    assert kept["touches/s"] == pytest.approx(1.0) and kept["swipe step"] == pytest.approx(1.0)
    assert np.isnan(kept["points per touch"])  # 3 then 4 points in every performance: no ranks to compare


def test_continued_keeps_each_prefix_and_the_time_limit():
    import keras

    import mdnrnn

    keras.utils.set_random_seed(3)
    model = mdnrnn.build_model(mdnrnn.preset("touch", units=6, layers=1, components=2,
                                             mean=(0.5, 0.5, 0.1), std=(0.3, 0.3, 0.08)))
    rng = np.random.default_rng(3)
    for weight in model.weights:
        weight.assign(rng.normal(0, 0.5, weight.shape).astype(np.float32))
    generator = mdnrnn.Generator(model, seed=0)
    real = [_swipes(3, 5, 0.02, 3.9), _swipes(2, 4, 0.01, 3.9)]
    late = np.array([[0.5, 0.5, 2.5], [0.6, 0.5, 0.05]])  # its first row is past 2 s: nothing to continue
    out = eval_touch.continued(generator, real + [late], copies=3, max_steps=50, seconds=4.0)
    assert len(out) == 6
    for k, performance in enumerate(out):
        prefix = real[k // 3][np.cumsum(real[k // 3][:, 2]) <= 2.0]
        np.testing.assert_allclose(performance[: len(prefix)], prefix, rtol=1e-6)
        assert len(performance) > len(prefix)
        assert performance[:, 2].sum() <= 8.0 + 1e-5  # the prefix's time counts towards the limit
