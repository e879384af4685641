"""Shared parts of the importers: errors, the summary, the output writer, the
option bounds, and `load_npz`, which reads `.npz` files without running code."""

import dataclasses
import math
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mdnrnn import data

try:
    from numpy._core.multiarray import _reconstruct  # NumPy 2
except ImportError:  # pragma: no cover - NumPy 1.26
    from numpy.core.multiarray import _reconstruct

# Names listed per skip reason in a summary before "... and N more".
_NAMES_SHOWN = 20

# The largest array read from an input file (uncompressed .npz member or HDF5
# dataset), in bytes: 1 GiB, hundreds of times the shipped files' arrays.
MAX_ARRAY_BYTES = 2**30

# Bounds (inclusive) of the split options that every importer with a random
# split takes; the command line refuses values outside them before any work.
SEED_RANGE = (0, 2**32 - 1)
FRACTION_RANGE = (0.0, 0.45)
# Bounds (inclusive) of `--shard-size`, sequences per shard of a shard directory
# (the number of shards is bounded too: `mdnrnn.data.shards.MAX_STORES`).
SHARD_SIZE_RANGE = (1, 100_000_000)

# dtype kinds accepted as numbers: signed and unsigned integers, floats.
_NUMBER_KINDS = "iuf"

# The globals an `.npy` object array's pickle may name: NumPy's array
# reconstruction (under its NumPy 1 and NumPy 2 module names) and dtypes.
_ARRAY_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


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
        out: the store (or shard directory) written.
        shards: the number of shards, for a shard directory; else `None`.
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
    shards: int | None = None
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
        """Fills the kept counts from the store (or shard directory) at `path`."""
        with data.open_stores(path, check_values=False) as store:
            self.out = Path(path)
            self.shards = len(store.stores) if store.index is not None else None
            self.sequences = len(store)
            self.points = store.n_points
            self.lengths = store.lengths.copy()
            self.splits = {s: len(store.split(s)) for s in store.split_names}

    def format(self):
        """The summary as printable text."""
        lines = [f"source:    {self.source}", f"store:     {self.out}"]
        if self.shards is not None:
            lines.append(f"shards:    {self.shards:,} (listed in {self.out / 'index.json'})")
        split_text = ", ".join(f"{k} {v:,}" for k, v in self.splits.items())
        lines.append(f"sequences: {self.sequences:,} ({split_text})")
        lines.append(f"points:    {self.points:,}")
        lines.append(f"lengths:   {data.describe_lengths(self.lengths)}")
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


def open_writer(out, *, kind, force, shard_size=None, **kwargs):
    """A `StoreWriter` for `out` (a `ShardWriter` with `shard_size`), with output
    problems as `PrepError`.

    Args:
        out: the store to write; with `shard_size`, the shard directory.
        kind: the store kind.
        force: replace an existing `out` (a shard directory only if mdnrnn
            made it: see `mdnrnn.outdir`).
        shard_size: sequences per shard, within `SHARD_SIZE_RANGE`; `None`
            (the default) writes one store file.
        **kwargs: passed to `mdnrnn.data.StoreWriter` / `ShardWriter`.

    Returns:
        A `StoreWriter` or a `ShardWriter`.

    Raises:
        PrepError: if `out` exists (without `force`, or it is not a shard
            directory mdnrnn made), its folder is missing, or the seed, split
            fractions or shard size are invalid.
    """
    out = Path(out)
    if shard_size is not None:
        check_range("--shard-size", shard_size, SHARD_SIZE_RANGE)
        try:
            return data.ShardWriter(out, kind=kind, shard_size=shard_size, overwrite=force, **kwargs)
        except (OSError, ValueError) as exc:  # FileExistsError: outdir's refusal, with its reason
            raise PrepError(str(exc)) from None
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
        reasons = "; ".join(
            f"{reason}: {names[0]}" + (f" and {len(names) - 1} more" if len(names) > 1 else "")
            for reason, names in summary.skipped.items()
        )
        raise PrepError(
            f"no sequences to write ({reasons or 'the input holds no sequences'}); "
            "nothing written"
        )
    try:
        path = writer.commit()
    except ValueError as exc:
        raise PrepError(str(exc)) from None
    summary.read_back(path)
    return summary


def check_range(option, value, bounds):
    """Raises `PrepError` unless `value` lies in `bounds` (inclusive; NaN never does).

    Args:
        option: the option's name, for the message (`--sample-step`).
        value: the value received.
        bounds: `(low, high)`.
    """
    low, high = bounds
    if not low <= value <= high:
        raise PrepError(f"{option} must be between {low} and {high}, received {value!r}")


def check_split(seed, valid_fraction, test_fraction):
    """Checks the split options against `SEED_RANGE` and `FRACTION_RANGE`."""
    check_range("--seed", seed, SEED_RANGE)
    check_range("--valid-fraction", valid_fraction, FRACTION_RANGE)
    check_range("--test-fraction", test_fraction, FRACTION_RANGE)


def sequence_list(path, key, array):
    """The entries of an array that holds one sequence per entry, as a list.

    Raises:
        PrepError: if `array` is 0-d (a single value, no entries).
    """
    if array.ndim == 0:
        raise PrepError(
            f"{path}: array {key!r} is 0-d (one value), expected one entry per sequence"
        )
    return list(array)


def progress_bar(iterable=None, *, shown=True, **kwargs):
    """A `tqdm` progress bar, drawn only if `shown` and stderr is a terminal.

    Piped or captured stderr gets no bar, only the summary or the one-line
    error.
    """
    return tqdm(iterable, disable=None if shown else True, **kwargs)


def as_float32(array):
    """`array` as float32; numbers beyond float32's range become +-inf, without a warning.

    The importers then drop or skip them with the NaN and inf values.
    """
    with np.errstate(over="ignore"):
        return np.asarray(array, dtype=np.float32)


def require_file(path, what):
    """Raises `PrepError` unless `path` is an existing file."""
    path = Path(path)
    if not path.is_file():
        raise PrepError(f"{path}: no such {what} file")
    return path


def load_npz(path):
    """Loads every array of an `.npz` file without running code from it.

    `np.load(..., allow_pickle=True)` would unpickle anything, and a crafted
    file can run code that way. Here each `.npy` member's header is read
    first; numeric arrays are read with `allow_pickle=False`, and object
    arrays (sketch-rnn's and RoboJam's ragged lists, pickled, maybe by Python
    2) are unpickled by `_ArrayUnpickler`, which can build nothing but NumPy
    arrays. Only integer and float numbers are accepted: an object array must
    hold numeric arrays of one or more dimensions (sequences) only.

    Args:
        path: the file.

    Returns:
        A dict from key to array: integer or float arrays, or object arrays
        whose elements are integer or float arrays of at least one dimension.

    Raises:
        PrepError: if the file is missing, not a readable `.npz`, larger than
            `MAX_ARRAY_BYTES` per array, or holds anything but numbers.
    """
    path = require_file(path, ".npz")
    with open(path, "rb") as f:
        if f.read(6) == b"\x93NUMPY":
            raise PrepError(f"{path}: a single .npy array, not an .npz archive")
    try:
        with zipfile.ZipFile(path) as archive:
            return {
                name.removesuffix(".npy"): _read_member(path, archive, name)
                for name in archive.namelist()
            }
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError,
            RuntimeError, OSError, EOFError, ValueError) as exc:  # RuntimeError: encrypted
        raise PrepError(f"{path}: not a readable .npz file ({exc})") from None


def _read_member(path, archive, name):
    """One `.npy` member of an `.npz` archive, read as `load_npz` describes."""
    key = name.removesuffix(".npy")
    if not name.endswith(".npy"):
        raise PrepError(f"{path}: member {name!r} is not an .npy array")
    size = archive.getinfo(name).file_size
    if size > MAX_ARRAY_BYTES:
        raise PrepError(
            f"{path}: array {key!r} is {size:,} bytes, more than the {MAX_ARRAY_BYTES:,} "
            "bytes read from one array"
        )
    with archive.open(name) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise PrepError(
                f"{path}: array {key!r} has .npy format {version}, expected 1.0 or 2.0"
            )
        if dtype == object:
            return _unpickle_array(path, key, f, shape)
    if dtype.kind not in _NUMBER_KINDS:
        raise PrepError(f"{path}: array {key!r} has dtype {dtype}, expected integers or floats")
    if math.prod(shape) * dtype.itemsize > size:  # checked before read_array allocates it
        raise PrepError(f"{path}: array {key!r} is shorter than its shape {shape}")
    with archive.open(name) as f:  # from the start: read_array reads the header itself
        return np.lib.format.read_array(f, allow_pickle=False)


def _unpickle_array(path, key, f, shape):
    """The object array pickled in `f`, checked to hold numeric arrays only."""
    try:
        array = _ArrayUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise PrepError(f"{path}: array {key!r}: {exc}") from None
    except Exception as exc:  # whatever else the untrusted bytes make the unpickler raise
        raise PrepError(
            f"{path}: array {key!r} is not a readable object array ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(array, np.ndarray) or array.dtype != object or array.shape != shape:
        raise PrepError(f"{path}: array {key!r} does not hold the object array of its header")
    for index, item in enumerate(array.flat):
        if not isinstance(item, np.ndarray) or item.dtype.kind not in _NUMBER_KINDS:
            what = item.dtype if isinstance(item, np.ndarray) else type(item).__name__
            raise PrepError(
                f"{path}: {key}[{index}] is {what}, expected an array of integers or floats"
            )
        if item.ndim == 0:
            raise PrepError(
                f"{path}: {key}[{index}] is 0-d (one value), expected a sequence of numbers"
            )
    return array


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can build NumPy arrays and dtypes, and nothing else."""

    def find_class(self, module, name):
        allowed = _ARRAY_PICKLE_GLOBALS.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(f"refused to load {module}.{name} (only arrays are read)")
        return allowed
