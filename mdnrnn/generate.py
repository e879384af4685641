"""Stateful, batched, autoregressive generation from a trained `MixtureRNN`.

Two exact paths share one set of weights, read from the model when the `Generator` is
made (make it after training):
- `step()` runs the LSTM cells and the sampler as small NumPy kernels: at batch size 1
  that beats any TensorFlow call, whose fixed overhead alone is several times longer.
- `generate()` runs the whole loop (LSTM step, sampling through `mixture_distribution`,
  stop rules) inside one compiled TensorFlow function, for any batch size.

Sequences go in and come out in the data's own units and columns (the store's rows):
stroke-3 (dx, dy, pen_lift), touch (x, y, dt) or IMPSY (dt, x_1 ... x_n).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mdnrnn.mixture import MIN_SCALE, mixture_distribution, split_params
from mdnrnn.models import MixtureRNN

# Smallest dt (seconds) a generated touch or IMPSY row can have.
MIN_DT = 1e-3
# Class index of the end-of-drawing pen state in a categorical (stroke-5) target.
END_OF_DRAWING = 2


class Generator:
    """Samples new sequences, from scratch or continuing given prefixes.

    Args:
        model: A trained `MixtureRNN` (from `build_model` or `load_model`).
        temperature: Divides the mixture and pen logits. 1.0 samples the model as
            trained; below 1 is more conservative (towards 0 it always takes the most
            likely component and pen state); above 1 is wilder. Defaults to 1.0.
        sigma_temperature: Multiplies every component's variance. 1.0 leaves it as
            trained; smaller values give smoother, more average strokes. Defaults to 1.0.
        seed: Integer seed; the same seed gives the same output. Defaults to `None`
            (fresh randomness).

    Both temperatures are live knobs: set `generator.temperature = 0.5` between steps.

    Example:

    >>> generator = Generator(model, temperature=0.8, seed=1)
    >>> drawings = generator.generate(n=16, max_steps=300)   # list of (len_i, 3) arrays
    >>> generator.prime([my_strokes])                         # continue what I drew
    >>> next_point = generator.step()                         # (1, 3)
    """

    def __init__(self, model: MixtureRNN, temperature=1.0, sigma_temperature=1.0, seed=None):
        if not isinstance(model, MixtureRNN):
            raise ValueError(
                f"Received an invalid value for `model`, expected a MixtureRNN. Received: {type(model).__name__}"
            )
        self.config = config = model.config
        self.spec = config.spec
        self.temperature = temperature
        self.sigma_temperature = sigma_temperature
        self._rng = np.random.default_rng(seed)
        self._mean, self._std = config.normalisation
        # One (input + units, 4 * units) matrix per LSTM, gates in Keras order i, f, c, o.
        self._lstm = []
        for lstm in model.lstms:
            kernel, recurrent, bias = (w.numpy() for w in lstm.cell.weights)
            self._lstm.append((np.concatenate([kernel, recurrent], 0), bias))
        head = model.head
        dense = [d for d in (head.logits_dense, head.loc_dense, head.scale_dense, head.pen_dense) if d]
        self._head_kernel = np.concatenate([d.kernel.numpy() for d in dense], 1)
        self._head_bias = np.concatenate([d.bias.numpy() for d in dense], 0)
        k, d = self.spec.components, self.spec.dim
        self._scale_slice = slice(k + k * d, k + 2 * k * d)
        self._compiled = {}
        self.reset(1)

    # ----------------------------------------------------------------- state
    @property
    def batch_size(self) -> int:
        return self._params.shape[0]

    @property
    def params(self) -> np.ndarray:
        """The mixture parameters `(batch_size, params_size)` the next step samples from."""
        return self._params.copy()

    def reset(self, batch_size: int = 1):
        """Starts `batch_size` fresh sequences: zero state, then the start row.

        The start row is the stroke-5 start token (0, 0, 1, 0, 0), the stroke-3 row
        (0, 0, 1) (pen up at the origin), or for touch and IMPSY data the data mean.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(
                f"Received an invalid value for `batch_size`, expected a positive integer. Received: batch_size={batch_size!r}"
            )
        self._zero_state(batch_size)
        self._params = self._advance(self._start_rows(batch_size))

    def prime(self, prefixes):
        """Resets to one sequence per prefix and feeds the prefixes through the model.

        Drawings are fed after the start row, as in training; touch and IMPSY prefixes
        are fed as they are. Afterwards `step` and `generate` continue each prefix.

        Args:
            prefixes: A list of arrays in data units and columns (stroke-3, touch or
                IMPSY rows); lengths may differ. A single 2-D array is one prefix.

        Raises:
            ValueError: If a prefix has the wrong width, is empty, or is not finite.
        """
        if isinstance(prefixes, np.ndarray) and prefixes.ndim == 2:
            prefixes = [prefixes]
        prefixes = [self._check_rows(p, f"prefixes[{i}]") for i, p in enumerate(prefixes)]
        if not prefixes:
            raise ValueError("`prefixes` is empty; pass at least one prefix.")
        batch = len(prefixes)
        self._zero_state(batch)
        if self.config.data_kind == "stroke3":
            self._params = self._advance(self._start_rows(batch))
        lengths = np.array([len(p) for p in prefixes])
        for t in range(lengths.max()):
            active = lengths > t
            rows = np.stack([p[min(t, len(p) - 1)] for p in prefixes])
            h, c = list(self._h), list(self._c)
            params = self._advance(self._encode(rows))
            for layer in range(len(self._h)):  # finished prefixes keep their state
                self._h[layer] = np.where(active[:, None], self._h[layer], h[layer])
                self._c[layer] = np.where(active[:, None], self._c[layer], c[layer])
            self._params = np.where(active[:, None], params, self._params)
            if "dt" in self._columns():
                self._elapsed += np.where(active, rows[:, self._columns().index("dt")], 0.0)

    def _zero_state(self, batch_size):
        units = self.config.units
        self._h = [np.zeros((batch_size, units), np.float32) for _ in self._lstm]
        self._c = [np.zeros((batch_size, units), np.float32) for _ in self._lstm]
        self._params = np.zeros((batch_size, self.spec.params_size), np.float32)
        self._elapsed = np.zeros(batch_size)

    # ------------------------------------------------------------- one step
    def step(self, return_params: bool = False):
        """Samples the next row of every sequence in the batch and feeds it back.

        Args:
            return_params: Also return the mixture parameters it sampled from.

        Returns:
            `(batch_size, columns)` rows in data units; with `return_params`, a tuple
            `(rows, params)` with params `(batch_size, params_size)`. For a stroke-5
            model, a sequence that drew "end of drawing" gets a zero row with
            pen_lift 1; use `generate` for whole sequences with stop rules.
        """
        params = self._params
        sample = self._sample_numpy(params)
        rows, model_rows = self._decode_numpy(sample)
        self._params = self._advance(model_rows)
        if "dt" in self._columns():
            self._elapsed += rows[:, self._columns().index("dt")]
        return (rows, params) if return_params else rows

    # ------------------------------------------------------- whole sequences
    def generate(self, n=None, max_steps=1000, max_seconds=None, stop=True, return_params=False):
        """Generates whole sequences in one compiled loop.

        Continues the current state (after `prime`, `reset` or `step`) unless `n` is
        given, in which case it starts `n` fresh sequences.

        Args:
            n: Number of new sequences, or `None` to continue the current batch.
            max_steps: Step limit per sequence. Defaults to 1000.
            max_seconds: Time limit (sum of dt) for touch and IMPSY data: a sequence
                stops at the first row that reaches it. Defaults to `None`.
            stop: Stop a stroke-5 drawing when it samples "end of drawing". Defaults to True.
            return_params: Also return the per-step mixture parameters.

        Returns:
            A list of `batch_size` arrays `(len_i, columns)` in data units; with
            `return_params`, a tuple `(sequences, params)` where `params[i]` is
            `(len_i, params_size)`.
        """
        if n is not None:
            self.reset(n)
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ValueError(
                f"Received an invalid value for `max_steps`, expected a positive integer. Received: max_steps={max_steps!r}"
            )
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(
                f"Received an invalid value for `max_seconds`, expected a positive number. Received: max_seconds={max_seconds!r}"
            )
        loop = self._compiled.get(int(max_steps))
        if loop is None:
            loop = self._compiled[int(max_steps)] = self._build_loop(int(max_steps))
        seed = self._rng.integers(0, 2**31 - 1, size=2)
        limit = np.inf if max_seconds is None else float(max_seconds)
        outputs = loop(
            [tf.constant(x) for x in self._h], [tf.constant(x) for x in self._c],
            tf.constant(self._params), tf.constant(seed, tf.int32),
            tf.constant(float(self.temperature), tf.float32),
            tf.constant(float(self.sigma_temperature), tf.float32),
            tf.constant(self._elapsed, tf.float32), tf.constant(limit, tf.float32),
            tf.constant(bool(stop)),
        )
        h, c, last_params, rows, params, lengths, steps = outputs
        steps = int(steps)
        self._h = [x.numpy() for x in h]
        self._c = [x.numpy() for x in c]
        self._params = last_params.numpy()
        rows = rows.numpy()[:steps].transpose(1, 0, 2)  # [B, steps, columns]
        params = params.numpy()[:steps].transpose(1, 0, 2)  # [B, steps, P]
        lengths = lengths.numpy()
        sequences = [rows[i, : lengths[i]] for i in range(len(lengths))]
        if "dt" in self._columns():
            self._elapsed += np.array([s[:, self._columns().index("dt")].sum() for s in sequences])
        if return_params:
            return sequences, [params[i, : lengths[i]] for i in range(len(lengths))]
        return sequences

    # -------------------------------------------------------------- helpers
    def _columns(self):
        kind = self.config.data_kind
        if kind == "stroke3":
            return ["dx", "dy", "pen_lift"]
        if kind == "touch":
            return ["x", "y", "dt"]
        return ["dt"] + [f"x_{i}" for i in range(1, self.spec.dim)]

    def _start_rows(self, batch_size):
        """Model rows fed first: stroke-5 (0,0,1,0,0), stroke-3 (0,0,1), else the data mean."""
        rows = np.zeros((batch_size, self.config.input_size), np.float32)
        if self.spec.pen is not None:
            rows[:, 2] = 1.0
        return rows

    def _check_rows(self, rows, name):
        rows = np.asarray(rows, dtype=np.float32)
        width = len(self._columns())
        if rows.ndim != 2 or rows.shape[1] != width or len(rows) == 0:
            raise ValueError(
                f"`{name}` has shape {rows.shape}; expected (length >= 1, {width}) rows of "
                f"{', '.join(self._columns())}."
            )
        if not np.isfinite(rows).all():
            raise ValueError(f"`{name}` contains NaN or inf values.")
        return rows

    def _encode(self, rows):
        """Data rows -> model input rows (normalised; pen as stroke-5 one-hot or bit)."""
        dim = self.spec.dim
        values = (rows[:, :dim] - self._mean) / self._std
        if self.spec.pen is None:
            return values.astype(np.float32)
        pen = rows[:, dim]
        if self.spec.pen == "bernoulli":
            return np.concatenate([values, pen[:, None]], 1).astype(np.float32)
        return np.concatenate([values, 1.0 - pen[:, None], pen[:, None], np.zeros_like(pen)[:, None]], 1).astype(np.float32)

    def _advance(self, model_rows):
        """Feeds one model row per sequence; returns the next step's params (B, P)."""
        x = model_rows
        for layer, (kernel, bias) in enumerate(self._lstm):
            units = self._h[layer].shape[1]
            z = np.concatenate([x, self._h[layer]], 1) @ kernel + bias
            gates = 1.0 / (1.0 + np.exp(-z))  # i, f, o are sigmoids; slot c is recomputed as tanh
            c = gates[:, units : 2 * units] * self._c[layer] + gates[:, :units] * np.tanh(z[:, 2 * units : 3 * units])
            h = gates[:, 3 * units :] * np.tanh(c)
            self._h[layer], self._c[layer] = h, c
            x = h
        params = x @ self._head_kernel + self._head_bias
        params[:, self._scale_slice] = np.logaddexp(0.0, params[:, self._scale_slice]) + MIN_SCALE
        return params.astype(np.float32)

    def _sample_numpy(self, params):
        """One draw per row of `params`, the same distribution as `mixture_distribution`."""
        k, d = self.spec.components, self.spec.dim
        batch = params.shape[0]
        rng = self._rng
        component = _categorical(params[:, :k] / self.temperature, rng)
        loc = params[:, k : k + k * d].reshape(batch, k, d)[np.arange(batch), component]
        scale = params[:, k + k * d : k + 2 * k * d].reshape(batch, k, d)[np.arange(batch), component]
        values = loc + scale * np.sqrt(self.sigma_temperature) * rng.standard_normal((batch, d))
        if self.spec.pen is None:
            return values
        pen_logits = params[:, k + 2 * k * d :] / self.temperature
        if self.spec.pen == "bernoulli":
            pen = (rng.random(batch) < 1.0 / (1.0 + np.exp(-pen_logits[:, 0]))).astype(np.float64)
        else:
            pen = _categorical(pen_logits, rng).astype(np.float64)
        return np.concatenate([values, pen[:, None]], 1)

    def _decode_numpy(self, sample):
        """A model-space sample -> (data rows, model input rows for the next step)."""
        dim = self.spec.dim
        values = sample[:, :dim] * self._std + self._mean
        values = self._clip(values, np)
        model_values = (values - self._mean) / self._std
        if self.spec.pen is None:
            return values.astype(np.float32), model_values.astype(np.float32)
        pen = sample[:, dim]
        if self.spec.pen == "bernoulli":
            rows = np.concatenate([values, pen[:, None]], 1)
            return rows.astype(np.float32), self._encode(rows)
        end = pen == END_OF_DRAWING
        values = np.where(end[:, None], 0.0, values)
        model_values = np.where(end[:, None], 0.0, model_values)
        rows = np.concatenate([values, np.where(end, 1.0, pen)[:, None]], 1)
        one_hot = np.eye(3)[pen.astype(int)]
        return rows.astype(np.float32), np.concatenate([model_values, one_hot], 1).astype(np.float32)

    def _clip(self, values, xp):
        """Keeps touch x, y and IMPSY controls in [0, 1] and dt above `MIN_DT`."""
        kind = self.config.data_kind
        if kind == "stroke3":
            return values
        columns = self._columns()
        low = np.array([MIN_DT if c == "dt" else 0.0 for c in columns], np.float32)
        high = np.array([np.inf if c == "dt" else 1.0 for c in columns], np.float32)
        return xp.minimum(xp.maximum(values, low), high)

    def _build_loop(self, max_steps):
        spec, config = self.spec, self.config
        kernels = [(tf.constant(k), tf.constant(b)) for k, b in self._lstm]
        head_kernel, head_bias = tf.constant(self._head_kernel), tf.constant(self._head_bias)
        mean, std = tf.constant(self._mean), tf.constant(self._std)
        k, d = spec.components, spec.dim
        columns = self._columns()
        dt_index = columns.index("dt") if "dt" in columns else None
        scale_mask = np.zeros(spec.params_size, bool)
        scale_mask[self._scale_slice] = True
        scale_mask = tf.constant(scale_mask)

        def advance(x, hs, cs):
            new_h, new_c = [], []
            for (kernel, bias), h, c in zip(kernels, hs, cs):
                z = tf.matmul(tf.concat([x, h], 1), kernel) + bias
                i, f, g, o = tf.split(z, 4, axis=1)
                c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
                h = tf.sigmoid(o) * tf.tanh(c)
                new_h.append(h)
                new_c.append(c)
                x = h
            params = tf.matmul(x, head_kernel) + head_bias
            params = tf.where(scale_mask, tf.nn.softplus(params) + MIN_SCALE, params)
            return params, new_h, new_c

        def decode(sample):
            values = self._clip(sample[:, :d] * std + mean, tf.math)
            model_values = (values - mean) / std
            if spec.pen is None:
                return values, model_values, tf.zeros(tf.shape(values)[:1], tf.bool)
            pen = sample[:, d]
            if spec.pen == "bernoulli":
                rows = tf.concat([values, pen[:, None]], 1)
                return rows, tf.concat([model_values, pen[:, None]], 1), tf.zeros_like(pen, tf.bool)
            end = tf.equal(pen, END_OF_DRAWING)
            values = tf.where(end[:, None], 0.0, values)
            model_values = tf.where(end[:, None], 0.0, model_values)
            rows = tf.concat([values, tf.where(end, 1.0, pen)[:, None]], 1)
            one_hot = tf.one_hot(tf.cast(pen, tf.int32), 3)
            return rows, tf.concat([model_values, one_hot], 1), end

        @tf.function(reduce_retracing=True)
        def loop(hs, cs, params, seed, temperature, sigma_temperature, elapsed, limit, stop):
            batch = tf.shape(params)[0]
            rows_out = tf.TensorArray(tf.float32, size=max_steps)
            params_out = tf.TensorArray(tf.float32, size=max_steps)
            lengths = tf.zeros([batch], tf.int32)
            done = tf.zeros([batch], tf.bool)

            def body(t, hs, cs, params, elapsed, lengths, done, rows_out, params_out):
                step_seed = tf.random.experimental.stateless_fold_in(seed, t)
                sample = mixture_distribution(params, spec, temperature, sigma_temperature).sample(seed=step_seed)
                rows, model_rows, end = decode(sample)
                rows_out = rows_out.write(t, rows)
                params_out = params_out.write(t, params)
                ended = tf.logical_and(end, stop)
                lengths = lengths + tf.cast(tf.logical_and(~done, ~ended), tf.int32)
                if dt_index is not None:
                    elapsed = elapsed + tf.where(done, 0.0, rows[:, dt_index])
                    ended = tf.logical_or(ended, elapsed >= limit)
                done = tf.logical_or(done, ended)
                params, hs, cs = advance(model_rows, hs, cs)
                return t + 1, hs, cs, params, elapsed, lengths, done, rows_out, params_out

            def cond(t, hs, cs, params, elapsed, lengths, done, rows_out, params_out):
                return tf.logical_and(t < max_steps, ~tf.reduce_all(done))

            t, hs, cs, params, elapsed, lengths, done, rows_out, params_out = tf.while_loop(
                cond, body, [0, hs, cs, params, elapsed, lengths, done, rows_out, params_out]
            )
            return hs, cs, params, rows_out.stack(), params_out.stack(), lengths, t

        return loop


def _categorical(logits, rng):
    """One index per row of `logits` (B, N), drawn from softmax(logits)."""
    logits = logits - logits.max(axis=1, keepdims=True)
    cumulative = np.cumsum(np.exp(logits), axis=1)
    threshold = rng.random(len(logits)) * cumulative[:, -1]
    return np.minimum((cumulative < threshold[:, None]).sum(axis=1), logits.shape[1] - 1)
