"""The HDF5 sequence store and the `tf.data` training pipelines over it.

A store holds a whole dataset of variable-length sequences (drawings or
performances) in one HDF5 file: all points in one chunked, compressed
`(total_points, columns)` float32 array, sequence boundaries as offsets, optional
per-sequence labels, train/valid/test splits and normalisation statistics
computed on the train split. The layout, version 2, is documented in
`docs/store.md`; the row formats in `mdnrnn.formats`. Every dataset carries
HDF5 Fletcher-32 checksums and the file's metadata its own checksums, so a
damaged file raises `StoreError` when read instead of giving wrong numbers.

- Write with `write_store` / `append_store`, or stream with `StoreWriter`.
  Writes are atomic: everything goes to a temporary file in the destination's
  folder, which replaces the destination only once complete.
- Read with `open_store`, which validates the file and raises `StoreError`
  naming the file and the field at fault; a damaged file (checksum
  mismatch) or a truncated one is a `StoreError` too. `store.require_split`
  refuses a missing or empty split (`make_dataset` calls it).
- Summarise sequence lengths with `describe_lengths`.
- Train with `make_dataset`, which streams batches from the file with bounded
  memory.

Example:

```python
from mdnrnn import data

data.write_store("tiny.h5", [[[1, 2, 0], [3, 4, 1]], [[0, 1, 1]]],
                 kind="stroke3", splits=["train", "valid"])
with data.open_store("tiny.h5") as store:
    print(len(store), store.split("train"), store[0])
ds = data.make_dataset("tiny.h5", "train", batch_size=32, pen="categorical")
```

Legend for shapes: B batch, T time, C columns, D continuous columns.
"""

import dataclasses
import functools
import itertools
import logging
import os
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np

from mdnrnn import formats

# Version 2 adds checksums everywhere (HDF5 1.10 file format, Fletcher-32 on
# every dataset) and fixed-length UTF-8 strings; version 1 files still open.
FORMAT_VERSION = 2
SPLITS = ("train", "valid", "test")
PEN_MODES = ("categorical", "bernoulli")

_VALUES = "sequences/values"
_OFFSETS = "sequences/offsets"
_LABELS = "sequences/labels"
_MEAN = "stats/mean"
_STD = "stats/std"
# Rows per chunk of /sequences/values: about 256 KiB of float32 per chunk.
_CHUNK_BYTES = 1 << 18
# Rows read at a time when scanning the whole of /sequences/values.
_SCAN_ROWS = 1 << 20
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
# Quantiles printed by `describe_lengths`, in percent.
_LENGTH_QUANTILES = ((0, "min"), (5, "p5"), (50, "median"), (95, "p95"), (100, "max"))

logger = logging.getLogger(__name__)


class StoreError(ValueError):
    """A sequence store file is missing, unreadable or invalid.

    The message names the file and the field (HDF5 path or attribute) at fault.
    """


def _store_error(path, field, problem):
    return StoreError(f"{path}: {field}: {problem}")


def _read(ds, selection, path, name=None):
    """`ds[selection]`, with a damaged chunk as `StoreError` naming file and dataset.

    HDF5 reports a Fletcher-32 mismatch, a corrupt compressed chunk or a chunk
    past the end of a truncated file as `OSError`.
    """
    try:
        return ds[selection]
    except (OSError, RuntimeError) as exc:
        raise _store_error(
            path, name or ds.name, f"cannot be read: the file is damaged (checksum or "
            f"decompression failed, or truncated): {exc}"
        ) from None
    except UnicodeDecodeError as exc:  # a damaged label in a version 1 store
        raise _store_error(path, name or ds.name, f"invalid UTF-8: {exc}") from None


def _chunk_rows(n_columns):
    rows = _CHUNK_BYTES // (4 * n_columns)
    return 1 << max(6, rows.bit_length() - 1)  # a power of two, >= 64


class SequenceStore:
    """A read-only view of a sequence store file; open it with `open_store`.

    Sequences are read lazily from the file: `store[i]` reads one sequence.
    Offsets and statistics are loaded on opening (about 8 bytes per
    sequence); splits are read by `split()`, labels and lengths on first use.

    Attributes:
        path: `pathlib.Path` of the file.
        kind: `"stroke3"`, `"touch"` or `"impsy"` (see `mdnrnn.formats`).
        columns: tuple of column names.
        n_continuous: number of continuous (normalised) leading columns, `D`.
        format_version: the layout version the file was written with.
        source, licence: free text recorded by the importer.
        seed: the seed the random splits were drawn with.
        offsets: int64 array `(n_sequences + 1,)`; sequence `i` is rows
            `offsets[i]:offsets[i + 1]`.
        lengths: int64 array `(n_sequences,)` of sequence lengths (computed
            on first use).
        labels: array of str `(n_sequences,)`, or `None` if unlabelled (read
            on first use).
        mean, std: float64 arrays `(D,)`, computed on the train split. For
            stroke-3, mean is 0 and both entries of std are one shared value.
        split_names: the names of the splits present.
    """

    def __init__(self, path, *, check_values=True):
        """Opens and validates a store; prefer `open_store(path)`.

        Args:
            path: the store file.
            check_values: scan all values for NaN / inf (and, for stroke-3,
                pen values other than 0 or 1). Reads the whole file once, in
                bounded memory. Defaults to `True`.

        Raises:
            StoreError: if the file is missing, unreadable or invalid.
        """
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"{self.path}: no such store file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise StoreError(
                f"{self.path}: not a readable HDF5 file (truncated or corrupt?): {exc}"
            ) from None
        try:
            self._load(check_values)
        except (OSError, RuntimeError, KeyError) as exc:
            # HDF5 metadata (object headers, indexes) failing its checksum.
            self._file.close()
            raise StoreError(
                f"{self.path}: the HDF5 structure cannot be read: the file is damaged: {exc}"
            ) from None
        except BaseException:
            self._file.close()
            raise

    def _load(self, check_values):
        self._read_header()
        self._read_sequences()
        self._read_splits()
        d = self.n_continuous
        self.mean = self._stat(_MEAN, d)
        self.std = self._stat(_STD, d)
        if check_values:
            self._check_values()

    def _read_header(self):
        f, path = self._file, self.path
        version = f.attrs.get("format_version")
        field = "attribute format_version"
        if version is None:
            raise _store_error(path, field, "missing (not a sequence store?)")
        if not isinstance(version, (int, np.integer)) or version < 1:
            raise _store_error(path, field, f"invalid value {version!r}")
        if version > FORMAT_VERSION:
            raise _store_error(
                path, field,
                f"{int(version)} is newer than this mdnrnn reads ({FORMAT_VERSION}); "
                "upgrade mdnrnn",
            )
        self.format_version = int(version)
        kind = _str_attr(f, "kind")
        if kind not in formats.KINDS:
            raise _store_error(path, "attribute kind", f"{kind!r} is not one of {formats.KINDS}")
        self.kind = kind
        columns = f.attrs.get("columns")
        if columns is None or len(columns) == 0:
            raise _store_error(path, "attribute columns", "missing or empty")
        self.columns = tuple(c.decode() if isinstance(c, bytes) else str(c) for c in columns)
        if kind == "stroke3" and (len(self.columns) != 3 or self.columns[2] != "pen_lift"):
            raise _store_error(
                path, "attribute columns",
                f"a stroke3 store needs columns (dx, dy, pen_lift); found {self.columns}",
            )
        self.n_continuous = formats.n_continuous(kind, len(self.columns))
        self.source = _str_attr(f, "source", default="")
        self.licence = _str_attr(f, "licence", default="")
        self.seed = int(f.attrs.get("seed", 0))

    def _read_sequences(self):
        f, path = self._file, self.path
        values = _dataset(f, path, _VALUES, ndim=2, dtype=np.float32)
        if values.shape[1] != len(self.columns):
            raise _store_error(
                path, "/" + _VALUES,
                f"has {values.shape[1]} columns but attribute columns names {len(self.columns)}",
            )
        self._values = values
        offsets = _read(_dataset(f, path, _OFFSETS, ndim=1, dtype=np.int64), (), path)
        if len(offsets) < 1 or offsets[0] != 0:
            raise _store_error(path, "/" + _OFFSETS, "must start with 0")
        if offsets[-1] != values.shape[0]:
            raise _store_error(
                path, "/" + _OFFSETS,
                f"ends at {offsets[-1]} but /{_VALUES} has {values.shape[0]} rows",
            )
        i = _first_not_increasing(offsets)
        if i is not None:
            raise _store_error(
                path, "/" + _OFFSETS,
                f"not strictly increasing: offsets[{i}]={offsets[i]}, "
                f"offsets[{i + 1}]={offsets[i + 1]}",
            )
        self.offsets = offsets
        self._labels = None
        if _LABELS in f:
            labels = f[_LABELS]
            strings = isinstance(labels, h5py.Dataset) and h5py.check_string_dtype(labels.dtype)
            if not strings:
                raise _store_error(path, "/" + _LABELS, "must be a dataset of strings")
            if labels.shape != (len(self),):
                raise _store_error(
                    path, "/" + _LABELS, f"has shape {labels.shape}, expected ({len(self)},)"
                )
            self._labels = labels

    def _read_splits(self):
        f, path, n = self._file, self.path, len(self)
        self._splits = {}  # name -> h5py dataset, read by split()
        if "splits" not in f:
            return
        unknown = sorted(set(f["splits"]) - set(SPLITS))
        if unknown:
            raise _store_error(
                path, f"/splits/{unknown[0]}", f"unknown split; expected one of {SPLITS}"
            )
        seen = np.zeros(n, dtype=bool)
        for name in (s for s in SPLITS if s in f["splits"]):
            field = f"/splits/{name}"
            ds = _dataset(f, path, field[1:], ndim=1, dtype=np.int64)
            # Checked slice by slice (with one element of overlap), not kept.
            for start in range(0, len(ds), _SCAN_ROWS):
                idx = _read(ds, slice(max(0, start - 1), start + _SCAN_ROWS), path)
                if idx[0] < 0 or idx[-1] >= n or _first_not_increasing(idx) is not None:
                    raise _store_error(
                        path, field, f"indices must be sorted, unique and in [0, {n})"
                    )
                idx = idx[1:] if start else idx
                if np.any(seen[idx]):
                    raise _store_error(path, field, "overlaps another split")
                seen[idx] = True
            self._splits[name] = ds

    def _stat(self, name, d):
        ds = _dataset(self._file, self.path, name, ndim=1)
        if ds.dtype.kind != "f":
            raise _store_error(
                self.path, "/" + name, f"has dtype {ds.dtype}, expected a float dtype"
            )
        if ds.shape != (d,):
            raise _store_error(
                self.path, "/" + name,
                f"has shape {ds.shape}, expected ({d},) (continuous columns)",
            )
        values = _read(ds, (), self.path).astype(np.float64)
        bad = ~np.isfinite(values)
        if name == _STD:
            bad |= ~(values > 0)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            must = "finite and > 0" if name == _STD else "finite"
            raise _store_error(
                self.path, "/" + name,
                f"must be {must}; found {name.split('/')[-1]}[{k}] = {float(values[k])!r} "
                f"(column {self.columns[k]!r})",
            )
        return values

    def _check_values(self):
        values = self._values
        for start in range(0, values.shape[0], _SCAN_ROWS):
            block = _read(values, slice(start, start + _SCAN_ROWS), self.path)
            bad = ~np.isfinite(block)
            problem = "non-finite value"
            if self.kind == "stroke3" and not bad.any():
                pen = block[:, 2]
                bad = np.zeros_like(block, dtype=bool)
                bad[:, 2] = (pen != 0) & (pen != 1)
                problem = "pen_lift value other than 0 or 1"
            if bad.any():
                row, col = (int(v[0]) for v in np.nonzero(bad))
                row_in_file = start + row
                seq = int(np.searchsorted(self.offsets, row_in_file, side="right") - 1)
                raise _store_error(
                    self.path, "/" + _VALUES,
                    f"{problem} {float(block[row, col])!r} at row {row_in_file} "
                    f"(sequence {seq}, column {self.columns[col]!r})",
                )

    def __len__(self):
        return len(self.offsets) - 1

    @functools.cached_property
    def lengths(self):
        """Int64 array `(n_sequences,)` of sequence lengths."""
        return np.diff(self.offsets)

    @functools.cached_property
    def labels(self):
        """Array of str `(n_sequences,)`, or `None` for an unlabelled store."""
        if self._labels is None:
            return None
        return self._read_labels(slice(None))

    def _read_labels(self, selection):
        labels = _read(self._labels.asstr(), selection, self.path, "/" + _LABELS)
        return np.array(labels, dtype=str)

    @property
    def labelled(self):
        """Whether the store has per-sequence labels (without reading them)."""
        return self._labels is not None

    def __getitem__(self, index):
        """Reads sequence `index` as a float32 array `(length, columns)`."""
        n = len(self)
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"Store indices must be integers. Received: {index!r}")
        if not -n <= index < n:
            raise IndexError(f"Sequence index {index} out of range for a store of {n}")
        index = int(index) % n
        rows = slice(self.offsets[index], self.offsets[index + 1])
        return _read(self._values, rows, self.path)

    @property
    def n_points(self):
        """Total number of rows over all sequences."""
        return int(self.offsets[-1])

    @property
    def split_names(self):
        """Names of the splits present in the store, in `SPLITS` order."""
        return tuple(s for s in SPLITS if s in self._splits)

    def split(self, name):
        """Sorted int64 indices of the sequences in split `name`.

        Args:
            name: `"train"`, `"valid"` or `"test"`.

        Returns:
            An int64 array, read from the file; empty if the store has no
            such split.

        Raises:
            ValueError: if `name` is not one of `SPLITS`.
        """
        if name not in SPLITS:
            raise ValueError(
                f"Received an invalid value for `split`, expected one of {SPLITS}. "
                f"Received: split={name!r}"
            )
        if name not in self._splits:
            return np.zeros(0, dtype=np.int64)
        return _read(self._splits[name], (), self.path)

    def require_split(self, name):
        """Checks that split `name` has at least one sequence; training needs this.

        Args:
            name: `"train"`, `"valid"` or `"test"`.

        Returns:
            The split's sorted int64 indices.

        Raises:
            StoreError: if the store has no such split, or it is empty.
            ValueError: if `name` is not one of `SPLITS`.

        Example:

        ```python
        with open_store("kanji.h5") as store:
            store.require_split("train")  # StoreError: kanji.h5 has no train split
        ```
        """
        indices = self.split(name)
        if len(indices) == 0:
            raise StoreError(
                f"{self.path} has no {name} split (/splits/{name} is missing or empty); "
                f"rebuild the store with sequences in {name}"
            )
        return indices

    def close(self):
        """Closes the file; the store is unusable afterwards."""
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        sizes = ", ".join(f"{s}={len(self._splits[s])}" for s in self.split_names)
        return (
            f"<SequenceStore {str(self.path)!r} kind={self.kind} sequences={len(self)} "
            f"points={self.n_points} {sizes}>"
        )


def _first_not_increasing(a):
    """Index `i` of the first `a[i + 1] <= a[i]`, or `None`; small temporaries."""
    for start in range(0, len(a) - 1, _SCAN_ROWS):
        bad = np.flatnonzero(np.diff(a[start : start + _SCAN_ROWS + 1]) <= 0)
        if len(bad):
            return start + int(bad[0])
    return None


def _split_lengths(offsets, indices):
    """Lengths of sequences `indices`, computed in slices to keep temporaries small.

    Int32 (half the memory) unless the store has 2**31 rows or more.
    """
    dtype = np.int32 if offsets[-1] < 2**31 else np.int64
    lengths = np.empty(len(indices), dtype=dtype)
    for start in range(0, len(indices), _SCAN_ROWS):
        idx = indices[start : start + _SCAN_ROWS]
        lengths[start : start + len(idx)] = offsets[idx + 1] - offsets[idx]
    return lengths


def _str_attr(f, name, default=None):
    value = f.attrs.get(name, default)
    if isinstance(value, bytes):
        value = value.decode()
    return value


def _dataset(f, path, name, *, ndim, dtype=None):
    if name not in f:
        raise _store_error(path, "/" + name, "missing dataset")
    try:
        ds = f[name]
    except (OSError, RuntimeError, KeyError) as exc:
        raise _store_error(
            path, "/" + name, f"cannot be opened: the file is damaged: {exc}"
        ) from None
    if not isinstance(ds, h5py.Dataset):
        raise _store_error(path, "/" + name, "missing dataset")
    if dtype is not None and ds.dtype != dtype:
        raise _store_error(
            path, "/" + name, f"has dtype {ds.dtype}, expected {np.dtype(dtype).name}"
        )
    if ds.ndim != ndim:
        raise _store_error(path, "/" + name, f"has {ds.ndim} dimensions, expected {ndim}")
    return ds


def open_store(path, *, check_values=True):
    """Opens and validates a sequence store.

    Args:
        path: the store file.
        check_values: scan every value for NaN / inf (and stroke-3 pen values
            other than 0 / 1). Defaults to `True`.

    Returns:
        A `SequenceStore`; close it, or use it as a context manager.

    Raises:
        StoreError: naming the file and the field, if the file is missing, not
            HDF5 (for example truncated), lacks a dataset, has a wrong dtype,
            non-monotone offsets, non-finite values, or a newer
            `format_version`.
    """
    return SequenceStore(path, check_values=check_values)


def describe_lengths(lengths):
    """One line summarising sequence lengths, the same wherever it is printed.

    Each quantile is a length that occurs in the data: `pq` is the smallest
    length with at least q% of the sequences no longer than it (NumPy's
    `"inverted_cdf"` method), so it is always a whole number of rows.

    Args:
        lengths: array-like of sequence lengths (for example `store.lengths`).

    Returns:
        A str such as `"min 3, p5 10, median 40, p95 120, max 1,300"`, or
        `"no sequences"` for an empty array.

    Example:

    ```python
    with open_store("kanji.h5") as store:
        print("lengths:  ", describe_lengths(store.lengths))
    ```
    """
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        return "no sequences"
    q = [percent for percent, _ in _LENGTH_QUANTILES]
    values = np.percentile(lengths, q, method="inverted_cdf")
    return ", ".join(
        f"{name} {int(v):,}" for (_, name), v in zip(_LENGTH_QUANTILES, values)
    )


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
        self._tmp = _temp_path(self.path)
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

    def commit(self):
        """Finishes the store and moves it onto `path` atomically.

        Returns:
            The store's `pathlib.Path`.

        Raises:
            ValueError: if no sequence was added or the train split is empty
                (statistics come from the train split). The temporary file is
                removed and `path` left as it was.
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
            mean, std = _train_stats(f[_VALUES], f[_OFFSETS][:], splits["train"], self.kind,
                                     self.path)
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


def _temp_path(path):
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates the file private (0600); give the store the permissions a
    # plainly created file would get (0666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


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
    d = formats.n_continuous(kind, values.shape[1])
    width = 1 if kind == "stroke3" else d
    is_train = np.zeros(len(offsets) - 1, dtype=bool)
    is_train[train] = True
    count, mean, m2 = 0, np.zeros(width), np.zeros(width)
    for start in range(0, values.shape[0], _SCAN_ROWS):
        block = values[start : start + _SCAN_ROWS]
        rows = np.arange(start, start + len(block))
        keep = is_train[np.searchsorted(offsets, rows, side="right") - 1]
        x = block[keep, :d].astype(np.float64).reshape(-1, width)
        if len(x) == 0:
            continue
        n_b, mean_b = len(x), x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        delta = mean_b - mean
        total = count + n_b
        mean = mean + delta * n_b / total
        m2 = m2 + m2_b + delta**2 * count * n_b / total
        count = total
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


# ----------------------------------------------------------------------------
# Training pipelines
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExampleCount:
    """How many training examples a split yields (see `count_examples`).

    Attributes:
        sequences: sequences in the split.
        used: sequences long enough to give at least one example.
        skipped: sequences too short (fewer than `window + 1` rows in window
            mode, fewer than 2 in whole-sequence next-step mode).
        examples: drawings, sequences or windows per epoch.
    """

    sequences: int
    used: int
    skipped: int
    examples: int


@dataclasses.dataclass
class _Plan:
    """What the batch generator reads, computed once from the store.

    The split's examples are grouped into *chunks* in file order: in drawing
    and whole-sequence modes a chunk is one sequence; in window mode it is a
    run of at most `block_rows // stride` consecutive windows of one sequence,
    so a very long stream is read piece by piece. Chunks whose first row falls
    in the same `block_rows`-aligned stretch of the file form a block, read
    with one contiguous HDF5 read of at most about `2 * block_rows` rows (or
    one whole sequence, if longer).
    """

    path: Path
    n_columns: int
    codec: formats.RowCodec  # data rows -> model input rows and targets
    mode: str  # "categorical", "bernoulli", "window" or "next"
    stride: int | None  # window mode: rows between window starts
    span: int | None  # window mode: rows per window (window + 1)
    row0: np.ndarray  # first row of each chunk, increasing
    size: np.ndarray  # rows per sequence (whole modes) or windows per chunk (window mode)
    block_bounds: np.ndarray  # block b = chunks block_bounds[b]:block_bounds[b + 1]
    augment: "Augmentation | None" = None  # drawings only: random changes per example

    def rows(self, lo, hi):
        """The file rows `[first, end)` covering chunks `lo:hi`."""
        last = hi - 1
        extent = (
            (self.size[last] - 1) * self.stride + self.span
            if self.mode == "window"
            else self.size[last]
        )
        return int(self.row0[lo]), int(self.row0[last] + extent)

    def examples(self, lo, hi, shift):
        """Example starts (rows shifted by `shift`) and lengths of chunks `lo:hi`."""
        row0, size = self.row0[lo:hi] + shift, self.size[lo:hi]
        if self.mode != "window":
            return row0, size
        first = np.cumsum(size) - size
        k = np.arange(size.sum()) - np.repeat(first, size)  # window index in its chunk
        return np.repeat(row0, size) + k * self.stride, np.full(size.sum(), self.span)


def _usable(lengths, mode, window, max_seq_len=None):
    if mode == "window":
        return lengths >= window + 1
    short_enough = True if max_seq_len is None else lengths <= max_seq_len
    if mode == "next":
        return (lengths >= 2) & short_enough
    return (lengths >= 1) & short_enough


def _check_max_seq_len(max_seq_len, mode):
    if max_seq_len is None:
        return
    if isinstance(max_seq_len, bool) or not isinstance(max_seq_len, (int, np.integer)) or max_seq_len < 1:
        raise ValueError(
            "Received an invalid value for `max_seq_len`, expected a positive integer or None. "
            f"Received: max_seq_len={max_seq_len!r}"
        )
    if mode == "window":
        raise ValueError("`max_seq_len` filters whole sequences; windows already have a fixed length.")


def _n_windows(lengths, window, stride):
    return (lengths - window - 1) // stride + 1


def _resolve_mode(kind, pen, window, stride):
    if kind == "stroke3":
        if pen not in PEN_MODES:
            raise ValueError(
                f"A stroke3 store needs `pen` in {PEN_MODES} (stroke-5 categorical or "
                f"stroke-3 Bernoulli targets). Received: pen={pen!r}"
            )
        if window is not None:
            raise ValueError(
                "Drawings are fed whole; `window` applies to touch / impsy stores. "
                f"Received: window={window!r}"
            )
        return pen
    if pen is not None:
        raise ValueError(
            f"`pen` applies to stroke3 stores only; this store's kind is {kind!r}. "
            f"Received: pen={pen!r}"
        )
    if window is None:
        if stride is not None:
            raise ValueError(f"`stride` needs a `window`. Received: stride={stride!r}")
        return "next"
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(
            "Received an invalid value for `window`, expected a positive integer or "
            f"None. Received: window={window!r}"
        )
    if stride is not None and (not isinstance(stride, (int, np.integer)) or stride < 1):
        raise ValueError(
            "Received an invalid value for `stride`, expected a positive integer. "
            f"Received: stride={stride!r}"
        )
    return "window"


def count_examples(store, split, *, pen=None, window=None, stride=None, max_seq_len=None):
    """Counts the examples `make_dataset` yields per epoch, and what it skips.

    Args:
        store: a `SequenceStore` or a path to one.
        split: `"train"`, `"valid"` or `"test"`.
        pen, window, stride, max_seq_len: as for `make_dataset`.

    Returns:
        An `ExampleCount`.

    Raises:
        ValueError: for arguments that do not fit the store's kind.
    """
    if not isinstance(store, SequenceStore):
        with open_store(store, check_values=False) as opened:
            return count_examples(opened, split, pen=pen, window=window, stride=stride, max_seq_len=max_seq_len)
    mode = _resolve_mode(store.kind, pen, window, stride)
    _check_max_seq_len(max_seq_len, mode)
    lengths = _split_lengths(store.offsets, store.split(split))
    usable = _usable(lengths, mode, window, max_seq_len)
    lengths = lengths[usable]
    if mode == "window":
        examples = _n_windows(lengths, window, stride or window).sum()
    else:
        examples = len(lengths)
    return ExampleCount(
        sequences=len(usable),
        used=len(lengths),
        skipped=int((~usable).sum()),
        examples=int(examples),
    )


def _plan(store, split, mode, window, stride, block_rows, max_seq_len=None, augment=None):
    indices = store.split(split)
    lengths = _split_lengths(store.offsets, indices)
    usable = _usable(lengths, mode, window, max_seq_len)
    if not usable.all():
        indices, lengths = indices[usable], lengths[usable]
    del usable
    row0 = store.offsets[indices]
    size = lengths
    if mode == "window":
        # Cut each sequence's windows into chunks of at most per_chunk windows.
        per_chunk = max(1, block_rows // stride)
        n = _n_windows(lengths, window, stride)  # windows per sequence
        chunks = -(-n // per_chunk)  # chunks per sequence
        seq = np.repeat(np.arange(len(n)), chunks)
        k = np.arange(len(seq)) - np.repeat(np.cumsum(chunks) - chunks, chunks)
        row0 = row0[seq] + k * per_chunk * stride
        size = np.minimum(per_chunk, n[seq] - k * per_chunk).astype(np.int32)
        del n, chunks, seq, k
    del indices, lengths
    return _Plan(
        path=store.path,
        n_columns=len(store.columns),
        codec=formats.RowCodec(
            store.kind,
            store.n_continuous,
            mode if mode in PEN_MODES else None,
            store.mean.astype(np.float32),
            store.std.astype(np.float32),
        ),
        mode=mode,
        stride=stride,
        span=None if window is None else window + 1,
        row0=row0,
        size=size,
        block_bounds=_block_bounds(row0, block_rows),
        augment=augment,
    )


def _block_bounds(row0, block_rows):
    """Chunk indices where a new block starts: where `row0 // block_rows` changes.

    Computed in slices to keep temporaries small. Returns `[0, ..., len(row0)]`.
    """
    bounds = [np.zeros(1, dtype=np.int64)]
    for start in range(0, len(row0), _SCAN_ROWS):
        block = row0[max(0, start - 1) : start + _SCAN_ROWS] // block_rows
        changes = np.flatnonzero(block[1:] != block[:-1]) + max(1, start)
        bounds.append(changes)
    bounds.append(np.array([len(row0)], dtype=np.int64))
    return np.concatenate(bounds)


def _batches(plan, batch_size, shuffle, drop_remainder, shuffle_blocks, seed):
    """Yields `(inputs, targets, weights)` NumPy batches for one epoch."""
    rng = np.random.default_rng(seed)
    n_blocks = len(plan.block_bounds) - 1
    order = rng.permutation(n_blocks) if shuffle else np.arange(n_blocks)
    carry = np.zeros((0, plan.n_columns), dtype=np.float32)
    carry_starts = carry_lengths = np.zeros(0, dtype=np.int64)
    with h5py.File(plan.path, "r") as f:
        values = f[_VALUES]
        for g in range(0, n_blocks, shuffle_blocks):
            parts, starts, lengths = [carry], [carry_starts], [carry_lengths]
            base = len(carry)
            for b in order[g : g + shuffle_blocks]:
                lo, hi = plan.block_bounds[b], plan.block_bounds[b + 1]
                first, end = plan.rows(lo, hi)
                parts.append(_read(values, slice(first, end), plan.path))  # one contiguous read
                ex_starts, ex_lengths = plan.examples(lo, hi, base - first)
                starts.append(ex_starts)
                lengths.append(ex_lengths)
                base += end - first
            rows = np.concatenate(parts)
            starts, lengths = np.concatenate(starts), np.concatenate(lengths)
            if shuffle:
                perm = rng.permutation(len(starts))
                starts, lengths = starts[perm], lengths[perm]
            n_full = len(starts) // batch_size
            for k in range(n_full):
                batch = slice(k * batch_size, (k + 1) * batch_size)
                yield _make_batch(plan, rows, starts[batch], lengths[batch], rng)
            rest = slice(n_full * batch_size, None)
            carry_lengths = lengths[rest]
            carry = np.concatenate(
                [rows[s : s + n] for s, n in zip(starts[rest], carry_lengths)]
                or [np.zeros((0, plan.n_columns), dtype=np.float32)]
            )
            carry_starts = np.cumsum(carry_lengths) - carry_lengths
    if len(carry_starts) and not drop_remainder:
        yield _make_batch(plan, carry, carry_starts, carry_lengths, rng)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """sketch-rnn's data augmentation for drawings, drawn afresh for every example.

    Args:
        scale: Each drawing's dx and dy are multiplied by two independent factors drawn
            uniformly from `[1 - scale, 1 + scale]` (sketch-rnn uses 0.15). Defaults to 0.
        drop_points: Each point whose pen stays down before and after it (not a stroke's
            first or last point, nor the drawing's last) is dropped with this probability,
            its offset added to the next point's, so the line keeps its end points
            (sketch-rnn's `augment_strokes`, which uses 0.1). Defaults to 0.

    Raises:
        ValueError: If a value is outside [0, 1).
    """

    scale: float = 0.0
    drop_points: float = 0.0

    def __post_init__(self):
        for name in ("scale", "drop_points"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(
                    f"Received an invalid value for `{name}`, expected a number in [0, 1). "
                    f"Received: {name}={value!r}"
                )

    def __bool__(self):
        return bool(self.scale or self.drop_points)

    def apply(self, drawing, rng):
        """One augmented copy of a stroke-3 drawing `(n, 3)` (data units)."""
        drawing = drawing.copy()
        if self.drop_points and len(drawing) > 2:
            pen = drawing[:, 2] >= 0.5
            # Point i may go if the pen is down after i - 1 and after i, and i is not last.
            candidates = np.zeros(len(drawing), bool)
            candidates[1:-1] = ~pen[:-2] & ~pen[1:-1]
            drop = candidates & (rng.random(len(drawing)) < self.drop_points)
            for i in np.flatnonzero(drop):  # increasing: a run of drops carries forward
                drawing[i + 1, :2] += drawing[i, :2]
            drawing = drawing[~drop]
        if self.scale:
            drawing[:, :2] *= rng.uniform(1 - self.scale, 1 + self.scale, 2).astype(drawing.dtype)
        return drawing


def _make_batch(plan, rows, starts, lengths, rng=None):
    """Pads raw examples to the longest and converts them to model rows.

    Rows go through the row codec (`plan.codec`, see `mdnrnn.formats`): model inputs,
    start rows and targets are encoded there and nowhere else.
    """
    if plan.augment:
        examples = [plan.augment.apply(rows[s : s + n], rng) for s, n in zip(starts, lengths)]
        lengths = np.array([len(e) for e in examples], np.int64)
        starts = np.cumsum(lengths) - lengths
        rows = np.concatenate(examples)
    t = int(lengths.max())
    steps = np.arange(t)
    real = steps[None, :] < lengths[:, None]  # [B, T]
    index = np.minimum(starts[:, None] + steps[None, :], len(rows) - 1)
    codec = plan.codec
    model = codec.encode(rows[index])  # [B, T, F_in]
    raw = codec.targets(rows[index])  # [B, T, C]
    model[~real] = 0.0
    raw[~real] = 0.0
    b = len(starts)
    if plan.mode == "categorical":
        # inputs: start token + stroke-5 rows; targets: (dx, dy, class) + end row.
        inputs = np.concatenate([np.tile(codec.start_row, (b, 1, 1)), model], 1)
        targets = np.zeros((b, t + 1, 3), dtype=np.float32)
        targets[:, :t] = raw
        targets[np.arange(b), lengths, 2] = formats.END_OF_DRAWING
        weights = np.arange(t + 1)[None, :] < (lengths + 1)[:, None]
    elif plan.mode == "bernoulli":
        # inputs: start row (0, 0, 1) + rows [:-1]; targets: the rows.
        inputs = np.concatenate([np.tile(codec.start_row, (b, 1, 1)), model[:, :-1]], 1)
        inputs[~real] = 0.0
        targets = raw
        weights = real
    else:  # next-step prediction over windows or whole sequences
        inputs, targets = model[:, :-1], raw[:, 1:]
        weights = real[:, 1:]
        inputs = inputs * weights[..., None]
    return inputs, targets, weights.astype(np.float32)


def make_dataset(
    store,
    split,
    batch_size,
    *,
    pen=None,
    window=None,
    stride=None,
    shuffle=True,
    seed=0,
    drop_remainder=False,
    block_rows=1 << 16,
    shuffle_blocks=8,
    max_seq_len=None,
    augment=None,
):
    """A `tf.data.Dataset` of `(inputs, targets, weights)` batches from a store.

    Sequences stream from the file: each epoch reads the split in blocks, one
    contiguous HDF5 read of up to about `2 * block_rows` rows each (a longer
    drawing or sequence is read whole; long streams in window mode are cut
    into pieces); with `shuffle`, the block order is drawn at random and the
    examples of `shuffle_blocks` blocks at a time are shuffled together. Rows
    in memory stay bounded by about `2 * shuffle_blocks * block_rows`
    whatever the store's size; the bookkeeping takes about 12 bytes per
    drawing (or run of windows) in the split. Every continuous column is
    normalised with the store's train statistics. Each epoch (each new
    iterator) draws a new order from `(seed, epoch)`, so two datasets made
    with the same seed give the same batches.

    Modes (see `mdnrnn.formats` for the row formats):

    - stroke-3 store, `pen="categorical"` (stroke-5 model): a drawing of `n`
      points gives inputs `(n + 1, 5)` = start token `(0, 0, 1, 0, 0)` then
      the `n` stroke-5 rows, and targets `(n + 1, 3)` = `(dx, dy, pen_class)`
      for the `n` points (class 0 pen down, 1 pen lifts after this point)
      then an end row `(0, 0, 2)`. So `inputs[t + 1, :2] == targets[t, :2]`.
    - stroke-3 store, `pen="bernoulli"` (stroke-3 model): inputs `(n, 3)` =
      `(0, 0, 1)` then rows `[:-1]`; targets `(n, 3)` = the rows.
    - touch / impsy store with `window=w`: every `stride`-th window of `w + 1`
      consecutive rows of one sequence; inputs = window `[:-1]`, targets =
      window `[1:]`. Sequences shorter than `w + 1` rows are skipped and
      counted (logged; see `count_examples`).
    - touch / impsy store with `window=None`: whole sequences (at least 2
      rows), inputs = rows `[:-1]`, targets = rows `[1:]`.

    Batches are padded to their longest example: all-zero rows in inputs
    (what `keras.layers.Masking(mask_value=0.0)` treats as padding), zero rows
    in targets, and `weights` is 1.0 on real steps and 0.0 on padding. Note
    that in Bernoulli mode a real stroke-3 row `(0, 0, 0)` (a repeated point,
    or a stroke starting where the previous one ended; rare) is
    indistinguishable from padding for a masking layer; stroke-5 inputs and
    touch windows have no such ambiguity.

    Args:
        store: a `SequenceStore` or the path of a store file.
        split: `"train"`, `"valid"` or `"test"`.
        batch_size: examples per batch.
        pen: `"categorical"` or `"bernoulli"` for stroke-3 stores; `None`
            (the default) for touch / impsy stores.
        window: window length (time steps per example) for touch / impsy
            stores; `None` (the default) feeds whole sequences.
        stride: step between window starts; defaults to `window` (each row is
            a target about once per epoch). `1` gives every window.
        shuffle: shuffle blocks and examples each epoch. Defaults to `True`.
        seed: seed of the shuffling. Defaults to 0.
        drop_remainder: drop the last, smaller batch. Defaults to `False`.
        block_rows: rows per contiguous read. Defaults to 65,536.
        shuffle_blocks: blocks whose examples are shuffled together.
            Defaults to 8.
        max_seq_len: whole-sequence modes: leave out sequences longer than
            this many rows (sketch-rnn's filter), counted as skipped.
            Defaults to `None` (no limit).
        augment: drawings only: an `Augmentation` applied to every example
            as it is batched (random scale, point dropping). Defaults to `None`.

    Returns:
        A prefetching `tf.data.Dataset` with known cardinality (batches per
        epoch), of float32 tuples `(inputs, targets, weights)` shaped
        `[B, T, F_in]`, `[B, T, F_out]` and `[B, T]`.

    Raises:
        StoreError: if the store file is invalid.
        ValueError: for an unknown split, arguments that do not fit the
            store's kind, or a split with no examples.

    Example:

    ```python
    ds = make_dataset("kanji.h5", "train", 100, pen="categorical", seed=1)
    model.fit(ds, epochs=10)  # (inputs, targets, sample weights)
    ```
    """
    # TensorFlow is imported here so that the store (and data_prep) work
    # without loading it.
    import tensorflow as tf

    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(
            "Received an invalid value for `batch_size`, expected a positive integer. "
            f"Received: batch_size={batch_size!r}"
        )
    if not isinstance(store, SequenceStore):
        with open_store(store) as opened:
            return make_dataset(
                opened, split, batch_size, pen=pen, window=window, stride=stride,
                shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
                block_rows=block_rows, shuffle_blocks=shuffle_blocks,
                max_seq_len=max_seq_len, augment=augment,
            )
    mode = _resolve_mode(store.kind, pen, window, stride)
    if augment and mode not in PEN_MODES:
        raise ValueError(f"`augment` applies to drawings (stroke3 stores); this store's kind is {store.kind!r}.")
    stride = stride or window
    store.require_split(split)
    counts = count_examples(store, split, pen=pen, window=window, stride=stride, max_seq_len=max_seq_len)
    if counts.examples == 0:
        raise ValueError(
            f"{store.path}: split {split!r} has no examples ({counts.sequences} sequences, "
            f"{counts.skipped} too short for window={window})"
        )
    if counts.skipped:
        logger.info(
            "%s: split %r: skipped %d of %d sequences shorter than %d rows",
            store.path, split, counts.skipped, counts.sequences,
            window + 1 if mode == "window" else 2,
        )
    plan = _plan(store, split, mode, window, stride, block_rows, max_seq_len, augment or None)
    n_batches = (
        counts.examples // batch_size
        if drop_remainder
        else -(-counts.examples // batch_size)
    )
    epochs = itertools.count()

    def generate():
        yield from _batches(
            plan, batch_size, shuffle, drop_remainder, shuffle_blocks, [seed, next(epochs)]
        )

    c = plan.n_columns
    f_in, f_out = {"categorical": (5, 3), "bernoulli": (3, 3)}.get(mode, (c, c))
    signature = (
        tf.TensorSpec((None, None, f_in), tf.float32),
        tf.TensorSpec((None, None, f_out), tf.float32),
        tf.TensorSpec((None, None), tf.float32),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_batches))
    return dataset.prefetch(tf.data.AUTOTUNE)
