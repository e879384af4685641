"""Sharded stores (`mdnrnn.data.shards`) against the single-file store of the same sequences.

References: hand-built arrays, NumPy statistics of the train rows, and the single store
written by `write_store` from the same sequences with the same seed.

What "same" means here:
- statistics: a shard directory's (from index.json, and stored in every shard) equal the
  single store's exactly; the union of plain files (no index) is recomputed from the data
  and equals them to float64 rounding (rtol 1e-12).
- batches: without shuffling, a shard directory gives exactly the single store's batches
  (examples in file order, shard after shard). With shuffling the order differs by
  construction (blocks are per file), so an epoch is compared as a multiset of examples,
  and the same seed gives the same batches from the same shards.
"""

import json
import os
import re
import subprocess
import sys
import numpy as np
import pytest

import data_prep
from mdnrnn import data
from mdnrnn.cli import main as cli_main


def _touch(n, seed=0):
    rng = np.random.default_rng(seed)
    return [np.c_[rng.uniform(0, 1, (k, 2)), rng.exponential(0.05, k)].astype(np.float32)
            for k in rng.integers(1, 30, n)]


def _drawings(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in rng.integers(1, 25, n):
        rows = np.c_[rng.normal(2.0, 5.0, (k, 2)), rng.random(k) < 0.3].astype(np.float32)
        rows[-1, 2] = 1
        out.append(rows)
    return out


def _reference_stats(sequences, train, kind):
    """NumPy mean and population std over the train rows (stroke-3: dx, dy pooled, mean 0)."""
    rows = np.concatenate([sequences[i] for i in train]).astype(np.float64)
    if kind == "stroke3":
        std = np.concatenate([rows[:, 0], rows[:, 1]]).std()
        return np.zeros(2), np.array([std, std])
    return rows.mean(axis=0), rows.std(axis=0)


def _examples(dataset):
    """Every example of one epoch as bytes (real steps of inputs and targets), in order."""
    out = []
    for inputs, targets, weights in dataset:
        for x, y, w in zip(inputs.numpy(), targets.numpy(), weights.numpy()):
            n = int(w.sum())
            out.append(x[: n + 1].tobytes() + y[: n + 1].tobytes())
    return out


def _batches(dataset):
    return [tuple(t.numpy() for t in batch) for batch in dataset]


@pytest.fixture
def touch_pair(tmp_path):
    """The same 40 labelled touch sequences as one store and as shards of 7."""
    sequences = _touch(40, seed=1)
    labels = [f"p{i}" for i in range(40)]
    kwargs = dict(kind="touch", labels=labels, seed=7, valid_fraction=0.2, test_fraction=0.1)
    one = data.write_store(tmp_path / "one.h5", sequences, **kwargs)
    shards = data.write_shards(tmp_path / "shards", sequences, shard_size=7, **kwargs)
    return sequences, labels, one, shards


def test_shard_directory_holds_the_single_stores_sequences_splits_and_stats(touch_pair):
    sequences, labels, one, shards = touch_pair
    names = [f"shard-{k:05d}.h5" for k in range(6)]  # 40 = 5 x 7 + 5
    assert sorted(os.listdir(shards)) == [".mdnrnn", "index.json", *names]
    assert not [p for p in shards.parent.iterdir() if p.name.startswith(".")]  # no hidden folder left
    index = json.loads((shards / "index.json").read_text())
    with data.open_store(one) as single:
        splits = {s: single.split(s) for s in data.SPLITS}
        mean, std = single.mean, single.std
    assert index["format"] == "mdnrnn-shards" and index["format_version"] == 1
    assert index["kind"] == "touch" and index["columns"] == ["x", "y", "dt"]
    assert index["sequences"] == 40 and index["points"] == sum(map(len, sequences))
    assert index["splits"] == {s: len(splits[s]) for s in data.SPLITS}
    assert index["stats"] == {"mean": mean.tolist(), "std": std.tolist()}
    ref_mean, ref_std = _reference_stats(sequences, splits["train"], "touch")
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-10)
    np.testing.assert_allclose(std, ref_std, rtol=1e-10)
    for k, (entry, name) in enumerate(zip(index["shards"], names)):
        part = range(7 * k, min(7 * k + 7, 40))
        assert entry["file"] == name and entry["sequences"] == len(part)
        assert entry["points"] == sum(len(sequences[i]) for i in part)
        with data.open_store(shards / name) as shard:  # each shard is a store of its own
            assert len(shard) == len(part)
            for j, i in enumerate(part):
                np.testing.assert_array_equal(shard[j], sequences[i])
            assert list(shard.labels) == labels[part.start : part.stop]
            for s in data.SPLITS:
                mine = splits[s][(splits[s] >= part.start) & (splits[s] < part.stop)] - part.start
                np.testing.assert_array_equal(shard.split(s), mine)
                assert entry["splits"][s] == len(mine)
            np.testing.assert_array_equal(shard.mean, mean)  # the whole dataset's statistics
            np.testing.assert_array_equal(shard.std, std)
    with data.open_stores(shards) as stores:
        assert len(stores) == 40 and len(stores.stores) == 6 and stores.index == index
        np.testing.assert_array_equal(stores.mean, mean)
        np.testing.assert_array_equal(stores.std, std)
        for s in data.SPLITS:
            np.testing.assert_array_equal(stores.split(s), splits[s])
        np.testing.assert_array_equal(stores.lengths, [len(q) for q in sequences])
        assert list(stores.labels) == labels
        for i in (0, 6, 7, 39, -1):
            np.testing.assert_array_equal(stores[i], sequences[i])


@pytest.mark.parametrize("kind", ["touch", "stroke3"])
def test_plain_files_pool_their_train_splits(tmp_path, kind):
    sequences = _touch(30, seed=2) if kind == "touch" else _drawings(30, seed=2)
    splits = ["train" if i % 4 else "valid" for i in range(30)]
    pieces = [(0, 12), (12, 17), (17, 30)]  # unequal files, rows weighted by their number
    paths = [data.write_store(tmp_path / f"part-{k}.h5", sequences[lo:hi], kind=kind, splits=splits[lo:hi])
             for k, (lo, hi) in enumerate(pieces)]
    one = data.write_store(tmp_path / "one.h5", sequences, kind=kind, splits=splits)
    train = [i for i, s in enumerate(splits) if s == "train"]
    mean, std = _reference_stats(sequences, train, kind)
    with data.open_store(one) as single:
        np.testing.assert_allclose(single.mean, mean, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(single.std, std, rtol=1e-10)
        single_mean, single_std = single.mean, single.std
    for spec in (paths, str(tmp_path / "part-*.h5"), [str(p) for p in paths]):
        with data.open_stores(spec) as stores:
            assert stores.index is None and len(stores) == 30
            np.testing.assert_array_equal(stores[29], sequences[29])
            np.testing.assert_array_equal(stores.split("train"), train)
            np.testing.assert_allclose(stores.mean, mean, rtol=1e-10, atol=1e-15)
            np.testing.assert_allclose(stores.std, std, rtol=1e-10)
            np.testing.assert_allclose(stores.mean, single_mean, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(stores.std, single_std, rtol=1e-12)
            if kind == "stroke3":
                assert stores.mean.tolist() == [0.0, 0.0] and stores.std[0] == stores.std[1]
    # Not the mean of the files' own statistics: the files differ, so that would not match.
    with data.open_store(paths[1]) as small:
        assert not np.allclose(small.std, single_std, rtol=1e-3)


@pytest.mark.parametrize("mode", ["window", "categorical"])
def test_unshuffled_batches_equal_the_single_stores(tmp_path, mode):
    if mode == "window":
        sequences, kind, kwargs = _touch(60, seed=3), "touch", dict(window=4, stride=2)
    else:
        sequences, kind, kwargs = _drawings(60, seed=3), "stroke3", dict(pen="categorical")
    one = data.write_store(tmp_path / "one.h5", sequences, kind=kind, seed=5)
    shards = data.write_shards(tmp_path / "shards", sequences, kind=kind, seed=5, shard_size=11)
    for split in ("train", "valid"):
        expected = _batches(data.make_dataset(one, split, 5, shuffle=False, **kwargs))
        got = _batches(data.make_dataset(shards, split, 5, shuffle=False, block_rows=16, **kwargs))
        assert len(got) == len(expected) > 0
        for a, b in zip(got, expected):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)
        assert data.count_examples(shards, split, **kwargs) == data.count_examples(one, split, **kwargs)


def test_shuffled_epoch_is_the_same_multiset_and_seeded(touch_pair):
    sequences, _, one, shards = touch_pair
    kwargs = dict(window=3, stride=1, seed=4, block_rows=32, shuffle_blocks=2)
    single = data.make_dataset(one, "train", 6, **kwargs)
    sharded = data.make_dataset(shards, "train", 6, **kwargs)
    again = data.make_dataset(shards, "train", 6, **kwargs)
    assert len(sharded) == len(single)
    first, second = _examples(sharded), _examples(sharded)  # epochs 0 and 1
    assert sorted(first) == sorted(_examples(single)) == sorted(second)
    assert first != second  # each epoch draws a new order
    assert _examples(again) == first  # same seed, same shards: same batches
    # The examples are the hand-made windows (normalised with the single store's stats).
    with data.open_store(one) as store:
        mean, std, train = store.mean, store.std, store.split("train")
    windows = [((sequences[i][s : s + 4] - mean) / std).astype(np.float32)
               for i in train for s in range(len(sequences[i]) - 1)]  # one at every row with a next
    assert len(first) == len(windows)


@pytest.mark.parametrize("mode", ["window", "categorical"])
def test_worker_slices_make_up_the_single_datasets_batches(tmp_path, mode):
    """Multi-worker training: the slices of `replica_slices` put together, worker after
    worker, are the shuffled batches of the dataset without it (same seed, two epochs)."""
    if mode == "window":
        sequences, kind, kwargs = _touch(60, seed=3), "touch", dict(window=4, stride=2)
    else:
        sequences, kind, kwargs = _drawings(80, seed=3), "stroke3", dict(pen="categorical")
    shards = data.write_shards(tmp_path / "shards", sequences, kind=kind, seed=5, shard_size=11)
    kwargs.update(seed=2, block_rows=16, shuffle_blocks=2)
    batch = 6
    single = data.make_dataset(shards, "train", batch, drop_remainder=True, **kwargs)
    workers = [data.make_dataset(shards, "train", batch, replica_slices=(0, 2, 3), **kwargs),  # two replicas
               data.make_dataset(shards, "train", batch, replica_slices=(2, 1, 3), **kwargs)]
    assert [len(w) for w in workers] == [2 * len(single), len(single)]
    def examples(batch):  # the real steps of each example (weights 1), padding cut off
        inputs, targets, weights = (t.numpy() for t in batch)
        return [x[: int(w.sum())].tobytes() + y[: int(w.sum())].tobytes()
                for x, y, w in zip(inputs, targets, weights)]

    for _ in range(2):  # epochs 0 and 1
        expected = [examples(b) for b in single]
        slices = [[examples(b) for b in w] for w in workers]
        got = [slices[0][2 * k] + slices[0][2 * k + 1] + slices[1][k] for k in range(len(single))]
        assert got == expected and all(len(e) == batch for e in expected)
    with pytest.raises(ValueError, match=r"multiple of the number of replicas \(4\)"):
        data.make_dataset(shards, "train", batch, replica_slices=(0, 1, 4), **kwargs)
    with pytest.raises(ValueError, match=r"replica_slices=\(2, 2, 3\)"):
        data.make_dataset(shards, "train", batch, replica_slices=(2, 2, 3), **kwargs)


def test_mismatched_stores_are_refused(tmp_path):
    touch = data.write_store(tmp_path / "touch.h5", _touch(5), kind="touch", splits=["train"] * 5)
    drawings = data.write_store(tmp_path / "draw.h5", _drawings(5), kind="stroke3", splits=["train"] * 5)
    narrow = data.write_store(tmp_path / "i3.h5", [np.full((4, 3), 0.5)], kind="impsy", splits=["train"])
    wide = data.write_store(tmp_path / "i4.h5", [np.full((4, 4), 0.5)], kind="impsy", splits=["train"])
    with pytest.raises(data.StoreError,
                       match=rf"^{re.escape(str(drawings))}: attribute kind: 'stroke3', but .*touch.h5 is 'touch'"):
        data.open_stores([touch, drawings])
    with pytest.raises(data.StoreError, match=rf"^{re.escape(str(wide))}: attribute columns: \('dt', 'x_1', 'x_2', 'x_3'\)"):
        data.open_stores([narrow, wide])
    with pytest.raises(data.StoreError, match=r"no file matches this pattern"):
        data.open_stores(str(tmp_path / "nothing-*.h5"))
    with pytest.raises(data.StoreError, match=rf"^{re.escape(str(touch))}: named twice"):
        data.open_stores([touch, str(touch)])
    with pytest.raises(data.StoreError, match=r"no index.json \(not a shard directory\)"):
        data.open_stores(tmp_path)
    with pytest.raises(data.StoreError, match=r"no such store file"):
        data.open_stores([touch, tmp_path / "missing.h5"])
    with pytest.raises(data.StoreError, match=r"attribute kind"):
        data.make_dataset([touch, drawings], "train", 2, window=2)


def test_index_that_disagrees_with_its_shards_is_refused(touch_pair):
    _, _, _, shards = touch_pair
    index_path = shards / "index.json"
    good = json.loads(index_path.read_text())
    for change, field in ((lambda i: i["shards"][2].update(sequences=8), r"shards\[2\]\.sequences: says 8"),
                          (lambda i: i["shards"][0]["splits"].update(valid=99), r"shards\[0\]\.splits\.valid"),
                          (lambda i: i.update(kind="stroke3"), "kind: 'stroke3'"),
                          (lambda i: i["stats"].update(std=[1.0, 0.0, 1.0]), r"stats\.std"),
                          (lambda i: i["shards"][0].update(file="../one.h5"), r"shards\[0\]\.file"),
                          (lambda i: i.update(format_version=2), "newer than this mdnrnn reads")):
        index = json.loads(json.dumps(good))
        change(index)
        index_path.write_text(json.dumps(index))
        with pytest.raises(data.StoreError, match=rf"^{re.escape(str(index_path))}: .*{field}"):
            data.open_stores(shards)
    index_path.write_text("{not json")
    with pytest.raises(data.StoreError, match="not readable JSON"):
        data.open_stores(shards)


def test_shard_writer_is_atomic(tmp_path):
    target = tmp_path / "shards"
    data.write_shards(target, _touch(10), kind="touch", shard_size=4)
    before = sorted(os.listdir(target))
    with pytest.raises(FileExistsError, match="already exists"):
        data.write_shards(target, _touch(10), kind="touch", shard_size=4)
    with pytest.raises(RuntimeError, match="interrupted"):
        with data.ShardWriter(target, kind="touch", shard_size=4, overwrite=True) as writer:
            writer.add(np.zeros((3, 3)))
            raise RuntimeError("interrupted")
    with pytest.raises(ValueError, match="Sequence 1: has NaN"):
        data.write_shards(target, [np.zeros((2, 3)), np.full((2, 3), np.nan)], kind="touch", shard_size=1,
                          overwrite=True)
    assert sorted(os.listdir(target)) == before and sorted(os.listdir(tmp_path)) == ["shards"]
    (tmp_path / "mine").mkdir()
    with pytest.raises(FileExistsError, match="not made by mdnrnn"):
        data.write_shards(tmp_path / "mine", _touch(3), kind="touch", shard_size=2, overwrite=True)
    with pytest.raises(ValueError, match="shard_size"):
        data.ShardWriter(tmp_path / "x", kind="touch", shard_size=0)
    data.write_shards(target, _touch(3), kind="touch", shard_size=2, overwrite=True, splits=["train"] * 3)
    assert json.loads((target / "index.json").read_text())["sequences"] == 3
    assert sorted(os.listdir(tmp_path)) == ["mine", "shards"]


# ------------------------------------------------------------------ the commands
def test_prep_shard_size_through_the_cli(tmp_path):
    out = tmp_path / "rj"
    result = subprocess.run(
        [sys.executable, "-m", "mdnrnn.cli", "prep", "robojam", "--sample", "--shard-size", "400",
         "--seed", "3", "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "shards:    3 " in result.stdout and "sequences: 1,070" in result.stdout
    assert data_prep.main(["robojam", "--sample", "--seed", "3", "--out", str(tmp_path / "one.h5"),
                           "--no-progress"]) == 0
    index = json.loads((out / "index.json").read_text())
    assert [s["sequences"] for s in index["shards"]] == [400, 400, 270]
    with data.open_store(tmp_path / "one.h5") as single, data.open_stores(out) as stores:
        assert index["sequences"] == len(single) == len(stores) == 1070
        assert index["points"] == single.n_points == 172_261
        assert index["splits"] == {s: len(single.split(s)) for s in data.SPLITS}
        for k, shard in enumerate(index["shards"]):
            with data.open_store(out / shard["file"]) as alone:
                assert len(alone) == shard["sequences"] and alone.n_points == shard["points"]
                assert {s: len(alone.split(s)) for s in data.SPLITS} == shard["splits"]
                np.testing.assert_array_equal(alone[0], single[400 * k])
        np.testing.assert_array_equal(stores.mean, single.mean)
        np.testing.assert_array_equal(stores.std, single.std)
        for s in data.SPLITS:
            np.testing.assert_array_equal(stores.split(s), single.split(s))


@pytest.mark.parametrize("value", ["0", "-3", "abc", "1.5", "100000001"])
def test_prep_refuses_bad_shard_sizes(tmp_path, capsys, value):
    out = tmp_path / "rj"
    assert data_prep.main(["robojam", "--sample", "--shard-size", value, "--out", str(out)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--shard-size" in errors[0] and value in errors[0], errors
    assert os.listdir(tmp_path) == []


def test_prep_refuses_too_many_shards_and_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "rj"
    assert data_prep.main(["robojam", "--sample", "--shard-size", "1", "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "1,070 shards" in err[0], err
    assert os.listdir(tmp_path) == []
    (tmp_path / "taken.h5").write_bytes(b"a store")
    assert data_prep.main(["robojam", "--sample", "--shard-size", "500", "--force",
                           "--out", str(tmp_path / "taken.h5"), "--no-progress"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "not a directory made by mdnrnn" in err[0], err
    assert (tmp_path / "taken.h5").read_bytes() == b"a store" and os.listdir(tmp_path) == ["taken.h5"]


def test_train_and_info_on_a_shard_directory(tmp_path, capsys):
    shards = tmp_path / "rj"
    assert data_prep.main(["robojam", "--sample", "--shard-size", "400", "--out", str(shards), "--no-progress"]) == 0
    assert cli_main(["info", str(shards)]) == 0
    out = capsys.readouterr().out
    assert "shards:    " in out and "(3 stores" in out and "sequences: 1,070" in out
    assert "shard-00002.h5: 270 sequences" in out
    run_dir = tmp_path / "run"
    argv = ["train", "--data", str(shards), "--preset", "touch", "--units", "8", "--layers", "1",
            "--mixtures", "2", "--seq-len", "10", "--batch-size", "32", "--epochs", "1",
            "--steps-per-epoch", "2", "--progress", "none", "--out", str(run_dir)]
    assert cli_main(argv) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["data"] == str(shards)
    with data.open_stores(shards) as stores:
        assert saved["model"]["mean"] == stores.mean.tolist() and saved["model"]["std"] == stores.std.tolist()
    assert (run_dir / "model.keras").exists()
    assert cli_main(["train", "--resume", str(run_dir), "--epochs", "2", "--progress", "none"]) == 0
    with open(run_dir / "history.csv") as f:
        assert len(f.read().splitlines()) == 3  # header and epochs 0, 1
    # A pattern and a list of shard files give the same statistics (recomputed from the data).
    pattern = str(shards / "shard-*.h5")
    listed = [str(p) for p in sorted(shards.glob("*.h5"))]
    for spec in (pattern, listed):
        with data.open_stores(spec) as stores, data.open_stores(shards) as indexed:
            np.testing.assert_allclose(stores.mean, indexed.mean, rtol=1e-12)
            np.testing.assert_allclose(stores.std, indexed.std, rtol=1e-12)
    assert cli_main(["train", "--data", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "r2")]) == 1
    assert "No store at" in capsys.readouterr().err


def test_input_sharded_by_file_gives_each_worker_only_its_files(tmp_path):
    """`--input-sharding file`: worker i reads windows of files i, i + W, ... only (checked
    against windows cut by hand from those files' train sequences, normalised with the
    whole set's statistics), and every worker takes the same number of steps."""
    import mdnrnn
    from mdnrnn import train

    sequences = _touch(60, seed=4)
    shards = data.write_shards(tmp_path / "shards", sequences, kind="touch", seed=5, shard_size=11)  # 6 files
    config = mdnrnn.preset("touch", units=8, layers=1, components=2, targets="rows")
    settings = train.TrainSettings(batch_size=6, window=4, seed=1, distribute="multiworker", input_sharding="file")
    with data.open_stores(shards) as whole:
        mean, std, train_ids = whole.mean, whole.std, whole.split("train")
    per_file = {}
    for i in train_ids:  # every train window's input rows, by the file its sequence is in
        rows = (sequences[i] - mean.astype(np.float32)) / std.astype(np.float32)  # float32, as the codec
        for s in range(0, len(rows) - 1, 4):  # the last window: the rows left, then zero padding
            window = np.zeros((4, 3), np.float32)
            piece = rows[s : min(s + 4, len(rows) - 1)]
            window[: len(piece)] = piece
            per_file.setdefault(i // 11, set()).add(window.tobytes())
    expected = [set().union(*(per_file.get(f, set()) for f in range(w, 6, 2))) for w in range(2)]
    assert expected[0] and expected[1] and not expected[0] & expected[1]
    got = [train.worker_datasets(shards, config, settings, w, 2) for w in range(2)]
    for split in ("train", "valid"):
        assert len(got[0][split]) == len(got[1][split]) > 0  # the same number of steps
    steps = min(len(e) // 3 for e in expected)
    assert len(got[0]["train"]) == steps  # the fewest full batches of 3 (6 / 2 workers)
    for w in range(2):
        seen = []
        for inputs, _, weights in got[w]["train"]:
            assert inputs.shape == (3, 4, 3)
            seen += [(x + 0.0).tobytes() for x in inputs.numpy()]  # padding may be -0.0
        assert len(seen) == 3 * steps == len(set(seen)) and set(seen) <= expected[w]
    with pytest.raises(ValueError, match="6 store file.* 7 workers"):
        train.worker_datasets(shards, config, settings.__class__(**{**settings.__dict__, "batch_size": 7}), 0, 7)
    with pytest.raises(ValueError, match="multiple of the number of workers"):
        train.worker_datasets(shards, config, settings, 0, 4)
    with pytest.raises(ValueError, match="input_sharding='file'.*multi-worker"):
        train.TrainSettings(input_sharding="file")
