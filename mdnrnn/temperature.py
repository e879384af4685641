"""The sampling knobs that `Generator` and `LiteGenerator` share (NumPy only, no TensorFlow).

`temperature` divides the mixture (and pen) logits; `sigma_temperature` multiplies every
component's variance, or, when `None`, follows `temperature` (sketch-rnn's one knob). Both
must be finite numbers above 0; they may be changed between steps. `tempo`, for a
tempo-conditioned touch model, is the touches per second of the sequences started next.
"""

from __future__ import annotations

import math

from mdnrnn import formats


def check_temperature(value, name):
    """`value` as a float if it is a finite number above 0, else a ValueError naming it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a finite number above 0. "
            f"Received: {name}={value!r}"
        )
    return number


class Temperatures:
    """Mixin: the `temperature`, `sigma_temperature`, `variance_scale` and `tempo`
    properties, and the start rows and prefix encoding that the tempo decides. The class
    using it sets `codec` (a `formats.RowCodec`) and `_rng`."""

    _temperature = 1.0
    _sigma_temperature = None
    _tempo = None

    @property
    def tempo(self) -> float | None:
        """Tempo-conditioned touch models (`ModelConfig.tempo`): the touches per second
        of every sequence started next (`reset`, `generate`, `prime`), a finite number
        above 0; `None` (the default) draws one per sequence from the training
        performances' tempos, and `prime` takes each prefix's own
        (`formats.touch_tempo`). Other models have no tempo and leave it `None`."""
        return self._tempo

    @tempo.setter
    def tempo(self, value):
        if value is not None:
            if self.codec.tempo_quantiles is None:
                raise ValueError("This model is not conditioned on tempo (train it with `--tempo on` or `beats`); "
                                 "leave `tempo` None.")
            value = check_temperature(value, "tempo")
        self._tempo = value

    def _start_rows(self, batch_size):
        """The codec's start rows, with each sequence's tempo if the model has one."""
        if self.codec.tempo_quantiles is None:
            return self.codec.start_rows(batch_size)
        tempo = self.codec.draw_tempo(self._rng, batch_size) if self._tempo is None else self._tempo
        return self.codec.start_rows(batch_size, tempo)

    def _encode_prefix(self, prefix):
        """A checked prefix (data rows) as model rows, with its tempo (`tempo`, or its own)."""
        if self.codec.tempo_quantiles is None:
            return self.codec.encode(prefix)
        tempo = self._tempo
        if tempo is None:
            tempo = formats.touch_tempo(prefix[:, self.codec.dt_index])
        return self.codec.encode(prefix, tempo)

    @property
    def temperature(self) -> float:
        """Divides the mixture and pen logits; a finite number above 0."""
        return self._temperature

    @temperature.setter
    def temperature(self, value):
        self._temperature = check_temperature(value, "temperature")

    @property
    def sigma_temperature(self) -> float | None:
        """Multiplies every component's variance; a finite number above 0, or `None` to
        follow `temperature` (see `variance_scale`)."""
        return self._sigma_temperature

    @sigma_temperature.setter
    def sigma_temperature(self, value):
        self._sigma_temperature = None if value is None else check_temperature(value, "sigma_temperature")

    @property
    def variance_scale(self) -> float:
        """The factor every component's variance is multiplied by now: `sigma_temperature`,
        or `temperature` when `sigma_temperature` is `None`."""
        return self._temperature if self._sigma_temperature is None else self._sigma_temperature
