"""SVG pictures of pen drawings (stroke-3 / stroke-5) and of touch performances.

Data formats (the authoritative note is `mdnrnn.formats`, whose row codec decodes them here):

- stroke-3: rows `(dx, dy, p)`, offsets from the previous point; the first row's offset is
  from the origin `(0, 0)`. `p = 1` on the last point of a stroke: the pen lifts after it
  (`p >= 0.5` counts as a lift, `mdnrnn.formats.pen_lifted`).
  `y` grows downwards, as in SVG and KanjiVG.
- stroke-5: rows `(dx, dy, p1, p2, p3)`, one-hot pen down / pen up / end of drawing. A leading
  start token `(0, 0, 1, 0, 0)` is dropped, and the drawing ends before the first row whose
  largest pen value is `p3` (as in sketch-rnn's `to_normal_strokes`); later rows are padding.
- touch: rows `(x, y, dt)`, absolute position in [0, 1] and seconds since the previous row;
  `dt > tap_threshold` starts a new touch.

Every picture is drawn in output pixels: a drawing is scaled to fit its canvas (or grid cell)
inside the margin, keeping its aspect ratio and centred, so `stroke_width` is in pixels
whatever the drawing's units. Pictures of empty drawings are valid, empty SVG documents.
"""

import colorsys
import io
import math

import numpy as np
import svgwrite

from mdnrnn import atomic, formats
from mdnrnn.export import _common


def strokes_to_polylines(strokes):
    """Splits a drawing into strokes of absolute coordinates.

    Args:
        strokes: array-like of shape `(points, 3)` (stroke-3) or `(points, 5)` (stroke-5);
            the format is chosen by the width. An empty list is an empty drawing.

    Returns:
        A list with one float64 array of shape `(stroke_points, 2)` per stroke, in drawing
        order, holding absolute `(x, y)` positions (the running sum of the offsets). A stroke
        whose pen lifts after its only point is a one-point array. Empty for an empty drawing.

    Raises:
        ValueError: if the shape is neither `(points, 3)` nor `(points, 5)`, or a value is
            NaN or infinite.

    Example:

    >>> strokes_to_polylines([[1, 2, 0], [3, 0, 1], [0, 5, 1]])
    [array([[1., 2.],
           [4., 2.]]), array([[4., 7.]])]
    """
    return _polylines(strokes, "strokes")


def drawing_to_svg(
    strokes,
    path=None,
    *,
    size=256,
    margin=8.0,
    stroke_width=2.0,
    color="black",
    background=None,
):
    """Draws one stroke-3 or stroke-5 drawing as an SVG picture.

    Each stroke becomes one `M x,y L x,y ...` run of a single `<path>`, so a pen lift is a
    new `M` (move) command. The drawing's bounding box is scaled to fit `size` minus `margin`
    on every side, keeping the aspect ratio, and centred. A stroke of a single point is drawn
    as a zero-length segment (`M p L p`), which the round line cap shows as a dot.

    Args:
        strokes: array-like of shape `(points, 3)` (stroke-3) or `(points, 5)` (stroke-5),
            chosen by the width; see the module docstring. An empty drawing gives a valid
            SVG with no `<path>`.
        path: optional file path; when given, the SVG text is also written there atomically
            (the old file stays intact if anything fails). Defaults to `None`.
        size: canvas size in pixels, one number for a square or `(width, height)`.
            Defaults to `256`.
        margin: empty border in pixels on every side. Defaults to `8.0`.
        stroke_width: line width in pixels. Defaults to `2.0`.
        color: stroke colour, any SVG colour string. Defaults to `"black"`.
        background: fill colour of the whole canvas, or `None` for transparent.
            Defaults to `None`.

    Returns:
        The SVG document as a `str`, starting with the XML declaration.

    Raises:
        ValueError: for a bad shape, NaN or infinite values, a non-positive `size`, or a
            `margin` that leaves no room to draw.

    Example:

    >>> import re
    >>> svg = drawing_to_svg([[10, 10, 0], [20, 0, 1], [-20, 10, 0], [20, 0, 1]], size=128)
    >>> path_data = re.search(r' d="([^"]*)"', svg).group(1)
    >>> path_data.count("M"), path_data.count("L")  # two strokes of one segment each
    (2, 2)
    """
    polylines = _polylines(strokes, "strokes")
    width, height = _canvas_size(size, "size")
    _check_margin(margin, width, height)
    document = _new_document(width, height, background)
    _add_strokes(
        document,
        document,
        polylines,
        (width, height),
        margin=margin,
        stroke_width=stroke_width,
        color=color,
    )
    return _finish(document, path)


def grid_to_svg(
    drawings,
    path=None,
    *,
    columns=5,
    cell_size=128,
    margin=8.0,
    stroke_width=1.5,
    color="black",
    background=None,
    captions=None,
    caption_size=12.0,
):
    """Draws many stroke-3 / stroke-5 drawings in a grid, optionally with captions.

    Drawings fill the grid row by row. Each one sits in its own `<g>` cell and is scaled on
    its own to fit the cell (as in `drawing_to_svg`), so small and large drawings are both
    readable. Captions go in a band of height `1.5 * caption_size` under each cell.

    Args:
        drawings: sequence of drawings, each accepted by `drawing_to_svg`; they may mix
            stroke-3 and stroke-5. An empty sequence gives one empty cell.
        path: optional file path, written atomically. Defaults to `None`.
        columns: cells per row. Defaults to `5`.
        cell_size: size of one cell in pixels (without the caption band), one number or
            `(width, height)`. Defaults to `128`.
        margin: empty border in pixels inside each cell. Defaults to `8.0`.
        stroke_width: line width in pixels. Defaults to `1.5`.
        color: stroke and caption colour. Defaults to `"black"`.
        background: fill colour of the whole picture, or `None`. Defaults to `None`.
        captions: optional sequence of strings, one per drawing (for example the kanji
            character or a sample number). Defaults to `None`.
        caption_size: caption font size in pixels. Defaults to `12.0`.

    Returns:
        The SVG document as a `str`.

    Raises:
        ValueError: for a bad drawing (the message names `drawings[i]`), a bad `columns`,
            `cell_size` or `margin`, or a number of captions different from the number of
            drawings.

    Example:

    >>> square = [[0, 0, 0], [10, 0, 0], [0, 10, 0], [-10, 0, 0], [0, -10, 1]]
    >>> svg = grid_to_svg([square, square], columns=2, captions=["a", "b"])
    >>> svg.count("<g ")
    2
    """
    drawings = list(drawings)
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(
            "Received an invalid value for `columns`, expected a positive integer. "
            f"Received: columns={columns!r}"
        )
    if captions is not None:
        captions = [str(caption) for caption in captions]
        if len(captions) != len(drawings):
            raise ValueError(
                "Received captions that do not match the drawings: expected one caption per "
                f"drawing. Received: len(captions)={len(captions)}, "
                f"len(drawings)={len(drawings)}"
            )
    polylines = [
        _polylines(strokes, f"drawings[{index}]") for index, strokes in enumerate(drawings)
    ]
    cell_width, cell_height = _canvas_size(cell_size, "cell_size")
    _check_margin(margin, cell_width, cell_height)
    caption_band = 1.5 * caption_size if captions is not None else 0.0
    used_columns = max(1, min(len(drawings), columns))
    rows = max(1, math.ceil(len(drawings) / columns))
    document = _new_document(
        used_columns * cell_width, rows * (cell_height + caption_band), background
    )
    for index, cell_polylines in enumerate(polylines):
        row, column = divmod(index, columns)
        cell = document.g(
            transform=f"translate({column * cell_width:g},{row * (cell_height + caption_band):g})"
        )
        _add_strokes(
            document,
            cell,
            cell_polylines,
            (cell_width, cell_height),
            margin=margin,
            stroke_width=stroke_width,
            color=color,
        )
        if captions is not None:
            cell.add(
                document.text(
                    captions[index],
                    insert=(cell_width / 2, cell_height + caption_size),
                    text_anchor="middle",
                    font_size=f"{caption_size:g}",
                    font_family="sans-serif",
                    fill=color,
                )
            )
        document.add(cell)
    return _finish(document, path)


def performance_to_svg(
    touches,
    path=None,
    *,
    size=256,
    margin=8.0,
    stroke_width=2.0,
    dot_radius=3.0,
    color="black",
    color_by_time=True,
    tap_threshold=formats.NEW_TOUCH_DT,
    frame=True,
    background=None,
):
    """Plots a touch performance: swipes as polylines, taps as dots.

    The unit square of screen positions is scaled to fit `size` inside `margin` (aspect
    kept, centred; `y` grows downwards as on the screen). Positions outside [0, 1], found in
    uncleaned recordings, are clamped onto the frame. Each touch is one element: a
    `<circle>` for a tap (one row), a `<polyline>` for a swipe (several rows).

    With `color_by_time`, each touch is coloured by its start time: hue runs from blue
    (start of the performance) through green and yellow to red (its last row).

    Args:
        touches: array-like of shape `(timesteps, 3)`, columns `(x, y, dt)`. An empty
            performance gives a picture with only the frame.
        path: optional file path, written atomically. Defaults to `None`.
        size: canvas size in pixels, one number or `(width, height)`. Defaults to `256`.
        margin: empty border in pixels. Defaults to `8.0`.
        stroke_width: swipe line width in pixels. Defaults to `2.0`.
        dot_radius: tap dot radius in pixels. Defaults to `3.0`.
        color: colour of every touch when `color_by_time` is off. Defaults to `"black"`.
        color_by_time: colour touches by start time. Defaults to `True`.
        tap_threshold: seconds; a row with `dt > tap_threshold` starts a new touch.
            Defaults to `formats.NEW_TOUCH_DT` (0.1).
        frame: draw the screen's outline in light grey. Defaults to `True`.
        background: fill colour of the canvas, or `None`. Defaults to `None`.

    Returns:
        The SVG document as a `str`.

    Raises:
        ValueError: for a bad shape, NaN or infinite values, a negative `tap_threshold`,
            a non-positive `size` or a `margin` that leaves no room.

    Example:

    >>> touches = [[0.1, 0.1, 0.0], [0.5, 0.5, 0.5], [0.6, 0.5, 0.02], [0.7, 0.5, 0.02]]
    >>> svg = performance_to_svg(touches)
    >>> svg.count("<circle"), svg.count("<polyline")
    (1, 1)
    """
    touches = _common.touch_array(touches)
    _common.check_threshold(tap_threshold)
    width, height = _canvas_size(size, "size")
    _check_margin(margin, width, height)
    scale, offset = _fit_box(np.zeros(2), np.ones(2), width, height, margin)
    positions = np.clip(touches[:, :2], 0.0, 1.0) * scale + offset  # [N, 2] in pixels
    times = _common.onset_times(touches[:, 2])
    duration = times[-1] - times[0] if len(times) else 0.0

    document = _new_document(width, height, background)
    if frame:
        document.add(
            document.rect(
                insert=_xy(offset),
                size=(f"{scale:.2f}", f"{scale:.2f}"),
                fill="none",
                stroke="#cccccc",
                stroke_width=1,
            )
        )
    for span in _common.touch_spans(touches[:, 2], tap_threshold):
        if color_by_time:
            fraction = (times[span.start] - times[0]) / duration if duration > 0 else 0.0
            touch_color = _time_color(fraction)
        else:
            touch_color = color
        points = positions[span]
        if len(points) == 1:
            document.add(
                document.circle(center=_xy(points[0]), r=f"{dot_radius:g}", fill=touch_color)
            )
        else:
            document.add(
                document.polyline(
                    points=[_xy(point) for point in points],
                    fill="none",
                    stroke=touch_color,
                    stroke_width=f"{stroke_width:g}",
                    stroke_linecap="round",
                    stroke_linejoin="round",
                )
            )
    return _finish(document, path)


def _polylines(strokes, name):
    """`strokes_to_polylines`, with error messages naming the argument `name`."""
    return formats.stroke3_to_strokes(_as_stroke3(strokes, name))


def _as_stroke3(strokes, name):
    """Validates a stroke-3 or stroke-5 drawing and returns it as stroke-3, shape (N, 3)."""
    array = _common.finite_array(strokes, name)
    if array.size == 0 and array.ndim == 1:
        return np.zeros((0, 3))
    if array.ndim != 2 or array.shape[1] not in (3, 5):
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a stroke-3 array of shape "
            f"(points, 3) or a stroke-5 array of shape (points, 5). "
            f"Received: {name}.shape={array.shape}"
        )
    if array.shape[1] == 3:
        return array
    return formats.stroke5_to_stroke3(array, dtype=np.float64)


def _canvas_size(size, name):
    """Returns `(width, height)` in pixels from one number or a pair, both positive."""
    try:
        pair = np.asarray(size, dtype=np.float64)
    except (TypeError, ValueError):
        pair = np.full(3, np.nan)  # reported below
    if pair.ndim == 0:
        pair = np.repeat(pair, 2)
    if pair.shape != (2,) or not np.all(np.isfinite(pair)) or np.any(pair <= 0):
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive number or a "
            f"(width, height) pair of positive numbers. Received: {name}={size!r}"
        )
    return float(pair[0]), float(pair[1])


def _check_margin(margin, width, height):
    """Raises `ValueError` unless `margin` leaves room to draw on a `width` x `height` canvas."""
    if not np.isfinite(margin) or margin < 0 or 2 * margin >= min(width, height):
        raise ValueError(
            "Received an invalid value for `margin`, expected a non-negative number smaller "
            f"than half the canvas size ({width:g} x {height:g}). Received: margin={margin!r}"
        )


def _fit_box(low, high, width, height, margin):
    """Scale and offset that map the box [low, high] into the canvas inside `margin`.

    The box keeps its aspect ratio and is centred; pixel = point * scale + offset. A box
    that is flat along one axis is scaled by the other axis alone; a single point is
    centred at scale 1.
    """
    room = np.array([width, height]) - 2 * margin  # [2]
    extent = high - low  # [2]
    spread = extent > 0
    scale = float(np.min(room[spread] / extent[spread])) if spread.any() else 1.0
    offset = margin + (room - extent * scale) / 2 - low * scale  # [2]
    return scale, offset


def _add_strokes(document, parent, polylines, canvas, *, margin, stroke_width, color):
    """Adds one `<path>` drawing `polylines`, fitted into `canvas`, to `parent`."""
    if not polylines:
        return
    points = np.concatenate(polylines)  # [N, 2]
    scale, offset = _fit_box(points.min(axis=0), points.max(axis=0), *canvas, margin)
    runs = []
    for stroke in polylines:
        pixels = stroke * scale + offset  # [stroke_points, 2]
        if len(pixels) == 1:
            pixels = np.repeat(pixels, 2, axis=0)  # a dot: zero-length segment, round cap
        coordinates = [",".join(_xy(pixel)) for pixel in pixels]
        runs.append(f"M{coordinates[0]}" + "".join(f" L{xy}" for xy in coordinates[1:]))
    parent.add(
        document.path(
            d=" ".join(runs),
            fill="none",
            stroke=color,
            stroke_width=f"{stroke_width:g}",
            stroke_linecap="round",
            stroke_linejoin="round",
        )
    )


def _xy(pixel):
    """Formats a pixel position as a pair of strings with two decimals."""
    return f"{pixel[0]:.2f}", f"{pixel[1]:.2f}"


def _time_color(fraction):
    """Hex colour for a time fraction in [0, 1]: blue (0) through green to red (1)."""
    red, green, blue = colorsys.hsv_to_rgb((1.0 - fraction) * 2 / 3, 0.85, 0.85)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def _new_document(width, height, background):
    """An empty SVG document of `width` x `height` pixels, with an optional background."""
    document = svgwrite.Drawing(
        size=(f"{width:g}", f"{height:g}"), viewBox=f"0 0 {width:g} {height:g}", debug=False
    )
    if background is not None:
        document.add(document.rect(insert=(0, 0), size=("100%", "100%"), fill=background))
    return document


def _finish(document, path):
    """Serialises `document` (with the XML declaration) and writes it to `path` if given."""
    buffer = io.StringIO()
    document.write(buffer)
    text = buffer.getvalue()
    if path is not None:
        atomic.write_atomically(path, text.encode("utf-8"))
    return text
