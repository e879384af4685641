"""Training throughput and held-out NLL: mdnrnn against keras-mdn-layer 1.0.0 (RoboJam).

The RoboJam configuration: 2 x 256 LSTM, 5 mixture components, windows of 30 steps
of touch data (x, y, dt), batches of 256, from the RoboJam corpus shipped with mdnrnn
(`mdnrnn.datasets.path("robojam")`), or `--store`.

- ours: `mdnrnn.build_model(mdnrnn.preset("touch", units=256, layers=2, components=5,
  targets="rows"))` (Masking -> LSTM x 2 -> MixtureDensity, loss `MixtureNLL`, Adam with
  clipnorm 1.0). `targets="rows"`: the anchor sees (x, y, dt) and predicts the next
  (x, y, dt); the touch preset's own `targets="offsets"` would give ours 5-wide input
  rows and a different task, so the paired comparison keeps both on rows.
- anchor: the RoboJam model built with keras-mdn-layer 1.0.0: `keras.Sequential` of
  `LSTM(256, return_sequences=True)` x 2 -> `TimeDistributed(MDN(3, 5))`, loss
  `get_mixture_loss_func(3, 5)`, `Adam()`.

Both models train in this one process on the very same batches: the batches of
`mdnrnn.data.make_dataset(store, "train", 256, window=30)` are materialised as NumPy
arrays once and every model runs `fit` over them (`shuffle=False`, so batch i is the
same for all). Timed rounds are interleaved between the models (round r times every
model once, in an order that rotates from round to round, before round r + 1 starts)
after one untimed warm-up round (tracing, XLA compiling), so a change in machine load
hits all models alike. A round is a few batches (default 4), timed from the start of
the first batch to the end of the last (Keras' epoch callbacks). The report gives the
median and best ms/step over the rounds, the process CPU time per step, and the speed-up
over the anchor taken round by round (anchor ms / model ms in the same round, median
over rounds), which is the steadiest of these numbers on a shared machine.

Quality: every model starts from the same seed and trains the same number of steps on
the same batch sequence (epochs of the train split, reshuffled each epoch), and is
then scored on the same held-out windows (the store's valid split, every whole window
of 31 rows, `stride = window`). Both models train and are scored on whole windows only
(the anchor's loss has no weights for padding). Both scores are the mean negative log-likelihood per
step, in nats, of the same normalised continuous 3-D targets (x, y, dt normalised
with the store's train statistics): ours with `MixtureNLL` (all weights are 1: the
windows have no padding), the anchor with its own `get_mixture_loss_func(3, 5)`,
which is `mean(-log p)` over every (sequence, step) row too. As a check that the two
numbers measure the same thing, the anchor's parameters are also rearranged into
mdnrnn's layout and scored with `mdnrnn.mixture.mixture_distribution`; the script
prints the difference (it should be ~1e-6). It also prints the smallest component scale
each trained model predicts on the held-out steps (and the 0.1% quantile), to show
whether ours' floor `mixture.MIN_SCALE` (1e-4; the anchor's is about 1e-7) is near.

keras-mdn-layer is a benchmark-only dependency: keep it out of the project venv.
Either a separate venv (`python3.11 -m venv /tmp/benchvenv-train &&
/tmp/benchvenv-train/bin/pip install -e . keras-mdn-layer==1.0.0`) or the project
venv plus the unpacked wheel on `PYTHONPATH`:

    pip download --no-deps keras-mdn-layer==1.0.0 -d /tmp/kmdn && \\
        (cd /tmp/kmdn && unzip -o -q keras_mdn_layer-1.0.0-py3-none-any.whl)
    PYTHONPATH=/tmp/kmdn flock /tmp/mdnrnn-bench.lock \\
        .venv/bin/python scripts/bench_train.py --json /tmp/bench_train.json

Variants (`--variants`, comma-separated) name a model and compile overrides:
`ours` is `build_model` exactly as shipped (Keras' `jit_compile="auto"`: off on a
machine without a GPU); `ours:jit=1` / `ours:jit=0` recompiles it with `jit_compile`
on / off, `ours:jit=auto` lets `mdnrnn train --jit auto`'s calibration
(`train.time_training_steps` on the first timing batches, `train.choose_jit`) pick, and
prints what it measured and chose, `ours:targets=offsets` is the model with the
touch preset's own targets (x, y as offsets from the previous touch, their change as two
more input columns: `make_dataset(..., targets="offsets")` gives it the same windows in
the same order), `ours:clipnorm=0` with Adam's gradient clipping off (1.0
otherwise; 0 is none, as the anchor), `ours:lr=0.002` another Adam learning rate
(1e-3 otherwise, as the anchor), `ours:decay=0.999` the rate decayed per step towards 1e-5
(`OptimizerConfig.decay_rate`, `mdnrnn train --lr-decay`), `ours:scale=elu` the head's
scales as ELU + 1, keras-mdn-layer's activation (`MixtureSpec.scale_activation`,
`mdnrnn train --scale-activation`; the preset's otherwise), `ours:spe=8` with
`steps_per_execution=8`, `ours:precision=mixed_bfloat16` is `build_model(...,
precision="mixed_bfloat16")` (`mdnrnn train --precision mixed_bfloat16`: the LSTM stack in
bfloat16), and `ours:mask=0` drops the Masking layer (to price it; the shipped model keeps
it). Options combine: `ours:jit=0:mask=0`.
`anchor` and `anchor:jit=1` are the keras-mdn-layer model; `anchor:lr=0.002:decay=0.999`
gives it the same learning-rate schedule as ours (its Adam otherwise as its users run it,
without clipping), and `anchor:precision=mixed_bfloat16` its two LSTM layers in bfloat16
(`dtype="mixed_bfloat16"`; its MDN layer and loss stay float32), ours' precision setting.
`--check-xla` compares `MixtureNLL` eagerly and under XLA for every pen kind.

The paired speed-up ("vs anchor") and the time to quality are against the first anchor
variant listed (`anchor`, or `anchor:lr=0.002:decay=0.998` and the like).
Time to the anchor's quality: with both phases and an anchor variant, the report also
gives, for every other variant, the first evaluation (every `--eval-every` steps) at
which its held-out NLL is at or below the anchor's final one, and the wall-time ratio
that makes: anchor's steps / the variant's steps x the paired speed-up. Offset targets
score the same quantity as rows: an offset is the next normalised row minus the
previous one, a shift with unit Jacobian, so -log p of the offset is -log p of the row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", help="a touch store (default: made from the shipped RoboJam corpus in a temp dir)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--window", type=int, default=30)
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--components", type=int, default=5)
    p.add_argument("--variants", default="ours,anchor", help="comma-separated (see the module docstring)")
    p.add_argument("--timing-batches", type=int, default=4, help="batches per timed round (4)")
    p.add_argument("--rounds", type=int, default=20, help="timed rounds after one warm-up round (20)")
    p.add_argument("--quality-steps", type=int, default=400, help="training steps before the NLL (400; 0 skips)")
    p.add_argument("--eval-every", type=int, default=100, help="held-out NLL every this many steps (100)")
    p.add_argument("--check-xla", action="store_true", help="compare MixtureNLL eagerly and under XLA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results here")
    return p.parse_args(argv)


# ------------------------------------------------------------------- data
def _make_store(directory):
    from mdnrnn import datasets

    path = Path(directory) / "robojam.h5"
    corpus = datasets.path("robojam")
    subprocess.run(
        [sys.executable, "-m", "data_prep", "robojam", str(corpus), "--out", str(path)],
        check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
    )
    return path


def _materialise(dataset):
    """One epoch of (inputs, targets, weights) batches, as stacked NumPy arrays."""
    parts = [[np.asarray(t) for t in batch] for batch in dataset]
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def _full_windows(arrays):
    """The examples of `(inputs, targets, weights)` with no padding: the anchor's loss has
    no weights, so both models see only whole windows (a sequence's last, shorter window
    and sequences shorter than one window are left out)."""
    keep = np.all(arrays[2] == 1.0, axis=1)
    return tuple(a[keep] for a in arrays)


def _train_batches(store, args, n_batches, targets="rows"):
    """`n_batches` training batches of whole windows: epoch after epoch, each in a new order."""
    from mdnrnn import data

    dataset = data.make_dataset(store, "train", args.batch_size, window=args.window,
                                seed=args.seed, targets=targets)
    parts, have = [], 0
    while have < n_batches * args.batch_size:
        arrays = _full_windows(_materialise(dataset))  # a new iterator: a new epoch
        parts.append(arrays)
        have += len(arrays[0])
    return tuple(np.concatenate([p[i] for p in parts])[: n_batches * args.batch_size] for i in range(3))


# ----------------------------------------------------------------- models
class _Variant:
    """A model to time and score: its name, how to build it, how to score it."""

    def __init__(self, name, args, config):
        from mdnrnn.mixture import SCALE_ACTIVATIONS

        self.name = name
        base, *options = name.split(":")
        self.base = base
        self.options = dict(o.split("=") for o in options)
        self.args, self.config = args, config
        unknown = set(self.options) - {"jit", "spe", "mask", "targets", "clipnorm", "precision",
                                       "lr", "decay", "scale"}
        targets = self.options.get("targets", "rows")
        scale = self.options.get("scale", config.spec.scale_activation)
        if base not in ("ours", "anchor") or unknown or targets not in ("rows", "offsets") or (
                scale not in SCALE_ACTIVATIONS) or (
                base == "anchor" and not set(self.options) <= {"jit", "lr", "decay", "precision"}):
            raise SystemExit(f"unknown variant {name!r}")
        self.config = config.replace(targets=targets, scale_activation=scale)

    def build(self, arrays=None):
        """The compiled model; `arrays` (the timing batches) feed `jit=auto`'s calibration."""
        import keras

        if self.base == "anchor":
            import keras_mdn_layer as mdn

            k, d = self.config.spec.components, self.config.spec.dim
            lstm_dtype = self.options.get("precision", "float32")  # the MDN layer stays float32
            model = keras.Sequential([keras.Input((None, self.config.input_size))]
                                     + [keras.layers.LSTM(self.config.units, return_sequences=True,
                                                          dtype=lstm_dtype)
                                        for _ in range(self.config.layers)]
                                     + [keras.layers.TimeDistributed(mdn.MDN(d, k))])
            optimizer = keras.optimizers.Adam()  # as its users run it: the defaults, 1e-3
            if {"lr", "decay"} & set(self.options):
                from mdnrnn.models import OptimizerConfig

                optimizer = OptimizerConfig(learning_rate=float(self.options.get("lr", 1e-3)), clipnorm=0,
                                            decay_rate=float(self.options.get("decay", 1.0))).make()
            model.compile(loss=mdn.get_mixture_loss_func(d, k), optimizer=optimizer,
                          jit_compile=self.options.get("jit") == "1")
            return model
        from mdnrnn.models import OptimizerConfig, build_model

        optimizer = OptimizerConfig(learning_rate=float(self.options.get("lr", 1e-3)),
                                    clipnorm=float(self.options.get("clipnorm", 1.0)),
                                    decay_rate=float(self.options.get("decay", 1.0)))
        model = (_unmasked(self.config, optimizer) if self.options.get("mask") == "0"
                 else build_model(self.config, optimizer=optimizer,
                                  precision=self.options.get("precision", "float32")))
        overrides = {}
        if self.options.get("jit") == "auto":
            overrides["jit_compile"] = self._calibrate(arrays)
        elif "jit" in self.options:
            overrides["jit_compile"] = self.options["jit"] == "1"
        if "spe" in self.options:
            overrides["steps_per_execution"] = int(self.options["spe"])
        if overrides:
            _recompile(model, **overrides)
        return model

    def _calibrate(self, arrays):
        """What `mdnrnn train --jit auto` would choose, on these batches (once per variant)."""
        if getattr(self, "calibration", None):
            return self.calibration["jit_compile"]
        from mdnrnn import train
        from mdnrnn.models import build_model

        b = self.args.batch_size
        batches = [tuple(a[i:i + b] for a in arrays) for i in range(0, len(arrays[0]) - b + 1, b)]
        ms = train.time_training_steps(lambda: build_model(self.config), batches)
        jit = train.choose_jit(ms)
        self.calibration = {"xla_ms_per_step": ms[True], "no_xla_ms_per_step": ms[False], "jit_compile": jit}
        print(f"  {self.name}: XLA {ms[True]:.0f} ms/step, no XLA {ms[False]:.0f} ms/step "
              f"-> {'on' if jit else 'off'}", flush=True)
        return jit

    def fit(self, model, arrays, callbacks=()):
        inputs, targets, weights = arrays
        extra = {} if self.base == "anchor" else {"sample_weight": weights}
        model.fit(inputs, targets, batch_size=self.args.batch_size, epochs=1, shuffle=False,
                  verbose=0, callbacks=list(callbacks), **extra)

    def in_our_layout(self, params):
        """`params` as this model predicts them, in mdnrnn's layout."""
        return _anchor_to_our_layout(params, self.config.spec) if self.base == "anchor" else params

    def heldout_nll(self, params, arrays):
        """Mean NLL per step (nats) over all held-out steps of the model's predicted `params`,
        with its own loss; for the anchor also how far mdnrnn's NLL of them is from that."""
        import tensorflow as tf

        inputs, targets, weights = arrays
        if self.base == "anchor":
            import keras_mdn_layer as mdn

            k, d = self.config.spec.components, self.config.spec.dim
            own = float(mdn.get_mixture_loss_func(d, k)(tf.constant(targets), tf.constant(params)))
            return own, _our_nll(self.in_our_layout(params), targets, self.config.spec) - own
        from mdnrnn.mixture import MixtureNLL

        loss = MixtureNLL(self.config.spec)
        return float(loss(tf.constant(targets), tf.constant(params), sample_weight=weights)), None


def _recompile(model, **overrides):
    """Compiles `model` again as `build_model` did, with `overrides` on top."""
    import keras

    optimizer = type(model.optimizer).from_config(model.optimizer.get_config())
    settings = {"jit_compile": model.jit_compile, "steps_per_execution": model.steps_per_execution}
    settings.update(overrides)
    model.compile(optimizer=optimizer, loss=model.loss, **settings)
    return model


def _unmasked(config, optimizer):
    """`build_model(config)` without the Masking layer (the LSTMs get no mask)."""
    from mdnrnn.models import MixtureRNN, build_model

    class Unmasked(MixtureRNN):
        def call(self, inputs, training=False):
            x = inputs
            for lstm in self.lstms:
                x = lstm(x, training=training)
            return self.head(x)

        def compute_mask(self, inputs, mask=None):
            return None

    model = Unmasked(config)  # first, so that a seed gives it the same weights as `ours`
    model.build((None, None, config.input_size))
    shipped = build_model(config, optimizer=optimizer)  # for its compile settings only
    model.compile(optimizer=type(shipped.optimizer).from_config(shipped.optimizer.get_config()),
                  loss=shipped.loss, jit_compile=shipped.jit_compile,
                  steps_per_execution=shipped.steps_per_execution)
    return model


def _anchor_to_our_layout(params, spec):
    """keras-mdn-layer's [loc | scale | logits] -> mdnrnn's [logits | loc | scale]."""
    k, d = spec.components, spec.dim
    return np.concatenate([params[..., 2 * k * d:], params[..., : 2 * k * d]], axis=-1)


def _our_nll(params, targets, spec):
    """Mean NLL per step of `targets` under `params` (mdnrnn's layout), by mdnrnn.mixture."""
    from mdnrnn.mixture import mixture_distribution

    return float(-np.mean(mixture_distribution(params, spec).log_prob(targets)))


def _smallest_scales(params, spec):
    """The smallest component scale in `params` (mdnrnn's layout) and the 0.1% quantile
    (normalised units): whether `mixture.MIN_SCALE` (ours' floor) is near."""
    from mdnrnn.mixture import split_params

    scales = split_params(params, spec)[2]
    return float(np.min(scales)), float(np.quantile(scales, 0.001))


class _RoundTimer:
    """Wall and CPU time from the start of the epoch (first batch) to its end."""

    def __init__(self):
        import keras

        timer = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                timer.start = (time.perf_counter(), time.process_time())

            def on_epoch_end(self, epoch, logs=None):
                wall, cpu = time.perf_counter(), time.process_time()
                timer.wall, timer.cpu = wall - timer.start[0], cpu - timer.start[1]

        self.callback = Callback()


# ---------------------------------------------------------------- phases
def time_variants(variants, batches, args):
    """Median wall ms/step, CPU ms/step and sequences/s per variant, interleaved rounds.

    The order of the variants rotates from round to round, and each variant's speed-up
    over the anchor is also taken round by round (anchor ms / variant ms within the
    same round) before the median: on a shared machine that ratio is steadier than
    either time alone.
    """
    arrays = {v.name: batches[v.config.targets] for v in variants}
    n = args.timing_batches
    models = {v.name: v.build(arrays[v.name]) for v in variants}
    walls = {v.name: [] for v in variants}
    cpus = {v.name: [] for v in variants}
    for round_ in range(args.rounds + 1):  # round 0 is the warm-up (tracing, compiling)
        last = {}
        shift = round_ % len(variants)
        for v in variants[shift:] + variants[:shift]:
            timer = _RoundTimer()
            v.fit(models[v.name], arrays[v.name], [timer.callback])
            last[v.name] = 1000 * timer.wall / n
            if round_:
                walls[v.name].append(last[v.name])
                cpus[v.name].append(1000 * timer.cpu / n)
        print(f"  round {round_}{' (warm-up)' if not round_ else ''}: "
              + ", ".join(f"{v.name} {last[v.name]:.0f}" for v in variants) + " ms/step", flush=True)
    results = {}
    for v in variants:
        ms = statistics.median(walls[v.name])
        results[v.name] = {
            "ms_per_step": ms,
            "ms_per_step_rounds": [round(x, 1) for x in walls[v.name]],
            "best_ms_per_step": min(walls[v.name]),
            "cpu_ms_per_step": statistics.median(cpus[v.name]),
            "sequences_per_s": args.batch_size * 1000 / ms,
        }
        if getattr(v, "calibration", None):
            results[v.name]["jit_auto"] = v.calibration
        reference = _reference(walls)
        if reference:
            results[v.name]["paired_speedup"] = statistics.median(
                a / b for a, b in zip(walls[reference], walls[v.name]))
    return results


def score_variants(variants, train_batches, valid_batches, args):
    """Held-out NLL after every `eval_every` steps, all variants on the same batches."""
    import keras

    results = {}
    b = args.batch_size
    for v in variants:
        train_arrays, valid_arrays = train_batches[v.config.targets], valid_batches[v.config.targets]
        keras.utils.set_random_seed(args.seed)
        model = v.build(tuple(a[: 4 * b] for a in train_arrays))  # built before any calibration
        curve = []
        for start in range(0, args.quality_steps, args.eval_every):
            stop = min(start + args.eval_every, args.quality_steps)
            chunk = tuple(a[start * b : stop * b] for a in train_arrays)
            started = time.perf_counter()
            v.fit(model, chunk)
            params = model.predict(valid_arrays[0], batch_size=b, verbose=0)
            nll, check = v.heldout_nll(params, valid_arrays)
            curve.append({"steps": stop, "valid_nll": nll, "train_s": time.perf_counter() - started})
            print(f"  {v.name}: {stop} steps, held-out NLL {nll:.4f} nats/step", flush=True)
        smallest, q001 = _smallest_scales(v.in_our_layout(params), v.config.spec)
        print(f"  {v.name}: predicted scales on the held-out steps: smallest {smallest:.2e}, "
              f"0.1% quantile {q001:.2e} (normalised units)", flush=True)
        results[v.name] = {"valid_nll": curve[-1]["valid_nll"], "curve": curve,
                           "layout_check": check, "smallest_scale": smallest, "scale_q001": q001}
    return results


def check_xla():
    """Max |eager - XLA| of MixtureNLL for each pen kind, on random parameters and targets."""
    import tensorflow as tf

    from mdnrnn.mixture import MixtureNLL, MixtureSpec

    rng = np.random.default_rng(0)
    out = {}
    for spec in (MixtureSpec(3, 5), MixtureSpec(2, 10, "bernoulli"), MixtureSpec(2, 10, "categorical")):
        params = tf.constant(rng.normal(size=(8, 30, spec.params_size)), tf.float32)
        k, d = spec.components, spec.dim
        params = tf.concat([params[..., : k + k * d], tf.nn.softplus(params[..., k + k * d : k + 2 * k * d]),
                            params[..., k + 2 * k * d :]], -1)
        targets = rng.normal(size=(8, 30, spec.target_size))
        if spec.pen == "bernoulli":
            targets[..., -1] = rng.integers(0, 2, size=(8, 30))
        elif spec.pen == "categorical":
            targets[..., -1] = rng.integers(0, 3, size=(8, 30))
        targets = tf.constant(targets, tf.float32)
        weights = tf.constant(rng.integers(0, 2, size=(8, 30)), tf.float32)
        loss = MixtureNLL(spec)
        eager = loss.call(targets, params).numpy()
        xla = tf.function(loss.call, jit_compile=True)(targets, params).numpy()
        mean_eager = float(loss(targets, params, sample_weight=weights))
        mean_xla = float(tf.function(lambda t, p, w: loss(t, p, sample_weight=w), jit_compile=True)(targets, params, weights))
        out[f"dim={spec.dim} K={spec.components} pen={spec.pen}"] = {
            "max_abs_diff_per_step": float(np.max(np.abs(eager - xla))),
            "mean_eager": mean_eager, "mean_xla": mean_xla,
        }
    return out


def main(argv=None):
    args = _parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from mdnrnn import data
    from mdnrnn.models import preset
    from mdnrnn.train import prepare_config

    results = {"load_before": os.getloadavg(), "cpus": os.cpu_count(),
               "tensorflow": tf.__version__, "keras": keras.__version__}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        store = Path(args.store) if args.store else _make_store(tmp)
        config = prepare_config(store, preset("touch", units=args.units, layers=args.layers,
                                              components=args.components, targets="rows"))
        variants = [_Variant(name, args, config) for name in args.variants.split(",")]
        results["settings"] = {k: v for k, v in vars(args).items()}
        if args.check_xla:
            results["xla_check"] = check_xla()
            print("MixtureNLL eager vs XLA:", json.dumps(results["xla_check"], indent=1))
        forms = sorted({v.config.targets for v in variants})
        if args.timing_batches and args.rounds:
            arrays = {t: _train_batches(store, args, args.timing_batches, t) for t in forms}
            print(f"timing {len(variants)} models, {args.timing_batches} batches of "
                  f"{args.batch_size} x {args.window} per round, {args.rounds} rounds", flush=True)
            results["timing"] = time_variants(variants, arrays, args)
        if args.quality_steps:
            train_arrays = {t: _train_batches(store, args, args.quality_steps, t) for t in forms}
            valid_arrays = {t: _full_windows(_materialise(data.make_dataset(
                store, "valid", args.batch_size, window=args.window, shuffle=False, targets=t))) for t in forms}
            first = valid_arrays[forms[0]]
            if any(not np.array_equal(a[2], first[2]) for a in valid_arrays.values()):
                raise RuntimeError("the target forms should score the same held-out steps")
            results["valid_steps"] = int(first[2].sum())
            print(f"scoring after {args.quality_steps} steps on {len(first[0])} held-out windows "
                  f"({results['valid_steps']} steps)", flush=True)
            results["quality"] = score_variants(variants, train_arrays, valid_arrays, args)
            if "timing" in results and _reference(results["quality"]):
                results["time_to_anchor_nll"] = time_to_anchor_nll(results)
    results["load_after"] = os.getloadavg()
    _print_table(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _reference(names):
    """The anchor variant the others are compared with: the first one listed, or None."""
    return next((name for name in names if name.split(":")[0] == "anchor"), None)


def time_to_anchor_nll(results):
    """Per variant: steps to reach the anchor's final held-out NLL, and the wall-time ratio."""
    curves = {name: q["curve"] for name, q in results["quality"].items()}
    reference = _reference(curves)
    target = curves[reference][-1]["valid_nll"]
    anchor_steps = next(p["steps"] for p in curves[reference] if p["valid_nll"] <= target)
    out = {}
    for name, curve in curves.items():
        steps = next((p["steps"] for p in curve if p["valid_nll"] <= target), None)
        speedup = results["timing"][name]["paired_speedup"]
        out[name] = {"anchor_nll": target, "steps": steps, "anchor_steps": anchor_steps,
                     "time_ratio": None if steps is None else speedup * anchor_steps / steps}
    return out


def _print_table(results, args):
    timing, quality = results.get("timing", {}), results.get("quality", {})
    names = list(timing or quality)
    anchor = _reference(timing)
    print()
    print(f"| model | sequences/s | ms/step (median) | ms/step (best) | CPU ms/step | vs anchor (paired) | "
          f"held-out NLL after {args.quality_steps} steps |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        t, q = timing.get(name), quality.get(name)
        speed = f"{t['paired_speedup']:.2f}x" if t and anchor else "-"
        print(f"| {name} | {t['sequences_per_s']:.0f} | {t['ms_per_step']:.0f} | {t['best_ms_per_step']:.0f} | "
              f"{t['cpu_ms_per_step']:.0f} | {speed} | " if t else f"| {name} | - | - | - | - | - | ", end="")
        print(f"{q['valid_nll']:.4f} |" if q else "- |")
    for name, t in results.get("time_to_anchor_nll", {}).items():
        if name == _reference(results["quality"]):
            continue
        reached = (f"after {t['steps']} steps (anchor: {t['anchor_steps']}): {t['time_ratio']:.2f}x the anchor's speed "
                   "to that quality" if t["steps"] else "not within the steps run")
        print(f"{name} reaches the anchor's final held-out NLL ({t['anchor_nll']:.4f}) {reached}")
    for name, q in quality.items():
        if q.get("layout_check") is not None:
            print(f"{name}: its NLL recomputed with mdnrnn.mixture differs by {q['layout_check']:.2e} nats/step")
    print(f"load average before {results['load_before']}, after {results['load_after']} ({results['cpus']} CPUs)")


if __name__ == "__main__":
    sys.exit(main())
