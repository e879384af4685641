"""Evaluates a trained drawing model: held-out NLL, self-ending samples, strokes per drawing.

For a model trained on a stroke-3 store (kanji, sketches):

1. Held-out NLL: `model.evaluate` on the store's test split, batched by
   `mdnrnn.data.make_dataset(store, "test", ..., pen=model.config.spec.pen)`, in nats
   per step (a step is one point, plus the end-of-drawing step for a stroke-5 model).
   Keras averages the per-batch means weighted by batch size; the script also prints
   the pooled mean (total NLL over all test steps / number of steps), which does not
   depend on the batch size.
2. Self-ending samples: `Generator(model, temperature=..., seed=...).generate(n=N,
   max_steps=2 * L, stop=True)`, with L the longest training drawing (points). A
   drawing ended by itself when the model sampled end-of-drawing, i.e. when it is
   shorter than `max_steps`. Only stroke-5 (categorical pen) models can end; for a
   Bernoulli-pen model this is reported as n/a.
3. Strokes per drawing: the number of rows with pen_lift == 1 (in stroke-3 a row with
   pen_lift 1 ends a stroke), for the generated drawings and for the test split: mean,
   quantiles and the two-sample Kolmogorov-Smirnov statistic (scipy.stats.ks_2samp). The
   same for points per drawing.

Usage (from the repository root):

    .venv/bin/python scripts/eval_kanji.py --model RUN/model.keras --data kanji.h5 \\
        [--n 200] [--seed 0] [--temperature 1.0 0.8 0.6] [--sigma-temperature 1.0] [--json out.json]

Several temperatures give one row each. Exit status 0 once the table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a trained .keras model (mdnrnn)")
    p.add_argument("--data", required=True, help="the stroke-3 store it was trained on (.h5)")
    p.add_argument("--n", type=int, default=200, help="drawings to generate per temperature (200)")
    p.add_argument("--seed", type=int, default=0, help="generation seed (0)")
    p.add_argument("--temperature", type=float, nargs="+", default=[1.0],
                   help="mixture/pen temperature(s); 1.0 samples the model as trained (1.0)")
    p.add_argument("--sigma-temperature", type=float, default=1.0, help="variance scale (1.0)")
    p.add_argument("--max-steps", type=int, help="step limit (default: 2 x the longest training drawing)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size for the held-out NLL (64)")
    p.add_argument("--json", help="also write the results here")
    return p.parse_args(argv)


def strokes_per_drawing(drawings):
    """Rows with pen_lift == 1 (the last point of a stroke) in each stroke-3 drawing."""
    return np.array([int(np.sum(d[:, 2] == 1)) for d in drawings])


def summary(values):
    values = np.asarray(values, float)
    if not len(values):
        return {"n": 0}
    quantiles = np.quantile(values, QUANTILES)
    return {"n": int(len(values)), "mean": float(values.mean()),
            **{f"q{int(q * 100)}": float(v) for q, v in zip(QUANTILES, quantiles)}}


def heldout_nll(model, store_path, batch_size):
    """(model.evaluate's NLL, pooled NLL per step, number of steps) on the test split."""
    from mdnrnn import data, evaluate

    dataset = data.make_dataset(store_path, "test", batch_size, pen=model.config.spec.pen, shuffle=False)
    pooled = evaluate.heldout_nll(model, store_path, "test", batch_size=batch_size)
    return float(model.evaluate(dataset, verbose=0)), pooled["nll"], pooled["steps"]


def generate(model, n, max_steps, temperature, sigma_temperature, seed):
    from mdnrnn import Generator

    generator = Generator(model, temperature=temperature, sigma_temperature=sigma_temperature, seed=seed)
    started = time.perf_counter()
    drawings = generator.generate(n=n, max_steps=max_steps, stop=True)
    return drawings, time.perf_counter() - started


def main(argv=None):
    args = _parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from scipy.stats import ks_2samp

    from mdnrnn import data, load_model

    model = load_model(args.model)
    config = model.config
    if config.data_kind != "stroke3":
        raise SystemExit(f"error: {args.model} models {config.data_kind!r} data, not drawings (stroke3).")
    with data.open_store(args.data) as store:
        if store.kind != "stroke3":
            raise SystemExit(f"error: {args.data} is a {store.kind!r} store, not stroke3.")
        longest = int(store.lengths[store.split("train")].max())
        test = [store[i] for i in store.split("test")]
    max_steps = args.max_steps or 2 * longest
    can_end = config.spec.pen == "categorical"

    evaluated, pooled, steps = heldout_nll(model, args.data, args.batch_size)
    test_strokes = strokes_per_drawing(test)
    test_points = np.array([len(d) for d in test])
    results = {
        "model": str(args.model), "data": str(args.data), "preset": config.preset,
        "units": config.units, "layers": config.layers, "components": config.spec.components,
        "pen": config.spec.pen, "longest_training_drawing": longest, "max_steps": max_steps,
        "test_nll_evaluate": evaluated, "test_nll_pooled": pooled, "test_steps": steps,
        "test_strokes": summary(test_strokes), "test_points": summary(test_points), "samples": [],
    }
    for temperature in args.temperature:
        drawings, seconds = generate(model, args.n, max_steps, temperature, args.sigma_temperature, args.seed)
        lengths = np.array([len(d) for d in drawings])
        ended = lengths < max_steps
        strokes = strokes_per_drawing(drawings)
        ks = ks_2samp(strokes, test_strokes)
        ks_points = ks_2samp(lengths, test_points)
        results["samples"].append({
            "temperature": temperature, "sigma_temperature": args.sigma_temperature, "n": len(drawings),
            "seconds": seconds,
            "ended_fraction": float(ended.mean()) if can_end else None,
            "empty": int(np.sum(lengths == 0)),
            "strokes": summary(strokes), "strokes_ended_only": summary(strokes[ended]),
            "strokes_ks": float(ks.statistic), "strokes_ks_p": float(ks.pvalue),
            "points": summary(lengths), "points_ks": float(ks_points.statistic),
        })
    _print(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _quantiles(s):
    return " / ".join(f"{s[f'q{int(q * 100)}']:.0f}" for q in QUANTILES) if s["n"] else "-"


def _print(r, args):
    print(f"model {r['model']} ({r['preset']}, {r['layers']} x {r['units']} LSTM, "
          f"{r['components']} components, pen {r['pen']}); data {r['data']}")
    print(f"held-out NLL (test split, {r['test_steps']:,} steps): {r['test_nll_pooled']:.4f} nats/step pooled, "
          f"{r['test_nll_evaluate']:.4f} from model.evaluate (batch {args.batch_size})")
    print(f"longest training drawing {r['longest_training_drawing']} points; max_steps {r['max_steps']}; "
          f"{args.n} samples per row, seed {args.seed}, sigma temperature {args.sigma_temperature}")
    print()
    print("| drawings | ended by themselves | strokes mean | strokes q5/q25/q50/q75/q95 | KS strokes (p) "
          "| points mean | points q5/q25/q50/q75/q95 | KS points |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| test split ({r['test_strokes']['n']}) | - | {r['test_strokes']['mean']:.2f} | "
          f"{_quantiles(r['test_strokes'])} | - | {r['test_points']['mean']:.1f} | {_quantiles(r['test_points'])} | - |")
    for s in r["samples"]:
        ended = "n/a (no end state)" if s["ended_fraction"] is None else f"{100 * s['ended_fraction']:.1f}%"
        print(f"| generated, T={s['temperature']:g} | {ended} | {s['strokes']['mean']:.2f} | "
              f"{_quantiles(s['strokes'])} | {s['strokes_ks']:.3f} ({s['strokes_ks_p']:.2g}) | "
              f"{s['points']['mean']:.1f} | {_quantiles(s['points'])} | {s['points_ks']:.3f} |")
    for s in r["samples"]:
        if s["empty"]:
            print(f"note: T={s['temperature']:g}: {s['empty']} drawings ended at once (no points)")


if __name__ == "__main__":
    sys.exit(main())
