"""Shared parts of the importers: errors, the summary, the output writer."""

import dataclasses
import pickle
import zipfile
from pathlib import Path

import numpy as np

from mdnrnn import data

# Names listed per skip reason in a summary before "... and N more".
_NAMES_SHOWN = 20


class PrepError(Exception):
    """A user-facing problem with the input or output of a conversion.

    `data_prep.main` prints it as a one-line `error: ...` message (no
    traceback) and exits with status 1.
    """


@dataclasses.dataclass
class Summary:
    """What a conversion read, kept and dropped.

    The counts of what was kept (sequences, points, lengths, splits) are read
    back from the written store, not from the importer's own bookkeeping.

    Attributes:
        source: what was converted.
        out: the store written.
        sequences: sequences in the store.
        points: points (rows) in the store.
        lengths: length of every sequence.
        splits: sequences per split.
        skipped: reason -> names of the items (files, drawings, performances)
            skipped for it.
        dropped_points: reason -> number of points (rows) dropped for it.
        points_read: points in the input, where that is meaningful; then
            `points + sum(dropped_points) == points_read` (points dropped
            with a skipped item are counted under its reason too).
        clipped: column -> number of values changed by clipping.
        notes: further remarks (rules applied, ...).
    """

    source: str
    out: Path | None = None
    sequences: int = 0
    points: int = 0
    lengths: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    splits: dict = dataclasses.field(default_factory=dict)
    skipped: dict = dataclasses.field(default_factory=dict)
    dropped_points: dict = dataclasses.field(default_factory=dict)
    points_read: int | None = None
    clipped: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)

    def skip(self, reason, name, points=0):
        """Records a skipped item (and the points that went with it)."""
        self.skipped.setdefault(reason, []).append(str(name))
        if points:
            self.drop_points(reason, points)

    def drop_points(self, reason, count):
        """Records `count` points dropped for `reason`."""
        if count:
            self.dropped_points[reason] = self.dropped_points.get(reason, 0) + int(count)

    def read_back(self, path):
        """Fills the kept counts from the store at `path`."""
        with data.open_store(path, check_values=False) as store:
            self.out = store.path
            self.sequences = len(store)
            self.points = store.n_points
            self.lengths = store.lengths.copy()
            self.splits = {s: len(store.split(s)) for s in store.split_names}

    def format(self):
        """The summary as printable text."""
        lines = [f"source:    {self.source}", f"store:     {self.out}"]
        split_text = ", ".join(f"{k} {v:,}" for k, v in self.splits.items())
        lines.append(f"sequences: {self.sequences:,} ({split_text})")
        lines.append(f"points:    {self.points:,}")
        if len(self.lengths):
            p = np.percentile(self.lengths, [0, 5, 50, 95, 100]).round(1)
            lines.append(
                "lengths:   min {:g}, p5 {:g}, median {:g}, p95 {:g}, max {:g}".format(*p)
            )
        if self.points_read is not None:
            dropped = sum(self.dropped_points.values())
            lines.append(
                f"points read {self.points_read:,} = kept {self.points:,} + dropped {dropped:,}"
            )
        for reason, count in self.dropped_points.items():
            lines.append(f"  dropped {count:,} points: {reason}")
        if self.clipped:
            text = ", ".join(f"{k} {v:,}" for k, v in self.clipped.items())
            lines.append(f"values clipped: {text}")
        for reason, names in self.skipped.items():
            shown = ", ".join(names[:_NAMES_SHOWN])
            hidden = len(names) - _NAMES_SHOWN
            more = f" ... and {hidden} more" if hidden > 0 else ""
            lines.append(f"skipped {len(names):,}: {reason}: {shown}{more}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def open_writer(out, *, kind, force, **kwargs):
    """A `StoreWriter` for `out`, with output problems as `PrepError`.

    Args:
        out: the store to write.
        kind: the store kind.
        force: replace an existing `out`.
        **kwargs: passed to `mdnrnn.data.StoreWriter`.

    Returns:
        A `StoreWriter`.

    Raises:
        PrepError: if `out` exists (without `force`), its folder is missing, or
            the seed or split fractions are invalid.
    """
    out = Path(out)
    try:
        return data.StoreWriter(out, kind=kind, overwrite=force, **kwargs)
    except FileExistsError:
        raise PrepError(f"{out} already exists; pass --force to overwrite it") from None
    except (FileNotFoundError, ValueError) as exc:
        raise PrepError(str(exc)) from None


def finish(writer, summary):
    """Commits `writer` and fills `summary` from the written store.

    Call it as the last step inside `with writer:`.

    Returns:
        `summary`.

    Raises:
        PrepError: if nothing was kept or the train split is empty (the writer
            is aborted, nothing written).
    """
    if len(writer) == 0:
        reasons = "; ".join(summary.skipped) or "the input holds no sequences"
        raise PrepError(f"no sequences to write ({reasons}); nothing written")
    try:
        path = writer.commit()
    except ValueError as exc:
        raise PrepError(str(exc)) from None
    summary.read_back(path)
    return summary


def require_file(path, what):
    """Raises `PrepError` unless `path` is an existing file."""
    path = Path(path)
    if not path.is_file():
        raise PrepError(f"{path}: no such {what} file")
    return path


def load_npz(path):
    """Loads every array of an `.npz` file (object arrays allowed).

    Args:
        path: the file.

    Returns:
        A dict from key to array.

    Raises:
        PrepError: if the file is missing or not a readable `.npz`.
    """
    path = require_file(path, ".npz")
    try:
        with np.load(path, allow_pickle=True, encoding="latin1") as npz:
            return {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, pickle.UnpicklingError, OSError, ValueError, EOFError) as exc:
        raise PrepError(f"{path}: not a readable .npz file ({exc})") from None
    except AttributeError:  # np.load returned a bare array: a .npy, not an .npz
        raise PrepError(f"{path}: a single .npy array, not an .npz archive") from None
