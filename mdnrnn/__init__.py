"""mdnrnn: mixture density recurrent networks for drawings and performances."""

import os
import sys

# Keras runs as Keras 3 on TensorFlow; quieten TensorFlow's C++ start-up logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow_quietly():
    """Imports TensorFlow with native stderr muted: its C++ start-up lines (CUDA probing
    on a machine without a GPU) ignore every logging setting. Python errors still show."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow

        tensorflow.config.list_physical_devices()  # device probing logs here, too
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


_import_tensorflow_quietly()

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
