"""`build_model(precision="mixed_bfloat16")` and `mdnrnn train --precision`: the LSTM stack
computes in bfloat16 while weights, head and loss stay float32, and saved models are float32."""

import json

import numpy as np
import pytest

from mdnrnn import data, models
from mdnrnn._tf import keras
from mdnrnn.cli import main

TINY = ["--units", "16", "--layers", "2", "--mixtures", "3", "--progress", "none", "--jit", "off"]


def _random_weights(model, seed):
    """Random non-zero weights and biases (an untrained model's zero biases hide bugs)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.4, w.shape).astype(np.float32) for w in model.get_weights()])


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
def test_bfloat16_model_computes_the_float32_model_within_bfloat16_precision(cell, tmp_path):
    config = models.preset("touch", units=16, layers=2, components=3, cell=cell)
    exact = models.build_model(config)
    mixed = models.build_model(config, precision="mixed_bfloat16")
    _random_weights(exact, 1)
    mixed.set_weights(exact.get_weights())
    assert [lstm.compute_dtype for lstm in mixed.lstms] == ["bfloat16", "bfloat16"]
    assert mixed.head.compute_dtype == "float32"
    assert all(w.dtype == "float32" for w in mixed.weights)  # the weights themselves stay float32
    x = np.random.default_rng(2).normal(0, 1, (4, 12, config.input_size)).astype(np.float32)
    want, got = exact(x).numpy(), mixed(x).numpy()
    assert got.dtype == np.float32
    # bfloat16 keeps 8 significant bits (relative error 2**-8 per rounding), compounded over
    # 12 steps and two layers; a wrong cast or a skipped layer would be off by O(1).
    np.testing.assert_allclose(got, want, atol=0.1, rtol=0.05)
    assert np.abs(got - want).max() > 0  # it did compute in bfloat16

    # A saved mixed model is a float32 model with the same weights.
    mixed.save(tmp_path / "mixed.keras")
    loaded = models.load_model(tmp_path / "mixed.keras")
    assert [lstm.compute_dtype for lstm in loaded.lstms] == ["float32", "float32"]
    np.testing.assert_allclose(loaded(x).numpy(), want, rtol=1e-6, atol=1e-6)


def test_bfloat16_training_step_gives_a_finite_loss_and_float32_gradients():
    config = models.preset("touch", units=16, layers=2, components=3)
    model = models.build_model(config, precision="mixed_bfloat16")
    _random_weights(model, 3)
    before = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (8, 10, config.input_size)).astype(np.float32)
    y = rng.normal(0, 1, (8, 10, 3)).astype(np.float32)
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    after = model.get_weights()
    assert all(a.dtype == np.float32 for a in after)
    assert all(not np.array_equal(a, b) for a, b in zip(after, before))  # every weight learned


def test_bad_precision_is_refused():
    with pytest.raises(ValueError, match="precision='float16'"):
        models.build_model(models.preset("touch", units=8, layers=1), precision="float16")


@pytest.fixture(scope="module")
def touch_store(tmp_path_factory):
    rng = np.random.default_rng(5)
    rows = [np.c_[rng.uniform(0, 1, (31, 2)), rng.exponential(0.05, 31)] for _ in range(16)]
    return data.write_store(tmp_path_factory.mktemp("p") / "t.h5", [r.astype(np.float32) for r in rows],
                            kind="touch", splits=["train"] * 12 + ["valid"] * 4, source="unit test",
                            licence="CC0", seed=0)


def test_cli_trains_in_bfloat16_saves_float32_and_resume_keeps_it(touch_store, tmp_path, monkeypatch, capsys):
    seen = []
    fit = keras.Model.fit

    def spy(self, *args, **kwargs):
        seen.append(self.lstms[0].compute_dtype)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    run_dir = tmp_path / "run"
    argv = ["train", "--data", str(touch_store), "--preset", "touch", "--seq-len", "10", "--epochs", "1",
            "--out", str(run_dir), "--precision", "mixed_bfloat16", *TINY]
    assert main(argv) == 0
    assert "precision mixed_bfloat16" in capsys.readouterr().out
    assert json.loads((run_dir / "config.json").read_text())["train"]["precision"] == "mixed_bfloat16"
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", "--progress", "none"]) == 0
    assert seen == ["bfloat16", "bfloat16"]  # the resumed run kept the saved setting
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left as it was
    saved = models.load_model(run_dir / "model.keras")
    assert saved.lstms[0].compute_dtype == "float32"
    # Given with --resume, --precision replaces the run's own.
    assert main(["train", "--resume", str(run_dir), "--epochs", "3", "--progress", "none",
                 "--precision", "float32"]) == 0
    assert seen[-1] == "float32"
