"""Generated touch performances against the held-out RoboJam performances.

Prepares the RoboJam corpus shipped with mdnrnn (`mdnrnn.datasets.path("robojam")`) with
`data_prep.robojam.convert` (the same split as training: seed 0), generates
`--per-real` performances (4) for each of the test split's, each as long as that real one
(the held-out performances last from about 1.5 s to 25 s, and a rate such as touches per
second depends on the span it is counted over; `--seconds S` gives every generated one
S seconds instead), and compares the two sets on five statistics, each with a two-sample
Kolmogorov-Smirnov statistic (0: the same distribution, 1: no overlap):

- border: per performance, the fraction of points on the screen's border (x or y at 0
  or 1; the corpus clips positions into [0, 1], and so does the generator);
- step: the distance |(dx, dy)| between consecutive points of one swipe;
- dt: seconds between consecutive points (every row but a performance's first);
- swipe points: points per touch (1 for a tap);
- touches/s: per performance, touches divided by its duration (the sum of dt).

A touch starts at a row with `dt > --tap-threshold` (0.1 s, as the exporters split
touches). Generated performances come from one `Generator.generate` call with the longest
real duration as its limit, each then cut at its own duration (rows up to it; a row that
would cross it is dropped). It also writes an SVG of real (left) and generated (right)
performances side by side.

Run (from the repository root; about a minute):

    .venv/bin/python scripts/eval_touch.py --model touch --svg /tmp/touch_eval.svg

`--real-split valid` compares the held-out performances with another split's real ones
instead (no model): how far apart two sets of real performances already are.
`--one-step` also primes the model with every prefix of each held-out performance and
draws the next row: how often a touch follows a touch's first row, and how far swipes
step (their first step, and all), against the real next rows.
`--style N` generates N performances of 4 s and reports how strongly each half's touches
per second, points per touch and step length predict the other's (Spearman), against the
corpus's own performances of 4 s or more (real players keep a style), and the same for the
held-out ones' first 2 s continued by the model (4 times each), against their real second 2 s.
`--tempo T` gives a tempo-conditioned model (`mdnrnn train --tempo on` or `beats`) T touches per second
for every performance, primed ones included (by default each draws one from the training
performances', and a primed one takes its prefix's own).

`--model` takes a `.keras` file or the name of a pretrained model. Without a model at
hand, `--train-epochs N` trains a small one first (`preset("touch", units=--units)` on
windows of `--window` rows (50; 0: whole performances) of the train split, the store's own
statistics), in about a minute per epoch on 2 cores:

    .venv/bin/python scripts/eval_touch.py --train-epochs 3 --units 64
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from mdnrnn import atomic, formats  # noqa: E402  (standard library and NumPy only)
from mdnrnn.export import _common  # noqa: E402  (NumPy only)

# Positions within this of 0 or 1 count as on the border.
BORDER_TOLERANCE = 1e-6
METRICS = ("border", "step", "dt", "swipe points", "touches/s")
# `--one-step` primes the model with the prefixes of each held-out performance's first rows.
ONE_STEP_ROWS = 300
# `--style` compares the first half of this many seconds of a performance with the second.
STYLE_SECONDS = 4.0
STYLE_FIGURES = ("touches/s", "points per touch", "swipe step")


def performance_metrics(touches, tap_threshold=formats.NEW_TOUCH_DT):
    """The statistics of one performance `(n, 3)` of `(x, y, dt)` rows.

    Returns:
        A dict: `border` and `touches/s` are one number each (NaN for an empty
        performance, or `touches/s` of one with no duration); `step`, `dt` and
        `swipe points` are arrays, one value per step within a swipe, per row after the
        first, and per touch.
    """
    touches = _common.touch_array(touches)
    if len(touches) == 0:
        empty = np.zeros(0)
        return {"border": np.nan, "step": empty, "dt": empty, "swipe points": empty, "touches/s": np.nan}
    xy, dt = touches[:, :2], touches[:, 2]
    on_border = ((xy <= BORDER_TOLERANCE) | (xy >= 1 - BORDER_TOLERANCE)).any(axis=1)
    spans = _common.touch_spans(dt, tap_threshold)
    steps = [np.linalg.norm(np.diff(xy[span], axis=0), axis=1) for span in spans]
    duration = dt.sum()
    return {
        "border": on_border.mean(),
        "step": np.concatenate(steps),
        "dt": dt[1:],
        "swipe points": np.array([span.stop - span.start for span in spans], np.float64),
        "touches/s": len(spans) / duration if duration > 0 else np.nan,
    }


def pooled_metrics(performances, tap_threshold=formats.NEW_TOUCH_DT):
    """Each statistic of many performances, pooled into one array (NaNs dropped)."""
    per = [performance_metrics(p, tap_threshold) for p in performances]
    pooled = {}
    for name in METRICS:
        values = np.concatenate([np.atleast_1d(np.asarray(m[name], np.float64)) for m in per])
        pooled[name] = values[~np.isnan(values)]
    return pooled


def compare(real, generated, tap_threshold=formats.NEW_TOUCH_DT):
    """Per statistic: `(real mean, generated mean, KS statistic)` of two sets of performances."""
    real, generated = pooled_metrics(real, tap_threshold), pooled_metrics(generated, tap_threshold)
    result = {}
    for name in METRICS:
        a, b = real[name], generated[name]
        ks = stats.ks_2samp(a, b).statistic if len(a) and len(b) else np.nan
        result[name] = (a.mean() if len(a) else np.nan, b.mean() if len(b) else np.nan, ks)
    return result


def one_step_figures(real, sampled, tap_threshold=formats.NEW_TOUCH_DT):
    """What a model draws one step ahead of real performances, against what came next.

    Args:
        real: performances `(n, 3)`.
        sampled: per performance, `(n - 1, 3)`: row `t` drawn after the model read rows
            `0 .. t` of the real one.

    Returns:
        A dict of `(real, sampled)` pairs: `"new touch after a touch start"`, the fraction
        of rows after a touch's first row that start another touch (a tap before them);
        and `(real mean, sampled mean, KS statistic)` triples: `"first swipe step"`,
        |(dx, dy)| from a touch's first row to a row that continues it, and `"swipe step"`,
        the same from any row.
    """
    starts, new, steps = ([], []), ([], []), ([], [])
    for performance, drawn in zip(real, sampled):
        performance = np.asarray(performance, np.float64)
        previous = performance[:-1]
        start = np.r_[True, previous[1:, 2] > tap_threshold]  # a performance's first row starts a touch
        for side, following in enumerate((performance[1:], np.asarray(drawn, np.float64))):
            is_new = following[:, 2] > tap_threshold
            starts[side].append(start)
            new[side].append(is_new)
            steps[side].append(np.where(is_new, np.nan, np.linalg.norm(following[:, :2] - previous[:, :2], axis=1)))
    start, new, steps = ([np.concatenate(part) for part in pair] for pair in (starts, new, steps))

    def triple(a, b):
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        return a.mean(), b.mean(), stats.ks_2samp(a, b).statistic

    return {
        "new touch after a touch start": (new[0][start[0]].mean(), new[1][start[1]].mean()),
        "first swipe step": triple(steps[0][start[0]], steps[1][start[1]]),
        "swipe step": triple(steps[0], steps[1]),
    }


def one_step_samples(generator, real):
    """Per performance `(n, 3)`, the rows `(n - 1, 3)`: row `t + 1` drawn after rows `0 .. t`."""
    sampled = []
    for rows in real:
        if len(rows) < 2:  # nothing follows a lone row
            sampled.append(np.zeros((0, 3), np.float32))
            continue
        generator.prime([rows[: t + 1] for t in range(len(rows) - 1)])
        sampled.append(generator.step())
    return sampled


def style_persistence(performances, seconds=STYLE_SECONDS, tap_threshold=formats.NEW_TOUCH_DT):
    """How much of a performance's style carries from its first half to its second.

    Each performance that lasts at least `seconds` is cut to `seconds` and split in two at
    half that time. Per half: touches per second, points per touch (mean) and step within
    a swipe (median).

    Returns:
        `(count, {figure: Spearman rank correlation between the halves})`, NaN where fewer
        than three performances have the figure in both halves, or one half is constant. A
        player who swipes slowly at first tends to go on doing so: the RoboJam corpus gives
        about 0.65 to 0.7.
    """
    halves = []
    for performance in performances:
        performance = np.asarray(performance, np.float64)
        if len(performance) == 0 or performance[:, 2].sum() < seconds:
            continue
        elapsed = np.cumsum(performance[:, 2])
        starts = np.r_[True, performance[1:, 2] > tap_threshold]
        figures = []
        for half in (elapsed <= seconds / 2, (elapsed > seconds / 2) & (elapsed <= seconds)):
            m = performance_metrics(performance[half], tap_threshold)
            figures.append((
                starts[half].sum() / (seconds / 2),  # touches that start in this half
                m["swipe points"].mean() if len(m["swipe points"]) else np.nan,
                np.median(m["step"]) if len(m["step"]) else np.nan,
            ))
        halves.append(figures)
    halves = np.array(halves, np.float64).reshape(-1, 2, len(STYLE_FIGURES))
    result = {}
    for k, name in enumerate(STYLE_FIGURES):
        a, b = halves[:, 0, k], halves[:, 1, k]
        a, b = a[~np.isnan(a) & ~np.isnan(b)], b[~np.isnan(a) & ~np.isnan(b)]
        ranked = len(a) >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0  # a constant half has no ranks
        result[name] = stats.spearmanr(a, b).statistic if ranked else np.nan
    return len(halves), result


def continued(generator, performances, copies, max_steps, seconds=STYLE_SECONDS):
    """Each performance's first `seconds / 2` continued by the model, `copies` times each.

    Generation runs to `2 * seconds` (the prefix's time counts), so that a continuation
    whose last row would cross the limit still lasts the `seconds` that
    `style_persistence` reads.
    """
    prefixes = [cut(p, seconds / 2) for p in performances]
    prefixes = [p for p in prefixes for _ in range(copies) if len(p)]
    generator.prime(prefixes)
    rows = generator.generate(max_steps=max_steps, max_seconds=2 * seconds)
    return [np.concatenate([prefix, more]) for prefix, more in zip(prefixes, rows)]


def print_style(generator, corpus, held_out, n, max_steps, tap_threshold=formats.NEW_TOUCH_DT):
    """`--style`'s table: `style_persistence` of real, generated and continued performances."""
    long_ones = [p for p in held_out if p[:, 2].sum() >= STYLE_SECONDS]
    columns = {
        "corpus (all splits)": style_persistence(corpus, tap_threshold=tap_threshold),
        "generated": style_persistence(generator.generate(n=n, max_steps=max_steps, max_seconds=2 * STYLE_SECONDS),
                                       tap_threshold=tap_threshold),
        "held-out": style_persistence(long_ones, tap_threshold=tap_threshold),
        "held-out first half, continued": style_persistence(continued(generator, long_ones, 4, max_steps),
                                                            tap_threshold=tap_threshold),
    }
    print(f"\n| kept from the first {STYLE_SECONDS / 2:g} s to the next (Spearman) | "
          + " | ".join(f"{name} ({count})" for name, (count, _) in columns.items()) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for figure in STYLE_FIGURES:
        print(f"| {figure} | " + " | ".join(f"{kept[figure]:.3f}" for _, kept in columns.values()) + " |")


def cut(performance, seconds):
    """The rows of a `(n, 3)` touch performance whose running time (sum of dt) is at most `seconds`."""
    performance = np.asarray(performance)
    return performance[np.cumsum(performance[:, 2]) <= seconds]


def side_by_side_svg(real, generated, rows=6, size=200):
    """One SVG: real performances in the left column, generated ones in the right."""
    from mdnrnn.export import performance_to_svg

    rows = min(rows, len(real), len(generated))
    width, height = 2 * size + 30, rows * size + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{width}" height="{height}">',
        f'<text x="{size // 2}" y="18" font-family="sans-serif" font-size="14">real (test split)</text>',
        f'<text x="{size + 30 + size // 2 - 30}" y="18" font-family="sans-serif" font-size="14">generated</text>',
    ]
    for row in range(rows):
        for column, performance in enumerate((real[row], generated[row])):
            picture = base64.b64encode(performance_to_svg(performance, size=size).encode()).decode()
            parts.append(
                f'<image x="{column * (size + 30)}" y="{24 + row * size}" width="{size}" height="{size}" '
                f'xlink:href="data:image/svg+xml;base64,{picture}"/>'
            )
    parts.append("</svg>")
    return "\n".join(parts)


def print_table(comparison, other="generated"):
    """`compare`'s result as a Markdown table (`other`: what the held-out set is compared with)."""
    print(f"| statistic | real mean | {other} mean | KS statistic |")
    print("| --- | ---: | ---: | ---: |")
    for name, (real_mean, generated_mean, ks) in comparison.items():
        print(f"| {name} | {real_mean:.4g} | {generated_mean:.4g} | {ks:.3f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="touch", help="a .keras file or a pretrained model name")
    parser.add_argument("--train-epochs", type=int, default=0, help="train a small model for this many epochs instead")
    parser.add_argument("--units", type=int, default=64, help="LSTM units of the model --train-epochs trains")
    parser.add_argument("--window", type=int, default=50, help="rows per training window; 0: whole performances")
    parser.add_argument("--targets", choices=("rows", "offsets"), default=None,
                        help="what the model --train-epochs trains predicts (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size")
    parser.add_argument("--seconds", type=float, default=None,
                        help="every generated performance this long (default: as long as its real one)")
    parser.add_argument("--per-real", type=int, default=4, help="generated performances per held-out one (4)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="step limit of a generated performance (default: twice the longest real one's rows)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--sigma-temperature", type=float, default=1.0)
    parser.add_argument("--tempo", type=float, default=None,
                        help="tempo-conditioned models: touches per second of every generated performance, "
                             "and of the primed ones of --one-step and --style (default: drawn per performance "
                             "from the training tempos; a primed one takes its prefix's own)")
    parser.add_argument("--tap-threshold", type=float, default=formats.NEW_TOUCH_DT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--svg", help="write the side-by-side SVG here")
    parser.add_argument("--real-split", choices=("train", "valid"),
                        help="compare the held-out performances with this split's real ones instead of a model's "
                             "(how far apart two sets of real performances are)")
    parser.add_argument("--one-step", action="store_true",
                        help=f"also draw one row after every prefix of the held-out performances (up to "
                             f"{ONE_STEP_ROWS} rows each) and compare it with the real next row")
    parser.add_argument("--style", type=int, default=0, metavar="N",
                        help=f"also generate N performances of {STYLE_SECONDS:g} s and report how much of their "
                             "style carries from the first half to the second, against the corpus's, and "
                             "the same for held-out first halves continued by the model")
    args = parser.parse_args(argv)

    import mdnrnn
    from data_prep import robojam
    from mdnrnn import data, datasets

    with tempfile.TemporaryDirectory() as tmp:
        store_path = os.path.join(tmp, "robojam.h5")
        robojam.convert(None, store_path, sample=True, progress=False)
        with data.open_store(store_path) as store:
            real = [np.asarray(store[int(i)]) for i in store.split("test")]
            corpus, held_out = [], []
            if args.style:
                corpus = [np.asarray(store[i]) for i in range(len(store))]
                held_out = [np.asarray(store[int(i)]) for split in ("valid", "test") for i in store.split(split)]
            mean, std = tuple(store.mean.tolist()), tuple(store.std.tolist())
            if args.real_split:
                other = [np.asarray(store[int(i)]) for i in store.split(args.real_split)]
                print(f"# the {len(real)} held-out performances against the {len(other)} of the "
                      f"{args.real_split} split\n")
                print_table(compare(real, other, args.tap_threshold), args.real_split)
                return
        if args.train_epochs:
            import keras

            keras.utils.set_random_seed(args.seed)
            config = mdnrnn.preset("touch", units=args.units, mean=mean, std=std)
            if args.targets:
                config = config.replace(targets=args.targets)
            model = mdnrnn.build_model(config)
            window = args.window or None
            history = model.fit(
                data.make_dataset(store_path, "train", args.batch_size, window=window, seed=args.seed,
                                  targets=config.targets),
                validation_data=data.make_dataset(store_path, "valid", 64, shuffle=False, targets=config.targets),
                epochs=args.train_epochs, verbose=0,
            )
            args.model = (
                f"preset('touch', units={args.units}, targets={config.targets!r}) trained {args.train_epochs} epochs on "
                f"{f'windows of {window} rows' if window else 'whole performances'} "
                f"(batch {args.batch_size}; valid NLL over whole performances "
                f"{history.history['val_loss'][-1]:.3f} nats/step)"
            )
        else:
            model = mdnrnn.load_model(args.model)
    generator = mdnrnn.Generator(
        model, temperature=args.temperature, sigma_temperature=args.sigma_temperature, seed=args.seed,
        tempo=args.tempo,
    )
    durations = np.tile([p[:, 2].sum() for p in real], args.per_real)
    if args.seconds:
        durations[:] = args.seconds
    max_steps = args.max_steps or 2 * max(len(p) for p in real)
    generated = generator.generate(n=len(durations), max_steps=max_steps, max_seconds=float(durations.max()))
    generated = [cut(p, seconds) for p, seconds in zip(generated, durations)]
    lasting = "each as long as its real one" if not args.seconds else f"{args.seconds:g} s each"
    print(
        f"# model {args.model}; {len(real)} held-out performances of {datasets.path('robojam').name} "
        f"(test split, seed 0) against {len(generated)} generated ones ({lasting}, up to {max_steps} "
        f"steps, temperature {args.temperature:g}, sigma_temperature {args.sigma_temperature:g}, "
        f"{'' if args.tempo is None else f'tempo {args.tempo:g}, '}seed {args.seed})\n"
    )
    print_table(compare(real, generated, args.tap_threshold))
    if args.one_step:
        capped = [np.asarray(p)[:ONE_STEP_ROWS] for p in real]
        figures = one_step_figures(capped, one_step_samples(generator, capped), args.tap_threshold)
        print("\n| one step ahead of the held-out rows | real | sampled | KS statistic |")
        print("| --- | ---: | ---: | ---: |")
        for name, values in figures.items():
            print(f"| {name} | " + " | ".join(f"{v:.4g}" for v in values) + (" | |" if len(values) == 2 else " |"))
    if args.style:
        print_style(generator, corpus, held_out, args.style, max_steps, args.tap_threshold)
    if args.svg:
        atomic.write_atomically(args.svg, side_by_side_svg(real, generated).encode())
        print(f"\nwrote {args.svg}")


if __name__ == "__main__":
    main()
