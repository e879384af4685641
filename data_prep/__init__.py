"""Converters from outside formats into mdnrnn's HDF5 sequence store.

Run as `python -m data_prep SOURCE ...` (or through `mdnrnn prep`):

```
python -m data_prep kanjivg [--dir DIR] [--limit N] [--epsilon E] --out kanji.h5
python -m data_prep sketch-npz FILE.npz [FILE.npz ...] --out sketches.h5
python -m data_prep robojam FILE.h5|FILE.npz --out touch.h5
python -m data_prep impsy DIR_OR_NPZ [--dimension D] --out impsy.h5
```

Each prints a progress bar and a summary (sequences, points, length
percentiles, what was dropped and why). An existing output is only replaced
with `--force`; a failed or interrupted conversion writes nothing.
"""

import argparse
import sys

from data_prep import impsy, kanjivg, robojam, sketch_npz
from data_prep.common import PrepError, Summary
from mdnrnn.data import StoreError

__all__ = ["PrepError", "Summary", "main", "impsy", "kanjivg", "robojam", "sketch_npz"]


def _common(parser, *, split=True):
    parser.add_argument("--out", required=True, metavar="STORE", help="the store (.h5) to write")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    if split:
        parser.add_argument("--seed", type=int, default=0, metavar="N",
                            help="seed of the random split (0)")
        parser.add_argument("--valid-fraction", type=float, default=0.05, metavar="F",
                            help="share of sequences in valid (0.05)")
        parser.add_argument("--test-fraction", type=float, default=0.05, metavar="F",
                            help="share of sequences in test (0.05)")


def _split_args(args):
    return dict(seed=args.seed, valid_fraction=args.valid_fraction,
                test_fraction=args.test_fraction)


def _run_kanjivg(args):
    return kanjivg.convert(
        args.out, directory=args.dir, limit=args.limit, epsilon=args.epsilon,
        sample_step=args.sample_step, include_variants=args.include_variants,
        force=args.force, progress=not args.no_progress, **_split_args(args),
    )


def _run_sketch_npz(args):
    return sketch_npz.convert(args.files, args.out, force=args.force,
                              progress=not args.no_progress)


def _run_robojam(args):
    return robojam.convert(args.source, args.out, force=args.force,
                           progress=not args.no_progress, **_split_args(args))


def _run_impsy(args):
    return impsy.convert(args.source, args.out, dimension=args.dimension, force=args.force,
                         progress=not args.no_progress, **_split_args(args))


def build_parser():
    """The `argparse` parser of `python -m data_prep`."""
    parser = argparse.ArgumentParser(
        prog="python -m data_prep",
        description="Convert drawings and performances into an mdnrnn sequence store.",
    )
    sources = parser.add_subparsers(dest="source_kind", required=True, metavar="SOURCE")

    p = sources.add_parser("kanjivg", help="KanjiVG SVGs (the kanjivg package or a folder)")
    p.add_argument("--dir", help="folder of KanjiVG SVGs (default: the kanjivg package's)")
    p.add_argument("--limit", type=int, metavar="N", help="convert N files drawn at random with --seed (all)")
    p.add_argument("--epsilon", type=float, default=1.0, metavar="E",
                   help="RDP tolerance in viewBox units (1.0)")
    p.add_argument("--sample-step", type=float, default=0.5, metavar="S",
                   help="curve sampling step in viewBox units (0.5)")
    p.add_argument("--include-variants", action="store_true",
                   help="also convert variant files (-Kaisho, ...)")
    _common(p)
    p.set_defaults(run=_run_kanjivg)

    p = sources.add_parser("sketch-npz", help="sketch-rnn stroke-3 .npz files (splits kept)")
    p.add_argument("files", nargs="+", metavar="FILE.npz")
    _common(p, split=False)
    p.set_defaults(run=_run_sketch_npz)

    p = sources.add_parser("robojam", help="RoboJam / MicroJam touch corpus (.h5 or .npz)")
    p.add_argument("source", metavar="FILE")
    _common(p)
    p.set_defaults(run=_run_robojam)

    p = sources.add_parser("impsy", help="IMPSY log folder or IMPSY dataset .npz")
    p.add_argument("source", metavar="DIR_OR_NPZ")
    p.add_argument("--dimension", type=int, metavar="D",
                   help="IMPSY dimension D (dt + D-1 values): read only *-Dd-mdrnn.log")
    _common(p)
    p.set_defaults(run=_run_impsy)
    return parser


def main(argv=None):
    """Runs `python -m data_prep` with `argv` (defaults to `sys.argv[1:]`).

    Args:
        argv: list of command-line arguments, without the program name.

    Returns:
        The exit status: 0 done, 1 the conversion failed (a one-line
        `error: ...` on stderr, nothing written), 2 bad usage.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
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
