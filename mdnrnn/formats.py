"""Sequence formats used by mdnrnn, and small NumPy conversions between them.

This docstring is the one authoritative note on the data formats; the sequence
store (`mdnrnn.data`), the importers (`data_prep`), the training pipelines and
the generator all refer to it.

Legend: `n` points in a sequence, `D` continuous columns.

**stroke-3** (store kind `"stroke3"`, columns `dx, dy, pen_lift`): one row per
pen position, `(dx, dy, pen_lift)`.

- `dx, dy` is the offset from the previous point; the first row's offset is
  measured from the drawing's origin (for KanjiVG, the top-left corner of the
  109 x 109 viewBox). Axes follow the source: y grows downwards for KanjiVG and
  QuickDraw, so `np.cumsum(rows[:, :2], axis=0)` gives back the absolute points.
- `pen_lift` is 1 on the last point of a stroke (the pen lifts after this
  point) and 0 otherwise. The last row of a drawing normally has `pen_lift=1`.
- sketch-rnn's `.npz` files hold this format (int16 or float rows).
- Continuous columns: `dx, dy` (D = 2). Normalisation uses mean 0 and one
  shared standard deviation for both, so drawings keep their aspect ratio and
  a zero offset stays zero.

**stroke-5** (model input of sketch-rnn style models): rows
`(dx, dy, p1, p2, p3)` with a one-hot pen state: `p1` pen stays down after this
point, `p2` pen lifts after this point, `p3` the drawing has ended.

- A drawing of `n` points becomes `n` rows with `p1 = 1 - pen_lift`,
  `p2 = pen_lift`, `p3 = 0`.
- The start token `(0, 0, 1, 0, 0)` (`STROKE5_START`) precedes the first point
  in model inputs.
- Padding after the end of a drawing is `(0, 0, 0, 0, 1)` (`STROKE5_END`).
- The categorical pen class of a row is `argmax(p1, p2, p3)`: 0 down, 1 up,
  2 end of drawing.

**touch** (store kind `"touch"`, columns `x, y, dt`; RoboJam / MicroJam): one
row per touch event: absolute screen position `x, y` in [0, 1] and `dt`, the
seconds since the previous event (0 for a performance's first event). A `dt`
above `NEW_TOUCH_DT` (0.1 s) starts a new touch (a tap, or a swipe's first point);
smaller `dt` continues a swipe. All three columns are continuous (D = 3).

**IMPSY** (store kind `"impsy"`, columns `dt, x_1, ..., x_n`): one row per
interaction event: `dt` in seconds first, then the `n` controller values in
[0, 1]. IMPSY logs are CSV lines `timestamp,source,x_1,...,x_n` with an ISO 8601
timestamp; `dt` is the difference of consecutive timestamps of the
`interface` rows. All columns are continuous (D = n + 1).

**Normalisation** (`normalize` / `denormalize`): the continuous columns are
always the leading `D` columns of a row (only stroke-3 has a trailing
discrete column, `pen_lift`), so `(x - mean) / std` applies to `x[..., :D]`
and leaves the rest untouched. Statistics come from the training split only.

**Pen lift**: a stroke-3 pen value counts as "lifted" when it is at least
`PEN_LIFT_THRESHOLD` (0.5; `pen_lifted`), everywhere: encoding, splitting into
strokes, export.

**Model rows and the row codec** (`RowCodec`): what a model reads and what its
samples become, in one place, used by the training pipeline
(`mdnrnn.data.make_dataset`), both generation paths (`mdnrnn.Generator`) and
the exporters.

- Model input rows: a categorical-pen (stroke-5) model reads normalised
  stroke-5 rows; a Bernoulli-pen model reads normalised stroke-3 rows (pen bit
  0/1); touch and IMPSY models read the normalised rows. An all-zero model row
  is padding: the model's `Masking` layer skips it.
- Start rows, fed before anything else when a sequence starts from nothing:
  the stroke-5 start token `(0, 0, 1, 0, 0)`; for stroke-3 models `(0, 0, 1)`
  (pen up at the origin, in normalised units); for touch and IMPSY models the
  data row of a first event at the centre: every position or controller value
  `START_VALUE` (0.5) and `dt = 0` (RoboJam records a performance's first
  touch with `dt = 0`), normalised. The training pipeline feeds drawings after
  the start token, and touch/IMPSY windows begin, from a zero state, with a
  real row (the first window of a performance with its `dt = 0` first touch),
  so a touch prefix is fed as it is and the start row stands in for a first
  event only when generating from scratch. No start row is all zeros, so the
  model never mistakes one for padding (`RowCodec` refuses normalisation
  statistics that would make it so).
- Targets (`ModelConfig.targets`): `"rows"`, the next row in model units; or,
  for touch and IMPSY models, `"offsets"`: the positions and controller values
  as their change from the previous row (the difference of the two normalised
  rows; the first row's from the start row), dt as it is. The change of
  variables has a unit Jacobian, so held-out NLLs of both forms compare
  directly. Inputs are the rows either way.
- dt scale (`ModelConfig.dt_scale`, touch and IMPSY): `"linear"`, dt as it
  is, or `"log"`: `log(dt + LOG_DT_SHIFT)` takes dt's place before
  normalising (the config's dt statistics are then the logarithm's), and
  decoding takes the exponential back (a dt above `LOG_DT_MAX` is out of
  bounds). Held-out NLLs of the two scales measure different variables and do
  not compare.
- Decoding a sample (model units, from `mixture_distribution` or the NumPy
  sampler): with offset targets add the previous model row's values, then
  denormalise. Touch `x, y` and IMPSY values lie in [0, 1] and every `dt` is at
  least 0: the mixture component is drawn with the probability the model
  gives it, then values outside the bounds are drawn again from that component,
  up to `REDRAWS` draws (`RowCodec.redraw`; the compiled loop takes the first
  of `REDRAWS` draws inside), so each component is truncated to the data's
  range rather than piling up on the screen's edge, and a broad component
  (a touch that jumps elsewhere) keeps its probability. Where none of those
  draws fell inside, component and values are drawn again, up to `REDRAWS`
  more times (a component with almost no mass inside is not truncated to a
  sliver along the edge). A row whose
  every draw fell outside is clipped into [0, 1] (`dt` to at least `MIN_DT`),
  then the clipped row is re-encoded as the next model input. A stroke-5 pen class maps through
  `STROKE5_CLASS_ROWS` (data row) and `STROKE5_CLASS_MODEL_ROWS` (model row):
  "end of drawing" (`END_OF_DRAWING`, class 2) becomes the data row
  `(0, 0, 1)` and the model row `(0, 0, 0, 0, 1)`.
- Tempo (`ModelConfig.tempo`, touch models): every model input row ends with
  one more column, the performance's tempo (`touch_tempo`: touches per second),
  as `(log(tempo) - m) / s` with `m` and `s` the mean and standard deviation of
  the logarithms of the training tempos' quantiles (`RowCodec.tempo_column`).
  The training pipeline gives every window its whole performance's tempo. A
  generator takes one per sequence: set, or drawn from the training quantiles
  into the start row when it starts from nothing; set, or the prefix's own
  (so far), on every row of a prefix it primes with. Decoding carries it from
  each model row to the next.
- Beats (`ModelConfig.beats`, tempo-conditioned touch models): the model sees
  and predicts the pauses between touches in beats of its performance's tempo.
  A dt up to `NEW_TOUCH_DT` (the screen's sampling interval within a swipe)
  stays in seconds; the part of a longer dt above it is multiplied by the tempo
  (`dt_in_beats`: `0.1 + (dt - 0.1) * tempo`, continuous, increasing, and a new
  touch stays a new touch at every tempo). This comes before `dt_scale`, and the
  config's dt statistics are those of the converted dt, so `LOG_DT_SHIFT` applies
  to it. Decoding converts back (`dt_in_seconds`) with the tempo in the tempo
  column of the model row fed last. The pauses of a performance drawn at tempo T
  then keep that tempo's pace rather than drifting to a middle one (its touches
  per second stay below T where swipes take their own time), while swipes keep
  the screen's timing. Held-out NLLs with and without beats measure different
  variables and do not compare.
"""

import numpy as np

STROKE3_COLUMNS = ("dx", "dy", "pen_lift")
TOUCH_COLUMNS = ("x", "y", "dt")
KINDS = ("stroke3", "touch", "impsy")

STROKE5_START = np.array([0.0, 0.0, 1.0, 0.0, 0.0], dtype=np.float32)
STROKE5_END = np.array([0.0, 0.0, 0.0, 0.0, 1.0], dtype=np.float32)

# A stroke-3 pen value at or above this means the pen lifts after the point.
PEN_LIFT_THRESHOLD = 0.5
# Stroke-5 pen classes (the categorical pen's values): pen down, pen up, end of drawing.
PEN_DOWN, PEN_UP, END_OF_DRAWING = 0, 1, 2
# Pen class -> data row factors `(dx, dy, pen_lift)`: dx and dy hold the factor the
# offsets are multiplied by, 0 for "end of drawing" (which also reads as a pen lift).
STROKE5_CLASS_ROWS = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1]], np.float32)
# Pen class -> model row factors `(dx, dy, p1, p2, p3)`, the same way.
STROKE5_CLASS_MODEL_ROWS = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 1, 0], [0, 0, 0, 0, 1]], np.float32)
# Smallest dt (seconds) of a decoded touch or IMPSY row.
MIN_DT = 1e-3
# Every position / controller value of the touch and IMPSY start row (dt is 0).
START_VALUE = 0.5
# What a model predicts (`ModelConfig.targets`): the next rows as they are, or, for touch
# and IMPSY rows, positions and controller values as changes from the previous row.
TARGETS = ("rows", "offsets")
# Draws per step, at most, for a sample inside the data's bounds (`RowCodec.redraw`).
REDRAWS = 16
# How touch and IMPSY models see dt (`ModelConfig.dt_scale`): as it is, or as
# `log(dt + LOG_DT_SHIFT)` (seconds; the shift keeps a first event's dt = 0 finite).
DT_SCALES = ("linear", "log")
LOG_DT_SHIFT = 1e-3
# With `dt_scale="log"`, a sampled dt above this many seconds is drawn again (`redraw`):
# the exponential of a far-out sample would overflow.
LOG_DT_MAX = 3600.0
# A touch row whose dt is above this many seconds starts a new touch (a tap, or the first
# point of a swipe); smaller dt continues a swipe. The exporters, live play, `touch_tempo`
# and `scripts/eval_touch.py` split touches with it.
NEW_TOUCH_DT = 0.1
# A performance's tempo (`touch_tempo`) is its touches per second over at least this many
# seconds, so a single tap reads as one touch per second rather than as a burst.
TEMPO_MIN_SECONDS = 1.0
# How many evenly spaced quantiles (0 to 100%) of the train split's tempos a
# tempo-conditioned model keeps (`ModelConfig.tempo_quantiles`) to draw tempos from.
TEMPO_QUANTILES = 101


def pen_lifted(pen):
    """Whether a stroke-3 pen value means "the pen lifts": `pen >= PEN_LIFT_THRESHOLD`.

    Args:
        pen: array-like of pen values (0/1, or soft values from a sampler).

    Returns:
        A boolean array of the same shape.
    """
    return np.asarray(pen) >= PEN_LIFT_THRESHOLD


def impsy_columns(n_values):
    """Column names of an IMPSY sequence with `n_values` controller values.

    Args:
        n_values: number of controller values per event (at least 1).

    Returns:
        A tuple `("dt", "x_1", ..., "x_n")`.

    Raises:
        ValueError: if `n_values` is not a positive integer.
    """
    if not isinstance(n_values, (int, np.integer)) or n_values < 1:
        raise ValueError(
            "Received an invalid value for `n_values`, expected a positive "
            f"integer. Received: n_values={n_values!r}"
        )
    return ("dt",) + tuple(f"x_{i}" for i in range(1, n_values + 1))


def default_columns(kind, n_columns=None):
    """Default column names of a store kind.

    Args:
        kind: one of `"stroke3"`, `"touch"`, `"impsy"`.
        n_columns: total number of columns; needed for `"impsy"` only.

    Returns:
        A tuple of column names.

    Raises:
        ValueError: for an unknown kind, or an `"impsy"` kind without
            `n_columns >= 2`.
    """
    if kind == "stroke3":
        return STROKE3_COLUMNS
    if kind == "touch":
        return TOUCH_COLUMNS
    if kind == "impsy":
        if n_columns is None or n_columns < 2:
            raise ValueError(
                "Kind 'impsy' needs `n_columns` >= 2 (dt plus at least one "
                f"value). Received: n_columns={n_columns!r}"
            )
        return impsy_columns(n_columns - 1)
    raise ValueError(f"Unknown sequence kind {kind!r}; expected one of {KINDS}.")


def n_continuous(kind, n_columns):
    """Number of continuous (normalised) columns of a store kind.

    Args:
        kind: one of `"stroke3"`, `"touch"`, `"impsy"`.
        n_columns: total number of columns.

    Returns:
        `n_columns - 1` for stroke-3 (all but `pen_lift`), else `n_columns`.

    Raises:
        ValueError: for an unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown sequence kind {kind!r}; expected one of {KINDS}.")
    return n_columns - 1 if kind == "stroke3" else n_columns


def points_to_offsets(points, origin=(0.0, 0.0)):
    """Absolute points `(n, 2)` to offsets from the previous point.

    The first offset is measured from `origin`.

    Args:
        points: array `(n, 2)` of absolute positions.
        origin: the position before the first point. Defaults to `(0, 0)`.

    Returns:
        Float array `(n, 2)` of offsets.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.diff(points, axis=0, prepend=np.asarray(origin, np.float64)[None, :])


def offsets_to_points(offsets, origin=(0.0, 0.0)):
    """Offsets `(n, 2)` back to absolute points (inverse of `points_to_offsets`).

    Args:
        offsets: array `(n, 2)` of offsets; the first from `origin`.
        origin: the position before the first point. Defaults to `(0, 0)`.

    Returns:
        Float array `(n, 2)` of absolute positions.
    """
    offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 2)
    return np.cumsum(offsets, axis=0) + np.asarray(origin, np.float64)


def strokes_to_stroke3(strokes, origin=(0.0, 0.0)):
    """A list of absolute polylines (one per stroke, in order) to stroke-3.

    Args:
        strokes: sequence of arrays `(n_i, 2)`, each with at least one point.
        origin: the position before the first point. Defaults to `(0, 0)`.

    Returns:
        Float32 array `(sum n_i, 3)`: `dx, dy, pen_lift` with `pen_lift = 1`
        on the last point of every stroke.

    Raises:
        ValueError: if there are no strokes or a stroke has no points.
    """
    if len(strokes) == 0:
        raise ValueError("Received no strokes; a drawing needs at least one.")
    strokes = [np.asarray(stroke, dtype=np.float64).reshape(-1, 2) for stroke in strokes]
    sizes = np.array([len(stroke) for stroke in strokes])
    if np.any(sizes == 0):
        raise ValueError(f"Stroke {int(np.flatnonzero(sizes == 0)[0])} has no points.")
    rows = np.zeros((sizes.sum(), 3))  # [n, 3]
    rows[:, :2] = points_to_offsets(np.concatenate(strokes), origin)
    rows[np.cumsum(sizes) - 1, 2] = 1.0  # the pen lifts after each stroke's last point
    return rows.astype(np.float32)


def stroke3_to_strokes(stroke3, origin=(0.0, 0.0)):
    """Stroke-3 rows to a list of absolute polylines, one per stroke.

    Points after the last `pen_lift = 1` form a final, unfinished stroke.

    Args:
        stroke3: array `(n, 3)` of `dx, dy, pen_lift`.
        origin: the position before the first point. Defaults to `(0, 0)`.

    Returns:
        A list of float arrays `(n_i, 2)`.
    """
    stroke3 = np.asarray(stroke3).reshape(-1, 3)
    points = offsets_to_points(stroke3[:, :2], origin)
    ends = np.flatnonzero(pen_lifted(stroke3[:, 2])) + 1
    return [s for s in np.split(points, ends) if len(s)]


def stroke3_to_stroke5(stroke3, max_len=None):
    """Stroke-3 rows to stroke-5 rows, optionally padded with end rows.

    Args:
        stroke3: array `(n, 3)` of `dx, dy, pen_lift`.
        max_len: if given, pad to `max_len` rows with `STROKE5_END`
            `(0, 0, 0, 0, 1)`. Defaults to `None` (no padding).

    Returns:
        Float32 array `(n, 5)` (or `(max_len, 5)`) with `p2 = 1` where the pen
        lifts (`pen_lifted`), else `p1 = 1`, and `p3 = 0` on the real rows.

    Raises:
        ValueError: if `max_len` is smaller than the number of rows.
    """
    stroke3 = np.asarray(stroke3, dtype=np.float32).reshape(-1, 3)
    n = len(stroke3)
    total = n if max_len is None else max_len
    if total < n:
        raise ValueError(
            f"Received max_len={max_len}, smaller than the drawing's {n} rows."
        )
    out = np.tile(STROKE5_END, (total, 1))
    out[:n] = STROKE5_CLASS_MODEL_ROWS[pen_lifted(stroke3[:, 2]).astype(np.intp)]
    out[:n, :2] *= stroke3[:, :2]
    return out


def stroke5_to_stroke3(stroke5, dtype=np.float32):
    """Stroke-5 rows to stroke-3 rows, stopping at the end-of-drawing state.

    The pen state of a row is the argmax of `(p1, p2, p3)`, so one-hot rows and
    probabilities both work. A leading start token `(0, 0, 1, 0, 0)` is dropped
    (as in sketch-rnn's `to_normal_strokes`), and so are the rows from the first
    end-of-drawing row on (including padding).

    Args:
        stroke5: array `(n, 5)`.
        dtype: float type of the result. Defaults to float32.

    Returns:
        Array `(m, 3)`, `m <= n`, of `dx, dy, pen_lift`.
    """
    stroke5 = np.asarray(stroke5, dtype=dtype).reshape(-1, 5)
    state = np.argmax(stroke5[:, 2:], axis=1)  # 0 down, 1 up, 2 end
    ended = np.flatnonzero(state == END_OF_DRAWING)
    n = ended[0] if len(ended) else len(stroke5)
    first = 1 if n > 0 and np.array_equal(stroke5[0], STROKE5_START) else 0
    out = STROKE5_CLASS_ROWS[state[first:n]].astype(dtype)
    out[:, :2] *= stroke5[first:n, :2]
    out[:, :2] += 0.0  # -0.0 -> 0.0
    return out


def times_to_dt(times):
    """Absolute event times (seconds) to time since the previous event.

    Args:
        times: array `(n,)` of times in seconds, non-decreasing.

    Returns:
        Float array `(n,)`; the first entry is 0.
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    return np.diff(times, prepend=times[:1])


def dt_to_times(dt, start=0.0):
    """Time since the previous event back to absolute times (a running sum).

    Args:
        dt: array `(n,)` of seconds since the previous event.
        start: time of the origin. Defaults to 0.

    Returns:
        Float array `(n,)` of absolute times.
    """
    return start + np.cumsum(np.asarray(dt, dtype=np.float64).reshape(-1))


def dt_in_beats(dt, tempo, where=np.where):
    """Touch dt (seconds) to the units of a model with `beats`: the part above
    `NEW_TOUCH_DT` in beats of `tempo` (touches per second), the rest in seconds.

    `where` is `np.where`, or `tf.where` for tensors; `tempo` broadcasts against `dt`.

    >>> float(dt_in_beats(0.6, 2.0)), float(dt_in_beats(0.05, 2.0))   # 0.1 s + 0.5 s * 2; a swipe's dt
    (1.1, 0.05)
    """
    return where(dt > NEW_TOUCH_DT, NEW_TOUCH_DT + (dt - NEW_TOUCH_DT) * tempo, dt)


def dt_in_seconds(value, tempo, where=np.where):
    """The inverse of `dt_in_beats`."""
    return where(value > NEW_TOUCH_DT, NEW_TOUCH_DT + (value - NEW_TOUCH_DT) / tempo, value)


def touch_tempo(dt, tap_threshold=NEW_TOUCH_DT):
    """A touch performance's tempo: its touches per second.

    Touches are the first row and every row whose dt is above `tap_threshold` (as the
    exporters split them); the duration is the sum of dt, or `TEMPO_MIN_SECONDS` if
    that is longer.

    Args:
        dt: `(n,)` seconds since the previous row, `n >= 1`.
        tap_threshold: Defaults to `NEW_TOUCH_DT`.

    Returns:
        A float above 0.

    Example:

    >>> touch_tempo([0.0, 0.5, 0.0625, 0.0625, 1.375])   # 3 touches in 2 s
    1.5
    """
    dt = np.asarray(dt, np.float64)
    if dt.ndim != 1 or len(dt) == 0:
        raise ValueError(f"`dt` must be a non-empty 1-D array of seconds. Received shape {dt.shape}.")
    touches = 1 + np.count_nonzero(dt[1:] > tap_threshold)
    return float(touches / max(float(dt.sum()), TEMPO_MIN_SECONDS))


def normalize(values, mean, std):
    """Normalise the leading continuous columns: `(x - mean) / std`.

    Args:
        values: array `(..., columns)`.
        mean: array `(D,)`, `D <= columns`.
        std: array `(D,)`, positive.

    Returns:
        Float32 array like `values` with columns `[:D]` normalised and the
        rest (a stroke-3 `pen_lift`) unchanged.
    """
    out = np.array(values, dtype=np.float32, copy=True)
    d = len(mean)
    out[..., :d] = (out[..., :d] - np.asarray(mean, np.float32)) / np.asarray(
        std, np.float32
    )
    return out


def denormalize(values, mean, std):
    """Undo `normalize`: `x * std + mean` on the leading continuous columns.

    Args:
        values: array `(..., columns)` in normalised units.
        mean: array `(D,)`, `D <= columns`.
        std: array `(D,)`.

    Returns:
        Float32 array like `values` in data units.
    """
    out = np.array(values, dtype=np.float32, copy=True)
    d = len(mean)
    out[..., :d] = out[..., :d] * np.asarray(std, np.float32) + np.asarray(
        mean, np.float32
    )
    return out


class RowCodec:
    """Data rows <-> model rows for one model: the row codec (see the module note).

    Encodes data rows (stroke-3, touch or IMPSY, in data units) as model input rows,
    gives the start rows, and decodes samples (model units) into data rows plus the model
    rows fed back next. `decode` (NumPy) and `decode_tf` (TensorFlow, for compiled loops)
    are built from the same tables and constants and give the same rows.

    Args:
        kind: `"stroke3"`, `"touch"` or `"impsy"`.
        dim: number of continuous columns D (2 for stroke-3, 3 for touch, 1 + n for IMPSY).
        pen: `None`, `"bernoulli"` (stroke-3 model rows) or `"categorical"` (stroke-5
            model rows); stroke-3 needs one, the others none. Defaults to `None`.
        mean: per continuous column, the training data's mean `(D,)`. Defaults to zeros.
        std: per continuous column, the training data's standard deviation `(D,)`.
            Defaults to ones.
        targets: `"rows"` or `"offsets"` (see `TARGETS`). Defaults to `"rows"`.
        dt_scale: touch and IMPSY: `"linear"`, dt as it is, or `"log"`: the model sees
            `log(dt + LOG_DT_SHIFT)`, normalised (`mean` and `std` of the dt column are
            then those of the logarithm), and its samples come back through `exp`.
            Pauses between touches span 0.1 s to seconds, a heavy tail that linear
            Gaussians cover by spreading below 0.1 s too. Defaults to `"linear"`.
        tempo_quantiles: touch models conditioned on tempo: the quantiles of the
            training performances' tempos (`touch_tempo`, touches per second;
            increasing, at least two), which set the tempo column's scale and what
            `draw_tempo` draws from. Every model input row then ends with the tempo column
            (see the module note), and `encode` and `start_rows` need the tempo of each
            sequence. `None` (the default): no tempo column.
        beats: with `tempo_quantiles`, pauses between touches in beats of each
            sequence's tempo (`dt_in_beats`; see the module note) rather than in
            seconds. Defaults to `False`.

    Raises:
        ValueError: for an unknown kind, a pen that does not fit it, statistics of the
            wrong length, or statistics that make the start row all zeros (padding).

    Example:

    >>> codec = RowCodec("touch", 3, mean=(0.5, 0.5, 0.1), std=(0.3, 0.3, 0.1))
    >>> codec.start_rows(1)
    array([[ 0.,  0., -1.]], dtype=float32)
    """

    def __init__(self, kind, dim, pen=None, mean=None, std=None, targets="rows", dt_scale="linear",
                 tempo_quantiles=None, beats=False):
        if kind not in KINDS:
            raise ValueError(f"Unknown sequence kind {kind!r}; expected one of {KINDS}.")
        if dt_scale not in DT_SCALES or (dt_scale == "log" and kind == "stroke3"):
            raise ValueError(
                f"Received an invalid value for `dt_scale`, expected one of {DT_SCALES} ('log' for "
                f"touch and IMPSY rows only). Received: kind={kind!r}, dt_scale={dt_scale!r}"
            )
        if targets not in TARGETS or (targets == "offsets" and kind == "stroke3"):
            raise ValueError(
                f"Received an invalid value for `targets`, expected one of {TARGETS} ('offsets' "
                f"for touch and IMPSY rows only). Received: kind={kind!r}, targets={targets!r}"
            )
        if (kind == "stroke3") != (pen is not None) or pen not in (None, "bernoulli", "categorical"):
            raise ValueError(
                "Received an invalid value for `pen`, expected 'bernoulli' or 'categorical' "
                f"for stroke3 rows and None otherwise. Received: kind={kind!r}, pen={pen!r}"
            )
        self.kind, self.dim, self.pen, self.targets_form = kind, int(dim), pen, targets
        self.columns = default_columns(kind, self.dim + (1 if pen else 0))
        self.mean = np.zeros(dim, np.float32) if mean is None else np.asarray(mean, np.float32)
        self.std = np.ones(dim, np.float32) if std is None else np.asarray(std, np.float32)
        if self.mean.shape != (dim,) or self.std.shape != (dim,):
            raise ValueError(
                f"`mean` and `std` need {dim} values (one per continuous column). "
                f"Received: mean={self.mean.tolist()}, std={self.std.tolist()}"
            )
        self.dt_index = self.columns.index("dt") if "dt" in self.columns else None
        self.dt_scale = dt_scale
        self.log_dt = dt_scale == "log"
        # Bounds of decoded rows, in data units (None: stroke-3 offsets are unbounded):
        # samples outside [low, high] are drawn again (`redraw`), and decoded rows are
        # clipped into [clip_low, high].
        if kind == "stroke3":
            self.low = self.high = self.clip_low = None
            self.offset_columns = np.zeros(dim, bool)
        else:
            dt = np.arange(dim) == self.dt_index
            self.low = np.zeros(dim, np.float32)
            self.clip_low = np.where(dt, MIN_DT, 0.0).astype(np.float32)
            self.high = np.where(dt, LOG_DT_MAX if dt_scale == "log" else np.inf, 1.0).astype(np.float32)
            # With offset targets, every bounded column but dt is predicted as a change.
            self.offset_columns = ~dt if targets == "offsets" else np.zeros(dim, bool)
        self.offsets = bool(self.offset_columns.any())
        self._offset_factors = self.offset_columns.astype(np.float32)
        # Model input rows: the normalised row, the pen's encoding, then (offset targets)
        # the offset columns' change from the previous row.
        self.input_size = {None: dim, "bernoulli": dim + 1, "categorical": dim + 3}[pen]
        self.input_size += int(self.offset_columns.sum())
        quantiles = None if tempo_quantiles is None else np.asarray(tempo_quantiles, np.float64)
        self.tempo_quantiles = quantiles
        if quantiles is not None:
            if kind != "touch" or quantiles.ndim != 1 or len(quantiles) < 2 or not (
                    np.isfinite(quantiles).all() and (quantiles > 0).all() and (np.diff(quantiles) >= 0).all()):
                raise ValueError(
                    "Received an invalid value for `tempo_quantiles`, expected the increasing quantiles (at "
                    f"least two, all above 0) of a touch corpus' tempos. Received: kind={kind!r}, "
                    f"tempo_quantiles={tempo_quantiles!r}"
                )
            logs = np.log(quantiles)
            self._tempo_mean, self._tempo_std = float(logs.mean()), float(logs.std()) or 1.0
            self.input_size += 1
        if beats and quantiles is None:
            raise ValueError("`beats` measures pauses in beats of a tempo: it needs `tempo_quantiles`.")
        self.beats = bool(beats)
        # Draws a compiled loop takes per step for `decode_tf` (see `redraw`).
        self.draws = 1 if self.low is None else REDRAWS
        if pen == "categorical":
            self.start_row = STROKE5_START.copy()
        elif pen == "bernoulli":
            self.start_row = np.array([0.0, 0.0, 1.0], np.float32)
        else:
            first_event = np.where(np.arange(dim) == self.dt_index, 0.0, START_VALUE)
            # dt = 0 is 0 beats at any tempo: the start row is the same for every tempo.
            self.start_row = self._encode_rows(first_event[None], 1.0 if self.beats else None)[0]
            if not self.start_row.any():
                raise ValueError(
                    f"The start row {first_event.tolist()} normalises to all zeros, which the "
                    f"model reads as padding; mean={self.mean.tolist()} is exactly that row. "
                    "Compute `mean` and `std` from the training data."
                )

    # ------------------------------------------------------------------ encoding
    def start_rows(self, batch_size, tempo=None):
        """`batch_size` copies of the start row, model units `(batch_size, input_size)`.

        A tempo-conditioned codec needs `tempo`: touches per second, one per row or one
        for all (`start_row` is the row without its tempo column)."""
        rows = np.tile(self.start_row, (batch_size, 1))
        return self._with_tempo(rows, tempo)

    def encode(self, rows, tempo=None):
        """Data rows to model input rows `(..., input_size)`, float32.

        `rows` is `(..., T, columns)`, one sequence (or a batch of them) with time on the
        second to last axis: with offset targets, each row's input also holds its offset
        columns' change from the row before it (0 for the first row, which has none; see
        `encode_step`). Other models encode each row on its own. A tempo-conditioned
        codec needs `tempo`, touches per second broadcast against `rows.shape[:-1]`: a
        number for one sequence, `(B, 1)` for one per sequence of a batch, or one per
        row; it appends the tempo column.
        """
        return self._with_tempo(self._encode_rows(rows, tempo), tempo)

    def tempo_column(self, tempo):
        """Tempos (touches per second, any shape) as the model's tempo column: float32."""
        tempo = np.asarray(tempo, np.float64)
        if not (np.isfinite(tempo).all() and (tempo > 0).all()):
            raise ValueError(f"A tempo is a number of touches per second above 0. Received: tempo={tempo.tolist()!r}")
        return ((np.log(tempo) - self._tempo_mean) / self._tempo_std).astype(np.float32)

    def draw_tempo(self, rng, n):
        """`n` tempos drawn from the training tempos' distribution: uniform draws mapped
        through the quantiles (`tempo_quantiles`), linearly between them."""
        quantiles = self.tempo_quantiles
        return np.interp(rng.random(n), np.linspace(0.0, 1.0, len(quantiles)), quantiles)

    def _with_tempo(self, model_rows, tempo):
        """`model_rows` `(..., input_size - 1)` and the tempo column; as they are without tempo."""
        if self.tempo_quantiles is None:
            if tempo is not None:
                raise ValueError("This model is not conditioned on tempo; leave `tempo` out.")
            return model_rows
        if tempo is None:
            raise ValueError("This model is conditioned on tempo: give each sequence's tempo (touches per second).")
        column = np.broadcast_to(self.tempo_column(tempo), model_rows.shape[:-1])
        return np.concatenate([model_rows, column[..., None]], -1)

    def _tempo_of(self, model_rows):
        """The tempo (touches per second) of model rows `(B, input_size)`, from their
        tempo column: `(B,)` float32."""
        return np.exp(model_rows[:, -1] * self._tempo_std + self._tempo_mean).astype(np.float32)

    def _tempo_of_tf(self, model_rows):
        """`_tempo_of` in TensorFlow."""
        from mdnrnn._tf import tf

        return tf.exp(model_rows[:, -1] * self._tempo_std + self._tempo_mean)

    def _keep_tempo(self, model_rows, previous):
        """Decoded model rows `(B, input_size - 1)` and the tempo column of `previous`."""
        if self.tempo_quantiles is None:
            return model_rows
        return np.concatenate([model_rows, previous[:, -1:]], 1)

    def _keep_tempo_tf(self, model_rows, previous):
        """`_keep_tempo` in TensorFlow."""
        if self.tempo_quantiles is None:
            return model_rows
        from mdnrnn._tf import tf

        return tf.concat([model_rows, previous[:, -1:]], 1)

    def _encode_rows(self, rows, tempo=None):
        """`encode` without the tempo column (`tempo`: for `beats`)."""
        rows = np.asarray(rows, np.float32)
        out = self._normalise(rows, tempo)
        if self.offsets:
            change = np.zeros(out.shape[:-1] + (int(self.offset_columns.sum()),), np.float32)
            change[..., 1:, :] = np.diff(out[..., self.offset_columns], axis=-2)
            return np.concatenate([out, change], -1)
        if self.pen is None:
            return out
        lifted = pen_lifted(rows[..., self.dim])
        if self.pen == "bernoulli":
            out[..., self.dim] = lifted
            return out
        model = STROKE5_CLASS_MODEL_ROWS[lifted.astype(np.intp)]  # [..., 5]
        model[..., :2] *= out[..., :2]
        return model

    def targets(self, rows, tempo=None):
        """Data rows `(..., T, columns)` to training targets: normalised, the pen as 0/1.

        For a categorical pen, 0/1 is the class (pen down / up); the training pipeline
        appends `END_OF_DRAWING` after the last row. With offset targets, the offset
        columns hold the change from the previous row along the time axis (the second
        to last), in model units; the first row's change is from the start row. With
        `beats`, `tempo` is as for `encode`.
        """
        rows = np.asarray(rows, np.float32)
        out = self._normalise(rows, tempo)
        if self.beats:
            self.tempo_column(tempo)  # checks that every tempo is above 0, as `encode` does
        if self.pen is not None:
            out[..., self.dim] = pen_lifted(rows[..., self.dim])
        if self.offsets:
            columns = self.offset_columns
            first = np.broadcast_to(self.start_row[: self.dim][columns], out[..., :1, columns].shape)
            previous = np.concatenate([first, out[..., :-1, columns]], -2)
            out[..., columns] -= previous
        return out

    def encode_step(self, rows, previous=None, tempo=None):
        """One step of `encode`: data rows `(B, columns)` that follow the model rows
        `previous` `(B, input_size)` (`None`: the rows start their sequences, and a
        tempo-conditioned codec needs their `tempo`; else it comes from `previous`)."""
        if previous is None:
            return self.encode(np.asarray(rows, np.float32)[..., None, :], tempo)[..., 0, :]
        tempo = self._tempo_of(previous) if self.beats else None
        if not self.offsets:
            model_rows = self._encode_rows(np.asarray(rows, np.float32)[..., None, :], tempo[:, None]
                                           if self.beats else None)[..., 0, :]
        else:
            model_rows = self._with_changes(self._normalise(rows, tempo), previous)
        return self._keep_tempo(model_rows, previous)

    def _normalise(self, rows, tempo=None):
        """Data rows `(..., columns)` to normalised rows (pauses in beats of `tempo`, broadcast
        against `rows.shape[:-1]`, with `beats`; then through its scale)."""
        if self.beats or self.log_dt:
            rows = np.array(rows, np.float32)
        if self.beats:
            if tempo is None:
                raise ValueError("This model measures pauses in beats: give each sequence's tempo (touches per second).")
            rows[..., self.dt_index] = dt_in_beats(rows[..., self.dt_index], np.asarray(tempo, np.float32))
        if self.log_dt:
            rows[..., self.dt_index] = np.log(np.maximum(rows[..., self.dt_index], 0.0) + LOG_DT_SHIFT)
        return normalize(rows, self.mean, self.std)

    def _data_units(self, values, tempo=None):
        """Normalised continuous values `(B, D)` to data units (a new array); with
        `beats`, pauses from beats of `tempo` `(B,)` to seconds."""
        values = values * self.std + self.mean
        if self.log_dt:
            with np.errstate(over="ignore"):  # inf, above LOG_DT_MAX: outside the bounds
                values[..., self.dt_index] = np.exp(values[..., self.dt_index]) - LOG_DT_SHIFT
        if self.beats:
            values[..., self.dt_index] = dt_in_seconds(values[..., self.dt_index], tempo)
        return values

    def _with_changes(self, values, previous):
        """Normalised values `(B, D)` and the change of their offset columns from `previous`."""
        return np.concatenate([values, (values - previous[:, : self.dim])[:, self.offset_columns]], 1)

    def _with_changes_tf(self, values, previous):
        """`_with_changes` in TensorFlow."""
        from mdnrnn._tf import tf

        change = values - previous[:, : self.dim]
        return tf.concat([values, tf.gather(change, np.flatnonzero(self.offset_columns), axis=1)], 1)

    def _log_dt_tf(self, values, previous):
        """TensorFlow: data-unit values `(..., B, D)` with pauses in beats (of `previous`'
        tempo, with `beats`) and through its scale."""
        if not (self.log_dt or self.beats):
            return values
        from mdnrnn._tf import tf

        is_dt = np.arange(self.dim) == self.dt_index
        if self.beats:
            values = tf.where(is_dt, dt_in_beats(values, self._tempo_of_tf(previous)[:, None], tf.where), values)
        if self.log_dt:
            values = tf.where(is_dt, tf.math.log(tf.maximum(values, 0.0) + LOG_DT_SHIFT), values)
        return values

    def _exp_dt_tf(self, values, previous):
        """TensorFlow: the inverse of `_log_dt_tf`."""
        if not (self.log_dt or self.beats):
            return values
        from mdnrnn._tf import tf

        is_dt = np.arange(self.dim) == self.dt_index
        if self.log_dt:
            values = tf.where(is_dt, tf.exp(values) - LOG_DT_SHIFT, values)
        if self.beats:
            values = tf.where(is_dt, dt_in_seconds(values, self._tempo_of_tf(previous)[:, None], tf.where), values)
        return values

    def encode_tf(self, rows, previous):
        """`encode_step` in TensorFlow: data rows `(B, columns)` after the model rows
        `previous` to model rows `(B, input_size)`."""
        from mdnrnn._tf import tf

        d = self.dim
        values = (self._log_dt_tf(rows[:, :d], previous) - self.mean) / self.std
        if self.offsets:
            return self._keep_tempo_tf(self._with_changes_tf(values, previous), previous)
        if self.pen is None:
            return self._keep_tempo_tf(values, previous)
        lifted = tf.cast(rows[:, d] >= PEN_LIFT_THRESHOLD, values.dtype)
        if self.pen == "bernoulli":
            return tf.concat([values, lifted[:, None]], 1)
        factors = tf.gather(STROKE5_CLASS_MODEL_ROWS, tf.cast(lifted, tf.int32))  # [B, 5]
        return tf.concat([values * factors[:, :2], factors[:, 2:]], 1)

    # ------------------------------------------------------------------ decoding
    def redraw(self, values, previous, *draws):
        """Draws again the samples whose rows fall outside the data's bounds.

        Touch positions lie in [0, 1] and every dt is at least 0 (IMPSY values too): a
        sample outside is drawn again by `draws[0]` (the sampler draws from the mixture
        component the row chose) until it falls inside, `REDRAWS` draws in all counting
        the first; rows still outside go on to `draws[1]` (a fresh component and values),
        `REDRAWS` more times, and so on. A row whose every draw fell outside keeps its
        first (`decode` clips it). Drawings have no bounds and come back as they are.

        Args:
            values: float32 `(B, D)` samples in model units (changed in place).
            previous: `(B, input_size)`, the model rows fed last (for offset targets).
            *draws: functions; `draw(index)` returns fresh samples `(len(index), D)` for
                those rows.

        Returns:
            `values`.
        """
        if self.low is None:
            return values
        outside = np.flatnonzero(~self._inside(values, previous))
        for stage, draw in enumerate(draws):
            if not len(outside):
                break
            tries = REDRAWS - 1 if stage == 0 else REDRAWS
            index = np.tile(outside, tries)  # all tries at once: [try, row]
            fresh = draw(index)
            inside = self._inside(fresh, previous[index]).reshape(tries, len(outside))
            found = inside.any(axis=0)
            first = inside.argmax(axis=0)[found]  # the first try inside, per row
            values[outside[found]] = fresh.reshape(tries, len(outside), -1)[first, np.flatnonzero(found)]
            outside = outside[~found]
        return values

    def _inside(self, values, previous):
        """Whether each sample `(B, D)` (model units) decodes to a row within the bounds."""
        if self.offsets:
            values = values + previous[:, : self.dim] * self._offset_factors
        values = self._data_units(values, self._tempo_of(previous) if self.beats else None)
        return ((values >= self.low) & (values <= self.high)).all(axis=1)

    def decode(self, values, pen=None, previous=None):
        """A sample in model units to data rows and the model rows fed back next.

        Args:
            values: float32 `(B, D)`, the continuous part in model (normalised) units.
            pen: `(B,)`: a class index (0, 1, 2) for a categorical pen, 0/1 for a
                Bernoulli pen; `None` without a pen.
            previous: `(B, input_size)`, the model rows fed last; needed with offset
                targets, whose values are changes from them, and with a tempo column,
                which is carried from them.

        Returns:
            `(rows, model_rows)`: float32 `(B, columns)` in data units, clipped, and
            `(B, input_size)`.
        """
        if self.offsets:
            values = values + previous[:, : self.dim] * self._offset_factors
        model_values = values
        tempo = self._tempo_of(previous) if self.beats else None
        values = self._data_units(values, tempo)
        if self.low is not None:  # clip in data units, then encode the clipped rows
            np.maximum(values, self.clip_low, out=values)
            np.minimum(values, self.high, out=values)
            model_values = self._normalise(values, tempo)
        if self.offsets:
            return values, self._keep_tempo(self._with_changes(model_values, previous), previous)
        if self.pen is None:
            return values, self._keep_tempo(model_values, previous)
        d = self.dim
        if self.pen == "bernoulli":
            rows = np.empty((len(values), d + 1), np.float32)
            rows[:, :d] = values
            rows[:, d] = pen_lifted(pen)
            model_rows = rows.copy()
            model_rows[:, :d] = model_values
            return rows, model_rows
        rows = STROKE5_CLASS_ROWS[pen]
        rows[:, :2] *= values
        rows[:, :2] += _ZERO  # -0.0 -> 0.0 where "end of drawing" zeroed them
        model_rows = STROKE5_CLASS_MODEL_ROWS[pen]
        model_rows[:, :2] *= model_values
        return rows, model_rows

    def decode_tf(self, samples, previous):
        """`decode` after `redraw`, in TensorFlow, for compiled loops.

        Args:
            samples: `(draws, B, target_size)` draws of `mixture_distribution`: the
                first draw inside the bounds is taken (`redraw`), else the first. For
                drawings one draw is enough (they have no bounds).
            previous: `(B, input_size)`, the model rows fed last.

        Returns:
            `(rows, model_rows, end)`: as `decode`, plus a boolean `(B,)` that is true
            where a stroke-5 pen drew "end of drawing".
        """
        from mdnrnn._tf import tf

        d = self.dim
        offsets = previous[:, :d] * self._offset_factors if self.offsets else 0.0
        if self.low is None:
            sample = samples[0]
            model_values = sample[:, :d]
        else:  # the pen-less kinds: sample == values
            values = self._exp_dt_tf((samples + offsets) * self.std + self.mean, previous)  # [draws, B, D]
            inside = tf.reduce_all((values >= self.low) & (values <= self.high), axis=-1)  # [draws, B]
            draws = tf.shape(samples)[0]
            index = tf.where(inside, tf.range(draws)[:, None], draws)
            first = tf.math.floormod(tf.reduce_min(index, axis=0), draws)  # 0 where none is inside
            sample = tf.gather(tf.transpose(samples, [1, 0, 2]), first, axis=1, batch_dims=1)  # [B, D]
            model_values = sample + offsets
        values = self._exp_dt_tf(model_values * self.std + self.mean, previous)
        if self.low is not None:
            values = tf.minimum(tf.maximum(values, self.clip_low), self.high)
            model_values = (self._log_dt_tf(values, previous) - self.mean) / self.std
        no_end = tf.zeros(tf.shape(values)[:1], tf.bool)
        if self.offsets:
            return values, self._keep_tempo_tf(self._with_changes_tf(model_values, previous), previous), no_end
        if self.pen is None:
            return values, self._keep_tempo_tf(model_values, previous), no_end
        pen = sample[:, d]
        if self.pen == "bernoulli":
            lifted = tf.cast(pen >= PEN_LIFT_THRESHOLD, values.dtype)[:, None]
            return tf.concat([values, lifted], 1), tf.concat([model_values, lifted], 1), no_end
        pen = tf.cast(pen, tf.int32)
        factors = tf.gather(STROKE5_CLASS_ROWS, pen)  # [B, 3]
        model_factors = tf.gather(STROKE5_CLASS_MODEL_ROWS, pen)  # [B, 5]
        # The factors are 0 or 1: where() rather than a product keeps "end of drawing" +0.0.
        rows = tf.concat([tf.where(factors[:, :2] > 0, values, 0.0), factors[:, 2:]], 1)
        model_rows = tf.concat(
            [tf.where(model_factors[:, :2] > 0, model_values, 0.0), model_factors[:, 2:]], 1
        )
        return rows, model_rows, tf.equal(pen, END_OF_DRAWING)


_ZERO = np.array(0.0, np.float32)
