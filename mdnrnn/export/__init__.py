"""Exporters: drawings to SVG, touch performances to SVG plots and MIDI files.

Pure NumPy, svgwrite and mido; nothing here imports TensorFlow.

- `drawing_to_svg`, `grid_to_svg`: stroke-3 / stroke-5 drawings (one, or a grid).
- `performance_to_svg`: a touch performance plotted as swipes and taps.
- `performance_to_midi`: a touch performance as notes, pitch bend and controllers.
- `sequence_to_midi`: a generic dt-first sequence (IMPSY style) as controller streams.
- `strokes_to_polylines`: a drawing as absolute coordinates, one array per stroke.
"""

from mdnrnn.export.midi import performance_to_midi, sequence_to_midi
from mdnrnn.export.svg import (
    drawing_to_svg,
    grid_to_svg,
    performance_to_svg,
    strokes_to_polylines,
)

__all__ = [
    "drawing_to_svg",
    "grid_to_svg",
    "performance_to_midi",
    "performance_to_svg",
    "sequence_to_midi",
    "strokes_to_polylines",
]
