"""`mdnrnn train --jit auto|on|off`: XLA for the training step, chosen by measurement.

The decision is tested with injected timings (no real clock), so these tests cannot flake.
"""

import csv
import json

import numpy as np
import pytest

from mdnrnn import data, models, train
from mdnrnn._tf import keras
from mdnrnn.cli import main

TINY = ["--units", "8", "--layers", "1", "--mixtures", "2", "--progress", "none"]


def run(argv):
    """Runs the command in-process; returns its exit code (argparse exits with 2)."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


@pytest.fixture(scope="module")
def touch_store(tmp_path_factory):
    rng = np.random.default_rng(0)
    sequences = [np.c_[rng.uniform(0, 1, (41, 2)), rng.exponential(0.05, 41)].astype(np.float32)
                 for _ in range(30)]
    splits = ["train"] * 20 + ["valid"] * 6 + ["test"] * 4
    return data.write_store(tmp_path_factory.mktemp("touch") / "touch.h5", sequences, kind="touch",
                            splits=splits, source="unit test", licence="CC0", seed=0)


@pytest.fixture
def fit_spy(monkeypatch):
    """`model.jit_compile` of every model that `fit` trains, in order."""
    seen = []
    fit = keras.Model.fit

    def spy(self, *args, **kwargs):
        seen.append(self.jit_compile)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    return seen


def _timings(ms_xla, ms_plain, calls=None):
    """A stand-in for `train.time_training_steps` that returns fixed timings."""
    def measure(make_model, batches):
        if calls is not None:
            calls.append([b[0].shape for b in batches])
        return {True: ms_xla, False: ms_plain}
    return measure


def _train_argv(store, out, *extra):
    return ["train", "--data", str(store), "--preset", "touch", *TINY, "--seq-len", "10",
            "--batch-size", "8", "--epochs", "1", "--steps-per-epoch", "3", "--out", str(out), *extra]


def test_choose_jit_keeps_the_faster_mode():
    assert train.choose_jit({True: 412.0, False: 380.0}) is False
    assert train.choose_jit({True: 300.0, False: 380.0}) is True
    assert train.choose_jit({True: 380.0, False: 380.0}) is False  # a tie is not worth compiling


@pytest.mark.parametrize("ms_xla, ms_plain, expected, word", [(412.0, 380.0, False, "off"),
                                                              (300.0, 380.0, True, "on")])
def test_auto_times_fixed_shape_batches_and_picks_the_faster(touch_store, ms_xla, ms_plain, expected, word):
    config = train.prepare_config(touch_store, models.preset("touch", units=8, layers=1, components=2))
    settings = train.TrainSettings(batch_size=8, window=10, jit="auto")
    calls = []
    jit, line = train.resolve_jit(settings, config, None, lambda: train.datasets(touch_store, config, settings)[0],
                                  measure=_timings(ms_xla, ms_plain, calls))
    assert jit is expected
    assert line == f"jit auto: XLA {ms_xla:.0f} ms/step, no XLA {ms_plain:.0f} ms/step -> {word}"
    (shapes,) = calls  # measured once, on the real first batches, all of one shape
    assert len(shapes) == train.JIT_CALIBRATION_STEPS + 1 and set(shapes) == {(8, 10, 5)}


def test_auto_is_off_unmeasured_for_drawings_and_multiworker():
    def never(*args):
        raise AssertionError("measured")

    kanji = models.preset("kanji", units=8, layers=1)
    jit, line = train.resolve_jit(train.TrainSettings(), kanji, never, never, measure=never)
    assert jit is False and line.startswith("jit auto: off (drawings")
    touch = models.preset("touch", units=8, layers=1)
    jit, line = train.resolve_jit(train.TrainSettings(distribute="multiworker"), touch, never, never, measure=never)
    assert jit is False and line.startswith("jit auto: off (multiworker")


def test_time_training_steps_interleaves_the_modes_on_a_fake_clock(touch_store):
    """Untimed compile steps first, then alternating timed steps; medians from the clock."""
    config = train.prepare_config(touch_store, models.preset("touch", units=8, layers=1, components=2))
    settings = train.TrainSettings(batch_size=8, window=10)
    batches = train._first_batches(train.datasets(touch_store, config, settings)[0], 3)
    order = []

    def make_model():
        model = models.build_model(config)
        step = model.train_on_batch

        def recorded(*args, **kwargs):
            order.append(model.jit_compile)
            return step(*args, **kwargs)

        model.train_on_batch = recorded
        return model

    # Seconds per timed step in call order: XLA, plain; plain, XLA; XLA, plain; plain, XLA.
    durations = [0.05, 0.02, 0.05, 0.02, 0.04, 0.01, 0.01, 0.04]
    ticks = iter(np.cumsum([0.0] + [x for d in durations for x in (d, 0.0)]))  # start, end, start, ...
    ms = train.time_training_steps(make_model, batches, steps=4, clock=lambda: float(next(ticks)))
    assert order == [True, False] + [True, False, False, True] * 2  # 2 compile steps, then alternating
    # XLA 50, 20, 40, 40 ms; plain 20, 50, 10, 10 ms: the medians
    assert ms == pytest.approx({True: 40.0, False: 15.0})


def test_auto_is_off_when_xla_cannot_run_the_step(touch_store):
    """XLA failing on the first step (variables on several CPUs under MirroredStrategy) means off."""
    from mdnrnn._tf import tf

    config = train.prepare_config(touch_store, models.preset("touch", units=8, layers=1, components=2))
    settings = train.TrainSettings(batch_size=8, window=10)

    def make_model():
        model = models.build_model(config)
        step = model.train_on_batch

        def xla_fails(*args, **kwargs):
            if model.jit_compile:
                raise tf.errors.InvalidArgumentError(None, None, "Trying to access resource ... from device CPU:0")
            return step(*args, **kwargs)

        model.train_on_batch = xla_fails
        return model

    jit, line = train.resolve_jit(settings, config, make_model,
                                  lambda: train.datasets(touch_store, config, settings)[0])
    assert jit is False
    assert line.startswith("jit auto: XLA failed to run here, no XLA ") and line.endswith(" ms/step -> off")


@pytest.mark.parametrize("flag, expected", [("on", True), ("off", False)])
def test_jit_on_and_off_reach_the_model_and_survive_resume(touch_store, tmp_path, fit_spy, capsys, flag, expected):
    run_dir = tmp_path / "run"
    assert run(_train_argv(touch_store, run_dir, "--jit", flag)) == 0
    assert capsys.readouterr().out.startswith(f"jit {flag}: XLA {flag} (--jit {flag})\n")
    assert json.loads((run_dir / "config.json").read_text())["train"]["jit"] == flag
    assert json.loads((run_dir / "state.json").read_text())["jit_compile"] is expected
    assert run(["train", "--resume", str(run_dir), "--epochs", "2", "--progress", "none"]) == 0
    assert fit_spy == [expected, expected]  # the resumed run kept the saved setting
    assert json.loads((run_dir / "state.json").read_text())["jit_compile"] is expected
    assert f"jit {flag}:" in capsys.readouterr().out
    # Given again with --resume, --jit replaces the run's own for the rest of the run.
    other = "off" if flag == "on" else "on"
    assert run(["train", "--resume", str(run_dir), "--epochs", "3", "--progress", "none", "--jit", other]) == 0
    assert fit_spy[-1] is (not expected)


def test_auto_decides_on_a_throwaway_model_and_leaves_the_run_unchanged(touch_store, tmp_path, fit_spy,
                                                                        monkeypatch, capsys):
    """`auto` that chooses off trains exactly as `--jit off`: same losses, same weights."""
    assert run(_train_argv(touch_store, tmp_path / "off", "--jit", "off")) == 0
    monkeypatch.setattr(train, "time_training_steps", _timings(412.0, 380.0))
    assert run(_train_argv(touch_store, tmp_path / "auto")) == 0  # --jit auto is the default
    assert "jit auto: XLA 412 ms/step, no XLA 380 ms/step -> off\n" in capsys.readouterr().out
    assert fit_spy == [False, False]
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["train"]["jit"] == "auto"

    def history(name):
        with open(tmp_path / name / "history.csv") as f:
            return [(row["loss"], row["val_loss"]) for row in csv.DictReader(f)]

    assert history("auto") == history("off")
    weights = [models.load_model(tmp_path / name / "last.keras").get_weights() for name in ("off", "auto")]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_auto_measures_for_real_on_the_first_steps(touch_store, tmp_path, fit_spy, capsys):
    """No stand-in: two throw-away models are timed, and the run trains with the faster."""
    assert run(_train_argv(touch_store, tmp_path / "run")) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("jit auto: XLA ") and line.endswith(("-> on", "-> off"))
    assert fit_spy == [line.endswith("-> on")]


def test_bad_jit_values_exit_2_with_a_one_line_usage_error(touch_store, tmp_path, capsys):
    for value in ("fast", "ON", ""):
        assert run(_train_argv(touch_store, tmp_path / "run", "--jit", value)) == 2
        err = capsys.readouterr().err
        assert err.splitlines()[-1] == (f"mdnrnn train: error: argument --jit: invalid choice: '{value}' "
                                         "(choose from 'auto', 'on', 'off')")
        assert err.startswith("usage: mdnrnn train")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="Received an invalid value for `jit`.*Received: jit='fast'"):
        train.TrainSettings(jit="fast")


def test_build_model_passes_jit_compile_through():
    config = models.preset("touch", units=8, layers=1)
    assert models.build_model(config, jit_compile=True).jit_compile is True
    assert models.build_model(config, jit_compile=False).jit_compile is False
