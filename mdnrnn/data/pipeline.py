"""Training pipelines over a sequence store: `make_dataset`, `count_examples`, `Augmentation`.

`make_dataset` streams `(inputs, targets, weights)` batches from the file with
bounded memory; the modes and the streaming are documented in `docs/store.md`.

Legend for shapes: B batch, T time, C columns, D continuous columns.
"""

import collections
import dataclasses
import itertools
import logging
from pathlib import Path

import h5py
import numpy as np

from mdnrnn import formats
from mdnrnn.data.shards import StoreSet, is_single_store, open_stores
from mdnrnn.data.store import _SCAN_ROWS, _VALUES, SequenceStore, _read, open_store

PEN_MODES = ("categorical", "bernoulli")

logger = logging.getLogger(__name__)
# HDF5 files a pipeline over several stores keeps open at once while reading an epoch.
_OPEN_FILES = 16
# `make_dataset(..., bucket=True)`: examples are sorted by length within pools of this many
# batches (a pool of random examples, so batches still differ from epoch to epoch).
BUCKET_POOL = 32


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




@dataclasses.dataclass(frozen=True)
class ExampleCount:
    """How many training examples a split yields (see `count_examples`).

    Attributes:
        sequences: sequences in the split.
        used: sequences long enough to give at least one example.
        skipped: sequences too short (fewer than 2 rows for touch / impsy
            stores: nothing to predict) or filtered out by `max_seq_len`.
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
    span: int | None  # window mode: rows per window (window + 1), fewer at a sequence's end
    row0: np.ndarray  # first row of each chunk, increasing
    size: np.ndarray  # rows per sequence (whole modes) or windows per chunk (window mode)
    end: np.ndarray | None  # window mode: per chunk, the row after its sequence's last
    block_bounds: np.ndarray  # block b = chunks block_bounds[b]:block_bounds[b + 1]
    augment: "Augmentation | None" = None  # drawings only: random changes per example
    input_noise: float = 0.0  # offset targets: noise on the inputs' change columns
    # Tempo-conditioned codecs: the split's sequences' first rows (increasing) and tempos.
    tempo_starts: np.ndarray | None = None
    tempo_values: np.ndarray | None = None

    @property
    def width(self):
        """Columns of the rows batches are cut from: the store's, then the tempo's."""
        return self.n_columns + (self.tempo_values is not None)

    def read(self, values, first, end):
        """File rows `[first, end)`, with each row's sequence tempo as a last column if
        the codec is conditioned on tempo (rows of other splits get a neighbour's)."""
        rows = _read(values, slice(first, end), self.path)
        if self.tempo_values is None:
            return rows
        sequence = np.searchsorted(self.tempo_starts, np.arange(first, end), side="right") - 1
        return np.concatenate([rows, self.tempo_values[np.maximum(sequence, 0), None]], 1)

    def rows(self, lo, hi):
        """The file rows `[first, end)` covering chunks `lo:hi`."""
        last = hi - 1
        if self.mode == "window":
            return int(self.row0[lo]), int(min(self.row0[last] + (self.size[last] - 1) * self.stride + self.span,
                                               self.end[last]))
        return int(self.row0[lo]), int(self.row0[last] + self.size[last])

    def examples(self, lo, hi, shift):
        """Example starts (rows shifted by `shift`) and lengths of chunks `lo:hi`."""
        row0, size = self.row0[lo:hi] + shift, self.size[lo:hi]
        if self.mode != "window":
            return row0, size
        first = np.cumsum(size) - size
        k = np.arange(size.sum()) - np.repeat(first, size)  # window index in its chunk
        starts = np.repeat(row0, size) + k * self.stride
        return starts, np.minimum(self.span, np.repeat(self.end[lo:hi] + shift, size) - starts)


def _usable(lengths, mode, max_seq_len=None):
    short_enough = True if max_seq_len is None else lengths <= max_seq_len
    if mode in ("window", "next"):  # a row to predict from, and one to predict
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


def _n_windows(lengths, stride):
    """Windows per sequence of `lengths` (>= 2) rows: one starting every `stride` rows
    while a row is left to predict, so every row but the first is a target."""
    return (lengths - 2) // stride + 1


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
        store: a `SequenceStore` or a `StoreSet`, or what `open_stores` opens (a
            store's path, a shard directory, a pattern, a list).
        split: `"train"`, `"valid"` or `"test"`.
        pen, window, stride, max_seq_len: as for `make_dataset`.

    Returns:
        An `ExampleCount` (summed over the stores of a `StoreSet`).

    Raises:
        ValueError: for arguments that do not fit the store's kind.
    """
    if not isinstance(store, (SequenceStore, StoreSet)):
        with _open(store, check_values=False) as opened:
            return count_examples(opened, split, pen=pen, window=window, stride=stride, max_seq_len=max_seq_len)
    if isinstance(store, StoreSet):
        counts = [count_examples(s, split, pen=pen, window=window, stride=stride, max_seq_len=max_seq_len)
                  for s in store.stores]
        return ExampleCount(*(sum(getattr(c, f.name) for c in counts) for f in dataclasses.fields(ExampleCount)))
    mode = _resolve_mode(store.kind, pen, window, stride)
    _check_max_seq_len(max_seq_len, mode)
    lengths = _split_lengths(store.offsets, store.split(split))
    usable = _usable(lengths, mode, max_seq_len)
    lengths = lengths[usable]
    if mode == "window":
        examples = _n_windows(lengths, stride or window).sum()
    else:
        examples = len(lengths)
    return ExampleCount(
        sequences=len(usable),
        used=len(lengths),
        skipped=int((~usable).sum()),
        examples=int(examples),
    )


def _open(spec, check_values=True):
    """`open_store(spec)` for one store file, else `open_stores(spec)`."""
    if is_single_store(spec):
        return open_store(spec, check_values=check_values)
    return open_stores(spec, check_values=check_values)


def _plan(store, split, mode, window, stride, block_rows, max_seq_len=None, augment=None, stats=None,
          targets="rows", input_noise=0.0, dt_scale="linear", tempo_quantiles=None, beats=False):
    """The `_Plan` of one store's split; `stats` (mean, std) default to the store's."""
    mean, std = (store.mean, store.std) if stats is None else stats
    indices = store.split(split)
    lengths = _split_lengths(store.offsets, indices)
    usable = _usable(lengths, mode, max_seq_len)
    if not usable.all():
        indices, lengths = indices[usable], lengths[usable]
    del usable
    row0 = store.offsets[indices]
    size, end = lengths, None
    tempo_starts = tempo_values = None
    if tempo_quantiles is not None:  # one tempo per sequence, of the whole sequence (not its window)
        tempo_starts = row0.copy()
        tempo_values = performance_tempos(store, indices).astype(np.float32)
    if mode == "window":
        # Cut each sequence's windows into chunks of at most per_chunk windows.
        per_chunk = max(1, block_rows // stride)
        n = _n_windows(lengths, stride)  # windows per sequence
        chunks = -(-n // per_chunk)  # chunks per sequence
        seq = np.repeat(np.arange(len(n)), chunks)
        k = np.arange(len(seq)) - np.repeat(np.cumsum(chunks) - chunks, chunks)
        end = (row0 + lengths)[seq]
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
            mean.astype(np.float32),
            std.astype(np.float32),
            targets,
            dt_scale,
            tempo_quantiles,
            beats,
        ),
        mode=mode,
        stride=stride,
        span=None if window is None else window + 1,
        row0=row0,
        size=size,
        end=end,
        block_bounds=_block_bounds(row0, block_rows),
        augment=augment,
        input_noise=input_noise,
        tempo_starts=tempo_starts,
        tempo_values=tempo_values,
    )


def performance_tempos(store, indices):
    """The tempo (`mdnrnn.formats.touch_tempo`) of each of a touch store's sequences
    `indices`, one read per sequence: float64 `(len(indices),)`."""
    dt = store.columns.index("dt")
    return np.array([formats.touch_tempo(np.asarray(store[int(i)])[:, dt]) for i in indices], np.float64)


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


def _batches(plans, batch_size, shuffle, drop_remainder, shuffle_blocks, seed, slices=None, bucket=False):
    """Yields `(inputs, targets, weights)` NumPy batches for one epoch.

    `plans` holds one `_Plan` per store, all with the same codec and mode. Their blocks
    are numbered one store after another and drawn in one random order; with a single
    plan this is the order of a single store.

    `slices=(first, count, total)`: cut each batch into `total` equal slices and yield
    slices `first .. first + count - 1` of it, one after another (see `make_dataset`'s
    `replica_slices`). The order of examples does not depend on it: the shuffling draws
    from its own generator, augmentation from another.
    """
    rng = np.random.default_rng(seed)  # block and example order only
    augment_rng = np.random.default_rng([*np.atleast_1d(seed), 1, slices[0] if slices else 0])
    if slices is None:
        pieces = [slice(None)]
    else:
        first, count, total = slices
        size = batch_size // total
        pieces = [slice(i * size, (i + 1) * size) for i in range(first, first + count)]
    plan = plans[0]  # codec, mode, columns and augmentation: the same in every plan
    first_block = np.cumsum([0] + [len(p.block_bounds) - 1 for p in plans])
    n_blocks = int(first_block[-1])
    order = rng.permutation(n_blocks) if shuffle else np.arange(n_blocks)
    carry = np.zeros((0, plan.width), dtype=np.float32)
    carry_starts = carry_lengths = np.zeros(0, dtype=np.int64)
    with _OpenFiles(_OPEN_FILES) as files:
        for g in range(0, n_blocks, shuffle_blocks):
            parts, starts, lengths = [carry], [carry_starts], [carry_lengths]
            base = len(carry)
            for block in order[g : g + shuffle_blocks]:
                p = int(np.searchsorted(first_block, block, side="right")) - 1
                b = block - first_block[p]
                lo, hi = plans[p].block_bounds[b], plans[p].block_bounds[b + 1]
                first, end = plans[p].rows(lo, hi)
                values = files.values(plans[p].path)
                parts.append(plans[p].read(values, first, end))  # one contiguous read
                ex_starts, ex_lengths = plans[p].examples(lo, hi, base - first)
                starts.append(ex_starts)
                lengths.append(ex_lengths)
                base += end - first
            rows = np.concatenate(parts)
            starts, lengths = np.concatenate(starts), np.concatenate(lengths)
            if shuffle:
                perm = rng.permutation(len(starts))
                starts, lengths = starts[perm], lengths[perm]
            n_full = len(starts) // batch_size
            bounds, batch_order = np.arange(n_full + 1) * batch_size, range(n_full)
            if bucket:
                full = n_full * batch_size
                starts[:full], lengths[:full], bounds = _by_length(starts[:full], lengths[:full], batch_size)
                batch_order = rng.permutation(n_full)
            for k in batch_order:
                batch = slice(bounds[k], bounds[k + 1])
                for piece in pieces:
                    yield _make_batch(plan, rows, starts[batch][piece], lengths[batch][piece], augment_rng)
            rest = slice(n_full * batch_size, None)
            carry_lengths = lengths[rest]
            carry = np.concatenate(
                [rows[s : s + n] for s, n in zip(starts[rest], carry_lengths)]
                or [np.zeros((0, plan.width), dtype=np.float32)]
            )
            carry_starts = np.cumsum(carry_lengths) - carry_lengths
    if len(carry_starts) and not drop_remainder:
        yield _make_batch(plan, carry, carry_starts, carry_lengths, augment_rng)  # never with slices


def _by_length(starts, lengths, batch_size):
    """Examples sorted by length within each pool of `BUCKET_POOL` batches, and the bounds
    of the batches: `(starts, lengths, bounds)`, batch `k` being `bounds[k]:bounds[k + 1]`.

    A pool of `P * batch_size` examples (the last pool may be smaller) is cut into `P`
    batches of about equal rows, so a batch of short examples holds more of them. The loss
    is a mean over a batch's real steps, so equal rows per batch weigh every step alike, as
    random batches do. The sort is stable: equal lengths keep their random order.
    """
    pool = BUCKET_POOL * batch_size
    order, bounds = [], [np.zeros(1, np.int64)]
    for lo in range(0, len(lengths), pool):
        sorted_ = lo + np.argsort(lengths[lo : lo + pool], kind="stable")
        cum = np.cumsum(lengths[sorted_])
        batches = len(sorted_) // batch_size
        cuts = np.searchsorted(cum, cum[-1] * np.arange(1, batches) / batches) + 1
        # Every batch holds at least one example.
        k = np.arange(1, batches)
        cuts = np.maximum.accumulate(np.maximum(cuts, k) - k) + k
        cuts = np.minimum(cuts, len(sorted_) - batches + k)
        order.append(sorted_)
        bounds.append(lo + np.append(cuts, len(sorted_)))
    order = np.concatenate(order)
    return starts[order], lengths[order], np.concatenate(bounds)


class _OpenFiles:
    """The `/sequences/values` of up to `limit` h5py files, opened as needed; the least
    recently used is closed first. All are closed when the `with` block ends."""

    def __init__(self, limit):
        self._limit = limit
        self._files = collections.OrderedDict()  # path -> h5py.File

    def values(self, path):
        f = self._files.pop(path, None)
        if f is None:
            if len(self._files) >= self._limit:
                self._files.popitem(last=False)[1].close()
            f = h5py.File(path, "r")
        self._files[path] = f
        return f[_VALUES]

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for f in self._files.values():
            f.close()
        self._files.clear()


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
    t = plan.span or int(lengths.max())  # windows: one shape, a sequence's last one padded
    steps = np.arange(t)
    real = steps[None, :] < lengths[:, None]  # [B, T]
    index = np.minimum(starts[:, None] + steps[None, :], len(rows) - 1)
    codec = plan.codec
    rows, tempo = rows[index], None  # [B, T, C]
    if codec.tempo_quantiles is not None:  # the last column: each row's sequence tempo
        rows, tempo = rows[..., :-1], rows[..., -1]
    model = codec.encode(rows, tempo)  # [B, T, F_in]
    raw = codec.targets(rows, tempo)  # [B, T, C]
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
        if plan.input_noise:  # the change columns follow the row's normalised values
            changes = slice(codec.dim, codec.dim + int(codec.offset_columns.sum()))
            inputs[..., changes] += rng.normal(0.0, plan.input_noise, inputs[..., changes].shape)
        inputs = inputs * weights[..., None]
    return inputs, targets, weights.astype(np.float32)


def _check_replica_slices(replica_slices, batch_size):
    try:
        first, count, total = (int(v) for v in replica_slices)
        valid = 0 <= first and count >= 1 and first + count <= total
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            "Received an invalid value for `replica_slices`, expected (first, count, total) with "
            f"0 <= first < first + count <= total. Received: replica_slices={replica_slices!r}"
        )
    if batch_size % total:
        raise ValueError(
            f"The batch size ({batch_size}) is the global one, cut into one equal slice per "
            f"replica: it must be a multiple of the number of replicas ({total})."
        )


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
    replica_slices=None,
    targets="rows",
    stats=None,
    input_noise=0.0,
    dt_scale="linear",
    tempo_quantiles=None,
    beats=False,
    bucket=False,
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
    normalised with the store's train statistics (or `stats`). Each epoch (each new
    iterator) draws a new order from `(seed, epoch)`, so two datasets made
    with the same seed give the same batches.

    Several stores (a `StoreSet`: a shard directory, a list of files, a
    pattern) are read as one: their blocks are numbered one store after
    another and shuffled together, and every store is normalised with the
    set's statistics (see `open_stores`). Without `shuffle`, examples come
    in store order, then file order, so a shard directory gives the batches
    of the single store it was cut from.

    Modes (see `mdnrnn.formats` for the row formats):

    - stroke-3 store, `pen="categorical"` (stroke-5 model): a drawing of `n`
      points gives inputs `(n + 1, 5)` = start token `(0, 0, 1, 0, 0)` then
      the `n` stroke-5 rows, and targets `(n + 1, 3)` = `(dx, dy, pen_class)`
      for the `n` points (class 0 pen down, 1 pen lifts after this point)
      then an end row `(0, 0, 2)`. So `inputs[t + 1, :2] == targets[t, :2]`.
    - stroke-3 store, `pen="bernoulli"` (stroke-3 model): inputs `(n, 3)` =
      `(0, 0, 1)` then rows `[:-1]`; targets `(n, 3)` = the rows.
    - touch / impsy store with `window=w`: windows of `w + 1` consecutive rows
      of one sequence, one starting every `stride` rows while a row is left to
      predict; inputs = window `[:-1]`, targets = window `[1:]`. A window
      that would run past its sequence's end (the last ones, or the only one
      of a sequence shorter than `w + 1` rows) holds the rows that are left
      and is padded to `w` steps, so with `stride = w` every row but each
      sequence's first is a target once per epoch, short sequences included.
      Sequences of one row have nothing to predict and are skipped.
    - touch / impsy store with `window=None`: whole sequences (at least 2
      rows), inputs = rows `[:-1]`, targets = rows `[1:]`.

    Batches are padded to their longest example (window mode: to `w` steps): all-zero rows in inputs
    (what `keras.layers.Masking(mask_value=0.0)` treats as padding), zero rows
    in targets, and `weights` is 1.0 on real steps and 0.0 on padding. Note
    that in Bernoulli mode a real stroke-3 row `(0, 0, 0)` (a repeated point,
    or a stroke starting where the previous one ended; rare) is
    indistinguishable from padding for a masking layer; stroke-5 inputs and
    touch windows have no such ambiguity.

    Args:
        store: a `SequenceStore`, a `StoreSet`, or what `open_stores` opens:
            the path of a store file, a shard directory, a pattern such as
            `"shards/*.h5"`, or a list of these.
        split: `"train"`, `"valid"` or `"test"`.
        batch_size: examples per batch.
        pen: `"categorical"` or `"bernoulli"` for stroke-3 stores; `None`
            (the default) for touch / impsy stores.
        window: window length (time steps per example) for touch / impsy
            stores; `None` (the default) feeds whole sequences.
        stride: step between window starts; defaults to `window` (each row is
            a target once per epoch). `1` starts a window at every row.
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
        replica_slices: `(first, count, total)` for `tf.distribute`: every
            batch of `batch_size` examples (the global batch) is cut into
            `total` equal slices, one per replica, and this dataset yields
            slices `first` to `first + count - 1` of each, one after another
            (a worker's replicas, in order; see `mdnrnn.train.datasets`).
            Every worker draws the same order from the same seed, so the
            global batches are those of the dataset without it. `batch_size`
            must be a multiple of `total`, and the last, smaller batch is
            dropped. Defaults to `None` (whole batches).
        targets: `"rows"` (the next rows as they are) or `"offsets"` (touch and
            IMPSY: positions and controller values as their change from the
            previous row; see `mdnrnn.formats.RowCodec`), as the model's
            `ModelConfig.targets`. Defaults to `"rows"`.
        input_noise: offset targets (touch and IMPSY models): Gaussian noise
            of this standard deviation (model units) is added to the inputs'
            change columns (each row's change from the one before), drawn
            afresh for every batch. A model that generates reads back its own
            samples, noise included, as the last change, and one trained on
            exact changes carries that noise on as speed; noisy ones are
            meant to teach it to read speed from further back (measured in
            docs/benchmarks.md). Targets stay exact. Defaults to 0 (none).
        dt_scale: touch and IMPSY: `"linear"` or `"log"`, as the model's
            `ModelConfig.dt_scale` (see `mdnrnn.formats.RowCodec`); `"log"`
            needs `stats`. Defaults to `"linear"`.
        tempo_quantiles: touch stores, for a tempo-conditioned model: its
            `ModelConfig.tempo_quantiles`. Every input row then ends with its
            whole performance's tempo (`mdnrnn.formats.touch_tempo`, computed
            when the dataset is made: one read per performance of the split),
            whatever window it is in (see `mdnrnn.formats.RowCodec`).
            Defaults to `None` (no tempo column).
        beats: with `tempo_quantiles`: pauses in beats of each performance's
            tempo (`mdnrnn.formats.dt_in_beats`), as the model's
            `ModelConfig.beats`; needs `stats` (those of the converted dt).
            Defaults to `False`.
        bucket: whole sequences, shuffled (training): the shuffled examples
            are sorted by length within pools of `BUCKET_POOL` (32) batches,
            each pool is cut into as many batches of about equal rows (more
            examples in a batch of short ones), and the batches of a group
            come in random order. A batch is padded to its longest example, so
            batches of similar lengths carry little padding (KanjiVG, batches
            of 64: see docs/benchmarks.md), and with equal rows per batch every
            real step weighs about the same in the loss, as in random batches.
            Every example still comes once per epoch, in as many batches;
            `batch_size` is then the mean. Not with `replica_slices`.
            Defaults to `False`.
        stats: `(mean, std)` of the continuous columns to normalise with
            instead of the store's: a model's own (`ModelConfig.mean` and
            `std`), when it was trained on other data. Defaults to `None`
            (the store's, or the set's).

    Returns:
        A prefetching `tf.data.Dataset` with known cardinality (batches, or
        slices, per epoch), of float32 tuples `(inputs, targets, weights)` shaped
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
    if not isinstance(store, (SequenceStore, StoreSet)):
        with _open(store) as opened:
            return make_dataset(
                opened, split, batch_size, pen=pen, window=window, stride=stride,
                shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
                block_rows=block_rows, shuffle_blocks=shuffle_blocks,
                max_seq_len=max_seq_len, augment=augment, replica_slices=replica_slices,
                targets=targets, stats=stats, input_noise=input_noise, dt_scale=dt_scale,
                tempo_quantiles=tempo_quantiles, beats=beats, bucket=bucket,
            )
    if replica_slices is not None:
        _check_replica_slices(replica_slices, batch_size)
        drop_remainder = True  # every replica gets a slice of the same size
    mode = _resolve_mode(store.kind, pen, window, stride)
    if bucket and (mode == "window" or not shuffle or replica_slices is not None):
        raise ValueError("`bucket` groups whole sequences of similar length into the shuffled batches: it needs "
                         "shuffle=True, whole sequences (windows all have one length) and whole batches "
                         "(its batches hold different numbers of examples, which replica_slices cannot cut).")
    if augment and mode not in PEN_MODES:
        raise ValueError(f"`augment` applies to drawings (stroke3 stores); this store's kind is {store.kind!r}.")
    if not (isinstance(input_noise, (int, float)) and 0 <= input_noise < float("inf")):
        raise ValueError(f"Received an invalid value for `input_noise`, expected a number >= 0. "
                         f"Received: input_noise={input_noise!r}")
    if tempo_quantiles is not None and store.kind != "touch":
        raise ValueError(f"`tempo_quantiles` condition touch models; {store.path} is a {store.kind!r} store.")
    if beats and tempo_quantiles is None:
        raise ValueError("`beats` measures pauses in beats of each performance's tempo: it needs `tempo_quantiles`.")
    if beats and stats is None:
        raise ValueError("beats=True normalises pauses in beats, whose statistics the store does not hold: "
                         "pass the model's (`stats=(config.mean, config.std)`).")
    if dt_scale == "log" and stats is None:
        raise ValueError("dt_scale='log' normalises the logarithm of dt, whose statistics the store does "
                         "not hold: pass the model's (`stats=(config.mean, config.std)`).")
    if input_noise and targets != "offsets":
        raise ValueError(f"`input_noise` perturbs the change columns of offset targets' inputs; this dataset "
                         f"has targets={targets!r}.")
    stride = stride or window
    store.require_split(split)
    counts = count_examples(store, split, pen=pen, window=window, stride=stride, max_seq_len=max_seq_len)
    if counts.examples == 0:
        raise ValueError(
            f"{store.path}: split {split!r} has no examples ({counts.sequences} sequences, "
            f"{counts.skipped} too short or longer than max_seq_len)"
        )
    if mode == "window":  # a window longer than every sequence: pad to the longest only
        window = min(window, int(store.lengths[store.split(split)].max()) - 1)
    if counts.skipped:
        logger.info(
            "%s: split %r: skipped %d of %d sequences (%s)",
            store.path, split, counts.skipped, counts.sequences,
            "longer than max_seq_len" if max_seq_len is not None else "too short to predict a row",
        )
    members = store.stores if isinstance(store, StoreSet) else [store]
    plans = [
        _plan(member, split, mode, window, stride, block_rows, max_seq_len, augment or None,
              (store.mean, store.std) if stats is None else tuple(np.asarray(v, np.float32) for v in stats),
              targets, input_noise, dt_scale, tempo_quantiles, beats)
        for member in members
    ]
    plans = [plan for plan in plans if len(plan.row0)]  # stores with examples in the split
    n_batches = (
        counts.examples // batch_size
        if drop_remainder
        else -(-counts.examples // batch_size)
    )
    if n_batches == 0:
        raise ValueError(
            f"{store.path}: split {split!r} has {counts.examples} examples, fewer than one "
            f"batch of {batch_size}; lower the batch size."
        )
    if replica_slices is not None:
        n_batches *= replica_slices[1]
    epochs = itertools.count()

    def generate():
        yield from _batches(
            plans, batch_size, shuffle, drop_remainder, shuffle_blocks, [seed, next(epochs)],
            replica_slices, bucket,
        )

    f_in, f_out = plans[0].codec.input_size, plans[0].n_columns
    signature = (
        tf.TensorSpec((None, None, f_in), tf.float32),
        tf.TensorSpec((None, None, f_out), tf.float32),
        tf.TensorSpec((None, None), tf.float32),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_batches))
    return dataset.prefetch(tf.data.AUTOTUNE)
