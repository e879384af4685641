"""Training under tf.distribute: the loss is scaled per replica as Keras expects."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import mdnrnn

    rng = np.random.default_rng(0)
    x = np.zeros((4, 6, 5), np.float32)
    x[..., :2] = rng.normal(size=(4, 6, 2))
    x[..., 2] = 1.0
    x[1, 4:] = 0.0  # padding; replica 0 gets rows 0-1, replica 1 rows 2-3
    x[3, 4:] = 0.0  # so both replicas hold 10 real steps
    y = np.concatenate([rng.normal(size=(4, 6, 2)), rng.integers(0, 3, (4, 6, 1))], -1).astype(np.float32)
    config = mdnrnn.preset("kanji", units=8, layers=1, components=2)
    keras.utils.set_random_seed(1)
    single = mdnrnn.build_model(config)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        mirrored = mdnrnn.build_model(config)
    mirrored.set_weights(single.get_weights())
    expected = single.evaluate(x, y, batch_size=4, verbose=0)
    got = mirrored.evaluate(x, y, batch_size=4, verbose=0)
    print("LOSSES", expected, got)
    assert abs(got - expected) < 1e-5 * abs(expected), (got, expected)
    single.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    mirrored.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(single.get_weights(), mirrored.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    print("OK")
    """
)


@pytest.mark.slow
def test_mirrored_strategy_gives_the_single_device_loss_and_update():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr[-3000:]
