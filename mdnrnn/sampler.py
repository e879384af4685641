"""The NumPy sampler of both step-by-step generators (`Generator`, `LiteGenerator`).

NumPy only: importing it never imports TensorFlow, so `mdnrnn.lite` can run without it.
It draws from the same distribution as `mdnrnn.mixture.mixture_distribution` with the
same temperatures (`tests/test_generate.py` checks it statistically for every pen kind).
"""

from __future__ import annotations

import numpy as np

# Pen logits per pen kind: none, a Bernoulli (stroke-3) or a categorical (stroke-5) pen.
PEN_SIZES = {None: 0, "bernoulli": 1, "categorical": 3}


class SamplerTables:
    """Constants of the NumPy sampler for one mixture layout, made once.

    Args:
        spec: An object with `dim`, `components`, `pen` and `params_size`
            (`MixtureSpec` or `LiteSpec`).
    """

    def __init__(self, spec):
        k, d = spec.components, spec.dim
        c = getattr(spec, "correlation_size", 0)
        self.components, self.dim, self.pen, self.correlated = k, d, spec.pen, c > 0
        self.params_size = spec.params_size
        # Columns of the mixture logits, then of a categorical pen's logits.
        self.logit_columns = np.arange(k)
        if spec.pen == "categorical":
            self.logit_columns = np.r_[self.logit_columns, spec.params_size - 3 : spec.params_size]
        # Component -> its loc, scale (and correlation) columns in a params row: [K, 2D + C].
        offsets = np.concatenate([np.arange(d), k * d + np.arange(d)])  # component 0's loc, scale
        self.loc_scale_columns = k + np.arange(k)[:, None] * d + offsets
        if c:
            correlation = k + 2 * k * d + np.arange(k)[:, None] * c + np.arange(c)  # [K, C]
            self.loc_scale_columns = np.concatenate([self.loc_scale_columns, correlation], 1)


def sample_numpy(params, tables, rng, temperature=1.0, variance_scale=1.0, no_end=None, codec=None, previous=None):
    """One draw per row of `params` `(B, P)`.

    Categorical draws are Gumbel-max draws: with `G` standard Gumbel noise,
    `argmax(logits + temperature * G)` is distributed as `softmax(logits / temperature)`;
    `G = -log(E)` with `E` standard exponential. The chosen component's normal draw is
    `loc + sqrt(variance_scale) * scale * (L_corr @ N(0, 1))` (`L_corr` the identity for
    diagonal components, see `MixtureSpec`); a Bernoulli pen lifts with
    probability `sigmoid(logit / temperature)`. Draw order: exponentials `(B, K [+3])`,
    normals `(B, D)`, the normals of any redraws, then uniforms `(B,)` for a Bernoulli
    pen. Where `no_end` `(B,)` is true, a stroke-5 pen never draws "end of drawing" (the
    other two renormalise).

    With a row codec and the model rows fed last (`previous`), a row whose values fall
    outside the data's bounds is drawn again from the component it chose
    (`RowCodec.redraw`): the component keeps the probability the model gave it, and its
    values are truncated to the bounds. Where no draw of that component fell inside, the
    component is drawn again too (a component with almost no mass inside the bounds).

    Returns:
        `(values, pen)`: model-space values `(B, D)`, and the pen `(B,)` (a class index
        for stroke-5, a 0/1 float for stroke-3) or `None` without a pen.
    """
    k = tables.components
    batch = len(params)
    categorical_pen = tables.pen == "categorical"
    noise = rng.standard_exponential((batch, k + 3 if categorical_pen else k))
    scores = np.log(noise, out=noise).astype(np.float32)  # -G
    if temperature != 1.0:
        scores *= np.float32(temperature)
    np.subtract(params.take(tables.logit_columns, axis=1), scores, out=scores)
    if no_end is not None and categorical_pen:
        scores[no_end, -1] = -np.inf
    columns = tables.loc_scale_columns[scores[:, :k].argmax(axis=1)]  # [B, 2D], chosen component
    if batch > 1:
        columns += np.arange(batch)[:, None] * tables.params_size  # rows of the flat params
    loc_scale = params.take(columns)  # [B, 2D]
    values = _normal_draws(loc_scale, tables, rng, variance_scale)
    if codec is not None and previous is not None:
        # Values again from the chosen component; then, for rows whose component gave
        # nothing inside (almost no mass on the screen), component and values again.
        values = codec.redraw(
            values, previous,
            lambda index: _normal_draws(loc_scale[index], tables, rng, variance_scale),
            lambda index: sample_numpy(params[index], tables, rng, temperature, variance_scale)[0],
        )
    if categorical_pen:
        return values, scores[:, k:].argmax(axis=1)
    if tables.pen == "bernoulli":
        probability = 0.5 * np.tanh(0.5 / temperature * params[:, -1]) + 0.5  # sigmoid
        return values, (rng.random(batch) < probability).astype(np.float32)
    return values, None


def _normal_draws(loc_scale, tables, rng, variance_scale):
    """One normal draw per row from the chosen components' `loc_scale` rows `(B, 2D [+C])`."""
    d = tables.dim
    values = rng.standard_normal((len(loc_scale), d), np.float32)
    if tables.correlated:  # full covariance: L_corr @ z
        values = correlate(values, loc_scale[:, 2 * d :])
    if variance_scale != 1.0:
        values *= np.float32(np.sqrt(variance_scale))
    values *= loc_scale[:, d : 2 * d]
    values += loc_scale[:, :d]
    return values


def correlate(z, correlation):
    """`L_corr @ z` per row: standard normal draws `z` (B, D) given correlation `u` (B, C).

    `L_corr` is the correlation Cholesky factor of `mixture.correlation_cholesky`: row i is
    `[u_i0, ..., u_i(i-1), 1]` over its length, so `y_i = (u_i . z[:i] + z_i) / norm_i`.
    """
    out = np.empty_like(z)
    out[:, 0] = z[:, 0]
    start = 0
    for i in range(1, z.shape[1]):
        u = correlation[:, start : start + i]  # [B, i]
        start += i
        out[:, i] = (np.einsum("bi,bi->b", u, z[:, :i]) + z[:, i]) / np.sqrt(1.0 + np.einsum("bi,bi->b", u, u))
    return out
