"""The `mdnrnn` command end to end on real data, resume after SIGKILL, and user mistakes."""

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import mido
import numpy as np
import pytest

from mdnrnn import data, datasets, load_model, models, train
from mdnrnn.cli import main

CORPUS = datasets.path("robojam")  # the RoboJam corpus shipped with mdnrnn
TINY_MODEL = ["--units", "16", "--layers", "1", "--mixtures", "3", "--progress", "none"]


def run(argv):
    """Runs the command in-process; returns its exit code (argparse exits with 2)."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def run_subprocess(argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "mdnrnn.cli", *argv], capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def kanji_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("kanji") / "kanji.h5"
    assert run(["prep", "kanjivg", "--limit", "80", "--out", str(path), "--no-progress"]) == 0
    return path


@pytest.fixture(scope="module")
def kanji_model(kanji_store, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "kanji"
    argv = ["train", "--data", str(kanji_store), "--preset", "kanji", *TINY_MODEL,
            "--epochs", "2", "--batch-size", "16", "--out", str(run_dir)]
    assert run(argv) == 0
    return run_dir


@pytest.mark.slow
def test_kanji_prep_train_generate_export(kanji_store, kanji_model, tmp_path, capsys):
    with data.open_store(kanji_store) as store:
        assert store.kind == "stroke3" and len(store) == 80
    run_dir = kanji_model
    for name in ("model.keras", "best.keras", "last.keras", "history.csv", "loss.svg", "config.json", "state.json"):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "logs").rglob("events.out.tfevents*"))
    with open(run_dir / "history.csv") as f:
        history = list(csv.DictReader(f))
    assert [row["epoch"] for row in history] == ["0", "1"]
    assert all(float(row["val_loss"]) < 10 for row in history)
    ET.parse(run_dir / "loss.svg")
    model = load_model(run_dir / "model.keras")
    assert model.config.preset == "kanji" and model.config.std[0] > 1  # KanjiVG units

    out = tmp_path / "generated"
    assert run(["generate", "--model", str(run_dir / "model.keras"), "--n", "6", "--max-steps", "60",
                "--seed", "3", "--out", str(out)]) == 0
    drawings = sorted(out.glob("drawing_*.svg"))
    assert len(drawings) == 6
    for path in drawings + [out / "grid.svg"]:
        assert ET.parse(path).getroot().tag.endswith("svg")
    if (out / "sequences.h5").exists():
        with data.open_store(out / "sequences.h5") as store:
            assert store.kind == "stroke3" and 1 <= len(store) <= 6
        assert run(["export", str(out / "sequences.h5"), "--to", "svg", "--out", str(tmp_path / "again")]) == 0
        assert (tmp_path / "again" / "grid.svg").exists()

    assert run(["export", str(kanji_store), "--to", "svg", "--split", "test", "--out", str(tmp_path / "test_svg")]) == 0
    assert (tmp_path / "test_svg" / "grid.svg").exists()
    capsys.readouterr()
    assert run(["info", str(kanji_store)]) == 0
    assert "kind:      stroke3" in capsys.readouterr().out
    assert run(["info", str(run_dir / "model.keras")]) == 0
    info = capsys.readouterr().out
    assert "preset:     kanji" in info and "parameters:" in info


@pytest.mark.slow
def test_prime_continues_a_prefix(kanji_store, kanji_model, tmp_path):
    out = tmp_path / "primed"
    assert run(["generate", "--model", str(kanji_model / "model.keras"), "--prime", str(kanji_store),
                "--n", "2", "--max-steps", "20", "--seed", "1", "--out", str(out)]) == 0
    with data.open_store(kanji_store) as prefixes, data.open_store(out / "sequences.h5") as generated:
        for i in range(2):  # the output starts with the prefix itself
            assert (generated[i][: len(prefixes[i])] == prefixes[i]).all()


@pytest.mark.slow
def test_robojam_prep_train_generate_midi(tmp_path):
    store = tmp_path / "touch.h5"
    assert run(["prep", "robojam", str(CORPUS), "--out", str(store), "--no-progress"]) == 0
    run_dir = tmp_path / "run"
    assert run(["train", "--data", str(store), "--preset", "touch", *TINY_MODEL, "--seq-len", "30",
                "--epochs", "1", "--steps-per-epoch", "5", "--batch-size", "32", "--input-noise", "0.01",
                "--out", str(run_dir)]) == 0
    assert json.loads((run_dir / "config.json").read_text())["train"]["input_noise"] == 0.01
    # The noise reaches the training batches only, and only a model that predicts offsets takes it.
    config = train.prepare_config(store, models.preset("touch", units=8, layers=1))
    settings = train.TrainSettings(window=30, batch_size=32, input_noise=0.5)
    noisy = train.datasets(store, config, settings)
    exact = train.datasets(store, config, dataclasses.replace(settings, input_noise=0.0))
    first = [next(iter(ds))[0].numpy() for ds in (*noisy, *exact)]
    assert not np.array_equal(first[0], first[2])
    np.testing.assert_array_equal(first[1], first[3])
    assert run(["train", "--data", str(store), "--preset", "touch", "--targets", "rows", "--input-noise", "0.01",
                "--out", str(tmp_path / "rows")]) == 1
    assert not (tmp_path / "rows").exists()
    out = tmp_path / "performances"
    assert run(["generate", "--model", str(run_dir / "model.keras"), "--n", "3", "--max-seconds", "5",
                "--max-steps", "400", "--seed", "0", "--out", str(out)]) == 0
    midi_files = sorted(out.glob("performance_*.mid"))
    assert len(midi_files) == 3
    for path in midi_files:
        notes = [m for m in mido.MidiFile(path).tracks[0] if m.type == "note_on" and m.velocity > 0]
        assert notes
    for path in out.glob("performance_*.svg"):
        ET.parse(path)
    with data.open_store(out / "sequences.h5") as generated:
        for i in range(len(generated)):
            dt = generated[i][:, 2]
            assert dt.sum() - dt[-1] < 5.0  # stopped at the first row past 5 s (or the step limit)


@pytest.mark.slow
@pytest.mark.parametrize("tempo", ["on", "beats"])
def test_tempo_conditioned_touch_model_trains_shows_and_generates(kanji_model, tmp_path, capsys, tempo):
    store = tmp_path / "touch.h5"
    assert run(["prep", "robojam", str(CORPUS), "--out", str(store), "--no-progress"]) == 0
    run_dir = tmp_path / "run"
    assert run(["train", "--data", str(store), "--preset", "touch", *TINY_MODEL, "--tempo", tempo, "--seq-len", "30",
                "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "32", "--out", str(run_dir)]) == 0
    model = load_model(run_dir / "model.keras")
    assert model.config.tempo and model.config.input_size == 6  # x, y, dt, dx, dy, tempo
    assert model.config.beats == (tempo == "beats")
    # The quantiles of the train split's tempos, by hand: touches (dt > 0.1 s, and the
    # first row) per second, over at least 1 s.
    with data.open_store(store) as opened:
        dts = [np.asarray(opened[int(i)])[:, 2].astype(np.float64) for i in opened.split("train")]
        store_mean, store_std = opened.mean, opened.std
    tempos = [(1 + (dt[1:] > 0.1).sum()) / max(dt.sum(), 1.0) for dt in dts]
    np.testing.assert_allclose(model.config.tempo_quantiles, np.quantile(tempos, np.linspace(0, 1, 101)), rtol=1e-6)
    # dt's statistics: of dt in seconds (the store's), or with pauses (the part of dt
    # above 0.1 s) in beats of each performance's tempo.
    beats = np.concatenate([np.where(dt > 0.1, 0.1 + (dt - 0.1) * t, dt) for dt, t in zip(dts, tempos)])
    dt_mean, dt_std = (beats.mean(), beats.std()) if tempo == "beats" else (store_mean[2], store_std[2])
    np.testing.assert_allclose(model.config.mean, [store_mean[0], store_mean[1], dt_mean], rtol=1e-5)
    np.testing.assert_allclose(model.config.std, [store_std[0], store_std[1], dt_std], rtol=1e-5)
    capsys.readouterr()
    assert run(["info", str(run_dir / "model.keras")]) == 0
    shown = "conditioned, pauses in beats; training tempos" if tempo == "beats" else "conditioned; training tempos"
    assert f"tempo:      {shown}" in capsys.readouterr().out
    assert run(["generate", "--model", str(run_dir / "model.keras"), "--n", "2", "--max-seconds", "3",
                "--tempo", "2.5", "--seed", "0", "--out", str(tmp_path / "gen")]) == 0
    assert len(list((tmp_path / "gen").glob("performance_*.mid"))) == 2
    assert run(["generate", "--model", str(kanji_model / "model.keras"), "--tempo", "2",
                "--out", str(tmp_path / "kanji")]) == 1
    assert "not conditioned on tempo" in capsys.readouterr().err
    assert not (tmp_path / "kanji").exists()
    assert run(["train", "--data", str(store), "--init-from", str(run_dir / "model.keras"), "--tempo", "off",
                "--out", str(tmp_path / "tuned")]) == 1
    assert "leave out --tempo" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_after_sigkill_continues_the_run(kanji_store, tmp_path):
    run_dir = tmp_path / "run"
    argv = ["train", "--data", str(kanji_store), "--preset", "kanji", *TINY_MODEL, "--lr", "0.01",
            "--epochs", "200", "--batch-size", "16", "--patience", "200", "--out", str(run_dir)]
    process = subprocess.Popen([sys.executable, "-m", "mdnrnn.cli", *argv],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_path = run_dir / "state.json"
    deadline = time.time() + 120
    while not state_path.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert state_path.exists(), "no checkpoint was written before the deadline"
    killed_at = json.loads(state_path.read_text())
    done = killed_at["epochs_done"]
    assert 1 <= done < 200
    assert not (run_dir / "model.keras").exists()  # the run had not finished

    target = done + 2
    resumed = run_subprocess(["train", "--resume", str(run_dir), "--epochs", str(target), "--progress", "none"], timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    state = json.loads(state_path.read_text())
    assert state["epochs_done"] == target
    steps_per_epoch = killed_at["optimizer_steps"] // done
    assert state["optimizer_steps"] == target * steps_per_epoch  # optimizer state was restored
    assert load_model(run_dir / "last.keras").optimizer.iterations.numpy() == target * steps_per_epoch
    with open(run_dir / "history.csv") as f:
        history = list(csv.DictReader(f))
    epochs = [int(row["epoch"]) for row in history]
    assert epochs[-2:] == [target - 2, target - 1] and epochs == sorted(epochs)
    # The resumed epoch starts from the trained weights, not from scratch.
    assert float(history[-2]["loss"]) < float(history[0]["loss"])
    assert (run_dir / "model.keras").exists()


@pytest.mark.slow
def test_user_mistakes_give_one_line_errors_and_keep_files(kanji_store, kanji_model, tmp_path, capsys):
    def check(argv, code, message):
        capsys.readouterr()
        assert run(argv) == code
        err = capsys.readouterr().err
        if code == 1:
            assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
        else:
            assert message in err
        assert "Traceback" not in err

    model_path = kanji_model / "model.keras"
    check(["train", "--data", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "r")], 1, "No store at")
    check(["train", "--data", str(kanji_store), "--preset", "touch", "--out", str(tmp_path / "r")], 1,
          "is a 'stroke3' store but the model expects 'touch'")
    assert not (tmp_path / "r").exists()
    check(["train", "--data", str(kanji_store), "--preset", "kanjj", "--out", str(tmp_path / "r")], 2, "invalid choice")
    check(["generate", "--model", str(kanji_store), "--out", str(tmp_path / "g")], 1, "not a .keras model file")
    check(["generate", "--model", str(tmp_path / "none.keras"), "--out", str(tmp_path / "g")], 1, "No model file")
    for bad in ("0", "-1", "nan", "inf", "1e9"):
        check(["generate", "--model", str(model_path), "--temperature", bad, "--out", str(tmp_path / "g")], 2,
              "expected a finite number in (0, 100]")
    check(["generate", "--model", str(model_path), "--n", "1000000000", "--out", str(tmp_path / "g")], 2,
          "expected an integer from 1 to 10,000")
    check(["generate", "--model", str(model_path), "--n", "10000", "--max-steps", "100000",
           "--out", str(tmp_path / "g")], 1, "is over 20,000,000 rows")
    check(["train", "--data", str(kanji_store), "--seed", "99999999999999999999999", "--out", str(tmp_path / "r")],
          2, "expected an integer from 0 to 4,294,967,295")
    assert not (tmp_path / "g").exists() and not (tmp_path / "r").exists()
    check(["info", str(tmp_path / "nothing.h5")], 1, "No file at")
    check(["export", str(model_path), "--to", "svg", "--out", str(tmp_path / "e")], 1, "error: ")

    # An existing run directory or output is never overwritten without --force.
    before = (kanji_model / "model.keras").read_bytes()
    check(["train", "--data", str(kanji_store), "--out", str(kanji_model)], 1, "already exists")
    assert (kanji_model / "model.keras").read_bytes() == before
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    check(["generate", "--model", str(model_path), "--out", str(out)], 1, "already exists")
    assert (out / "keep.txt").read_text() == "mine"


def test_subprocess_error_has_no_traceback(tmp_path):
    result = run_subprocess(["info", str(tmp_path / "nothing.h5")], timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: No file at {tmp_path / 'nothing.h5'}"


def test_every_subcommand_has_help_and_bad_usage_exits_2(capsys):
    for command in ("train", "generate", "export", "info"):
        assert run([command, "--help"]) == 0
        assert "usage: mdnrnn " + command in capsys.readouterr().out
    assert run(["prep", "--help"]) == 0
    assert "kanjivg" in capsys.readouterr().out
    assert run(["train", "--preset"]) == 2
    assert "usage:" in capsys.readouterr().err
    assert run([]) == 2


def _snapshot(directory):
    """Every file under `directory` with its bytes."""
    return {p.relative_to(directory): p.read_bytes() for p in sorted(Path(directory).rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_force_never_deletes_what_mdnrnn_did_not_make(kanji_model, tmp_path, capsys, monkeypatch):
    model = str(kanji_model / "model.keras")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my work")
    before = _snapshot(foreign)
    assert run(["generate", "--model", model, "--n", "2", "--max-steps", "5", "--out", str(foreign), "--force"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to replace") and "not made by mdnrnn" in err and err.count("\n") == 1
    assert _snapshot(foreign) == before
    assert run(["export", model, "--to", "svg", "--out", str(foreign), "--force"]) == 1
    assert _snapshot(foreign) == before

    monkeypatch.chdir(foreign)  # `--out .` would have wiped the working directory
    assert run(["generate", "--model", model, "--n", "2", "--max-steps", "5", "--out", ".", "--force"]) == 1
    assert "refusing to replace ." in capsys.readouterr().err
    assert _snapshot(foreign) == before


@pytest.mark.slow
def test_force_keeps_the_old_output_until_the_new_one_is_complete(kanji_store, kanji_model, tmp_path, capsys, monkeypatch):
    from mdnrnn import cli, train

    model = str(kanji_model / "model.keras")
    out = tmp_path / "out"
    argv = ["generate", "--model", model, "--n", "3", "--max-steps", "20", "--seed", "1", "--out", str(out)]
    assert run(argv) == 0
    assert (out / ".mdnrnn").is_file()
    before = _snapshot(out)

    def full_disk(sequences, kind, work, to):  # one file written, then the disk is full
        (work / "drawing_000.svg").write_text("<svg/>")
        raise OSError(28, "No space left on device", str(work / "drawing_001.svg"))

    monkeypatch.setattr(cli, "_export", full_disk)
    capsys.readouterr()
    assert run(argv + ["--force"]) == 1
    assert capsys.readouterr().err.startswith("error: [Errno 28] No space left on device")
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no partial folder beside it
    monkeypatch.undo()

    # A run replaced by a training run that then fails stays as it was.
    run_before = _snapshot(kanji_model)
    def broken(*args, **kwargs):
        raise train.TrainingError("The loss became NaN or inf; training stopped")
    monkeypatch.setattr(train, "_train", broken)
    assert run(["train", "--data", str(kanji_store), *TINY_MODEL, "--epochs", "1", "--out", str(kanji_model),
                "--force"]) == 1
    assert _snapshot(kanji_model) == run_before
    assert not [p for p in kanji_model.parent.iterdir() if p.name.startswith(".")]
    # A run that fails before its first checkpoint leaves nothing behind.
    assert run(["train", "--data", str(kanji_store), *TINY_MODEL, "--epochs", "1", "--out", str(tmp_path / "new")]) == 1
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_nan_in_the_first_epoch_says_what_is_left(kanji_store, tmp_path, capsys, monkeypatch):
    from mdnrnn import train

    def nan_at_once(self, batch, logs=None):
        self.nan_at = batch
        self.model.stop_training = True

    monkeypatch.setattr(train._RunCheckpoint, "on_train_batch_end", nan_at_once)
    run_dir = tmp_path / "run"
    assert run(["train", "--data", str(kanji_store), *TINY_MODEL, "--epochs", "2", "--batch-size", "16",
                "--out", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "no epoch had finished, so there is no checkpoint" in err and err.count("\n") == 1
    assert not run_dir.exists()


@pytest.mark.slow
def test_a_normal_run_prints_no_tensorflow_noise(kanji_model, tmp_path):
    result = run_subprocess(["generate", "--model", str(kanji_model / "model.keras"), "--n", "2",
                             "--max-steps", "10", "--seed", "0", "--out", str(tmp_path / "g")], timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "outputs in" in result.stdout


def test_help_and_usage_errors_load_no_tensorflow():
    code = (
        "import sys\n"
        "from mdnrnn.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['generate', '--n', '0'], ['prep', '--help'],\n"
        "             ['export', '--help'], ['info', '--help']):\n"
        "    assert main(argv) in (0, 2), argv\n"
        "assert 'tensorflow' not in sys.modules\n"
        "assert 'keras' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: mdnrnn prep" in result.stdout


def test_preset_names_match_the_registry():
    from mdnrnn import PRESETS, cli

    assert sorted(cli.PRESET_NAMES) == sorted(PRESETS)


def test_bucket_gives_drawing_batches_less_padding_by_default_and_old_runs_resume_without(
        kanji_store, tmp_path, monkeypatch):
    config = train.prepare_config(kanji_store, models.preset("kanji", units=8, layers=1))
    padding = []
    for settings in (train.TrainSettings(batch_size=16, bucket=False), train.TrainSettings(batch_size=16)):
        batches, _ = train.datasets(kanji_store, config, settings)
        padding.append(sum(float(np.size(w) - np.sum(w)) for _, _, w in batches))
    assert padding[1] < padding[0] / 2
    # What each run's training pipeline was asked for.
    asked, make_dataset = [], data.make_dataset
    monkeypatch.setattr(data, "make_dataset", lambda *a, **k: asked.append(k.get("bucket")) or make_dataset(*a, **k))
    argv = ["train", "--data", str(kanji_store), "--preset", "kanji", *TINY_MODEL, "--epochs", "1",
            "--steps-per-epoch", "2", "--batch-size", "16"]
    for flag, bucket in (([], True), (["--no-bucket"], False)):
        asked.clear()
        run_dir = tmp_path / f"run{bucket}"
        assert run([*argv, *flag, "--out", str(run_dir)]) == 0
        assert json.loads((run_dir / "config.json").read_text())["train"]["bucket"] is bucket
        assert {b for b in asked if b is not None} == {bucket}  # the validation pipeline: not asked
    # A run saved before the option existed goes on with random batches.
    saved = json.loads((tmp_path / "runTrue" / "config.json").read_text())
    del saved["train"]["bucket"]
    (tmp_path / "runTrue" / "config.json").write_text(json.dumps(saved))
    asked.clear()
    assert run(["train", "--resume", str(tmp_path / "runTrue"), "--epochs", "2", "--progress", "none"]) == 0
    assert {b for b in asked if b is not None} == {False}


def test_max_minutes_stops_at_the_end_of_the_epoch_that_passes_the_budget(kanji_store, tmp_path, capsys):
    import types

    from mdnrnn import train

    now = [0.0]
    budget = train._TimeBudget(2, clock=lambda: now[0])
    model = types.SimpleNamespace(stop_training=False)
    budget.set_model(model)
    budget.on_train_begin()
    now[0] = 119.0
    budget.on_epoch_end(0)
    assert not model.stop_training  # 1:59 of 2 minutes
    now[0] = 120.0
    budget.on_epoch_end(1)
    assert model.stop_training
    # Through the command: a budget of 0.6 ms is used up by the first epoch.
    run_dir = tmp_path / "run"
    assert run(["train", "--data", str(kanji_store), "--preset", "kanji", *TINY_MODEL, "--epochs", "5",
                "--steps-per-epoch", "2", "--batch-size", "16", "--max-minutes", "0.00001",
                "--out", str(run_dir)]) == 0
    assert "training stops here" in capsys.readouterr().out
    with open(run_dir / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0"]
    assert json.loads((run_dir / "config.json").read_text())["train"]["max_minutes"] == 0.00001
    # A run without a budget, resumed with one: the resumed part stops after its first epoch.
    unlimited = tmp_path / "unlimited"
    assert run(["train", "--data", str(kanji_store), "--preset", "kanji", *TINY_MODEL, "--epochs", "1",
                "--steps-per-epoch", "2", "--batch-size", "16", "--out", str(unlimited)]) == 0
    assert run(["train", "--resume", str(unlimited), "--epochs", "5", "--max-minutes", "0.00001",
                "--progress", "none"]) == 0
    with open(unlimited / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]
    assert run(["train", "--data", str(kanji_store), "--preset", "kanji", "--max-minutes", "0",
                "--out", str(tmp_path / "zero")]) == 2


@pytest.mark.slow
def test_init_from_fine_tunes_a_trained_model_keeping_its_config(kanji_model, tmp_path, capsys):
    base_path = kanji_model / "model.keras"
    base = load_model(base_path)
    # Other drawings, so other statistics: the fine-tuned model keeps the ones its weights know.
    other = tmp_path / "other.h5"
    assert run(["prep", "kanjivg", "--limit", "40", "--seed", "3", "--out", str(other), "--no-progress"]) == 0
    with data.open_store(other) as store:
        assert tuple(store.std) != tuple(base.config.std)
    run_dir = tmp_path / "tuned"
    # A learning rate of 1e-12 leaves the weights where they started, so they show where that was.
    assert run(["train", "--data", str(other), "--init-from", str(base_path), "--lr", "1e-12", "--epochs", "1",
                "--steps-per-epoch", "1", "--batch-size", "8", "--progress", "none", "--out", str(run_dir)]) == 0
    tuned = load_model(run_dir / "model.keras")
    assert tuned.config.replace(min_steps=base.config.min_steps) == base.config
    for before, after in zip(base.get_weights(), tuned.get_weights(), strict=True):
        assert np.allclose(before, after, atol=1e-6)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["train"]["init_from"] == str(base_path) and saved["train"]["learning_rate"] == 1e-12
    # It also trained on rows normalised as the model's config says, not with the store's statistics.
    with open(run_dir / "history.csv") as f:
        val_loss = float(next(csv.DictReader(f))["val_loss"])

    def valid_nll(stats):
        batches = data.make_dataset(other, "valid", 8, pen="categorical", shuffle=False, stats=stats)
        return base.evaluate(batches, verbose=0)

    assert val_loss == pytest.approx(valid_nll((base.config.mean, base.config.std)), rel=1e-5)
    assert val_loss != pytest.approx(valid_nll(None), rel=1e-3)
    # Without --init-from the same run starts from the seed's random weights.
    fresh_dir = tmp_path / "fresh"
    assert run(["train", "--data", str(other), "--preset", "kanji", *TINY_MODEL, "--lr", "1e-12", "--epochs", "1",
                "--steps-per-epoch", "1", "--batch-size", "8", "--out", str(fresh_dir)]) == 0
    fresh = load_model(fresh_dir / "model.keras")
    assert not all(np.allclose(a, b, atol=1e-3) for a, b in zip(base.get_weights(), fresh.get_weights()))
    # The model fixes the shape; a store of another kind is refused before anything is written.
    capsys.readouterr()
    assert run(["train", "--data", str(other), "--init-from", str(base_path), "--units", "32",
                "--out", str(tmp_path / "r")]) == 1
    assert "keeps that model's preset and sizes; leave out --units" in capsys.readouterr().err
    touch = tmp_path / "touch.h5"
    assert run(["prep", "robojam", str(CORPUS), "--out", str(touch), "--no-progress"]) == 0
    assert run(["train", "--data", str(touch), "--init-from", str(base_path), "--out", str(tmp_path / "r")]) == 1
    assert "is a 'touch' store but the model expects 'stroke3'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
