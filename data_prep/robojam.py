"""The MicroJam / RoboJam touch corpus to a touch store (x, y, dt).

Two shapes of the corpus are read:

- `TinyPerformanceCorpus.h5`: one dataset `total_performances` (N, 3) holding
  all performances one after another, with no separators. **Splitting rule**:
  MicroJam records each performance's first touch with `dt = 0`, so a new
  performance starts at every row with `dt == 0` whose previous row has
  `dt != 0` (the first row always starts one). A run of consecutive `dt == 0`
  rows (simultaneous first touches) stays together at the start of one
  performance. Every row lands in exactly one performance; none is dropped.
- `TinyPerformanceArrays.npz`: one array `(n_i, 3)` per performance (the only
  array in the file, or `arr_0`), not cleaned.

The corpus shipped with mdnrnn (`mdnrnn.datasets.path("robojam")`) is the
`.h5` shape. Only integer or float values are read (no strings, no complex
numbers), at most `common.MAX_ARRAY_BYTES` per array.

**Cleaning**, applied to both: rows with NaN or inf are dropped (counted);
`x` and `y` are clipped into [0, 1] and `dt` into [0, 5] seconds (clipped
values are counted in the summary). Performances left empty are skipped and
counted. The summary accounts for every point read: kept + dropped.
Performances are split into train / valid / test at random with a seed.
"""

import h5py
import numpy as np

from data_prep.common import (
    MAX_ARRAY_BYTES,
    PrepError,
    Summary,
    as_float32,
    check_split,
    finish,
    load_npz,
    open_writer,
    progress_bar,
    require_file,
    sequence_list,
)
from mdnrnn import datasets

H5_DATASET = "total_performances"
MAX_DT = 5.0
LICENCE = "CC0 1.0 (MicroJam / RoboJam corpus, creative-prediction-datasets)"


def split_performances(rows):
    """Splits the concatenated corpus into performances (see the module rule).

    Args:
        rows: array `(N, 3)` of `x, y, dt`.

    Returns:
        A list of arrays `(n_i, 3)` whose concatenation is `rows`.
    """
    dt = rows[:, 2]
    starts = np.flatnonzero((dt == 0) & np.concatenate([[True], dt[:-1] != 0]))
    starts = np.union1d([0], starts) if len(rows) else starts
    return np.split(rows, starts[1:])


def clean(performance, summary):
    """Drops non-finite rows and clips `x, y` into [0, 1], `dt` into [0, 5].

    Args:
        performance: array `(n, 3)`.
        summary: a `Summary` that counts dropped rows and clipped values.

    Returns:
        The cleaned float32 array `(m, 3)`, `m <= n`. Values beyond float32's
        range count as inf.
    """
    rows = as_float32(performance)
    finite = np.all(np.isfinite(rows), axis=1)
    summary.drop_points("rows with NaN or inf values", int((~finite).sum()))
    rows = rows[finite]
    low = np.array([0.0, 0.0, 0.0], dtype=np.float32)
    high = np.array([1.0, 1.0, MAX_DT], dtype=np.float32)
    clipped = np.clip(rows, low, high)
    for k, name in enumerate(("x", "y", "dt")):
        changed = int((clipped[:, k] != rows[:, k]).sum())
        if changed:
            summary.clipped[name] = summary.clipped.get(name, 0) + changed
    return clipped


def _read_h5(path):
    try:
        with h5py.File(path, "r") as f:
            link = f.get(H5_DATASET, getlink=True)
            if link is None:
                raise PrepError(
                    f"{path}: no dataset {H5_DATASET!r} (found: {', '.join(f) or 'none'})"
                )
            if not isinstance(link, h5py.HardLink):  # it would read another file or object
                kind = type(link).__name__
                raise PrepError(f"{path}: /{H5_DATASET} is a link ({kind}), expected a dataset")
            rows = _read_dataset(path, f[H5_DATASET])
    except OSError as exc:
        raise PrepError(f"{path}: not a readable HDF5 file ({exc})") from None
    return split_performances(rows), "split at rows with dt == 0 (see data_prep.robojam)"


def _read_dataset(path, node):
    """The `(N, 3)` numbers of `/total_performances`, checked before reading."""
    name = f"{path}: /{H5_DATASET}"
    if not isinstance(node, h5py.Dataset):
        raise PrepError(f"{name} is a {type(node).__name__}, expected a dataset")
    if node.dtype.kind not in "iuf":
        raise PrepError(f"{name} has dtype {node.dtype}, expected integers or floats")
    if node.ndim != 2 or node.shape[1] != 3:
        raise PrepError(f"{name} has shape {node.shape}, expected (N, 3)")
    if node.size * node.dtype.itemsize > MAX_ARRAY_BYTES:
        raise PrepError(
            f"{name} has shape {node.shape}, more than the {MAX_ARRAY_BYTES:,} bytes "
            "read from one array"
        )
    return node[:]


def _read_npz(path):
    arrays = load_npz(path)
    key = next(iter(arrays)) if len(arrays) == 1 else "arr_0"
    if key not in arrays:
        raise PrepError(
            f"{path}: expected one array or 'arr_0' (found keys: {', '.join(arrays) or 'none'})"
        )
    performances = sequence_list(path, key, arrays[key])
    for i, p in enumerate(performances):
        if np.ndim(p) != 2 or np.shape(p)[1] != 3:
            raise PrepError(f"{path}: performance {i} has shape {np.shape(p)}, expected (n, 3)")
    return performances, f"one performance per array of {key!r}"


def convert(
    source,
    out,
    *,
    sample=False,
    seed=0,
    valid_fraction=0.05,
    test_fraction=0.05,
    force=False,
    shard_size=None,
    progress=True,
):
    """Converts the RoboJam corpus (`.h5` or `.npz`) into a touch store.

    Args:
        source: `TinyPerformanceCorpus.h5`-like or `TinyPerformanceArrays.npz`-
            like file; `None` with `sample=True`.
        out: the store to write.
        sample: convert the corpus shipped with mdnrnn
            (`mdnrnn.datasets.path("robojam")`) instead of `source`.
            Defaults to `False`.
        seed: seed of the random split. Defaults to 0.
        valid_fraction: share of performances in `valid`. Defaults to 0.05.
        test_fraction: share in `test`. Defaults to 0.05.
        force: overwrite an existing `out`. Defaults to `False`.
        shard_size: write `out` as a shard directory of stores of this many
            sequences (`mdnrnn.data.shards`), within `common.SHARD_SIZE_RANGE`;
            `None` (the default) writes one store file.
        progress: show a progress bar. Defaults to `True`.

    Returns:
        A `data_prep.common.Summary`.

    Raises:
        PrepError: for a missing, unreadable or wrongly shaped file, not
            exactly one of `source` and `sample`, a seed or fraction outside
            `common.SEED_RANGE` / `common.FRACTION_RANGE`, an existing `out`
            without `force`, or no usable performance.

    Example:

    ```python
    from data_prep import robojam
    print(robojam.convert(None, "touch.h5", sample=True).format())
    ```
    """
    if (source is None) == (not sample):
        raise PrepError("give exactly one of a corpus file and --sample")
    check_split(seed, valid_fraction, test_fraction)
    if sample:
        source = datasets.path("robojam")
    source = require_file(source, "corpus")
    if source.suffix.lower() in (".h5", ".hdf5"):
        performances, rule = _read_h5(source)
    elif source.suffix.lower() == ".npz":
        performances, rule = _read_npz(source)
    else:
        raise PrepError(f"{source}: expected a .h5 or .npz file")
    summary = Summary(source=f"RoboJam touch corpus {source}")
    summary.points_read = int(sum(len(p) for p in performances))
    summary.notes.append(f"performances: {rule}")
    with open_writer(
        out, shard_size=shard_size, kind="touch", force=force, source=summary.source, licence=LICENCE,
        seed=seed, valid_fraction=valid_fraction, test_fraction=test_fraction,
    ) as writer:
        for i, performance in enumerate(
            progress_bar(performances, shown=progress, desc="robojam", unit="performance")
        ):
            rows = clean(performance, summary)
            if len(rows) == 0:
                summary.skip("empty performance", f"performance {i}")
                continue
            writer.add(rows)
        summary.notes.append(f"cleaning: x, y clipped into [0, 1], dt into [0, {MAX_DT:g}] s")
        return finish(writer, summary)
