"""Training under tf.distribute: the same losses and updates as on one device.

MirroredStrategy on two logical CPUs against one device (in one process), and two
MultiWorkerMirroredStrategy workers on 127.0.0.1 against one process (the real
`mdnrnn train` command), including a worker killed mid-run and resumed.
"""

import re
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import mdnrnn
    from mdnrnn.train import clip_after_all_reduce

    rng = np.random.default_rng(0)
    x = np.zeros((4, 6, 5), np.float32)
    x[..., :2] = rng.normal(size=(4, 6, 2))
    x[..., 2] = 1.0
    x[1, 4:] = 0.0  # padding; replica 0 gets rows 0-1, replica 1 rows 2-3
    x[3, 4:] = 0.0  # so both replicas hold 10 real steps
    y = np.concatenate([rng.normal(size=(4, 6, 2)), rng.integers(0, 3, (4, 6, 1))], -1).astype(np.float32)
    config = mdnrnn.preset("kanji", units=8, layers=1, components=2)
    keras.utils.set_random_seed(1)
    single = mdnrnn.build_model(config, clipnorm=0.01)  # low: the step's gradient is clipped
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        mirrored = mdnrnn.build_model(config, clipnorm=0.01)
    mirrored.set_weights(single.get_weights())
    # What `mdnrnn train` does: clip the replicas' summed gradient, as one device clips
    # its own, rather than each replica's part (Keras 3's order, which fails this test).
    clip_after_all_reduce(mirrored.optimizer)
    clip_after_all_reduce(single.optimizer)
    expected = single.evaluate(x, y, batch_size=4, verbose=0)
    got = mirrored.evaluate(x, y, batch_size=4, verbose=0)
    print("LOSSES", expected, got)
    assert abs(got - expected) < 1e-5 * abs(expected), (got, expected)
    single.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    mirrored.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(single.get_weights(), mirrored.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    print("OK")
    """
)


@pytest.mark.slow
def test_mirrored_strategy_gives_the_single_device_loss_and_update():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr[-3000:]


# ------------------------------------------------------------ multi-worker training
# Two `mdnrnn train --distribute multiworker` processes on 127.0.0.1, against one process
# (no --distribute) on the same store with the same seed: the reference trains on the
# same global batches, because every worker draws the batch order from the seed and
# keeps its half of each batch (make_dataset's `replica_slices`). The store holds touch
# sequences of 41 rows, 4 windows of 10 steps each, so every split is a whole number of
# global batches (no remainder for the workers to drop) and every replica holds the same
# number of real steps (the mean of the two replicas' mean NLL is then the global mean).
# --clipnorm 0.01 clips every step's gradient: `train` clips the workers' summed gradient,
# as one process does (`clip_after_all_reduce`).

TRAIN_ARGS = ["--preset", "touch", "--units", "8", "--layers", "1", "--mixtures", "2", "--seq-len", "10",
              "--batch-size", "8", "--lr", "0.01", "--clipnorm", "0.01", "--progress", "epoch", "--seed", "3"]
# Float tolerance of the loss and weights: float reduction order. The workers reduce over
# their 4 windows each and add the two gradients in an all-reduce, without XLA (no CPU
# collectives); the single process reduces over 8 windows with XLA. The sums round
# differently (float32: relative 1e-7 per add); after 24 Adam steps the differences
# measured 2.5e-7 on the weights and 5e-7 on the loss, well inside 1e-4.
TOLERANCE = 1e-4
TIMEOUT = 100  # seconds for one training command; each takes about 15 s here


def _free_ports(n):
    """`n` free TCP ports on 127.0.0.1 (bound to port 0, read, closed)."""
    import socket

    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def touch_shards(tmp_path):
    import numpy as np

    from mdnrnn import data

    rng = np.random.default_rng(0)
    sequences = [np.c_[rng.uniform(0, 1, (41, 2)), rng.exponential(0.05, 41)].astype(np.float32)
                 for _ in range(36)]
    splits = ["train"] * 24 + ["valid"] * 8 + ["test"] * 4
    return data.write_shards(tmp_path / "shards", sequences, kind="touch", splits=splits, shard_size=10)


def _command(*args):
    return [sys.executable, "-c", "import sys; from mdnrnn.cli import main; sys.exit(main())", "train", *args]


def _start_workers(args, n=2, worker_dirs=None, log_dir=None):
    """Starts `n` workers of one cluster; returns the processes (stdout+stderr to files)."""
    import json
    import os

    ports = _free_ports(n)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    for i in range(n):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                   CUDA_VISIBLE_DEVICES="")
        extra = ["--worker-dir", str(worker_dirs[i])] if worker_dirs and worker_dirs[i] else []
        log = open(log_dir / f"worker{i}.log", "ab")
        processes.append(subprocess.Popen(_command(*args, "--distribute", "multiworker", *extra),
                                          stdout=log, stderr=subprocess.STDOUT, env=env))
        log.close()
    return processes


def _stop(processes):
    for p in processes:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)


def _wait(processes, log_dir, timeout=TIMEOUT):
    for i, p in enumerate(processes):
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    logs = "\n".join((log_dir / f"worker{i}.log").read_text()[-2000:] for i in range(len(processes)))
    assert [p.returncode for p in processes] == [0] * len(processes), logs


def _train_two_workers(args, tmp_path):
    """Two workers train to `tmp_path/run` (the chief) and `tmp_path/worker1`, to the end."""
    workers = _start_workers([*args, "--out", str(tmp_path / "run")], worker_dirs=[None, tmp_path / "worker1"],
                             log_dir=tmp_path)
    try:
        _wait(workers, tmp_path)
    finally:
        _stop(workers)


def _history(run_dir):
    import csv

    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def _weights(path):
    import mdnrnn

    return mdnrnn.load_model(path).get_weights()


@pytest.mark.slow
def test_two_workers_train_like_one_process_on_the_same_global_batches(tmp_path, touch_shards):
    import numpy as np

    args = [*TRAIN_ARGS, "--data", str(touch_shards), "--epochs", "2"]
    single = subprocess.run(_command(*args, "--out", str(tmp_path / "single")), capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert single.returncode == 0, single.stderr[-2000:]
    _train_two_workers(args, tmp_path)
    reference, chief = _history(tmp_path / "single"), _history(tmp_path / "run")
    assert [r["epoch"] for r in chief] == ["0", "1"]
    for r, c in zip(reference, chief):
        for key in ("loss", "val_loss"):
            assert abs(float(c[key]) - float(r[key])) <= TOLERANCE * max(1.0, abs(float(r[key]))), (key, r, c)
    # Both workers end with the same weights, and those of the single process.
    chief_weights = _weights(tmp_path / "run" / "model.keras")
    for a, b in zip(chief_weights, _weights(tmp_path / "worker1" / "model.keras")):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(chief_weights, _weights(tmp_path / "single" / "model.keras")):
        np.testing.assert_allclose(a, b, atol=TOLERANCE, rtol=TOLERANCE)
    # Only the chief wrote the run directory; worker 1 wrote its own.
    assert (tmp_path / "run" / "last.keras").exists() and (tmp_path / "worker1" / "last.keras").exists()


def _read_state(run_dir):
    import json

    try:
        return json.loads((run_dir / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


@pytest.mark.slow
def test_a_killed_worker_resumes_from_the_last_checkpoint_with_no_lost_epoch(tmp_path, touch_shards):
    """Our own resume (`mdnrnn train --resume RUN` on every worker), not Keras' BackupAndRestore:
    the chief's run directory holds the checkpoint (last.keras, state.json) after each epoch."""
    import signal
    import time

    run, worker1 = tmp_path / "run", tmp_path / "worker1"
    epochs, steps = 3, 12  # 96 train windows / global batch 8
    args = [*TRAIN_ARGS, "--data", str(touch_shards), "--epochs", str(epochs), "--out", str(run)]
    workers = _start_workers(args, worker_dirs=[None, worker1], log_dir=tmp_path)
    try:
        deadline = time.monotonic() + TIMEOUT
        while (_read_state(run) or {}).get("epochs_done", 0) < 1:  # the first epoch's checkpoint
            assert time.monotonic() < deadline and all(p.poll() is None for p in workers), "no checkpoint"
            time.sleep(0.05)
        workers[1].send_signal(signal.SIGKILL)  # mid-epoch 2: its peer now waits for it, or fails
        try:
            workers[0].wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    finally:
        _stop(workers)
    assert workers[1].returncode == -signal.SIGKILL
    done = _read_state(run)["epochs_done"]
    assert 1 <= done < epochs and not (run / "model.keras").exists()  # stopped before the end
    before = _history(run)[:done]

    offset = (tmp_path / "worker0.log").stat().st_size
    resumed = _start_workers(["--progress", "epoch", "--resume", str(run)], worker_dirs=[None, worker1],
                             log_dir=tmp_path)
    try:
        _wait(resumed, tmp_path)
    finally:
        _stop(resumed)
    history = _history(run)
    assert [int(r["epoch"]) for r in history] == list(range(epochs))  # each epoch once
    assert history[:done] == before  # the checkpointed epochs are kept as they were
    state = _read_state(run)
    # The optimizer's step counter continues from the checkpoint: no epoch lost or repeated.
    assert state["epochs_done"] == epochs and state["optimizer_steps"] == epochs * steps
    log = (tmp_path / "worker0.log").read_bytes()[offset:].decode(errors="replace")
    assert re.findall(r"Epoch (\d+)/", log)[0] == str(done + 1), log[-2000:]  # Keras counts from 1
    assert (run / "model.keras").exists() and _history(worker1) == history


@pytest.mark.slow
def test_two_workers_sharding_input_by_file_read_only_their_files(tmp_path, touch_shards):
    """`--input-sharding file` on the 4-file shard directory: worker 0 reads files 0 and 2,
    worker 1 files 1 and 3 (each says so), both take the same steps, and they end with the
    same weights (which the all-reduced updates guarantee only if every step was collective)."""
    import math

    import numpy as np

    args = [*TRAIN_ARGS, "--data", str(touch_shards), "--epochs", "2", "--input-sharding", "file"]
    _train_two_workers(args, tmp_path)
    # Train windows: files 0 and 2 hold 14 train sequences (56 windows), files 1 and 3 hold
    # 10 (40): 10 steps of 4 windows each; valid: 6 and 2 sequences, 2 steps.
    for i, files in enumerate(["shard-00000.h5, shard-00002.h5", "shard-00001.h5, shard-00003.h5"]):
        log = (tmp_path / f"worker{i}.log").read_text()
        assert f"worker {i} of 2 reads 2 of 4 store files ({files}); 10 train and 2 valid batches of 4" in log, log[-2000:]
    history = _history(tmp_path / "run")
    assert [r["epoch"] for r in history] == ["0", "1"]
    assert all(math.isfinite(float(r[key])) for r in history for key in ("loss", "val_loss"))
    for a, b in zip(_weights(tmp_path / "run" / "model.keras"), _weights(tmp_path / "worker1" / "model.keras")):
        np.testing.assert_array_equal(a, b)
