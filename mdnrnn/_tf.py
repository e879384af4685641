"""TensorFlow and Keras, imported once with TensorFlow's native start-up noise muted.

Every module that needs them imports them from here: `from mdnrnn._tf import keras, tf, tfp`.
"""

import os
import sys


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

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

__all__ = ["keras", "tf", "tfp"]
