"""Writing the HDF5 sequence store: `StoreWriter`, `write_store`, `append_store`.

Writes are atomic: everything goes to a temporary file in the destination's
folder (`mdnrnn.atomic`), which replaces the destination only once complete.
The layout is documented in `docs/store.md`.
"""

import os
import shutil
from pathlib import Path

import h5py
import numpy as np

from mdnrnn import atomic, formats
from mdnrnn.data.store import (
    _LABELS,
    _MEAN,
    _OFFSETS,
    _SCAN_ROWS,
    _STD,
    _VALUES,
    FORMAT_VERSION,
    SPLITS,
    _read,
    open_store,
)

# Rows per chunk of /sequences/values: about 256 KiB of float32 per chunk.
_CHUNK_BYTES = 1 << 18
# A standard deviation below this is replaced by 1 (a constant column).
_MIN_STD = 1e-8
# HDF5 file format written: 1.10's superblock, object headers, B-trees and
# chunk indexes all carry checksums (read by HDF5 >= 1.10, h5py >= 2.8).
_LIBVER = ("v110", "v110")
# Filters of every dataset the writer creates: Fletcher-32 (which needs chunked
# storage) detects damaged chunks on reading; gzip + shuffle keep files small.
_FILTERS = dict(compression="gzip", compression_opts=4, shuffle=True, fletcher32=True)
# Elements per chunk of the 1-D datasets (offsets, labels, splits).
_CHUNK_1D = 4096


def _chunk_rows(n_columns):
    rows = _CHUNK_BYTES // (4 * n_columns)
    return 1 << max(6, rows.bit_length() - 1)  # a power of two, >= 64




class StoreWriter:
    """Writes a sequence store atomically, one sequence at a time.

    Everything is written to a temporary file next to `path`; `commit()` (or
    leaving the `with` block normally) assigns random splits to sequences added
    without one, computes the train statistics and renames the file onto
    `path`. An exception inside the `with` block (including
    `KeyboardInterrupt`), or `abort()`, deletes the temporary file: no partial
    store is left and an existing file at `path` is untouched. Only a process
    killed outright (SIGKILL, power loss) can leave the hidden temporary file
    `.NAME.*.tmp` behind; never a partial file at `path`.

    Args:
        path: destination file.
        kind: `"stroke3"`, `"touch"` or `"impsy"`.
        columns: column names; defaults to the kind's (see
            `mdnrnn.formats.default_columns`; needed for `"impsy"` unless the
            first sequence fixes the width).
        source: free text describing where the data came from.
        licence: the data's licence.
        seed: seed for the random splits. Defaults to 0.
        valid_fraction: share of sequences added without a split that go to
            `valid`. Defaults to 0.05.
        test_fraction: share that goes to `test`. Defaults to 0.05.
        overwrite: replace an existing file at `path`. Defaults to `False`.

    Raises:
        FileExistsError: if `path` exists and `overwrite` is `False`.
        FileNotFoundError: if the destination folder does not exist.
        ValueError: for an unknown kind, bad columns, fractions or seed.

    Example:

    ```python
    with StoreWriter("perf.h5", kind="touch") as writer:
        for performance in performances:
            writer.add(performance)
    ```
    """

    def __init__(
        self,
        path,
        *,
        kind,
        columns=None,
        source="",
        licence="",
        seed=0,
        valid_fraction=0.05,
        test_fraction=0.05,
        overwrite=False,
    ):
        if kind not in formats.KINDS:
            raise ValueError(
                f"Received an invalid value for `kind`, expected one of {formats.KINDS}. "
                f"Received: kind={kind!r}"
            )
        _check_fractions(valid_fraction, test_fraction)
        _check_seed(seed)
        self.path = Path(path)
        _check_destination(self.path, overwrite)
        if columns is not None:
            columns = tuple(columns)
            _check_columns(kind, columns)
        elif kind != "impsy":  # an impsy store's width comes from its first sequence
            columns = formats.default_columns(kind)
        self._start(
            kind=kind,
            columns=columns,
            attrs=(str(source), str(licence), int(seed)),
            fractions=(valid_fraction, test_fraction),
            existing=None,
        )

    @classmethod
    def appending(cls, path, *, seed=None, valid_fraction=0.05, test_fraction=0.05):
        """A writer that adds sequences to an existing store.

        The store is validated and rewritten, block by block, into a temporary
        file in the current layout (so appending also upgrades a version 1
        store); new sequences go there and `commit()` replaces the original
        (recomputing the train statistics). Until then, and whatever happens,
        the original is intact.

        Args:
            path: an existing store.
            seed: seed for the random splits of new sequences added without
                one. Defaults to the store's seed (mixed with the number of
                sequences already there, so repeated appends differ).
            valid_fraction: share of new randomly split sequences going to
                `valid`. Defaults to 0.05.
            test_fraction: share going to `test`. Defaults to 0.05.

        Returns:
            A `StoreWriter`.

        Raises:
            StoreError: if the existing store is missing or invalid.
        """
        _check_fractions(valid_fraction, test_fraction)
        if seed is not None:
            _check_seed(seed)
        with open_store(path) as store:
            writer = cls.__new__(cls)
            writer.path = Path(path)
            writer._start(
                kind=store.kind,
                columns=store.columns,
                attrs=(store.source, store.licence, store.seed if seed is None else int(seed)),
                fractions=(valid_fraction, test_fraction),
                existing=store,
            )
        return writer

    def _start(self, *, kind, columns, attrs, fractions, existing):
        self.kind, self.columns = kind, columns
        self.source, self.licence, self.seed = attrs
        self.valid_fraction, self.test_fraction = fractions
        self._n_old = 0 if existing is None else len(existing)
        self._count = self._n_old
        self._rows = 0 if existing is None else existing.n_points
        self._labelled = None if existing is None else existing.labelled
        self._old_splits = {} if existing is None else {
            s: existing.split(s) for s in existing.split_names
        }
        # Per new sequence: 0 = draw a split at commit, else index in SPLITS + 1.
        self._split_codes = bytearray()
        self._pending, self._pending_rows, self._pending_labels = [], 0, []
        self._file = None
        self._tmp = atomic.temporary_sibling(self.path)
        try:
            self._file = h5py.File(self._tmp, "w", libver=_LIBVER)
            _extend(self._file, _OFFSETS, np.zeros(1, dtype=np.int64), np.int64)
            if existing is not None:
                shutil.copymode(self.path, self._tmp)
                self._copy(existing)
        except BaseException:
            self.abort()
            raise

    def _copy(self, store):
        """Copies every sequence (and label) of `store` into the temporary file."""
        n_rows = store.n_points
        values = self._values()
        values.resize(n_rows, axis=0)
        for start in range(0, n_rows, _SCAN_ROWS):
            values[start : start + _SCAN_ROWS] = _read(
                store._values, slice(start, start + _SCAN_ROWS), store.path
            )
        _extend(self._file, _OFFSETS, store.offsets[1:], np.int64)
        if store.labelled:
            for start in range(0, len(store), _SCAN_ROWS):
                block = slice(start, start + _SCAN_ROWS)
                _extend_labels(self._file, store._read_labels(block))

    def __len__(self):
        """Number of sequences in the store so far (old and new)."""
        return self._count

    def add(self, sequence, *, label=None, split=None):
        """Adds one sequence.

        Args:
            sequence: array-like `(length, columns)`, length >= 1, finite; for
                stroke-3 the pen column holds 0 or 1 only.
            label: optional str; either every sequence has a label or none.
            split: `"train"`, `"valid"`, `"test"`, or `None` to draw one at
                commit (see `valid_fraction`, `test_fraction`).

        Returns:
            The new sequence's index.

        Raises:
            ValueError: for a bad shape, empty or non-finite sequence, bad pen
                values, an unknown split, or a label where others have none
                (or the reverse).
        """
        if self._file is None:
            raise ValueError(f"{self.path}: the writer is already committed or aborted")
        index = self._count
        rows = np.asarray(sequence, dtype=np.float32)
        if self.columns is None and rows.ndim == 2 and rows.shape[1] >= 2:
            self.columns = formats.default_columns(self.kind, rows.shape[1])
        width = None if self.columns is None else len(self.columns)
        if rows.ndim != 2 or rows.shape[1] != width or rows.shape[0] == 0:
            raise ValueError(
                f"Sequence {index}: expected a non-empty array (length, {width}), "
                f"received shape {rows.shape}"
            )
        if not np.all(np.isfinite(rows)):
            raise ValueError(f"Sequence {index}: has NaN or inf values")
        if self.kind == "stroke3" and not np.all((rows[:, 2] == 0) | (rows[:, 2] == 1)):
            raise ValueError(f"Sequence {index}: pen_lift values must be 0 or 1")
        if split is not None and split not in SPLITS:
            raise ValueError(
                f"Sequence {index}: received an invalid value for `split`, expected one "
                f"of {SPLITS} or None. Received: split={split!r}"
            )
        has_label = label is not None
        if self._labelled is None:
            self._labelled = has_label
        if has_label != self._labelled:
            raise ValueError(
                f"Sequence {index}: either every sequence has a label or none does; "
                f"received label={label!r}"
            )
        if has_label:
            self._pending_labels.append(str(label))
        self._split_codes.append(0 if split is None else SPLITS.index(split) + 1)
        self._pending.append(rows)
        self._pending_rows += len(rows)
        self._count += 1
        if self._pending_rows >= 8 * _chunk_rows(width):
            self._flush()
        return index

    def _values(self):
        if _VALUES not in self._file:
            width = len(self.columns)
            self._file.create_dataset(
                _VALUES,
                shape=(0, width),
                maxshape=(None, width),
                dtype=np.float32,
                chunks=(_chunk_rows(width), width),
                **_FILTERS,
            )
        return self._file[_VALUES]

    def _flush(self):
        """Moves pending rows, offsets and labels into the temporary file."""
        if not self._pending:
            return
        block = np.concatenate(self._pending)
        values = self._values()
        values.resize(self._rows + len(block), axis=0)
        values[self._rows :] = block
        ends = self._rows + np.cumsum([len(rows) for rows in self._pending])
        _extend(self._file, _OFFSETS, ends.astype(np.int64), np.int64)
        if self._labelled:
            _extend_labels(self._file, self._pending_labels)
        self._rows += len(block)
        self._pending, self._pending_rows, self._pending_labels = [], 0, []

    def commit(self, *, stats=None):
        """Finishes the store and moves it onto `path` atomically.

        Args:
            stats: `(mean, std)`, one float per continuous column each, to
                store instead of the statistics of this store's train split
                (the shards of a shard directory hold the whole dataset's;
                see `mdnrnn.data.shards`). The train split may then be empty.
                Defaults to `None`: computed from the train split.

        Returns:
            The store's `pathlib.Path`.

        Raises:
            ValueError: if no sequence was added, the train split is empty
                (statistics come from the train split) and `stats` is not
                given, or `stats` has the wrong shape or a non-finite value
                (or a std <= 0). The temporary file is removed and `path`
                left as it was.
        """
        if self._file is None:
            raise ValueError(f"{self.path}: the writer is already committed or aborted")
        try:
            if self._count == 0:
                raise ValueError(f"{self.path}: no sequences to write")
            self._flush()
            f = self._file
            splits = self._final_splits()
            for name in SPLITS:
                if len(splits[name]):
                    _create_1d(f, f"splits/{name}", splits[name], np.int64)
            if stats is None:
                mean, std = _train_stats(f[_VALUES], f[_OFFSETS][:], splits["train"], self.kind,
                                         self.path)
            else:
                mean, std = _check_stats(stats, formats.n_continuous(self.kind, len(self.columns)))
            for name, stat in ((_MEAN, mean), (_STD, std)):
                _create_1d(f, name, stat, np.float64)
            f.attrs["format_version"] = FORMAT_VERSION
            _str_attr_set(f, "kind", self.kind)
            _str_attr_set(f, "columns", list(self.columns))
            _str_attr_set(f, "source", self.source)
            _str_attr_set(f, "licence", self.licence)
            f.attrs["seed"] = self.seed
            f.close()
            self._file = None
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def _final_splits(self):
        codes = np.frombuffer(bytes(self._split_codes), dtype=np.uint8).copy()
        free = np.flatnonzero(codes == 0)
        free = np.random.default_rng([self.seed, self._n_old]).permutation(free)
        n_valid = int(round(self.valid_fraction * len(free)))
        n_test = int(round(self.test_fraction * len(free)))
        codes[free[:n_valid]] = SPLITS.index("valid") + 1
        codes[free[n_valid : n_valid + n_test]] = SPLITS.index("test") + 1
        codes[free[n_valid + n_test :]] = SPLITS.index("train") + 1
        return {
            s: np.union1d(self._old_splits.get(s, np.zeros(0, dtype=np.int64)),
                          self._n_old + np.flatnonzero(codes == k + 1)).astype(np.int64)
            for k, s in enumerate(SPLITS)
        }

    def abort(self):
        """Discards everything written; `path` is left as it was."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        elif self._file is not None:  # not yet committed or aborted inside the block
            self.commit()


def _check_fractions(valid_fraction, test_fraction):
    for name, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(
                f"Received an invalid value for `{name}`, expected a number in [0, 1). "
                f"Received: {name}={value!r}"
            )
    if valid_fraction + test_fraction >= 1.0:
        raise ValueError(
            "valid_fraction + test_fraction must be below 1 to leave a train split. "
            f"Received: {valid_fraction} + {test_fraction}"
        )


def _check_seed(seed):
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            f"Received an invalid value for `seed`, expected a non-negative integer. "
            f"Received: seed={seed!r}"
        )


def _check_stats(stats, d):
    """`(mean, std)` as float64 arrays `(d,)`, checked as `open_store` checks them."""
    mean, std = (np.asarray(v, dtype=np.float64) for v in stats)
    if mean.shape != (d,) or std.shape != (d,):
        raise ValueError(
            f"`stats` needs a mean and a std of {d} values (continuous columns) each. "
            f"Received shapes {mean.shape} and {std.shape}"
        )
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError(f"`stats` must be finite, with std > 0. Received: mean={mean}, std={std}")
    return mean, std


def _check_destination(path, overwrite):
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; pass overwrite=True to replace it")


def _check_columns(kind, columns):
    if kind == "stroke3" and tuple(columns) != formats.STROKE3_COLUMNS:
        raise ValueError(
            f"A stroke3 store has columns {formats.STROKE3_COLUMNS}. Received: columns={columns}"
        )
    if len(columns) < 1 or len(set(columns)) != len(columns):
        raise ValueError(f"Column names must be non-empty and unique. Received: columns={columns}")




def _create_1d(f, name, data, dtype):
    """Writes a fixed-size 1-D dataset, chunked so it can carry its checksum."""
    f.create_dataset(
        name, data=data, dtype=dtype, chunks=(min(len(data), _CHUNK_1D),), **_FILTERS
    )


def _extend(f, name, data, dtype):
    """Appends `data` to a resizable, checksummed 1-D dataset, creating it if needed."""
    if name not in f:
        f.create_dataset(
            name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(_CHUNK_1D,), **_FILTERS
        )
    ds = f[name]
    start = ds.shape[0]
    ds.resize(start + len(data), axis=0)
    ds[start:] = data


def _utf8_dtype(encoded):
    """Fixed-length UTF-8 string dtype wide enough for the byte strings `encoded`.

    Fixed-length strings live inside the checksummed chunks (or object header);
    variable-length ones would live in HDF5's global heap, which has no checksum.
    """
    return h5py.string_dtype("utf-8", max([1, *map(len, encoded)]))


def _str_attr_set(f, name, value):
    """Sets a str (or list of str) attribute as fixed-length UTF-8."""
    if isinstance(value, str):
        encoded = value.encode()
        f.attrs.create(name, np.array(encoded, dtype=_utf8_dtype([encoded])))
    else:
        encoded = [v.encode() for v in value]
        f.attrs.create(name, np.array(encoded, dtype=_utf8_dtype(encoded)))


def _extend_labels(f, labels):
    """Appends str `labels` to `/sequences/labels` (fixed-length UTF-8).

    The width is a power of two bytes, at least 16; a longer label rewrites the
    dataset wider, in blocks.
    """
    encoded = [label.encode() for label in labels]
    need = max([16, *map(len, encoded)])
    width = 1 << (need - 1).bit_length()
    if _LABELS in f and f[_LABELS].dtype.itemsize >= width:
        width = f[_LABELS].dtype.itemsize
    dtype = h5py.string_dtype("utf-8", width)
    if _LABELS in f and f[_LABELS].dtype.itemsize < width:
        narrow = _LABELS + "_narrow"
        f.move(_LABELS, narrow)
        for start in range(0, len(f[narrow]), _SCAN_ROWS):
            block = f[narrow][start : start + _SCAN_ROWS]
            _extend(f, _LABELS, np.asarray(block, dtype=dtype), dtype)
        del f[narrow]
    _extend(f, _LABELS, np.array(encoded, dtype=dtype), dtype)


def _train_stats(values, offsets, train, kind, path):
    """Mean and std of the continuous columns over the train sequences.

    Streams over the file in blocks and merges per-block moments (Chan et
    al.'s parallel formula), so memory stays bounded and the sums stay
    accurate. For stroke-3, dx and dy are pooled into one std and mean is 0.
    """
    if len(train) == 0:
        raise ValueError(f"{path}: the train split is empty; statistics need training data")
    return _stats_from_moments(_train_moments(values, offsets, train, kind), kind, values.shape[1])


def _train_moments(values, offsets, train, kind):
    """`(count, mean, m2)` of the continuous values of the train sequences, in float64.

    For stroke-3, dx and dy are pooled into one column. Moments of several stores
    merge with `_merge_moments`; `_stats_from_moments` turns them into statistics.
    """
    d = formats.n_continuous(kind, values.shape[1])
    width = 1 if kind == "stroke3" else d
    is_train = np.zeros(len(offsets) - 1, dtype=bool)
    is_train[train] = True
    moments = (0, np.zeros(width), np.zeros(width))
    for start in range(0, values.shape[0], _SCAN_ROWS):
        block = values[start : start + _SCAN_ROWS]
        rows = np.arange(start, start + len(block))
        keep = is_train[np.searchsorted(offsets, rows, side="right") - 1]
        x = block[keep, :d].astype(np.float64).reshape(-1, width)
        if len(x) == 0:
            continue
        mean_b = x.mean(axis=0)
        moments = _merge_moments(moments, (len(x), mean_b, ((x - mean_b) ** 2).sum(axis=0)))
    return moments


def _merge_moments(a, b):
    """Merges two `(count, mean, m2)` (Chan et al.'s parallel formula)."""
    (count, mean, m2), (n_b, mean_b, m2_b) = a, b
    if n_b == 0:
        return a
    delta = mean_b - mean
    total = count + n_b
    return total, mean + delta * n_b / total, m2 + m2_b + delta**2 * count * n_b / total


def _stats_from_moments(moments, kind, n_columns):
    """`(mean, std)` as a store holds them, from `(count, mean, m2)` with `count > 0`."""
    count, mean, m2 = moments
    d = formats.n_continuous(kind, n_columns)
    std = np.sqrt(m2 / count)
    std = np.where(std > _MIN_STD, std, 1.0)
    if kind == "stroke3":
        return np.zeros(d), np.repeat(std, d)
    return mean, std


def write_store(
    path,
    sequences,
    *,
    kind,
    columns=None,
    labels=None,
    splits=None,
    source="",
    licence="",
    seed=0,
    valid_fraction=0.05,
    test_fraction=0.05,
    overwrite=False,
):
    """Writes a whole store in one call (atomically, see `StoreWriter`).

    Args:
        path: destination file.
        sequences: iterable of arrays `(length_i, columns)`.
        kind: `"stroke3"`, `"touch"` or `"impsy"`.
        columns: column names; defaults to the kind's.
        labels: optional sequence of str, one per sequence.
        splits: optional sequence of split names (`"train"`, `"valid"`,
            `"test"` or `None` for a random draw), one per sequence. Defaults
            to `None`: every sequence drawn at random with `seed`.
        source: free text describing the data's origin.
        licence: the data's licence.
        seed: seed for random splits. Defaults to 0.
        valid_fraction: share of randomly split sequences going to `valid`.
        test_fraction: share going to `test`.
        overwrite: replace an existing file. Defaults to `False`.

    Returns:
        The store's `pathlib.Path`.

    Raises:
        FileExistsError: if `path` exists and `overwrite` is `False`.
        ValueError: for invalid sequences or arguments; nothing is written.
    """
    writer = StoreWriter(
        path,
        kind=kind,
        columns=columns,
        source=source,
        licence=licence,
        seed=seed,
        valid_fraction=valid_fraction,
        test_fraction=test_fraction,
        overwrite=overwrite,
    )
    with writer:
        _add_all(writer, sequences, labels, splits)
    return writer.path


def append_store(path, sequences, *, labels=None, splits=None, seed=None):
    """Appends sequences to an existing store (atomically, see `StoreWriter`).

    Earlier sequences, labels and split assignments are kept as they are; the
    train statistics are recomputed over the enlarged train split.

    Args:
        path: an existing store.
        sequences: iterable of arrays `(length_i, columns)`.
        labels: one str per sequence if the store is labelled, else `None`.
        splits: optional split names per sequence (`None` entries drawn at
            random).
        seed: seed for the random splits; defaults to the store's.

    Returns:
        The store's `pathlib.Path`.

    Raises:
        StoreError: if the existing store is invalid.
        ValueError: for invalid sequences; the store is left unchanged.
    """
    writer = StoreWriter.appending(path, seed=seed)
    with writer:
        _add_all(writer, sequences, labels, splits)
    return writer.path


def _add_all(writer, sequences, labels, splits):
    sequences = list(sequences)
    for name, per in (("labels", labels), ("splits", splits)):
        if per is not None and len(per) != len(sequences):
            raise ValueError(
                f"`{name}` needs one entry per sequence: received {len(per)} for "
                f"{len(sequences)} sequences"
            )
    for i, seq in enumerate(sequences):
        writer.add(
            seq,
            label=None if labels is None else labels[i],
            split=None if splits is None else splits[i],
        )
