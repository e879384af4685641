"""Helpers shared by the SVG and MIDI exporters.

Input checks that raise `ValueError` with the argument named, and the split of a touch
performance into touches. Pure NumPy and the standard library (atomic file writes are
`mdnrnn.atomic`'s).

Touch format (RoboJam / MicroJam): rows `(x, y, dt)`, `x` and `y` the absolute screen
position in [0, 1] (`y` grows downwards), `dt` the seconds since the previous touch event.
A row whose `dt` exceeds the tap threshold starts a new touch; a smaller `dt` continues the
current swipe. The first row always starts a touch.
"""

import numpy as np

from mdnrnn import formats


def finite_array(values, name):
    """Converts `values` to a float64 array, rejecting NaN and infinity.

    Args:
        values: array-like of numbers.
        name: the argument name used in error messages.

    Returns:
        A float64 NumPy array with the shape of `values`.

    Raises:
        ValueError: if `values` is not numeric or holds NaN or infinity.
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a numeric array. "
            f"Received: {name}={values!r:.80}"
        ) from error
    bad = ~np.isfinite(array)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])[:10].tolist()
        raise ValueError(
            f"Received non-finite values (NaN or inf) in `{name}` at rows {rows} "
            f"(first 10 shown); clean or drop them before exporting."
        )
    return array


def touch_array(touches, name="touches"):
    """Checks a touch performance and returns it as a float64 array of shape (timesteps, 3).

    Args:
        touches: array-like of shape `(timesteps, 3)`, columns `(x, y, dt)`. An empty list
            is accepted as a performance with no touches.
        name: the argument name used in error messages. Defaults to `"touches"`.

    Returns:
        A float64 array of shape `(timesteps, 3)`.

    Raises:
        ValueError: if the shape is wrong or a value is NaN or infinite.
    """
    array = finite_array(touches, name)
    if array.size == 0 and array.ndim == 1:
        return np.zeros((0, 3))
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected an array of shape "
            f"(timesteps, 3) with columns (x, y, dt). Received: {name}.shape={array.shape}"
        )
    return array


def check_threshold(tap_threshold):
    """Checks that `tap_threshold` is a finite, non-negative number of seconds."""
    if not np.isfinite(tap_threshold) or tap_threshold < 0:
        raise ValueError(
            "Received an invalid value for `tap_threshold`, expected a non-negative "
            f"number of seconds. Received: tap_threshold={tap_threshold!r}"
        )


def onset_times(dt):
    """Absolute time of each row in seconds: the running sum of `dt`.

    Negative `dt` values (found in uncleaned recordings) count as zero, so time never runs
    backwards.

    Args:
        dt: array of shape `(timesteps,)`, seconds since the previous row.

    Returns:
        Array of shape `(timesteps,)`; row `i` happens at `sum(dt[: i + 1])`.
    """
    return formats.dt_to_times(np.maximum(dt, 0.0))


def touch_spans(dt, tap_threshold):
    """Splits a performance into touches: one slice of rows per tap or swipe.

    Args:
        dt: array of shape `(timesteps,)`, seconds since the previous row.
        tap_threshold: a row with `dt > tap_threshold` starts a new touch.

    Returns:
        A list of `slice` objects covering the rows in order; a slice of length one is a
        tap, a longer one a swipe. Empty for an empty performance.
    """
    if len(dt) == 0:
        return []
    starts = np.flatnonzero(dt > tap_threshold)
    starts = np.union1d([0], starts)
    stops = np.append(starts[1:], len(dt))
    return [slice(int(start), int(stop)) for start, stop in zip(starts, stops)]

