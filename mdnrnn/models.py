"""Model configuration, named presets, the training model, the step model, save/load.

The training model reads whole sequences `(batch_size, timesteps, input_size)` and
returns the mixture parameters `(batch_size, timesteps, params_size)` at every step; an
all-zero input row is padding and is masked (the LSTMs skip it and the loss ignores it).
The step model reads one step plus explicit LSTM states and shares the same layers.
Input rows are the model-side encoding of the data (see `mdnrnn.formats`): stroke-5 rows
for a categorical pen, stroke-3 rows for a Bernoulli pen, and the continuous columns as
they are for touch and IMPSY data, all normalised with the config's `mean` and `std`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import zipfile

import numpy as np

from mdnrnn._tf import keras
from mdnrnn.formats import DT_SCALES, TARGETS, RowCodec
from mdnrnn.mixture import MixtureDensity, MixtureNLL, MixtureSpec

DATA_KINDS = ("stroke3", "touch", "impsy")
CELLS = ("lstm", "layer_norm")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and to use it for generation.

    Args:
        spec: The `MixtureSpec` of the head (continuous dims, components, pen kind).
        data_kind: Kind of sequence store the model reads and writes: `"stroke3"`
            (dx, dy + pen; the pen kind picks stroke-5 or stroke-3 model rows),
            `"touch"` (x, y, dt) or `"impsy"` (dt, x_1 ... x_n).
        units: LSTM units per layer. Defaults to 256.
        layers: Number of stacked LSTM layers. Defaults to 2.
        dropout: Dropout on each LSTM's inputs during training. Defaults to 0.0.
        cell: `"lstm"` (Keras' LSTM) or `"layer_norm"` (sketch-rnn's layer-normalised
            LSTM, `LayerNormLSTMCell`). Defaults to `"lstm"`.
        recurrent_dropout: Dropout during training only: for `"layer_norm"`, sketch-rnn's
            recurrent dropout on the cell's candidate values (Semeniuta et al. 2016); for
            `"lstm"`, Keras' dropout on the recurrent state. Defaults to 0.0.
        mean: Per continuous column, the training data's mean; `None` means zeros.
        std: Per continuous column, the training data's standard deviation; `None`
            means ones. Model rows hold `(value - mean) / std`.
        preset: Name of the preset this config came from, if any (informational).
        targets: What the model predicts at each step: `"rows"`, the next row as it is
            (in model units), or `"offsets"` (touch and IMPSY models): positions and
            controller values as their change from the previous row, dt as it is. Inputs
            are the rows either way. Defaults to `"rows"`.
        min_steps: For a stroke-5 (categorical pen) model, generation never samples "end
            of drawing" before a drawing has this many points (see `Generator`). Training
            sets it to the shortest drawing of the train split; 0 turns the rule off.
            Defaults to 0.
        dt_scale: Touch and IMPSY models: `"linear"`, dt as it is, or `"log"`, the model
            reads and predicts `log(dt + formats.LOG_DT_SHIFT)` (`mean` and `std` of the
            dt column are then the logarithm's; with `beats`, of the converted dt; see
            `formats.RowCodec`). Defaults to
            `"linear"`.
        tempo: Touch models: condition on each performance's tempo (touches per second,
            `formats.touch_tempo`), an extra input column (see `formats.RowCodec`).
            Generation takes a tempo per sequence (`Generator.tempo`), by default drawn
            from the training performances', so each generated performance keeps one.
            Defaults to False.
        beats: With `tempo`: the pauses between touches in beats of each
            performance's tempo rather than in seconds, in what the model reads and
            predicts (`formats.dt_in_beats`: dt within a swipe stays in seconds; `mean`
            and `std` of the dt column are then those of the converted dt; see
            `formats.RowCodec`). Defaults to False.
        tempo_quantiles: With `tempo`: `formats.TEMPO_QUANTILES` evenly spaced quantiles
            of the train split's tempos, set by training (`train.prepare_config`).
            Defaults to `None`.

    Raises:
        ValueError: If a field is out of range or does not fit `data_kind`.
    """

    spec: MixtureSpec
    data_kind: str = "stroke3"
    units: int = 256
    layers: int = 2
    dropout: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    preset: str | None = None
    min_steps: int = 0
    cell: str = "lstm"
    recurrent_dropout: float = 0.0
    targets: str = "rows"
    dt_scale: str = "linear"
    tempo: bool = False
    beats: bool = False
    tempo_quantiles: tuple[float, ...] | None = None

    def __post_init__(self):
        if isinstance(self.spec, dict):
            object.__setattr__(self, "spec", MixtureSpec.from_config(self.spec))
        if self.data_kind not in DATA_KINDS:
            raise ValueError(
                f"Received an invalid value for `data_kind`, expected one of {DATA_KINDS}. "
                f"Received: data_kind={self.data_kind!r}"
            )
        for name in ("units", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"Received an invalid value for `{name}`, expected a positive integer. "
                    f"Received: {name}={value!r}"
                )
        if isinstance(self.min_steps, bool) or not isinstance(self.min_steps, int) or self.min_steps < 0:
            raise ValueError(
                "Received an invalid value for `min_steps`, expected an integer >= 0. "
                f"Received: min_steps={self.min_steps!r}"
            )
        for name in ("dropout", "recurrent_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(
                    f"Received an invalid value for `{name}`, expected a float in [0, 1). "
                    f"Received: {name}={getattr(self, name)!r}"
                )
        if self.cell not in CELLS:
            raise ValueError(
                f"Received an invalid value for `cell`, expected one of {CELLS}. Received: cell={self.cell!r}"
            )
        stroke = self.data_kind == "stroke3"
        if self.targets not in TARGETS or (stroke and self.targets != "rows"):
            raise ValueError(
                f"Received an invalid value for `targets`, expected one of {TARGETS} ('offsets' "
                f"for touch and IMPSY models only; drawings are offsets already). Received: "
                f"data_kind={self.data_kind!r}, targets={self.targets!r}"
            )
        if self.dt_scale not in DT_SCALES or (stroke and self.dt_scale != "linear"):
            raise ValueError(
                f"Received an invalid value for `dt_scale`, expected one of {DT_SCALES} ('log' for "
                f"touch and IMPSY models only: drawings have no dt). Received: "
                f"data_kind={self.data_kind!r}, dt_scale={self.dt_scale!r}"
            )
        if stroke and (self.spec.pen is None or self.spec.dim != 2):
            raise ValueError(
                "A `data_kind='stroke3'` model needs a spec with dim=2 and a pen "
                f"('bernoulli' or 'categorical'). Received: spec={self.spec}"
            )
        if not stroke and self.spec.pen is not None:
            raise ValueError(
                f"A `data_kind={self.data_kind!r}` model has no pen column; use pen=None. "
                f"Received: spec={self.spec}"
            )
        if self.data_kind == "touch" and self.spec.dim != 3:
            raise ValueError(
                f"A touch model has dim=3 (x, y, dt). Received: spec={self.spec}"
            )
        if not isinstance(self.tempo, bool) or (self.tempo and self.data_kind != "touch"):
            raise ValueError(
                "Received an invalid value for `tempo`, expected True (touch models only) or False. "
                f"Received: data_kind={self.data_kind!r}, tempo={self.tempo!r}"
            )
        if not isinstance(self.beats, bool) or (self.beats and not self.tempo):
            raise ValueError(
                "Received an invalid value for `beats`, expected True (tempo-conditioned touch models "
                f"only) or False. Received: tempo={self.tempo!r}, beats={self.beats!r}"
            )
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is None:
                continue
            value = tuple(float(v) for v in value)
            if len(value) != self.spec.dim or not all(np.isfinite(value)):
                raise ValueError(
                    f"Received an invalid value for `{name}`, expected {self.spec.dim} finite "
                    f"numbers (one per continuous column). Received: {name}={value!r}"
                )
            if name == "std" and min(value) <= 0:
                raise ValueError(f"`std` must be positive. Received: std={value!r}")
            object.__setattr__(self, name, value)
        if self.tempo_quantiles is not None:
            if not self.tempo:
                raise ValueError("`tempo_quantiles` belong to a tempo-conditioned model; set `tempo=True`.")
            try:
                object.__setattr__(self, "tempo_quantiles", tuple(float(v) for v in self.tempo_quantiles))
            except (TypeError, ValueError):
                raise ValueError("Received an invalid value for `tempo_quantiles`, expected a sequence of "
                                 f"numbers. Received: tempo_quantiles={self.tempo_quantiles!r}") from None
            self.codec()  # checks them

    @property
    def input_size(self) -> int:
        """Width of a model input row (`mdnrnn.formats.RowCodec`): the continuous dims,
        the pen encoding, with offset targets the offset columns' changes, and the tempo."""
        return RowCodec(self.data_kind, self.spec.dim, self.spec.pen, targets=self.targets).input_size + int(self.tempo)

    def codec(self) -> RowCodec:
        """The model's row codec: its kind, pen, normalisation, targets, dt scale and tempo.

        Raises:
            ValueError: for a tempo-conditioned config without its `tempo_quantiles`.
        """
        if self.tempo and self.tempo_quantiles is None:
            raise ValueError("This config is conditioned on tempo but has no `tempo_quantiles` yet; "
                             "`train.prepare_config` sets them from the train split.")
        return RowCodec(self.data_kind, self.spec.dim, self.spec.pen, *self.normalisation, self.targets,
                        self.dt_scale, self.tempo_quantiles, self.beats)

    @property
    def normalisation(self) -> tuple[np.ndarray, np.ndarray]:
        """`(mean, std)` as float32 arrays of length `spec.dim`."""
        dim = self.spec.dim
        mean = np.zeros(dim, np.float32) if self.mean is None else np.asarray(self.mean, np.float32)
        std = np.ones(dim, np.float32) if self.std is None else np.asarray(self.std, np.float32)
        return mean, std

    def replace(self, **changes) -> "ModelConfig":
        """Returns a copy with fields changed; `dim`, `components`, `pen`, `covariance` and
        `scale_activation` change the spec."""
        spec_fields = ("dim", "components", "pen", "covariance", "scale_activation")
        spec_changes = {k: changes.pop(k) for k in spec_fields if k in changes}
        if spec_changes:
            changes["spec"] = dataclasses.replace(self.spec, **spec_changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        config = dataclasses.asdict(self)
        config["spec"] = self.spec.get_config()
        return config

    @classmethod
    def from_dict(cls, config: dict) -> "ModelConfig":
        return cls(**config)


# Named presets. Sizes follow the tools people use today: sketch-rnn's decoder for
# sketches, RoboJam for touch performances, IMPSY's default for controllers.
PRESETS: dict[str, ModelConfig] = {
    # Kanji drawings: stroke-5 rows, so generated characters end by themselves. Layer-
    # normalised cells: at 400 equal steps on short_kanji they took the held-out NLL from
    # 0.567 to 0.004 nats/step (docs/quality.md).
    "kanji": ModelConfig(
        MixtureSpec(dim=2, components=10, pen="categorical"), "stroke3", units=256, layers=2,
        cell="layer_norm",
    ),
    # Larger stroke-5 model for sketch-rnn's QuickDraw sets (sketch-rnn's cell, as kanji).
    "sketch": ModelConfig(
        MixtureSpec(dim=2, components=20, pen="categorical"), "stroke3", units=512, layers=2,
        cell="layer_norm",
    ),
    # Endless stroke-3 streams (no end-of-drawing state).
    "stroke3": ModelConfig(
        MixtureSpec(dim=2, components=10, pen="bernoulli"), "stroke3", units=256, layers=2
    ),
    # RoboJam-sized touch-screen performances: x, y, dt. Positions predicted as offsets
    # from the previous touch: smooth swipes that stay on the screen (docs/benchmarks.md).
    "touch": ModelConfig(MixtureSpec(dim=3, components=5), "touch", units=256, layers=2, targets="offsets"),
    # IMPSY controllers: dt + n controls (dim = 1 + n; set dim from the data).
    "impsy": ModelConfig(MixtureSpec(dim=2, components=5), "impsy", units=64, layers=2),
}


def preset(name: str, **overrides) -> ModelConfig:
    """Returns the named preset, with any fields overridden (see `ModelConfig.replace`).

    Raises:
        ValueError: If `name` is not a known preset.
    """
    if name not in PRESETS:
        raise ValueError(
            f"Unknown preset {name!r}; expected one of {', '.join(sorted(PRESETS))}."
        )
    return PRESETS[name].replace(preset=name, **overrides)


@keras.saving.register_keras_serializable(package="mdnrnn")
class LayerNormLSTMCell(keras.layers.Layer):
    """sketch-rnn's layer-normalised LSTM cell, with recurrent dropout.

    With `z = x @ kernel + h @ recurrent_kernel` split into the gates i, f, g, o (Keras'
    order), each gate is layer-normalised on its own, `LN(z) = gamma * (z - mean) /
    sqrt(var + epsilon) + beta` over its `units` values, then

        c' = sigmoid(f) * c + sigmoid(i) * dropout(tanh(g))
        h' = sigmoid(o) * tanh(LN_c(c'))

    The gates' `beta` replaces the bias; the forget gate's starts at 1.0.

    Args:
        units: Positive integer, the state size.
        dropout: Fraction of the inputs `x` dropped during training (a fresh mask at
            every step). Defaults to 0.0.
        recurrent_dropout: Fraction of the candidate values `tanh(g)` dropped during
            training (Semeniuta et al. 2016, "recurrent dropout without memory loss").
            Defaults to 0.0.
        epsilon: Added to the variance. Defaults to 1e-3 (sketch-rnn's).
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: `(batch_size, input_size)`.
        states: `[h, c]`, each `(batch_size, units)`.
        training: Whether dropout is active.

    Returns:
        `(h', [h', c'])`, as Keras' `LSTMCell`.

    Example:

    >>> layer = keras.layers.RNN(LayerNormLSTMCell(32), return_sequences=True)
    >>> layer(np.zeros([2, 7, 5], "float32")).shape
    TensorShape([2, 7, 32])
    """

    def __init__(self, units, dropout=0.0, recurrent_dropout=0.0, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(
                f"Received an invalid value for `units`, expected a positive integer. Received: units={units!r}"
            )
        for name, value in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= value < 1.0:
                raise ValueError(
                    f"Received an invalid value for `{name}`, expected a float in [0, 1). "
                    f"Received: {name}={value!r}"
                )
        self.dropout = float(dropout)
        self.units = units
        self.recurrent_dropout = float(recurrent_dropout)
        self.epsilon = float(epsilon)
        self.state_size = [units, units]
        self.output_size = units
        self.input_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.recurrent_dropout_layer = keras.layers.Dropout(self.recurrent_dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        units = self.units
        self.kernel = self.add_weight(shape=(input_shape[-1], 4 * units), initializer="glorot_uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(units, 4 * units), initializer="orthogonal",
                                                name="recurrent_kernel")
        self.gamma = self.add_weight(shape=(4, units), initializer="ones", name="gamma")
        beta = np.zeros((4, units), np.float32)
        beta[1] = 1.0  # forget gate
        self.beta = self.add_weight(shape=(4, units), initializer=keras.initializers.Constant(beta), name="beta")
        self.gamma_c = self.add_weight(shape=(units,), initializer="ones", name="gamma_c")
        self.beta_c = self.add_weight(shape=(units,), initializer="zeros", name="beta_c")

    def _normalise(self, z, gamma, beta):
        # In float32 whatever the compute dtype (bfloat16 means and variances are coarse).
        z = keras.ops.cast(z, "float32")
        mean = keras.ops.mean(z, axis=-1, keepdims=True)
        variance = keras.ops.var(z, axis=-1, keepdims=True)
        out = keras.ops.cast(gamma, "float32") * (z - mean) * keras.ops.rsqrt(variance + self.epsilon)
        return keras.ops.cast(out + keras.ops.cast(beta, "float32"), self.compute_dtype)

    def call(self, inputs, states, training=False):
        h, c = states[0], states[1]
        inputs = self.input_dropout(inputs, training=training)
        z = keras.ops.matmul(inputs, self.kernel) + keras.ops.matmul(h, self.recurrent_kernel)  # [B, 4U]
        z = keras.ops.reshape(z, (-1, 4, self.units))  # [B, gate, U]
        z = self._normalise(z, self.gamma, self.beta)
        i, f, g, o = (z[:, j] for j in range(4))
        g = self.recurrent_dropout_layer(keras.ops.tanh(g), training=training)
        c = keras.ops.sigmoid(f) * c + keras.ops.sigmoid(i) * g
        h = keras.ops.sigmoid(o) * keras.ops.tanh(self._normalise(c, self.gamma_c, self.beta_c))
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="mdnrnn")
class MixtureRNN(keras.Model):
    """LSTM stack with a mixture density head at every step.

    Args:
        config: A `ModelConfig` (or its dict form).
        **kwargs: Base model arguments (`name`, ...). `dtype="mixed_bfloat16"` runs the
            LSTM stack in bfloat16 (weights stay float32; the head and the loss run in
            float32): a training-speed setting (`build_model`'s `precision`), not part of
            the model, so a saved model loads as float32.

    Call arguments:
        inputs: `(batch_size, timesteps, input_size)`; all-zero rows are padding.
        training: Whether dropout is active.

    Returns:
        Parameters `(batch_size, timesteps, params_size)`, carrying the padding mask.
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        self.config = config
        policy = self.dtype_policy
        self.masking = keras.layers.Masking(mask_value=0.0, name="masking", dtype=policy)
        if config.cell == "layer_norm":
            self.lstms = [
                keras.layers.RNN(
                    LayerNormLSTMCell(config.units, dropout=config.dropout,
                                      recurrent_dropout=config.recurrent_dropout, dtype=policy),
                    return_sequences=True, name=f"lstm_{i}", dtype=policy,
                )
                for i in range(config.layers)
            ]
        else:
            self.lstms = [
                keras.layers.LSTM(
                    config.units, return_sequences=True, dropout=config.dropout,
                    recurrent_dropout=config.recurrent_dropout, name=f"lstm_{i}", dtype=policy,
                )
                for i in range(config.layers)
            ]
        self.head = MixtureDensity(config.spec, name="head", dtype="float32")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for lstm in self.lstms:
            lstm.build(shape)
            shape = shape[:-1] + (self.config.units,)
        self.head.build(shape)
        self.built = True

    def call(self, inputs, training=False):
        mask = self.masking.compute_mask(inputs)
        x = inputs
        for lstm in self.lstms:
            x = lstm(x, mask=mask, training=training)
        return self.head(x)

    def compute_mask(self, inputs, mask=None):
        return self.masking.compute_mask(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.config.spec.params_size,)

    def get_config(self):
        return {"name": self.name, "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam settings for training.

    Args:
        learning_rate: Initial learning rate. Defaults to 1e-3.
        clipnorm: Gradient norm clipping (sketch-rnn and RoboJam clip at 1.0); 0 means
            no clipping. Defaults to 1.0.
        decay_rate: Per optimizer step, sketch-rnn's schedule
            `(learning_rate - min_learning_rate) * decay_rate**step + min_learning_rate`;
            1.0 keeps the rate constant (sketch-rnn uses 0.9999). Defaults to 1.0.
        min_learning_rate: The floor of the decay. Defaults to 1e-5.

    Raises:
        ValueError: If a field is out of range.
    """

    learning_rate: float = 1e-3
    clipnorm: float = 1.0
    decay_rate: float = 1.0
    min_learning_rate: float = 1e-5

    def __post_init__(self):
        checks = {
            "learning_rate": (0 < self.learning_rate <= 1, "a number in (0, 1]"),
            "clipnorm": (0 <= self.clipnorm < float("inf"), "a finite number >= 0 (0: no clipping)"),
            "decay_rate": (0 < self.decay_rate <= 1, "a number in (0, 1]"),
            "min_learning_rate": (0 <= self.min_learning_rate <= self.learning_rate,
                                  "a number in [0, learning_rate]"),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise ValueError(
                    f"Received an invalid value for `{name}`, expected {expected}. "
                    f"Received: {name}={getattr(self, name)!r}"
                )

    def make(self) -> "keras.optimizers.Optimizer":
        """A fresh Adam optimizer with these settings."""
        rate = self.learning_rate
        if self.decay_rate < 1.0:
            rate = DecayToFloor(self.learning_rate, self.decay_rate, self.min_learning_rate)
        return keras.optimizers.Adam(learning_rate=rate, clipnorm=self.clipnorm or None)


@keras.saving.register_keras_serializable(package="mdnrnn")
class DecayToFloor(keras.optimizers.schedules.LearningRateSchedule):
    """sketch-rnn's learning-rate schedule: `(initial - floor) * decay_rate**step + floor`.

    Args:
        initial_learning_rate: The rate at step 0.
        decay_rate: Multiplies the distance to the floor at every optimizer step.
        min_learning_rate: The floor.
    """

    def __init__(self, initial_learning_rate, decay_rate, min_learning_rate):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_rate = float(decay_rate)
        self.min_learning_rate = float(min_learning_rate)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        span = self.initial_learning_rate - self.min_learning_rate
        # exp(step * log(rate)), the log taken in float64: 0.9999 itself rounds to float32
        # with an error that 10,000 steps of power() would grow to 3e-4 of the result.
        return span * keras.ops.exp(step * math.log(self.decay_rate)) + self.min_learning_rate

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_rate": self.decay_rate,
            "min_learning_rate": self.min_learning_rate,
        }


# Per-preset training defaults (`mdnrnn train` and `train.train` use them for every setting
# not given); docs/quality.md has the measurements. `kanji` and `touch` train without
# clipping: at their rate (1e-3) that gave a lower held-out NLL in four of five paired runs
# on short_kanji and KanjiVG (800 steps at two seeds each, and the shipped recipe's first 16
# epochs) and in both pairs of the README's touch recipe's first phase (two seeds, 40
# epochs; level after its fine-tuning). The other presets clip at 1.0: `sketch` was better
# with it on hand-drawn sheep (one 15-minute pair), `stroke3` and `impsy` are not measured.
PRESET_OPTIMIZERS: dict[str, OptimizerConfig] = {
    name: OptimizerConfig(clipnorm=0.0 if name in ("kanji", "touch") else 1.0) for name in PRESETS
}


# Compute dtypes of the training model (`build_model`'s `precision`).
PRECISIONS = ("float32", "mixed_bfloat16")


def build_model(config: ModelConfig, learning_rate: float = 1e-3, clipnorm: float = 1.0,
                optimizer: OptimizerConfig | None = None, jit_compile: bool | str = "auto",
                precision: str = "float32"):
    """Builds and compiles the training model for `config`.

    Args:
        config: The `ModelConfig`.
        learning_rate: Adam learning rate. Defaults to 1e-3.
        clipnorm: Gradient norm clipping (sketch-rnn and RoboJam clip too); 0 means none.
            Defaults to 1.0.
        optimizer: An `OptimizerConfig`; when given, it replaces `learning_rate` and
            `clipnorm` (and adds its decay schedule).
        jit_compile: XLA for the training step: `True`, `False`, or `"auto"`, Keras'
            default (off on a machine without a GPU). Whether XLA pays depends on the
            machine and on the shapes of the batches, so `train.train` (`mdnrnn train
            --jit`) sets it per run, by measurement by default. Defaults to `"auto"`.
        precision: `"float32"`, or `"mixed_bfloat16"`: the LSTM stack computes in
            bfloat16 (the weights, the mixture head and the loss stay float32), which can
            be faster where the processor multiplies bfloat16 natively, and trains to a
            worse held-out NLL at equal steps (`mdnrnn train --precision`,
            docs/benchmarks.md). Defaults to `"float32"`.

    Returns:
        A compiled `MixtureRNN` taking `(batch_size, timesteps, config.input_size)`,
        with `MixtureNLL` as its loss (nats per step).

    Example:

    >>> model = build_model(preset("kanji", units=32, layers=1))
    >>> model(np.zeros([2, 7, 5], "float32")).shape
    TensorShape([2, 7, 31])
    """
    if optimizer is None:
        optimizer = OptimizerConfig(learning_rate=learning_rate, clipnorm=clipnorm)
    if precision not in PRECISIONS:
        raise ValueError(
            f"Received an invalid value for `precision`, expected one of {PRECISIONS}. "
            f"Received: precision={precision!r}"
        )
    model = MixtureRNN(config, dtype=precision)
    model.build((None, None, config.input_size))
    model.compile(
        optimizer=optimizer.make(),
        loss=MixtureNLL(config.spec),
        # Not fixed per model kind: on one 2-core CPU XLA made RoboJam-sized steps faster
        # in one run and slower in the next (docs/benchmarks.md); training measures it.
        jit_compile=jit_compile,
    )
    return model


class StepModel(keras.Model):
    """One step of a `MixtureRNN`, with explicit LSTM states; shares its layers.

    Built by `build_step_model`; never saved on its own (save the training model).

    Call arguments:
        inputs: A list `[x, h_1, c_1, ..., h_L, c_L]`: `x` of shape
            `(batch_size, input_size)` and each state `(batch_size, units)`.

    Returns:
        A list `[params, h_1, c_1, ..., h_L, c_L]` with `params` of shape
        `(batch_size, params_size)` and the new states.
    """

    def __init__(self, model: MixtureRNN, **kwargs):
        super().__init__(**kwargs)
        self.cells = [lstm.cell for lstm in model.lstms]
        self.head = model.head
        self.config = model.config

    def call(self, inputs):
        x, states = inputs[0], list(inputs[1:])
        new_states = []
        for i, cell in enumerate(self.cells):
            x, (h, c) = cell(x, states[2 * i : 2 * i + 2], training=False)
            new_states += [h, c]
        return [self.head(x)] + new_states

    def initial_states(self, batch_size: int) -> list[np.ndarray]:
        """Zero states for `batch_size` sequences, in the order `call` expects."""
        return [np.zeros((batch_size, self.config.units), np.float32)] * (2 * len(self.cells))


def build_step_model(model: MixtureRNN) -> StepModel:
    """Builds the one-step model that shares `model`'s layers (and so its weights).

    No batch size is fixed, and no weights are copied: training `model` later changes
    the step model's outputs too. Feeding a sequence one step at a time gives the same
    parameters as the training model on the whole sequence.

    Args:
        model: A `MixtureRNN` from `build_model` or `load_model`.

    Returns:
        A `StepModel`.
    """
    return StepModel(model, name="step_model")


def load_model(path) -> MixtureRNN:
    """Loads a model saved with `model.save("name.keras")`, or a pretrained one by name.

    Plain `keras.models.load_model(path)` works as well once `mdnrnn.models` is imported; this
    function adds checks with clear errors. A name with no path separator and no suffix,
    such as `"kanji"` or `"touch"`, loads the pretrained model of that name
    (`mdnrnn.datasets.model_path`).

    Raises:
        FileNotFoundError: If `path` does not exist.
        ValueError: If the file is not a Keras archive holding an mdnrnn model.
    """
    path = os.fspath(path)
    if os.sep not in path and "/" not in path and not os.path.splitext(path)[1]:
        from mdnrnn import datasets

        if datasets.is_model_name(path):
            path = os.fspath(datasets.model_path(path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a .keras model file (not a zip archive).")
    try:
        model = keras.models.load_model(path)
    except Exception as error:  # Keras raises many types for foreign or damaged archives.
        raise ValueError(f"{path} could not be loaded as an mdnrnn model: {error}") from None
    if not isinstance(model, MixtureRNN):
        raise ValueError(
            f"{path} holds a {type(model).__name__}, not an mdnrnn model (MixtureRNN)."
        )
    return model
