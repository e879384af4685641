"""Batches per second of the input pipeline alone against what training consumes (kanji preset).

The issue-13 target: the input pipeline alone delivers at least 5x the batches per second
that training of the kanji preset consumes on the same cores, so input never stalls a
device 5x faster than them.

Data: `short_kanji.npz`, shipped with mdnrnn (`mdnrnn.datasets.path("short_kanji")`),
converted to a store in a temporary folder (or `--store`: a store, a shard directory or
a pattern). Pipelines are built by `mdnrnn.train.datasets`, exactly as
`mdnrnn train --preset kanji --data STORE` builds them (batches of 64 whole drawings,
stroke-5 inputs, the default seed, batches of similar lengths unless `--no-bucket`, no
augmentation unless `--scale-augment` / `--drop-points`). The report also gives the share
of the train pipeline's steps that are padding, over one epoch.

In one process:

1. pipeline: whole epochs of the train pipeline are iterated (`for batch in dataset`,
   the tensors only; nothing else runs); batches / s = batches / wall time of the epoch.
   With `--compare REV`, the `mdnrnn/data/pipeline.py` of git revision REV (for example
   a prototype on the branch `prototype/tfdata-pipeline`) is loaded beside the current
   one and both are timed in alternating rounds (round r times each once, in an order
   that rotates), so machine load hits both alike; the report gives the median rate
   over rounds and the median of the per-round ratios (REV over current).
2. training: `mdnrnn.build_model` of the kanji preset (its optimizer, XLA as shipped)
   runs `model.fit` over batches of the same pipeline, `--steps` timed steps after
   `--warmup` untimed ones (tracing, the first batches of new lengths); each step is
   timed from `on_train_batch_begin` to `on_train_batch_end`, so the input pipeline's
   own time is left out; batches / s = timed steps / their summed time.
3. the ratio: pipeline batches / s over training batches / s.

    nice .venv/bin/python scripts/bench_pipeline.py --json /tmp/bench_pipeline.json
    nice .venv/bin/python scripts/bench_pipeline.py --compare prototype/tfdata-pipeline~1
    nice .venv/bin/python scripts/bench_pipeline.py --compare prototype/tfdata-pipeline
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", help="a stroke-3 store (default: short_kanji.npz converted in a temp dir)")
    p.add_argument("--batch-size", type=int, default=64, help="as mdnrnn train (64)")
    p.add_argument("--scale-augment", type=float, default=0.0)
    p.add_argument("--drop-points", type=float, default=0.0)
    p.add_argument("--bucket", action=argparse.BooleanOptionalAction, default=True,
                   help="batches of similar lengths, as mdnrnn train (on)")
    p.add_argument("--rounds", type=int, default=5, help="timed epochs of each pipeline (5)")
    p.add_argument("--compare", metavar="REV", help="also time mdnrnn/data/pipeline.py of this git revision")
    p.add_argument("--steps", type=int, default=30, help="timed training steps (30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed training steps first (5)")
    p.add_argument("--json", help="write the results here")
    return p.parse_args(argv)


def _load_pipeline(rev, folder):
    """`mdnrnn/data/pipeline.py` of git revision `rev`, as a module of its own."""
    source = subprocess.run(["git", "show", f"{rev}:mdnrnn/data/pipeline.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    name = "pipeline_" + "".join(ch if ch.isalnum() else "_" for ch in rev)
    path = Path(folder) / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _epoch_rate(dataset):
    start = time.perf_counter()
    n = sum(1 for _ in dataset)
    return n / (time.perf_counter() - start), n


def main(argv=None):
    args = _parse_args(argv)
    import mdnrnn
    from bench_scale import step_timer  # scripts/ is on the path when a script runs
    from data_prep import sketch_npz
    from mdnrnn import data, datasets, train

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        store = args.store
        if store is None:
            store = Path(tmp) / "short_kanji.h5"
            sketch_npz.convert([datasets.path("short_kanji")], store, progress=False)
        config = train.prepare_config(store, mdnrnn.preset("kanji"))
        settings = train.TrainSettings(batch_size=args.batch_size, scale_augment=args.scale_augment,
                                       drop_points=args.drop_points, bucket=args.bucket)

        pipelines = {"current": data.make_dataset}
        if args.compare:
            pipelines[args.compare] = _load_pipeline(args.compare, tmp).make_dataset
        built = {}
        current = data.make_dataset
        try:
            for name, make in pipelines.items():
                data.make_dataset = make  # what train.datasets calls
                built[name] = train.datasets(store, config, settings)[0]
        finally:
            data.make_dataset = current
        rates = {name: [] for name in built}
        for name, dataset in built.items():  # untimed: the first epoch traces the graph
            _epoch_rate(dataset)
        names = list(built)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                rate, n_batches = _epoch_rate(built[name])
                rates[name].append(rate)
        result = {"store": os.fspath(store), "batch_size": args.batch_size, "batches_per_epoch": n_batches,
                  "pipeline_batches_per_s": {k: statistics.median(v) for k, v in rates.items()},
                  "pipeline_rounds": rates}
        weights = [w.numpy() for _, _, w in built["current"]]
        result["padding_fraction"] = 1 - sum(w.sum() for w in weights) / sum(w.size for w in weights)
        if args.compare:
            result["compared_over_current_median"] = statistics.median(
                b / a for a, b in zip(rates["current"], rates[args.compare]))

        model = mdnrnn.build_model(config, optimizer=settings.optimizer("kanji"))

        total = args.warmup + args.steps
        timer = step_timer()
        model.fit(built["current"].repeat().take(total), epochs=1, steps_per_epoch=total,
                  callbacks=[timer], verbose=0, shuffle=False)
        times = timer.times[args.warmup:]
        result["train_batches_per_s"] = len(times) / sum(times)
        result["train_ms_per_step_median"] = 1000 * statistics.median(times)
        result["ratio"] = result["pipeline_batches_per_s"]["current"] / result["train_batches_per_s"]
        result.update(cpus=os.cpu_count(), load_average=os.getloadavg())
    for key, value in result.items():
        if key != "pipeline_rounds":
            print(f"{key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
