"""Reading the HDF5 sequence store: `open_store`, `SequenceStore`, `StoreError`.

A store holds a whole dataset of variable-length sequences (drawings or
performances) in one HDF5 file; the layout is documented in `docs/store.md`.
`open_store` validates the file and raises `StoreError` naming the file and the
field at fault; a damaged file (checksum mismatch) or a truncated one is a
`StoreError` too. Sequences are read lazily.
"""

import functools
from pathlib import Path

import h5py
import numpy as np

from mdnrnn import formats

# Version 2 adds checksums everywhere (HDF5 1.10 file format, Fletcher-32 on
# every dataset) and fixed-length UTF-8 strings; version 1 files still open.
FORMAT_VERSION = 2
SPLITS = ("train", "valid", "test")

_VALUES = "sequences/values"
_OFFSETS = "sequences/offsets"
_LABELS = "sequences/labels"
_MEAN = "stats/mean"
_STD = "stats/std"
# Rows read at a time when scanning the whole of /sequences/values.
_SCAN_ROWS = 1 << 20
# Quantiles printed by `describe_lengths`, in percent.
_LENGTH_QUANTILES = ((0, "min"), (5, "p5"), (50, "median"), (95, "p95"), (100, "max"))


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

