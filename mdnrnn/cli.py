"""The `mdnrnn` command: prep, train, generate, export, info.

Exit codes: 0 success, 1 failure (a user mistake gets a one-line `error: ...`, no
traceback), 2 bad usage (argparse). Arguments are parsed before TensorFlow is imported,
so `--help` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np

STROKE_SIZE = 192
# `mdnrnn.PRESETS`' names, here so that parsing needs no TensorFlow (a test keeps them equal).
PRESET_NAMES = ("impsy", "kanji", "sketch", "stroke3", "touch")
SEED_MAX = 2**32 - 1
# Bounds on what one `generate` may hold in memory: sequences, steps, and their product
# (rows of up to a few floats each: 20 million rows stay under a gigabyte).
N_MAX, STEPS_MAX, ROWS_MAX = 10_000, 100_000, 20_000_000


def _int_in(low, high):
    """An argparse type: an integer in [low, high]."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low:,} to {high:,}, got {text}")
        return value
    return parse


def _float_in(low, high, *, low_open=True):
    """An argparse type: a finite number in (low, high] (or [low, high])."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        above = value > low if low_open else value >= low
        if not (math.isfinite(value) and above and value <= high):
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"expected a finite number in {interval}, got {text}")
        return value
    return parse


# ---------------------------------------------------------------------- train
def cmd_train(args):
    from mdnrnn import models, outdir, train

    verbose = {"bar": 1, "epoch": 2, "none": 0}[args.progress or ("bar" if sys.stdout.isatty() else "epoch")]
    if args.resume:
        run_dir = Path(args.resume)
        config_path = run_dir / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json).")
        saved = json.loads(config_path.read_text())
        store = _data_arg(args.data) or saved["data"]
        given = {"epochs": args.epochs, "distribute": args.distribute, "jit": args.jit,
                 "max_minutes": args.max_minutes, "precision": args.precision}
        settings = train.TrainSettings(**{**saved["train"], **{k: v for k, v in given.items() if v}})
        train.train(store, None, run_dir, settings, resume=True, verbose=verbose, worker_dir=args.worker_dir)
    else:
        if not args.data or not args.out:
            raise ValueError("train needs --data STORE.h5 and --out RUN_DIR (or --resume RUN_DIR).")
        store = _data_arg(args.data)
        if isinstance(store, str) and not any(c in store for c in "*?[") and not Path(store).exists():
            raise FileNotFoundError(f"No store at {store}")
        shape = {  # option: (ModelConfig field, value given)
            "--units": ("units", args.units), "--layers": ("layers", args.layers),
            "--mixtures": ("components", args.mixtures), "--dropout": ("dropout", args.dropout),
            "--covariance": ("covariance", args.covariance), "--cell": ("cell", args.cell),
            "--scale-activation": ("scale_activation", args.scale_activation),
            "--recurrent-dropout": ("recurrent_dropout", args.recurrent_dropout),
            "--targets": ("targets", args.targets), "--dt-scale": ("dt_scale", args.dt_scale),
            "--tempo": ("tempo", None if args.tempo is None else args.tempo != "off"),
        }
        overrides = {field: value for field, value in shape.values() if value is not None}
        if args.tempo is not None:
            overrides["beats"] = args.tempo == "beats"
        if args.init_from:
            given = [option for option, (_, value) in {"--preset": (None, args.preset), **shape}.items()
                     if value is not None]
            if given:
                raise ValueError(f"--init-from {args.init_from} keeps that model's preset and sizes; "
                                 f"leave out {', '.join(given)}.")
            config = None
        else:
            config = models.preset(args.preset or "kanji", **overrides)
        run_dir = Path(args.out)
        settings = train.TrainSettings(
            epochs=args.epochs or 20, batch_size=args.batch_size, learning_rate=args.lr,
            clipnorm=args.clipnorm, lr_decay=args.lr_decay, min_learning_rate=args.min_lr,
            max_seq_len=args.max_seq_len, scale_augment=args.scale_augment, drop_points=args.drop_points,
            bucket=args.bucket,
            input_noise=args.input_noise,
            window=args.seq_len, patience=args.patience, seed=args.seed,
            steps_per_epoch=args.steps_per_epoch, distribute=args.distribute, jit=args.jit or "auto",
            input_sharding=args.input_sharding, max_minutes=args.max_minutes, init_from=args.init_from,
            precision=args.precision or "float32",
        )
        if not train.is_chief(args.distribute):  # the chief writes --out; this worker, its own copy
            train.train(store, config, run_dir, settings, verbose=verbose, worker_dir=args.worker_dir)
            print(f"worker done; the chief writes {run_dir}")
            return
        outdir.check_replaceable(run_dir, args.force)
        if run_dir.exists():  # --force onto an earlier run: train beside it, swap at the end
            with outdir.building(run_dir, None, force=True) as temp:
                train.train(store, config, temp, settings, verbose=verbose)
        else:
            train.train(store, config, run_dir, settings, verbose=verbose)
    print(f"model: {run_dir / 'model.keras'}")
    print(f"history: {run_dir / 'history.csv'}, loss curve: {run_dir / 'loss.svg'}, logs: {run_dir / 'logs'}")


def _data_arg(values):
    """`--data`'s values: one str (a store, a shard directory, a pattern), or a list."""
    if not values:
        return None
    return values[0] if len(values) == 1 else list(values)


# ------------------------------------------------------------------- generate
def _load_prefixes(path, n, width, kind):
    from mdnrnn import data

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No prime file at {path}")
    if path.suffix == ".npy":
        try:
            rows = np.load(path, allow_pickle=False)
        except ValueError as error:  # object arrays (pickles) and malformed headers
            raise ValueError(f"{path}: not a plain numeric .npy array ({error})") from None
        if not isinstance(rows, np.ndarray) or rows.dtype.kind not in "iuf":
            raise ValueError(f"{path}: expected an array of real numbers, got {getattr(rows, 'dtype', type(rows))}.")
        if rows.ndim != 2 or rows.shape[1] != width or len(rows) == 0:
            raise ValueError(f"{path}: expected a (length, {width}) array, got shape {rows.shape}.")
        if not np.isfinite(rows).all():
            raise ValueError(f"{path}: holds NaN or infinite values.")
        return [rows.astype(np.float32)]
    with data.open_store(path) as store:
        if store.kind != kind:
            raise ValueError(f"{path} is a {store.kind!r} store; the model continues {kind!r} sequences.")
        if len(store) == 0:
            raise ValueError(f"{path} holds no sequences.")
        return [store[i] for i in range(min(n, len(store)))]


def cmd_generate(args):
    from mdnrnn import Generator, data, load_model, outdir

    if args.n * args.max_steps > ROWS_MAX:
        raise ValueError(f"--n {args.n} x --max-steps {args.max_steps} is over {ROWS_MAX:,} rows; "
                         "generate fewer or shorter sequences per call.")
    out = Path(args.out)
    outdir.check_replaceable(out, args.force)
    model = load_model(args.model)
    config = model.config
    generator = Generator(model, temperature=args.temperature,
                          sigma_temperature=args.sigma_temperature, seed=args.seed, tempo=args.tempo)
    if args.prime:
        prefixes = _load_prefixes(args.prime, args.n, config.spec.target_size, config.data_kind)
        generator.prime(prefixes)
        sequences = generator.generate(max_steps=args.max_steps, max_seconds=args.max_seconds)
        sequences = [np.concatenate([p, s]) for p, s in zip(prefixes, sequences)]
    else:
        sequences = generator.generate(n=args.n, max_steps=args.max_steps, max_seconds=args.max_seconds)
    stored = [s for s in sequences if len(s)]
    with outdir.building(out, "generate", force=args.force) as work:
        if stored:
            data.write_store(work / "sequences.h5", stored, kind=config.data_kind,
                             splits=["train"] * len(stored), source=f"generated by {args.model}")
        _export(sequences, config.data_kind, work, "svg" if config.data_kind == "stroke3" else "midi")
    if len(stored) < len(sequences):
        print(f"note: {len(sequences) - len(stored)} empty sequences (ended at once) are not in sequences.h5")
    print(f"{len(sequences)} sequences, lengths {[len(s) for s in sequences]}")
    print(f"outputs in {out}")


def _export(sequences, kind, out: Path, to: str):
    """Writes `sequences` into the directory `out` as SVG drawings or MIDI performances."""
    from mdnrnn.export import drawing_to_svg, grid_to_svg, performance_to_midi, performance_to_svg, sequence_to_midi

    if kind == "stroke3":
        if to != "svg":
            raise ValueError("Drawings (stroke3) export to SVG only; use --to svg.")
        for i, rows in enumerate(sequences):
            drawing_to_svg(rows, out / f"drawing_{i:03d}.svg", size=STROKE_SIZE)
        grid_to_svg(sequences, out / "grid.svg", columns=min(8, max(len(sequences), 1)))
        return
    if kind != "touch" and to == "svg":
        raise ValueError("IMPSY sequences export to MIDI only; use --to midi.")
    for i, rows in enumerate(sequences):
        if to == "midi":
            if kind == "touch":
                performance_to_midi(rows, out / f"performance_{i:03d}.mid")
            else:
                sequence_to_midi(rows, out / f"performance_{i:03d}.mid")
        if kind == "touch":
            performance_to_svg(rows, out / f"performance_{i:03d}.svg")


# --------------------------------------------------------------------- export
def cmd_export(args):
    from mdnrnn import data, outdir

    out = Path(args.out)
    outdir.check_replaceable(out, args.force)
    with data.open_store(args.input) as store:
        indices = store.split(args.split) if args.split else np.arange(len(store))
        total = len(indices)
        indices = indices[: args.limit]
        sequences = [store[i] for i in indices]
        kind = store.kind
    with outdir.building(out, "export", force=args.force) as work:
        _export(sequences, kind, work, args.to)
    what = "drawings" if kind == "stroke3" else "performances"
    scope = f"{args.split} split" if args.split else "whole store"
    left = f"; --limit {args.limit} left out {total - len(sequences):,}" if len(sequences) < total else ""
    print(f"wrote {len(sequences):,} of {total:,} {what} ({scope}{left}) to {out}")


# ----------------------------------------------------------------------- info
def cmd_info(args):
    import zipfile

    path = Path(args.file)
    if not path.exists():
        raise FileNotFoundError(f"No file at {path}")
    if zipfile.is_zipfile(path):
        from mdnrnn import load_model

        model = load_model(path)
        config = model.config
        print(f"model:      {path}")
        print(f"preset:     {config.preset}")
        print(f"data kind:  {config.data_kind}")
        print(f"mixture:    {config.spec.components} components, dim {config.spec.dim}, pen {config.spec.pen}")
        print(f"LSTM:       {config.layers} x {config.units} units, dropout {config.dropout}")
        print(f"parameters: {model.count_params():,}")
        mean, std = config.normalisation
        print(f"data mean:  {np.round(mean, 4).tolist()}")
        print(f"data std:   {np.round(std, 4).tolist()}")
        if config.data_kind != "stroke3":
            print(f"dt scale:   {config.dt_scale} (targets: {config.targets})")
        if config.tempo:
            q = config.tempo_quantiles
            print(f"tempo:      conditioned{', pauses in beats' if config.beats else ''}; training tempos "
                  f"{q[0]:.2f} to {q[-1]:.2f} touches/s, median {q[len(q) // 2]:.2f}")
        return
    from mdnrnn import data

    if path.is_dir():
        with data.open_stores(path) as stores:
            _print_store(stores, f"shards:    {path} ({len(stores.stores):,} stores, listed in index.json)")
            for shard in stores.index["shards"]:
                counts = ", ".join(f"{name} {shard['splits'][name]:,}" for name in data.SPLITS)
                print(f"  {shard['file']}: {shard['sequences']:,} sequences ({counts}), {shard['points']:,} points")
        return
    with data.open_store(path) as store:
        _print_store(store, f"store:     {path}")


def _print_store(store, first_line):
    """What `info` says of a store or a set of shards (the same summary for both)."""
    from mdnrnn import data

    lengths = store.lengths
    print(first_line)
    print(f"kind:      {store.kind}")
    print(f"columns:   {', '.join(store.columns)}")
    print(f"sequences: {len(store):,}")
    print(f"points:    {int(lengths.sum()):,}")
    print(f"lengths:   {data.describe_lengths(lengths)}")
    print("splits:    " + ", ".join(f"{name} {len(store.split(name)):,}" for name in store.split_names))
    print(f"mean:      {np.round(store.mean, 4).tolist()}")
    print(f"std:       {np.round(store.std, 4).tolist()}")


# ----------------------------------------------------------------------- eval
def cmd_eval(args):
    from mdnrnn import evaluate, load_model

    if not Path(args.data).is_file():
        raise FileNotFoundError(f"No store at {args.data}")
    model = load_model(args.model)
    result = evaluate.evaluate(
        model, args.data, split=args.split, n=args.n, temperature=args.temperature,
        sigma_temperature=args.sigma_temperature, max_steps=args.max_steps, seed=args.seed,
        classifier=not args.no_classifier, svg_path=args.svg, max_len=args.max_len,
    )
    result = {"model": str(args.model), "data": str(args.data), **evaluate.to_json_ready(result)}
    pen = f", pen {result['nll_pen']:.4f}" if result["nll_pen"] is not None else ""
    print(f"held-out NLL ({args.split}, {result['sequences']} sequences): {result['nll']:.4f} nats/step "
          f"(continuous {result['nll_continuous']:.4f}{pen}); sketch-rnn Lr {result['nll_sketch_rnn']:.4f} "
          f"(N_max {result['max_len']})")
    if result["ended_fraction"] is not None:
        print(f"samples that ended by themselves: {result['ended_fraction']:.3f} of {args.n}")
    for name in ("points", "strokes"):
        if name in result:
            part = result[name]
            print(f"{name} per drawing: samples {part['generated_mean']:.2f}, data {part['data_mean']:.2f}, "
                  f"KS {part['ks']:.3f}")
    if result.get("classifier_accuracy") is not None:
        print(f"classifier two-sample test: held-out accuracy {result['classifier_accuracy']:.3f} "
              f"(0.5: indistinguishable) on {result['classifier_examples']} drawings")
    if args.svg:
        print(f"grid: {args.svg}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"json: {args.json}")


# ------------------------------------------------------- export-model, play
def cmd_export_model(args):
    from mdnrnn import load_model, lite

    out = Path(args.out) if args.out else Path(args.model).with_suffix(".tflite")
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists; pass --force to replace it.")
    info = lite.export_litert(load_model(args.model), out)
    print(f"LiteRT model: {info['path']} ({info['size']:,} bytes), config: {info['sidecar']}")


def cmd_play(args):
    import signal

    from mdnrnn import live

    if args.list_ports:
        inputs, outputs = live.list_ports()
        print("MIDI inputs:  " + (", ".join(map(repr, inputs)) or "none"))
        print("MIDI outputs: " + (", ".join(map(repr, outputs)) or "none"))
        return
    if not args.model:
        raise ValueError("play needs --model MODEL (.keras or .tflite), or --list-ports.")
    if not (args.midi_out or args.osc_out):
        raise ValueError("play needs an output: --midi-out PORT and/or --osc-out HOST:PORT.")
    osc_in = live.parse_host_port(args.osc_in, "--osc-in") if args.osc_in else None
    osc_out = live.parse_host_port(args.osc_out, "--osc-out") if args.osc_out else None
    settings = live.load_settings(args.mapping, mode=args.mode, silence=args.silence,
                                  temperature=args.temperature, sigma_temperature=args.sigma_temperature,
                                  realtime=args.realtime)
    generator = live.load_generator(args.model, seed=args.seed)
    ports = []
    with contextlib.ExitStack() as stack:
        if args.log:
            log = stack.enter_context(open(args.log, "w", encoding="utf-8"))
            log.write("direction,scheduled,sent," + ",".join(generator.columns) + "\n")
        else:
            log = None
        for name, output in ((args.midi_in, False), (args.midi_out, True)):
            ports.append(live.open_midi_port(name, output) if name else None)
            if ports[-1] is not None:
                stack.callback(ports[-1].close)
        loop = live.LiveLoop(generator, settings, osc_in=osc_in, osc_out=osc_out,
                             midi_in=ports[0], midi_out=ports[1], log=log)
        stack.callback(loop.close)
        # Ctrl-C and SIGTERM stop the loop cleanly, also where SIGINT came in ignored (a
        # process started in the background by a non-interactive shell inherits that).
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            stack.callback(signal.signal, stop_signal, signal.signal(stop_signal, lambda *_: loop.stop()))
        where = ", ".join(f"{label} {value}" for label, value in (
            ("MIDI in", args.midi_in), ("MIDI out", args.midi_out),
            ("OSC in", "%s:%d" % loop.osc_in_address if osc_in else None), ("OSC out", args.osc_out)) if value)
        print(f"playing {args.model} ({settings.mode}): {where}; Ctrl-C stops", flush=True)
        try:
            loop.run(duration=args.duration)
        except KeyboardInterrupt:
            pass
        print(loop.summary(), flush=True)


# ---------------------------------------------------------------------- serve
def cmd_serve(args):
    from mdnrnn import studio

    limits = studio.Limits(max_sessions=args.max_sessions)
    models = studio.load_entries(args.model or ["kanji", "touch"])
    names = ", ".join(f"{name} ({entry.kind})" for name, entry in models.items())

    def ready(url):
        print(f"mdnrnn studio: {url}  (models: {names}; Ctrl-C stops)", flush=True)

    try:
        studio.serve(models, host=args.host, port=args.port, limits=limits, on_ready=ready)
    except KeyboardInterrupt:
        pass
    print("stopped", flush=True)


# ----------------------------------------------------------------------- main
def build_parser():
    parser = argparse.ArgumentParser(prog="mdnrnn", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("prep", help="convert a dataset into a sequence store (see `mdnrnn prep -h`)", add_help=False)

    def tf_logs(p):
        p.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")

    p = commands.add_parser("train", help="train a model on a store")
    p.add_argument("--data", nargs="+", metavar="STORE",
                   help="the sequence store (.h5); or several: a shard directory (mdnrnn prep --shard-size), "
                        "store files, or a quoted pattern such as 'shards/*.h5'")
    p.add_argument("--preset", choices=PRESET_NAMES, help="model preset (kanji)")
    p.add_argument("--init-from", metavar="MODEL",
                   help="fine-tune: start from this trained model (.keras file or pretrained name), "
                        "its preset, sizes and normalisation kept, with a fresh optimizer")
    p.add_argument("--units", type=_int_in(1, 4096), help="LSTM units, up to 4096 (preset's)")
    p.add_argument("--layers", type=_int_in(1, 16), help="LSTM layers, up to 16 (preset's)")
    p.add_argument("--mixtures", type=_int_in(1, 256), help="mixture components, up to 256 (preset's)")
    p.add_argument("--dropout", type=_float_in(0, 0.99, low_open=False), help="LSTM input dropout in [0, 0.99] (preset's)")
    p.add_argument("--cell", choices=["lstm", "layer_norm"], help="LSTM cell: Keras' or sketch-rnn's layer-normalised (the preset's: layer_norm for kanji and sketch, lstm otherwise)")
    p.add_argument("--recurrent-dropout", type=_float_in(0, 0.99, low_open=False),
                   help="recurrent dropout in [0, 0.99] (layer_norm: on the candidate values, as sketch-rnn) (0)")
    p.add_argument("--covariance", choices=["diagonal", "full"],
                   help="mixture components' covariance: full (correlated, Cholesky) or diagonal (preset's)")
    p.add_argument("--scale-activation", choices=["elu", "softplus"],
                   help="how the head makes component scales positive: elu + 1 (as keras-mdn-layer; "
                        "the default) or softplus (models saved before this option)")
    p.add_argument("--targets", choices=["rows", "offsets"],
                   help="touch/IMPSY: predict the next rows, or positions as offsets from the previous row (preset's)")
    p.add_argument("--dt-scale", choices=["linear", "log"],
                   help="touch/IMPSY: model dt as it is, or its logarithm (preset's)")
    p.add_argument("--tempo", choices=["on", "beats", "off"],
                   help="touch: condition on each performance's touches per second; beats: also measure "
                        "pauses between touches in beats of it (preset's: off)")
    p.add_argument("--seq-len", type=_int_in(1, 10_000), default=50,
                   help="window length for touch/IMPSY data, up to 10,000 (50); drawings train whole")
    p.add_argument("--batch-size", type=_int_in(1, 65_536), default=64, help="batch size, up to 65,536 (64)")
    p.add_argument("--epochs", type=_int_in(1, 100_000), help="epochs to train to (20)")
    p.add_argument("--steps-per-epoch", type=_int_in(1, 10_000_000), help="cap on batches per epoch (whole split)")
    p.add_argument("--max-minutes", type=_float_in(0, 1e7),
                   help="stop at the end of the first epoch that ends after this many minutes of training, for "
                        "comparisons at equal time (no limit; with --resume, the resumed part's own budget)")
    p.add_argument("--lr", type=_float_in(0, 1), help="Adam's learning rate in (0, 1] (preset's: 0.001)")
    p.add_argument("--clipnorm", type=_float_in(0, 1e6, low_open=False),
                   help="gradient norm clipping, 0 for none (preset's: kanji and touch 0, the others 1.0)")
    p.add_argument("--lr-decay", type=_float_in(0, 1),
                   help="per-step decay towards --min-lr, sketch-rnn uses 0.9999; 1 is constant (preset's: 1)")
    p.add_argument("--min-lr", type=_float_in(0, 1, low_open=False), help="floor of the decay (preset's: 1e-05)")
    p.add_argument("--max-seq-len", type=_int_in(1, 10_000_000), help="leave out drawings longer than this (no limit)")
    p.add_argument("--scale-augment", type=_float_in(0, 0.99, low_open=False), default=0.0,
                   help="drawings: random dx/dy scale in [1-s, 1+s] while training, sketch-rnn uses 0.15 (0)")
    p.add_argument("--drop-points", type=_float_in(0, 0.99, low_open=False), default=0.0,
                   help="drawings: chance of dropping a mid-stroke point while training, sketch-rnn uses 0.1 (0)")
    p.add_argument("--bucket", action=argparse.BooleanOptionalAction, default=True,
                   help="drawings: batches of drawings of similar length, less padding to compute; not with "
                        "--distribute (on)")
    p.add_argument("--input-noise", type=_float_in(0, 10, low_open=False), default=0.0,
                   help="touch and IMPSY offset models: standard deviation of Gaussian noise on the training "
                        "inputs' change columns, in normalised units (0: none)")
    p.add_argument("--patience", type=_int_in(1, 100_000), default=5, help="early stopping patience (5)")
    p.add_argument("--seed", type=_int_in(0, SEED_MAX), default=0, help="random seed, 0 to 2**32-1 (0)")
    p.add_argument("--distribute", choices=["mirrored", "multiworker"],
                   help="tf.distribute: all local GPUs, or several machines configured by TF_CONFIG")
    p.add_argument("--input-sharding", choices=["batch", "file"], default="batch",
                   help="multiworker input: batch (every worker reads its slice of each global batch from all "
                        "files: the batches of one process) or file (every worker reads only its own store "
                        "files: files i, i+W, ...; needs at least one file per worker) (batch)")
    p.add_argument("--jit", choices=["auto", "on", "off"],
                   help="XLA for the training step: auto times a few steps each way on the first batches "
                        "and keeps the faster (drawings and multiworker: off, unmeasured); on or off force it "
                        "(auto; --resume keeps the run's own unless given)")
    p.add_argument("--precision", choices=["float32", "mixed_bfloat16"],
                   help="compute dtype of the LSTM stack while training: mixed_bfloat16 can be faster on "
                        "processors with bfloat16 arithmetic (AVX512_BF16, AMX, recent GPUs; time it) and is "
                        "slower on others; weights, head and loss stay float32, the saved model is float32 (float32; "
                        "--resume keeps the run's own unless given)")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--worker-dir", metavar="DIR",
                   help="multiworker, on a worker that is not the chief: where it writes its own copy of "
                        "the run, kept (a temporary directory, removed at the end)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out made by mdnrnn (only once the new run has finished)")
    p.add_argument("--progress", choices=["bar", "epoch", "none"],
                   help="a progress bar, a line per epoch, or nothing (bar in a terminal, else epoch)")
    tf_logs(p)
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("generate", help="sample new sequences from a model")
    p.add_argument("--model", required=True, help="a .keras model file or a pretrained name (kanji, touch)")
    p.add_argument("--n", type=_int_in(1, N_MAX), default=16, help=f"sequences to generate, up to {N_MAX:,} (16)")
    p.add_argument("--prime", help="continue prefixes: a store (.h5, its first --n sequences) or a .npy array")
    p.add_argument("--temperature", type=_float_in(0, 100), default=1.0,
                   help="in (0, 100]: divides mixture/pen logits and scales the variance, as in sketch-rnn (1.0)")
    p.add_argument("--sigma-temperature", type=_float_in(0, 100),
                   help="variance scale in (0, 100], on its own (the --temperature)")
    p.add_argument("--max-steps", type=_int_in(1, STEPS_MAX), default=500,
                   help=f"step limit, up to {STEPS_MAX:,}; --n x --max-steps at most {ROWS_MAX:,} (500)")
    p.add_argument("--max-seconds", type=_float_in(0, 86_400), help="time limit for touch/IMPSY data, in seconds")
    p.add_argument("--tempo", type=_float_in(0, 100),
                   help="touch models trained with --tempo on or beats: touches per second (drawn per performance)")
    p.add_argument("--seed", type=_int_in(0, SEED_MAX), help="random seed, 0 to 2**32-1")
    p.add_argument("--out", required=True, help="output directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing --out made by mdnrnn")
    tf_logs(p)
    p.set_defaults(func=cmd_generate)

    p = commands.add_parser("export", help="export a store's sequences as SVG or MIDI")
    p.add_argument("input", help="a sequence store (.h5), e.g. generated sequences.h5")
    p.add_argument("--to", required=True, choices=["svg", "midi"])
    p.add_argument("--out", required=True, help="output directory to create")
    p.add_argument("--split", choices=["train", "valid", "test"], help="only this split")
    p.add_argument("--limit", type=_int_in(1, 10_000_000), help="at most this many sequences (all)")
    p.add_argument("--force", action="store_true", help="replace an existing --out made by mdnrnn")
    p.set_defaults(func=cmd_export)

    p = commands.add_parser("info", help="describe a store, a shard directory or a model file")
    p.add_argument("file", help="a store (.h5), a shard directory or a model (.keras)")
    tf_logs(p)
    p.set_defaults(func=cmd_info)

    p = commands.add_parser("eval", help="held-out NLL, sample statistics and a classifier test (docs/quality.md)")
    p.add_argument("--model", required=True, help="a .keras model file or a pretrained name (kanji, touch)")
    p.add_argument("--data", required=True, help="the sequence store the model was trained on (.h5)")
    p.add_argument("--split", choices=["train", "valid", "test"], default="test", help="held-out split (test)")
    p.add_argument("--n", type=_int_in(4, N_MAX), default=100, help=f"samples to generate, 4 to {N_MAX:,} (100)")
    p.add_argument("--temperature", type=_float_in(0, 100), default=1.0, help="sampling temperature (1.0)")
    p.add_argument("--sigma-temperature", type=_float_in(0, 100),
                   help="variance scale on its own (the --temperature)")
    p.add_argument("--max-steps", type=_int_in(1, STEPS_MAX), help="step limit per sample (twice the longest drawing)")
    p.add_argument("--max-len", type=_int_in(1, STEPS_MAX), help="N_max of the sketch-rnn Lr (the longest sequence)")
    p.add_argument("--seed", type=_int_in(0, SEED_MAX), default=0, help="random seed (0)")
    p.add_argument("--no-classifier", action="store_true", help="skip the classifier two-sample test")
    p.add_argument("--svg", help="write a grid of samples next to real drawings to this SVG file")
    p.add_argument("--json", help="write every number to this JSON file")
    tf_logs(p)
    p.set_defaults(func=cmd_eval)

    p = commands.add_parser("serve", help="the studio: draw or play in the browser, the model answers")
    p.add_argument("--model", action="append", metavar="MODEL",
                   help="a pretrained name (kanji, touch), a .keras file or NAME=FILE; repeat for a "
                        "menu (default: the pretrained kanji and touch models)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=_int_in(0, 65_535), default=8000, help="TCP port, 0 picks a free one (8000)")
    p.add_argument("--max-sessions", type=_int_in(1, 10_000), default=32,
                   help="most browser tabs or clients at once (32)")
    tf_logs(p)
    p.set_defaults(func=cmd_serve)

    p = commands.add_parser("export-model", help="convert a model to LiteRT, to run without TensorFlow")
    p.add_argument("model", help="a .keras model file or a pretrained name (kanji, touch)")
    p.add_argument("--to", choices=["litert"], default="litert", help="target format (litert)")
    p.add_argument("--out", help="the .tflite file to write (MODEL with .tflite); its config goes to OUT.json")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    tf_logs(p)
    p.set_defaults(func=cmd_export_model)

    p = commands.add_parser("play", help="play live with a model over MIDI and/or OSC")
    p.add_argument("--model", help="a .keras model or a .tflite file from export-model")
    p.add_argument("--midi-in", metavar="PORT", help="MIDI input port (virtual:NAME makes one)")
    p.add_argument("--midi-out", metavar="PORT", help="MIDI output port (virtual:NAME makes one)")
    p.add_argument("--osc-in", metavar="HOST:PORT", help="listen for OSC rows here")
    p.add_argument("--osc-out", metavar="HOST:PORT", help="send OSC rows here")
    p.add_argument("--mode", choices=["callresponse", "polyphony", "battle", "useronly"],
                   help="how the model plays with you (callresponse, or the mapping file's)")
    p.add_argument("--mapping", metavar="FILE", help="settings and MIDI/OSC mapping, TOML or JSON (docs/live.md)")
    p.add_argument("--silence", type=_float_in(0, 60), help="seconds of quiet before an answer, in (0, 60] (1.0)")
    p.add_argument("--temperature", type=_float_in(0, 100), help="mixture/pen temperature in (0, 100] (1.0)")
    p.add_argument("--sigma-temperature", type=_float_in(0, 100),
                   help="variance scale in (0, 100] on its own (follows --temperature)")
    p.add_argument("--seed", type=_int_in(0, SEED_MAX), help="random seed, 0 to 2**32-1")
    p.add_argument("--duration", type=_float_in(0, 604_800), help="stop after this many seconds (Ctrl-C)")
    p.add_argument("--log", metavar="FILE", help="write every event in and out to this CSV file")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction,
                   help="real-time priority for the loop (SCHED_FIFO): tried quietly by default; "
                        "--realtime warns if refused, --no-realtime never asks")
    p.add_argument("--list-ports", action="store_true", help="list MIDI ports and exit")
    tf_logs(p)
    p.set_defaults(func=cmd_play)
    return parser


@contextlib.contextmanager
def _quiet_tensorflow(verbose: bool):
    """Keeps TensorFlow's native log lines (written straight to file descriptor 2) and its
    Python warnings out of the terminal; mdnrnn's own messages still reach stderr."""
    if verbose:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    original = sys.stderr
    try:
        if original.fileno() == 2:  # Python's stderr is fd 2: keep it on the real terminal
            sys.stderr = open(os.dup(saved), "w", buffering=1, encoding=original.encoding,
                              errors=original.errors)
    except (AttributeError, OSError, ValueError):  # already redirected (tests capture it)
        pass
    os.dup2(devnull, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("tensorflow", "absl", "h5py"):
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            if sys.stderr is not original:
                sys.stderr.close()
                sys.stderr = original
            os.close(devnull)
            os.close(saved)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "prep":
        import data_prep

        return data_prep.main(argv[1:], prog="mdnrnn prep")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage or help
        return exc.code if isinstance(exc.code, int) else 2
    with _quiet_tensorflow(getattr(args, "verbose", False)):
        try:
            args.func(args)
        except Exception as error:
            if not _is_user_error(error):
                raise
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            print(f"error: {message}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 1
    return 0


def _is_user_error(error) -> bool:
    """Whether `error` is a problem with the user's input or files (one line, exit 1)."""
    from mdnrnn.data import StoreError

    kinds = [ValueError, OSError, StoreError]
    if "mdnrnn.train" in sys.modules:  # TrainingError can only come from there
        kinds.append(sys.modules["mdnrnn.train"].TrainingError)
    return isinstance(error, tuple(kinds))


if __name__ == "__main__":
    sys.exit(main())
