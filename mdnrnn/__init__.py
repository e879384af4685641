"""mdnrnn: mixture density recurrent networks for drawings and performances.

The public names below load lazily: `import mdnrnn` is instant and TensorFlow is imported
the first time one of them is used (so `mdnrnn --help` answers at once). Plain
`keras.models.load_model(path)` needs mdnrnn's layers registered with Keras: use
`mdnrnn.load_model(path)`, or touch any public name first (`import mdnrnn.models` does it).
"""

import importlib
import os
import sys

# Keras runs as Keras 3 on TensorFlow; quieten TensorFlow's C++ logs (the CLI mutes the rest).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "MixtureDensity": "mdnrnn.mixture",
    "MixtureNLL": "mdnrnn.mixture",
    "MixtureSpec": "mdnrnn.mixture",
    "mixture_distribution": "mdnrnn.mixture",
    "Generator": "mdnrnn.generate",
    "PRESETS": "mdnrnn.models",
    "MixtureRNN": "mdnrnn.models",
    "ModelConfig": "mdnrnn.models",
    "StepModel": "mdnrnn.models",
    "build_model": "mdnrnn.models",
    "build_step_model": "mdnrnn.models",
    "load_model": "mdnrnn.models",
    "preset": "mdnrnn.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mdnrnn' has no attribute {name!r}")
    from mdnrnn import _tf  # noqa: F401  (TensorFlow, quietly)

    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
