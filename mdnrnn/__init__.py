"""mdnrnn: mixture density recurrent networks for drawings and performances."""

import os

# Keras must run as Keras 3 on TensorFlow; quieten TensorFlow's C++ start-up logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mdnrnn.mixture import (  # noqa: E402
    MixtureDensity,
    MixtureNLL,
    MixtureSpec,
    mixture_distribution,
)
from mdnrnn.generate import Generator  # noqa: E402
from mdnrnn.models import (  # noqa: E402
    PRESETS,
    MixtureRNN,
    ModelConfig,
    build_model,
    StepModel,
    build_step_model,
    load_model,
    preset,
)

__version__ = "0.1.0"

__all__ = [
    "Generator",
    "MixtureDensity",
    "MixtureNLL",
    "MixtureRNN",
    "MixtureSpec",
    "ModelConfig",
    "PRESETS",
    "build_model",
    "StepModel",
    "build_step_model",
    "load_model",
    "mixture_distribution",
    "preset",
]
