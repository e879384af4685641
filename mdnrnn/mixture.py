"""The mixture density head: spec, Keras layer, parameters -> distribution, loss.

Shape legend used throughout the package: B batch, T time, K mixture components,
D continuous dimensions, P = `MixtureSpec.params_size`.
"""

from __future__ import annotations

import dataclasses
import math

from mdnrnn._tf import keras, tf, tfp
from mdnrnn.sampler import PEN_SIZES

tfd = tfp.distributions

COVARIANCE_KINDS = ("diagonal", "full")
# How the head makes the component scales positive (see `MixtureSpec.scale_activation`).
SCALE_ACTIVATIONS = ("softplus", "elu")

# Smallest component scale the head can emit (in normalised data units). It keeps the
# density finite for targets far from every component and the gradients bounded.
MIN_SCALE = 1e-4
# Bound on the magnitude of each off-diagonal correlation parameter `u` (see
# `MixtureSpec`): the head emits `MAX_CORRELATION_PARAM * tanh(raw / MAX_CORRELATION_PARAM)`.
# For D = 2 the correlation is `u / sqrt(1 + u**2)`, so |rho| <= 10 / sqrt(101) ~ 0.995,
# and every diagonal entry of the correlation Cholesky factor stays >= 1 / sqrt(1 + 100 (D-1)).
MAX_CORRELATION_PARAM = 10.0


@dataclasses.dataclass(frozen=True)
class MixtureSpec:
    """Describes the output distribution of a mixture density head.

    A target row holds `dim` continuous values and, when `pen` is set, one pen column:
    `"bernoulli"` (stroke-3: 1.0 when the pen lifts after this point, else 0.0) or
    `"categorical"` (stroke-5: class index 0 = pen down, 1 = pen up, 2 = end of drawing).

    The flat parameter vector of length `params_size` is laid out as

        [ mixture logits (K) | loc (K * D) | scale (K * D) | correlation (K * C) | pen logits (0, 1 or 3) ]

    where loc and scale are component-major: the value for component k and dimension d
    sits at offset `k * D + d` inside its block. Scales are positive and are each
    component's standard deviations along the axes; pen logits are unnormalised (one logit
    for Bernoulli, three for categorical).

    `scale_activation` is how the head makes a scale from its Dense output `x`:
    `"softplus"` gives `log(1 + exp(x)) + MIN_SCALE`, `"elu"` gives
    `elu(x) + 1 + MIN_SCALE` (`exp(x)` below zero, `x + 1` above: keras-mdn-layer's
    activation, with our floor). Far below zero both are about `exp(x)`; near zero and
    above, ELU + 1 is the larger and keeps a slope of 1. ELU + 1 is the default: it gave
    lower held-out NLL at equal steps on RoboJam and short_kanji (docs/benchmarks.md). A
    config saved before the field existed reads as softplus, which is what those models
    compute.

    The correlation block is there only with `covariance="full"`: C = D (D - 1) / 2
    values `u` per component, in row-major order of the strictly lower triangle
    ((1, 0), (2, 0), (2, 1), ...), bounded to |u| < `MAX_CORRELATION_PARAM`. They give
    the Cholesky factor of the component's correlation matrix: row i of the lower
    triangular `L_corr` is `[u_i0, ..., u_i(i-1), 1] / norm` (unit length, positive
    diagonal); the component's covariance is `S L_corr L_corr^T S` with `S = diag(scale)`,
    so its Cholesky factor is `scale[:, None] * L_corr` and its variances are `scale**2`.
    For D = 2 that is Graves' bivariate normal with correlation `rho = u / sqrt(1 + u**2)`.
    With `covariance="diagonal"` (C = 0) the components are axis-aligned.

    Args:
        dim: Number of continuous dimensions D, a positive integer.
        components: Number of mixture components K, a positive integer.
        pen: `None`, `"bernoulli"` or `"categorical"`. Defaults to `None`.
        covariance: `"diagonal"` or `"full"`. Defaults to `"diagonal"`.
        scale_activation: `"elu"` or `"softplus"`. Defaults to `"elu"`.

    Raises:
        ValueError: If an argument is out of range.

    Example:

    >>> MixtureSpec(dim=2, components=3, pen="categorical").params_size
    18
    """

    dim: int
    components: int
    pen: str | None = None
    covariance: str = "diagonal"
    scale_activation: str = "elu"

    def __post_init__(self):
        for name in ("dim", "components"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"Received an invalid value for `{name}`, expected a positive "
                    f"integer. Received: {name}={value!r}"
                )
        if self.pen not in PEN_SIZES:
            raise ValueError(
                "Received an invalid value for `pen`, expected one of None, "
                f"'bernoulli', 'categorical'. Received: pen={self.pen!r}"
            )
        if self.covariance not in COVARIANCE_KINDS:
            raise ValueError(
                "Received an invalid value for `covariance`, expected 'diagonal' or "
                f"'full'. Received: covariance={self.covariance!r}"
            )
        if self.scale_activation not in SCALE_ACTIVATIONS:
            raise ValueError(
                "Received an invalid value for `scale_activation`, expected 'softplus' or "
                f"'elu'. Received: scale_activation={self.scale_activation!r}"
            )

    @property
    def pen_size(self) -> int:
        """Number of pen logits: 0, 1 (Bernoulli) or 3 (categorical)."""
        return PEN_SIZES[self.pen]

    @property
    def correlation_size(self) -> int:
        """Correlation parameters per component C: D (D - 1) / 2 when full, else 0."""
        return self.dim * (self.dim - 1) // 2 if self.covariance == "full" else 0

    @property
    def params_size(self) -> int:
        """Length P of the flat parameter vector."""
        return self.components * (1 + 2 * self.dim + self.correlation_size) + self.pen_size

    @property
    def target_size(self) -> int:
        """Width of a target row: D continuous values plus one pen column if any."""
        return self.dim + (1 if self.pen else 0)

    def get_config(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> "MixtureSpec":
        # Configs written before `scale_activation` existed: those heads computed softplus.
        return cls(**{"scale_activation": "softplus", **config})


def split_params(params, spec: MixtureSpec):
    """Splits a flat parameter tensor into its named parts.

    Args:
        params: Tensor of shape `(..., P)`.
        spec: The `MixtureSpec` that produced it.

    Returns:
        A tuple `(logits, loc, scale, pen_logits)` of shapes `(..., K)`, `(..., K, D)`,
        `(..., K, D)` and `(..., pen_size)` (`pen_logits` is `None` without a pen). With
        `covariance="full"`, `scale` is instead the Cholesky factor of each component's
        covariance, `(..., K, D, D)` (see `MixtureSpec`).

    Raises:
        ValueError: If the last axis of `params` is not `spec.params_size`.
    """
    params = tf.convert_to_tensor(params)
    _check_last_axis(params, spec.params_size, "params", f"params_size of {spec}")
    k, d, c = spec.components, spec.dim, spec.correlation_size
    batch_shape = tf.shape(params)[:-1]
    logits = params[..., :k]  # [..., K]
    loc = tf.reshape(params[..., k : k + k * d], tf.concat([batch_shape, [k, d]], 0))  # [..., K, D]
    scale = tf.reshape(
        params[..., k + k * d : k + 2 * k * d], tf.concat([batch_shape, [k, d]], 0)
    )  # [..., K, D]
    start = k + 2 * k * d + k * c
    pen_logits = params[..., start:] if spec.pen else None  # [..., pen_size]
    if spec.covariance == "full":
        correlation = tf.reshape(
            params[..., k + 2 * k * d : start], tf.concat([batch_shape, [k, c]], 0)
        )  # [..., K, C]
        scale = scale[..., :, None] * correlation_cholesky(correlation, d)  # [..., K, D, D]
    return logits, loc, scale, pen_logits


def correlation_cholesky(correlation, dim: int):
    """The Cholesky factor of a correlation matrix from its D (D - 1) / 2 parameters.

    Row i of the result is `[u_i0, ..., u_i(i-1), 1, 0, ...]` divided by its length, so
    every row has unit length (the matrix `L L^T` has a unit diagonal) and the diagonal
    is positive; `u` comes in row-major order of the strictly lower triangle.

    Args:
        correlation: Tensor `(..., D (D - 1) / 2)`.
        dim: D.

    Returns:
        Tensor `(..., D, D)`, lower triangular.
    """
    correlation = tf.convert_to_tensor(correlation)
    batch_shape = tf.shape(correlation)[:-1]
    ones = tf.ones(tf.concat([batch_shape, [1]], 0), correlation.dtype)
    rows, start = [], 0
    for i in range(dim):
        row = tf.concat([correlation[..., start : start + i], ones], -1)  # [..., i + 1]
        start += i
        row = row * tf.math.rsqrt(tf.reduce_sum(tf.square(row), -1, keepdims=True))
        rows.append(tf.pad(row, [[0, 0]] * (row.shape.rank - 1) + [[0, dim - i - 1]]))  # [..., D]
    return tf.stack(rows, -2)  # [..., D, D]


def mixture_distribution(params, spec: MixtureSpec, temperature=1.0, sigma_temperature=None):
    """Turns head parameters into a TensorFlow Probability distribution over target rows.

    The continuous part is a `MixtureSameFamily` of `MultivariateNormalDiag` components
    (`MultivariateNormalTriL` with `spec.covariance == "full"`).
    With a pen, the pen distribution (`Bernoulli` or `Categorical`, its value stored as a
    float 0/1 or 0/1/2 in the last column) is joined to it with `Blockwise`, so the event
    is a row of `spec.target_size` floats and `log_prob` is the sum of both parts, computed
    in log space.

    Temperatures (sketch-rnn's convention, one knob by default):
    - `temperature` divides the mixture logits and the pen logits. 1.0 leaves the
      distribution unchanged; below 1 is more conservative (as it goes to 0 the most
      likely component and pen state are always picked); above 1 is more random.
    - `sigma_temperature` multiplies every component's covariance matrix (so its scales,
      or Cholesky factor, by the square root). `None` (the default) means "the same as
      `temperature`": one knob that sharpens or widens everything, as sketch-rnn's
      temperature does. 1.0 leaves the spread as trained; towards 0 each component
      collapses to its mean.
    - keras-mdn-layer's `sample_from_output(params, dim, K, temp=t, sigma_temp=s)`
      divides the mixture logits by `t` and multiplies the variances by `s`: pass
      `temperature=t, sigma_temperature=s` explicitly (its default `sigma_temp=1.0` is
      `sigma_temperature=1.0` here, not `None`).

    Args:
        params: Tensor of shape `(..., P)` from `MixtureDensity`.
        spec: The `MixtureSpec` describing `params`.
        temperature: Positive float or scalar tensor. Defaults to 1.0.
        sigma_temperature: Positive float or scalar tensor, or `None` for the same value
            as `temperature`. Defaults to `None`.

    Returns:
        A `tfd.Distribution` with batch shape `(...)` and event shape `(target_size,)`.

    Raises:
        ValueError: If the last axis of `params` is not `spec.params_size`, or a Python
            number temperature is not positive.

    Example:

    >>> spec = MixtureSpec(dim=2, components=3, pen="bernoulli")
    >>> dist = mixture_distribution(tf.zeros([4, spec.params_size]), spec)
    >>> dist.sample(seed=(1, 2)).shape
    TensorShape([4, 3])
    """
    continuous, pen = mixture_parts(params, spec, temperature, sigma_temperature)
    if pen is None:
        return continuous
    return tfd.Blockwise([continuous, pen], dtype_override=continuous.dtype)


def mixture_parts(params, spec: MixtureSpec, temperature=1.0, sigma_temperature=None):
    """The parts of `mixture_distribution`, as two distributions: `(continuous, pen)`.

    `continuous` is the mixture over the first `spec.dim` columns of a target row, `pen` the
    pen state over the last column (`None` without a pen), with the same arguments and
    temperatures as `mixture_distribution`, whose `log_prob(rows)` is
    `continuous.log_prob(rows[..., :dim]) + pen.log_prob(rows[..., dim:])`. The loss and
    `mdnrnn eval` use the parts: they need them apart, and TensorFlow Probability's
    `Blockwise` that joins them takes seconds to trace into every training function.

    Returns:
        `(continuous, pen)`: a `tfd.MixtureSameFamily` with event shape `(spec.dim,)`, and a
        `tfd.Independent` pen with event shape `(1,)` or `None`.
    """
    if sigma_temperature is None:
        sigma_temperature = temperature
    for name, value in (("temperature", temperature), ("sigma_temperature", sigma_temperature)):
        if isinstance(value, (int, float)) and not (value > 0 and math.isfinite(value)):
            raise ValueError(
                f"Received an invalid value for `{name}`, expected a positive number. "
                f"Received: {name}={value!r}"
            )
    logits, loc, scale, pen_logits = split_params(params, spec)
    temperature = tf.cast(temperature, logits.dtype)
    sigma_temperature = tf.cast(sigma_temperature, logits.dtype)
    if spec.covariance == "full":  # scale: Cholesky factors [..., K, D, D]
        components = tfd.MultivariateNormalTriL(loc=loc, scale_tril=scale * tf.sqrt(sigma_temperature))
    else:
        components = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale * tf.sqrt(sigma_temperature))
    continuous = tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=logits / temperature),
        components_distribution=components,
    )
    if spec.pen is None:
        return continuous, None
    pen_logits = pen_logits / temperature
    if spec.pen == "bernoulli":
        pen = tfd.Bernoulli(logits=pen_logits, dtype=logits.dtype)  # batch [..., 1]
    else:
        pen = tfd.Categorical(logits=pen_logits[..., None, :])  # batch [..., 1]
    pen = tfd.Independent(pen, reinterpreted_batch_ndims=1)  # event [1]
    return continuous, pen


def _check_last_axis(tensor, expected, name, what):
    size = tensor.shape[-1] if tensor.shape.rank else None
    if size is not None and size != expected:
        raise ValueError(
            f"`{name}` has shape {tuple(tensor.shape)} but its last axis must be {expected} "
            f"(the {what})."
        )


@keras.saving.register_keras_serializable(package="mdnrnn")
class MixtureDensity(keras.layers.Layer):
    """Mixture density head: hidden features -> flat mixture parameters.

    Maps `(batch_size, ..., features)` to `(batch_size, ..., params_size)` with one dense
    projection per parameter group: mixture logits, component means (`loc`), component
    scales (`spec.scale_activation` plus `MIN_SCALE`, so strictly positive), with full covariance the
    correlation parameters (`MAX_CORRELATION_PARAM * tanh(x / MAX_CORRELATION_PARAM)`,
    so bounded), and pen logits. Works on
    rank-2 and rank-3 (time-distributed) inputs alike and passes Keras masks through.
    The output is a plain tensor; turn it into a distribution with `mixture_distribution`.

    Args:
        spec: A `MixtureSpec` (or its config dict).
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: Tensor of shape `(batch_size, ..., features)`.

    Returns:
        Tensor of shape `(batch_size, ..., spec.params_size)`.

    Example:

    >>> head = MixtureDensity(MixtureSpec(dim=2, components=5, pen="categorical"))
    >>> head(tf.zeros([8, 30, 64])).shape
    TensorShape([8, 30, 28])
    """

    def __init__(self, spec, **kwargs):
        super().__init__(**kwargs)
        if isinstance(spec, dict):
            spec = MixtureSpec.from_config(spec)
        if not isinstance(spec, MixtureSpec):
            raise ValueError(
                "Received an invalid value for `spec`, expected a MixtureSpec. "
                f"Received: spec={spec!r}"
            )
        self.spec = spec
        k, d = spec.components, spec.dim
        self.logits_dense = keras.layers.Dense(k, name="logits", dtype=self.dtype_policy)
        self.loc_dense = keras.layers.Dense(k * d, name="loc", dtype=self.dtype_policy)
        self.scale_dense = keras.layers.Dense(k * d, name="scale", dtype=self.dtype_policy)
        # Zero-initialised, so a new full-covariance head starts as the diagonal one (every
        # correlation 0) and draws no random numbers: with the same seed every other weight
        # starts as in the diagonal model, and the two train as a pair that differs only in
        # what the correlations learn.
        self.correlation_dense = (
            keras.layers.Dense(k * spec.correlation_size, name="correlation", kernel_initializer="zeros",
                               dtype=self.dtype_policy)
            if spec.covariance == "full" else None
        )
        self.pen_dense = keras.layers.Dense(spec.pen_size, name="pen", dtype=self.dtype_policy) if spec.pen else None
        self.supports_masking = True

    def denses(self):
        """The head's Dense layers in the order of the parameter layout (present ones only)."""
        return [
            d for d in (self.logits_dense, self.loc_dense, self.scale_dense, self.correlation_dense, self.pen_dense)
            if d is not None
        ]

    def build(self, input_shape):
        for dense in self.denses():
            dense.build(input_shape)

    def call(self, inputs):
        scale = self.scale_dense(inputs)
        if self.spec.scale_activation == "elu":
            scale = keras.ops.elu(scale) + (1.0 + MIN_SCALE)
        else:
            scale = keras.ops.softplus(scale) + MIN_SCALE
        parts = [self.logits_dense(inputs), self.loc_dense(inputs), scale]
        if self.correlation_dense is not None:
            bound = MAX_CORRELATION_PARAM
            parts.append(bound * keras.ops.tanh(self.correlation_dense(inputs) / bound))
        if self.pen_dense is not None:
            parts.append(self.pen_dense(inputs))
        return keras.ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.spec.params_size,)

    def get_config(self):
        return {**super().get_config(), "spec": self.spec.get_config()}


@keras.saving.register_keras_serializable(package="mdnrnn")
class MixtureNLL(keras.losses.Loss):
    """Mean negative log-likelihood of target rows under the predicted mixture.

    Predictions and targets are flattened over batch and time; steps that are padding
    (a Keras mask carried by `y_pred`, from a `Masking` layer upstream, or a zero
    `sample_weight`) are left out, and the result is the mean over the real steps, in
    nats per step. A continuous density can exceed 1, so the loss can be negative.

    Args:
        spec: A `MixtureSpec` (or its config dict).
        name: Loss name. Defaults to `"mixture_nll"`.

    Call arguments:
        y_true: Targets `(B, T, D [+1])` or `(B, D [+1])`.
        y_pred: Parameters `(B, T, P)` or `(B, P)`.
        sample_weight: Optional weights broadcastable to `(B, T)` or `(B,)`.

    Returns:
        Scalar tensor: the weighted mean NLL over the unmasked steps.

    Raises:
        ValueError: If the targets or parameters have the wrong width or rank.
    """

    def __init__(self, spec, name="mixture_nll", **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(spec, dict):
            spec = MixtureSpec.from_config(spec)
        self.spec = spec

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Keras carries the mask of a Masking layer on the output tensor itself.
        mask = getattr(y_pred, "_keras_mask", None)
        with tf.name_scope(self.name):
            y_pred = tf.convert_to_tensor(y_pred, dtype=self.dtype)
            y_true = tf.convert_to_tensor(y_true, dtype=self.dtype)
            nll = self.call(y_true, y_pred)  # [B, T] or [B]
            weights = tf.ones_like(nll)
            if mask is not None:
                weights *= tf.cast(mask, nll.dtype)
            if sample_weight is not None:
                weights *= _broadcast_weights(sample_weight, nll)
            # Zero the NLL wherever the weight is zero, so that padding can never leak
            # a NaN or inf into the sum.
            total = tf.reduce_sum(tf.where(weights > 0, nll * weights, tf.zeros_like(nll)))
            loss = total / tf.maximum(tf.reduce_sum(weights), 1e-8)
            # Under tf.distribute each replica's loss is summed, as Keras' own losses do.
            return loss / tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, loss.dtype)

    def call(self, y_true, y_pred):
        """Per-step negative log-likelihood, shape `y_pred.shape[:-1]`."""
        _check_last_axis(y_pred, self.spec.params_size, "y_pred", f"params_size of {self.spec}")
        _check_last_axis(y_true, self.spec.target_size, "y_true", f"target width of {self.spec}")
        if y_true.shape.rank is not None and y_pred.shape.rank is not None and y_true.shape.rank != y_pred.shape.rank:
            raise ValueError(
                f"`y_true` has shape {tuple(y_true.shape)} and `y_pred` has shape "
                f"{tuple(y_pred.shape)}; they must have the same rank."
            )
        continuous, pen = mixture_parts(y_pred, self.spec)
        nll = -continuous.log_prob(y_true[..., : self.spec.dim])
        if pen is not None:
            nll -= pen.log_prob(y_true[..., self.spec.dim :])
        return nll

    def get_config(self):
        return {"name": self.name, "spec": self.spec.get_config()}


def _broadcast_weights(sample_weight, nll):
    """Broadcasts `(B,)`, `(B, T)` or `(B, T, 1)` weights to the shape of `nll`."""
    weights = tf.cast(sample_weight, nll.dtype)
    if weights.shape.rank == nll.shape.rank + 1:
        weights = tf.squeeze(weights, axis=-1)
    while weights.shape.rank < nll.shape.rank:
        weights = weights[..., None]
    return tf.broadcast_to(weights, tf.shape(nll))
