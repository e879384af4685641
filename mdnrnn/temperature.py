"""The temperature knobs that `Generator` and `LiteGenerator` share (NumPy only, no TensorFlow).

`temperature` divides the mixture (and pen) logits; `sigma_temperature` multiplies every
component's variance, or, when `None`, follows `temperature` (sketch-rnn's one knob). Both
must be finite numbers above 0; they may be changed between steps.
"""

from __future__ import annotations

import math


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
    """Mixin: the `temperature`, `sigma_temperature` and `variance_scale` properties."""

    _temperature = 1.0
    _sigma_temperature = None

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
