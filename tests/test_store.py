"""The HDF5 sequence store: round trips, appends, atomic writes, validation.

References are hand-built arrays, NumPy statistics and direct h5py reads.
"""

import hashlib
import math

import h5py
import numpy as np
import pytest

from data_prep.robojam import split_performances
from mdnrnn import data, datasets


def _touch_sequences(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((int(k), 3), dtype=np.float32) for k in rng.integers(1, 40, n)]


def _stroke3_sequences(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in rng.integers(1, 30, n):
        rows = rng.integers(-50, 50, (int(k), 3)).astype(np.float32)
        rows[:, 2] = rng.random(int(k)) < 0.2
        rows[-1, 2] = 1
        out.append(rows)
    return out


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def touch_store(tmp_path):
    seqs = _touch_sequences(30)
    splits = ["train"] * 20 + ["valid"] * 6 + ["test"] * 4
    labels = [f"perf-{i}" for i in range(30)]
    path = data.write_store(tmp_path / "touch.h5", seqs, kind="touch", labels=labels,
                            splits=splits, source="unit test", licence="CC0", seed=3)
    return path, seqs, labels, splits


def test_round_trip_values_labels_splits_stats(touch_store):
    path, seqs, labels, splits = touch_store
    with data.open_store(path) as store:
        assert store.kind == "touch"
        assert store.columns == ("x", "y", "dt")
        assert len(store) == 30
        for i, seq in enumerate(seqs):
            got = store[i]
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, seq)
        np.testing.assert_array_equal(store.lengths, [len(s) for s in seqs])
        assert list(store.labels) == labels
        for name in data.SPLITS:
            want = [i for i, s in enumerate(splits) if s == name]
            np.testing.assert_array_equal(store.split(name), want)
        train = np.concatenate(seqs[:20]).astype(np.float64)
        np.testing.assert_allclose(store.mean, train.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(store.std, train.std(axis=0), rtol=1e-12)
        assert (store.source, store.licence, store.seed) == ("unit test", "CC0", 3)
        assert store[-1].shape == seqs[-1].shape


def test_stroke3_stats_are_zero_mean_and_one_shared_std(tmp_path):
    seqs = _stroke3_sequences(20)
    splits = ["train"] * 15 + ["test"] * 5
    path = data.write_store(tmp_path / "s.h5", seqs, kind="stroke3", splits=splits)
    pooled = np.concatenate([s[:, :2].ravel() for s in seqs[:15]]).astype(np.float64)
    with data.open_store(path) as store:
        np.testing.assert_array_equal(store.mean, [0.0, 0.0])
        np.testing.assert_allclose(store.std, [pooled.std(), pooled.std()], rtol=1e-12)
        assert store.labels is None
        assert store.split("valid").size == 0
        assert store.split_names == ("train", "test")


def test_layout_on_disk_matches_docs(touch_store):
    path = touch_store[0]
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == data.FORMAT_VERSION == 2
        assert f.attrs["kind"] == b"touch"
        assert list(f.attrs["columns"]) == [b"x", b"y", b"dt"]
        assert f.attrs["source"] == b"unit test" and f.attrs["licence"] == b"CC0"
        values = f["sequences/values"]
        assert values.dtype == np.float32 and values.shape == (f["sequences/offsets"][-1], 3)
        assert values.chunks is not None and values.compression == "gzip"
        assert values.maxshape == (None, 3)
        assert f["sequences/offsets"].dtype == np.int64
        labels = h5py.check_string_dtype(f["sequences/labels"].dtype)
        assert labels.encoding == "utf-8" and labels.length == 16  # fixed-length
        assert sorted(f["splits"]) == ["test", "train", "valid"]
        assert f["stats/mean"].shape == f["stats/std"].shape == (3,)
        datasets = []
        f.visititems(lambda name, obj: datasets.append(obj)
                     if isinstance(obj, h5py.Dataset) else None)
        assert len(datasets) == 8
        for ds in datasets:
            assert ds.fletcher32, ds.name
        # HDF5 1.10 file format: checksummed superblock (version 3) and object headers.
        assert f.id.get_create_plist().get_version()[0] == 3


def test_random_splits_are_seeded_disjoint_and_sized(tmp_path):
    seqs = _touch_sequences(200)
    a = data.write_store(tmp_path / "a.h5", seqs, kind="touch", seed=7)
    b = data.write_store(tmp_path / "b.h5", seqs, kind="touch", seed=7)
    c = data.write_store(tmp_path / "c.h5", seqs, kind="touch", seed=8,
                         valid_fraction=0.1, test_fraction=0.2)
    with data.open_store(a) as sa, data.open_store(b) as sb, data.open_store(c) as sc:
        parts = [sa.split(s) for s in data.SPLITS]
        assert [len(p) for p in parts] == [180, 10, 10]
        np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(200))
        for s in data.SPLITS:
            np.testing.assert_array_equal(sa.split(s), sb.split(s))
        assert [len(sc.split(s)) for s in data.SPLITS] == [140, 20, 40]


def test_unicode_labels_round_trip(tmp_path):
    path = data.write_store(tmp_path / "k.h5", _stroke3_sequences(3), kind="stroke3",
                            labels=["漢", "二", "𠀋"], splits=["train"] * 3)
    with data.open_store(path) as store:
        assert list(store.labels) == ["漢", "二", "𠀋"]


def test_append_keeps_earlier_sequences_intact(touch_store):
    path, seqs, labels, splits = touch_store
    more = _touch_sequences(5, seed=1)
    data.append_store(path, more, labels=[f"new-{i}" for i in range(5)],
                      splits=["train", "train", "valid", "test", "train"])
    with data.open_store(path) as store:
        assert len(store) == 35
        for i, seq in enumerate(seqs + more):
            np.testing.assert_array_equal(store[i], seq)
        assert list(store.labels) == labels + [f"new-{i}" for i in range(5)]
        np.testing.assert_array_equal(store.split("train"), list(range(20)) + [30, 31, 34])
        np.testing.assert_array_equal(store.split("valid"), list(range(20, 26)) + [32])
        np.testing.assert_array_equal(store.split("test"), [26, 27, 28, 29, 33])
        train = np.concatenate(seqs[:20] + [more[0], more[1], more[4]]).astype(np.float64)
        np.testing.assert_allclose(store.mean, train.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(store.std, train.std(axis=0), rtol=1e-12)


def test_append_with_random_splits_leaves_old_assignments(touch_store):
    path = touch_store[0]
    with data.open_store(path) as before:
        old = {s: before.split(s) for s in data.SPLITS}
    data.append_store(path, _touch_sequences(40, seed=2), labels=["x"] * 40)
    with data.open_store(path) as store:
        for s in data.SPLITS:
            np.testing.assert_array_equal(store.split(s)[store.split(s) < 30], old[s])
        new = np.concatenate([store.split(s) for s in data.SPLITS])
        assert sorted(new[new >= 30]) == list(range(30, 70))


def test_streaming_writer_flushes_many_blocks(tmp_path, monkeypatch):
    # Small scan blocks: statistics merge over many blocks must match NumPy.
    for module in (data.store, data.writer):
        monkeypatch.setattr(module, "_SCAN_ROWS", 1000)
    rng = np.random.default_rng(5)
    seqs = [rng.normal(3.0, 2.0, (int(k), 3)).astype(np.float32)
            for k in rng.integers(100, 2000, 200)]
    with data.StoreWriter(tmp_path / "big.h5", kind="touch", seed=1) as writer:
        for s in seqs:
            writer.add(s)
    with data.open_store(tmp_path / "big.h5") as store:
        assert store.n_points == sum(len(s) for s in seqs) > 8 * data.writer._chunk_rows(3)
        for i in (0, 77, 199):
            np.testing.assert_array_equal(store[i], seqs[i])
        train = np.concatenate([seqs[i] for i in store.split("train")]).astype(np.float64)
        np.testing.assert_allclose(store.mean, train.mean(axis=0), rtol=1e-10)
        np.testing.assert_allclose(store.std, train.std(axis=0), rtol=1e-10)


def test_impsy_width_comes_from_first_sequence(tmp_path):
    seqs = [np.random.default_rng(0).random((5, 4), dtype=np.float32)]
    path = data.write_store(tmp_path / "i.h5", seqs, kind="impsy", splits=["train"])
    with data.open_store(path) as store:
        assert store.columns == ("dt", "x_1", "x_2", "x_3")
        assert store.n_continuous == 4


# --- atomic writes ----------------------------------------------------------


class Boom(Exception):
    pass


def _exploding(seqs, after):
    for i, s in enumerate(seqs):
        if i == after:
            raise Boom("simulated failure mid-write")
        yield s


def test_failed_conversion_leaves_no_store(tmp_path):
    with pytest.raises(Boom):
        data.write_store(tmp_path / "new.h5", _exploding(_touch_sequences(50), 30),
                         kind="touch")
    assert not (tmp_path / "new.h5").exists()
    assert _leftovers(tmp_path) == []


def test_failure_mid_write_with_many_rows_leaves_no_store(tmp_path):
    # Enough rows that blocks were already flushed to the temporary file.
    out = tmp_path / "new.h5"
    with pytest.raises(KeyboardInterrupt):
        with data.StoreWriter(out, kind="touch") as writer:
            for i in range(400):
                writer.add(np.ones((1000, 3), dtype=np.float32))
            assert any(p.suffix == ".tmp" for p in tmp_path.iterdir())
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_leaves_existing_store_untouched(touch_store):
    path = touch_store[0]
    before = _digest(path)
    with pytest.raises(Boom):
        data.write_store(path, _exploding(_touch_sequences(50), 40), kind="touch",
                         overwrite=True)
    assert _digest(path) == before
    assert _leftovers(path.parent) == []
    with data.open_store(path) as store:
        assert len(store) == 30


def test_failed_append_leaves_store_untouched(touch_store):
    path = touch_store[0]
    before = _digest(path)
    with pytest.raises(Boom):
        data.append_store(path, _exploding(_touch_sequences(10), 5), labels=["a"] * 10)
    with pytest.raises(ValueError, match="Sequence 32: has NaN"):
        bad = _touch_sequences(3)
        bad[2][0, 0] = np.nan
        data.append_store(path, bad, labels=["a"] * 3)
    assert _digest(path) == before
    assert _leftovers(path.parent) == []


def test_invalid_sequences_are_refused_and_nothing_written(tmp_path):
    out = tmp_path / "bad.h5"
    cases = [
        ([np.zeros((0, 3))], "non-empty"),
        ([np.zeros((4, 2))], r"\(length, 3\)"),
        ([np.array([[1, 2, 0.5]])], "pen_lift values must be 0 or 1"),
        ([np.array([[1, np.inf, 1]])], "NaN or inf"),
    ]
    for seqs, message in cases:
        with pytest.raises(ValueError, match=message):
            data.write_store(out, seqs, kind="stroke3")
        assert not out.exists()
    with pytest.raises(ValueError, match="either every sequence has a label or none"):
        data.write_store(out, _stroke3_sequences(2), kind="stroke3", labels=["a", None])
    with pytest.raises(ValueError, match="train split is empty"):
        data.write_store(out, _stroke3_sequences(2), kind="stroke3", splits=["test", "test"])
    assert list(tmp_path.iterdir()) == []


def test_store_gets_ordinary_file_permissions(tmp_path):
    path = data.write_store(tmp_path / "p.h5", _touch_sequences(2), kind="touch")
    (tmp_path / "plain").touch()  # what the umask gives any new file
    assert path.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
    path.chmod(0o640)
    data.append_store(path, _touch_sequences(1))
    assert path.stat().st_mode & 0o777 == 0o640


def test_existing_file_is_not_overwritten_by_default(touch_store):
    path = touch_store[0]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        data.write_store(path, _touch_sequences(2), kind="touch")


# --- validation on opening --------------------------------------------------


def _edit(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def _replace(f, name, value):
    del f[name]
    f.create_dataset(name, data=value)


def test_truncated_file_is_refused(touch_store):
    path = touch_store[0]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(data.StoreError, match="not a readable HDF5 file") as info:
        data.open_store(path)
    assert str(path) in str(info.value)


# --- damaged files: checksums ------------------------------------------------


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory):
    """A store of the shipped RoboJam corpus (1,070 performances, 172,261 rows)."""
    with h5py.File(datasets.path("robojam"), "r") as f:
        rows = f["total_performances"][:]
    performances = split_performances(rows)
    path = tmp_path_factory.mktemp("corpus") / "robojam.h5"
    data.write_store(path, performances, kind="touch", source="RoboJam corpus",
                     labels=[f"performance {i}" for i in range(len(performances))],
                     licence="CC0 1.0", seed=1)
    return path


def _read_everything(path):
    """Every array and attribute a store gives its users, read with the public API."""
    with data.open_store(path) as store:
        return {
            "sequences": [store[i] for i in range(len(store))],
            "labels": store.labels,
            "splits": [store.split(s) for s in data.SPLITS],
            "stats": [store.mean, store.std],
            "attributes": (store.kind, store.columns, store.source, store.licence,
                           store.seed, store.format_version),
        }


def _same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def test_every_flipped_byte_is_detected_or_harmless(corpus_store, tmp_path):
    # One byte inverted at a time: either opening or reading the store raises
    # StoreError naming the file, or everything read is identical (the byte was
    # unused). Never a silent change, never a bare h5py / OSError. Positions:
    # every 32nd byte outside the values chunks (superblock, object headers,
    # indexes, offsets, labels, splits, stats) and 100 random bytes of the
    # values chunks (99% of the file). Flipping each of the 9,579 bytes outside
    # the values chunks, once, gave 7,709 StoreErrors and 1,870 harmless flips
    # (unused space in the superblock, object headers and index blocks).
    raw = corpus_store.read_bytes()
    in_values = np.zeros(len(raw), dtype=bool)
    with h5py.File(corpus_store, "r") as f:
        values = f["sequences/values"]
        for i in range(values.id.get_num_chunks()):
            chunk = values.id.get_chunk_info(i)
            in_values[chunk.byte_offset : chunk.byte_offset + chunk.size] = True
    rng = np.random.default_rng(0)
    positions = np.concatenate([
        np.flatnonzero(~in_values)[::32],
        rng.choice(np.flatnonzero(in_values), 100, replace=False),
    ])
    reference = _read_everything(corpus_store)
    damaged = tmp_path / "damaged.h5"
    detected, harmless = [], []
    for position in positions:
        flipped = bytearray(raw)
        flipped[position] ^= 0xFF
        damaged.write_bytes(flipped)
        try:
            read = _read_everything(damaged)
        except data.StoreError as exc:
            assert str(exc).startswith(f"{damaged}: "), exc
            if in_values[position]:
                assert "/sequences/values: cannot be read: the file is damaged" in str(exc)
            detected.append(position)
            continue
        assert _same(read, reference), f"byte {position} changed the data silently"
        harmless.append(position)
    print(f"{len(positions)} flipped bytes: {len(detected)} detected, {len(harmless)} harmless")
    assert len(detected) + len(harmless) == len(positions) > 350
    assert in_values[detected].sum() == 100  # a checksummed chunk: always detected
    assert len(detected) > 3 * len(harmless)


def test_truncated_corpus_store_is_refused(corpus_store, tmp_path):
    raw = corpus_store.read_bytes()
    n = len(raw)
    cut = tmp_path / "cut.h5"
    for size in (0, 8, 100, 2048, n // 2, n * 99 // 100, n - 1):
        cut.write_bytes(raw[:size])
        with pytest.raises(data.StoreError) as info:
            _read_everything(cut)
        assert str(info.value).startswith(f"{cut}: ")


def test_damaged_chunk_read_later_is_a_store_error(corpus_store, tmp_path):
    # Opened without the value scan, the damage shows when the sequence is read.
    raw = bytearray(corpus_store.read_bytes())
    with h5py.File(corpus_store, "r") as f:
        chunk = f["sequences/values"].id.get_chunk_info(3)
        first_row_of_chunk = 3 * f["sequences/values"].chunks[0]
        offsets = f["sequences/offsets"][:]
        first = f["sequences/values"][: offsets[1]]
    raw[chunk.byte_offset + chunk.size // 2] ^= 0x01
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(raw)
    seq = int(np.searchsorted(offsets, first_row_of_chunk, side="right")) - 1
    with data.open_store(damaged, check_values=False) as store:
        np.testing.assert_array_equal(store[0], first)  # an intact chunk still reads
        with pytest.raises(data.StoreError, match="/sequences/values: cannot be read") as info:
            store[seq]
    assert str(info.value).startswith(f"{damaged}: ")
    with pytest.raises(data.StoreError, match="/sequences/values: cannot be read"):
        data.open_store(damaged)  # the value scan reads every chunk


def _write_version_1(path, seqs, labels, splits):
    """A store as mdnrnn wrote it before checksums (format_version 1)."""
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
    train = np.concatenate([s for s, split in zip(seqs, splits) if split == "train"])
    with h5py.File(path, "w") as f:  # HDF5's earliest file format, as h5py's default
        f.create_dataset("sequences/values", data=np.concatenate(seqs), maxshape=(None, 3),
                         chunks=(64, 3), compression="gzip", shuffle=True, fletcher32=True)
        f.create_dataset("sequences/offsets", data=offsets, maxshape=(None,), chunks=(4096,))
        f.create_dataset("sequences/labels", data=np.array(labels, dtype=object),
                         dtype=h5py.string_dtype("utf-8"), maxshape=(None,), chunks=(4096,))
        for name in data.SPLITS:
            f[f"splits/{name}"] = np.array(
                [i for i, s in enumerate(splits) if s == name], dtype=np.int64)
        f["stats/mean"] = train.mean(axis=0).astype(np.float64)
        f["stats/std"] = train.std(axis=0).astype(np.float64)
        f.attrs["format_version"] = 1
        f.attrs["kind"] = "touch"
        f.attrs["columns"] = np.array(["x", "y", "dt"], dtype=h5py.string_dtype("utf-8"))
        f.attrs["source"] = "old"
        f.attrs["licence"] = "CC0"
        f.attrs["seed"] = 4
    return path


def test_version_1_store_opens_and_append_upgrades_it(tmp_path):
    seqs = _touch_sequences(12)
    labels = [f"old-{i}" for i in range(12)]
    splits = ["train"] * 8 + ["valid"] * 2 + ["test"] * 2
    path = _write_version_1(tmp_path / "v1.h5", seqs, labels, splits)
    with data.open_store(path) as store:
        assert store.format_version == 1
        assert (store.kind, store.columns, store.source, store.seed) == (
            "touch", ("x", "y", "dt"), "old", 4)
        for i, seq in enumerate(seqs):
            np.testing.assert_array_equal(store[i], seq)
        assert list(store.labels) == labels
    more = _touch_sequences(3, seed=9)
    data.append_store(path, more, labels=["a much longer label than sixteen bytes", "b", "c"],
                      splits=["train", "valid", "test"])
    with data.open_store(path) as store:
        assert store.format_version == data.FORMAT_VERSION
        for i, seq in enumerate(seqs + more):
            np.testing.assert_array_equal(store[i], seq)
        assert list(store.labels) == labels + ["a much longer label than sixteen bytes", "b",
                                               "c"]
        np.testing.assert_array_equal(store.split("train"), list(range(8)) + [12])
        assert (store.source, store.licence, store.seed) == ("old", "CC0", 4)
    with h5py.File(path, "r") as f:
        assert all(f[name].fletcher32 for name in (
            "sequences/values", "sequences/offsets", "sequences/labels", "splits/train",
            "stats/mean", "stats/std"))


def test_labels_widen_as_longer_ones_arrive(tmp_path, monkeypatch):
    # Small chunks, so labels are flushed in several blocks before a long one.
    monkeypatch.setattr(data.writer, "_chunk_rows", lambda n_columns: 4)
    labels = ["漢"] * 40 + ["x" * 40] + ["二"] * 40 + ["y" * 70]
    seqs = _touch_sequences(len(labels))
    path = data.write_store(tmp_path / "w.h5", seqs, kind="touch", labels=labels)
    with data.open_store(path) as store:
        assert list(store.labels) == labels
        for i in (0, 40, len(labels) - 1):
            np.testing.assert_array_equal(store[i], seqs[i])
    with h5py.File(path, "r") as f:
        assert f["sequences/labels"].dtype.itemsize == 128
        assert list(f["sequences"]) == ["labels", "offsets", "values"]


def test_require_split_refuses_a_missing_or_empty_split(touch_store):
    path = touch_store[0]
    with data.open_store(path) as store:
        np.testing.assert_array_equal(store.require_split("train"), np.arange(20))
    _edit(path, lambda f: f.__delitem__("splits/train"))
    with data.open_store(path) as store:  # still opens: a store to evaluate on
        with pytest.raises(data.StoreError, match="has no train split") as info:
            store.require_split("train")
        assert str(info.value).startswith(f"{path} has no train split")
    _edit(path, lambda f: f.create_dataset("splits/train", shape=(0,), dtype=np.int64))
    with data.open_store(path) as store:
        with pytest.raises(data.StoreError, match="has no train split"):
            store.require_split("train")


# --- summaries ----------------------------------------------------------------


def test_describe_lengths_quantiles_are_observed_lengths():
    assert data.describe_lengths(np.arange(1, 21)) == (
        "min 1, p5 1, median 10, p95 19, max 20")
    assert data.describe_lengths([7]) == "min 7, p5 7, median 7, p95 7, max 7"
    assert data.describe_lengths([]) == "no sequences"
    assert data.describe_lengths([3] * 10 + [1300]).endswith("p95 1,300, max 1,300")
    # Reference: the ceil(q n / 100)-th smallest length.
    lengths = np.random.default_rng(2).integers(1, 500, 333)
    ordered = np.sort(lengths)
    want = [ordered[max(0, math.ceil(q * len(ordered) / 100) - 1)] for q in (0, 5, 50, 95, 100)]
    assert data.describe_lengths(lengths) == (
        "min {:,}, p5 {:,}, median {:,}, p95 {:,}, max {:,}".format(*want))


@pytest.mark.parametrize(
    "edit, field, problem",
    [
        (lambda f: f.__delitem__("sequences/offsets"), "/sequences/offsets", "missing dataset"),
        (lambda f: f.__delitem__("stats"), "/stats/mean", "missing dataset"),
        (lambda f: _replace(f, "sequences/values", f["sequences/values"][:].astype(np.float64)),
         "/sequences/values", "dtype float64, expected float32"),
        (lambda f: _replace(f, "sequences/offsets", f["sequences/offsets"][:].astype(np.int32)),
         "/sequences/offsets", "dtype int32, expected int64"),
        (lambda f: _replace(f, "sequences/offsets", f["sequences/offsets"][:][[0, 2, 1] + list(
            range(3, 31))]), "/sequences/offsets", r"not strictly increasing: offsets\[1\]"),
        (lambda f: f["sequences/values"].__setitem__((40, 1), np.nan),
         "/sequences/values", "non-finite value nan at row 40"),
        (lambda f: f["sequences/values"].__setitem__((3, 2), np.inf),
         "/sequences/values", "non-finite value inf at row 3 .sequence 0, column 'dt'"),
        (lambda f: f.attrs.__setitem__("format_version", 3),
         "attribute format_version", "3 is newer than this mdnrnn reads"),
        (lambda f: f.attrs.__delitem__("format_version"), "attribute format_version", "missing"),
        (lambda f: f.attrs.__setitem__("kind", "midi"), "attribute kind", "'midi' is not one of"),
        (lambda f: _replace(f, "splits/test", np.array([0, 1])), "/splits/test",
         "overlaps another split"),
        (lambda f: _replace(f, "stats/std", np.array([1.0, 0.0, 1.0])), "/stats/std",
         r"must be finite and > 0; found std\[1\] = 0.0 \(column 'y'\)"),
        (lambda f: _replace(f, "stats/std", np.array([1.0, 1.0, np.nan])), "/stats/std",
         r"must be finite and > 0; found std\[2\] = nan \(column 'dt'\)"),
        (lambda f: _replace(f, "stats/std", np.array([-2.0, 1.0, 1.0])), "/stats/std",
         r"found std\[0\] = -2.0"),
        (lambda f: _replace(f, "stats/std", np.array([np.inf, 1.0, 1.0])), "/stats/std",
         r"found std\[0\] = inf"),
        (lambda f: _replace(f, "stats/mean", np.array([0.0, np.inf, 1.0])), "/stats/mean",
         r"must be finite; found mean\[1\] = inf"),
        (lambda f: _replace(f, "sequences/labels", np.arange(30)), "/sequences/labels",
         "dataset of strings"),
    ],
)
def test_invalid_store_names_file_and_field(touch_store, edit, field, problem):
    path = _edit(touch_store[0], edit)
    with pytest.raises(data.StoreError, match=problem) as info:
        data.open_store(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {field}")


def test_stroke3_pen_values_are_checked(tmp_path):
    path = data.write_store(tmp_path / "s.h5", _stroke3_sequences(4), kind="stroke3",
                            splits=["train"] * 4)
    _edit(path, lambda f: f["sequences/values"].__setitem__((2, 2), 0.5))
    with pytest.raises(data.StoreError, match="pen_lift value other than 0 or 1 0.5 at row 2"):
        data.open_store(path)
    with data.open_store(path, check_values=False) as store:  # the scan is what catches it
        assert store[0][2, 2] == 0.5


def test_nan_found_in_a_later_scan_block(touch_store, monkeypatch):
    monkeypatch.setattr(data.store, "_SCAN_ROWS", 64)
    path = touch_store[0]
    with h5py.File(path, "r") as f:
        offsets = f["sequences/offsets"][:]
    row = int(offsets[25]) + 1
    _edit(path, lambda f: f["sequences/values"].__setitem__((row, 0), np.nan))
    with pytest.raises(data.StoreError, match=f"at row {row} .sequence 25, column 'x'"):
        data.open_store(path)


def test_split_checks_run_slice_by_slice(touch_store, monkeypatch):
    monkeypatch.setattr(data.store, "_SCAN_ROWS", 3)
    path = touch_store[0]
    with data.open_store(path) as store:
        np.testing.assert_array_equal(store.split("train"), np.arange(20))
    repeated = np.r_[0:3, 2:20]  # 2 twice, across a slice boundary
    _edit(path, lambda f: _replace(f, "splits/train", repeated))
    with pytest.raises(data.StoreError, match="/splits/train: indices must be sorted, unique"):
        data.open_store(path)
    late_overlap = np.r_[0:20, 25]  # 25 is a valid sequence
    _edit(path, lambda f: _replace(f, "splits/train", late_overlap))
    with pytest.raises(data.StoreError, match="/splits/valid: overlaps another split"):
        data.open_store(path)


def test_missing_file_and_non_store_file(tmp_path):
    with pytest.raises(data.StoreError, match="no such store file"):
        data.open_store(tmp_path / "absent.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(data.StoreError, match="format_version: missing"):
        data.open_store(tmp_path / "other.h5")


def test_store_indexing_errors(touch_store):
    with data.open_store(touch_store[0]) as store:
        with pytest.raises(IndexError, match="30 out of range"):
            store[30]
        with pytest.raises(TypeError):
            store["a"]
        with pytest.raises(ValueError, match="split='training'"):
            store.split("training")
