"""Peak memory of one training epoch streamed from a sequence store (or shards) of >= 2 GB.

Builds a store of the requested size under a temporary folder (default /tmp)
from the real data shipped in `mdnrnn.datasets`, tiled with small random jitter
so that it does not compress away: touch performances from the RoboJam corpus
(`datasets.path("robojam")`) for `--kind touch`, kanji drawings from
`datasets.path("short_kanji")` for `--kind stroke3`. It
then iterates one full epoch of `mdnrnn.data.make_dataset` over the train split
in a fresh process and reports that process's peak resident memory (RSS,
VmHWM), before (TensorFlow and mdnrnn imported) and after the epoch. The store
is deleted at the end unless `--keep` is given.

Usage (from the repository root):

    .venv/bin/python scripts/bench_pipeline_memory.py --kind touch --size-gb 2
    .venv/bin/python scripts/bench_pipeline_memory.py --kind stroke3 --size-gb 2

With `--shards N` the data is N store files of `--size-gb / N` each in one folder, read
as one dataset through the glob `FOLDER/*.h5` (`mdnrnn.data.open_stores`: the union of
the files' train splits, statistics over all of them). The first file is built as above
and the others are byte copies of it: peak memory depends on the number of sequences,
rows and files, not on their values, and copying is minutes faster than building. The
20 GB run of `docs/benchmarks.md`:

    nice .venv/bin/python scripts/bench_pipeline_memory.py --kind touch --size-gb 20 --shards 10

With `--keep`, the epoch can be re-measured independently of the script's own
accounting:

    /usr/bin/time -v .venv/bin/python scripts/bench_pipeline_memory.py \
        --iterate /tmp/bench-touch-PID/shard-00000.h5 --kind touch
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_rss_mb():
    """This process's peak RSS (VmHWM) in MiB.

    Not `getrusage(...).ru_maxrss`: Linux carries that over `execve`, so a child
    would report its parent's peak (here, the store builder's).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _touch_source():
    import h5py

    from data_prep import robojam
    from mdnrnn import datasets

    with h5py.File(datasets.path("robojam"), "r") as f:
        return robojam.split_performances(f["total_performances"][:])


def _stroke3_source():
    from data_prep.common import load_npz
    from mdnrnn import datasets

    return [d.astype(np.float32) for d in load_npz(datasets.path("short_kanji"))["train"]]


def build(path, kind, size_bytes, seed=0):
    """Writes a store of at least `size_bytes` on disk; returns (seconds, sequences)."""
    from mdnrnn import data

    source = _touch_source() if kind == "touch" else _stroke3_source()
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    written = 0
    with data.StoreWriter(path, kind=kind, seed=seed, source="synthetic benchmark data") as w:
        while True:
            for rows in source:
                jittered = rows.copy()
                if kind == "touch":
                    noise = rng.normal(0, 1e-3, jittered.shape).astype(np.float32)
                    jittered = np.clip(jittered + noise, 0, [1, 1, 5])
                else:
                    jittered[:, :2] += rng.normal(0, 0.5, (len(rows), 2)).astype(np.float32)
                w.add(jittered)
                written += 1
            w._file.flush()
            if w._tmp.stat().st_size >= size_bytes:
                break
    return time.perf_counter() - start, written


def iterate(spec, kind, batch_size, window):
    """One epoch over the train split of a store file or a glob of them; prints a JSON line."""
    import tensorflow as tf  # noqa: F401  (counted in the baseline)

    from mdnrnn import data

    baseline = _peak_rss_mb()
    start = time.perf_counter()
    with data.open_stores(spec) as store:
        points = store.n_points
        opened = time.perf_counter() - start
        kwargs = {"window": window} if kind == "touch" else {"pen": "categorical"}
        ds = data.make_dataset(store, "train", batch_size, seed=1, **kwargs)
        n_batches, steps = 0, 0.0
        epoch_start = time.perf_counter()
        for _, _, weights in ds:
            n_batches += 1
            steps += float(weights.numpy().sum())
        epoch = time.perf_counter() - epoch_start
        expected = len(ds)
    print(json.dumps({
        "points": points,
        "batches": n_batches,
        "expected_batches": expected,
        "real_steps": steps,
        "open_and_validate_s": round(opened, 1),
        "epoch_s": round(epoch, 1),
        "rss_after_tf_import_mb": round(baseline),
        "peak_rss_mb": round(_peak_rss_mb()),
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=("touch", "stroke3"), default="touch")
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--shards", type=int, default=1, help="split the data over this many store files")
    parser.add_argument("--keep", action="store_true", help="keep the store afterwards")
    parser.add_argument("--iterate", metavar="STORE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.iterate:
        iterate(args.iterate, args.kind, args.batch_size, args.window)
        return
    if args.shards < 1:
        parser.error(f"--shards must be at least 1, got {args.shards}")
    folder = Path(args.dir) / f"bench-{args.kind}-{os.getpid()}"
    try:
        folder.mkdir()
        first = folder / "shard-00000.h5"
        seconds, sequences = build(first, args.kind, int(args.size_gb * 1e9 / args.shards))
        print(f"built {first}: {first.stat().st_size / 1e9:.2f} GB, {sequences:,} sequences in {seconds:.0f} s")
        for k in range(1, args.shards):
            shutil.copyfile(first, folder / f"shard-{k:05d}.h5")
        size = sum(p.stat().st_size for p in folder.glob("*.h5"))
        spec = str(first) if args.shards == 1 else str(folder / "*.h5")
        child = subprocess.run(
            [sys.executable, __file__, "--iterate", spec, "--kind", args.kind,
             "--batch-size", str(args.batch_size), "--window", str(args.window)],
            capture_output=True, text=True, check=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        result.update(kind=args.kind, store_gb=round(size / 1e9, 2), files=args.shards,
                      sequences=sequences * args.shards)
        print(json.dumps(result, indent=2))
        if result["batches"] != result["expected_batches"]:
            raise SystemExit("batch count differs from the dataset's cardinality")
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
