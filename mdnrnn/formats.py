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
above about 0.1 s usually starts a new touch (a tap); smaller `dt` continues a
swipe. All three columns are continuous (D = 3).

**IMPSY** (store kind `"impsy"`, columns `dt, x_1, ..., x_n`): one row per
interaction event: `dt` in seconds first, then the `n` controller values in
[0, 1]. IMPSY logs are CSV lines `timestamp,source,x_1,...,x_n` with an ISO 8601
timestamp; `dt` is the difference of consecutive timestamps of the
`interface` rows. All columns are continuous (D = n + 1).

**Normalisation** (`normalize` / `denormalize`): the continuous columns are
always the leading `D` columns of a row (only stroke-3 has a trailing
discrete column, `pen_lift`), so `(x - mean) / std` applies to `x[..., :D]`
and leaves the rest untouched. Statistics come from the training split only.
"""

import numpy as np

STROKE3_COLUMNS = ("dx", "dy", "pen_lift")
TOUCH_COLUMNS = ("x", "y", "dt")
KINDS = ("stroke3", "touch", "impsy")

STROKE5_START = np.array([0.0, 0.0, 1.0, 0.0, 0.0], dtype=np.float32)
STROKE5_END = np.array([0.0, 0.0, 0.0, 0.0, 1.0], dtype=np.float32)


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
    ends = np.flatnonzero(stroke3[:, 2] > 0.5) + 1
    return [s for s in np.split(points, ends) if len(s)]


def stroke3_to_stroke5(stroke3, max_len=None):
    """Stroke-3 rows to stroke-5 rows, optionally padded with end rows.

    Args:
        stroke3: array `(n, 3)` of `dx, dy, pen_lift`.
        max_len: if given, pad to `max_len` rows with `STROKE5_END`
            `(0, 0, 0, 0, 1)`. Defaults to `None` (no padding).

    Returns:
        Float32 array `(n, 5)` (or `(max_len, 5)`) with `p1 = 1 - pen_lift`,
        `p2 = pen_lift`, `p3 = 0` on the real rows.

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
    out[:n, :2] = stroke3[:, :2]
    out[:n, 2] = 1.0 - stroke3[:, 2]
    out[:n, 3] = stroke3[:, 2]
    out[:n, 4] = 0.0
    return out


def stroke5_to_stroke3(stroke5):
    """Stroke-5 rows to stroke-3 rows, stopping at the end-of-drawing state.

    The pen state of a row is the argmax of `(p1, p2, p3)`, so one-hot rows and
    probabilities both work. Rows from the first end-of-drawing row on
    (including padding) are dropped.

    Args:
        stroke5: array `(n, 5)`.

    Returns:
        Float32 array `(m, 3)`, `m <= n`, of `dx, dy, pen_lift`.
    """
    stroke5 = np.asarray(stroke5, dtype=np.float32).reshape(-1, 5)
    state = np.argmax(stroke5[:, 2:], axis=1)  # 0 down, 1 up, 2 end
    ended = np.flatnonzero(state == 2)
    n = ended[0] if len(ended) else len(stroke5)
    out = np.empty((n, 3), dtype=np.float32)
    out[:, :2] = stroke5[:n, :2]
    out[:, 2] = (state[:n] == 1).astype(np.float32)
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
