"""sketch-rnn stroke-3 `.npz` files to a stroke-3 store, keeping their splits.

A sketch-rnn dataset file (QuickDraw categories, `kanji.npz`, ...) holds
object arrays `train`, `valid` and `test` of int16 or float arrays
`(n_i, 3)` = `dx, dy, pen_lift`; it needs `allow_pickle=True` (and
`encoding="latin1"` for files pickled by Python 2). Each drawing is copied as
is (no rescaling) into the split it came from and labelled with its file's
name (`cat.npz` -> `cat`). Drawings that are not `(n, 3)` numeric arrays with
finite values and pen values 0 / 1 are skipped and named in the summary.
"""

from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_prep.common import PrepError, Summary, finish, load_npz, open_writer
from mdnrnn import data

LICENCE = "see the source dataset (QuickDraw: CC BY 4.0; KanjiVG: CC BY-SA 3.0)"


def load_splits(path):
    """Reads the `train` / `valid` / `test` arrays of a sketch-rnn `.npz`.

    Args:
        path: the `.npz` file.

    Returns:
        A dict from split name to object array of drawings, for the splits
        present (at least one).

    Raises:
        PrepError: if the file is missing, not a readable `.npz`, or has none
            of the keys `train`, `valid`, `test`.
    """
    arrays = load_npz(path)
    splits = {name: arrays[name] for name in data.SPLITS if name in arrays}
    if not splits:
        raise PrepError(
            f"{path}: no 'train', 'valid' or 'test' array "
            f"(found keys: {', '.join(arrays) or 'none'})"
        )
    return splits


def _check_drawing(drawing):
    """The drawing as float32 `(n, 3)`, or the reason it cannot be used."""
    try:
        rows = np.asarray(drawing, dtype=np.float32)
    except (TypeError, ValueError):
        return None, "not a numeric array"
    if rows.ndim != 2 or rows.shape[1] != 3 or len(rows) == 0:
        return None, "not a non-empty (n, 3) array"
    if not np.all(np.isfinite(rows)):
        return None, "NaN or inf values"
    if not np.all((rows[:, 2] == 0) | (rows[:, 2] == 1)):
        return None, "pen values other than 0 and 1"
    return rows, None


def convert(files, out, *, force=False, progress=True):
    """Converts sketch-rnn `.npz` files into one labelled stroke-3 store.

    Args:
        files: one or more `.npz` paths; each file's drawings are labelled
            with its stem.
        out: the store to write.
        force: overwrite an existing `out`. Defaults to `False`.
        progress: show a progress bar. Defaults to `True`.

    Returns:
        A `data_prep.common.Summary`.

    Raises:
        PrepError: for a missing or unreadable file, missing keys, an existing
            `out` without `force`, or no usable drawing.
    """
    files = [Path(f) for f in files]
    loaded = [(f, load_splits(f)) for f in files]
    summary = Summary(source="sketch-rnn .npz: " + ", ".join(str(f) for f in files))
    summary.points_read = 0
    with open_writer(out, kind="stroke3", force=force, source=summary.source,
                     licence=LICENCE) as writer:
        total = sum(len(a) for _, splits in loaded for a in splits.values())
        bar = tqdm(total=total, desc="sketch-npz", unit="drawing", disable=not progress)
        for path, splits in loaded:
            for name, drawings in splits.items():
                for i, drawing in enumerate(drawings):
                    bar.update()
                    rows, problem = _check_drawing(drawing)
                    size = len(drawing) if hasattr(drawing, "__len__") else 0
                    summary.points_read += size
                    if problem:
                        summary.skip(problem, f"{path.name}:{name}[{i}]", points=size)
                        continue
                    writer.add(rows, label=path.stem, split=name)
        bar.close()
        return finish(writer, summary)
