"""`scripts/train_pretrained.py`: the two phases of a recipe, resuming, and what it ships."""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mdnrnn import load_model
from mdnrnn.cli import main as mdnrnn_main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def recipes(monkeypatch):
    """`scripts/train_pretrained.py`, imported afresh, its recipes as written."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    sys.modules.pop("train_pretrained", None)
    import train_pretrained

    return train_pretrained


@pytest.fixture
def script(recipes, monkeypatch):
    train_pretrained = recipes
    # The kanji recipe at a toy size, its fine-tuning phase one epoch long.
    recipe = train_pretrained.RECIPES["kanji"]
    monkeypatch.setitem(recipe, "overrides", {"units": 8, "layers": 1, "components": 2})
    monkeypatch.setitem(recipe, "train", {**recipe["train"], "batch_size": 16})
    monkeypatch.setitem(recipe, "finetune", {**recipe["finetune"], "epochs": 1})
    return train_pretrained


@pytest.mark.slow
def test_fine_tuning_phase_starts_from_the_first_phase_and_is_what_ships(script, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    # A small store where the script looks for its own (it converts only when there is none).
    assert mdnrnn_main(["prep", "kanjivg", "--limit", "60", "--out", str(work / "kanji.h5"), "--no-progress"]) == 0
    assert script.main(["kanji", "--epochs", "1", "--work", str(work), "--out", str(out)]) == 0

    first, tuned = work / "kanji-run", work / "kanji-finetune"
    settings = json.loads((tuned / "config.json").read_text())["train"]
    assert settings["init_from"] == str(first / "model.keras")
    assert settings["learning_rate"] == script.RECIPES["kanji"]["finetune"]["learning_rate"]
    assert settings["scale_augment"] == 0.15 and settings["drop_points"] == 0.1
    # Both phases clip as the shipped model's did, whatever the preset's default now is.
    shipped_facts = json.loads((ROOT / "mdnrnn" / "datasets" / "models" / "kanji.json").read_text())
    first_settings = json.loads((first / "config.json").read_text())["train"]
    assert first_settings["clipnorm"] == shipped_facts["train"]["clipnorm"] == 1.0
    assert settings["clipnorm"] == shipped_facts["finetune"]["train"]["clipnorm"] == 1.0
    # The fine-tuned run began from the first phase's best model: same config, and after
    # one epoch at a lower rate its weights are near those, not near a fresh start's.
    start, shipped = load_model(first / "model.keras"), load_model(out / "kanji.keras")
    assert shipped.config == start.config
    for tuned_w, shipped_w in zip(load_model(tuned / "model.keras").get_weights(), shipped.get_weights(), strict=True):
        np.testing.assert_array_equal(tuned_w, shipped_w)
    drift = max(np.abs(a - b).max() for a, b in zip(start.get_weights(), shipped.get_weights(), strict=True))
    assert 0 < drift < 0.05
    facts = json.loads((out / "kanji.json").read_text())
    assert facts["epochs_run"] == 1 and facts["finetune"]["epochs_run"] == 1
    assert facts["finetune"]["train"]["init_from"] == "kanji-run/model.keras"  # within --work
    assert "then fine-tuned from that run's best model" in (out / "kanji.md").read_text()

    # Called again, both runs are resumed (nothing left to do) and the same model ships.
    assert script.main(["kanji", "--epochs", "1", "--work", str(work), "--out", str(out)]) == 0
    again = load_model(out / "kanji.keras")
    for a, b in zip(shipped.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["kanji", "touch"])
def test_each_recipe_remakes_the_shipped_models_training_settings(name, recipes):
    """Both phases' settings, the preset's defaults filled in, are the shipped model's: a
    preset whose defaults changed since (kanji and touch dropped clipping) stays pinned."""
    from mdnrnn import train

    recipe = recipes.RECIPES[name]
    facts = json.loads((ROOT / "mdnrnn" / "datasets" / "models" / f"{name}.json").read_text())
    phases = [(recipe["train"], facts["train"]),
              ({**recipe["train"], **recipe["finetune"]}, facts["finetune"]["train"])]
    keys = ("batch_size", "learning_rate", "clipnorm", "lr_decay", "min_learning_rate", "window",
            "patience", "seed", "scale_augment", "drop_points")
    for given, shipped in phases:
        resolved = dataclasses.asdict(train.TrainSettings(**given).resolved(recipe["preset"]))
        assert {k: resolved[k] for k in keys} == {k: shipped[k] for k in keys}
