"""mdnrnn.formats: conversions checked against hand-written arrays."""

import numpy as np
import pytest
from scipy import stats

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


# ----------------------------------------------------------------- the row codec
CODECS = {
    "stroke5": ("stroke3", 2, "categorical", (0.0, 0.0), (2.0, 2.0)),
    "stroke3": ("stroke3", 2, "bernoulli", (0.0, 0.0), (2.0, 2.0)),
    "touch": ("touch", 3, None, (0.4, 0.6, 0.1), (0.3, 0.2, 0.05)),
    "impsy": ("impsy", 3, None, (0.5, 0.4, 0.6), (0.5, 0.2, 0.3)),
    "touch-offsets": ("touch", 3, None, (0.4, 0.6, 0.1), (0.3, 0.2, 0.05), "offsets"),
    "impsy-offsets": ("impsy", 3, None, (0.5, 0.4, 0.6), (0.5, 0.2, 0.3), "offsets"),
    # dt as log(dt + LOG_DT_SHIFT): the dt column's statistics are the logarithm's.
    "touch-log": ("touch", 3, None, (0.4, 0.6, -3.5), (0.3, 0.2, 1.2), "rows", "log"),
    "touch-offsets-log": ("touch", 3, None, (0.4, 0.6, -3.5), (0.3, 0.2, 1.2), "offsets", "log"),
    "impsy-offsets-log": ("impsy", 3, None, (-3.0, 0.4, 0.6), (1.0, 0.2, 0.3), "offsets", "log"),
}


def codec(name):
    return formats.RowCodec(*CODECS[name])


def test_pen_lift_threshold_is_one_rule_everywhere():
    from mdnrnn.export import strokes_to_polylines

    rows = np.array([[1, 0, 0.49], [1, 0, 0.5], [1, 0, 0.51]], np.float32)
    assert formats.pen_lifted(rows[:, 2]).tolist() == [False, True, True]
    assert [len(s) for s in formats.stroke3_to_strokes(rows)] == [2, 1]
    assert [len(s) for s in strokes_to_polylines(rows)] == [2, 1]
    np.testing.assert_array_equal(formats.stroke3_to_stroke5(rows)[:, 2:4], [[1, 0], [0, 1], [0, 1]])
    np.testing.assert_array_equal(codec("stroke3").encode(rows)[:, 2], [0, 1, 1])
    np.testing.assert_array_equal(codec("stroke5").encode(rows)[:, 2:], [[1, 0, 0], [0, 1, 0], [0, 1, 0]])


def test_stroke5_to_stroke3_drops_a_leading_start_token():
    rows = np.concatenate([formats.STROKE5_START[None], STROKE5, formats.STROKE5_END[None]])
    np.testing.assert_array_equal(formats.stroke5_to_stroke3(rows), STROKE3)


def test_codec_encodes_by_hand():
    stroke5 = codec("stroke5")
    np.testing.assert_array_equal(stroke5.encode(STROKE3), STROKE5 * [0.5, 0.5, 1, 1, 1])
    np.testing.assert_array_equal(stroke5.targets(STROKE3), STROKE3 * [0.5, 0.5, 1])
    touch = codec("touch")
    np.testing.assert_allclose(touch.encode([[0.7, 0.2, 0.15]]), [[1.0, -2.0, 1.0]], atol=1e-6)
    impsy = codec("impsy")
    np.testing.assert_allclose(impsy.encode([[1.0, 0.6, 0.3]]), [[1.0, 1.0, -1.0]], atol=1e-6)
    # log(0.15 + 0.001) = -1.89047: (-1.89047 + 3.5) / 1.2 = 1.34127
    np.testing.assert_allclose(codec("touch-log").encode([[0.7, 0.2, 0.15]]), [[1.0, -2.0, 1.34127]], atol=1e-5)
    np.testing.assert_allclose(codec("touch-log").targets([[0.7, 0.2, 0.15]]), [[1.0, -2.0, 1.34127]], atol=1e-5)


def test_log_dt_scale_is_refused_for_drawings():
    with pytest.raises(ValueError, match="dt_scale='log'"):
        formats.RowCodec("stroke3", 2, "bernoulli", dt_scale="log")
    with pytest.raises(ValueError, match="dt_scale='exp'"):
        formats.RowCodec("touch", 3, dt_scale="exp")


@pytest.mark.parametrize("name", list(CODECS))
def test_start_rows_are_documented_and_never_padding(name):
    c = codec(name)
    start = c.start_rows(2)
    assert start.shape == (2, c.input_size) and start.dtype == np.float32
    assert start.any(axis=1).all()  # never the all-zero padding row
    expected = {
        "stroke5": formats.STROKE5_START,
        "stroke3": [0, 0, 1],
        "touch": c.encode([[0.5, 0.5, 0.0]])[0],  # a first touch at the centre, dt = 0
        "impsy": c.encode([[0.0, 0.5, 0.5]])[0],  # dt = 0, every value 0.5
    }[name.split("-")[0]]
    np.testing.assert_array_equal(start[0], expected)


def test_start_row_that_normalises_to_padding_is_refused():
    with pytest.raises(ValueError, match="normalises to all zeros"):
        formats.RowCodec("touch", 3, mean=(0.5, 0.5, 0.0), std=(1.0, 1.0, 1.0))


def test_codec_rejects_a_pen_that_does_not_fit():
    with pytest.raises(ValueError, match="pen='bernoulli'"):
        formats.RowCodec("touch", 3, "bernoulli")
    with pytest.raises(ValueError, match="pen=None"):
        formats.RowCodec("stroke3", 2)


@pytest.mark.parametrize("name", list(CODECS))
def test_decode_clips_denormalises_and_matches_its_tensorflow_form(name):
    from mdnrnn._tf import tf

    c = codec(name)
    rng = np.random.default_rng(0)
    values = rng.normal(0, 3, (60, c.dim)).astype(np.float32)
    pen = {"categorical": rng.integers(0, 3, 60), "bernoulli": rng.integers(0, 2, 60).astype(np.float32)}.get(c.pen)
    # The model rows fed last: offset targets are changes from them.
    previous = c.encode(rng.uniform(0, 1, (60, len(c.columns))).astype(np.float32))
    rows, model_rows = c.decode(values.copy(), pen, previous)
    assert rows.shape == (60, len(c.columns)) and model_rows.shape == (60, c.input_size)
    if c.pen == "categorical":
        end = pen == formats.END_OF_DRAWING
        np.testing.assert_array_equal(rows[end], np.tile([0, 0, 1], (end.sum(), 1)))
        np.testing.assert_array_equal(model_rows[end], np.tile(formats.STROKE5_END, (end.sum(), 1)))
        assert not np.signbit(rows[end]).any()  # +0.0, not -0.0
        np.testing.assert_allclose(rows[~end, :2], values[~end] * 2.0, rtol=1e-6)
        np.testing.assert_array_equal(rows[~end, 2], pen[~end])
    elif c.pen is None:
        low = np.where(np.arange(c.dim) == c.dt_index, formats.MIN_DT, 0.0)
        high = np.where(np.arange(c.dim) == c.dt_index, np.inf, 1.0)
        assert (rows >= low - 1e-7).all() and (rows <= high).all()
        # By hand: offset columns (all but dt) add the previous row's value.
        offset = np.arange(c.dim) != c.dt_index if "offsets" in name else np.zeros(c.dim, bool)
        expected = (values + np.where(offset, previous[:, : c.dim], 0.0)) * c.std + c.mean
        if name.endswith("log"):
            expected[:, c.dt_index] = np.exp(expected[:, c.dt_index]) - formats.LOG_DT_SHIFT
        inside = ((expected > low) & (expected < high)).all(1)
        assert 0 < inside.sum() < 60  # both cases are tested
        np.testing.assert_allclose(rows[inside], expected[inside], rtol=1e-5, atol=1e-6)
    # The model rows fed back are the encoded (clipped) data rows, except "end of drawing".
    if c.pen != "categorical":
        np.testing.assert_allclose(model_rows, c.encode_step(rows, previous), atol=1e-5)
    sample = values if pen is None else np.column_stack([values, pen]).astype(np.float32)
    tf_rows, tf_model_rows, tf_end = c.decode_tf(tf.constant(sample[None]), tf.constant(previous))
    np.testing.assert_allclose(tf_rows.numpy(), rows, atol=1e-6)
    np.testing.assert_allclose(tf_model_rows.numpy(), model_rows, atol=1e-6)
    assert tf_end.numpy().tolist() == (list(pen == 2) if c.pen == "categorical" else [False] * 60)
    np.testing.assert_allclose(
        c.encode_tf(tf.constant(rows), tf.constant(previous)).numpy(), c.encode_step(rows, previous), atol=1e-6
    )


@pytest.mark.parametrize("name", ["touch-offsets", "impsy-offsets"])
def test_offset_targets_are_changes_from_the_previous_row(name):
    """By hand: positions and controller values become their change from the previous
    row, in model units (the first from the start row); dt stays as it is. Decoding a
    target after the previous row gives the row back."""
    c = codec(name)
    rng = np.random.default_rng(1)
    rows = rng.uniform(0, 1, (2, 6, 3)).astype(np.float32)  # [B, T, C]
    targets = c.targets(rows)
    normalised = (rows - c.mean) / c.std
    values = [0, 1] if name.startswith("touch") else [1, 2]
    dt = 2 if name.startswith("touch") else 0
    np.testing.assert_allclose(targets[:, 1:, values], np.diff(normalised[:, :, values], axis=1), atol=1e-6)
    np.testing.assert_allclose(targets[:, 0, values], normalised[:, 0, values] - c.start_row[values], atol=1e-6)
    np.testing.assert_allclose(targets[..., dt], normalised[..., dt], atol=1e-6)
    np.testing.assert_allclose(targets[0], c.targets(rows[0]), atol=1e-6)  # one sequence alike
    # Inputs: the normalised row, then the same changes (0 for the first row).
    inputs = c.encode(rows)
    assert inputs.shape == (2, 6, 5)
    np.testing.assert_allclose(inputs[..., :3], normalised, atol=1e-6)
    np.testing.assert_allclose(inputs[:, 1:, 3:], targets[:, 1:, values], atol=1e-6)
    np.testing.assert_array_equal(inputs[:, 0, 3:], 0.0)
    for t in range(1, 6):
        decoded, model_rows = c.decode(targets[:, t].copy(), None, inputs[:, t - 1])
        np.testing.assert_allclose(decoded, rows[:, t], atol=1e-5)
        np.testing.assert_allclose(model_rows, inputs[:, t], atol=1e-5)
        np.testing.assert_allclose(c.encode_step(rows[:, t], inputs[:, t - 1]), inputs[:, t], atol=1e-6)


def test_offset_targets_are_refused_for_drawings():
    with pytest.raises(ValueError, match="targets='offsets'"):
        formats.RowCodec("stroke3", 2, "bernoulli", targets="offsets")
    with pytest.raises(ValueError, match="targets='delta'"):
        formats.RowCodec("touch", 3, targets="delta")


@pytest.mark.parametrize("name", ["touch", "touch-offsets"])
def test_redraw_truncates_samples_to_the_bounds(name):
    """Samples outside x, y in [0, 1] or dt >= 0 are drawn again: the rows then follow
    the sampled distribution truncated to the bounds (a one-sample KS test against
    SciPy's truncated normal, p > 0.001 with fixed seeds)."""
    c = codec(name)
    rng = np.random.default_rng(2)
    n = 4000
    previous = c.encode(np.tile([0.7, 0.5, 0.02], (n, 1)).astype(np.float32))
    # Model-unit draws whose data-unit x is N(0.85, 0.2): about 23% fall above 1.
    x_mean = 0.85 if name == "touch" else 0.85 - 0.7
    loc = np.array([(x_mean - c.mean[0] * (name == "touch")) / c.std[0], 0.0, (0.04 - c.mean[2]) / c.std[2]])
    scale = np.array([0.2 / c.std[0], 0.5, 0.01 / c.std[2]])

    def draw(index):
        return (loc + scale * rng.standard_normal((len(index), 3))).astype(np.float32)

    values = c.redraw(draw(np.arange(n)), previous, draw)
    rows, _ = c.decode(values, None, previous)
    assert (rows[:, :2] > 0).all() and (rows[:, :2] < 1).all()  # nothing left for the clip
    truncated = stats.truncnorm((0 - 0.85) / 0.2, (1 - 0.85) / 0.2, loc=0.85, scale=0.2)
    assert stats.kstest(rows[:, 0], truncated.cdf).pvalue > 0.001
    assert stats.kstest(rows[:, 0], stats.norm(0.85, 0.2).cdf).pvalue < 1e-6  # the untruncated one is told apart
    # Drawings have no bounds: redraw never calls `draw`.
    stroke = codec("stroke3")
    values = rng.normal(0, 50, (5, 2)).astype(np.float32)
    assert stroke.redraw(values, stroke.start_rows(5), None) is values


def test_decode_tf_takes_the_first_draw_inside_the_bounds():
    from mdnrnn._tf import tf

    c = codec("touch-offsets")
    previous = c.encode(np.array([[0.5, 0.5, 0.02]] * 3, np.float32))
    # Draws (data units of change, as model units below): row 0 inside at draw 1, row 1 at
    # draw 0, row 2 never (so draw 0, clipped).
    changes = np.array([
        [[0.9, 0.0, 0.02], [0.1, 0.0, 0.02], [0.9, 0.0, 0.02]],
        [[0.2, 0.1, 0.03], [0.3, 0.0, 0.02], [0.8, 0.0, 0.02]],
        [[0.0, 0.0, 0.05], [0.0, 0.0, 0.05], [0.7, 0.0, 0.02]],
    ], np.float32)
    samples = ((changes - [0, 0, c.mean[2]]) / c.std).astype(np.float32)
    rows, _, _ = c.decode_tf(tf.constant(samples), tf.constant(previous))
    np.testing.assert_allclose(rows.numpy(), [[0.7, 0.6, 0.03], [0.6, 0.5, 0.02], [1.0, 0.5, 0.02]], atol=1e-5)


# ------------------------------------------------------------------- tempo
TEMPO_QUANTILES = (0.25, 0.5, 1.0, 2.0, 8.0)


def test_touch_tempo_counts_touches_per_second_by_hand():
    # Touches start at row 0 and at each dt above 0.1 s: rows 0, 1 and 4, in 2.5 s.
    assert formats.touch_tempo([0.0, 0.5, 0.05, 0.05, 1.9]) == pytest.approx(3 / 2.5)
    # A dt of exactly 0.1 continues the swipe; shorter than 1 s counts as 1 s.
    assert formats.touch_tempo([0.0, 0.1, 0.3]) == pytest.approx(2 / 1.0)
    assert formats.touch_tempo([0.0]) == 1.0  # a single tap
    with pytest.raises(ValueError, match="non-empty"):
        formats.touch_tempo([])


def test_tempo_column_is_fed_from_the_start_row_and_carried_through_decoding():
    """The tempo column is the normalised log tempo, by hand; every other column is what
    the codec without tempo gives; decoding (NumPy and TF) and `encode_step` carry each
    sequence's tempo from the previous model row."""
    from mdnrnn._tf import tf

    plain = formats.RowCodec("touch", 3, None, (0.4, 0.6, 0.1), (0.3, 0.2, 0.05), "offsets")
    c = formats.RowCodec("touch", 3, None, (0.4, 0.6, 0.1), (0.3, 0.2, 0.05), "offsets", tempo_quantiles=TEMPO_QUANTILES)
    assert c.input_size == plain.input_size + 1 == 6
    logs = np.log(TEMPO_QUANTILES)
    by_hand = (np.log([0.5, 3.0]) - logs.mean()) / logs.std()
    start = c.start_rows(2, [0.5, 3.0])
    np.testing.assert_array_equal(start[:, :-1], plain.start_rows(2))
    np.testing.assert_allclose(start[:, -1], by_hand, rtol=1e-6)
    rng = np.random.default_rng(3)
    rows = rng.uniform(0, 1, (2, 4, 3)).astype(np.float32)
    encoded = c.encode(rows, np.array([[0.5], [3.0]]))  # one tempo per sequence
    np.testing.assert_array_equal(encoded[..., :-1], plain.encode(rows))
    np.testing.assert_allclose(encoded[..., -1], np.repeat(by_hand[:, None], 4, 1), rtol=1e-6)
    values = rng.normal(0, 1, (2, 3)).astype(np.float32)
    decoded, model_rows = c.decode(values.copy(), None, start)
    plain_decoded, plain_model_rows = plain.decode(values.copy(), None, start[:, :-1])
    np.testing.assert_array_equal(decoded, plain_decoded)
    np.testing.assert_array_equal(model_rows, np.column_stack([plain_model_rows, start[:, -1]]))
    np.testing.assert_allclose(c.encode_step(decoded, start), model_rows, atol=1e-5)
    tf_rows, tf_model_rows, _ = c.decode_tf(tf.constant(values[None]), tf.constant(start))
    np.testing.assert_allclose(tf_rows.numpy(), decoded, atol=1e-6)
    np.testing.assert_allclose(tf_model_rows.numpy(), model_rows, atol=1e-6)
    np.testing.assert_allclose(c.encode_tf(tf.constant(decoded), tf.constant(start)).numpy(), model_rows, atol=1e-5)


def test_tempo_is_required_where_conditioned_and_refused_elsewhere():
    c = formats.RowCodec("touch", 3, mean=(0.4, 0.6, 0.1), std=(0.3, 0.2, 0.05), tempo_quantiles=TEMPO_QUANTILES)
    rows = np.full((1, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match="conditioned on tempo"):
        c.encode(rows)
    with pytest.raises(ValueError, match="conditioned on tempo"):
        c.start_rows(1)
    with pytest.raises(ValueError, match="above 0"):
        c.encode(rows, 0.0)
    with pytest.raises(ValueError, match="not conditioned on tempo"):
        codec("touch").encode(rows, 2.0)
    for kind, dim, pen, quantiles in [("touch", 3, None, (2.0, 1.0)), ("touch", 3, None, (1.0,)),
                                      ("touch", 3, None, (0.0, 1.0)), ("impsy", 3, None, TEMPO_QUANTILES),
                                      ("stroke3", 2, "categorical", TEMPO_QUANTILES)]:
        with pytest.raises(ValueError, match="`tempo_quantiles`"):
            formats.RowCodec(kind, dim, pen, tempo_quantiles=quantiles)


@pytest.mark.parametrize("targets", ["rows", "offsets"])
@pytest.mark.parametrize("dt_scale", ["linear", "log"])
def test_beats_measure_pauses_in_beats_of_each_sequences_tempo(dt_scale, targets):
    """With `beats`, the dt the model reads and predicts is, by hand, dt itself up to
    0.1 s (within a swipe) and `0.1 + (dt - 0.1) * tempo` above (then its scale); every
    other column is what the codec without beats gives; decoding converts back with the
    tempo of the previous row's column, in NumPy and TF alike."""
    from mdnrnn._tf import tf

    mean, std = (0.4, 0.6, -2.0 if dt_scale == "log" else 0.1), (0.3, 0.2, 1.5 if dt_scale == "log" else 0.05)
    args = ("touch", 3, None, mean, std, targets, dt_scale, TEMPO_QUANTILES)
    plain, c = formats.RowCodec(*args), formats.RowCodec(*args, beats=True)
    f = (lambda x: np.log(x + formats.LOG_DT_SHIFT)) if dt_scale == "log" else (lambda x: x)
    f_inverse = (lambda x: np.exp(x) - formats.LOG_DT_SHIFT) if dt_scale == "log" else (lambda x: x)
    rng = np.random.default_rng(5)
    rows = rng.uniform(0, 1, (2, 4, 3)).astype(np.float32)
    rows[:, 1, 2] = [0.02, 0.1]  # within a swipe: seconds at any tempo
    tempo = np.array([[0.5], [3.0]])
    in_beats = np.where(rows[..., 2] > 0.1, 0.1 + (rows[..., 2] - 0.1) * tempo, rows[..., 2])
    assert (rows[..., 2] > 0.1).any()  # pauses: in beats
    encoded = c.encode(rows, tempo)
    other = [i for i in range(c.input_size) if i != 2]  # x, y, their changes (offsets) and the tempo
    np.testing.assert_array_equal(encoded[..., other], plain.encode(rows, tempo)[..., other])
    np.testing.assert_allclose(encoded[..., 2], (f(in_beats) - mean[2]) / std[2], rtol=1e-5, atol=1e-5)
    targets = c.targets(rows, tempo)
    np.testing.assert_array_equal(targets[..., :2], plain.targets(rows)[..., :2])
    np.testing.assert_allclose(targets[..., 2], encoded[..., 2], atol=1e-6)
    tempos = np.array([0.5, 3.0, 2.0])
    start = c.start_rows(3, tempos)  # dt = 0 is 0 beats at any tempo
    np.testing.assert_array_equal(start, plain.start_rows(3, tempos))
    values = rng.normal(0, 1, (3, 3)).astype(np.float32)
    # dt below 0 at either scale (clipped to MIN_DT seconds), a pause of 0.7 and 0.05 in the model's units
    values[:, 2] = [-5.0, (f(0.7) - mean[2]) / std[2], (f(0.05) - mean[2]) / std[2]]
    decoded, model_rows = c.decode(values.copy(), None, start)
    plain_decoded, _ = plain.decode(values.copy(), None, start)
    np.testing.assert_array_equal(decoded[:, :2], plain_decoded[:, :2])
    np.testing.assert_allclose(decoded[:, 2], [formats.MIN_DT, 0.1 + 0.6 / 3.0, 0.05], rtol=1e-5)
    np.testing.assert_allclose(c.encode_step(decoded, start), model_rows, atol=1e-5)
    np.testing.assert_allclose(model_rows[:, 2], (f(np.array([formats.MIN_DT, 0.7, 0.05])) - mean[2]) / std[2],
                               rtol=1e-5, atol=1e-5)
    tf_rows, tf_model_rows, _ = c.decode_tf(tf.constant(values[None]), tf.constant(start))
    np.testing.assert_allclose(tf_rows.numpy(), decoded, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tf_model_rows.numpy(), model_rows, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c.encode_tf(tf.constant(decoded), tf.constant(start)).numpy(), model_rows, atol=1e-5)


def test_beats_need_a_tempo():
    with pytest.raises(ValueError, match="needs `tempo_quantiles`"):
        formats.RowCodec("touch", 3, mean=(0.4, 0.6, 0.1), std=(0.3, 0.2, 0.05), beats=True)
    c = formats.RowCodec("touch", 3, mean=(0.4, 0.6, 0.1), std=(0.3, 0.2, 0.05), tempo_quantiles=TEMPO_QUANTILES,
                         beats=True)
    with pytest.raises(ValueError, match="pauses in beats"):
        c.targets(np.full((1, 3), 0.5, np.float32))
    with pytest.raises(ValueError, match="above 0"):
        c.targets(np.full((1, 3), 0.5, np.float32), -1.0)


def test_drawn_tempos_follow_the_quantiles():
    """Quantiles of a log-normal distribution: draws through them follow it (KS), and
    stay within the first and last quantile."""
    truth = stats.lognorm(s=0.8, scale=1.5)
    quantiles = truth.ppf(np.linspace(0.001, 0.999, formats.TEMPO_QUANTILES))
    c = formats.RowCodec("touch", 3, mean=(0.4, 0.6, 0.1), std=(0.3, 0.2, 0.05), tempo_quantiles=quantiles)
    draws = c.draw_tempo(np.random.default_rng(0), 20_000)
    assert draws.min() >= quantiles[0] and draws.max() <= quantiles[-1]
    assert stats.kstest(draws, truth.cdf).statistic < 0.02
    assert stats.kstest(draws, stats.lognorm(s=0.8, scale=2.0).cdf).statistic > 0.1  # another one is told apart
