"""Tests for mdnrnn.export.svg: drawings, grids and performance plots as SVG."""

import math
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from data_prep.common import load_npz
from mdnrnn import datasets
from mdnrnn.export import drawing_to_svg, grid_to_svg, performance_to_svg, strokes_to_polylines

DATA = Path(__file__).resolve().parent / "data"  # test-only files
SVG = "{http://www.w3.org/2000/svg}"

# Three strokes: three points, two points, and a single point (a dot).
STROKE3 = np.array(
    [
        [10, 10, 0],
        [20, 0, 0],
        [0, 20, 1],
        [-30, -10, 0],
        [5, 5, 1],
        [10, 0, 1],
    ],
    dtype=float,
)
# Absolute positions worked out by hand from the offsets above.
ABSOLUTE = np.array([[10, 10], [30, 10], [30, 30], [0, 20], [5, 25], [15, 25]], dtype=float)


def to_stroke5(stroke3, padding=3):
    """Stroke-5 with the start token and end-of-drawing padding, built by hand."""
    rows = [[0, 0, 1, 0, 0]]
    rows += [[dx, dy, 1 - p, p, 0] for dx, dy, p in stroke3]
    rows += [[0, 0, 0, 0, 1]] * padding
    return np.array(rows, dtype=float)


def parse(svg_text):
    """Parses the SVG text as XML and returns the root element."""
    root = ET.fromstring(svg_text)
    assert root.tag == f"{SVG}svg"
    return root


def path_commands(root):
    """All (command, x, y) triples of every <path> under root, parsed by hand."""
    commands = []
    for path in root.iter(f"{SVG}path"):
        tokens = re.findall(r"([A-Za-z])\s*(-?[\d.]+),(-?[\d.]+)", path.get("d"))
        assert " ".join(f"{c}{x},{y}" for c, x, y in tokens) == path.get("d").strip()
        commands += [(c, float(x), float(y)) for c, x, y in tokens]
    return commands


def load_kanji():
    return load_npz(datasets.path("short_kanji"))["train"][:12]


def load_performance(index):
    return load_npz(DATA / "TinyPerformanceArrays.npz")["arr_0"][index]


def test_strokes_to_polylines_matches_cumsum():
    polylines = strokes_to_polylines(STROKE3)
    assert [len(line) for line in polylines] == [3, 2, 1]
    np.testing.assert_allclose(np.concatenate(polylines), ABSOLUTE)
    np.testing.assert_allclose(np.concatenate(polylines), np.cumsum(STROKE3[:, :2], axis=0))


def test_strokes_to_polylines_keeps_an_unfinished_last_stroke():
    polylines = strokes_to_polylines([[1, 1, 1], [2, 0, 0], [0, 2, 0]])
    assert [line.tolist() for line in polylines] == [[[1, 1]], [[3, 1], [3, 3]]]


def test_stroke5_drops_start_token_and_padding():
    stroke5 = to_stroke5(STROKE3)
    stroke5[-1, :2] = [500, 500]  # padding after the end must be ignored, offsets and all
    for expected, actual in zip(strokes_to_polylines(STROKE3), strokes_to_polylines(stroke5)):
        np.testing.assert_allclose(actual, expected)
    assert drawing_to_svg(stroke5) == drawing_to_svg(STROKE3)


def test_drawing_path_has_one_move_per_stroke_and_one_line_per_segment():
    root = parse(drawing_to_svg(STROKE3, size=100, margin=10))
    commands = path_commands(root)
    letters = "".join(c for c, _, _ in commands)
    # Strokes of 3, 2 and 1 points: the dot is drawn as a zero-length segment.
    assert letters == "MLL" + "ML" + "ML"
    assert letters.count("M") == int(STROKE3[:, 2].sum())


def test_drawing_is_fitted_into_the_canvas_keeping_aspect_ratio():
    size, margin = 100, 10
    root = parse(drawing_to_svg(STROKE3, size=size, margin=margin))
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == (
        "100",
        "100",
        "0 0 100 100",
    )
    drawn = np.array([(x, y) for c, x, y in path_commands(root)])
    drawn = np.delete(drawn, -1, axis=0)  # the dot's repeated point
    # By hand: bounds x 0..30, y 10..30; x is the tight axis, so scale = 80 / 30, and the
    # 20-unit height is centred in the 80-pixel room.
    scale = (size - 2 * margin) / 30
    expected = (ABSOLUTE - [0, 10]) * scale + [margin, margin + (80 - 20 * scale) / 2]
    np.testing.assert_allclose(drawn, expected, atol=0.006)
    assert drawn.min() >= margin - 0.006 and drawn.max() <= size - margin + 0.006


def test_drawing_options_reach_the_svg():
    root = parse(
        drawing_to_svg(
            STROKE3, size=(300, 120), stroke_width=3.5, color="#ff0000", background="white"
        )
    )
    assert (root.get("width"), root.get("height")) == ("300", "120")
    (path,) = root.iter(f"{SVG}path")
    assert path.get("stroke") == "#ff0000" and path.get("stroke-width") == "3.5"
    assert path.get("fill") == "none"
    (rect,) = root.iter(f"{SVG}rect")
    assert rect.get("fill") == "white"
    drawn = np.array([(x, y) for c, x, y in path_commands(root)])
    assert drawn[:, 0].min() >= 8 - 0.006 and drawn[:, 0].max() <= 292 + 0.006
    assert drawn[:, 1].min() >= 8 - 0.006 and drawn[:, 1].max() <= 112 + 0.006


@pytest.mark.parametrize("empty", [[], np.zeros((0, 3)), to_stroke5(np.zeros((0, 3)))])
def test_empty_drawing_gives_valid_empty_svg(empty):
    root = parse(drawing_to_svg(empty, size=64))
    assert root.get("width") == "64"
    assert list(root.iter(f"{SVG}path")) == []


def test_degenerate_drawings_are_centred():
    # A single point and a horizontal line have no extent along one or both axes.
    point = path_commands(parse(drawing_to_svg([[5, 5, 1]], size=100)))
    assert point == [("M", 50.0, 50.0), ("L", 50.0, 50.0)]
    line = path_commands(parse(drawing_to_svg([[0, 0, 0], [10, 0, 1]], size=100, margin=10)))
    assert line == [("M", 10.0, 50.0), ("L", 90.0, 50.0)]


def test_real_kanji():
    kanji = load_kanji()[0]
    assert kanji.dtype == np.int16
    size, margin = 200, 5
    root = parse(drawing_to_svg(kanji, size=size, margin=margin))
    commands = path_commands(root)
    lifts = np.flatnonzero(kanji[:, 2] == 1)
    strokes = np.split(np.arange(len(kanji)), lifts + 1)
    strokes = [stroke for stroke in strokes if len(stroke)]
    assert sum(c == "M" for c, _, _ in commands) == len(strokes)
    assert sum(c == "L" for c, _, _ in commands) == sum(max(len(s) - 1, 1) for s in strokes)
    drawn = np.array([(x, y) for _, x, y in commands])
    assert drawn.min() >= margin - 0.006 and drawn.max() <= size - margin + 0.006
    # The drawing touches the margin on its tight axis.
    assert np.isclose(drawn.min(axis=0), margin, atol=0.006).any()
    # Shape is kept: pixel positions are an affine image of the summed offsets.
    absolute = np.cumsum(kanji[:, :2].astype(float), axis=0)
    order = np.concatenate([np.repeat(s, 2) if len(s) == 1 else s for s in strokes])
    assert len(order) == len(drawn)
    scale = np.ptp(drawn[:, 0]) / np.ptp(absolute[:, 0])
    np.testing.assert_allclose(
        drawn - drawn[0], (absolute[order] - absolute[order[0]]) * scale, atol=0.02
    )


def test_grid_layout_and_captions():
    drawings = list(load_kanji()[:7]) + [to_stroke5(STROKE3), []]
    captions = [f"#{i} <&>" for i in range(len(drawings))]
    root = parse(grid_to_svg(drawings, columns=4, cell_size=(100, 80), captions=captions))
    caption_band = 1.5 * 12
    assert float(root.get("width")) == 4 * 100
    assert float(root.get("height")) == math.ceil(9 / 4) * (80 + caption_band)
    cells = root.findall(f"{SVG}g")
    assert len(cells) == len(drawings)
    assert [cell.find(f"{SVG}text").text for cell in cells] == captions
    for index, cell in enumerate(cells):
        row, column = divmod(index, 4)
        x, y = map(float, re.fullmatch(r"translate\((.+),(.+)\)", cell.get("transform")).groups())
        assert (x, y) == (column * 100, row * (80 + caption_band))
        paths = cell.findall(f"{SVG}path")
        assert len(paths) == (0 if index == len(drawings) - 1 else 1)
        for _, px, py in path_commands(cell):
            assert 8 - 0.006 <= px <= 92 + 0.006 and 8 - 0.006 <= py <= 72 + 0.006


def test_grid_without_captions_and_empty_grid():
    root = parse(grid_to_svg([STROKE3, STROKE3], columns=5, cell_size=50))
    assert (root.get("width"), root.get("height")) == ("100", "50")
    assert root.find(f".//{SVG}text") is None
    empty = parse(grid_to_svg([], cell_size=50))
    assert (empty.get("width"), empty.get("height")) == ("50", "50")


def test_grid_rejects_mismatched_captions_and_bad_drawings():
    with pytest.raises(ValueError, match=r"len\(captions\)=1, len\(drawings\)=2"):
        grid_to_svg([STROKE3, STROKE3], captions=["only one"])
    with pytest.raises(ValueError, match=r"`drawings\[1\]`.*shape=\(2, 4\)"):
        grid_to_svg([STROKE3, np.zeros((2, 4))])
    with pytest.raises(ValueError, match="`columns`.*columns=0"):
        grid_to_svg([STROKE3], columns=0)


def test_performance_taps_and_swipes():
    touches = np.array(
        [
            [0.25, 0.50, 0.00],  # tap
            [0.50, 0.25, 0.50],  # swipe of three points
            [0.60, 0.30, 0.02],
            [0.70, 0.35, 0.02],
            [1.70, -0.5, 1.00],  # tap off the screen: clamped to the corner (1, 0)
        ]
    )
    size, margin = 108, 4
    root = parse(performance_to_svg(touches, size=size, margin=margin))
    circles = root.findall(f"{SVG}circle")
    (swipe,) = root.findall(f"{SVG}polyline")
    assert len(circles) == 2
    side = size - 2 * margin
    centres = [(float(c.get("cx")), float(c.get("cy"))) for c in circles]
    assert centres == [(margin + 0.25 * side, margin + 0.5 * side), (margin + side, margin)]
    points = np.array([p.split(",") for p in swipe.get("points").split()], dtype=float)
    np.testing.assert_allclose(points, touches[1:4, :2] * side + margin, atol=0.006)
    # Coloured by start time: first blue, last red, all different.
    colours = [circles[0].get("fill"), swipe.get("stroke"), circles[1].get("fill")]
    assert len(set(colours)) == 3
    red, green, blue = (int(colours[0][i : i + 2], 16) for i in (1, 3, 5))
    assert blue > red and blue > green
    red, green, blue = (int(colours[2][i : i + 2], 16) for i in (1, 3, 5))
    assert red > green and red > blue


def test_performance_single_colour_and_threshold():
    touches = [[0.1, 0.1, 0.0], [0.2, 0.2, 0.05], [0.3, 0.3, 0.05]]
    root = parse(performance_to_svg(touches, color_by_time=False, color="green", frame=False))
    assert root.find(f"{SVG}rect") is None
    (swipe,) = root.findall(f"{SVG}polyline")
    assert swipe.get("stroke") == "green"
    # A threshold below every dt makes each row its own touch: three taps.
    root = parse(performance_to_svg(touches, tap_threshold=0.01))
    assert len(root.findall(f"{SVG}circle")) == 3 and not root.findall(f"{SVG}polyline")


def test_empty_performance_gives_valid_svg():
    root = parse(performance_to_svg(np.zeros((0, 3))))
    assert not root.findall(f"{SVG}circle") and not root.findall(f"{SVG}polyline")


def test_real_performance_plot():
    touches = load_performance(3).astype(float)
    size, margin = 256, 8
    root = parse(performance_to_svg(touches, size=size, margin=margin))
    starts = np.flatnonzero(touches[:, 2] > 0.1)
    lengths = np.diff(np.concatenate([[0], starts[starts > 0], [len(touches)]]))
    assert len(root.findall(f"{SVG}circle")) == np.sum(lengths == 1)
    polylines = root.findall(f"{SVG}polyline")
    assert [len(p.get("points").split()) for p in polylines] == lengths[lengths > 1].tolist()
    for polyline in polylines:
        for point in polyline.get("points").split():
            x, y = map(float, point.split(","))
            assert margin - 0.006 <= x <= size - margin + 0.006
            assert margin - 0.006 <= y <= size - margin + 0.006


@pytest.mark.parametrize(
    "function, argument, message",
    [
        (
            drawing_to_svg,
            np.zeros((4, 4)),
            r"`strokes`.*\(points, 3\).*\(points, 5\).*shape=\(4, 4\)",
        ),
        (drawing_to_svg, np.zeros(3), r"`strokes`.*shape=\(3,\)"),
        (drawing_to_svg, [[1, 2, 0], [np.nan, 1, 1]], r"non-finite.*`strokes` at rows \[1\]"),
        (drawing_to_svg, [[1, np.inf, 0]], r"non-finite.*`strokes` at rows \[0\]"),
        (performance_to_svg, np.zeros((4, 2)), r"`touches`.*\(x, y, dt\).*shape=\(4, 2\)"),
        (performance_to_svg, [[0.5, np.nan, 0.1]], r"non-finite.*`touches`"),
    ],
)
def test_bad_input_raises_value_error(function, argument, message):
    with pytest.raises(ValueError, match=message):
        function(argument)


def test_bad_options_raise_value_error():
    with pytest.raises(ValueError, match="`size`.*size=0"):
        drawing_to_svg(STROKE3, size=0)
    with pytest.raises(ValueError, match="`margin`.*margin=50"):
        drawing_to_svg(STROKE3, size=100, margin=50)
    with pytest.raises(ValueError, match="`margin`.*margin=-1"):
        drawing_to_svg([], margin=-1)
    with pytest.raises(ValueError, match=r"`cell_size`.*cell_size=\(10, -1\)"):
        grid_to_svg([STROKE3], cell_size=(10, -1))
    with pytest.raises(ValueError, match="`tap_threshold`.*tap_threshold=-1"):
        performance_to_svg([[0.5, 0.5, 0.0]], tap_threshold=-1)


def test_writes_file_atomically(tmp_path):
    target = tmp_path / "drawing.svg"
    text = drawing_to_svg(STROKE3, target)
    assert target.read_text(encoding="utf-8") == text
    assert text.startswith("<?xml")
    parse(target.read_bytes())
    # A failing export leaves the existing file as it was and no temporary file behind.
    with pytest.raises(ValueError):
        drawing_to_svg([[np.nan, 0, 0]], target)
    with pytest.raises(ValueError):
        grid_to_svg([STROKE3], target, captions=[])
    assert target.read_text(encoding="utf-8") == text
    assert os.listdir(tmp_path) == ["drawing.svg"]
    performance_to_svg([[0.5, 0.5, 0.0]], str(target))
    assert parse(target.read_bytes()).find(f"{SVG}circle") is not None
    assert os.listdir(tmp_path) == ["drawing.svg"]
