"""Generation speed: mdnrnn's `Generator` against keras-mdn-layer, side by side in one process.

Two model sizes, both untrained (weights do not change the speed):
- A, kanji-sized: 2 x 64 LSTM, 10 components. Ours: dim 2 + a categorical pen (stroke-5
  rows in, stroke-3 rows out). keras-mdn-layer has no pen, so its model is the one of
  its own kanji example and of IMPSY: stroke-3 rows with the pen lift as a third
  Gaussian dimension (`output_dim = 3`, input width 3).
- B, RoboJam-sized: 2 x 256 LSTM, 5 components, touch rows (x, y, dt): dim 3 for both.

Measured:
- Per-step latency at batch size 1 (median and 90th percentile of `time.perf_counter`
  around each step, over `--steps` steps after a warm-up) for
  - ours: `Generator.step()` (NumPy kernels);
  - Keras: the IMPSY inference model (inputs `[x, h_1, c_1, h_2, c_2]`, LSTM layers with
    explicit states, `mdn.MDN`) called as `model([x] + states)`, then
    `mdn.sample_from_output` on the parameters;
  - TFLite: that same Keras model converted with `tf.lite.TFLiteConverter.from_keras_model`
    (builtin ops only, batch size fixed at 1 so that LiteRT can run it without the Flex
    delegate) and run with `ai_edge_litert.interpreter.Interpreter`:
    `set_tensor` x 5, `invoke`, `get_tensor` x 5, then `mdn.sample_from_output`.
- Whole-sequence throughput, in points per second, for `--length`-step sequences:
  ours through `Generator.generate(n=1)` and `generate(n=64)` (one compiled loop,
  `stop=False` so every sequence runs its full length), and through a `step()` loop;
  the baselines loop one sequence at a time from fresh states.

Each measurement is repeated `--repeats` times (the slow Keras call: once); the tables
give the best repeat (the lowest median step time, the highest points per second), and
`--verbose` prints them all. Results and the targets they were held to are in
docs/benchmarks.md ("Generation").

The baseline packages are needed only here, so install them into a separate venv:

    python3.11 -m venv /tmp/benchvenv
    /tmp/benchvenv/bin/pip install -e . keras-mdn-layer==1.0.0 ai-edge-litert

Run (from the repository root; 3 to 5 minutes on 2 cores, most of it the Keras call):

    /tmp/benchvenv/bin/python scripts/bench_generate.py --verbose

`--load` measures `step()` alone (no baseline packages needed, the project's venv will
do): per-step latency at batch size 1, p50 / p90 / p99, with no extra load and with
`--busy` synthetic busy processes (each spins a Python loop), once as shipped (BLAS held
to one thread for small batches) and once with every BLAS thread (what `step()` did
before):

    .venv/bin/python scripts/bench_generate.py --load

`--ours` measures only our whole-sequence throughput (`generate(n=1)`, `generate(n=64)`,
best of `--repeats` after an untimed compiling call), also without baseline packages.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import platform
import sys
import time
from importlib.metadata import version

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

SETUP = (
    "python3.11 -m venv /tmp/benchvenv\n"
    "/tmp/benchvenv/bin/pip install -e . keras-mdn-layer==1.0.0 ai-edge-litert"
)

mdn = Interpreter = None  # the baselines, imported by `import_baselines`


def import_baselines():
    global mdn, Interpreter
    try:
        import keras_mdn_layer as mdn
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:
        sys.exit(
            f"bench_generate.py needs the baseline packages ({error}). They are not project "
            f"dependencies; install them into a separate venv and run from there:\n{SETUP}\n"
            "/tmp/benchvenv/bin/python scripts/bench_generate.py\n"
            "(`--load` needs none of them.)"
        )


import keras
import tensorflow as tf

import mdnrnn

# name -> (our preset and overrides, keras-mdn-layer output_dim, description)
CONFIGS = {
    "A": (
        ("kanji", dict(units=64, layers=2, components=10)), 3,
        "kanji-sized: dim 2 + pen, 2 x 64 LSTM, 10 components",
    ),
    "B": (
        ("touch", dict(units=256, layers=2, components=5)), 3,
        "RoboJam-sized: touch dim 3, 2 x 256 LSTM, 5 components",
    ),
}


# ------------------------------------------------------------------- baselines
def impsy_model(dim, units, layers, components, batch_size=None):
    """IMPSY's inference model: one step in, `[params] + states` out.

    With `batch_size=1` the batch axis is fixed, as TFLite's builtin LSTM lowering needs.
    """
    x_in = keras.Input(batch_shape=(batch_size, 1, dim), name="inputs")
    state_in, state_out = [], []
    x = x_in
    for i in range(layers):
        h_in = keras.Input(batch_shape=(batch_size, units), name=f"state_h_{i}")
        c_in = keras.Input(batch_shape=(batch_size, units), name=f"state_c_{i}")
        x, h, c = keras.layers.LSTM(
            units, return_sequences=i < layers - 1, return_state=True, name=f"lstm_{i}"
        )(x, initial_state=[h_in, c_in])
        state_in += [h_in, c_in]
        state_out += [h, c]
    params = mdn.MDN(dim, components, name="mdn_outputs")(x)
    return keras.Model([x_in] + state_in, [params] + state_out)


class KerasBaseline:
    """keras-mdn-layer called the IMPSY way: `model([x] + states)`, then NumPy sampling."""

    def __init__(self, model, dim, units, layers, components):
        self.model, self.dim, self.components = model, dim, components
        self.units, self.layers = units, layers
        self.reset()

    def reset(self):
        self.states = [tf.zeros((1, self.units))] * (2 * self.layers)
        self.x = np.zeros(self.dim, np.float32)

    def step(self):
        x = tf.convert_to_tensor(self.x.reshape(1, 1, self.dim).astype(np.float32))
        outputs = self.model([x] + self.states)
        params = outputs[0][0].numpy()
        self.states = outputs[1:]
        self.x = mdn.sample_from_output(params, self.dim, self.components, temp=1.0, sigma_temp=1.0)
        return self.x


class TFLiteBaseline:
    """The same Keras model converted to TFLite and run with LiteRT, then NumPy sampling."""

    def __init__(self, model, dim, units, layers, components):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        with contextlib.redirect_stdout(io.StringIO()):  # the export's listing of endpoints
            flatbuffer = converter.convert()
        self.interpreter = Interpreter(model_content=flatbuffer)
        self.interpreter.allocate_tensors()
        names = ["inputs"] + [f"state_{k}_{i}" for i in range(layers) for k in "hc"]
        by_name = {
            d["name"].removeprefix("serving_default_").split(":")[0]: d["index"]
            for d in self.interpreter.get_input_details()
        }
        self.inputs = [by_name[name] for name in names]
        # Outputs are named "...:k" with k the position in the Keras model's outputs.
        self.outputs = [
            d["index"]
            for d in sorted(self.interpreter.get_output_details(), key=lambda d: int(d["name"].rsplit(":", 1)[1]))
        ]
        self.dim, self.components, self.units, self.layers = dim, components, units, layers
        self.reset()

    def reset(self):
        self.states = [np.zeros((1, self.units), np.float32)] * (2 * self.layers)
        self.x = np.zeros((1, 1, self.dim), np.float32)

    def run(self, x, states):
        interpreter = self.interpreter
        for index, value in zip(self.inputs, [x] + states):
            interpreter.set_tensor(index, value)
        interpreter.invoke()
        return [interpreter.get_tensor(index) for index in self.outputs]

    def step(self):
        outputs = self.run(self.x, self.states)
        params = outputs[0][0]
        self.states = outputs[1:]
        sample = mdn.sample_from_output(params, self.dim, self.components, temp=1.0, sigma_temp=1.0)
        self.x = sample.reshape(1, 1, self.dim).astype(np.float32)
        return sample


# ---------------------------------------------------------------- measurements
def step_latency(step, steps, warmup):
    """Median and p90 of one call of `step`, in microseconds."""
    for _ in range(warmup):
        step()
    times = np.empty(steps)
    clock = time.perf_counter
    for i in range(steps):
        start = clock()
        step()
        times[i] = clock() - start
    return np.median(times) * 1e6, np.percentile(times, 90) * 1e6


def sequence_throughput(reset, step, length, sequences):
    """Points per second generating `sequences` sequences of `length` steps one at a time."""
    start = time.perf_counter()
    for _ in range(sequences):
        reset()
        for _ in range(length):
            step()
    return sequences * length / (time.perf_counter() - start)


def generate_throughput(generator, batch_size, length):
    """Points per second of one `generate` call (already compiled for this shape)."""
    start = time.perf_counter()
    sequences = generator.generate(n=batch_size, max_steps=length, stop=False)
    elapsed = time.perf_counter() - start
    points = sum(len(s) for s in sequences)
    assert points == batch_size * length, "a sequence ended early; every one should run full length"
    return points / elapsed


def busy():
    """Synthetic load: spin one core until terminated."""
    while True:
        pass


def latency_percentiles(step, steps, warmup):
    """p50, p90 and p99 of one call of `step`, in microseconds."""
    for _ in range(warmup):
        step()
    times = np.empty(steps)
    clock = time.perf_counter
    for i in range(steps):
        start = clock()
        step()
        times[i] = clock() - start
    return tuple(np.percentile(times, [50, 90, 99]) * 1e6)


def load_test(args):
    """`step()` latency at batch size 1, idle and under `args.busy` busy processes, with
    BLAS held to one thread (as shipped) and with every BLAS thread."""
    from threadpoolctl import threadpool_info

    import mdnrnn.generate

    blas = ", ".join(f"{i['internal_api']} {i['version']} ({i['num_threads']} threads)" for i in threadpool_info())
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"NumPy {np.__version__} with {blas}; load average before: {os.getloadavg()[0]:.2f}"
    )
    shipped = mdnrnn.generate.SINGLE_THREAD_MAX_BATCH
    modes = {"one BLAS thread (as shipped)": shipped, "every BLAS thread": 0}
    rows = []
    for name in args.configs:
        (preset_name, overrides), _, description = CONFIGS[name]
        generator = mdnrnn.Generator(mdnrnn.build_model(mdnrnn.preset(preset_name, **overrides)), seed=0)
        generator.reset(1)
        for load in (0, args.busy):
            workers = [multiprocessing.Process(target=busy, daemon=True) for _ in range(load)]
            for worker in workers:
                worker.start()
            time.sleep(1.0 if load else 0.0)
            try:
                for mode, limit in modes.items():
                    mdnrnn.generate.SINGLE_THREAD_MAX_BATCH = limit
                    runs = [latency_percentiles(generator.step, args.steps, args.warmup) for _ in range(args.repeats)]
                    if args.verbose:
                        print(f"  {name}, {load} busy, {mode}: " + "; ".join("/".join(f"{v:.0f}" for v in r) for r in runs))
                    rows.append((name, f"{load} busy processes" if load else "no extra load", mode, min(runs)))
            finally:
                mdnrnn.generate.SINGLE_THREAD_MAX_BATCH = shipped
                for worker in workers:
                    worker.terminate()
                    worker.join()
    print(
        f"\n### `Generator.step()` latency, batch size 1 (us; the best of {args.repeats} runs of "
        f"{args.steps} steps by median)\n"
    )
    print("| config | load | BLAS threads | p50 | p90 | p99 |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for name, load, mode, (p50, p90, p99) in rows:
        print(f"| {name} | {load} | {mode} | {p50:,.1f} | {p90:,.1f} | {p99:,.1f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


def ours_throughput(args):
    """Points per second of `generate(n=1)` and `generate(n=args.batch)`, ours only."""
    print(f"# {platform.machine()}, {os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}")
    print(f"\n| config | call | first call (compiles), s | points/s, best of {args.repeats} |")
    print("| --- | --- | ---: | ---: |")
    for name in args.configs:
        (preset_name, overrides), _, _ = CONFIGS[name]
        generator = mdnrnn.Generator(mdnrnn.build_model(mdnrnn.preset(preset_name, **overrides)), seed=0)
        for batch in (1, args.batch):
            start = time.perf_counter()
            generator.generate(n=batch, max_steps=args.length, stop=False)
            first = time.perf_counter() - start
            rates = [generate_throughput(generator, batch, args.length) for _ in range(args.repeats)]
            if args.verbose:
                print(f"  {name} n={batch}: " + ", ".join(f"{r:,.0f}" for r in rates))
            print(f"| {name} | `generate(n={batch}, max_steps={args.length})` | {first:.1f} | {max(rates):,.0f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


OURS_STEP = "mdnrnn `Generator.step()`"
KERAS = "keras-mdn-layer, Keras call (IMPSY)"
TFLITE = "keras-mdn-layer, TFLite (LiteRT)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per latency run")
    parser.add_argument("--keras-steps", type=int, default=1000, help="timed steps of the Keras call (one run)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed steps before each latency run")
    parser.add_argument("--length", type=int, default=200, help="steps per sequence for throughput")
    parser.add_argument("--batch", type=int, default=64, help="large batch size for generate()")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each measurement; the best is reported")
    parser.add_argument("--verbose", action="store_true", help="print every repeat")
    parser.add_argument("--load", action="store_true", help="only step() latency, idle and under --busy load")
    parser.add_argument("--busy", type=int, default=2, help="busy processes for --load")
    parser.add_argument("--ours", action="store_true", help="only our generate() throughput")
    args = parser.parse_args(argv)
    if args.load:
        return load_test(args)
    if args.ours:
        return ours_throughput(args)
    import_baselines()

    keras.utils.set_random_seed(0)
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"NumPy {np.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"keras-mdn-layer {version('keras-mdn-layer')}, ai-edge-litert {version('ai-edge-litert')}; "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    latency_rows, throughput_rows = {}, {}  # (config, implementation) -> (median, p90) / points per second
    for name in args.configs:
        (preset_name, overrides), dim, description = CONFIGS[name]
        sizes = (dim, overrides["units"], overrides["layers"], overrides["components"])
        print(f"# config {name}: {description}", flush=True)
        generator = mdnrnn.Generator(mdnrnn.build_model(mdnrnn.preset(preset_name, **overrides)), seed=0)
        keras_baseline = KerasBaseline(impsy_model(*sizes), *sizes)
        tflite_baseline = TFLiteBaseline(impsy_model(*sizes, batch_size=1), *sizes)

        # Per-step latency at batch size 1. The three take turns in each repeat, so that
        # a burst of load from elsewhere falls on all of them alike.
        runs = {OURS_STEP: [], KERAS: [], TFLITE: []}
        generator.reset(1)
        for repeat in range(args.repeats):
            runs[OURS_STEP].append(step_latency(generator.step, args.steps, args.warmup))
            if repeat == 0:  # the slow one: one run
                runs[KERAS].append(step_latency(keras_baseline.step, args.keras_steps, args.warmup // 4))
            runs[TFLITE].append(step_latency(tflite_baseline.step, args.steps, args.warmup))
            if args.verbose:
                medians = (f"{who} {r[-1][0]:.1f}/{r[-1][1]:.1f} us" for who, r in runs.items())
                print(f"  latency repeat {repeat}: " + ", ".join(medians))
        for who, results in runs.items():
            latency_rows[name, who] = min(results, key=lambda r: r[0])  # the repeat with the lowest median

        # Whole sequences, in points per second.
        ours = {1: f"mdnrnn `generate(n=1)`", args.batch: f"mdnrnn `generate(n={args.batch})`"}
        for batch in ours:  # the first call for a shape traces and compiles (XLA): not timed
            start = time.perf_counter()
            generator.generate(n=batch, max_steps=args.length, stop=False)
            print(f"  first generate(n={batch}, max_steps={args.length}) call: {time.perf_counter() - start:.1f} s")
        runs = {label: [] for label in [*ours.values(), "mdnrnn `step()` loop", KERAS, TFLITE]}
        for repeat in range(args.repeats):
            for batch, label in ours.items():
                runs[label].append(generate_throughput(generator, batch, args.length))
            runs["mdnrnn `step()` loop"].append(
                sequence_throughput(lambda: generator.reset(1), generator.step, args.length, 5)
            )
            if repeat == 0:
                runs[KERAS].append(sequence_throughput(keras_baseline.reset, keras_baseline.step, args.length, 1))
            runs[TFLITE].append(sequence_throughput(tflite_baseline.reset, tflite_baseline.step, args.length, 5))
            if args.verbose:
                print(f"  throughput repeat {repeat}: " + ", ".join(f"{who} {r[-1]:,.0f}" for who, r in runs.items()))
        for who, results in runs.items():
            throughput_rows[name, who] = max(results)

    print(
        f"\n### Per-step latency, batch size 1 (us; best of {args.repeats} runs of {args.steps} steps; "
        f"the Keras call: one run of {args.keras_steps})\n"
    )
    print("| config | implementation | median | p90 | Keras call / this | TFLite / this |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for (name, who), (median, p90) in latency_rows.items():
        keras_median, tflite_median = latency_rows[name, KERAS][0], latency_rows[name, TFLITE][0]
        print(
            f"| {name} | {who} | {median:.1f} | {p90:.1f} | {keras_median / median:.1f}x "
            f"| {tflite_median / median:.2f}x |"
        )

    print(
        f"\n### Whole sequences of {args.length} steps (points/s; best of {args.repeats}, the Keras "
        "call once; baselines one sequence at a time)\n"
    )
    print("| config | implementation | points/s | this / Keras call | this / TFLite |")
    print("| --- | --- | ---: | ---: | ---: |")
    for (name, who), rate in throughput_rows.items():
        keras_rate, tflite_rate = throughput_rows[name, KERAS], throughput_rows[name, TFLITE]
        print(f"| {name} | {who} | {rate:,.0f} | {rate / keras_rate:.1f}x | {rate / tflite_rate:.1f}x |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
