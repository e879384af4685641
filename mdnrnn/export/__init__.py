"""Exporters: drawings and touch performances to SVG pictures.

Pure NumPy and svgwrite; nothing here imports TensorFlow.

- `drawing_to_svg`, `grid_to_svg`: stroke-3 / stroke-5 drawings (one, or a grid).
- `performance_to_svg`: a touch performance plotted as swipes and taps.
- `strokes_to_polylines`: a drawing as absolute coordinates, one array per stroke.
"""

from mdnrnn.export.svg import (
    drawing_to_svg,
    grid_to_svg,
    performance_to_svg,
    strokes_to_polylines,
)

__all__ = [
    "drawing_to_svg",
    "grid_to_svg",
    "performance_to_svg",
    "strokes_to_polylines",
]
