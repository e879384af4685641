"""The Generator: shapes, units, ranges, stop rules, priming, seeds, and its samplers."""

import numpy as np
import pytest
from scipy import stats

import mdnrnn
from mdnrnn import Generator, build_model, mixture_distribution, preset


def model_for(name, seed=0, **overrides):
    import keras

    keras.utils.set_random_seed(seed)
    return build_model(preset(name, units=16, components=3, **overrides))


def set_head_bias(model, pen=None, loc=None, scale=None):
    """Pins the head's outputs by zeroing its kernels and setting its biases."""
    head = model.head
    for dense in (head.logits_dense, head.loc_dense, head.scale_dense, head.pen_dense):
        if dense is not None:
            dense.kernel.assign(np.zeros(dense.kernel.shape, np.float32))
    if pen is not None:
        head.pen_dense.bias.assign(np.asarray(pen, np.float32))
    if loc is not None:
        head.loc_dense.bias.assign(np.asarray(loc, np.float32))
    if scale is not None:
        head.scale_dense.bias.assign(np.asarray(scale, np.float32))


def scale_bias(scale):
    """The scale Dense bias at which the default head (ELU + 1 plus `MIN_SCALE`) emits
    `scale`: inverted by hand, log(s) below 1, s - 1 above."""
    s = np.asarray(scale, np.float64) - mdnrnn.mixture.MIN_SCALE
    return np.where(s < 1.0, np.log(s), s - 1.0)


def test_touch_sequences_have_shape_units_and_ranges():
    config = preset("touch", units=16, components=3, mean=(0.5, 0.5, 0.3), std=(0.3, 0.3, 0.5))
    generator = Generator(build_model(config), seed=0)
    sequences = generator.generate(n=5, max_steps=40)
    assert len(sequences) == 5
    for rows in sequences:
        assert rows.shape == (40, 3) and rows.dtype == np.float32
        assert rows[:, :2].min() >= 0.0 and rows[:, :2].max() <= 1.0
        assert rows[:, 2].min() >= mdnrnn.generate.MIN_DT
    # Normalisation is undone: with dt's std 0.5 the spread of dt is far above a std-1 draw's.
    assert np.concatenate(sequences)[:, 2].mean() > 0.1


def test_stroke3_pen_bits_are_zero_or_one():
    generator = Generator(model_for("stroke3"), seed=1)
    rows = np.concatenate(generator.generate(n=3, max_steps=30))
    assert set(np.unique(rows[:, 2])) <= {0.0, 1.0}
    assert rows.shape[1] == 3


def test_forced_end_of_drawing_stops_at_once():
    model = model_for("kanji")
    set_head_bias(model, pen=[-50.0, -50.0, 50.0])
    sequences = Generator(model, seed=0).generate(n=4, max_steps=100)
    assert [len(s) for s in sequences] == [0, 0, 0, 0]
    never = model_for("kanji")
    set_head_bias(never, pen=[50.0, -50.0, -50.0])
    assert [len(s) for s in Generator(never, seed=0).generate(n=2, max_steps=25)] == [25, 25]
    unstopped = Generator(model, seed=0).generate(n=2, max_steps=7, stop=False)
    assert [len(s) for s in unstopped] == [7, 7]


def test_time_limit_is_never_exceeded_even_with_heavy_tailed_dt():
    """The row that would cross `max_seconds` is shortened to end at it (or dropped)."""
    config = preset("touch", units=16, components=2, mean=(0.5, 0.5, 0.1), std=(0.3, 0.3, 0.5))
    model = build_model(config)
    # dt: a mixture of a short component and a very wide one (scale (6 + 1) * 0.5 s).
    set_head_bias(model, loc=[0.0, 0.0, -0.1, 0.0, 0.0, 2.0], scale=[0.0, 0.0, -3.0, 0.0, 0.0, 6.0])
    generator = Generator(model, seed=3)
    limit = 1.5
    sequences = generator.generate(n=64, max_steps=500, max_seconds=limit)
    dts = [rows[:, 2].astype(np.float64) for rows in sequences]
    assert max(dt.max() for dt in dts) >= limit / 2  # heavy tail: single rows of seconds
    for dt in dts:
        assert len(dt) < 500  # every sequence ended on the time limit
        assert dt.sum() <= limit + 1e-5
        assert dt.sum() >= limit - mdnrnn.generate.MIN_DT - 1e-5  # it ran until the limit
        assert dt.min() >= mdnrnn.generate.MIN_DT - 1e-7
    # Some rows were cut short: their dt is exactly what was left.
    assert sum(abs(dt.sum() - limit) < 1e-5 for dt in dts) > len(dts) // 2
    # Continuing counts the time already spent: nothing is left.
    assert all(len(rows) == 0 for rows in generator.generate(max_steps=5, max_seconds=limit))


def test_same_seed_same_output_and_different_seeds_differ():
    model = model_for("touch")
    first = Generator(model, seed=7).generate(n=3, max_steps=20)
    again = Generator(model, seed=7).generate(n=3, max_steps=20)
    other = Generator(model, seed=8).generate(n=3, max_steps=20)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[0], other[0])
    steps = [Generator(model, seed=7).step() for _ in range(2)]
    np.testing.assert_array_equal(steps[0], steps[1])


def test_priming_changes_the_continuation():
    model = model_for("touch")
    rng = np.random.default_rng(0)
    prefix_a = rng.uniform(0, 1, (10, 3)).astype(np.float32)
    prefix_b = rng.uniform(0, 1, (10, 3)).astype(np.float32)
    generator = Generator(model, seed=5)
    generator.prime([prefix_a])
    after_a = generator.generate(max_steps=10)[0]
    generator = Generator(model, seed=5)
    generator.prime([prefix_b])
    after_b = generator.generate(max_steps=10)[0]
    assert not np.allclose(after_a, after_b)


@pytest.mark.parametrize("name", ["kanji", "touch"])
def test_priming_a_batch_equals_the_model_on_each_prefix(name):
    """Priming unequal prefixes together gives, per prefix, the training model's output
    at its last step, computed independently through Keras on the whole sequence."""
    model = model_for(name)
    config = model.config
    rng = np.random.default_rng(1)
    if name == "kanji":
        prefixes = [
            np.concatenate([rng.normal(size=(n, 2)), rng.integers(0, 2, (n, 1))], 1).astype(np.float32)
            for n in (6, 2, 4)
        ]
    else:
        prefixes = [rng.uniform(0, 1, (n, 3)).astype(np.float32) for n in (6, 2, 4)]
    generator = Generator(model)
    generator.prime(prefixes)
    for i, prefix in enumerate(prefixes):
        if name == "kanji":
            rows = np.zeros((len(prefix) + 1, 5), np.float32)
            rows[0, 2] = 1.0  # start token
            rows[1:, :2] = prefix[:, :2]
            rows[1:, 2] = 1 - prefix[:, 2]
            rows[1:, 3] = prefix[:, 2]
        else:  # normalised (mean 0, std 1 here) x, y, dt, then the change of x and y (0 first)
            rows = np.concatenate([prefix, np.diff(prefix[:, :2], axis=0, prepend=prefix[:1, :2])], 1)
        expected = model(rows[None]).numpy()[0, -1]
        np.testing.assert_allclose(generator.params[i], expected, atol=1e-5)


def test_step_by_step_equals_the_training_model():
    """Each step's params come from feeding the previous samples, as in training."""
    model = model_for("kanji")
    generator = Generator(model, seed=2)
    rows, params = [], []
    for _ in range(6):
        row, p = generator.step(return_params=True)
        rows.append(row[0])
        params.append(p[0])
    rows = np.array(rows)
    inputs = np.zeros((7, 5), np.float32)
    inputs[0, 2] = 1
    inputs[1:, :2] = rows[:, :2]
    inputs[1:, 2] = 1 - rows[:, 2]
    inputs[1:, 3] = rows[:, 2]
    # Only compare up to (and including) an end-of-drawing row, which feeds (0,0,0,0,1).
    expected = model(inputs[None, :6]).numpy()[0]
    ended = [i for i, r in enumerate(rows) if r[0] == 0 and r[1] == 0 and r[2] == 1]
    upto = ended[0] + 1 if ended else 6
    np.testing.assert_allclose(np.array(params)[:upto], expected[:upto], atol=1e-5)


def test_generate_returns_params_that_match_the_model():
    model = model_for("touch")
    generator = Generator(model, seed=4)
    sequences, params = generator.generate(n=2, max_steps=5, return_params=True)
    assert params[0].shape == (5, model.config.spec.params_size)
    inputs = model_inputs(generator.codec, sequences[0][:4], after_start=True)
    np.testing.assert_allclose(params[0], model(inputs[None]).numpy()[0], atol=1e-5)


@pytest.mark.parametrize("path", ["step", "generate"])
def test_fast_paths_sample_the_same_distribution(path):
    """Both samplers against mixture_distribution, with pinned head outputs."""
    model = model_for("stroke3")
    # Components at (-2, 1) and (3, -1) (scales 1: ELU(0) + 1), pen lift p = sigmoid(-1).
    set_head_bias(model, pen=[-1.0], loc=[-2.0, 1.0, 3.0, -1.0, 0.0, 0.0], scale=[0.0] * 6)
    model.head.logits_dense.bias.assign(np.array([0.0, 1.0, -30.0], np.float32))
    generator = Generator(model, seed=11)
    n = 4000
    if path == "step":
        generator.reset(n)
        rows = generator.step()
    else:
        rows = np.concatenate(generator.generate(n=n, max_steps=1))
    params = model.head(np.zeros((1, 16), np.float32)).numpy()
    reference = mixture_distribution(np.repeat(params, n, 0), model.config.spec).sample(seed=(1, 2)).numpy()
    for column in range(2):
        assert stats.ks_2samp(rows[:, column], reference[:, column]).pvalue > 0.001
    assert abs(rows[:, 2].mean() - reference[:, 2].mean()) < 0.04


def test_live_temperature_knob():
    model = model_for("stroke3")
    set_head_bias(model, pen=[0.0], loc=[-2.0, 1.0, 3.0, -1.0, 0.0, 0.0], scale=[0.0] * 6)
    model.head.logits_dense.bias.assign(np.array([0.0, 1.0, -30.0], np.float32))
    generator = Generator(model, seed=0)
    generator.reset(2000)
    warm = generator.step()
    generator.temperature = 1e-3
    generator.reset(2000)
    cold = generator.step()
    assert 0.15 < (warm[:, 0] < 0).mean() < 0.4  # P(component 0) = 1 / (1 + e)
    assert (cold[:, 0] > 0).all()


def test_bad_prefixes_raise():
    generator = Generator(model_for("touch"))
    with pytest.raises(ValueError, match=r"prefixes\[0\]` has shape \(4, 2\)"):
        generator.prime([np.zeros((4, 2))])
    with pytest.raises(ValueError, match=r"prefixes\[1\]` contains NaN"):
        generator.prime([np.zeros((4, 3)), np.full((2, 3), np.nan)])
    with pytest.raises(ValueError, match="max_steps=0"):
        generator.generate(max_steps=0)


# sigma_temperature=None is valid (it follows temperature), so None is bad for temperature only.
@pytest.mark.parametrize("name, value", [
    (name, value) for name in ("temperature", "sigma_temperature")
    for value in (0.0, -1.0, float("nan"), float("inf"), "warm")] + [("temperature", None)])
def test_bad_temperatures_raise_when_made_and_when_set(name, value):
    model = model_for("touch")
    with pytest.raises(ValueError, match=f"`{name}`.*Received: {name}={value!r}"):
        Generator(model, **{name: value})
    generator = Generator(model, seed=0, sigma_temperature=1.0)
    with pytest.raises(ValueError, match=f"`{name}`.*finite number above 0"):
        setattr(generator, name, value)
    assert getattr(generator, name) == 1.0  # the old value is kept
    assert np.isfinite(generator.step()).all()


@pytest.mark.parametrize("path", ["step", "generate"])
def test_generator_made_before_training_samples_the_new_weights(path):
    """Weights are read at reset() and prime(), not copied once when the generator is made."""
    model = model_for("touch", targets="rows")  # inputs are the rows (mean 0, std 1)
    generator = Generator(model, seed=0)
    before = generator.params
    generator.generate(n=1, max_steps=1)  # compiles the loop with the old weights
    rng = np.random.default_rng(0)
    inputs = rng.uniform(0, 1, (8, 12, 3)).astype(np.float32)
    model.fit(inputs[:, :-1], inputs[:, 1:], epochs=3, verbose=0)
    expected = Generator(model).params[0]  # made after training
    assert not np.allclose(before[0], expected, atol=1e-4)
    if path == "step":
        generator.reset(1)
        np.testing.assert_allclose(generator.params[0], expected, atol=1e-5)
    else:
        _, params = generator.generate(n=1, max_steps=1, return_params=True)
        np.testing.assert_allclose(params[0][0], expected, atol=1e-5)
    generator.prime([inputs[0]])
    np.testing.assert_allclose(generator.params[0], model(inputs[:1]).numpy()[0, -1], atol=1e-5)


def test_touch_pipeline_and_generator_encode_rows_alike(tmp_path):
    """Training windows and priming go through the same codec; the first window of a
    performance starts, from a zero state, with its dt = 0 first touch, the situation the
    generator's start row (a first touch at the centre, dt = 0) stands for."""
    from mdnrnn import data, models

    rng = np.random.default_rng(0)
    sequences = [rng.uniform(0, 1, (n, 3)).astype(np.float32) for n in (9, 12)]
    for rows in sequences:
        rows[0, 2] = 0.0
    path = data.write_store(tmp_path / "t.h5", sequences, kind="touch", splits=["train"] * 2)
    with data.open_store(path) as store:
        mean, std = store.mean, store.std
    config = models.preset("touch", units=8, components=2, mean=tuple(mean), std=tuple(std))
    batch = next(iter(data.make_dataset(path, "train", 2, window=8, shuffle=False, targets=config.targets)))
    inputs, targets = (x.numpy() for x in batch[:2])
    generator = Generator(build_model(config))
    np.testing.assert_allclose(inputs[0], generator.codec.encode(sequences[0][:8]), atol=1e-6)
    # By hand: the inputs hold normalised rows then the change of x, y (0 first); the
    # targets, the change of x, y to the next row and its dt.
    normalised = (sequences[0] - mean) / std
    np.testing.assert_allclose(inputs[0, :, :3], normalised[:8], atol=1e-6)
    np.testing.assert_allclose(inputs[0, 1:, 3:], np.diff(normalised[:8, :2], axis=0), atol=1e-6)
    np.testing.assert_allclose(targets[0, :, :2], np.diff(normalised[:9, :2], axis=0), atol=1e-6)
    np.testing.assert_allclose(targets[0, :, 2], normalised[1:9, 2], atol=1e-6)
    assert abs(inputs[0, 0, 2] * std[2] + mean[2]) < 1e-6  # dt = 0 first
    np.testing.assert_allclose(generator.codec.start_row[2], inputs[0, 0, 2], atol=1e-6)
    assert np.abs(generator.codec.start_row).sum() > 0  # never the padding row


def test_step_runs_blas_on_one_thread_at_small_batch_sizes(monkeypatch):
    """Batch-1 mat-vec products split over busy cores stall; step() holds BLAS to one
    thread while it runs and restores the count afterwards."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    generator = Generator(model_for("touch"), seed=0)
    seen = []
    advance = generator._advance
    monkeypatch.setattr(generator, "_advance", lambda rows: (seen.append(blas_threads()), advance(rows))[1])
    generator.step()
    generator.prime([np.full((3, 3), 0.5, np.float32)])
    assert seen and all(threads == [1] * len(before) for threads in seen)
    assert blas_threads() == before
    seen.clear()
    generator.reset(mdnrnn.generate.SINGLE_THREAD_MAX_BATCH + 1)
    assert seen == [before]  # large batches keep every thread


# ------------------------------------------------------- the three paths agree
PEN_PRESETS = {None: "touch", "bernoulli": "stroke3", "categorical": "kanji"}


TEMPO_QUANTILES = (0.3, 0.8, 1.5, 2.5, 6.0)


def random_weights_model(pen, seed, targets="rows", dt_scale="linear", tempo=False):
    """A small model whose every weight and bias is drawn from a normal distribution;
    `tempo`: False, True (conditioned on tempo) or `"beats"` (and pauses in beats of it)."""
    import keras

    keras.utils.set_random_seed(seed)
    stats = dict(mean=(0.5, 0.5, 0.1), std=(0.3, 0.3, 0.08)) if pen is None else dict(std=(3.0, 3.0))
    if dt_scale == "log":  # the dt column's statistics are the logarithm's
        stats = dict(mean=(0.5, 0.5, -3.5), std=(0.3, 0.3, 1.1), dt_scale="log")
    if tempo:
        stats.update(tempo=True, beats=tempo == "beats", tempo_quantiles=TEMPO_QUANTILES)
    model = build_model(preset(PEN_PRESETS[pen], units=12, layers=2, components=3, targets=targets, **stats))
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0.0, 0.5, variable.shape).astype(np.float32))
    return model


def model_inputs(codec, rows, after_start, tempo=None):
    """What the training pipeline would feed for these data rows: the encoded rows, after
    the start row where training has one; "end of drawing" rows feed the stroke-5 end row.
    A tempo-conditioned codec gets `tempo` (touches per second) on every row."""
    if codec.pen is None and after_start:  # the start row stands for a first event at the centre
        first_event = np.where(np.arange(codec.dim) == codec.dt_index, 0.0, mdnrnn.formats.START_VALUE)
        return codec.encode(np.concatenate([first_event[None], rows]), tempo)
    encoded = codec.encode(rows, tempo)
    if codec.pen == "categorical":
        ended = (rows[:, 0] == 0) & (rows[:, 1] == 0) & (rows[:, 2] == 1)
        encoded[ended] = mdnrnn.formats.STROKE5_END
    return np.concatenate([codec.start_rows(1), encoded]) if after_start else encoded


@pytest.mark.parametrize("sigma_temperature", [1.0, 0.5])
@pytest.mark.parametrize("pen, targets, dt_scale, tempo", [
    (None, "rows", "linear", False), (None, "offsets", "linear", False), (None, "offsets", "log", False),
    (None, "offsets", "linear", True), (None, "offsets", "log", "beats"), ("bernoulli", "rows", "linear", False),
    ("categorical", "rows", "linear", False),
])
def test_numpy_step_compiled_loop_and_training_model_agree(pen, targets, dt_scale, tempo, sigma_temperature):
    """Parameters from `step()`, from `generate(return_params=True)` and from `MixtureRNN`
    fed the same rows agree to 1e-4 at every step, from scratch and after `prime()`. A
    tempo-conditioned model is fed a set tempo from scratch, and each prefix's own after
    `prime()`, on every row (with `beats`, pauses in beats of it)."""
    model = random_weights_model(pen, seed=len(str(pen)), targets=targets, dt_scale=dt_scale, tempo=tempo)
    rng = np.random.default_rng(0)
    steps = 12
    if pen is None:
        prefixes = [rng.uniform(0, 1, (n, 3)).astype(np.float32) for n in (5, 2, 7)]
    else:
        prefixes = [
            np.column_stack([rng.normal(0, 3, (n, 2)), rng.integers(0, 2, n)]).astype(np.float32) for n in (5, 2, 7)
        ]
    for primed in (False, True):
        for path in ("step", "generate"):
            generator = Generator(model, temperature=0.8, sigma_temperature=sigma_temperature, seed=5,
                                  tempo=None if primed or not tempo else 2.0)
            codec = generator.codec
            if primed:
                generator.prime(prefixes)
            else:
                generator.reset(3)
            if path == "step":
                rows, params = zip(*(generator.step(return_params=True) for _ in range(steps)))
                rows, params = np.stack(rows, 1), np.stack(params, 1)  # [B, steps, ...]
                sequences, params = list(rows), list(params)
            else:  # stop=False: drawings go on after "end of drawing", as step() does
                sequences, params = generator.generate(max_steps=steps, stop=False, return_params=True)
            assert [len(s) for s in sequences] == [steps] * 3
            for i, (seq, got) in enumerate(zip(sequences, params)):
                after_start = not primed or pen is not None
                before = [prefixes[i]] if primed else []
                sequence_tempo = None
                if tempo:
                    sequence_tempo = mdnrnn.formats.touch_tempo(prefixes[i][:, 2]) if primed else 2.0
                inputs = model_inputs(codec, np.concatenate(before + [seq[:-1]]), after_start, sequence_tempo)
                expected = model(inputs[None]).numpy()[0, -len(seq) :]
                np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=f"{path}, primed={primed}, sequence {i}")
            assert np.abs(np.concatenate(params)).max() > 0.5  # real, non-degenerate parameters


@pytest.mark.parametrize("sigma_temperature", [1.0, 0.4])
@pytest.mark.parametrize("pen", [None, "bernoulli", "categorical"])
def test_numpy_sampler_matches_mixture_distribution(pen, sigma_temperature):
    """The NumPy sampler draws from `mixture_distribution(params, spec, temperature,
    sigma_temperature)`. Continuous columns: a one-sample KS test against the exact
    marginal CDF and a two-sample KS test against the distribution's own samples; pen:
    a chi-square test against its exact probabilities. Every test must give p > 0.001
    (fixed seeds, so the outcome is fixed). Checked by hand: a sampler that ignores either
    temperature fails here, with p < 1e-6 on at least one column for every pen kind."""
    from mdnrnn._tf import tf
    from mdnrnn.mixture import split_params

    model = random_weights_model(pen, seed=3)
    spec = model.config.spec
    temperature = 0.7
    generator = Generator(model, temperature=temperature, sigma_temperature=sigma_temperature, seed=9)
    params = np.random.default_rng(1).normal(0, 1.0, (1, spec.params_size)).astype(np.float32)
    k, d = spec.components, spec.dim
    params[0, k + k * d : k + 2 * k * d] = np.abs(params[0, k + k * d : k + 2 * k * d]) + 0.2  # scales
    params[0, :k] *= 3.0  # mixture weights far apart, so that the temperature shows
    n = 6000
    batch = np.repeat(params, n, 0)
    values, pen_draws = generator._sample_numpy(batch)
    dist = mixture_distribution(batch, spec, temperature, sigma_temperature)
    reference = dist.sample(seed=(3, 4)).numpy()
    logits, loc, scale, pen_logits = (None if x is None else x.numpy()[0] for x in split_params(params, spec))
    weights = np.exp(logits / temperature - np.logaddexp.reduce(logits / temperature))
    for column in range(d):
        def cdf(x, column=column):
            z = (np.asarray(x)[:, None] - loc[:, column]) / (scale[:, column] * np.sqrt(sigma_temperature))
            return stats.norm.cdf(z) @ weights

        assert stats.kstest(values[:, column], cdf).pvalue > 0.001
        assert stats.ks_2samp(values[:, column], reference[:, column]).pvalue > 0.001
    if pen is None:
        assert pen_draws is None
        return
    if pen == "bernoulli":
        p_lift = 1 / (1 + np.exp(-pen_logits[0] / temperature))
        probabilities = np.array([1 - p_lift, p_lift])
    else:
        probabilities = np.exp(pen_logits / temperature - np.logaddexp.reduce(pen_logits / temperature))
    classes = len(probabilities)
    counts = np.bincount(pen_draws.astype(int), minlength=classes)
    assert stats.chisquare(counts, probabilities * n).pvalue > 0.001
    reference_counts = np.bincount(reference[:, d].astype(int), minlength=classes)
    assert stats.chisquare(reference_counts, probabilities * n).pvalue > 0.001  # the reference itself
    log_prob = dist.log_prob(tf.constant(np.column_stack([values, pen_draws]).astype(np.float32)))
    assert np.isfinite(log_prob.numpy()).all()


def test_priming_skips_what_the_training_model_masks():
    """A real stroke-3 row (0, 0, 0) encodes to the all-zero padding row, which the
    training model's Masking layer skips; priming skips it too, so both agree."""
    model = random_weights_model("bernoulli", seed=2)
    prefix = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [3.0, -1.0, 1.0], [0.0, 0.0, 0.0]], np.float32)
    generator = Generator(model)
    generator.prime([prefix, prefix[:2]])
    inputs = np.concatenate([generator.codec.start_rows(1), generator.codec.encode(prefix)])
    assert not inputs[2].any() and not inputs[4].any()  # the two masked rows
    np.testing.assert_allclose(generator.params[0], model(inputs[None]).numpy()[0, -1], atol=1e-5)
    np.testing.assert_allclose(generator.params[1], model(inputs[None, :3]).numpy()[0, -1], atol=1e-5)


@pytest.mark.parametrize("targets", ["rows", "offsets"])
@pytest.mark.parametrize("path", ["step", "generate"])
def test_touch_samples_are_truncated_to_the_screen_not_clipped(path, targets):
    """A head pinned to x ~ N(0.85, 0.2) (absolute, or as a change from x = 0.5 fed back)
    puts about 23% of its mass beyond the screen's edge. Both paths draw those again, so
    no point lands on the edge and x follows the truncated normal (one-sample KS test
    against SciPy's `truncnorm`, p > 0.001 with fixed seeds)."""
    mean, std = np.array([0.4, 0.45, 0.05]), np.array([0.3, 0.3, 0.1])
    model = build_model(preset("touch", units=8, components=1, mean=tuple(mean), std=tuple(std), targets=targets))
    x_loc = 0.85 if targets == "rows" else 0.35  # a change from x = 0.5
    loc = [(x_loc - mean[0] * (targets == "rows")) / std[0], (0.5 - mean[1]) * (targets == "rows") / std[1],
           (0.05 - mean[2]) / std[2]]
    # The biases that give a data-unit spread of 0.2 for x.
    scale = np.array([0.2 / std[0], 0.1 / std[1], 0.01 / std[2]])
    set_head_bias(model, loc=loc, scale=scale_bias(scale))
    generator = Generator(model, seed=4)
    x = []
    for _ in range(40):
        if targets == "offsets":  # every step starts from x = 0.5 again
            generator.prime([np.array([[0.5, 0.5, 0.05]], np.float32)] * 100)
        else:
            generator.reset(100)
        rows = generator.step() if path == "step" else np.stack([s[0] for s in generator.generate(max_steps=1)])
        x.append(rows[:, 0])
    x = np.concatenate(x)
    assert (x > 0).all() and (x < 1).all()
    truncated = stats.truncnorm((0 - 0.85) / 0.2, (1 - 0.85) / 0.2, loc=0.85, scale=0.2)
    assert stats.kstest(x, truncated.cdf).pvalue > 0.001
    assert stats.kstest(x, stats.norm(0.85, 0.2).cdf).pvalue < 1e-6  # the untruncated one is told apart


@pytest.mark.parametrize("path", ["step", "generate"])
def test_truncation_keeps_each_components_probability(path):
    """Two equally likely components: a narrow one inside the screen (dt 0.02 s) and a
    broad one with about 42% of its mass beyond the edge (dt 0.5 s). The component is
    drawn first and only its values again, so about half the rows still come from the
    broad one (a redraw from the whole mixture would give 0.58 / 1.58 = 37%)."""
    mean, std = np.array([0.4, 0.45, 0.05]), np.array([0.3, 0.3, 0.1])
    model = build_model(preset("touch", units=8, components=2, mean=tuple(mean), std=tuple(std), targets="rows"))
    data_loc = np.array([[0.5, 0.5, 0.02], [0.9, 0.5, 0.5]])
    data_scale = np.array([[0.01, 0.01, 0.001], [0.5, 0.01, 0.01]])
    set_head_bias(model, loc=((data_loc - mean) / std).ravel(), scale=scale_bias((data_scale / std).ravel()))
    generator = Generator(model, seed=6)
    generator.reset(2000)
    rows = generator.step() if path == "step" else np.stack([s[0] for s in generator.generate(max_steps=1)])
    assert (rows[:, :2] > 0).all() and (rows[:, :2] < 1).all()
    broad = (rows[:, 2] > 0.25).mean()
    assert abs(broad - 0.5) < 0.045, broad  # 4 standard errors


def test_tempo_is_drawn_per_sequence_unless_set():
    """From scratch, a tempo-conditioned generator draws each sequence's tempo from the
    training quantiles (sequences start with different parameters, and the training
    model fed the drawn tempo gives them); a set tempo starts every sequence alike; an
    unconditioned model refuses one."""
    model = random_weights_model(None, seed=2, targets="offsets", tempo=True)
    generator = Generator(model, seed=0)
    generator.reset(4)
    drawn = Generator(model, seed=0)._rng  # the same draws, replayed after its own reset(1)
    tempos = generator.codec.draw_tempo(drawn, 4)
    assert TEMPO_QUANTILES[0] <= tempos.min() and tempos.max() <= TEMPO_QUANTILES[-1] and np.ptp(tempos) > 0.1
    expected = model(generator.codec.start_rows(4, tempos)[:, None]).numpy()[:, 0]
    np.testing.assert_allclose(generator.params, expected, atol=1e-4)
    generator.tempo = 3.0
    generator.reset(4)
    assert np.ptp(generator.params, axis=0).max() == 0
    with pytest.raises(ValueError, match="not conditioned on tempo"):
        Generator(random_weights_model(None, seed=2, targets="offsets"), tempo=2.0)
    with pytest.raises(ValueError, match="tempo"):
        generator.tempo = -1.0
