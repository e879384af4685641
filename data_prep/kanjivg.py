"""KanjiVG SVGs to a stroke-3 store, one drawing per character.

Each KanjiVG file draws one character in a `0 0 109 109` viewBox (y grows
downwards), one `<path>` per stroke in stroke order. For every file:

1. the `<path>` elements are read in document order (KanjiVG's stroke order);
2. each stroke's path data is parsed with `svgpathtools`; lines and quadratic
   curves are raised to cubic Beziers (exactly), and every segment is sampled
   at `ceil(L / sample_step)` evenly spaced parameter values, `L` the length of
   its control polygon (an upper bound on the arc length);
3. each stroke's polyline is simplified with Ramer-Douglas-Peucker
   (`simplification`, tolerance `epsilon` in viewBox units);
4. the strokes become stroke-3 rows (`mdnrnn.formats.strokes_to_stroke3`):
   offsets in viewBox units, the first measured from the viewBox origin, with
   `pen_lift = 1` on each stroke's last point.

The label is the character, from the file name's hexadecimal code point
(`06f22.svg` -> 漢). Variant files (`06f22-Kaisho.svg`, any name with a `-`)
are left out unless asked for. Files that fail to parse, have no strokes,
use segments other than lines and Beziers (arcs, several subpaths in one
stroke), or are too big to be KanjiVG drawings (over `MAX_SVG_BYTES`,
coordinates outside +-`MAX_COORDINATE`, more than `MAX_POINTS_PER_FILE`
samples) are skipped and named in the summary.
"""

import importlib.metadata
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from data_prep.common import (
    PrepError,
    Summary,
    check_range,
    check_split,
    finish,
    open_writer,
    progress_bar,
)
from mdnrnn import formats

SVG_NS = "{http://www.w3.org/2000/svg}"
LICENCE = "CC BY-SA 3.0, KanjiVG by Ulrich Apel (http://kanjivg.tagaini.net)"

# Bounds (inclusive) of the options; the command line refuses others before any work.
SAMPLE_STEP_RANGE = (0.01, 10.0)  # viewBox units
EPSILON_RANGE = (0.0, 10.0)  # viewBox units
LIMIT_RANGE = (1, 1_000_000)  # files; KanjiVG has 11,662 (6,703 without variants)

# Bounds on one file, so that a crafted file cannot take all memory. KanjiVG
# files are a few kB, with coordinates inside the 0..109 viewBox.
MAX_SVG_BYTES = 2**20
MAX_COORDINATE = 1000.0
MAX_POINTS_PER_FILE = 1_000_000  # curve samples, before RDP


class SvgError(ValueError):
    """A KanjiVG file that cannot be converted; the message says why."""


def package_dir():
    """The folder of KanjiVG SVGs installed by the PyPI package `kanjivg`.

    Returns:
        A `pathlib.Path` (`site-packages/kanji`).

    Raises:
        PrepError: if the package is not installed.
    """
    try:
        files = importlib.metadata.files("kanjivg") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.suffix == ".svg":
            return Path(f.locate()).parent
    raise PrepError(
        "the kanjivg package is not installed; install it with "
        "`pip install 'mdnrnn[kanjivg]'` or pass --dir DIR"
    )


def is_variant(path):
    """Whether a KanjiVG file is a variant form (`04e14-Kaisho.svg`, ...)."""
    return "-" in Path(path).stem


def label_of(path):
    """The character a KanjiVG file draws, from its file name (`06f22` -> 漢).

    Falls back to the file name's stem when it is not a hexadecimal code point.
    """
    code = Path(path).stem.split("-")[0]
    try:
        return chr(int(code, 16))
    except (ValueError, OverflowError):
        return Path(path).stem


def read_strokes(path, *, sample_step=0.5, epsilon=1.0):
    """Reads one KanjiVG file as simplified absolute polylines.

    Args:
        path: an SVG file.
        sample_step: curve sampling step in viewBox units (before RDP).
            Defaults to 0.5.
        epsilon: RDP tolerance in viewBox units; 0 keeps every sample.
            Defaults to 1.0.

    Returns:
        A list with one float array `(n_i, 2)` per stroke, in stroke order, in
        viewBox coordinates.

    Raises:
        SvgError: for a file that is not XML, has no stroke paths, has a path
            that is broken or unsupported, or is beyond the bounds on one file
            (`MAX_SVG_BYTES`, `MAX_COORDINATE`, `MAX_POINTS_PER_FILE`).
    """
    try:
        size = Path(path).stat().st_size
        if size > MAX_SVG_BYTES:
            raise SvgError(f"{size:,} bytes, more than the {MAX_SVG_BYTES:,} of a KanjiVG file")
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise SvgError(f"not readable as XML ({exc})") from None
    import svgpathtools  # here, not at the top: it takes seconds to import (SciPy)
    from simplification.cutil import simplify_coords

    paths = list(root.iter(SVG_NS + "path"))
    if not paths:
        raise SvgError("no stroke <path> elements")
    controls, per_stroke = [], []
    for number, element in enumerate(paths, start=1):
        name = element.get("id") or f"path {number}"
        try:
            parsed = svgpathtools.parse_path(element.get("d") or "")
        except (ValueError, IndexError) as exc:
            raise SvgError(f"{name}: broken path data ({exc})") from None
        segments = _as_cubics(parsed, name, svgpathtools.Arc)
        controls.extend(segments)
        per_stroke.append(len(segments))
    cubic = np.array(controls, dtype=complex)  # [S, 4] control points of all segments
    if not np.all(np.isfinite(cubic)):
        raise SvgError("non-finite coordinates in path data")
    largest = max(np.abs(cubic.real).max(), np.abs(cubic.imag).max())
    if largest > MAX_COORDINATE:
        raise SvgError(
            f"coordinate {largest:g} outside +-{MAX_COORDINATE:g} "
            "(KanjiVG's viewBox is 0 0 109 109)"
        )
    polylines = _sample(cubic, np.array(per_stroke), sample_step)
    if epsilon > 0:
        polylines = [simplify_coords(line, epsilon) for line in polylines]
    return [np.asarray(line, dtype=np.float64) for line in polylines]


def _as_cubics(parsed, name, arc_type):
    """The segments of one stroke path as cubic control points (4-tuples of complex).

    Lines and quadratic Beziers are raised to cubics exactly (degree elevation).
    """
    if len(parsed) == 0:
        raise SvgError(f"{name}: path data draws nothing")
    if not parsed.iscontinuous():
        raise SvgError(f"{name}: unsupported: several subpaths in one stroke")
    cubics = []
    for segment in parsed:
        points = () if isinstance(segment, arc_type) else segment.bpoints()
        if len(points) == 4:
            cubics.append(points)
        elif len(points) == 3:
            p0, p1, p2 = points
            cubics.append((p0, (p0 + 2 * p1) / 3, (2 * p1 + p2) / 3, p2))
        elif len(points) == 2:
            p0, p1 = points
            cubics.append((p0, (2 * p0 + p1) / 3, (p0 + 2 * p1) / 3, p1))
        else:
            raise SvgError(f"{name}: unsupported segment {type(segment).__name__}")
    return cubics


def _sample(cubic, per_stroke, step):
    """Samples each stroke's cubic segments into a polyline `(n_i, 2)`.

    All strokes of a file are evaluated in one vectorised pass: segment `j` is
    sampled at `t = 1/m_j, 2/m_j, ..., 1` with `m_j = ceil(polygon_j / step)`;
    the first segment of each stroke also at `t = 0` (the stroke's start).

    Args:
        cubic: complex array `[S, 4]`, the control points of every segment.
        per_stroke: int array, number of segments of each stroke.
        step: sampling step in viewBox units.

    Raises:
        SvgError: if that makes more than `MAX_POINTS_PER_FILE` samples.
    """
    polygon = np.abs(np.diff(cubic, axis=1)).sum(axis=1)  # [S]
    first_of_stroke = np.zeros(len(cubic), dtype=np.int64)
    first_of_stroke[np.cumsum(per_stroke) - per_stroke] = 1
    per_segment = np.maximum(1, np.ceil(polygon / step))  # [S] m_j, float until bounded
    total = per_segment.sum() + len(per_stroke)
    if total > MAX_POINTS_PER_FILE:
        raise SvgError(
            f"{total:,.0f} curve samples at step {step:g}, more than {MAX_POINTS_PER_FILE:,}"
        )
    per_segment = per_segment.astype(np.int64)
    samples = per_segment + first_of_stroke  # one more for each stroke's start
    segment = np.repeat(np.arange(len(cubic)), samples)  # [M]
    k = np.arange(len(segment)) - np.repeat(np.cumsum(samples) - samples, samples)
    t = (k + 1 - first_of_stroke[segment]) / per_segment[segment]  # [M], in [0, 1]
    s = 1.0 - t
    basis = np.stack([s**3, 3 * s**2 * t, 3 * s * t**2, t**3], axis=1)  # [M, 4]
    curve = (basis * cubic[segment]).sum(axis=1)  # [M] complex
    xy = np.stack([curve.real, curve.imag], axis=1)  # [M, 2]
    stroke_ends = np.cumsum(samples)[np.cumsum(per_stroke) - 1]
    return np.split(xy, stroke_ends[:-1])


def list_files(directory, include_variants=False):
    """The KanjiVG SVGs of a folder, sorted by name.

    Args:
        directory: the folder.
        include_variants: keep variant files. Defaults to `False`.

    Returns:
        `(files, n_variants_left_out)`.

    Raises:
        PrepError: if the folder is missing or holds no SVG files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PrepError(f"{directory}: no such folder")
    files = sorted(directory.glob("*.svg"))
    if not files:
        raise PrepError(f"{directory}: no SVG files in this folder")
    kept = [f for f in files if include_variants or not is_variant(f)]
    return kept, len(files) - len(kept)


def convert(
    out,
    *,
    directory=None,
    limit=None,
    epsilon=1.0,
    sample_step=0.5,
    include_variants=False,
    seed=0,
    valid_fraction=0.05,
    test_fraction=0.05,
    force=False,
    shard_size=None,
    progress=True,
):
    """Converts KanjiVG SVGs into a labelled stroke-3 store.

    Args:
        out: the store to write.
        directory: folder of KanjiVG SVGs; defaults to the `kanjivg` package's.
        limit: convert only `limit` files, drawn at random with `seed` (sorted by
            name, the first files are punctuation, digits and kana, not kanji).
        epsilon: RDP tolerance in viewBox units. Defaults to 1.0.
        sample_step: curve sampling step in viewBox units. Defaults to 0.5.
        include_variants: also convert variant files. Defaults to `False`.
        seed: seed of the random train / valid / test split. Defaults to 0.
        valid_fraction: share of drawings in `valid`. Defaults to 0.05.
        test_fraction: share of drawings in `test`. Defaults to 0.05.
        force: overwrite an existing `out`. Defaults to `False`.
        shard_size: write `out` as a shard directory of stores of this many
            sequences (`mdnrnn.data.shards`), within `common.SHARD_SIZE_RANGE`;
            `None` (the default) writes one store file.
        progress: show a progress bar. Defaults to `True`.

    Returns:
        A `data_prep.common.Summary`.

    Raises:
        PrepError: for a missing or empty folder, an existing `out` without
            `force`, an option outside its bounds (`EPSILON_RANGE`,
            `SAMPLE_STEP_RANGE`, `LIMIT_RANGE`, `common.SEED_RANGE`,
            `common.FRACTION_RANGE`), or no convertible file.
    """
    check_range("--epsilon", epsilon, EPSILON_RANGE)
    check_range("--sample-step", sample_step, SAMPLE_STEP_RANGE)
    if limit is not None:
        check_range("--limit", limit, LIMIT_RANGE)
    check_split(seed, valid_fraction, test_fraction)
    directory = package_dir() if directory is None else Path(directory)
    files, n_variants = list_files(directory, include_variants)
    if limit is not None and limit < len(files):
        chosen = np.random.default_rng(seed).choice(len(files), size=limit, replace=False)
        files = [files[i] for i in sorted(chosen)]
    summary = Summary(source=f"KanjiVG SVGs in {directory}")
    if n_variants:
        summary.notes.append(
            f"{n_variants:,} variant files left out (--include-variants keeps them)"
        )
    summary.notes.append(f"RDP epsilon {epsilon:g}, sample step {sample_step:g} (viewBox units)")
    with open_writer(
        out, shard_size=shard_size, kind="stroke3", force=force, source=summary.source, licence=LICENCE,
        seed=seed, valid_fraction=valid_fraction, test_fraction=test_fraction,
    ) as writer:
        for path in progress_bar(files, shown=progress, desc="kanjivg", unit="file"):
            try:
                strokes = read_strokes(path, sample_step=sample_step, epsilon=epsilon)
            except SvgError as exc:
                summary.skip("malformed or unsupported SVG", f"{path.name} ({exc})")
                continue
            writer.add(formats.strokes_to_stroke3(strokes), label=label_of(path))
        return finish(writer, summary)
