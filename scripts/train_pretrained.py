"""Trains the pretrained models shipped in `mdnrnn/datasets/models/`, and writes their cards.

Two models, each trained from data that ships with mdnrnn or its test extra:

- `kanji`: stroke-5 drawings of every KanjiVG base character (the `kanjivg` package,
  converted by `data_prep.kanjivg.convert` with seed 0: 90 / 5 / 5 % train / valid / test).
- `touch`: RoboJam touch-screen performances (x, y, dt), the corpus shipped as
  `mdnrnn.datasets.path("robojam")`, converted by `data_prep.robojam.convert` with seed 0.

For each model the script converts the data into `--work/NAME.h5`, trains with
`mdnrnn.train.train` into `--work/NAME-run/` (best validation NLL kept, early stopping),
and where the recipe has a fine-tuning phase, goes on from that run's best model into
`--work/NAME-finetune/` with the phase's settings (`TrainSettings.init_from`: the same
weights, a fresh optimizer). The kanji model's phase lowers the learning rate and adds
sketch-rnn's augmentations against the first phase's overfitting; the touch model's
lowers the learning rate. A finished run directory (it holds `model.keras`) is kept as it
is, an unfinished one resumed, so an interrupted call picks up where it stopped. Then it
ships the last phase's best model: `--out/NAME.keras` holds the weights and config
without optimizer state, `--out/NAME.json` the facts (held-out NLL, sizes, settings,
time) and `--out/NAME.md` the model card. The held-out NLL is the pooled mean over every
step of the store's test split (total NLL / number of real steps, nats per step),
computed by `mdnrnn.evaluate.heldout_nll` (what `mdnrnn eval` reports).

Usage (from the repository root; the shipped models were made with these commands):

    .venv/bin/python scripts/train_pretrained.py kanji --epochs 40
    .venv/bin/python scripts/train_pretrained.py touch --epochs 60

`--epochs` is the first phase's; a fine-tuning phase's are in its recipe. `--ship-only`
skips training and ships the best model of the existing run directories (for a run that
was stopped by hand, say). Exit status 0 once the model and its card are written.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS_DIR = ROOT / "mdnrnn" / "datasets" / "models"

# What each shipped model is: preset and sizes, training settings, data and licence.
RECIPES = {
    "kanji": {
        "preset": "kanji",
        "overrides": {"units": 256, "layers": 2, "components": 10},
        # The shipped model was trained before the preset dropped clipping and before batches
        # were bucketed by length: both pinned here, so that this recipe remakes it.
        "train": {"batch_size": 64, "learning_rate": 1e-3, "clipnorm": 1.0, "bucket": False, "patience": 5,
                  "seed": 0},
        # Measured in docs/quality.md: the first phase overfits (train NLL far below valid).
        "finetune": {"epochs": 12, "learning_rate": 3e-4, "scale_augment": 0.15, "drop_points": 0.1,
                     "patience": 3},
        "data": "every KanjiVG base character (variants left out), from the `kanjivg` "
                "package, converted by `data_prep.kanjivg.convert` (RDP epsilon 1, sample step "
                "0.5 viewBox units), split at random with seed 0",
        "licence": "CC BY-SA 3.0 (a model trained on KanjiVG, Copyright (C) Ulrich Apel, "
                   "falls under KanjiVG's licence)",
        "use": "continues or draws kanji in KanjiVG's 109 x 109 viewBox (y grows downwards); "
               "stroke-5 rows, so a drawing ends by itself",
        "summary": "kanji drawings (KanjiVG)",
        "studio": {"canvas_units": 109.0, "epsilon": 1.0},  # what `mdnrnn serve` needs
    },
    "touch": {
        "preset": "touch",
        "overrides": {"units": 256, "layers": 2, "components": 5},
        # The shipped model clipped (trained before the preset dropped clipping): pinned here.
        "train": {"batch_size": 64, "learning_rate": 1e-3, "clipnorm": 1.0, "patience": 5, "seed": 0,
                  "window": 50},
        # Measured in docs/benchmarks.md: a constant 1e-3 leaves the valid NLL jumping.
        "finetune": {"epochs": 15, "learning_rate": 1e-4, "patience": 5},
        "data": "the RoboJam corpus shipped as `mdnrnn.datasets.path(\"robojam\")` (about 1,000 "
                "five-second MicroJam performances), converted by `data_prep.robojam.convert`, "
                "split at random with seed 0",
        "licence": "CC0 1.0 (the RoboJam corpus is CC0; so is this model)",
        "use": "answers touch-screen performances: rows (x, y, dt), x and y in [0, 1], dt in "
               "seconds since the previous touch",
        "summary": "touch-screen performances (RoboJam)",
        "studio": {},
    },
}


def convert(name: str, store: Path) -> None:
    """Writes the training store for model `name` (unless it is already there)."""
    if store.exists():
        return
    from data_prep import kanjivg, robojam

    from mdnrnn import datasets

    store.parent.mkdir(parents=True, exist_ok=True)
    if name == "kanji":
        kanjivg.convert(store, progress=False)
    else:
        robojam.convert(datasets.path("robojam"), store, progress=False)


def strip_optimizer(model):
    """A copy of `model` with the same config and weights, not compiled (no optimizer)."""
    from mdnrnn.models import MixtureRNN

    bare = MixtureRNN(model.config)
    bare.build((None, None, model.config.input_size))
    bare.set_weights(model.get_weights())
    return bare


def ship(name: str, run_dirs: list[Path], store: Path, out: Path, seconds: float | None) -> dict:
    """Saves the last phase's best model without optimizer state, its facts and its card."""
    from mdnrnn import data, load_model
    from mdnrnn.evaluate import heldout_nll

    model = strip_optimizer(load_model(run_dirs[-1] / "model.keras"))
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.keras"
    temp = target.with_name(target.stem + ".tmp.keras")
    model.save(temp)
    os.replace(temp, target)
    scored = heldout_nll(load_model(target), store)
    nll, steps = scored["nll"], scored["steps"]
    phases = []
    for run_dir in run_dirs:
        history = (run_dir / "history.csv").read_text().splitlines()
        state = json.loads((run_dir / "state.json").read_text())
        settings = json.loads((run_dir / "config.json").read_text())["train"]
        if settings.get("init_from"):  # as a path within --work, not this machine's
            settings["init_from"] = os.path.relpath(settings["init_from"], run_dir.parent)
        phases.append({"train": settings, "epochs_run": len(history) - 1, "best_valid_nll": state["best_val_loss"]})
    with data.open_store(store, check_values=False) as opened:
        splits = {split: len(opened.split(split)) for split in opened.split_names}
        points = int(opened.lengths.sum())
    facts = {
        "name": name,
        "file": target.name,
        "bytes": target.stat().st_size,
        "parameters": int(model.count_params()),
        "config": model.config.to_dict(),
        "train": phases[0]["train"],
        "epochs_run": phases[0]["epochs_run"],
        **({"finetune": {k: phases[1][k] for k in ("train", "epochs_run")}} if len(phases) > 1 else {}),
        "best_valid_nll": phases[-1]["best_valid_nll"],
        "heldout_nll": nll,
        "heldout_steps": steps,
        "data": {"splits": splits, "points": points, "description": RECIPES[name]["data"]},
        "licence": RECIPES[name]["licence"],
        "summary": RECIPES[name]["summary"],
        **RECIPES[name]["studio"],
        "command": f".venv/bin/python scripts/train_pretrained.py {name} --epochs {phases[0]['epochs_run']}",
        "train_seconds": seconds,
        "trained_on": f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
        "date": datetime.date.today().isoformat(),
    }
    (out / f"{name}.json").write_text(json.dumps(facts, indent=2) + "\n")
    (out / f"{name}.md").write_text(card(facts, RECIPES[name]))
    print(f"{name}: held-out NLL {nll:.4f} nats/step over {steps:,} steps; "
          f"{facts['bytes'] / 1e6:.1f} MB, {facts['parameters']:,} parameters -> {target}")
    return facts


def card(facts: dict, recipe: dict) -> str:
    """The model card (Markdown) for a shipped model."""
    config, train = facts["config"], facts["train"]
    spec = config["spec"]
    minutes = "unknown" if facts["train_seconds"] is None else f"{facts['train_seconds'] / 60:.0f} minutes"
    splits = ", ".join(f"{k} {v:,}" for k, v in facts["data"]["splits"].items())
    window = f", windows of {train['window']} steps" if spec.get("pen") is None and train.get("window") else ""
    finetune = ""
    if "finetune" in facts:
        tuned = facts["finetune"]["train"]
        augment = (f"scale augmentation {tuned['scale_augment']}, dropped points {tuned['drop_points']}, "
                   if tuned["scale_augment"] or tuned["drop_points"] else "")
        finetune = (f", then fine-tuned from that run's best model (learning rate {tuned['learning_rate']}, "
                    f"{augment}patience {tuned['patience']}; {facts['finetune']['epochs_run']} epochs run)")
    return f"""# Pretrained model `{facts['name']}`

Load it with `mdnrnn.load_model("{facts['name']}")` (or `mdnrnn serve`, `--model {facts['name']}`).

- **What it does**: {recipe['use']}.
- **Model**: preset `{config['preset']}`, {config['layers']} x {config['units']} LSTM units,
  {spec['components']} mixture components, pen `{spec.get('pen')}`, targets
  `{config.get('targets', 'rows')}`, {config.get('cell', 'lstm')} cells; {facts['parameters']:,}
  parameters, {facts['bytes'] / 1e6:.1f} MB (`{facts['file']}`, weights and config, no
  optimizer state).
- **Data**: {facts['data']['description']}. Sequences: {splits}
  ({facts['data']['points']:,} points in all).
- **Licence**: {facts['licence']}.
- **Held-out NLL**: {facts['heldout_nll']:.4f} nats per step (pooled over the
  {facts['heldout_steps']:,} steps of the test split; best validation NLL
  {facts['best_valid_nll']:.4f}). A continuous density can exceed 1, so NLLs can be negative.
- **How it was trained**: `{facts['command']}` (Adam, learning rate {train['learning_rate']},
  batch {train['batch_size']}{window}, early stopping patience {train['patience']}, seed
  {train['seed']}; best validation epoch kept; {facts['epochs_run']} epochs run){finetune} in {minutes}
  on {facts['trained_on']}, {facts['date']}.
- **Limits**: a small model trained briefly on a shared CPU; it is a demo and a starting point,
  not a state-of-the-art model.
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", choices=sorted(RECIPES))
    p.add_argument("--epochs", type=int, default=20, help="epochs of the first phase (20)")
    p.add_argument("--work", type=Path, default=Path("/tmp/mdnrnn-pretrained"),
                   help="folder for the store and the run directories (/tmp/mdnrnn-pretrained)")
    p.add_argument("--out", type=Path, default=MODELS_DIR, help="where to ship the model")
    p.add_argument("--ship-only", action="store_true",
                   help="ship the best model of the existing run directories, no training")
    p.add_argument("--train-seconds", type=float,
                   help="seconds of training before this call (runs resumed or shipped), for the card")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from mdnrnn import models, train

    recipe = RECIPES[args.name]
    store = args.work / f"{args.name}.h5"
    first = args.work / f"{args.name}-run"
    phases = [(first, models.preset(recipe["preset"], **recipe["overrides"]),
               train.TrainSettings(epochs=args.epochs, **recipe["train"]))]
    if "finetune" in recipe:
        settings = {**recipe["train"], **recipe["finetune"], "init_from": str(first / "model.keras")}
        phases.append((args.work / f"{args.name}-finetune", None, train.TrainSettings(**settings)))
    convert(args.name, store)
    seconds = args.train_seconds if args.ship_only else (args.train_seconds or 0.0)
    for run_dir, config, settings in phases:
        started = time.perf_counter()
        if (run_dir / "model.keras").exists():  # a finished run (early stopping included)
            continue
        if args.ship_only:  # epochs=1: nothing left to train; writes the best model as model.keras
            train.train(store, None, run_dir, train.TrainSettings(epochs=1), resume=True, verbose=2)
        elif run_dir.exists():
            train.train(store, None, run_dir, train.TrainSettings(epochs=settings.epochs), resume=True, verbose=2)
        else:
            train.train(store, config, run_dir, settings, verbose=2)
        if not args.ship_only:
            seconds += time.perf_counter() - started
    ship(args.name, [run_dir for run_dir, _, _ in phases], store, args.out, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
