"""Sharded stores: a directory of store files with an `index.json`, and several stores read as one.

A shard directory, written by `ShardWriter` / `write_shards` (or `mdnrnn prep ...
--shard-size N`), looks like this (`docs/store.md`, section *Shards*, has the details):

    DIR/
      .mdnrnn            the marker of directories mdnrnn made (see `mdnrnn.outdir`)
      index.json         kind, columns, the shards, their counts, the statistics
      shard-00000.h5     sequences 0 .. N-1: an ordinary store
      shard-00001.h5     sequences N .. 2N-1
      ...

Splits are drawn once over the whole dataset, with the seeded rule of a single store,
and the normalisation statistics are computed over the train split of all shards: the
shards of a dataset hold exactly the sequences, splits and statistics that
`write_store` would put in one file (each shard stores the whole dataset's statistics,
so a shard opened alone normalises like the whole).

`open_stores(spec)` reads one store file, a shard directory, a list of store files or a
glob (`"shards/*.h5"`) as one `StoreSet`; `make_dataset` and `count_examples` take
these specs too.

Example:

```python
from mdnrnn import data

data.write_shards("perf", performances, kind="touch", shard_size=1000)
with data.open_stores("perf") as stores:
    print(stores, stores.mean, stores.std)
ds = data.make_dataset("perf", "train", 64, window=50)
```
"""

import contextlib
import functools
import glob
import json
import os
from pathlib import Path

import numpy as np

from mdnrnn import atomic, outdir
from mdnrnn.data.store import _SCAN_ROWS, SPLITS, StoreError, _read, open_store
from mdnrnn.data.writer import StoreWriter, _add_all, _merge_moments, _stats_from_moments, _train_moments

INDEX = "index.json"
INDEX_FORMAT = "mdnrnn-shards"
INDEX_VERSION = 1
SHARD_NAME = "shard-{:05d}.h5"
# Each store of a `StoreSet` keeps its file open: at most this many are read together.
MAX_STORES = 1000
# The whole dataset while a shard directory is being written (inside its hidden folder).
_STAGING = "whole.h5"
# Union statistics of plain store files, by (path, size, mtime) of each: training opens
# the same files several times (config, train and valid pipelines).
_STATS_CACHE = {}


# ---------------------------------------------------------------------- writing
class ShardWriter:
    """Writes a shard directory atomically, one sequence at a time.

    Sequences go into one temporary store (a `StoreWriter`) inside a hidden folder beside
    `directory`; `commit()` draws the splits and computes the statistics there, exactly as
    for a single store, cuts it into shards of `shard_size` sequences (each a store with
    the whole dataset's statistics), writes `index.json` and renames the folder into place
    (see `mdnrnn.outdir.building`). An exception inside the `with` block, or `abort()`,
    removes the hidden folder: nothing is left, and an existing `directory` is untouched.

    Args:
        directory: the shard directory to create.
        kind: `"stroke3"`, `"touch"` or `"impsy"`.
        shard_size: sequences per shard (the last shard may hold fewer), a positive integer.
        columns, source, licence, seed, valid_fraction, test_fraction: as for `StoreWriter`.
        overwrite: replace an existing directory made by mdnrnn (one with the `.mdnrnn`
            marker). Defaults to `False`.

    Raises:
        FileExistsError: if `directory` exists and `overwrite` is `False`, or it is not a
            directory made by mdnrnn.
        FileNotFoundError: if the parent folder does not exist.
        ValueError: for a bad `shard_size` or any `StoreWriter` argument.

    Example:

    ```python
    with ShardWriter("kanji", kind="stroke3", shard_size=5000) as writer:
        for drawing in drawings:
            writer.add(drawing)
    ```
    """

    def __init__(self, directory, *, kind, shard_size, columns=None, source="", licence="",
                 seed=0, valid_fraction=0.05, test_fraction=0.05, overwrite=False):
        if isinstance(shard_size, bool) or not isinstance(shard_size, (int, np.integer)) or shard_size < 1:
            raise ValueError(
                "Received an invalid value for `shard_size`, expected a positive integer. "
                f"Received: shard_size={shard_size!r}"
            )
        self.path = Path(directory)
        self.shard_size = int(shard_size)
        self._open = True  # until committed or aborted
        self._building = contextlib.ExitStack()
        self._work = self._building.enter_context(outdir.building(self.path, "shards", force=overwrite))
        try:
            self._whole = StoreWriter(
                self._work / _STAGING, kind=kind, columns=columns, source=source, licence=licence,
                seed=seed, valid_fraction=valid_fraction, test_fraction=test_fraction,
            )
        except BaseException:
            self.abort()
            raise

    def __len__(self):
        """Number of sequences added so far."""
        return len(self._whole)

    def add(self, sequence, *, label=None, split=None):
        """Adds one sequence; see `StoreWriter.add`."""
        return self._whole.add(sequence, label=label, split=split)

    def commit(self):
        """Writes the shards and `index.json` and moves the directory into place.

        Returns:
            The directory's `pathlib.Path`.

        Raises:
            ValueError: as `StoreWriter.commit` (no sequences, empty train split), or if
                the shards would be more than `MAX_STORES`. Nothing is left behind.
        """
        try:
            whole_path = self._whole.commit()
            with open_store(whole_path, check_values=False) as whole:
                n_shards = -(-len(whole) // self.shard_size)
                if n_shards > MAX_STORES:
                    raise ValueError(
                        f"{self.path}: {len(whole):,} sequences in shards of {self.shard_size:,} "
                        f"make {n_shards:,} shards, more than the {MAX_STORES:,} read together; "
                        f"choose a shard size of at least {-(-len(whole) // MAX_STORES):,}"
                    )
                codes = _split_codes(whole)
                shards = [self._write_shard(whole, codes, k) for k in range(n_shards)]
                index = _make_index(whole, shards, self.shard_size)
            whole_path.unlink()
            atomic.write_atomically(self._work / INDEX, (json.dumps(index, indent=2) + "\n").encode())
        except BaseException:
            self.abort()
            raise
        self._open = False
        self._building.close()  # the hidden folder takes the directory's place
        return self.path

    def _write_shard(self, whole, codes, k):
        """Writes shard `k` (sequences `k * shard_size` onwards) and returns its index entry."""
        lo, hi = k * self.shard_size, min((k + 1) * self.shard_size, len(whole))
        name = SHARD_NAME.format(k)
        writer = StoreWriter(self._work / name, kind=whole.kind, columns=whole.columns,
                             source=whole.source, licence=whole.licence, seed=whole.seed)
        try:
            for start, stop in _sequence_blocks(whole.offsets, lo, hi):
                bounds = whole.offsets[start : stop + 1]  # rows of this run of sequences
                rows = _read(whole._values, slice(bounds[0], bounds[-1]), whole.path)
                labels = whole._read_labels(slice(start, stop)) if whole.labelled else None
                for i in range(start, stop):
                    writer.add(rows[bounds[i - start] - bounds[0] : bounds[i - start + 1] - bounds[0]],
                               label=None if labels is None else labels[i - start],
                               split=SPLITS[codes[i]])
            writer.commit(stats=(whole.mean, whole.std))
        except BaseException:
            writer.abort()
            raise
        return {
            "file": name,
            "sequences": hi - lo,
            "points": int(whole.offsets[hi] - whole.offsets[lo]),
            "splits": {s: int(np.sum(codes[lo:hi] == n)) for n, s in enumerate(SPLITS)},
        }

    def abort(self):
        """Discards everything written; an existing directory is left as it was."""
        self._open = False
        whole = getattr(self, "_whole", None)
        if whole is not None:
            whole.abort()
        self._building.__exit__(_Discarded, _Discarded(), None)  # removes the hidden folder

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        elif self._open:  # not yet committed or aborted inside the block
            self.commit()


class _Discarded(Exception):
    """Thrown into `outdir.building` to make it remove its hidden folder."""


def write_shards(directory, sequences, *, kind, shard_size, columns=None, labels=None, splits=None,
                 source="", licence="", seed=0, valid_fraction=0.05, test_fraction=0.05,
                 overwrite=False):
    """Writes a whole shard directory in one call (atomically, see `ShardWriter`).

    Args:
        directory: the shard directory to create.
        sequences, kind, columns, labels, splits, source, licence, seed, valid_fraction,
            test_fraction: as for `write_store`.
        shard_size: sequences per shard.
        overwrite: replace an existing directory made by mdnrnn. Defaults to `False`.

    Returns:
        The directory's `pathlib.Path`.
    """
    writer = ShardWriter(directory, kind=kind, shard_size=shard_size, columns=columns, source=source,
                         licence=licence, seed=seed, valid_fraction=valid_fraction,
                         test_fraction=test_fraction, overwrite=overwrite)
    with writer:
        _add_all(writer, sequences, labels, splits)
    return writer.path


def _split_codes(store):
    """Int8 array `(n_sequences,)`: each sequence's index in `SPLITS`."""
    codes = np.zeros(len(store), dtype=np.int8)
    for n, name in enumerate(SPLITS):
        codes[store.split(name)] = n
    return codes


def _sequence_blocks(offsets, lo, hi):
    """Yields `(start, stop)`: runs of sequences in `[lo, hi)` of at most about `_SCAN_ROWS`
    rows (at least one sequence each), so that copying reads in bounded memory."""
    start = lo
    while start < hi:
        stop = int(np.searchsorted(offsets, offsets[start] + _SCAN_ROWS, side="right")) - 1
        stop = min(max(stop, start + 1), hi)
        yield start, stop
        start = stop


def _make_index(whole, shards, shard_size):
    return {
        "format": INDEX_FORMAT,
        "format_version": INDEX_VERSION,
        "kind": whole.kind,
        "columns": list(whole.columns),
        "source": whole.source,
        "licence": whole.licence,
        "seed": whole.seed,
        "shard_size": shard_size,
        "sequences": len(whole),
        "points": whole.n_points,
        "splits": {s: sum(shard["splits"][s] for shard in shards) for s in SPLITS},
        "stats": {"mean": whole.mean.tolist(), "std": whole.std.tolist()},
        "shards": shards,
    }


# ---------------------------------------------------------------------- reading
class StoreSet:
    """Several stores of one kind and columns, read as one; open it with `open_stores`.

    Sequences are numbered across the stores in order: the first store's, then the
    second's, and so on (for a shard directory, the numbering of the dataset it was cut
    from). The API follows `SequenceStore`'s where it makes sense for several files.

    Attributes:
        path: what was opened, for messages: the file, the directory, the pattern or the
            list of paths.
        stores: the `SequenceStore`s, in order.
        paths: their paths.
        index: the parsed `index.json` of a shard directory, else `None`.
        kind, columns, n_continuous: shared by every store.
        mean, std: float64 arrays `(D,)`: the store's own for one file, the index's for a
            shard directory, otherwise computed over the union of the train splits of
            every store (as one store of all their sequences would compute them).
        lengths: int64 array `(n_sequences,)` of every sequence's length.
    """

    def __init__(self, stores, *, path, stats=None, index=None):
        self.stores = list(stores)
        self.path = path
        self.index = index
        self.paths = [s.path for s in self.stores]
        first = self.stores[0]
        self.kind, self.columns, self.n_continuous = first.kind, first.columns, first.n_continuous
        self._bases = np.cumsum([0] + [len(s) for s in self.stores])
        if stats is not None:
            self.__dict__["_stats"] = tuple(np.asarray(v, dtype=np.float64) for v in stats)

    @functools.cached_property
    def _stats(self):
        return _union_stats(self)

    @property
    def mean(self):
        return self._stats[0]

    @property
    def std(self):
        return self._stats[1]

    def __len__(self):
        return int(self._bases[-1])

    @property
    def n_points(self):
        """Total number of rows over all sequences."""
        return sum(s.n_points for s in self.stores)

    @functools.cached_property
    def lengths(self):
        """Int64 array `(n_sequences,)` of sequence lengths."""
        return np.concatenate([s.lengths for s in self.stores])

    @property
    def labelled(self):
        """Whether every store has per-sequence labels."""
        return all(s.labelled for s in self.stores)

    @functools.cached_property
    def labels(self):
        """Array of str `(n_sequences,)`, or `None` unless every store is labelled."""
        return np.concatenate([s.labels for s in self.stores]) if self.labelled else None

    @property
    def split_names(self):
        """Names of the splits present in any store, in `SPLITS` order."""
        return tuple(name for name in SPLITS if any(name in s.split_names for s in self.stores))

    def split(self, name):
        """Sorted int64 indices (numbered across the stores) of the sequences in split `name`."""
        return np.concatenate([s.split(name) + base for s, base in zip(self.stores, self._bases)])

    def require_split(self, name):
        """The split's indices; raises `StoreError` if no store has a sequence in it."""
        indices = self.split(name)
        if len(indices) == 0:
            raise StoreError(
                f"{self.path} has no {name} split in any of its {len(self.stores)} stores; "
                f"rebuild them with sequences in {name}"
            )
        return indices

    def __getitem__(self, index):
        """Reads sequence `index` (numbered across the stores)."""
        n = len(self)
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"Store indices must be integers. Received: {index!r}")
        if not -n <= index < n:
            raise IndexError(f"Sequence index {index} out of range for {n} sequences")
        index = int(index) % n
        k = int(np.searchsorted(self._bases, index, side="right")) - 1
        return self.stores[k][index - int(self._bases[k])]

    def files_for(self, worker, workers):
        """The store files worker `worker` of `workers` reads when input is sharded by file.

        Files are dealt out in turn: worker `i` gets files `i`, `i + workers`, ... (the
        order of `paths`), so no two workers read the same file and together they read
        them all. The part keeps this set's statistics (the whole dataset's), so every
        worker normalises alike. It shares this set's open files: close this set, not
        the part.

        Raises:
            ValueError: for a worker index out of range, or fewer files than workers.
        """
        if not (isinstance(workers, int) and isinstance(worker, int) and 0 <= worker < workers):
            raise ValueError(f"Received an invalid worker {worker!r} of {workers!r}; expected 0 <= worker < workers.")
        if len(self.stores) < workers:
            raise ValueError(
                f"{self.path}: {len(self.stores)} store file(s) cannot be dealt out to {workers} workers; "
                "input sharded by file needs at least one file per worker (write more shards with "
                "`mdnrnn prep ... --shard-size N`, or shard the input by batch)."
            )
        return StoreSet(self.stores[worker::workers], path=self.path, stats=(self.mean, self.std))

    def close(self):
        """Closes every store."""
        for store in self.stores:
            store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        sizes = ", ".join(f"{s}={len(self.split(s))}" for s in self.split_names)
        return (
            f"<StoreSet {str(self.path)!r} stores={len(self.stores)} kind={self.kind} "
            f"sequences={len(self)} points={self.n_points} {sizes}>"
        )


def is_single_store(spec):
    """Whether `spec` names one store file (not a directory, a pattern or a list)."""
    if not isinstance(spec, (str, os.PathLike)):
        return False
    path = Path(spec)
    return not path.is_dir() and (path.exists() or not _is_pattern(spec))


def _is_pattern(spec):
    return any(c in os.fspath(spec) for c in "*?[")


def open_stores(spec, *, check_values=True):
    """Opens one or several stores of one kind and columns as a `StoreSet`.

    Args:
        spec: a store file; a shard directory (with `index.json`); a glob pattern such as
            `"shards/*.h5"` (its matches in sorted order); or a list of any of these.
        check_values: as for `open_store`. Defaults to `True`.

    Returns:
        A `StoreSet`; close it, or use it as a context manager. Its statistics come from
        the store for one file, from `index.json` for one shard directory, and otherwise
        from the union of the stores' train splits (computed when first used).

    Raises:
        StoreError: naming the file and the field, if a store is missing or invalid, the
            stores differ in kind or columns, a pattern matches nothing, a file is named
            twice, there are more than `MAX_STORES`, or `index.json` is invalid or
            disagrees with its shards.
    """
    paths, index, where = _resolve(spec)
    stores = []
    try:
        for path in paths:
            stores.append(open_store(path, check_values=check_values))
        _check_alike(stores)
        stats = None
        if index is not None:
            stats = _check_index(index, Path(where) / INDEX, stores)
        elif len(stores) == 1:
            stats = (stores[0].mean, stores[0].std)
        return StoreSet(stores, path=where, stats=stats, index=index)
    except BaseException:
        for store in stores:
            store.close()
        raise


def _resolve(spec):
    """`(paths, index, where)`: the store files named by `spec`, the index of a single shard
    directory (else `None`), and what to call the whole in messages."""
    single = isinstance(spec, (str, os.PathLike))
    specs = [spec] if single else list(spec)
    if not specs:
        raise StoreError("no store given (an empty list)")
    if len(specs) == 1:
        single, spec = True, specs[0]
    paths, index = [], None
    for item in specs:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"Stores are named by paths or patterns. Received: {item!r}")
        path = Path(item)
        if path.is_dir():
            found = _read_index(path / INDEX)
            paths += [path / shard["file"] for shard in found["shards"]]
            index = found if single else None
        elif not path.exists() and _is_pattern(item):
            matches = sorted(glob.glob(os.fspath(item)))
            if not matches:
                raise StoreError(f"{item}: no file matches this pattern")
            paths += [Path(m) for m in matches]
        else:
            paths.append(path)
    seen = set()
    for path in paths:
        key = os.path.realpath(path)
        if key in seen:
            raise StoreError(f"{path}: named twice among the stores to read")
        seen.add(key)
    if len(paths) > MAX_STORES:
        raise StoreError(
            f"{spec if single else specs[0]}: {len(paths):,} stores, more than the {MAX_STORES:,} "
            "read together (each stays open); write fewer, larger shards"
        )
    if single:
        where = os.fspath(spec)
    else:
        more = f", ... ({len(specs)} in all)" if len(specs) > 3 else ""
        where = ", ".join(map(os.fspath, specs[:3])) + more
    return paths, index, where


def _index_error(path, field, problem):
    return StoreError(f"{path}: {field}: {problem}")


def _read_index(path):
    """The parsed, checked `index.json` at `path` (shapes and types; not yet the shards)."""
    if not path.is_file():
        raise StoreError(
            f"{path.parent}: no {INDEX} (not a shard directory); give store files by their "
            f"paths or a pattern such as {path.parent / '*.h5'}"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # UnicodeDecodeError is a ValueError
        raise StoreError(f"{path}: not readable JSON: {exc}") from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        found = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise _index_error(path, "format", f"expected {INDEX_FORMAT!r}, found {found!r}")
    version = index.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _index_error(path, "format_version", f"invalid value {version!r}")
    if version > INDEX_VERSION:
        raise _index_error(path, "format_version",
                           f"{version} is newer than this mdnrnn reads ({INDEX_VERSION}); upgrade mdnrnn")
    shards = index.get("shards")
    if not isinstance(shards, list) or not shards:
        raise _index_error(path, "shards", "missing or empty")
    for k, shard in enumerate(shards):
        name = shard.get("file") if isinstance(shard, dict) else None
        if not isinstance(name, str) or not name or Path(name).name != name or name.startswith("."):
            raise _index_error(path, f"shards[{k}].file",
                               f"expected a file name in the directory, found {name!r}")
        for key in ("sequences", "points"):
            if not isinstance(shard.get(key), int):
                raise _index_error(path, f"shards[{k}].{key}",
                                   f"expected an integer, found {shard.get(key)!r}")
        splits = shard.get("splits")
        if not isinstance(splits, dict) or any(not isinstance(splits.get(s), int) for s in SPLITS):
            raise _index_error(path, f"shards[{k}].splits",
                               f"expected a count for each of {SPLITS}, found {splits!r}")
    stats = index.get("stats")
    if not isinstance(stats, dict) or not all(isinstance(stats.get(k), list) for k in ("mean", "std")):
        raise _index_error(path, "stats", "expected lists mean and std")
    return index


def _check_index(index, path, stores):
    """Checks `index.json` against its shards; returns its `(mean, std)`."""
    first = stores[0]
    for field, value, expected in (("kind", index.get("kind"), first.kind),
                                   ("columns", index.get("columns"), list(first.columns))):
        if value != expected:
            raise _index_error(path, field, f"{value!r}, but {first.path} holds {expected!r}")
    for k, (shard, store) in enumerate(zip(index["shards"], stores)):
        checks = [("sequences", shard["sequences"], len(store)), ("points", shard["points"], store.n_points)]
        checks += [(f"splits.{s}", shard["splits"][s], len(store.split(s))) for s in SPLITS]
        for field, said, held in checks:
            if said != held:
                raise _index_error(path, f"shards[{k}].{field}", f"says {said}, but {store.path} holds {held}")
    d = first.n_continuous
    stats = []
    for key in ("mean", "std"):
        try:
            values = np.asarray(index["stats"][key], dtype=np.float64)
        except (TypeError, ValueError):
            raise _index_error(path, f"stats.{key}", "expected numbers") from None
        positive = key != "std" or np.all(values > 0)
        if values.shape != (d,) or not np.all(np.isfinite(values)) or not positive:
            must = f"{d} finite values" + (" > 0" if key == "std" else "")
            raise _index_error(path, f"stats.{key}", f"expected {must}, found {index['stats'][key]!r}")
        stats.append(values)
    return tuple(stats)


def _check_alike(stores):
    """Raises `StoreError` unless every store has the first one's kind and columns."""
    first = stores[0]
    for store in stores[1:]:
        if store.kind != first.kind:
            raise StoreError(
                f"{store.path}: attribute kind: {store.kind!r}, but {first.path} is {first.kind!r}; "
                "stores read together must be of one kind"
            )
        if store.columns != first.columns:
            raise StoreError(
                f"{store.path}: attribute columns: {store.columns}, but {first.path} has "
                f"{first.columns}; stores read together must have the same columns"
            )


def _union_stats(store_set):
    """`(mean, std)` over the union of the train splits of a `StoreSet`'s stores."""
    key = tuple((os.path.realpath(p), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in store_set.paths)
    if key not in _STATS_CACHE:
        width = 1 if store_set.kind == "stroke3" else store_set.n_continuous
        moments = (0, np.zeros(width), np.zeros(width))
        for store in store_set.stores:
            train = store.split("train")
            if len(train) == 0:
                continue
            try:
                part = _train_moments(store._values, store.offsets, train, store.kind)
            except (OSError, RuntimeError) as exc:
                raise StoreError(f"{store.path}: /sequences/values: cannot be read: the file is damaged: "
                                 f"{exc}") from None
            moments = _merge_moments(moments, part)
        if moments[0] == 0:
            raise StoreError(f"{store_set.path}: no train sequence in any of its {len(store_set.stores)} "
                             "stores; normalisation statistics need training data")
        _STATS_CACHE[key] = _stats_from_moments(moments, store_set.kind, len(store_set.columns))
    return _STATS_CACHE[key]


