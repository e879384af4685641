"""Training pipelines (`mdnrnn.data.make_dataset`) against hand-built examples.

Expected batches are built here with explicit loops from the raw sequences and
NumPy statistics, never with the pipeline's own helpers.
"""

import h5py
import keras
import numpy as np
import pytest
from scipy import stats

from data_prep import sketch_npz
from data_prep.common import load_npz
from mdnrnn import data, datasets, formats


def _batches(ds):
    return [tuple(t.numpy() for t in batch) for batch in ds]


def _stroke3(lengths, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        rows = rng.integers(-9, 10, (n, 3)).astype(np.float32)
        rows[:, 2] = rng.random(n) < 0.3
        rows[-1, 2] = 1
        out.append(rows)
    return out


@pytest.fixture
def stroke_store(tmp_path):
    seqs = _stroke3([3, 1, 5, 2, 4, 6, 2])
    splits = ["train"] * 5 + ["valid"] * 2
    path = data.write_store(tmp_path / "s.h5", seqs, kind="stroke3", splits=splits)
    pooled = np.concatenate([s[:, :2].ravel() for s in seqs[:5]]).astype(np.float64)
    return path, seqs, pooled.std()


def _expected_stroke5(rows, scale):
    inputs, targets = [[0, 0, 1, 0, 0]], []
    for dx, dy, pen in rows:
        inputs.append([dx / scale, dy / scale, 1 - pen, pen, 0])
        targets.append([dx / scale, dy / scale, pen])
    targets.append([0, 0, 2])
    return np.array(inputs), np.array(targets)


def _expected_stroke3(rows, scale):
    norm = [[dx / scale, dy / scale, pen] for dx, dy, pen in rows]
    return np.array([[0, 0, 1]] + norm[:-1]), np.array(norm)


@pytest.mark.parametrize(
    "pen, expected, extra",
    [("categorical", _expected_stroke5, 1), ("bernoulli", _expected_stroke3, 0)],
)
def test_drawing_batches_match_hand_built_examples(stroke_store, pen, expected, extra):
    path, seqs, scale = stroke_store
    ds = data.make_dataset(path, "train", 2, pen=pen, shuffle=False)
    batches = _batches(ds)
    assert len(batches) == len(ds) == 3  # 5 drawings in batches of 2
    order = iter(seqs[:5])
    for inputs, targets, weights in batches:
        lengths = []
        for b in range(len(inputs)):
            rows = next(order)
            lengths.append(len(rows))
            want_in, want_out = expected(rows, scale)
            t = len(want_in)
            np.testing.assert_allclose(inputs[b, :t], want_in, rtol=1e-6)
            np.testing.assert_allclose(targets[b, :t], want_out, rtol=1e-6)
            np.testing.assert_array_equal(weights[b], np.arange(inputs.shape[1]) < t)
            assert not inputs[b, t:].any() and not targets[b, t:].any()
        assert inputs.shape[1] == max(lengths) + extra  # padded to the batch's longest
        assert inputs.dtype == targets.dtype == weights.dtype == np.float32


def test_stroke5_targets_are_inputs_shifted_by_one(stroke_store):
    path = stroke_store[0]
    for inputs, targets, weights in _batches(
        data.make_dataset(path, "train", 3, pen="categorical", seed=4)
    ):
        real = weights[:, 1:] > 0  # steps t with a next input row
        np.testing.assert_array_equal(inputs[:, 1:, :2][real], targets[:, :-1, :2][real])
        # the pen class targets match the one-hot pen state of the next input
        pen_class = np.argmax(inputs[:, 1:, 2:], axis=-1)
        np.testing.assert_array_equal(pen_class[real], targets[:, :-1, 2][real])


def test_padding_is_masked_and_never_reaches_the_loss(stroke_store):
    path = stroke_store[0]
    inputs, targets, weights = _batches(
        data.make_dataset(path, "train", 5, pen="categorical", shuffle=False)
    )[0]
    assert weights.min() == 0.0  # this batch has padding
    mask = keras.layers.Masking(mask_value=0.0).compute_mask(inputs)
    np.testing.assert_array_equal(np.asarray(mask), weights > 0)
    rng = np.random.default_rng(0)
    predictions = rng.normal(size=targets.shape).astype(np.float32)
    loss = keras.losses.MeanSquaredError()
    clean = float(loss(targets, predictions, sample_weight=weights))
    spoiled = predictions.copy()
    spoiled[weights == 0] = 1e6  # garbage on padded steps only
    assert float(loss(targets, spoiled, sample_weight=weights)) == pytest.approx(clean)
    per_step = ((targets - predictions) ** 2).mean(axis=-1)
    assert clean == pytest.approx((per_step * weights).sum() / weights.size, rel=1e-5)


def test_same_seed_same_batches_and_epochs_differ(tmp_path):
    seqs = _stroke3(np.random.default_rng(1).integers(1, 12, 200), seed=2)
    path = data.write_store(tmp_path / "s.h5", seqs, kind="stroke3", splits=["train"] * 200)
    a = data.make_dataset(path, "train", 16, pen="bernoulli", seed=11)
    b = data.make_dataset(path, "train", 16, pen="bernoulli", seed=11)
    c = data.make_dataset(path, "train", 16, pen="bernoulli", seed=12)
    a0, a1 = _batches(a), _batches(a)
    b0, b1 = _batches(b), _batches(b)
    for x, y in zip(a0 + a1, b0 + b1):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a0, a1))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a0, _batches(c)))


def _examples(batches):
    """Every example of `batches` as the bytes of its real target rows, in a canonical order."""
    return sorted(targets[i, : int(weights[i].sum())].tobytes()
                  for _, targets, weights in batches for i in range(len(targets)))


@pytest.mark.parametrize("pool", [4, 1000])
def test_bucketed_batches_hold_the_same_examples_with_less_padding(tmp_path, monkeypatch, pool):
    monkeypatch.setattr(data.pipeline, "BUCKET_POOL", pool)  # 4: several pools; 1000: one
    lengths = np.random.default_rng(5).integers(1, 40, 300)
    seqs = _stroke3(lengths, seed=6)
    path = data.write_store(tmp_path / "s.h5", seqs, kind="stroke3", splits=["train"] * 300)
    plain = _batches(data.make_dataset(path, "train", 10, pen="categorical", seed=3))
    ds = data.make_dataset(path, "train", 10, pen="categorical", seed=3, bucket=True)
    bucketed = _batches(ds)
    assert len(bucketed) == len(plain) == len(ds) == 30
    assert _examples(bucketed) == _examples(plain)  # every drawing once, whole
    padding = [sum(w.size - w.sum() for _, _, w in b) for b in (plain, bucketed)]
    assert padding[1] < padding[0] / (2 if pool == 4 else 5)
    if pool == 1000:
        # The epoch's 300 drawings sorted as one pool: length ranges do not overlap, and
        # every batch holds about a 30th of the rows (within two drawings' lengths), so a
        # batch of short drawings holds more of them.
        ranges = sorted((w.sum(axis=1).min(), w.sum(axis=1).max()) for _, _, w in bucketed)
        assert all(hi <= lo_next for (_, hi), (lo_next, _) in zip(ranges, ranges[1:]))
        rows = np.array([w.sum() for _, _, w in bucketed])
        assert np.abs(rows - rows.sum() / 30).max() <= 2 * (lengths + 1).max()
        sizes = {int(w.sum(axis=1).max()): len(w) for _, _, w in bucketed}
        assert sizes[min(sizes)] > 10 > sizes[max(sizes)]
    # The same seed gives the same batches; the next epoch another order.
    again = _batches(data.make_dataset(path, "train", 10, pen="categorical", seed=3, bucket=True))
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(bucketed, again))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(bucketed, _batches(ds)))


def test_bucketing_needs_shuffled_whole_sequences(stroke_store, tmp_path):
    with pytest.raises(ValueError, match="bucket"):
        data.make_dataset(stroke_store[0], "train", 2, pen="categorical", shuffle=False, bucket=True)
    touch = data.write_store(tmp_path / "t.h5", _touch([30, 40]), kind="touch", splits=["train"] * 2)
    with pytest.raises(ValueError, match="bucket"):
        data.make_dataset(touch, "train", 2, window=5, bucket=True)
    with pytest.raises(ValueError, match="bucket"):
        data.make_dataset(stroke_store[0], "train", 2, pen="categorical", replica_slices=(0, 1, 2), bucket=True)


def _in_order(windows):
    """Windows sorted lexicographically: a canonical order to compare multisets."""
    return windows[np.lexsort(windows.reshape(len(windows), -1).T[::-1])]


def _hand_windows(sequences, window, stride, mean, std):
    """Windows enumerated by hand as `(n, window, 7)`: input row, target row, weight.

    One window starts every `stride` rows while a row is left to predict; the rows of
    `window + 1` that exist are used, the rest is padding (zeros, weight 0).
    """
    out = []
    for rows in sequences:
        norm = (np.asarray(rows, np.float64) - mean) / std
        for start in range(0, len(rows) - 1, stride):
            piece = norm[start : start + window + 1]
            example = np.zeros((window, 7))
            example[: len(piece) - 1, :3] = piece[:-1]
            example[: len(piece) - 1, 3:6] = piece[1:]
            example[: len(piece) - 1, 6] = 1.0
            out.append(example)
    return np.array(out)


def _as_windows(batches):
    return np.concatenate([np.concatenate([x, y, w[..., None]], axis=-1) for x, y, w in batches])


def _touch(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((n, 3), dtype=np.float32) for n in lengths]


def test_touch_windows_match_hand_enumeration(tmp_path):
    seqs = _touch([3, 10, 25, 7, 5, 8])
    splits = ["train"] * 5 + ["test"]
    path = data.write_store(tmp_path / "t.h5", seqs, kind="touch", splits=splits)
    train = np.concatenate(seqs[:5]).astype(np.float64)
    mean, std = train.mean(axis=0), train.std(axis=0)
    window, stride = 4, 2
    expected = _hand_windows(seqs[:5], window, stride, mean, std)
    # starts 0 | 0, 2, .., 8 | 0, 2, .., 22 | 0, 2, 4 | 0, 2: every row but the first is a
    # target, the 3-row sequence and each sequence's last windows padded
    assert len(expected) == 1 + 5 + 12 + 3 + 2
    assert expected[..., 6].sum() == 2 + (4 + 4 + 4 + 3 + 1) + (11 * 4 + 2) + (4 + 4 + 2) + (4 + 2)

    counts = data.count_examples(path, "train", window=window, stride=stride)
    assert (counts.sequences, counts.used, counts.skipped, counts.examples) == (5, 5, 0, 23)
    ds = data.make_dataset(path, "train", 4, window=window, stride=stride, shuffle=False)
    batches = _batches(ds)
    assert len(batches) == len(ds) == 6
    assert all(b[0].shape[1] == window for b in batches)  # one shape: padded to the window
    np.testing.assert_allclose(_as_windows(batches), expected, rtol=1e-5, atol=1e-6)


def test_every_row_is_a_target_once_with_the_default_stride(tmp_path):
    seqs = _touch([1, 2, 7, 12, 30], seed=4)
    path = data.write_store(tmp_path / "t.h5", seqs, kind="touch", splits=["train"] * 5)
    counts = data.count_examples(path, "train", window=5)
    assert (counts.used, counts.skipped) == (4, 1)  # a lone row has nothing to predict
    weights = np.concatenate([b[2] for b in _batches(data.make_dataset(path, "train", 3, window=5, seed=1))])
    assert weights.sum() == 1 + 6 + 11 + 29
    # a window longer than every sequence pads to the longest sequence only
    batches = _batches(data.make_dataset(path, "train", 8, window=100, shuffle=False))
    assert [b[0].shape[1] for b in batches] == [29]
    assert batches[0][2].sum(axis=1).tolist() == [1, 6, 11, 29]


def test_default_stride_is_the_window(tmp_path):
    path = data.write_store(tmp_path / "t.h5", _touch([21, 9]), kind="touch",
                            splits=["train", "train"])
    # windows of 5 rows every 4 rows: starts 0, 4, ..., 16 and 0, 4
    assert data.count_examples(path, "train", window=4).examples == 5 + 2
    # every row but the last starts one: 20 and 8 (the last ones shorter)
    assert data.count_examples(path, "train", window=4, stride=1).examples == 20 + 8


def test_whole_touch_sequences_padded(tmp_path):
    seqs = _touch([4, 1, 6])
    path = data.write_store(tmp_path / "t.h5", seqs, kind="touch", splits=["train"] * 3)
    with data.open_store(path) as store:
        mean, std = store.mean, store.std
    inputs, targets, weights = _batches(data.make_dataset(path, "train", 8, shuffle=False))[0]
    assert inputs.shape == (2, 5, 3)  # the 1-row sequence has no next step: skipped
    for b, rows in enumerate([seqs[0], seqs[2]]):
        norm = (rows - mean) / std
        n = len(rows) - 1
        np.testing.assert_allclose(inputs[b, :n], norm[:-1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(targets[b, :n], norm[1:], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(weights[b], np.arange(5) < n)
        assert not inputs[b, n:].any() and not targets[b, n:].any()


def test_given_statistics_replace_the_stores(tmp_path):
    """`stats`: rows normalised with a model's own mean and std (fine-tuning on other data)."""
    seqs = _touch([6, 9])
    path = data.write_store(tmp_path / "t.h5", seqs, kind="touch", splits=["train"] * 2)
    mean, std = np.array([0.2, 0.7, 0.05]), np.array([0.5, 0.25, 2.0])
    inputs, targets, weights = _batches(data.make_dataset(path, "train", 8, shuffle=False, stats=(mean, std)))[0]
    assert sorted(weights.sum(axis=1)) == [5, 8]
    for b in range(2):
        n = int(weights[b].sum())
        norm = (seqs[0 if n == 5 else 1] - mean) / std
        np.testing.assert_allclose(inputs[b, :n], norm[:-1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(targets[b, :n], norm[1:], rtol=1e-5, atol=1e-6)


def test_input_noise_perturbs_only_the_change_columns_of_inputs(tmp_path):
    path = data.write_store(tmp_path / "t.h5", _touch([300] * 8), kind="touch", splits=["train"] * 8)

    def batches(noise, seed=0):
        ds = data.make_dataset(path, "train", 16, window=20, seed=seed, targets="offsets", input_noise=noise)
        return [np.concatenate(part) for part in zip(*_batches(ds))]

    exact, noisy, again = batches(0.0), batches(0.05), batches(0.05)
    np.testing.assert_array_equal(noisy[0][..., :3], exact[0][..., :3])  # the normalised rows
    np.testing.assert_array_equal(noisy[1], exact[1])  # targets stay exact
    np.testing.assert_array_equal(noisy[2], exact[2])
    noise = noisy[0][..., 3:] - exact[0][..., 3:]  # the (dx, dy) change columns
    assert not noise[exact[2] == 0].any()  # padding stays zero
    noise = noise[exact[2] == 1]
    assert noise.size == 2 * 8 * 299
    assert abs(noise.mean()) < 0.005 and noise.std() == pytest.approx(0.05, rel=0.05)
    assert stats.kstest(noise.ravel() / 0.05, "norm").pvalue > 0.001
    for a, b in zip(noisy, again):  # the seed decides the noise too
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(batches(0.05, seed=1)[0], noisy[0])
    with pytest.raises(ValueError, match="targets='rows'"):
        data.make_dataset(path, "train", 16, window=20, input_noise=0.05)
    with pytest.raises(ValueError, match="input_noise=-1"):
        data.make_dataset(path, "train", 16, window=20, targets="offsets", input_noise=-1)


def test_tempo_models_get_each_windows_whole_performance_tempo(tmp_path):
    """With `tempo`, every real input row of a window ends with its whole performance's
    tempo (computed by hand from the performance, not the window), long performances
    read in pieces included; padding stays zero, the other columns are those of the
    dataset without tempo, and input noise leaves the tempo column alone."""
    rng = np.random.default_rng(8)
    lengths = [40, 3, 130, 9, 60, 2, 75]
    seqs = [np.column_stack([rng.random((n, 2)), rng.uniform(0, 0.3, n)]).astype(np.float32) for n in lengths]
    splits = ["train", "valid", "train", "train", "valid", "train", "train"]
    path = data.write_store(tmp_path / "t.h5", seqs, kind="touch", splits=splits)
    quantiles = (0.5, 1.0, 2.0, 4.0, 9.0)
    codec = formats.RowCodec("touch", 3, tempo_quantiles=quantiles)
    window = 8
    expected = [codec.tempo_column(formats.touch_tempo(rows[:, 2]))
                for rows, split in zip(seqs, splits) if split == "train"
                for _ in range((len(rows) - 2) // window + 1)]
    assert len(set(np.round(expected, 5))) == 5  # every performance has a tempo of its own

    def batches(tempo, noise=0.0):
        ds = data.make_dataset(path, "train", 4, window=window, shuffle=False, targets="offsets",
                               tempo_quantiles=tempo, input_noise=noise, block_rows=32, seed=3)
        return [np.concatenate(part) for part in zip(*_batches(ds))]

    inputs, targets, weights = batches(quantiles)
    plain = batches(None)
    assert inputs.shape[-1] == plain[0].shape[-1] + 1 == 6
    np.testing.assert_array_equal(inputs[..., :-1], plain[0])
    np.testing.assert_array_equal(targets, plain[1])
    real = weights > 0
    np.testing.assert_allclose(inputs[..., -1], np.where(real, np.array(expected)[:, None], 0.0), rtol=1e-6)
    noisy = batches(quantiles, noise=0.1)[0]
    np.testing.assert_array_equal(noisy[..., [0, 1, 2, 5]], inputs[..., [0, 1, 2, 5]])
    assert np.abs(noisy[..., 3:5] - inputs[..., 3:5])[real].min() > 0
    with pytest.raises(ValueError, match="'stroke3' store"):
        strokes = data.write_store(tmp_path / "s.h5", _stroke3([3, 5]), kind="stroke3", splits=["train"] * 2)
        data.make_dataset(strokes, "train", 4, pen="categorical", tempo_quantiles=quantiles)

    # With `beats`, pauses in inputs and targets are in beats of the whole performance's tempo.
    stats = ((0.5, 0.5, 0.1), (0.3, 0.3, 0.05))
    tempos = np.array([formats.touch_tempo(rows[:, 2]) for rows, split in zip(seqs, splits) if split == "train"
                       for _ in range((len(rows) - 2) // window + 1)])[:, None]
    seconds, beats = ([np.concatenate(part) for part in zip(*_batches(data.make_dataset(
        path, "train", 4, window=window, shuffle=False, targets="offsets", tempo_quantiles=quantiles,
        block_rows=32, stats=stats, beats=on)))] for on in (False, True))
    for got, want in zip(beats[:2], seconds[:2]):
        np.testing.assert_array_equal(np.delete(got, 2, -1), np.delete(want, 2, -1))
        dt = want[..., 2] * 0.05 + 0.1
        in_beats = np.where(dt > 0.1, 0.1 + (dt - 0.1) * tempos, dt)
        np.testing.assert_allclose((got[..., 2] * 0.05 + 0.1)[real], in_beats[real], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="stats"):
        data.make_dataset(path, "train", 4, window=window, tempo_quantiles=quantiles, beats=True)
    with pytest.raises(ValueError, match="needs `tempo_quantiles`"):
        data.make_dataset(path, "train", 4, window=window, stats=stats, beats=True)


def test_log_dt_models_get_the_logarithms_statistics_and_rows(tmp_path):
    from mdnrnn import models, train

    seqs = _touch([6, 9, 4])
    path = data.write_store(tmp_path / "t.h5", seqs, kind="touch", splits=["train", "train", "valid"])
    config = train.prepare_config(path, models.preset("touch", dt_scale="log"))
    log_dt = np.log(np.concatenate([seqs[0][:, 2], seqs[1][:, 2]]).astype(np.float64) + 1e-3)
    np.testing.assert_allclose(config.mean[2], log_dt.mean(), rtol=1e-6)
    np.testing.assert_allclose(config.std[2], log_dt.std(), rtol=1e-6)
    with data.open_store(path) as store:
        np.testing.assert_allclose(config.mean[:2], store.mean[:2])  # x and y keep the store's
    model_stats = (config.mean, config.std)
    inputs, _, weights = _batches(data.make_dataset(path, "train", 8, shuffle=False, stats=model_stats,
                                                    dt_scale="log"))[0]
    b = int(np.flatnonzero(weights.sum(axis=1) == 5)[0])  # the 6-row sequence
    expected = (np.log(seqs[0][:-1, 2] + 1e-3) - config.mean[2]) / config.std[2]
    np.testing.assert_allclose(inputs[b, :5, 2], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="statistics the store does not hold"):
        data.make_dataset(path, "train", 8, dt_scale="log")
    # In beats: the logarithm of dt with its part above 0.1 s times each performance's
    # tempo (touches per second).
    beats = train.prepare_config(path, models.preset("touch", dt_scale="log", tempo=True, beats=True))
    dts = [seqs[i][:, 2].astype(np.float64) for i in (0, 1)]
    log_beats = np.log(np.concatenate([np.where(dt > 0.1, 0.1 + (dt - 0.1) * formats.touch_tempo(dt), dt)
                                       for dt in dts]) + 1e-3)
    np.testing.assert_allclose([beats.mean[2], beats.std[2]], [log_beats.mean(), log_beats.std()], rtol=1e-6)
    assert abs(beats.mean[2] - config.mean[2]) > 0.1  # the tempos of these rows are not 1


@pytest.mark.parametrize("shuffle", [True, False])
def test_small_blocks_yield_every_example_once(tmp_path, monkeypatch, shuffle):
    # Tiny slices for the bookkeeping computed slice by slice, too.
    for module in (data.store, data.writer, data.pipeline):
        monkeypatch.setattr(module, "_SCAN_ROWS", 7)
    lengths = np.random.default_rng(3).integers(1, 30, 300)
    seqs = _touch(lengths, seed=4)
    splits = ["train" if i % 3 else "valid" for i in range(300)]
    path = data.write_store(tmp_path / "t.h5", seqs, kind="touch", splits=splits)
    with data.open_store(path) as store:
        mean, std = store.mean, store.std
    expected = _hand_windows([rows for rows, split in zip(seqs, splits) if split == "valid"], 3, 3, mean, std)
    ds = data.make_dataset(path, "valid", 7, window=3, shuffle=shuffle, seed=5,
                           block_rows=50, shuffle_blocks=2)
    batches = _batches(ds)
    assert len(batches) == len(ds) == -(-len(expected) // 7)
    assert [len(b[0]) for b in batches[:-1]] == [7] * (len(batches) - 1)
    np.testing.assert_allclose(_in_order(_as_windows(batches)), _in_order(expected), rtol=1e-5, atol=1e-6)


def test_long_stream_is_read_in_bounded_pieces(tmp_path, monkeypatch):
    seqs = _touch([5000, 40], seed=6)
    path = data.write_store(tmp_path / "t.h5", seqs, kind="touch", splits=["train"] * 2)
    with data.open_store(path) as store:
        mean, std = store.mean, store.std
    window, stride, block_rows = 8, 3, 64
    expected = _hand_windows(seqs, window, stride, mean, std)
    ds = data.make_dataset(path, "train", 16, window=window, stride=stride, seed=2,
                           block_rows=block_rows, shuffle_blocks=2)
    reads = []
    read = h5py.Dataset.__getitem__

    def recording_read(dataset, key):
        out = read(dataset, key)
        if dataset.name == "/sequences/values":
            reads.append(len(out))
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording_read)
    batches = _batches(ds)
    assert max(reads) <= 2 * block_rows + window
    assert sum(reads) >= 5040
    np.testing.assert_allclose(_in_order(_as_windows(batches)), _in_order(expected), rtol=1e-5, atol=1e-6)


def test_drop_remainder(stroke_store):
    ds = data.make_dataset(stroke_store[0], "train", 2, pen="categorical", drop_remainder=True)
    batches = _batches(ds)
    assert len(batches) == len(ds) == 2
    assert all(len(b[0]) == 2 for b in batches)


def test_bad_arguments(stroke_store, tmp_path):
    path = stroke_store[0]
    with pytest.raises(ValueError, match="needs `pen` in"):
        data.make_dataset(path, "train", 2)
    with pytest.raises(ValueError, match="window=8"):
        data.make_dataset(path, "train", 2, pen="categorical", window=8)
    with pytest.raises(ValueError, match="batch_size=0"):
        data.make_dataset(path, "train", 0, pen="categorical")
    with pytest.raises(ValueError, match="split='training'"):
        data.make_dataset(path, "training", 2, pen="categorical")
    touch = data.write_store(tmp_path / "t.h5", _touch([1]), kind="touch", splits=["train"])
    with pytest.raises(ValueError, match="pen='categorical'"):
        data.make_dataset(touch, "train", 2, pen="categorical")
    with pytest.raises(ValueError, match="split 'train' has no examples"):
        data.make_dataset(touch, "train", 2, window=5)
    with pytest.raises(ValueError, match="stride=2"):
        data.make_dataset(touch, "train", 2, stride=2)


def test_missing_or_empty_split_is_a_store_error(stroke_store):
    path = stroke_store[0]
    with pytest.raises(data.StoreError, match="has no test split"):
        data.make_dataset(path, "test", 2, pen="categorical")
    with h5py.File(path, "r+") as f:
        del f["splits/train"]
    with pytest.raises(data.StoreError, match=f"^{path} has no train split"):
        data.make_dataset(path, "train", 2, pen="categorical")


def test_damaged_chunk_stops_the_epoch_with_a_store_error(tmp_path):
    seqs = _touch([1000] * 40)
    path = data.write_store(tmp_path / "t.h5", seqs, kind="touch", splits=["train"] * 40)
    raw = bytearray(path.read_bytes())
    with h5py.File(path, "r") as f:
        chunk = f["sequences/values"].id.get_chunk_info(1)
    raw[chunk.byte_offset + 10] ^= 0x04
    path.write_bytes(raw)
    with data.open_store(path, check_values=False) as store:  # not scanned on opening
        ds = data.make_dataset(store, "train", 8, window=50, shuffle=False)
    with pytest.raises(Exception, match="StoreError.*/sequences/values: cannot be read"):
        _batches(ds)


@pytest.fixture(scope="module")
def kanji_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("kanji") / "short_kanji.h5"
    sketch_npz.convert([datasets.path("short_kanji")], out, progress=False)
    return out


def test_real_kanji_epoch(kanji_store):
    lengths = np.array([len(d) for d in load_npz(datasets.path("short_kanji"))["train"]])
    ds = data.make_dataset(kanji_store, "train", 500, pen="categorical", seed=1)
    assert len(ds) == 20
    steps, n_batches = 0.0, 0
    for inputs, targets, weights in ds:
        n_batches += 1
        w = weights.numpy()
        assert inputs.shape[1] == w.sum(axis=1).max()  # padded to the longest + 1
        np.testing.assert_array_equal(targets.numpy()[:, :, 2].max(axis=1), 2)
        steps += w.sum()
    assert n_batches == 20
    assert steps == (lengths + 1).sum()
