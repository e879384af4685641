"""Training on a sequence store: run directory, checkpoints, resume, early stopping.

A run directory holds everything one training run writes:

    config.json        the ModelConfig and training settings (written first)
    last.keras         the model after the last finished epoch, optimizer state included
    best.keras         the model with the lowest validation NLL so far
    state.json         epochs finished, best validation NLL, optimizer steps, XLA on or off
    history.csv        per-epoch train and valid NLL (nats/step)
    logs/              TensorBoard event files
    model.keras        the final model (the best one), written when training ends
    loss.svg           the loss curves

`--resume` reloads `last.keras` (weights and optimizer state) and `state.json` and
continues with the next epoch.
`TrainSettings.init_from` (`mdnrnn train --init-from`) starts a new run from a trained
model's weights, its config and normalisation kept, with a fresh optimizer: fine-tuning,
on other data or with other settings.

With `distribute="multiworker"` every worker runs the same `train` call, each with its
own `TF_CONFIG`; only the chief (task `chief`, or `worker` 0 when the cluster has no
chief) writes the run directory. The other workers make the same saves (a save can
need every worker) into a directory of their own, `worker_dir` or a temporary one
removed at the end, and on `resume` read the chief's run directory. docs/scale.md has
the recipe.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import svgwrite

from mdnrnn._tf import keras, tf
from mdnrnn import atomic, data, formats, outdir
from mdnrnn.models import (PRECISIONS, PRESET_OPTIMIZERS, MixtureRNN, ModelConfig, OptimizerConfig, build_model,
                            load_model)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How to train (everything except the model's own shape).

    Args:
        epochs: Last epoch to train to. Defaults to 20.
        batch_size: Sequences (or windows) per batch. Defaults to 64.
        learning_rate: Adam's initial learning rate; `None`: the preset's
            (`models.PRESET_OPTIMIZERS`, 1e-3 today).
        clipnorm: Gradient norm clipping, 0 for none; `None`: the preset's (`kanji` and
            `touch`: 0, the others 1.0).
        lr_decay: Per-step decay rate of sketch-rnn's schedule (see
            `models.OptimizerConfig`), 1.0 for a constant rate; `None`: the preset's (1.0).
        min_learning_rate: The schedule's floor; `None`: the preset's (1e-5).
        max_seq_len: Drawings (or whole sequences) longer than this are left out of
            training and validation (sketch-rnn's filter); `None`: no limit.
        scale_augment: Drawings: random per-drawing scale of dx and dy in
            `[1 - s, 1 + s]` during training (sketch-rnn uses 0.15); 0 is off.
        drop_points: Drawings: probability of dropping a mid-stroke point during
            training (sketch-rnn's `augment_strokes`); 0 is off.
        bucket: Whole sequences (drawings) in one process: training batches of drawings
            of similar length, so that less of each batch is padding (`data.make_dataset`'s
            `bucket`; on KanjiVG the same held-out NLL in about three quarters of the time,
            docs/benchmarks.md). Windows (one length) and `distribute` runs (equal replica
            slices) train on random batches. Defaults to `True`.
        input_noise: Offset targets (the touch preset): standard deviation of Gaussian
            noise on the training inputs' change columns, in model units (see
            `data.make_dataset`); 0 is off. Validation batches have none.
        window: Steps per training window for touch and IMPSY stores (`None` for
            whole drawings). Defaults to `None`.
        patience: Epochs without a better validation NLL before stopping. Defaults to 5.
        seed: Seed for weights and batch order. Defaults to 0.
        steps_per_epoch: Cap on batches per epoch (`None`: the whole split).
        distribute: `None`, `"mirrored"` or `"multiworker"` (see `make_strategy`); the
            batch size is the global one, split across the replicas.
        jit: XLA for the training step: `"on"`, `"off"`, or `"auto"`, which times a
            few steps each way before training and keeps the faster (see `choose_jit`).
            Defaults to `"auto"`.
        max_minutes: Stop at the end of the first epoch that ends after this many
            minutes of this call's training (for comparisons at equal training time; with
            `--resume`, the resumed part's own budget); `None`: no limit.
        input_sharding: Multi-worker input (see `datasets`): `"batch"`, every worker
            reads its slice of the global batches from all files (the same batches as
            one process), or `"file"`, every worker reads only its own store files.
            Defaults to `"batch"`.
        init_from: Start from a trained model's weights instead of random ones (a
            `.keras` file or a pretrained name, as `load_model` takes): fine-tuning. The
            run keeps that model's config, its sizes and its normalisation (the weights
            expect it), whatever the store's statistics; only `min_steps` is the new
            store's. `None`: random weights from the seed.
        precision: The training model's compute dtype (`build_model`'s `precision`):
            `"float32"`, or `"mixed_bfloat16"`, the LSTM stack in bfloat16, which can be
            faster where the processor multiplies bfloat16 natively (docs/benchmarks.md).
            The saved model is float32 either way. Defaults to `"float32"`.

    Raises:
        ValueError: For a `jit` that is not one of `JIT_MODES`, a `precision` not in
            `models.PRECISIONS`, or an `input_sharding`
            that is not one of `INPUT_SHARDINGS` (or `"file"` without `"multiworker"`).
    """

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float | None = None
    window: int | None = None
    patience: int = 5
    seed: int = 0
    steps_per_epoch: int | None = None
    distribute: str | None = None
    clipnorm: float | None = None
    lr_decay: float | None = None
    min_learning_rate: float | None = None
    max_seq_len: int | None = None
    scale_augment: float = 0.0
    drop_points: float = 0.0
    bucket: bool = True
    input_noise: float = 0.0
    jit: str = "auto"
    input_sharding: str = "batch"
    max_minutes: float | None = None
    init_from: str | None = None
    precision: str = "float32"

    def __post_init__(self):
        if self.jit not in JIT_MODES:
            raise ValueError(f"Received an invalid value for `jit`, expected one of {JIT_MODES}. "
                             f"Received: jit={self.jit!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"Received an invalid value for `precision`, expected one of {PRECISIONS}. "
                             f"Received: precision={self.precision!r}")
        if self.input_sharding not in INPUT_SHARDINGS:
            raise ValueError(f"Received an invalid value for `input_sharding`, expected one of "
                             f"{INPUT_SHARDINGS}. Received: input_sharding={self.input_sharding!r}")
        if self.max_minutes is not None and not (isinstance(self.max_minutes, (int, float))
                                                 and math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise ValueError(f"Received an invalid value for `max_minutes`, expected a positive number "
                             f"of minutes or None. Received: max_minutes={self.max_minutes!r}")
        if self.input_sharding == "file" and self.distribute != "multiworker":
            raise ValueError("input_sharding='file' shares the store files out among the workers of a "
                             f"multi-worker run; this run has distribute={self.distribute!r}.")

    def optimizer(self, preset: str | None) -> OptimizerConfig:
        """The `OptimizerConfig`: these settings, the preset's defaults for the unset ones."""
        defaults = PRESET_OPTIMIZERS.get(preset, OptimizerConfig())
        given = {"learning_rate": self.learning_rate, "clipnorm": self.clipnorm,
                 "decay_rate": self.lr_decay, "min_learning_rate": self.min_learning_rate}
        given = {k: v for k, v in given.items() if v is not None}
        if self.min_learning_rate is None and self.learning_rate is not None:
            given["min_learning_rate"] = min(defaults.min_learning_rate, self.learning_rate)  # a floor below it
        return dataclasses.replace(defaults, **given)

    def resolved(self, preset: str | None) -> "TrainSettings":
        """These settings with every optimizer field filled in (what a run saves)."""
        optimizer = self.optimizer(preset)
        return dataclasses.replace(self, learning_rate=optimizer.learning_rate, clipnorm=optimizer.clipnorm,
                                   lr_decay=optimizer.decay_rate, min_learning_rate=optimizer.min_learning_rate)


JIT_MODES = ("auto", "on", "off")
INPUT_SHARDINGS = ("batch", "file")
# `jit="auto"`: timed training steps per mode, after one untimed step that compiles.
JIT_CALIBRATION_STEPS = 6

STRATEGIES = (None, "mirrored", "multiworker")


def make_strategy(name: str | None) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy for `name`.

    `None`: the default (one device). `"mirrored"`: every local GPU (or the CPU).
    `"multiworker"`: several machines, each running the same command with its own
    `TF_CONFIG` environment variable (the cluster and this worker's index).

    Raises:
        ValueError: For an unknown name.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown distribution strategy {name!r}; expected one of {STRATEGIES}.")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(distribute: str | None) -> bool:
    """Whether this process writes the run directory: always, except a multi-worker
    worker that is not the chief (`TF_CONFIG`'s task `chief`, or `worker` 0 when the
    cluster has no chief)."""
    if distribute != "multiworker":
        return True
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task") or {}
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in tf_config.get("cluster", {})


def clip_after_all_reduce(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Makes `optimizer` clip the summed gradient of all replicas, as one device would.

    Keras 3 clips (`clipnorm`, `global_clipnorm`, `clipvalue`) each replica's gradient
    before the all-reduce that sums them, so under `tf.distribute` a step whose
    gradient is clipped differs from the same step on one device (the sum of clipped
    parts is not the clipped sum). This moves the clipping after the sum, on this
    optimizer object only (its saved config is unchanged). On one device the sum is the
    gradient itself, so nothing changes there. `train` applies it to every model it fits.

    Returns:
        `optimizer`.
    """
    clip, all_reduce = optimizer._clip_gradients, optimizer._all_reduce_sum_gradients  # noqa: SLF001

    def all_reduce_then_clip(grads_and_vars):
        reduced = list(all_reduce(grads_and_vars))
        clipped = clip([g for g, _ in reduced])
        return [(g, v) for g, (_, v) in zip(clipped, reduced)]

    optimizer._clip_gradients = lambda grads: grads  # noqa: SLF001
    optimizer._all_reduce_sum_gradients = all_reduce_then_clip  # noqa: SLF001
    return optimizer


def choose_jit(ms_per_step: dict[bool, float]) -> bool:
    """Whether to train with XLA, from measured step times.

    Args:
        ms_per_step: Milliseconds per training step with XLA (key `True`) and
            without it (key `False`).

    Returns:
        `True` when the step with XLA was faster; a tie keeps XLA off (no compiling).
    """
    return ms_per_step[True] < ms_per_step[False]


def time_training_steps(make_model, batches, steps: int = JIT_CALIBRATION_STEPS,
                        clock=time.perf_counter) -> dict[bool, float]:
    """Median milliseconds per training step with XLA and without, measured side by side.

    Two throw-away models from `make_model()` (one per mode) first take one untimed
    step each on `batches[0]` (tracing and compiling), then `steps` timed steps each on
    the next batches (cycling through `batches`). The two modes alternate step by step,
    and which goes first alternates too, so a change in machine load hits both alike.

    Args:
        make_model: Builds a fresh compiled model; called twice.
        batches: `(inputs, targets, weights)` batches, all of one shape (XLA compiles
            once per shape: a new shape would time a compile, not a step).
        steps: Timed steps per mode. Defaults to `JIT_CALIBRATION_STEPS`.
        clock: Seconds, for timing. Defaults to `time.perf_counter`.

    Returns:
        `{True: ms per step with XLA, False: ms per step without}`; `math.inf` with
        XLA when its first step fails (for example variables on several CPU devices
        under `MirroredStrategy`, which XLA cannot reach).

    Raises:
        tf.errors.OpError: From a step without XLA.
    """
    models = {}
    inputs, targets, weights = batches[0]
    for jit in (True, False):
        model = make_model()
        model.jit_compile = jit
        try:
            model.train_on_batch(inputs, targets, sample_weight=weights)
        except tf.errors.OpError:
            if not jit:
                raise
            continue  # XLA cannot run this step here: not a choice
        models[jit] = model
    seconds = {True: [], False: []}
    for i in range(steps):
        inputs, targets, weights = batches[(i + 1) % len(batches)]
        for jit in ((True, False) if i % 2 == 0 else (False, True)):
            if jit in models:
                start = clock()
                models[jit].train_on_batch(inputs, targets, sample_weight=weights)  # returns NumPy: synchronous
                seconds[jit].append(clock() - start)
    return {jit: 1000 * statistics.median(times) if times else math.inf for jit, times in seconds.items()}


def _first_batches(dataset, count: int) -> list:
    """Up to `count` batches from the start of `dataset` with the shape of its first."""
    batches = []
    for batch in dataset.take(count):
        if batches and batch[0].shape != batches[0][0].shape:
            continue  # the smaller last batch of a short epoch
        batches.append(batch)
    return batches


def resolve_jit(settings: TrainSettings, config: ModelConfig, make_model, make_train_data,
                *, measure=None) -> tuple[bool, str]:
    """Whether the run trains with XLA, and one line saying how that was decided.

    `settings.jit` `"on"` and `"off"` decide alone. `"auto"` measures, except where a
    short measurement cannot be fair or the workers could disagree:

    - Fixed-shape batches (touch and IMPSY windows): `measure(make_model, batches)`
      times training steps on the first batches of the training data, with XLA and without,
      and `choose_jit` keeps the faster.
    - Drawings: off, unmeasured. Their batches come in many lengths and XLA compiles
      each new shape (seconds each); a few steps would time compiles that a long run
      spreads over many epochs, so no short measurement is fair. Kanji trained 10x
      slower with XLA (docs/benchmarks.md).
    - `distribute="multiworker"`: off, unmeasured, so that every worker chooses alike
      (each would measure its own machine and load).

    Args:
        settings: The run's `TrainSettings`.
        config: The model's `ModelConfig`.
        make_model: Builds a fresh compiled throw-away model of the run's config.
        make_train_data: Makes the training dataset of `(inputs, targets, weights)`
            batches; called by `"auto"` only (a dataset of its own, so the run's own
            batches are unchanged).
        measure: A stand-in for `time_training_steps`, with its signature (tests).
            Defaults to `time_training_steps`.

    Returns:
        `(jit_compile, line)`.
    """
    if settings.jit != "auto":
        return settings.jit == "on", f"jit {settings.jit}: XLA {settings.jit} (--jit {settings.jit})"
    if settings.distribute == "multiworker":
        return False, "jit auto: off (multiworker: every worker must choose alike; --jit on forces XLA)"
    if config.spec.pen is not None:
        return False, ("jit auto: off (drawings: batches of many lengths, and XLA compiles each new one; "
                       "--jit on forces XLA)")
    batches = _first_batches(make_train_data(), JIT_CALIBRATION_STEPS + 1)
    ms = (measure or time_training_steps)(make_model, batches)
    jit = choose_jit(ms)
    xla = f"{ms[True]:.0f} ms/step" if math.isfinite(ms[True]) else "failed to run here"
    return jit, f"jit auto: XLA {xla}, no XLA {ms[False]:.0f} ms/step -> {'on' if jit else 'off'}"


class TrainingError(RuntimeError):
    """Training stopped for a reason the user must know about (for example NaN loss)."""


def _save_atomic(model, path: Path):
    with atomic.replacing(path, suffix=".tmp.keras") as temp:  # Keras wants the .keras suffix
        model.save(temp)


def _write_json_atomic(obj, path: Path):
    atomic.write_atomically(path, json.dumps(obj, indent=2).encode())


class _RunCheckpoint(keras.callbacks.Callback):
    """Saves last/best models and the run state after each epoch; guards against NaN."""

    def __init__(self, run_dir: Path, best: float):
        super().__init__()
        self.run_dir = run_dir
        self.best = best
        self.nan_at = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.nan_at = batch
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        values = [logs.get("loss"), logs.get("val_loss")]
        if self.nan_at is not None or not all(v is not None and math.isfinite(v) for v in values):
            self.model.stop_training = True
            self.nan_at = self.nan_at if self.nan_at is not None else -1
            return  # keep the last good checkpoint as it is
        _save_atomic(self.model, self.run_dir / "last.keras")
        if logs["val_loss"] < self.best:
            self.best = float(logs["val_loss"])
            _save_atomic(self.model, self.run_dir / "best.keras")
        _write_json_atomic(
            {
                "epochs_done": epoch + 1,
                "best_val_loss": self.best,
                "optimizer_steps": int(self.model.optimizer.iterations.numpy()),
                "jit_compile": bool(self.model.jit_compile),
            },
            self.run_dir / "state.json",
        )


class _TimeBudget(keras.callbacks.Callback):
    """Stops training at the end of the first epoch that ends after `minutes` of it."""

    def __init__(self, minutes: float, clock=time.monotonic):
        super().__init__()
        self.seconds, self.clock = 60.0 * minutes, clock

    def on_train_begin(self, logs=None):
        self.start = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = self.clock() - self.start
        if elapsed >= self.seconds:
            self.model.stop_training = True
            print(f"time budget: {elapsed / 60:.1f} of {self.seconds / 60:g} minutes used after epoch "
                  f"{epoch + 1}; training stops here", flush=True)


def start_config(init_from, config: ModelConfig | None) -> ModelConfig:
    """The config of the model a fine-tuning run starts from (`TrainSettings.init_from`).

    Raises:
        ValueError: If `config` is given and is not that model's (its sizes are fixed by
            the weights), or the file is not an mdnrnn model.
        FileNotFoundError: If there is no such model.
    """
    start = load_model(init_from).config
    if config is not None and config != start:
        raise ValueError(f"init_from={str(init_from)!r} fixes the model's config (its weights need it); "
                         "pass config=None, or a config equal to that model's.")
    return start


def prepare_config(store_path, config: ModelConfig, keep_normalisation: bool = False) -> ModelConfig:
    """Fits a config to a store: checks the kind, sets dim (IMPSY), normalisation,
    `min_steps` (stroke-5 models: the train split's shortest drawing) and
    `tempo_quantiles` (tempo-conditioned touch models).

    `store_path` may name several stores (anything `data.open_stores` opens: a shard
    directory, a list, a pattern); their statistics are the set's. `keep_normalisation`
    (fine-tuning a trained model) keeps the config's own mean and std, and then the
    store's columns must match the config's.

    Raises:
        ValueError: If the store's kind does not match the config's `data_kind` (or, with
            `keep_normalisation`, its number of columns).
    """
    with data.open_stores(store_path, check_values=False) as store:
        if store.kind != config.data_kind:
            raise ValueError(
                f"{store.path} is a {store.kind!r} store but the model expects "
                f"{config.data_kind!r} data (preset {config.preset!r})."
            )
        if keep_normalisation:
            if len(store.mean) != len(config.mean):
                raise ValueError(f"{store.path} has {len(store.mean)} columns but the model to fine-tune "
                                 f"was trained on {len(config.mean)}.")
            changes = {}
        else:
            changes = {"mean": tuple(store.mean), "std": tuple(store.std)}
            if config.dt_scale == "log" or config.beats:
                changes.update(_dt_statistics(store, config))
            if config.tempo:
                changes["tempo_quantiles"] = _tempo_quantiles(store)
        train_split = store.split("train") if "train" in store.split_names else []
        if config.spec.pen == "categorical" and len(train_split):
            # Generation's stop rule: no "end of drawing" before the shortest drawing's length.
            changes["min_steps"] = int(store.lengths[train_split].min())
        if config.data_kind == "impsy":
            changes["dim"] = len(store.mean)
        return config.replace(**changes)


def _dt_statistics(store, config: ModelConfig) -> dict:
    """`mean` and `std` with the dt column's replaced by those of dt as the model sees
    it over the train split (every member of a store set): pauses in beats of each
    performance's tempo (`beats`, `formats.dt_in_beats`), then `log(dt +
    LOG_DT_SHIFT)` (`dt_scale="log"`)."""
    column = formats.default_columns(config.data_kind, config.spec.dim).index("dt")
    values = []
    for member in getattr(store, "stores", [store]):
        if "train" not in member.split_names:
            continue
        for i in member.split("train"):
            dt = np.asarray(member[int(i)][:, column], np.float64)
            if config.beats:  # the performance's tempo, from the dt just read
                dt = formats.dt_in_beats(dt, formats.touch_tempo(dt))
            values.append(np.log(dt + formats.LOG_DT_SHIFT) if config.dt_scale == "log" else dt)
    values = np.concatenate(values) if values else np.zeros(0)
    if len(values) < 2 or not values.std() > 0:
        raise ValueError(f"{store.path}: the train split has too few distinct dt values for "
                         f"dt_scale={config.dt_scale!r}, beats={config.beats}.")
    mean, std = list(store.mean), list(store.std)
    mean[column], std[column] = float(values.mean()), float(values.std())
    return {"mean": tuple(mean), "std": tuple(std)}


def _tempo_quantiles(store) -> tuple[float, ...]:
    """`formats.TEMPO_QUANTILES` evenly spaced quantiles of the train split's performance
    tempos (`formats.touch_tempo`; every member of a store set), for `tempo=True`."""
    tempos = np.concatenate([data.performance_tempos(member, member.split("train"))
                             for member in getattr(store, "stores", [store]) if "train" in member.split_names]
                            or [np.zeros(0)])
    if len(tempos) < 2:
        raise ValueError(f"{store.path}: the train split needs at least 2 performances for tempo conditioning.")
    return tuple(float(q) for q in np.quantile(tempos, np.linspace(0.0, 1.0, formats.TEMPO_QUANTILES)))


def check_examples(store_path, config: ModelConfig, settings: TrainSettings):
    """Checks the whole store, and that its train and valid splits yield examples.

    Raises:
        StoreError: if the store is damaged or a split is missing or empty.
        ValueError: naming the store, the split and why it yields nothing.
    """
    options = _example_options(config, settings)
    with data.open_stores(store_path) as store:
        for split in ("train", "valid"):
            store.require_split(split)
            count = data.count_examples(store, split, **options)
            if count.examples == 0:
                lengths = store.lengths[store.split(split)]
                if settings.max_seq_len is not None:
                    raise ValueError(f"{store.path}: no {split} drawing has at most --max-seq-len "
                                     f"{settings.max_seq_len} points; the shortest has {int(lengths.min())}.")
                raise ValueError(f"{store.path}: no {split} sequence is long enough; each example "
                                 f"needs 2 points, the longest has {int(lengths.max())}.")


def datasets(store_path, config: ModelConfig, settings: TrainSettings, strategy=None):
    """The train and valid pipelines for a config.

    Without `strategy` (or one that is not multi-worker) these are `tf.data` datasets of
    whole batches of `settings.batch_size`; `fit` splits each among the local replicas.

    Under `MultiWorkerMirroredStrategy` they are distributed datasets, built on each
    worker by `worker_datasets` (`settings.input_sharding` says how). The batch size is
    the global one and must be a multiple of the number of workers W, and each worker
    holds one replica (start one worker per GPU).

    Raises:
        ValueError: for a batch size that does not divide among the workers, a worker
            with several replicas, or (sharding by file) fewer store files than workers.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return _make_dataset(store_path, "train", config, settings), _make_dataset(store_path, "valid", config, settings)
    workers = strategy.extended._num_workers  # noqa: SLF001 (no public accessor)
    if strategy.num_replicas_in_sync != workers:
        raise ValueError(
            f"--distribute multiworker runs one replica per worker; this cluster has "
            f"{strategy.num_replicas_in_sync} replicas on {workers} workers. Start one worker "
            "per GPU (CUDA_VISIBLE_DEVICES)."
        )

    def distributed(split):
        def dataset_fn(context: tf.distribute.InputContext):
            return worker_datasets(store_path, config, settings, context.input_pipeline_id,
                                   context.num_input_pipelines)[split]

        return strategy.distribute_datasets_from_function(dataset_fn)

    return distributed("train"), distributed("valid")


def _make_dataset(store, split, config, settings, batch_size=None, replica_slices=None, seed=None, steps=None):
    """One split's pipeline with the settings' options; `steps`: exactly that many full batches."""
    # Normalised as the model's config says (a fine-tuned model keeps its own statistics).
    kwargs = dict(_example_options(config, settings), targets=config.targets, replica_slices=replica_slices,
                  stats=None if config.mean is None else (config.mean, config.std), dt_scale=config.dt_scale,
                  tempo_quantiles=config.tempo_quantiles, beats=config.beats, drop_remainder=bool(steps))
    batch_size = batch_size or settings.batch_size
    if split == "train":
        augment = data.Augmentation(settings.scale_augment, settings.drop_points)
        dataset = data.make_dataset(store, "train", batch_size, seed=settings.seed if seed is None else seed,
                                    augment=augment if augment else None, input_noise=settings.input_noise,
                                    bucket=settings.bucket and kwargs["window"] is None and settings.distribute is None,
                                    **kwargs)
        steps = steps or settings.steps_per_epoch
    else:
        dataset = data.make_dataset(store, "valid", batch_size, shuffle=False, **kwargs)
    if steps:
        dataset = dataset.repeat().take(steps)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    return dataset


def _example_options(config, settings):
    """The `make_dataset` / `count_examples` options that decide what an example is."""
    return dict(pen=config.spec.pen, window=settings.window if config.spec.pen is None else None,
                max_seq_len=settings.max_seq_len)


def worker_datasets(store_path, config: ModelConfig, settings: TrainSettings, worker: int, workers: int):
    """Worker `worker`'s `{"train": ..., "valid": ...}` pipelines of a `workers`-worker run.

    `settings.input_sharding == "batch"`: every worker draws the same global batches from
    the same seed and keeps its own slice of each (`make_dataset`'s `replica_slices`), so a
    step of the workers trains on exactly the batch a single process would (the last,
    smaller batch of an epoch is dropped).

    `"file"`: worker `i` reads only its own store files (`StoreSet.files_for`: files `i`,
    `i + workers`, ...), in batches of `batch_size / workers`, shuffled with the seed plus
    `i`, normalised with the whole dataset's statistics. All workers take the same number
    of steps per epoch (collective steps must match): the fewest full batches any worker's
    files give (or `steps_per_epoch` for training), so a worker with more data leaves its
    surplus unread that epoch. The global batches then differ from one process's.
    """
    if settings.batch_size % workers:
        raise ValueError(f"The batch size ({settings.batch_size}) is the global one, cut into one equal "
                         f"slice per worker: it must be a multiple of the number of workers ({workers}).")
    if settings.input_sharding == "batch":
        return {split: _make_dataset(store_path, split, config, settings, replica_slices=(worker, 1, workers))
                for split in ("train", "valid")}
    per_worker = settings.batch_size // workers
    with data.open_stores(store_path) as whole:
        parts = [whole.files_for(i, workers) for i in range(workers)]
        out = {}
        for split in ("train", "valid"):
            steps = min(data.count_examples(part, split, **_example_options(config, settings)).examples
                        for part in parts) // per_worker
            if split == "train" and settings.steps_per_epoch:
                steps = settings.steps_per_epoch
            if steps == 0:
                raise ValueError(f"{whole.path}: with input sharded by file, some worker's files hold fewer "
                                 f"{split} examples than one batch of {per_worker}; lower the batch size.")
            out[split] = _make_dataset(parts[worker], split, config, settings, per_worker,
                                       seed=settings.seed + worker, steps=steps)
        names = ", ".join(Path(p).name for p in parts[worker].paths)
        print(f"input sharded by file: worker {worker} of {workers} reads {len(parts[worker].stores)} of "
              f"{len(whole.stores)} store files ({names}); {len(out['train'])} train and "
              f"{len(out['valid'])} valid batches of {per_worker} per epoch", flush=True)
    return out


def train(store_path, config: ModelConfig, run_dir, settings: TrainSettings = TrainSettings(),
          *, resume: bool = False, verbose: int = 1, worker_dir=None) -> MixtureRNN:
    """Trains a model on a store, writing a run directory (see the module docstring).

    Args:
        store_path: The sequence store (.h5) to train on (train and valid splits), or
            several: a shard directory, a glob pattern, or a list of these (see
            `data.open_stores`). It is recorded in `config.json` for `resume`.
        config: The model's `ModelConfig` (normalisation is taken from the store); `None`
            with `settings.init_from` (the config is that model's) or `resume`.
        run_dir: The run directory; must not exist yet unless `resume`.
        settings: `TrainSettings`. With `resume`, only its `epochs`, `distribute`, `jit`,
            `max_minutes` and `precision` apply (the rest are the run's own; `mdnrnn train --resume`
            passes the run's saved values unless the options are given).
        resume: Continue the run in `run_dir` from its last checkpoint.
        verbose: Keras progress output (1: progress bar, 2: one line per epoch, 0: none).
        worker_dir: Multi-worker training, a worker that is not the chief: where it
            writes its own copy of the run (kept). Defaults to a temporary directory,
            removed when training ends. Ignored by the chief and without
            `distribute="multiworker"`.

    Returns:
        The trained model (the one with the best validation NLL).

    Raises:
        FileExistsError: If `run_dir` exists and `resume` is false.
        ValueError: If the store does not fit the config, or its train or valid split yields
            no examples (checked before `run_dir` is created).
        TrainingError: If the loss became NaN or inf (the last good checkpoint is kept).

    A new run that fails before its first checkpoint removes `run_dir`, so a failure leaves
    nothing behind except what `resume` can use.
    """
    run_dir = source_dir = Path(run_dir)
    # First: MultiWorkerMirroredStrategy must be made before any other TensorFlow work.
    strategy = make_strategy(settings.distribute)
    keras.utils.set_random_seed(settings.seed)
    temporary = None
    if not is_chief(settings.distribute):  # the chief writes run_dir; this worker, its own copy
        if worker_dir is None:
            run_dir = temporary = Path(tempfile.mkdtemp(prefix="mdnrnn-worker-"))
        else:
            run_dir = Path(worker_dir)
            run_dir.mkdir(parents=True, exist_ok=resume)
    if not resume:
        if settings.init_from is not None:
            config = start_config(settings.init_from, config)
        config = prepare_config(store_path, config, keep_normalisation=settings.init_from is not None)
        settings = settings.resolved(config.preset)  # checks the optimizer settings too
        if settings.input_noise and config.targets != "offsets":
            raise ValueError(f"input_noise perturbs the change columns of an offsets model's inputs; this "
                             f"model predicts {config.targets!r} (preset {config.preset!r}).")
        check_examples(store_path, config, settings)
        run_dir.mkdir(parents=True, exist_ok=run_dir != source_dir)
        outdir.mark(run_dir, "run")
    try:
        return _train(store_path, config, run_dir, settings, resume, verbose, strategy, source_dir)
    except BaseException:
        if not resume and not (run_dir / "last.keras").exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing that --resume could use
        raise
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def _train(store_path, config, run_dir, settings, resume, verbose, strategy, source_dir):
    """Trains into `run_dir`; `resume` reads the checkpoint in `source_dir` (the chief's
    run directory, the same as `run_dir` except on the other workers)."""
    if resume:
        state_path = source_dir / "state.json"
        if not (source_dir / "last.keras").exists() or not state_path.exists():
            raise FileNotFoundError(f"{source_dir} has no checkpoint to resume from (last.keras, state.json).")
        saved = json.loads((source_dir / "config.json").read_text())
        config = ModelConfig.from_dict(saved["model"])
        # A run saved before `bucket` existed trained on random batches, and goes on so.
        settings = dataclasses.replace(TrainSettings(**{"bucket": False, **saved["train"]}), epochs=settings.epochs,
                                       distribute=settings.distribute, jit=settings.jit,
                                       max_minutes=settings.max_minutes, precision=settings.precision)
        state = json.loads(state_path.read_text())
        jit_compile = _decide_jit(store_path, config, settings, strategy)
        with strategy.scope(), _dtype_policy(settings.precision):
            model = load_model(source_dir / "last.keras")  # a saved model has no dtype: the policy's
        initial_epoch, best = state["epochs_done"], state["best_val_loss"]
        if run_dir != source_dir:
            _write_json_atomic(saved, run_dir / "config.json")
            if (source_dir / "history.csv").exists():  # so that this worker's history is whole too
                shutil.copyfile(source_dir / "history.csv", run_dir / "history.csv")
        _trim_history(run_dir / "history.csv", initial_epoch)
    else:
        _write_json_atomic(
            {"model": config.to_dict(), "train": dataclasses.asdict(settings), "data": _data_spec(store_path)},
            run_dir / "config.json",
        )
        jit_compile = _decide_jit(store_path, config, settings, strategy)
        with strategy.scope():
            model = build_model(config, optimizer=settings.optimizer(config.preset),
                                precision=settings.precision)
        if settings.init_from is not None:
            model.set_weights(load_model(settings.init_from).get_weights())
        initial_epoch, best = 0, math.inf
    model.jit_compile = jit_compile
    clip_after_all_reduce(model.optimizer)
    train_data, valid_data = datasets(store_path, config, settings, strategy)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _fit_multiworker(model, strategy, config)
    checkpoint = _RunCheckpoint(run_dir, best)
    callbacks = [
        checkpoint,
        *([_TimeBudget(settings.max_minutes)] if settings.max_minutes else []),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resume),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=settings.patience),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs")),
    ]
    if initial_epoch < settings.epochs:
        model.fit(train_data, validation_data=valid_data, epochs=settings.epochs,
                  initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose,
                  shuffle=False)  # the pipeline shuffles with its own seed
    if checkpoint.nan_at is not None:
        if (run_dir / "last.keras").exists():
            kept = (f"the last good checkpoint is {run_dir / 'last.keras'} "
                    f"(--resume {run_dir} continues from it)")
        else:
            kept = f"no epoch had finished, so there is no checkpoint and {run_dir} was removed"
        raise TrainingError(f"The loss became NaN or inf; training stopped: {kept}. Try a lower --lr.")
    best_model = load_model(run_dir / "best.keras") if (run_dir / "best.keras").exists() else model
    _save_atomic(best_model, run_dir / "model.keras")
    write_loss_curve(run_dir / "history.csv", run_dir / "loss.svg")
    return best_model


@contextlib.contextmanager
def _dtype_policy(precision):
    """Keras' global dtype policy set to `precision` within the block (`load_model`
    builds a saved model, which records no dtype, in the global policy)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _decide_jit(store_path, config, settings, strategy) -> bool:
    """`resolve_jit` for this run, its line printed (by the chief).

    The throw-away models and pipeline of `"auto"` draw on the global random state;
    it is seeded again afterwards, so the run goes on exactly as without them.
    """
    def make_model():
        with strategy.scope():
            model = build_model(config, optimizer=settings.optimizer(config.preset),
                                precision=settings.precision)
        clip_after_all_reduce(model.optimizer)
        return model

    jit_compile, line = resolve_jit(settings, config, make_model,
                                    lambda: datasets(store_path, config, settings)[0])
    keras.utils.set_random_seed(settings.seed)
    if settings.precision != "float32":
        line += f"; precision {settings.precision}"
    if is_chief(settings.distribute):
        print(line, flush=True)
    return jit_compile


def _fit_multiworker(model, strategy, config):
    """Works around two faults of Keras 3's `fit` under `MultiWorkerMirroredStrategy`
    (keras-team/keras#20585), on this model object only.

    1. Before training (and before each validation) Keras takes a first batch to build
       the compiled loss and metrics and merges the replicas' parts with
       `strategy.reduce`, which this strategy refuses for a tuple; that extra pass
       would also start an epoch of the pipeline early, shifting the seeded batch
       order. The model is built already: build the rest from a zero batch instead.
    2. Keras averages each step's logged metrics over the workers with
       `strategy.reduce("MEAN", value, axis=0)`, which fails on a scalar: log them
       with shape `(1,)` (the mean over the replicas of their own values, as Keras
       does for one worker's replicas).

    And XLA has no collectives on CPU: workers without a GPU train without it, even
    with `jit="on"`.
    """
    if not tf.config.list_logical_devices("GPU"):
        model.jit_compile = False
    zeros = (np.zeros((1, 2, config.input_size), np.float32),
             np.zeros((1, 2, config.spec.target_size), np.float32),
             np.ones((1, 2), np.float32))

    def build(iterator=None, data_batch=None):
        with strategy.scope():
            model._symbolic_build(data_batch=zeros)  # noqa: SLF001

    compute_metrics = model.compute_metrics

    def metrics_with_an_axis(*args, **kwargs):
        return {name: tf.reshape(value, [1]) for name, value in compute_metrics(*args, **kwargs).items()}

    model._maybe_symbolic_build = build  # noqa: SLF001
    model.compute_metrics = metrics_with_an_axis


def _trim_history(history_csv: Path, epochs_done: int):
    """Keeps the rows of `history.csv` for the checkpointed epochs only (a run stopped
    after its last row but before its checkpoint would otherwise list an epoch twice)."""
    if not history_csv.exists():
        return
    with open(history_csv, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < epochs_done]
    if len(kept) < len(rows):
        text = io.StringIO()
        csv.writer(text).writerows(kept)  # CSVLogger's dialect
        atomic.write_atomically(history_csv, text.getvalue().encode())


def _data_spec(store_path):
    """`store_path` as JSON: one path as a str, several as a list of str."""
    if isinstance(store_path, (str, os.PathLike)):
        return os.fspath(store_path)
    return [os.fspath(p) for p in store_path]


def write_loss_curve(history_csv, svg_path, size=(480, 320)):
    """Draws the train and valid NLL per epoch from `history.csv` as an SVG line chart."""
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    series = {name: [float(r[name]) for r in rows if r.get(name)] for name in ("loss", "val_loss")}
    width, height = size
    pad = 40
    drawing = svgwrite.Drawing(str(svg_path), size=(width, height))
    drawing.add(drawing.rect((0, 0), (width, height), fill="white"))
    values = [v for s in series.values() for v in s if math.isfinite(v)]
    if values:
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        epochs = max(len(s) for s in series.values())
        for name, color in (("loss", "#1f77b4"), ("val_loss", "#d62728")):
            points = [
                (pad + (width - 2 * pad) * i / max(epochs - 1, 1),
                 height - pad - (height - 2 * pad) * (v - low) / span)
                for i, v in enumerate(series[name])
            ]
            if points:
                drawing.add(drawing.polyline(points, stroke=color, fill="none", stroke_width=2))
        drawing.add(drawing.text(f"{high:.3f}", insert=(2, pad), font_size=10))
        drawing.add(drawing.text(f"{low:.3f}", insert=(2, height - pad), font_size=10))
    drawing.add(drawing.text("NLL (nats/step) per epoch: train blue, valid red", insert=(pad, 16), font_size=12))
    atomic.write_atomically(svg_path, drawing.tostring().encode())
