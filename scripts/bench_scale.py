"""Single-worker training throughput of a preset, for the estimates in docs/scale.md.

Builds `mdnrnn.build_model(preset)` exactly as `mdnrnn train` does (the preset's
optimizer, XLA as shipped) and fits it on the real pipeline of a store
(`make_dataset(store, "train", batch_size, pen=..., max_seq_len=...)`), timing each
training step with a Keras callback (from `on_train_batch_begin` to
`on_train_batch_end`). The first `--warmup` steps (tracing, and the first batches of
new lengths) are left out. Prints steps, median and mean ms per step, drawings per
second and points per second (real points, from the batches' weights), as text and
with `--json`.

    .venv/bin/python -m data_prep sketch-npz --sample --out /tmp/sketch_bench.h5
    .venv/bin/python scripts/bench_scale.py --store /tmp/sketch_bench.h5 --preset sketch \
        --batch-size 100 --max-seq-len 250 --steps 300 --warmup 20
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def step_timer():
    """A Keras callback whose `times` list holds each training step's seconds."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self._start)

    return StepTimer()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a stroke-3 store, shard directory or pattern")
    parser.add_argument("--preset", default="sketch")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-seq-len", type=int, default=250)
    parser.add_argument("--steps", type=int, default=300, help="timed steps")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    import mdnrnn
    from mdnrnn import data, train

    config = train.prepare_config(args.store, mdnrnn.preset(args.preset))
    settings = train.TrainSettings(batch_size=args.batch_size, max_seq_len=args.max_seq_len)
    model = mdnrnn.build_model(config, optimizer=settings.optimizer(args.preset))
    total = args.steps + args.warmup
    dataset = data.make_dataset(args.store, "train", args.batch_size, pen=config.spec.pen,
                                max_seq_len=args.max_seq_len, seed=0).repeat().take(total)
    points = [float(w.numpy().sum()) for _, _, w in dataset.take(total)]  # real target steps per batch

    timer = step_timer()
    model.fit(dataset, epochs=1, steps_per_epoch=total, callbacks=[timer], verbose=0, shuffle=False)
    times = np.array(timer.times[args.warmup:])
    result = {
        "preset": args.preset, "store": os.fspath(args.store), "batch_size": args.batch_size,
        "max_seq_len": args.max_seq_len, "steps": len(times), "warmup": args.warmup,
        "ms_per_step_median": 1000 * float(np.median(times)),
        "ms_per_step_mean": 1000 * float(times.mean()),
        "drawings_per_s": args.batch_size / float(times.mean()),
        "points_per_step_mean": float(np.mean(points[args.warmup:])),
        "points_per_s": float(np.sum(points[args.warmup:]) / times.sum()),
        "cpus": os.cpu_count(), "load_average": os.getloadavg(),
    }
    for key, value in result.items():
        print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
