"""ModelConfig, presets, the training and step models, save and load."""

import json
import zipfile

import keras
import numpy as np
import pytest

import mdnrnn
import mdnrnn.data
from mdnrnn import MixtureRNN, MixtureSpec, ModelConfig, build_model, build_step_model, preset


def stroke5_batch(rng, batch=3, steps=6):
    """Random stroke-5 inputs and (dx, dy, class) targets; sequence 1 is padded after step 3."""
    x = np.zeros((batch, steps, 5), np.float32)
    x[..., :2] = rng.normal(size=(batch, steps, 2))
    x[np.arange(batch)[:, None], np.arange(steps)[None, :], 2 + rng.integers(0, 2, (batch, steps))] = 1
    y = np.concatenate([rng.normal(size=(batch, steps, 2)), rng.integers(0, 3, (batch, steps, 1))], -1)
    x[1, 3:] = 0.0
    return x, y.astype(np.float32)


def test_presets_cover_the_data_kinds():
    assert {"kanji", "sketch", "touch", "impsy"} <= set(mdnrnn.PRESETS)
    kanji, sketch = preset("kanji"), preset("sketch")
    assert kanji.spec.pen == sketch.spec.pen == "categorical"
    assert kanji.input_size == 5 and kanji.data_kind == "stroke3"
    assert sketch.units * sketch.layers > kanji.units * kanji.layers
    touch = preset("touch")
    # x, y, dt and the change of x and y since the previous touch (offset targets)
    assert (touch.spec.dim, touch.spec.pen, touch.targets, touch.input_size) == (3, None, "offsets", 5)
    assert touch.replace(targets="rows").input_size == 3
    impsy = preset("impsy", dim=9)
    assert impsy.spec.dim == 9 and impsy.preset == "impsy"
    assert preset("stroke3").spec.pen == "bernoulli" and preset("stroke3").input_size == 3


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="Unknown preset 'kanjj'.*kanji"):
        preset("kanjj")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"units": 0}, "units=0"),
        ({"dropout": 1.5}, "dropout=1.5"),
        ({"data_kind": "video"}, "data_kind='video'"),
        ({"pen": None}, "needs a spec with dim=2 and a pen"),
        ({"mean": (0.0,)}, "mean=\\(0.0,\\)"),
        ({"std": (1.0, 0.0)}, "std"),
        ({"tempo": True}, "tempo=True"),  # touch models only
        ({"tempo_quantiles": (1.0, 2.0)}, "set `tempo=True`"),
        ({"beats": True}, "beats=True"),  # beats of a tempo: tempo models only
    ],
)
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        preset("kanji").replace(**changes)


def test_config_dict_round_trip():
    config = preset("touch", units=32, mean=(0.5, 0.5, 0.1), std=(0.2, 0.3, 0.05))
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    tempo = config.replace(tempo=True, tempo_quantiles=(0.5, 1.5, 4.0))
    assert ModelConfig.from_dict(json.loads(json.dumps(tempo.to_dict()))) == tempo
    beats = tempo.replace(beats=True)
    assert ModelConfig.from_dict(json.loads(json.dumps(beats.to_dict()))) == beats and beats.codec().beats
    assert tempo.input_size == config.input_size + 1 == tempo.codec().input_size
    with pytest.raises(ValueError, match="no `tempo_quantiles` yet"):
        config.replace(tempo=True).codec()
    for bad in ((3.0, 1.0), 2.0):
        with pytest.raises(ValueError, match="tempo_quantiles"):
            config.replace(tempo=True, tempo_quantiles=bad)
    mean, std = config.normalisation
    np.testing.assert_allclose(std, [0.2, 0.3, 0.05])


def test_training_model_shapes_and_variable_time():
    model = build_model(preset("kanji", units=16, layers=2, components=3, cell="lstm"))
    params_size = MixtureSpec(2, 3, "categorical").params_size
    assert model(np.zeros((2, 7, 5), np.float32)).shape == (2, 7, params_size)
    assert model(np.zeros((5, 40, 5), np.float32)).shape == (5, 40, params_size)
    # Two Keras LSTMs (kernel, recurrent kernel, bias) and a head with four dense layers.
    assert len(model.weights) == 2 * 3 + 4 * 2


def test_padding_does_not_change_predictions_or_loss():
    rng = np.random.default_rng(0)
    model = build_model(preset("kanji", units=16, components=3))
    x, y = stroke5_batch(rng)
    loss = model.evaluate(x, y, verbose=0)
    x_long = np.concatenate([x, np.zeros((3, 4, 5), np.float32)], 1)
    y_long = np.concatenate([y, np.full((3, 4, 3), 2.0, np.float32)], 1)
    y_long[..., :2] = np.where(np.arange(10)[None, :, None] >= 6, 1e3, y_long[..., :2])
    np.testing.assert_allclose(model.evaluate(x_long, y_long, verbose=0), loss, rtol=1e-5)
    np.testing.assert_allclose(model(x_long)[:, :6], model(x), atol=1e-5)


def test_loss_equals_mean_nll_over_real_steps():
    rng = np.random.default_rng(1)
    config = preset("kanji", units=8, components=2)
    model = build_model(config)
    x, y = stroke5_batch(rng)
    params = model(x).numpy()
    log_prob = mdnrnn.mixture_distribution(params, config.spec).log_prob(y).numpy()
    real = np.ones((3, 6), bool)
    real[1, 3:] = False
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), -log_prob[real].mean(), rtol=1e-5)


def test_step_model_matches_training_model_and_shares_weights():
    rng = np.random.default_rng(2)
    model = build_model(preset("kanji", units=16, layers=3, components=3))
    step = build_step_model(model)
    x, y = stroke5_batch(rng, batch=4, steps=5)
    x[1] = x[0]  # no padding here: the step model has no mask

    def run_steps():
        states = step.initial_states(4)
        outputs = []
        for t in range(5):
            params, *states = step([x[:, t]] + states)
            outputs.append(params)
        return np.stack(outputs, 1)

    np.testing.assert_allclose(run_steps(), model(x).numpy(), atol=1e-5)
    model.fit(x, y, epochs=1, verbose=0)  # training changes the step model as well
    np.testing.assert_allclose(run_steps(), model(x).numpy(), atol=1e-5)
    assert len(step.weights) == len(model.weights)


def test_one_fit_step_lowers_the_loss():
    rng = np.random.default_rng(3)
    model = build_model(preset("kanji", units=16, components=3), learning_rate=1e-2)
    x, y = stroke5_batch(rng)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=3, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
@pytest.mark.parametrize("name", ["kanji", "stroke3", "touch", "touch-tempo"])
def test_save_load_same_outputs_config_and_nll(tmp_path, name, covariance):
    rng = np.random.default_rng(4)
    config = preset(name.split("-")[0], units=16, components=3, covariance=covariance)
    if name.startswith("touch"):
        config = config.replace(mean=(0.5, 0.5, 0.05), std=(0.3, 0.3, 0.1))
        if name == "touch-tempo":
            config = config.replace(tempo=True, tempo_quantiles=(0.4, 1.2, 3.0))
        x = rng.normal(size=(2, 6, config.input_size)).astype(np.float32)
        y = rng.normal(size=(2, 6, 3)).astype(np.float32)
    elif name == "stroke3":
        x = np.concatenate([rng.normal(size=(2, 6, 2)), rng.integers(0, 2, (2, 6, 1))], -1).astype(np.float32)
        y = np.roll(x, -1, axis=1)
    else:
        x, y = stroke5_batch(rng, batch=2)
    model = build_model(config)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    plain = keras.models.load_model(path)  # no custom_objects needed
    assert isinstance(plain, MixtureRNN) and plain.config == config
    np.testing.assert_array_equal(plain(x).numpy(), model(x).numpy())
    loaded = mdnrnn.load_model(path)
    assert loaded.config == config
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)
    assert loaded.optimizer.iterations.numpy() == model.optimizer.iterations.numpy() == 1


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        mdnrnn.load_model(tmp_path / "missing.keras")
    text = tmp_path / "notes.keras"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a .keras model file"):
        mdnrnn.load_model(text)
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    other.save(tmp_path / "other.keras")
    with pytest.raises(ValueError, match="holds a Sequential, not an mdnrnn model"):
        mdnrnn.load_model(tmp_path / "other.keras")
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("config.json", "{not json")
    with pytest.raises(ValueError, match="could not be loaded"):
        mdnrnn.load_model(broken)


# ------------------------------------------------- full covariance generation
FULL_PRESETS = {None: "touch", "categorical": "kanji"}


def random_full_model(pen, seed, **overrides):
    """A small full-covariance model whose every weight is drawn from N(0, 0.5^2)."""
    keras.utils.set_random_seed(seed)
    stats = dict(mean=(0.5, 0.5, 0.1), std=(0.3, 0.3, 0.08)) if pen is None else dict(std=(3.0, 3.0))
    model = build_model(preset(FULL_PRESETS[pen], units=12, layers=2, components=3, covariance="full", **stats,
                               **overrides))
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0.0, 0.5, variable.shape).astype(np.float32))
    return model


def test_new_full_covariance_model_starts_as_the_diagonal_one():
    """Same seed, same weights: the full head adds zero-initialised correlations and nothing
    else, so before training it gives every row the density of the diagonal model, here
    computed by SciPy from the diagonal model's parameters (independent normals per component
    and the pen's softmax)."""
    from scipy import special, stats

    x, y = stroke5_batch(np.random.default_rng(0), batch=2)
    params = {}
    for covariance in ("diagonal", "full"):
        keras.utils.set_random_seed(7)
        config = preset("kanji", units=16, components=3, covariance=covariance)
        params[covariance] = build_model(config).predict(x, verbose=0)
        assert np.abs(params[covariance]).max() > 0.1  # a random, not a blank, head
    k, d = 3, 2
    full_spec = preset("kanji", components=3, covariance="full").spec
    got = mdnrnn.mixture.mixture_distribution(params["full"], full_spec).log_prob(y).numpy()
    for b, t in np.ndindex(*y.shape[:2]):
        p = params["diagonal"][b, t]
        logits, loc, scale, pen = np.split(p, [k, k + k * d, k + 2 * k * d])
        loc, scale = loc.reshape(k, d), scale.reshape(k, d)
        continuous = special.logsumexp(
            [special.log_softmax(logits)[j] + stats.norm.logpdf(y[b, t, :d], loc[j], scale[j]).sum()
             for j in range(k)])
        expected = continuous + special.log_softmax(pen)[int(y[b, t, d])]
        assert got[b, t] == pytest.approx(expected, abs=1e-4), (b, t)


def training_inputs(codec, rows, after_start):
    """The training model's inputs for these data rows (stroke-5 "end" rows feed the end row;
    a touch start row stands for a first event at the centre)."""
    if codec.pen is None and after_start:
        first_event = np.where(np.arange(codec.dim) == codec.dt_index, 0.0, mdnrnn.formats.START_VALUE)
        return codec.encode(np.concatenate([first_event[None], rows]))
    encoded = codec.encode(rows)
    if codec.pen == "categorical":
        ended = (rows[:, 0] == 0) & (rows[:, 1] == 0) & (rows[:, 2] == 1)
        encoded[ended] = mdnrnn.formats.STROKE5_END
    return np.concatenate([codec.start_rows(1), encoded]) if after_start else encoded


@pytest.mark.parametrize("pen, scale_activation", [(None, "softplus"), ("categorical", "softplus"),
                                                    (None, "elu"), ("categorical", "elu")])
def test_full_covariance_numpy_step_compiled_loop_and_training_model_agree(pen, scale_activation):
    """With full covariance, the parameters `step()` and `generate()` sample from equal
    the training model's on the rows they produced, to 1e-4 at every step (with either
    scale activation: the NumPy step computes it by hand)."""
    from mdnrnn import Generator

    model = random_full_model(pen, seed=2, scale_activation=scale_activation)
    steps = 10
    for path in ("step", "generate"):
        generator = Generator(model, temperature=0.8, seed=5)
        generator.reset(3)
        if path == "step":
            rows, params = zip(*(generator.step(return_params=True) for _ in range(steps)))
            sequences, params = list(np.stack(rows, 1)), list(np.stack(params, 1))
        else:
            sequences, params = generator.generate(max_steps=steps, stop=False, return_params=True)
        for i, (seq, got) in enumerate(zip(sequences, params)):
            inputs = training_inputs(generator.codec, seq[:-1], after_start=True)
            expected = model(inputs[None]).numpy()[0, -len(seq):]
            np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=f"{path}, sequence {i}")
        spec = model.config.spec
        k, d = spec.components, spec.dim
        correlation = np.concatenate(params)[:, k + 2 * k * d : k + 2 * k * d + k * spec.correlation_size]
        assert np.abs(correlation).max() > 0.5  # real correlations were sampled from


@pytest.mark.parametrize("sigma_temperature", [1.0, 0.4])
def test_full_covariance_numpy_sampler_matches_mixture_distribution(sigma_temperature):
    """The NumPy sampler's draws for one full-covariance params row have the covariance of
    `mixture_distribution`'s own draws (one component, so the mixture is one normal):
    entries within 0.05 relative to sqrt(var_i var_j) with 20,000 draws (10 standard errors)."""
    from mdnrnn import Generator, mixture_distribution

    model = random_full_model(None, seed=3)
    spec = model.config.spec
    generator = Generator(model, temperature=1.0, sigma_temperature=sigma_temperature, seed=9)
    params = np.random.default_rng(1).normal(0, 1.0, (1, spec.params_size)).astype(np.float32)
    k, d = spec.components, spec.dim
    params[0, :k] = [20.0, 0.0, 0.0]  # component 0 only
    params[0, k + k * d : k + 2 * k * d] = np.abs(params[0, k + k * d : k + 2 * k * d]) + 0.2
    params[0, k + 2 * k * d : k + 2 * k * d + 3] = [1.5, -2.0, 0.8]
    batch = np.repeat(params, 20_000, 0)
    values, _ = generator._sample_numpy(batch)
    reference = mixture_distribution(batch, spec, 1.0, sigma_temperature).sample(seed=(3, 4)).numpy()
    std = reference.std(0)
    np.testing.assert_allclose((values.mean(0) - reference.mean(0)) / std, 0, atol=0.05)
    np.testing.assert_allclose(np.cov(values.T) / np.outer(std, std), np.cov(reference.T) / np.outer(std, std), atol=0.05)


# ------------------------------------------------ Generator's temperature knobs
def test_generator_sigma_temperature_follows_temperature_unless_set():
    from mdnrnn import Generator

    model = random_full_model(None, seed=1)
    generator = Generator(model, temperature=0.5)
    assert generator.sigma_temperature is None and generator.variance_scale == 0.5
    generator.temperature = 0.3
    assert generator.variance_scale == 0.3  # the live knob moves both
    generator.sigma_temperature = 2.0
    assert generator.variance_scale == 2.0
    generator.sigma_temperature = None
    assert generator.variance_scale == 0.3


@pytest.mark.parametrize("path", ["step", "generate"])
def test_generator_temperature_to_zero_samples_the_most_likely_mean(path):
    """In both generation paths, temperature -> 0 alone gives the most likely component's
    mean (the spread goes with it); with sigma_temperature=1.0 the spread stays."""
    from mdnrnn import Generator
    from mdnrnn.mixture import split_params

    model = random_full_model(None, seed=4, targets="rows")  # samples are the rows' model values
    spec = model.config.spec

    def first_draws(generator):
        generator.reset(64)
        params = generator.params
        if path == "step":
            rows = generator.step()
        else:
            rows = np.stack([s[0] for s in generator.generate(max_steps=1)])
        logits, loc = (x.numpy() for x in split_params(params, spec)[:2])
        mean = loc[np.arange(len(loc)), logits.argmax(-1)]  # [B, D], model space
        # The codec clips touches to the screen and dt to MIN_DT; compare the rest.
        inside = (rows[:, :2] > 0) & (rows[:, :2] < 1)
        inside = np.column_stack([inside, rows[:, 2] > mdnrnn.formats.MIN_DT])
        return generator.codec.encode(rows)[inside], mean[inside]

    model.head.loc_dense.bias.assign(np.zeros_like(model.head.loc_dense.bias))  # means near the centre
    rows, mean = first_draws(Generator(model, temperature=1e-6, seed=0))
    assert len(rows) > 64
    np.testing.assert_allclose(rows, mean, atol=1e-2)
    rows, mean = first_draws(Generator(model, temperature=1e-6, sigma_temperature=1.0, seed=0))
    assert np.abs(rows - mean).max() > 0.1


# ------------------------------------------------------------ optimizer settings
def test_optimizer_config_checks_and_sketch_rnn_decay():
    from mdnrnn.models import DecayToFloor, OptimizerConfig

    with pytest.raises(ValueError, match="clipnorm=-1"):
        OptimizerConfig(clipnorm=-1)
    with pytest.raises(ValueError, match="decay_rate=0"):
        OptimizerConfig(decay_rate=0)
    with pytest.raises(ValueError, match="min_learning_rate=0.1"):
        OptimizerConfig(learning_rate=0.01, min_learning_rate=0.1)
    schedule = DecayToFloor(1e-3, 0.9999, 1e-5)
    # Hand-computed: (1e-3 - 1e-5) * 0.9999**s + 1e-5.
    for step, expected in [(0, 1e-3), (10_000, 0.00099 * 0.36786104643 + 1e-5), (10**7, 1e-5)]:
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5)
    assert DecayToFloor.from_config(schedule.get_config()).get_config() == schedule.get_config()
    optimizer = OptimizerConfig(clipnorm=0).make()
    assert optimizer.clipnorm is None and float(optimizer.learning_rate) == pytest.approx(1e-3)


def test_decay_schedule_and_clipnorm_are_saved_with_the_model(tmp_path):
    from mdnrnn.models import OptimizerConfig

    rng = np.random.default_rng(0)
    x, y = stroke5_batch(rng, batch=2)
    model = build_model(preset("kanji", units=8, components=2),
                        optimizer=OptimizerConfig(learning_rate=2e-3, clipnorm=0.5, decay_rate=0.99))
    model.fit(x, y, epochs=3, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = mdnrnn.load_model(tmp_path / "m.keras")
    assert loaded.optimizer.clipnorm == 0.5
    expected = (2e-3 - 1e-5) * 0.99**3 + 1e-5
    assert float(loaded.optimizer.learning_rate) == pytest.approx(expected, rel=1e-5)


def tiny_drawing_store(path, n=24, seed=0):
    """A stroke-3 store of `n` random drawings of 4..12 points, 16 train, 4 valid, 4 test."""
    rng = np.random.default_rng(seed)
    sequences = []
    for i in range(n):
        length = 4 + i % 9
        rows = np.column_stack([rng.normal(0, 5, (length, 2)), np.zeros(length)])
        rows[length // 2 - 1, 2] = rows[-1, 2] = 1
        sequences.append(rows.astype(np.float32))
    splits = ["train"] * 16 + ["valid"] * 4 + ["test"] * 4
    mdnrnn.data.write_store(path, sequences, kind="stroke3", splits=splits)
    return sequences, splits


def test_train_saves_resolved_optimizer_settings(tmp_path):
    from mdnrnn import train

    tiny_drawing_store(tmp_path / "s.h5")
    settings = train.TrainSettings(epochs=1, batch_size=8, clipnorm=0.5, lr_decay=0.999)
    model = train.train(tmp_path / "s.h5", preset("kanji", units=8, layers=1, components=2),
                        tmp_path / "run", settings, verbose=0)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert saved["learning_rate"] == 1e-3 and saved["clipnorm"] == 0.5  # preset's rate, given clipnorm
    assert saved["lr_decay"] == 0.999 and saved["min_learning_rate"] == 1e-5
    assert model.optimizer.clipnorm == 0.5
    steps = int(model.optimizer.iterations.numpy())
    assert float(model.optimizer.learning_rate) == pytest.approx((1e-3 - 1e-5) * 0.999**steps + 1e-5, rel=1e-5)


# ------------------------------------------------------------------- min_steps
def eager_to_end_model(min_steps):
    """A kanji model whose pen head always prefers "end of drawing" (logits -5, -5, 5)."""
    keras.utils.set_random_seed(0)
    model = build_model(preset("kanji", units=8, layers=1, components=2, std=(3.0, 3.0), min_steps=min_steps))
    pen = model.head.pen_dense
    pen.kernel.assign(np.zeros(pen.kernel.shape, np.float32))
    pen.bias.assign(np.array([-5.0, -5.0, 5.0], np.float32))
    return model


def is_end_row(rows):
    return (rows[:, 0] == 0) & (rows[:, 1] == 0) & (rows[:, 2] == 1)


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
def test_min_steps_holds_back_end_of_drawing_in_both_paths(covariance):
    from mdnrnn import Generator

    model = eager_to_end_model(min_steps=7)
    if covariance == "full":
        model = build_model(model.config.replace(covariance="full"))
        model.head.pen_dense.kernel.assign(np.zeros(model.head.pen_dense.kernel.shape, np.float32))
        model.head.pen_dense.bias.assign(np.array([-5.0, -5.0, 5.0], np.float32))
    # generate(): every drawing has exactly min_steps points, then ends.
    drawings = Generator(model, seed=1).generate(n=20, max_steps=50)
    assert [len(d) for d in drawings] == [7] * 20 and not is_end_row(np.concatenate(drawings)).any()
    # Off: the model as trained ends at once.
    assert {len(d) for d in Generator(model, seed=1, min_steps=0).generate(n=20, max_steps=50)} == {0}
    # step(): no end row before min_steps points, the end at the next one.
    generator = Generator(model, seed=2)
    generator.reset(20)
    ends = np.stack([is_end_row(generator.step()) for _ in range(8)], 1)  # [B, 8]
    assert not ends[:, :7].any() and ends[:, 7].mean() > 0.9
    # A prefix counts: 3 points drawn, 4 more before it may end.
    prefix = np.array([[1, 2, 0], [3, 0, 1], [0, 2, 0]], np.float32)
    generator.prime([prefix, prefix])
    assert [len(d) for d in generator.generate(max_steps=50)] == [4, 4]
    with pytest.raises(ValueError, match="min_steps=-1"):
        Generator(model, min_steps=-1)


def test_training_stores_the_shortest_drawing_as_min_steps(tmp_path):
    from mdnrnn import train

    sequences, splits = tiny_drawing_store(tmp_path / "s.h5")
    shortest = min(len(s) for s, split in zip(sequences, splits) if split == "train")
    config = train.prepare_config(tmp_path / "s.h5", preset("kanji"))
    assert config.min_steps == shortest == 4
    assert train.prepare_config(tmp_path / "s.h5", preset("stroke3")).min_steps == 0  # no end state
    assert ModelConfig.from_dict(config.to_dict()).min_steps == 4
    with pytest.raises(ValueError, match="min_steps=-2"):
        config.replace(min_steps=-2)


# ---------------------------------------------------- layer-normalised LSTM cell
def layer_norm_model(pen, seed, covariance="diagonal", **overrides):
    """A small layer-norm model with every weight drawn from N(0, 0.5^2) (gammas around 1)."""
    keras.utils.set_random_seed(seed)
    stats = dict(mean=(0.5, 0.5, 0.1), std=(0.3, 0.3, 0.08)) if pen is None else dict(std=(3.0, 3.0))
    config = preset(FULL_PRESETS[pen], units=12, layers=2, components=3, covariance=covariance,
                    cell="layer_norm", **stats, **overrides)
    model = build_model(config)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        offset = 1.0 if "gamma" in variable.path else 0.0
        variable.assign((offset + rng.normal(0.0, 0.5, variable.shape)).astype(np.float32))
    return model


def test_layer_norm_cell_by_hand_config_and_dropout():
    from mdnrnn.models import LayerNormLSTMCell

    cell = LayerNormLSTMCell(3, recurrent_dropout=0.5)
    cell.build((None, 2))
    rng = np.random.default_rng(0)
    for variable in cell.weights:
        variable.assign(rng.normal(0, 1, variable.shape).astype(np.float32))
    x, h, c = (rng.normal(0, 1, (2, n)).astype(np.float32) for n in (2, 3, 3))
    # By hand, from the docstring's equations.
    z = (x @ cell.kernel.numpy() + h @ cell.recurrent_kernel.numpy()).reshape(2, 4, 3)
    z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-3)
    z = cell.gamma.numpy() * z + cell.beta.numpy()
    sigmoid = lambda v: 1 / (1 + np.exp(-v))
    new_c = sigmoid(z[:, 1]) * c + sigmoid(z[:, 0]) * np.tanh(z[:, 2])
    normal_c = (new_c - new_c.mean(-1, keepdims=True)) / np.sqrt(new_c.var(-1, keepdims=True) + 1e-3)
    new_h = sigmoid(z[:, 3]) * np.tanh(cell.gamma_c.numpy() * normal_c + cell.beta_c.numpy())
    got_h, (_, got_c) = cell(x, [h, c])
    np.testing.assert_allclose(got_c, new_c, atol=1e-5)
    np.testing.assert_allclose(got_h, new_h, atol=1e-5)
    assert not np.allclose(cell(x, [h, c], training=True)[0], new_h)  # dropout while training only
    clone = LayerNormLSTMCell.from_config(cell.get_config())
    assert (clone.units, clone.recurrent_dropout) == (3, 0.5)
    with pytest.raises(ValueError, match="cell='gru'"):
        preset("kanji", cell="gru")


@pytest.mark.parametrize("pen,covariance", [(None, "diagonal"), ("categorical", "diagonal"), ("categorical", "full")])
def test_layer_norm_numpy_step_compiled_loop_and_training_model_agree(pen, covariance):
    from mdnrnn import Generator

    model = layer_norm_model(pen, seed=3, covariance=covariance, recurrent_dropout=0.3, dropout=0.2)
    steps = 10
    for path in ("step", "generate"):
        generator = Generator(model, temperature=0.8, seed=5)
        generator.reset(3)
        if path == "step":
            rows, params = zip(*(generator.step(return_params=True) for _ in range(steps)))
            sequences, params = list(np.stack(rows, 1)), list(np.stack(params, 1))
        else:
            sequences, params = generator.generate(max_steps=steps, stop=False, return_params=True)
        for i, (seq, got) in enumerate(zip(sequences, params)):
            inputs = training_inputs(generator.codec, seq[:-1], after_start=True)
            expected = model(inputs[None]).numpy()[0, -len(seq):]
            np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=f"{path}, sequence {i}")
        assert np.abs(np.concatenate(params)).max() > 0.5


def test_layer_norm_model_saves_loads_and_trains(tmp_path):
    rng = np.random.default_rng(4)
    x, y = stroke5_batch(rng, batch=2)
    model = build_model(preset("kanji", units=8, components=2, cell="layer_norm", recurrent_dropout=0.1))
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=3, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    model.save(tmp_path / "m.keras")
    loaded = mdnrnn.load_model(tmp_path / "m.keras")
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


# ------------------------------------------- sketch-rnn's data tricks (pipeline)
def test_point_dropping_and_scale_by_hand():
    drawing = np.array([[1, 0, 0], [2, 0, 0], [3, 0, 0], [4, 0, 1], [5, 0, 0], [6, 0, 1]], np.float32)
    # Only points 1 and 2 have the pen down before and after them; both go, their offsets
    # carried into the next point, so every stroke still ends where it did.
    got = mdnrnn.data.Augmentation(drop_points=0.999999).apply(drawing, np.random.default_rng(0))
    np.testing.assert_array_equal(got, [[1, 0, 0], [9, 0, 1], [5, 0, 0], [6, 0, 1]])
    unchanged = mdnrnn.data.Augmentation(drop_points=0.0, scale=0.0).apply(drawing, np.random.default_rng(0))
    np.testing.assert_array_equal(unchanged, drawing)
    rng = np.random.default_rng(1)
    factors = np.array([mdnrnn.data.Augmentation(scale=0.15).apply(drawing[:, [0, 0, 2]], rng)[:, :2].sum(0) / 21
                        for _ in range(500)])
    assert factors.min() >= 0.85 and factors.max() <= 1.15 and factors.std() > 0.05
    assert abs(np.corrcoef(factors.T)[0, 1]) < 0.2  # x and y scaled independently
    with pytest.raises(ValueError, match="scale=1.5"):
        mdnrnn.data.Augmentation(scale=1.5)


def test_max_seq_len_and_augmentation_in_the_pipeline(tmp_path):
    sequences, splits = tiny_drawing_store(tmp_path / "s.h5")
    train_lengths = [len(s) for s, split in zip(sequences, splits) if split == "train"]
    counted = mdnrnn.data.count_examples(tmp_path / "s.h5", "train", pen="categorical", max_seq_len=6)
    assert counted.used == sum(n <= 6 for n in train_lengths) and counted.skipped == sum(n > 6 for n in train_lengths)
    batches = list(mdnrnn.data.make_dataset(tmp_path / "s.h5", "train", 4, pen="categorical", max_seq_len=6))
    assert sum(len(b[0]) for b in batches) == counted.used
    assert max(b[0].shape[1] for b in batches) <= 6 + 1  # start token + at most 6 points
    plain = mdnrnn.data.make_dataset(tmp_path / "s.h5", "train", 16, pen="categorical", shuffle=False)
    augment = mdnrnn.data.Augmentation(scale=0.15, drop_points=0.5)
    augmented = mdnrnn.data.make_dataset(tmp_path / "s.h5", "train", 16, pen="categorical", shuffle=False,
                                         augment=augment)
    (x0, _, w0), (x1, _, w1) = next(iter(plain)), next(iter(augmented))
    assert w1.numpy().sum() < w0.numpy().sum()  # points were dropped
    with pytest.raises(ValueError, match="max_seq_len=0"):
        mdnrnn.data.count_examples(tmp_path / "s.h5", "train", pen="categorical", max_seq_len=0)


def test_check_examples_names_what_leaves_a_split_empty(tmp_path):
    from mdnrnn import train

    tiny_drawing_store(tmp_path / "s.h5")  # drawings of 4 to 12 points
    kanji = preset("kanji", units=8, layers=1, components=2)
    with pytest.raises(ValueError, match=r"no train drawing has at most --max-seq-len 3 points; the shortest has 4"):
        train.check_examples(tmp_path / "s.h5", kanji, train.TrainSettings(max_seq_len=3))
    lone = [np.full((1, 3), 0.5 + i / 100, np.float32) for i in range(6)]  # one touch each: nothing to predict
    mdnrnn.data.write_store(tmp_path / "t.h5", lone, kind="touch", splits=["train"] * 4 + ["valid"] * 2)
    with pytest.raises(ValueError, match="no train sequence is long enough; each example needs 2 points, the longest has 1"):
        train.check_examples(tmp_path / "t.h5", preset("touch", units=8, layers=1, components=2),
                             train.TrainSettings(window=50))


def test_train_with_tricks_saves_them(tmp_path):
    from mdnrnn import train

    tiny_drawing_store(tmp_path / "s.h5")
    settings = train.TrainSettings(epochs=1, batch_size=8, max_seq_len=10, scale_augment=0.15, drop_points=0.1)
    train.train(tmp_path / "s.h5", preset("kanji", units=8, layers=1, components=2, cell="layer_norm",
                                         recurrent_dropout=0.1), tmp_path / "run", settings, verbose=0)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["max_seq_len"] == 10 and saved["train"]["scale_augment"] == 0.15
    assert saved["model"]["cell"] == "layer_norm" and saved["model"]["recurrent_dropout"] == 0.1
    assert mdnrnn.load_model(tmp_path / "run" / "model.keras").config.cell == "layer_norm"
