"""Stateful, batched, autoregressive generation from a trained `MixtureRNN`.

Two exact paths share one set of weights, read from the model at every `reset()` and
`prime()` (so a generator made before more training starts new sequences with the new
weights; sequences already under way keep the weights they started with):
- `step()` runs the LSTM cells and the sampler as small NumPy kernels: at batch size 1
  that beats any TensorFlow call, whose fixed overhead alone is several times longer.
- `generate()` runs the whole loop (the step model's own Keras LSTM cells and head,
  sampling through `mixture_distribution`, stop rules) inside one XLA-compiled TensorFlow
  function, for any batch size.

Sequences go in and come out in the data's own units and columns (the store's rows):
stroke-3 (dx, dy, pen_lift), touch (x, y, dt) or IMPSY (dt, x_1 ... x_n).
"""

from __future__ import annotations

import contextlib
import threading
import weakref

import numpy as np
from threadpoolctl import ThreadpoolController

from mdnrnn._tf import tf
from mdnrnn import formats
from mdnrnn.temperature import Temperatures
from mdnrnn.mixture import MAX_CORRELATION_PARAM, MIN_SCALE, mixture_distribution
from mdnrnn.models import LayerNormLSTMCell, MixtureRNN, build_step_model
from mdnrnn.sampler import SamplerTables, sample_numpy

# Smallest dt (seconds) a generated touch or IMPSY row can have (see `mdnrnn.formats`).
MIN_DT = formats.MIN_DT
# Class index of the end-of-drawing pen state in a categorical (stroke-5) target.
END_OF_DRAWING = formats.END_OF_DRAWING


class Generator(Temperatures):
    """Samples new sequences, from scratch or continuing given prefixes.

    Args:
        model: A trained `MixtureRNN` (from `build_model` or `load_model`).
        temperature: Divides the mixture and pen logits and, unless `sigma_temperature`
            is set, also multiplies every component's variance (sketch-rnn's temperature).
            1.0 samples the model as trained; below 1 is more conservative (towards 0 it
            always takes the most likely component and pen state, at its mean); above 1
            is wilder. Defaults to 1.0.
        sigma_temperature: Multiplies every component's variance (covariance matrix) on
            its own; `None` means "the same as `temperature`". 1.0 leaves the spread as
            trained; smaller values give smoother, more average strokes. Defaults to
            `None`. From keras-mdn-layer (`temp=t, sigma_temp=s`): pass
            `temperature=t, sigma_temperature=s`.
        seed: Integer seed; the same seed gives the same output. Defaults to `None`
            (fresh randomness).
        min_steps: Stroke-5 models: "end of drawing" is not sampled (its probability is
            set to 0 and the other pen states renormalised) while a drawing has fewer
            than this many points, prefix included. `None`: the model's
            `config.min_steps` (set at training time to the shortest training drawing).
            Defaults to `None`.
        tempo: Tempo-conditioned touch models (`ModelConfig.tempo`): the touches per
            second of every performance started next. `None` draws one per performance
            from the training performances' tempos, and `prime` takes each prefix's
            own. Defaults to `None`.

    Both temperatures are live knobs: set `generator.temperature = 0.5` between steps;
    a new `generator.tempo` applies from the next `reset`, `generate` or `prime`.

    Raises:
        ValueError: If `model` is not a `MixtureRNN`, or a temperature is not a finite
            number above 0 (when made, or when set later).

    Example:

    >>> generator = Generator(model, temperature=0.8, seed=1)
    >>> drawings = generator.generate(n=16, max_steps=300)   # list of (len_i, 3) arrays
    >>> generator.prime([my_strokes])                         # continue what I drew
    >>> next_point = generator.step()                         # (1, 3)
    """

    def __init__(self, model: MixtureRNN, temperature=1.0, sigma_temperature=None, seed=None, min_steps=None,
                 tempo=None):
        if not isinstance(model, MixtureRNN):
            raise ValueError(
                f"Received an invalid value for `model`, expected a MixtureRNN. Received: {type(model).__name__}"
            )
        self.config = config = model.config
        self.spec = config.spec
        # The row codec: encodes inputs, start rows, decodes samples (see `mdnrnn.formats`).
        self.codec = config.codec()
        # The data's columns: what prefixes hold and outputs give.
        self.columns = list(self.codec.columns)
        self.tempo = tempo
        self.temperature = temperature
        self.sigma_temperature = sigma_temperature
        if min_steps is None:
            min_steps = config.min_steps
        if isinstance(min_steps, bool) or not isinstance(min_steps, (int, np.integer)) or min_steps < 0:
            raise ValueError(
                f"Received an invalid value for `min_steps`, expected an integer >= 0. Received: min_steps={min_steps!r}"
            )
        # The stop rule only applies where there is an end-of-drawing state.
        self.min_steps = int(min_steps) if self.spec.pen == "categorical" else 0
        self._rng = np.random.default_rng(seed)
        self._model = model
        k, d, c = self.spec.components, self.spec.dim, self.spec.correlation_size
        self._scale_slice = slice(k + k * d, k + 2 * k * d)
        self._correlation_slice = slice(k + 2 * k * d, k + 2 * k * d + k * c) if c else None
        self._tables = SamplerTables(self.spec)
        self._work = None  # preallocated NumPy work arrays for one batch size
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

        The start row (`formats.RowCodec.start_row`) is the stroke-5 start token
        (0, 0, 1, 0, 0), the stroke-3 row (0, 0, 1) (pen up at the origin), or for touch
        and IMPSY data a first event at the centre (values 0.5, dt 0), normalised; never
        all zeros, so the training model reads it as a real step, not padding.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(
                f"Received an invalid value for `batch_size`, expected a positive integer. Received: batch_size={batch_size!r}"
            )
        self._read_weights()
        self._zero_state(batch_size)
        self._last = self._start_rows(batch_size)
        with _blas_threads(batch_size):
            self._params = self._advance(self._last)

    def _read_weights(self):
        """Copies the model's current weights into the NumPy path's fused form.

        Called by `reset` and `prime` (a few hundred microseconds for a 2 x 256 model),
        so a generator made before more training samples from the trained weights as
        soon as it starts new sequences.
        """
        # One fused (input + units + 1, 4 * units) matrix per LSTM (see `_fused_cell_kernel`);
        # a layer-normalised cell keeps its own weights (see `_LayerNormCell`).
        self._cells = []
        for lstm in self._model.lstms:
            if isinstance(lstm.cell, LayerNormLSTMCell):
                self._cells.append(_LayerNormCell(lstm.cell))
                continue
            kernel, recurrent, bias = (w.numpy() for w in lstm.cell.weights)
            self._cells.append(_fused_cell_kernel(np.concatenate([kernel, recurrent], 0), bias))
        self._work = None
        dense = self._model.head.denses()
        self._head_kernel = np.concatenate([d.kernel.numpy() for d in dense], 1)
        self._head_bias = np.concatenate([d.bias.numpy() for d in dense], 0)

    def prime(self, prefixes):
        """Resets to one sequence per prefix and feeds the prefixes through the model.

        Drawings are fed after the start row, as in training; touch and IMPSY prefixes
        are fed as they are, as training windows begin (with a real row, from a zero
        state). Afterwards `step` and `generate` continue each prefix. A tempo-conditioned
        model reads each prefix with `tempo`, or when that is `None` with the prefix's
        own (`formats.touch_tempo`), so it goes on at the player's pace; a prefix of
        under a second counts as one second, so its tempo reads low.

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
        self._read_weights()
        self._zero_state(batch)
        with _blas_threads(batch):
            self._feed_prefixes(prefixes)

    def _feed_prefixes(self, prefixes):
        """Feeds checked prefixes (data rows) from the zero state; see `prime`."""
        batch = len(prefixes)
        self._last = self._start_rows(batch)
        if self.config.data_kind == "stroke3":
            self._params = self._advance(self._last)
        lengths = np.array([len(p) for p in prefixes])
        encoded = [self._encode_prefix(p) for p in prefixes]  # [len_i, input_size] each
        for t in range(lengths.max()):
            active = lengths > t
            rows = np.stack([p[min(t, len(p) - 1)] for p in prefixes])
            model_rows = np.stack([e[min(t, len(e) - 1)] for e in encoded])
            # The training model's Masking layer skips all-zero model rows (padding), and
            # so a real stroke-3 row (0, 0, 0): it keeps the state and the output. So here.
            fed = active & model_rows.any(axis=1)
            h, c = list(self._h), list(self._c)
            params = self._advance(model_rows)
            for layer in range(len(self._h)):  # finished prefixes keep their state
                self._h[layer] = np.where(fed[:, None], self._h[layer], h[layer])
                self._c[layer] = np.where(fed[:, None], self._c[layer], c[layer])
            self._params = np.where(fed[:, None], params, self._params)
            self._last = np.where(active[:, None], model_rows, self._last)
            self._points += active
            if "dt" in self.columns:
                self._elapsed += np.where(active, rows[:, self.columns.index("dt")], 0.0)

    def _zero_state(self, batch_size):
        units = self.config.units
        self._h = [np.zeros((batch_size, units), np.float32) for _ in self._cells]
        self._c = [np.zeros((batch_size, units), np.float32) for _ in self._cells]
        self._params = np.zeros((batch_size, self.spec.params_size), np.float32)
        self._elapsed = np.zeros(batch_size)
        self._points = np.zeros(batch_size, np.int64)  # rows so far (prefix included)

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
        with _blas_threads(len(params)):
            values, pen = self._sample_numpy(params, self._last)
            rows, model_rows = self.codec.decode(values, pen, self._last)
            self._params = self._advance(model_rows)
        self._last = model_rows
        self._points += 1
        if "dt" in self.columns:
            self._elapsed += rows[:, self.columns.index("dt")]
        return (rows, params) if return_params else rows

    # ------------------------------------------------------- whole sequences
    def generate(self, n=None, max_steps=1000, max_seconds=None, stop=True, return_params=False):
        """Generates whole sequences in one compiled loop.

        Continues the current state (after `prime`, `reset` or `step`) unless `n` is
        given, in which case it starts `n` fresh sequences.

        Args:
            n: Number of new sequences, or `None` to continue the current batch.
            max_steps: Step limit per sequence. Defaults to 1000.
            max_seconds: Time limit for touch and IMPSY data: the sum of dt since
                `reset` or `prime` (a prefix's time counts) never exceeds it. The row
                that would cross it is shortened to end exactly at the limit (or dropped,
                if less than `MIN_DT` would be left), and the sequence stops there.
                Ignored for drawings. Defaults to `None`.
            stop: Stop a stroke-5 drawing when it samples "end of drawing". Defaults to True.
            return_params: Also return the per-step mixture parameters.

        Returns:
            A list of `batch_size` arrays `(len_i, columns)` in data units; with
            `return_params`, a tuple `(sequences, params)` where `params[i]` is
            `(len_i, params_size)`. Each sequence's state (for later `step` or
            `generate` calls) is the one after its last returned row.

        Raises:
            ValueError: If `max_steps` is not a positive integer or `max_seconds` is not
                a positive number.
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
        loop = _compiled_loop(self._model, self.codec, int(max_steps))
        seed = self._rng.integers(0, 2**31 - 1, size=2)
        limit = np.inf if max_seconds is None else float(max_seconds)
        states = [tf.constant(x) for pair in zip(self._h, self._c) for x in pair]  # h_1, c_1, ...
        outputs = loop(
            states, tf.constant(self._params), tf.constant(self._last), tf.constant(seed, tf.int32),
            tf.constant(self.temperature, tf.float32),
            tf.constant(self.variance_scale, tf.float32),
            tf.constant(self._elapsed, tf.float32), tf.constant(limit, tf.float32),
            tf.constant(bool(stop)), tf.constant(int(max_steps), tf.int32),
            tf.constant(np.maximum(self.min_steps - self._points, 0), tf.int32),
        )
        states, last_params, last_rows, rows, params, lengths, steps = outputs
        steps = int(steps)
        self._h = [x.numpy() for x in states[0::2]]
        self._c = [x.numpy() for x in states[1::2]]
        self._params = last_params.numpy()
        self._last = last_rows.numpy()
        rows = rows.numpy()[:steps].transpose(1, 0, 2)  # [B, steps, columns]
        params = params.numpy()[:steps].transpose(1, 0, 2)  # [B, steps, P]
        lengths = lengths.numpy()
        sequences = [rows[i, : lengths[i]] for i in range(len(lengths))]
        self._points += lengths
        if self.codec.dt_index is not None:
            self._elapsed += np.array([s[:, self.codec.dt_index].sum() for s in sequences])
        if return_params:
            return sequences, [params[i, : lengths[i]] for i in range(len(lengths))]
        return sequences

    # -------------------------------------------------------------- helpers
    def _check_rows(self, rows, name):
        rows = np.asarray(rows, dtype=np.float32)
        width = len(self.columns)
        if rows.ndim != 2 or rows.shape[1] != width or len(rows) == 0:
            raise ValueError(
                f"`{name}` has shape {rows.shape}; expected (length >= 1, {width}) rows of "
                f"{', '.join(self.columns)}."
            )
        if not np.isfinite(rows).all():
            raise ValueError(f"`{name}` contains NaN or inf values.")
        return rows

    # The NumPy path below runs once per `step`, so at batch size 1 its cost is mostly
    # the fixed overhead of each NumPy call: it keeps calls few, works in place in
    # preallocated float32 arrays and draws the random numbers of a step in two calls.

    def _work_arrays(self, batch_size):
        """Preallocated arrays, and views into them, for one batch size (the last used)."""
        if self._work is not None and self._work[0] == batch_size:
            return self._work
        layers = []
        for kernel in self._cells:
            if isinstance(kernel, _LayerNormCell):
                layers.append((kernel,))
                continue
            units = kernel.shape[1] // 4
            inputs = kernel.shape[0] - units - 1
            xh = np.zeros((batch_size, inputs + units + 1), np.float32)  # [x, h, 1]
            xh[:, -1] = 1.0  # multiplies the bias row of the fused kernel
            z = np.empty((batch_size, 4 * units), np.float32)  # gates [i, f, o, g]
            tanh_c = np.empty((batch_size, units), np.float32)
            i, f, o, g = (z[:, j * units : (j + 1) * units] for j in range(4))
            sigmoid = z[:, : 3 * units]
            layers.append((kernel, xh, xh[:, :inputs], xh[:, inputs:-1], z, sigmoid, i, f, o, g, tanh_c))
        self._work = (batch_size, layers)
        return self._work

    def _advance(self, model_rows):
        """Feeds one model row per sequence; returns the next step's params (B, P).

        Each LSTM is one matrix product with the fused kernel, `[x, h, 1] @ kernel`,
        and a single `tanh` over all four gates: the sigmoid gates come out as
        `0.5 * tanh(z / 2) + 0.5`, which is the sigmoid (the kernel's sigmoid columns
        hold the halved weights). The new states are fresh arrays, so callers may keep
        the old ones.
        """
        _, layers = self._work_arrays(len(model_rows))
        x = model_rows
        for layer, work in enumerate(layers):
            if len(work) == 1:  # a layer-normalised cell
                x, self._c[layer] = work[0](x, self._h[layer], self._c[layer])
                self._h[layer] = x
                continue
            kernel, xh, x_slot, h_slot, z, sigmoid, i, f, o, g, tanh_c = work
            x_slot[...] = x
            h_slot[...] = self._h[layer]
            np.matmul(xh, kernel, out=z)
            np.tanh(z, out=z)
            np.multiply(sigmoid, _HALF, out=sigmoid)
            np.add(sigmoid, _HALF, out=sigmoid)
            c = f * self._c[layer]  # c = f * c + i * g
            g *= i
            c += g
            x = o * np.tanh(c, out=tanh_c)  # h
            self._h[layer], self._c[layer] = x, c
        params = x @ self._head_kernel
        params += self._head_bias
        scale = params[:, self._scale_slice]  # the spec's activation, as `MixtureDensity` does
        if self.spec.scale_activation == "elu":  # elu(x) + 1 = exp(min(x, 0)) + max(x, 0)
            positive = np.maximum(scale, _ZERO)
            np.minimum(scale, _ZERO, out=scale)
            np.exp(scale, out=scale)
            scale += positive
        else:
            np.logaddexp(_ZERO, scale, out=scale)  # softplus
        np.add(scale, _MIN_SCALE, out=scale)
        if self._correlation_slice is not None:  # bounded, as `MixtureDensity` does
            correlation = params[:, self._correlation_slice]
            correlation *= 1.0 / _MAX_CORRELATION_PARAM
            np.tanh(correlation, out=correlation)
            correlation *= _MAX_CORRELATION_PARAM
        return params

    def _sample_numpy(self, params, previous=None):
        """One draw per row of `params` (`mdnrnn.sampler.sample_numpy`, with this
        generator's temperatures, `min_steps` and, given the model rows fed last, the
        row codec's bounds).

        Returns:
            `(values, pen)`: model-space values `(B, D)`, and the pen `(B,)` (a class
            index for stroke-5, a 0/1 float for stroke-3) or `None` without a pen.
        """
        no_end = self._points < self.min_steps if self.min_steps else None
        return sample_numpy(
            params, self._tables, self._rng, self.temperature, self.variance_scale, no_end, self.codec, previous
        )


# Constants of the NumPy path as 0-d float32 arrays: NumPy applies these faster than
# Python floats, and they keep every array float32.
_ZERO, _HALF, _MIN_SCALE, _MAX_CORRELATION_PARAM = (
    np.array(value, np.float32) for value in (0.0, 0.5, MIN_SCALE, MAX_CORRELATION_PARAM)
)


# The end-of-drawing logit while `min_steps` holds it back: exp(-1e30 / T) is 0 for any T.
_NO_END_LOGIT = np.float32(-1e30)

# model -> {steps: compiled generation loop}; `_compiled_loop` rounds the steps up.
_LOOPS = weakref.WeakKeyDictionary()
# Smallest number of steps a compiled loop is built for.
_MIN_LOOP_STEPS = 32


# Batch sizes up to this run the NumPy kernels on one BLAS thread (see `_blas_threads`).
SINGLE_THREAD_MAX_BATCH = 16


class _OneBlasThread:
    """Holds NumPy's BLAS (OpenBLAS, MKL, ...) to one thread while entered.

    At batch size 1 the LSTM step is a few matrix-vector products of about 0.1 ms each;
    OpenBLAS splits them over every core, and on a busy machine waiting for the other
    cores' share made a 2 x 256 touch model's `step()` take 8 ms instead of 0.3 ms. The
    libraries come from threadpoolctl, found once; entering and leaving costs a few
    microseconds (two library calls each way). Nested and concurrent uses share one hold:
    the first to enter sets one thread, the last to leave restores the old counts.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._libraries = None
        self._saved = []

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                if self._libraries is None:
                    self._libraries = ThreadpoolController().select(user_api="blas").lib_controllers
                self._saved = [library.get_num_threads() for library in self._libraries]
                for library, threads in zip(self._libraries, self._saved):
                    if threads != 1:
                        library.set_num_threads(1)
            self._depth += 1

    def __exit__(self, *exc_info):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for library, threads in zip(self._libraries, self._saved):
                    if threads != 1:
                        library.set_num_threads(threads)


_ONE_BLAS_THREAD = _OneBlasThread()
_NO_LIMIT = contextlib.nullcontext()


def _blas_threads(batch_size):
    """One BLAS thread for batches up to `SINGLE_THREAD_MAX_BATCH`; no change above."""
    return _ONE_BLAS_THREAD if batch_size <= SINGLE_THREAD_MAX_BATCH else _NO_LIMIT


def _compiled_loop(model, codec, max_steps):
    """The compiled generation loop of `model` that covers `max_steps` steps.

    Loops are built for a power of two of steps (at least `_MIN_LOOP_STEPS`) and stop at
    `max_steps`, so a handful of compiled shapes serve every call: 32, 64, ..., 1024 for
    up to 1,024 steps. They are kept per model, and go when the model does.
    """
    size = max(_MIN_LOOP_STEPS, 1 << (max_steps - 1).bit_length())
    loops = _LOOPS.setdefault(model, {})
    if size not in loops:
        loops[size] = _generation_loop(model, codec, size)
    return loops[size]


def _generation_loop(model, codec, size):
    """The whole-sequence loop of `model` for up to `size` steps, XLA-compiled.

    Each step samples through `mixture_distribution`, decodes with the row codec
    (`codec.decode_tf`) and runs the step model's Keras LSTM cells and head
    (`build_step_model`), which read the model's variables: the loop always runs the
    current weights. A finished sequence keeps its state; see `Generator.generate`.
    """
    spec = model.config.spec
    step_model = build_step_model(model)
    units, layers = model.config.units, model.config.layers
    step_model([np.zeros((1, codec.input_size), np.float32)] + [np.zeros((1, units), np.float32)] * (2 * layers))
    dt = codec.dt_index

    @tf.function(reduce_retracing=True, jit_compile=True)
    def loop(states, params, last, seed, temperature, sigma_temperature, elapsed, limit, stop, max_steps, points_to_go):
        batch = tf.shape(params)[0]
        rows_out = tf.TensorArray(tf.float32, size=size)
        params_out = tf.TensorArray(tf.float32, size=size)
        lengths = tf.zeros([batch], tf.int32)
        done = tf.zeros([batch], tf.bool)

        def body(t, states, params, last, elapsed, lengths, done, rows_out, params_out):
            step_seed = tf.random.experimental.stateless_fold_in(seed, t)
            sampled = params
            if spec.pen == "categorical":  # min_steps: no "end of drawing" before it
                blocked = (t < points_to_go)[:, None]
                sampled = tf.concat([params[:, :-1], tf.where(blocked, _NO_END_LOGIT, params[:, -1:])], 1)
            distribution = mixture_distribution(sampled, spec, temperature, sigma_temperature)
            if codec.draws == 1:
                samples = distribution.sample(1, seed=step_seed)
            else:  # bounded rows (no pen): one component per row, `draws` values from it
                component_seed, values_seed, mixture_seed = tf.unstack(
                    tf.random.experimental.stateless_split(step_seed, 3)
                )
                component = distribution.mixture_distribution.sample(seed=component_seed)  # [B]
                values = distribution.components_distribution.sample(codec.draws, seed=values_seed)  # [n, B, K, D]
                values = tf.transpose(values, [1, 0, 2, 3])  # [B, n, K, D]
                samples = tf.transpose(tf.gather(values, component, axis=2, batch_dims=1), [1, 0, 2])  # [n, B, D]
                # Then fresh components too, for rows whose component has nothing inside.
                samples = tf.concat([samples, distribution.sample(codec.draws, seed=mixture_seed)], 0)
            rows, model_rows, end = codec.decode_tf(samples, last)
            finished = tf.logical_and(end, stop)
            keep = tf.logical_and(~done, ~finished)  # the row belongs to its sequence
            if dt is not None:  # the time limit: shorten the row that crosses it
                left = limit - elapsed
                crossing = rows[:, dt] >= left
                keep = tf.logical_and(keep, ~tf.logical_and(crossing, left < formats.MIN_DT))
                rows = tf.concat([rows[:, :dt], tf.minimum(rows[:, dt : dt + 1], left[:, None]), rows[:, dt + 1 :]], 1)
                model_rows = tf.where(crossing[:, None], codec.encode_tf(rows, last), model_rows)
                elapsed = elapsed + tf.where(keep, rows[:, dt], 0.0)
                finished = tf.logical_or(finished, crossing)
            rows_out = rows_out.write(t, rows)
            params_out = params_out.write(t, params)
            lengths = lengths + tf.cast(keep, tf.int32)
            outputs = step_model([model_rows, *states])
            params = tf.where(keep[:, None], outputs[0], params)
            states = [tf.where(keep[:, None], new, old) for new, old in zip(outputs[1:], states)]
            last = tf.where(keep[:, None], model_rows, last)
            done = tf.logical_or(done, finished)
            return t + 1, states, params, last, elapsed, lengths, done, rows_out, params_out

        def cond(t, states, params, last, elapsed, lengths, done, rows_out, params_out):
            return tf.logical_and(t < max_steps, ~tf.reduce_all(done))

        t, states, params, last, elapsed, lengths, done, rows_out, params_out = tf.while_loop(
            cond, body, [0, states, params, last, elapsed, lengths, done, rows_out, params_out]
        )
        return states, params, last, rows_out.stack(), params_out.stack(), lengths, t

    return loop


class _LayerNormCell:
    """A `LayerNormLSTMCell`'s inference step in NumPy, with the weights read once."""

    def __init__(self, cell):
        self.kernel = np.concatenate([cell.kernel.numpy(), cell.recurrent_kernel.numpy()], 0)  # [in + U, 4U]
        self.gamma, self.beta = cell.gamma.numpy(), cell.beta.numpy()  # [4, U]
        self.gamma_c, self.beta_c = cell.gamma_c.numpy(), cell.beta_c.numpy()  # [U]
        self.epsilon = np.float32(cell.epsilon)
        self.units = cell.units

    def _normalise(self, z, gamma, beta):
        z = z - z.mean(-1, keepdims=True)
        return gamma * z / np.sqrt((z * z).mean(-1, keepdims=True) + self.epsilon) + beta

    def __call__(self, x, h, c):
        """One step: returns the new `(h, c)`."""
        z = np.concatenate([x, h], 1) @ self.kernel  # [B, 4U]
        z = self._normalise(z.reshape(len(z), 4, self.units), self.gamma, self.beta)  # [B, gate, U]
        i, f, g, o = 1 / (1 + np.exp(-z[:, 0])), 1 / (1 + np.exp(-z[:, 1])), np.tanh(z[:, 2]), z[:, 3]
        c = f * c + i * g
        h = np.tanh(self._normalise(c, self.gamma_c, self.beta_c)) / (1 + np.exp(-o))
        return h.astype(np.float32), c.astype(np.float32)


def _fused_cell_kernel(kernel, bias):
    """An LSTM cell's weights as one `(inputs + units + 1, 4 * units)` matrix.

    Rows: input kernel, recurrent kernel, bias. Columns: gates in the order i, f, o, g
    (Keras stores i, f, g, o), with the three sigmoid gates' columns halved so that
    `sigmoid(z) = 0.5 * tanh(z / 2) + 0.5` needs no division (halving is exact).
    """
    fused = np.concatenate([kernel, bias[None]], 0).astype(np.float32)
    i, f, g, o = np.split(fused, 4, axis=1)
    # Stored transposed (a Fortran-ordered view of a C-ordered array): at batch size 1,
    # OpenBLAS's matrix-vector product is faster on this layout for the larger LSTMs.
    return np.ascontiguousarray(np.concatenate([0.5 * i, 0.5 * f, 0.5 * o, g], 1).T).T
