"""Converters from outside formats into mdnrnn's HDF5 sequence store.

Run as `python -m data_prep SOURCE ...` (or through `mdnrnn prep`):

```
python -m data_prep kanjivg [--dir DIR] [--limit N] [--epsilon E] --out kanji.h5
python -m data_prep sketch-npz (FILE.npz [FILE.npz ...] | --sample) --out sketches.h5
python -m data_prep robojam (FILE.h5 | FILE.npz | --sample) --out touch.h5
python -m data_prep impsy DIR_OR_NPZ [--dimension D] --out impsy.h5
```

Each prints a progress bar (on a terminal only) and a summary (sequences,
points, length percentiles, what was dropped and why). With `--shard-size N`,
`--out` is a shard directory of stores of N sequences each, with an
`index.json` (see `mdnrnn.data.shards`). An existing output is
only replaced with `--force`; a failed or interrupted conversion writes
nothing. Every option that scales the work has bounds, given in `--help` and
checked before any work (a usage error, exit status 2); so do single input
files (see each importer). Input files are only read: `.npz` files without
running code from them (`data_prep.common.load_npz`).
"""

import argparse
import sys

from data_prep import impsy, kanjivg, robojam, sketch_npz
from data_prep.common import FRACTION_RANGE, SEED_RANGE, SHARD_SIZE_RANGE, PrepError, Summary
from mdnrnn.data import StoreError

__all__ = ["PrepError", "Summary", "main", "impsy", "kanjivg", "robojam", "sketch_npz"]


def _bounded(kind, bounds):
    """An argparse `type`: a `kind` (int or float) within `bounds` (inclusive).

    A value outside is a usage error naming the option and the value.
    """
    low, high = bounds

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, received {text!r}"
            ) from None
        if not low <= value <= high:  # NaN is never inside
            raise argparse.ArgumentTypeError(
                f"must be between {low} and {high}, received {text}"
            )
        return value

    return parse


def _common(parser, *, split=True):
    parser.add_argument("--out", required=True, metavar="STORE",
                        help="the store (.h5) to write; with --shard-size, the directory")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing --out (a directory only if mdnrnn made it)")
    low, high = SHARD_SIZE_RANGE
    parser.add_argument("--shard-size", type=_bounded(int, SHARD_SIZE_RANGE), metavar="N",
                        help=f"write --out as a directory of shards of N sequences each, {low} to "
                             f"{high:,}, with an index.json (one file)")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bar (drawn on a terminal only)")
    if split:
        low, high = SEED_RANGE
        parser.add_argument("--seed", type=_bounded(int, SEED_RANGE), default=0, metavar="N",
                            help=f"seed of the random split, {low} to {high} (0)")
        low, high = FRACTION_RANGE
        parser.add_argument("--valid-fraction", type=_bounded(float, FRACTION_RANGE),
                            default=0.05, metavar="F",
                            help=f"share of sequences in valid, {low} to {high} (0.05)")
        parser.add_argument("--test-fraction", type=_bounded(float, FRACTION_RANGE),
                            default=0.05, metavar="F",
                            help=f"share of sequences in test, {low} to {high} (0.05)")


def _input_or_sample(parser, dest, nargs, metavar, input_help, sample_help):
    """Adds an input positional and `--sample`, and a check that one of them is given."""
    parser.add_argument(dest, nargs=nargs, metavar=metavar, help=input_help)
    parser.add_argument("--sample", action="store_true", help=sample_help)

    def check(args):
        if bool(getattr(args, dest)) == args.sample:
            parser.error(f"give exactly one of {metavar} and --sample")

    parser.set_defaults(check=check)


def _split_args(args):
    return dict(seed=args.seed, valid_fraction=args.valid_fraction,
                test_fraction=args.test_fraction)


def _run_kanjivg(args):
    return kanjivg.convert(
        args.out, directory=args.dir, limit=args.limit, epsilon=args.epsilon,
        sample_step=args.sample_step, include_variants=args.include_variants,
        force=args.force, shard_size=args.shard_size, progress=not args.no_progress,
        **_split_args(args),
    )


def _run_sketch_npz(args):
    return sketch_npz.convert(args.files, args.out, sample=args.sample, force=args.force,
                              shard_size=args.shard_size, progress=not args.no_progress)


def _run_robojam(args):
    return robojam.convert(args.source, args.out, sample=args.sample, force=args.force,
                           shard_size=args.shard_size, progress=not args.no_progress,
                           **_split_args(args))


def _run_impsy(args):
    return impsy.convert(args.source, args.out, dimension=args.dimension, force=args.force,
                         shard_size=args.shard_size, progress=not args.no_progress,
                         **_split_args(args))


def build_parser(prog="python -m data_prep"):
    """The `argparse` parser of `python -m data_prep`.

    Args:
        prog: the program name shown in usage and error messages. Defaults to
            `"python -m data_prep"`; `mdnrnn prep` passes `"mdnrnn prep"`.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Convert drawings and performances into an mdnrnn sequence store.",
    )
    sources = parser.add_subparsers(dest="source_kind", required=True, metavar="SOURCE")

    p = sources.add_parser("kanjivg", help="KanjiVG SVGs (the kanjivg package or a folder)")
    p.add_argument("--dir", help="folder of KanjiVG SVGs (default: the kanjivg package's)")
    low, high = kanjivg.LIMIT_RANGE
    p.add_argument("--limit", type=_bounded(int, kanjivg.LIMIT_RANGE), metavar="N",
                   help=f"convert N files drawn at random with --seed, {low} to {high:,} (all)")
    low, high = kanjivg.EPSILON_RANGE
    p.add_argument("--epsilon", type=_bounded(float, kanjivg.EPSILON_RANGE), default=1.0,
                   metavar="E", help=f"RDP tolerance in viewBox units, {low} to {high} (1.0)")
    low, high = kanjivg.SAMPLE_STEP_RANGE
    p.add_argument("--sample-step", type=_bounded(float, kanjivg.SAMPLE_STEP_RANGE),
                   default=0.5, metavar="S",
                   help=f"curve sampling step in viewBox units, {low} to {high} (0.5)")
    p.add_argument("--include-variants", action="store_true",
                   help="also convert variant files (-Kaisho, ...)")
    _common(p)
    p.set_defaults(run=_run_kanjivg)

    p = sources.add_parser("sketch-npz", help="sketch-rnn stroke-3 .npz files (splits kept)")
    _input_or_sample(p, "files", "*", "FILE.npz", "sketch-rnn .npz files (train / valid / test)",
                     "convert short_kanji.npz, shipped with mdnrnn (11,100 KanjiVG "
                     "characters), instead of FILE.npz")
    _common(p, split=False)
    p.set_defaults(run=_run_sketch_npz)

    p = sources.add_parser("robojam", help="RoboJam / MicroJam touch corpus (.h5 or .npz)")
    _input_or_sample(p, "source", "?", "FILE", "TinyPerformanceCorpus.h5 or "
                     "TinyPerformanceArrays.npz-like corpus file",
                     "convert the RoboJam corpus shipped with mdnrnn "
                     "(TinyPerformanceCorpus.h5) instead of FILE")
    _common(p)
    p.set_defaults(run=_run_robojam)

    p = sources.add_parser("impsy", help="IMPSY log folder or IMPSY dataset .npz")
    p.add_argument("source", metavar="DIR_OR_NPZ")
    low, high = impsy.DIMENSION_RANGE
    p.add_argument("--dimension", type=_bounded(int, impsy.DIMENSION_RANGE), metavar="D",
                   help=f"IMPSY dimension D (dt + D-1 values), {low} to {high}: "
                        "read only *-Dd-mdrnn.log")
    _common(p)
    p.set_defaults(run=_run_impsy)
    return parser


def main(argv=None, prog="python -m data_prep"):
    """Runs `python -m data_prep` with `argv` (defaults to `sys.argv[1:]`).

    Args:
        argv: list of command-line arguments, without the program name.
        prog: the program name shown in usage and error messages. Defaults to
            `"python -m data_prep"`; `mdnrnn prep` passes `"mdnrnn prep"`.

    Returns:
        The exit status: 0 done, 1 the conversion failed (a one-line
        `error: ...` on stderr, nothing written), 2 bad usage (argparse's
        usage and message on stderr, nothing read or written).
    """
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
        if hasattr(args, "check"):
            args.check(args)
    except SystemExit as exc:  # argparse has printed usage and the problem
        return exc.code if isinstance(exc.code, int) else 2
    try:
        summary = args.run(args)
    except (PrepError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing written", file=sys.stderr)
        return 1
    print(summary.format())
    return 0
