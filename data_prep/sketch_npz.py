"""sketch-rnn stroke-3 `.npz` files to a stroke-3 store, keeping their splits.

A sketch-rnn dataset file (QuickDraw categories, `kanji.npz`, ...) holds
object arrays `train`, `valid` and `test` of int16 or float arrays
`(n_i, 3)` = `dx, dy, pen_lift`, pickled (by Python 2 for the original
files). They are read by `data_prep.common.load_npz`, which unpickles NumPy
arrays only and refuses a file holding anything but integer or float arrays
(strings, complex numbers, other objects). Each drawing is copied as is (no
rescaling) into the split it came from and labelled with its file's name
(`cat.npz` -> `cat`). Drawings that are not non-empty `(n, 3)` arrays with
finite values and pen values 0 / 1 are skipped and named in the summary.

`mdnrnn.datasets.path("short_kanji")` is such a file, shipped with mdnrnn.
"""

from pathlib import Path

import numpy as np

from data_prep.common import (
    PrepError,
    Summary,
    as_float32,
    finish,
    load_npz,
    open_writer,
    progress_bar,
    require_file,
    sequence_list,
)
from mdnrnn import data, datasets

LICENCE = "see the source dataset (QuickDraw: CC BY 4.0; KanjiVG: CC BY-SA 3.0)"


def load_splits(path):
    """Reads the `train` / `valid` / `test` arrays of a sketch-rnn `.npz`.

    Args:
        path: the `.npz` file.

    Returns:
        A dict from split name to list of drawings, for the splits present (at
        least one).

    Raises:
        PrepError: if the file is missing, not a readable `.npz` of numbers
            (see `data_prep.common.load_npz`), has none of the keys `train`,
            `valid`, `test`, or one of them is 0-d.
    """
    arrays = load_npz(path)
    splits = {name: sequence_list(path, name, arrays[name])
              for name in data.SPLITS if name in arrays}
    if not splits:
        raise PrepError(
            f"{path}: no 'train', 'valid' or 'test' array "
            f"(found keys: {', '.join(arrays) or 'none'})"
        )
    return splits


def _check_drawing(drawing):
    """The drawing as float32 `(n, 3)`, or the reason it cannot be used."""
    try:
        rows = as_float32(drawing)
    except (TypeError, ValueError):
        return None, "not a numeric array"
    if rows.ndim != 2 or rows.shape[1] != 3 or len(rows) == 0:
        return None, "not a non-empty (n, 3) array"
    if not np.all(np.isfinite(rows)):
        return None, "NaN or inf values"
    if not np.all((rows[:, 2] == 0) | (rows[:, 2] == 1)):
        return None, "pen values other than 0 and 1"
    return rows, None


def convert(files, out, *, sample=False, force=False, shard_size=None, progress=True):
    """Converts sketch-rnn `.npz` files into one labelled stroke-3 store.

    The files are read one at a time; a bad file anywhere leaves nothing
    written.

    Args:
        files: `.npz` paths; each file's drawings are labelled with its stem.
            Empty with `sample=True`.
        out: the store to write.
        sample: convert the file shipped with mdnrnn
            (`mdnrnn.datasets.path("short_kanji")`) instead of `files`.
            Defaults to `False`.
        force: overwrite an existing `out`. Defaults to `False`.
        shard_size: write `out` as a shard directory of stores of this many
            sequences (`mdnrnn.data.shards`), within `common.SHARD_SIZE_RANGE`;
            `None` (the default) writes one store file.
        progress: show a progress bar. Defaults to `True`.

    Returns:
        A `data_prep.common.Summary`.

    Raises:
        PrepError: for a missing or unreadable file, missing keys, not
            exactly one of `files` and `sample`, an existing `out` without
            `force`, or no usable drawing.

    Example:

    ```python
    from data_prep import sketch_npz
    print(sketch_npz.convert([], "kanji.h5", sample=True).format())
    ```
    """
    files = [Path(f) for f in files]
    if bool(files) == sample:
        raise PrepError("give exactly one of .npz files and --sample")
    if sample:
        files = [datasets.path("short_kanji")]
    for path in files:
        require_file(path, ".npz")
    summary = Summary(source="sketch-rnn .npz: " + ", ".join(str(f) for f in files))
    summary.points_read = 0
    with open_writer(out, kind="stroke3", force=force, shard_size=shard_size, source=summary.source,
                     licence=LICENCE) as writer:
        with progress_bar(shown=progress, total=0, desc="sketch-npz", unit="drawing") as bar:
            for path in files:
                splits = load_splits(path)
                bar.total += sum(len(drawings) for drawings in splits.values())
                for name, drawings in splits.items():
                    for i, drawing in enumerate(drawings):
                        bar.update()
                        rows, problem = _check_drawing(drawing)
                        size = len(drawing) if np.ndim(drawing) else 0
                        summary.points_read += size
                        if problem:
                            summary.skip(problem, f"{path.name}:{name}[{i}]", points=size)
                            continue
                        writer.add(rows, label=path.stem, split=name)
        return finish(writer, summary)
