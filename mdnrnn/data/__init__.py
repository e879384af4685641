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
- Cut a large dataset into a shard directory with `write_shards` /
  `ShardWriter`; read a shard directory, a list of stores or a pattern as one
  with `open_stores` (`make_dataset` and `count_examples` take them too).

One module per job: `store` (reading), `writer` (writing), `shards` (shard
directories and several stores read as one), `pipeline` (training batches).
Their public names are all here, in `mdnrnn.data`.

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

from mdnrnn.data.pipeline import (PEN_MODES, Augmentation, ExampleCount, count_examples, make_dataset,
                                  performance_tempos)
from mdnrnn.data.shards import ShardWriter, StoreSet, open_stores, write_shards
from mdnrnn.data.store import (
    FORMAT_VERSION,
    SPLITS,
    SequenceStore,
    StoreError,
    describe_lengths,
    open_store,
)
from mdnrnn.data.writer import StoreWriter, append_store, write_store

__all__ = [
    "FORMAT_VERSION",
    "PEN_MODES",
    "SPLITS",
    "Augmentation",
    "ExampleCount",
    "SequenceStore",
    "ShardWriter",
    "StoreError",
    "StoreSet",
    "StoreWriter",
    "append_store",
    "count_examples",
    "describe_lengths",
    "make_dataset",
    "open_store",
    "open_stores",
    "performance_tempos",
    "write_shards",
    "write_store",
]
