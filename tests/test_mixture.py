"""The mixture head, its distribution and the loss, against SciPy references."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

import keras
from mdnrnn import MixtureDensity, MixtureNLL, MixtureSpec, mixture_distribution


def random_params(spec, shape, rng):
    """Random parameters with positive scales, laid out as MixtureSpec documents."""
    k, d = spec.components, spec.dim
    logits = rng.normal(size=shape + (k,))
    loc = rng.normal(size=shape + (k * d,))
    scale = rng.uniform(0.3, 2.0, size=shape + (k * d,))
    pen = rng.normal(size=shape + (spec.pen_size,))
    return np.concatenate([logits, loc, scale, pen], -1).astype(np.float32)


def reference_log_prob(params, targets, spec):
    """log p(target) from SciPy densities, written from the documented layout."""
    k, d = spec.components, spec.dim
    out = []
    for p, y in zip(params.reshape(-1, spec.params_size), targets.reshape(-1, spec.target_size)):
        log_weights = special.log_softmax(p[:k].astype(np.float64))
        loc = p[k : k + k * d].reshape(k, d)
        scale = p[k + k * d : k + 2 * k * d].reshape(k, d)
        per_component = [
            log_weights[j] + stats.norm.logpdf(y[:d], loc[j], scale[j]).sum() for j in range(k)
        ]
        value = special.logsumexp(per_component)
        pen_logits = p[k + 2 * k * d :].astype(np.float64)
        if spec.pen == "bernoulli":
            value += special.log_expit(pen_logits[0]) if y[d] == 1 else special.log_expit(-pen_logits[0])
        elif spec.pen == "categorical":
            value += special.log_softmax(pen_logits)[int(y[d])]
        out.append(value)
    return np.array(out).reshape(targets.shape[:-1])


def random_targets(spec, shape, rng):
    continuous = rng.normal(size=shape + (spec.dim,))
    if spec.pen is None:
        return continuous.astype(np.float32)
    classes = 2 if spec.pen == "bernoulli" else 3
    pen = rng.integers(0, classes, size=shape + (1,))
    return np.concatenate([continuous, pen], -1).astype(np.float32)


def test_spec_params_size_and_layout():
    spec = MixtureSpec(dim=3, components=5, pen="categorical")
    assert spec.params_size == 5 + 2 * 5 * 3 + 3
    assert spec.target_size == 4
    assert MixtureSpec(2, 4, "bernoulli").params_size == 4 + 16 + 1
    assert MixtureSpec(1, 1).params_size == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dim": 0, "components": 3}, "dim=0"),
        ({"dim": 2, "components": -1}, "components=-1"),
        ({"dim": 2, "components": 2.5}, "components=2.5"),
        ({"dim": 2, "components": 3, "pen": "gaussian"}, "pen='gaussian'"),
    ],
)
def test_spec_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MixtureSpec(**kwargs)


@pytest.mark.parametrize("pen", [None, "bernoulli", "categorical"])
@pytest.mark.parametrize("components", [1, 5])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_log_prob_matches_scipy(dim, components, pen):
    rng = np.random.default_rng(dim * 100 + components)
    spec = MixtureSpec(dim, components, pen)
    params = random_params(spec, (4, 3), rng)
    targets = random_targets(spec, (4, 3), rng)
    got = mixture_distribution(params, spec).log_prob(targets).numpy()
    np.testing.assert_allclose(got, reference_log_prob(params, targets, spec), rtol=1e-4, atol=1e-4)
    # The loss computes the same density from the two parts, per step.
    per_step = MixtureNLL(spec).call(tf.constant(targets), tf.constant(params)).numpy()
    np.testing.assert_allclose(per_step, -reference_log_prob(params, targets, spec), rtol=1e-4, atol=1e-4)


def test_loss_is_mean_over_real_steps_with_sample_weight():
    rng = np.random.default_rng(0)
    spec = MixtureSpec(2, 3, "categorical")
    params = random_params(spec, (3, 6), rng)
    targets = random_targets(spec, (3, 6), rng)
    lengths = np.array([6, 2, 4])
    weights = (np.arange(6)[None, :] < lengths[:, None]).astype(np.float32)
    loss = MixtureNLL(spec)(targets, params, sample_weight=weights).numpy()
    reference = -reference_log_prob(params, targets, spec)
    expected = np.mean(np.concatenate([reference[i, :n] for i, n in enumerate(lengths)]))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_padding_with_garbage_does_not_change_loss():
    rng = np.random.default_rng(1)
    spec = MixtureSpec(2, 3, "bernoulli")
    params = random_params(spec, (2, 5), rng)
    targets = random_targets(spec, (2, 5), rng)
    loss = MixtureNLL(spec)(targets, params).numpy()
    padded_params = np.concatenate([params, np.full((2, 4, spec.params_size), 1e4, np.float32)], 1)
    padded_targets = np.concatenate([targets, np.full((2, 4, 3), 1e6, np.float32)], 1)
    weights = np.concatenate([np.ones((2, 5)), np.zeros((2, 4))], 1)
    padded_loss = MixtureNLL(spec)(padded_targets, padded_params, sample_weight=weights).numpy()
    np.testing.assert_allclose(padded_loss, loss, rtol=1e-6)
    assert np.isfinite(padded_loss)


def test_loss_accepts_rank_2_inputs():
    rng = np.random.default_rng(2)
    spec = MixtureSpec(3, 2)
    params = random_params(spec, (8,), rng)
    targets = random_targets(spec, (8,), rng)
    loss = MixtureNLL(spec)(targets, params).numpy()
    np.testing.assert_allclose(loss, -reference_log_prob(params, targets, spec).mean(), rtol=1e-5)


def test_keras_mask_from_masking_layer_is_honoured():
    """A Masking layer upstream makes the loss ignore padded steps (no sample_weight)."""
    rng = np.random.default_rng(3)
    spec = MixtureSpec(2, 2, "categorical")
    inputs = keras.Input((None, 4))
    masked = keras.layers.Masking(0.0)(inputs)
    model = keras.Model(inputs, MixtureDensity(spec)(keras.layers.Dense(8)(masked)))
    model.compile(loss=MixtureNLL(spec))
    x = rng.normal(size=(3, 5, 4)).astype(np.float32)
    y = random_targets(spec, (3, 5), rng)
    x[1, 3:] = 0.0  # padding
    y[1, 3:, :2] = 50.0  # garbage that would dominate the loss if counted
    params = model.predict(x, verbose=0)
    reference = -reference_log_prob(params, y, spec)
    real = np.ones((3, 5), bool)
    real[1, 3:] = False
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), reference[real].mean(), rtol=1e-4)


@pytest.mark.parametrize("pen", [None, "bernoulli", "categorical"])
def test_extreme_values_give_finite_loss_and_gradients(pen):
    spec = MixtureSpec(2, 3, pen)
    head = MixtureDensity(spec)
    features = tf.constant([[1e4] * 8, [-1e4] * 8, [0.0] * 8], tf.float32)
    head.build(features.shape)
    for weight in head.weights:  # huge kernels: logits of +-1e4 and more, tiny and huge scales
        weight.assign(tf.ones_like(weight) * np.where(weight.shape.rank == 2, 1.0, 0.0))
    targets = np.zeros((3, spec.target_size), np.float32)
    targets[:, :2] = [[1e3, -1e3], [1e3, 1e3], [-1e3, 0]]
    with tf.GradientTape() as tape:
        tape.watch(features)
        params = head(features)
        loss = MixtureNLL(spec)(targets, params)
    gradients = tape.gradient(loss, [features] + head.trainable_weights)
    assert np.abs(params[:, : spec.components]).max() >= 1e4
    assert np.isfinite(loss.numpy())
    assert all(np.isfinite(g.numpy()).all() for g in gradients)


def test_extreme_params_give_finite_loss():
    spec = MixtureSpec(2, 2, "categorical")
    params = np.array(
        [[1e4, -1e4, 0, 0, 5, 5, 1e-4, 1e-4, 1e4, 1e4, 1e4, -1e4, 0]], np.float32
    )
    targets = np.array([[1e3, -1e3, 1]], np.float32)
    params_tensor = tf.constant(params)
    with tf.GradientTape() as tape:
        tape.watch(params_tensor)
        loss = MixtureNLL(spec)(targets, params_tensor)
    assert np.isfinite(loss.numpy())
    assert np.isfinite(tape.gradient(loss, params_tensor).numpy()).all()


def two_component_params(spec, logits=(0.0, np.log(3.0)), pen=()):
    """Two well separated 2-D components at (-5, 0) and (5, 2), scales (1, 0.5)."""
    loc = [-5.0, 0.0, 5.0, 2.0]
    scale = [1.0, 0.5, 1.0, 0.5]
    return np.array([list(logits) + loc + scale + list(pen)], np.float32)


def test_samples_match_moments_and_weights():
    spec = MixtureSpec(2, 2, "bernoulli")
    params = two_component_params(spec, pen=[np.log(0.2 / 0.8)])  # P(pen lift) = 0.2
    samples = mixture_distribution(np.repeat(params, 20000, 0), spec).sample(seed=(4, 2)).numpy()
    weights = np.array([0.25, 0.75])
    loc = np.array([[-5.0, 0.0], [5.0, 2.0]])
    var = np.array([[1.0, 0.25], [1.0, 0.25]])
    mean = weights @ loc
    variance = weights @ (var + loc**2) - mean**2
    np.testing.assert_allclose(samples[:, :2].mean(0), mean, atol=0.06)
    np.testing.assert_allclose(samples[:, :2].var(0), variance, rtol=0.03)
    assert abs((samples[:, 0] > 0).mean() - 0.75) < 0.015
    assert set(np.unique(samples[:, 2])) == {0.0, 1.0}
    assert abs(samples[:, 2].mean() - 0.2) < 0.015
    # Within a component the spread is its own scale.
    right = samples[samples[:, 0] > 0, :2]
    np.testing.assert_allclose(right.std(0), [1.0, 0.5], rtol=0.04)


def test_categorical_pen_frequencies():
    spec = MixtureSpec(1, 1, "categorical")
    probs = np.array([0.6, 0.3, 0.1])
    params = np.array([[0.0, 0.0, 1.0, *np.log(probs)]], np.float32)
    samples = mixture_distribution(np.repeat(params, 20000, 0), spec).sample(seed=(7, 7)).numpy()
    counts = np.bincount(samples[:, 1].astype(int), minlength=3) / 20000
    np.testing.assert_allclose(counts, probs, atol=0.015)


def test_temperature_to_zero_picks_the_most_likely_component_and_pen():
    spec = MixtureSpec(2, 2, "categorical")
    params = two_component_params(spec, pen=[0.0, 0.5, 0.2])
    samples = mixture_distribution(np.repeat(params, 5000, 0), spec, temperature=1e-3).sample(
        seed=(1, 1)
    ).numpy()
    assert (samples[:, 0] > 0).all()  # component 1 has weight 0.75
    assert (samples[:, 2] == 1).all()  # pen logit 0.5 is the largest


def test_sigma_temperature_scales_the_variance():
    spec = MixtureSpec(2, 1)
    params = np.array([[0.0, 1.0, -1.0, 2.0, 0.5]], np.float32)
    samples = mixture_distribution(
        np.repeat(params, 20000, 0), spec, sigma_temperature=0.25
    ).sample(seed=(3, 3)).numpy()
    np.testing.assert_allclose(samples.var(0), 0.25 * np.array([4.0, 0.25]), rtol=0.04)


def test_same_seed_same_samples_and_different_seed_differs():
    spec = MixtureSpec(2, 2, "bernoulli")
    params = np.repeat(two_component_params(spec, pen=[0.0]), 100, 0)
    first = mixture_distribution(params, spec).sample(seed=(9, 1)).numpy()
    again = mixture_distribution(params, spec).sample(seed=(9, 1)).numpy()
    other = mixture_distribution(params, spec).sample(seed=(9, 2)).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("name", ["temperature", "sigma_temperature"])
def test_non_positive_temperature_is_rejected(name):
    spec = MixtureSpec(1, 1)
    with pytest.raises(ValueError, match=f"{name}=0"):
        mixture_distribution(np.zeros((1, 3), np.float32), spec, **{name: 0})


def test_layer_shapes_for_rank_2_and_rank_3():
    spec = MixtureSpec(2, 5, "categorical")
    head = MixtureDensity(spec)
    assert head(np.zeros((4, 16), np.float32)).shape == (4, spec.params_size)
    head3 = MixtureDensity(spec)
    assert head3(np.zeros((4, 7, 16), np.float32)).shape == (4, 7, spec.params_size)
    symbolic = MixtureDensity(spec)(keras.Input((None, 16)))
    assert tuple(symbolic.shape) == (None, None, spec.params_size)
    assert MixtureDensity(spec).compute_output_shape((None, 16)) == (None, spec.params_size)


def test_layer_weights_scales_and_config_round_trip():
    spec = MixtureSpec(3, 4, "bernoulli")
    head = MixtureDensity(spec, name="head")
    features = np.random.default_rng(0).normal(size=(5, 10)).astype(np.float32)
    params = head(features).numpy()
    # logits, loc, scale, pen: a kernel and a bias each.
    assert len(head.weights) == 8
    assert head.count_params() == (10 + 1) * spec.params_size
    scale = params[:, 4 + 12 : 4 + 24]
    assert (scale > 0).all()
    clone = MixtureDensity.from_config(head.get_config())
    assert clone.spec == spec
    clone.build(features.shape)
    clone.set_weights(head.get_weights())
    np.testing.assert_allclose(clone(features).numpy(), params, rtol=1e-6)
    assert len(MixtureDensity(MixtureSpec(3, 4)).get_config()) > 0
    no_pen = MixtureDensity(MixtureSpec(3, 4))
    no_pen.build((None, 10))
    assert len(no_pen.weights) == 6


def test_loss_config_round_trip():
    spec = MixtureSpec(2, 3, "categorical")
    loss = keras.losses.deserialize(keras.losses.serialize(MixtureNLL(spec)))
    assert isinstance(loss, MixtureNLL) and loss.spec == spec


def test_one_training_step_reduces_loss():
    spec = MixtureSpec(2, 3, "bernoulli")
    rng = np.random.default_rng(5)
    model = keras.Sequential([keras.Input((None, 4)), keras.layers.Dense(16), MixtureDensity(spec)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=MixtureNLL(spec))
    x = rng.normal(size=(8, 5, 4)).astype(np.float32)
    y = random_targets(spec, (8, 5), rng)
    before = model.evaluate(x, y, verbose=0)
    model.train_on_batch(x, y)
    assert model.evaluate(x, y, verbose=0) < before


@pytest.mark.parametrize(
    "target_width, params_width, message",
    [(2, 16, r"`y_true` has shape \(4, 6, 2\).*must be 3"), (3, 18, r"`y_pred` has shape \(4, 6, 18\).*must be 16")],
)
def test_wrong_widths_raise_with_shapes(target_width, params_width, message):
    spec = MixtureSpec(2, 3, "bernoulli")
    with pytest.raises(ValueError, match=message):
        MixtureNLL(spec)(np.zeros((4, 6, target_width), np.float32), np.zeros((4, 6, params_width), np.float32))


def test_wrong_params_size_in_distribution_raises():
    with pytest.raises(ValueError, match=r"\(2, 7\).*must be 11"):
        mixture_distribution(np.zeros((2, 7), np.float32), MixtureSpec(2, 2, "bernoulli"))


@pytest.mark.slow
def test_learns_multimodal_inverse_problem_better_than_best_single_gaussian():
    """Bishop's inverse problem: t from x = t + 0.3 sin(2 pi t) + noise has several modes."""
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)

    def make(n):
        t = rng.uniform(0, 1, n)
        x = t + 0.3 * np.sin(2 * np.pi * t) + rng.uniform(-0.1, 0.1, n)
        return x[:, None].astype(np.float32), t[:, None].astype(np.float32)

    x_train, t_train = make(4000)
    x_test, t_test = make(2000)
    spec = MixtureSpec(1, 5)
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(32, "tanh"), keras.layers.Dense(32, "tanh"), MixtureDensity(spec)]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=MixtureNLL(spec))
    model.fit(x_train, t_train, batch_size=200, epochs=150, verbose=0)
    mdn_nll = model.evaluate(x_test, t_test, verbose=0)

    # The best single Gaussian given x, estimated independently: per narrow bin of x,
    # the training mean and variance of t (the maximum-likelihood Gaussian for that bin).
    edges = np.quantile(x_train[:, 0], np.linspace(0, 1, 41))
    train_bin = np.clip(np.searchsorted(edges, x_train[:, 0]) - 1, 0, 39)
    test_bin = np.clip(np.searchsorted(edges, x_test[:, 0]) - 1, 0, 39)
    means = np.array([t_train[train_bin == b, 0].mean() for b in range(40)])
    stds = np.array([t_train[train_bin == b, 0].std() for b in range(40)])
    gaussian_nll = -stats.norm.logpdf(t_test[:, 0], means[test_bin], stds[test_bin]).mean()
    assert mdn_nll < gaussian_nll - 0.3, (mdn_nll, gaussian_nll)


# ------------------------------------------------------------- full covariance
def random_full_params(spec, shape, rng, correlation_scale=1.5):
    """Random full-covariance parameters in the documented layout (bounded correlations)."""
    k, d, c = spec.components, spec.dim, spec.correlation_size
    parts = [
        rng.normal(size=shape + (k,)),
        rng.normal(size=shape + (k * d,)),
        rng.uniform(0.3, 2.0, size=shape + (k * d,)),
        rng.normal(0, correlation_scale, size=shape + (k * c,)),
        rng.normal(size=shape + (spec.pen_size,)),
    ]
    return np.concatenate(parts, -1).astype(np.float32)


def reference_covariances(p, spec):
    """Per-component (loc, covariance) from the documented layout, written independently:
    row i of L_corr is [u_i0 .. u_i(i-1), 1] / norm; covariance = S L L^T S."""
    k, d, c = spec.components, spec.dim, spec.correlation_size
    p = p.astype(np.float64)
    loc = p[k : k + k * d].reshape(k, d)
    scale = p[k + k * d : k + 2 * k * d].reshape(k, d)
    u = p[k + 2 * k * d : k + 2 * k * d + k * c].reshape(k, c)
    covariances = []
    for j in range(k):
        lower = np.zeros((d, d))
        pairs = [(i, m) for i in range(d) for m in range(i)]  # row-major strict lower triangle
        for (i, m), value in zip(pairs, u[j]):
            lower[i, m] = value
        np.fill_diagonal(lower, 1.0)
        lower /= np.linalg.norm(lower, axis=1, keepdims=True)
        covariances.append(np.diag(scale[j]) @ lower @ lower.T @ np.diag(scale[j]))
    return loc, np.array(covariances)


def reference_full_log_prob(params, targets, spec):
    """log p(target) as a mixture of SciPy multivariate normals (plus the pen term)."""
    k, d, c = spec.components, spec.dim, spec.correlation_size
    out = []
    for p, y in zip(params.reshape(-1, spec.params_size), targets.reshape(-1, spec.target_size)):
        log_weights = special.log_softmax(p[:k].astype(np.float64))
        loc, covariances = reference_covariances(p, spec)
        value = special.logsumexp(
            [log_weights[j] + stats.multivariate_normal.logpdf(y[:d], loc[j], covariances[j]) for j in range(k)]
        )
        pen_logits = p[k + 2 * k * d + k * c :].astype(np.float64)
        if spec.pen == "bernoulli":
            value += special.log_expit(pen_logits[0]) if y[d] == 1 else special.log_expit(-pen_logits[0])
        elif spec.pen == "categorical":
            value += special.log_softmax(pen_logits)[int(y[d])]
        out.append(value)
    return np.array(out).reshape(targets.shape[:-1])


def test_full_covariance_layout_and_rho_for_two_dims():
    spec = MixtureSpec(dim=2, components=3, pen="categorical", covariance="full")
    assert spec.correlation_size == 1
    assert spec.params_size == 3 * (1 + 2 * 2 + 1) + 3
    assert MixtureSpec(dim=3, components=5, covariance="full").params_size == 5 * (1 + 6 + 3)
    assert MixtureSpec(dim=3, components=5).correlation_size == 0
    # D = 2: Graves' bivariate normal with rho = u / sqrt(1 + u^2).
    from mdnrnn.mixture import split_params

    u, s1, s2 = 0.75, 2.0, 0.5
    params = np.zeros([1, spec.params_size], np.float32)
    params[0, 3 + 6 : 3 + 12] = [s1, s2] * 3
    params[0, 3 + 12 : 3 + 15] = u
    tril = split_params(params, spec)[2].numpy()[0, 0]
    covariance = tril @ tril.T
    rho = u / np.sqrt(1 + u**2)
    np.testing.assert_allclose(covariance, [[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]], rtol=1e-5)


def test_spec_rejects_bad_covariance():
    with pytest.raises(ValueError, match="covariance='spherical'"):
        MixtureSpec(dim=2, components=1, covariance="spherical")


@pytest.mark.parametrize("pen", [None, "categorical"])
@pytest.mark.parametrize("components", [1, 5])
@pytest.mark.parametrize("dim", [2, 3])
def test_full_covariance_log_prob_matches_scipy(dim, components, pen):
    spec = MixtureSpec(dim=dim, components=components, pen=pen, covariance="full")
    rng = np.random.default_rng(dim * 10 + components)
    params = random_full_params(spec, (4, 6), rng)
    targets = rng.normal(size=(4, 6, dim))
    if pen:
        targets = np.concatenate([targets, rng.integers(0, 3, (4, 6, 1))], -1)
    targets = targets.astype(np.float32)
    got = mixture_distribution(params, spec).log_prob(targets).numpy()
    np.testing.assert_allclose(got, reference_full_log_prob(params, targets, spec), rtol=1e-4, atol=1e-4)
    loss = MixtureNLL(spec)(targets, params).numpy()
    np.testing.assert_allclose(loss, -reference_full_log_prob(params, targets, spec).mean(), rtol=1e-4)


@pytest.mark.parametrize("dim", [2, 3])
def test_full_covariance_samples_match_their_covariance(dim):
    """One component, n = 40,000 draws: the sample covariance matches S L L^T S to
    within 0.05 of each entry relative to sqrt(var_i var_j) (the standard error of a
    sample correlation is about (1 - rho^2) / sqrt(n) = 0.005, so 0.05 is a 10-sigma bound),
    and the sample mean to within 0.03 standard deviations."""
    spec = MixtureSpec(dim=dim, components=1, covariance="full")
    rng = np.random.default_rng(4)
    params = random_full_params(spec, (1,), rng)
    k, d, c = 1, dim, spec.correlation_size
    params[0, k + 2 * k * d : k + 2 * k * d + c] = [1.5, -2.0, 0.8][:c]  # strong correlations
    loc, covariances = reference_covariances(params[0], spec)
    draws = mixture_distribution(np.repeat(params, 40_000, 0), spec).sample(seed=(5, 6)).numpy()
    std = np.sqrt(np.diag(covariances[0]))
    np.testing.assert_allclose((draws.mean(0) - loc[0]) / std, 0, atol=0.03)
    np.testing.assert_allclose(np.cov(draws.T) / np.outer(std, std), covariances[0] / np.outer(std, std), atol=0.05)
    assert np.abs(covariances[0] / np.outer(std, std) - np.eye(dim)).max() > 0.5  # really correlated


@pytest.mark.parametrize("dim", [2, 3])
def test_full_covariance_extreme_correlation_gives_finite_loss_and_gradients(dim):
    """Head outputs driven far past the correlation bound, tiny scales and far targets:
    the loss and every gradient stay finite."""
    spec = MixtureSpec(dim=dim, components=2, pen="categorical", covariance="full")
    head = MixtureDensity(spec)
    features = tf.constant(np.random.default_rng(0).normal(0, 1, (8, 4)).astype(np.float32))
    head.build(features.shape)
    head.correlation_dense.kernel.assign(1e4 * tf.ones_like(head.correlation_dense.kernel))
    head.scale_dense.bias.assign(-50.0 * tf.ones_like(head.scale_dense.bias))  # scale -> MIN_SCALE
    targets = np.concatenate([np.full((8, dim), 1e3), np.zeros((8, 1))], 1).astype(np.float32)
    with tf.GradientTape() as tape:
        params = head(features)
        loss = MixtureNLL(spec)(targets, params)
    gradients = tape.gradient(loss, head.trainable_weights)
    assert np.isfinite(loss.numpy())
    assert all(np.isfinite(g.numpy()).all() for g in gradients)
    # The correlations themselves stay inside the documented bound.
    from mdnrnn.mixture import split_params

    tril = split_params(params, spec)[2].numpy()
    covariance = tril @ np.swapaxes(tril, -1, -2)
    std = np.sqrt(np.diagonal(covariance, axis1=-2, axis2=-1))
    correlation = covariance / (std[..., :, None] * std[..., None, :])
    off_diagonal = correlation[..., ~np.eye(dim, dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.9951
    assert np.abs(off_diagonal).max() > 0.99  # the bound was reached


def test_full_covariance_layer_config_round_trip_and_training_step():
    spec = MixtureSpec(dim=3, components=4, covariance="full")
    head = MixtureDensity(spec)
    assert head(tf.zeros([2, 5, 8])).shape == (2, 5, spec.params_size)
    assert len(head.weights) == 8  # logits, loc, scale, correlation: kernel + bias each
    clone = MixtureDensity.from_config(head.get_config())
    assert clone.spec == spec
    assert MixtureNLL.from_config(MixtureNLL(spec).get_config()).spec.covariance == "full"


# ------------------------------------------------- one temperature knob (sketch-rnn)
def test_temperature_alone_scales_the_variance_too():
    """sigma_temperature=None follows temperature: variances times 0.25 (sketch-rnn)."""
    spec = MixtureSpec(2, 1)
    params = np.array([[0.0, 1.0, -1.0, 2.0, 0.5]], np.float32)
    samples = mixture_distribution(np.repeat(params, 20000, 0), spec, temperature=0.25).sample(seed=(3, 3)).numpy()
    np.testing.assert_allclose(samples.var(0), 0.25 * np.array([4.0, 0.25]), rtol=0.04)
    # An explicit sigma_temperature wins: the spread as trained, only the logits sharpen.
    kept = mixture_distribution(np.repeat(params, 20000, 0), spec, temperature=0.25, sigma_temperature=1.0)
    np.testing.assert_allclose(kept.sample(seed=(3, 3)).numpy().var(0), [4.0, 0.25], rtol=0.04)


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
def test_temperature_to_zero_alone_gives_the_most_likely_mean(covariance):
    """temperature -> 0 with the default sigma_temperature: every draw is the most likely
    component's mean and the most likely pen state."""
    spec = MixtureSpec(2, 2, "categorical", covariance=covariance)
    rng = np.random.default_rng(0)
    params = (random_full_params(spec, (1,), rng) if covariance == "full" else random_params(spec, (1,), rng))
    params[0, :2] = [0.3, 1.0]
    params[0, -3:] = [0.0, 0.5, 0.2]
    samples = mixture_distribution(np.repeat(params, 2000, 0), spec, temperature=1e-6).sample(seed=(1, 1)).numpy()
    np.testing.assert_allclose(samples[:, :2], np.broadcast_to(params[0, 4:6], (2000, 2)), atol=1e-2)
    assert (samples[:, 2] == 1).all()


def test_high_temperature_flattens_the_weights_and_widens_the_spread():
    spec = MixtureSpec(1, 2)
    params = np.array([[4.0, 0.0, -10.0, 10.0, 0.1, 0.1]], np.float32)  # weights 0.98 / 0.02
    samples = mixture_distribution(np.repeat(params, 20000, 0), spec, temperature=1e4).sample(seed=(2, 2)).numpy()
    assert abs((samples[:, 0] > 0).mean() - 0.5) < 0.02  # logits / 1e4: equal weights
    one = mixture_distribution(params, spec, temperature=1e4)
    assert one.components_distribution.stddev().numpy()[0, 0, 0] == pytest.approx(0.1 * 100, rel=1e-5)


# --------------------------------------------------------------- scale activation
@pytest.mark.parametrize("activation", ["softplus", "elu"])
def test_head_scales_follow_the_specs_activation(activation):
    """The scale block is the activation of the scale Dense's output plus `MIN_SCALE`,
    written here from the definitions: softplus log(1 + e^x); ELU + 1 is e^x below zero
    and x + 1 above. Random non-zero weights put the Dense outputs on both sides of zero."""
    spec = MixtureSpec(2, 3, "categorical", scale_activation=activation)
    head = MixtureDensity(spec)
    head.build((None, 6))
    rng = np.random.default_rng(3)
    for weight in head.weights:
        weight.assign(rng.normal(0.0, 1.0, weight.shape).astype(np.float32))
    features = rng.normal(size=(50, 6)).astype(np.float32)
    x = features.astype(np.float64) @ head.scale_dense.kernel.numpy() + head.scale_dense.bias.numpy()
    assert (x < -0.5).any() and (x > 0.5).any()
    if activation == "softplus":
        expected = np.log1p(np.exp(x))
    else:
        expected = np.where(x > 0, x + 1.0, np.exp(x))
    got = head(features).numpy()[:, 3 + 6 : 3 + 12]
    np.testing.assert_allclose(got, expected + 1e-4, rtol=1e-5, atol=1e-6)


def test_scale_activation_config_and_older_configs():
    spec = MixtureSpec(3, 2, scale_activation="elu")
    assert MixtureSpec.from_config(spec.get_config()) == spec
    assert MixtureDensity.from_config(MixtureDensity(spec).get_config()).spec.scale_activation == "elu"
    # A config saved before the field existed: those models computed softplus.
    older = {"dim": 3, "components": 2, "pen": None, "covariance": "diagonal"}
    assert MixtureSpec.from_config(older).scale_activation == "softplus"
    with pytest.raises(ValueError, match="scale_activation='exp'"):
        MixtureSpec(2, 1, scale_activation="exp")
