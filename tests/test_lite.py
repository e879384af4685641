"""LiteRT export (`mdnrnn.lite`) against `Generator`, with random non-zero weights."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mdnrnn import Generator, build_model, preset
from mdnrnn import cli, formats, lite

# Small versions of each preset kind; touch and IMPSY get a real normalisation so that
# decoding and clipping in data units are exercised.
KINDS = {
    "kanji": preset("kanji", units=24, layers=2, components=4),
    "stroke3": preset("stroke3", units=24, layers=2, components=4),
    "touch": preset("touch", units=24, layers=2, components=3,
                    mean=(0.5, 0.5, 0.08), std=(0.25, 0.3, 0.05)),
    "impsy": preset("impsy", units=16, layers=2, components=3, dim=4,
                    mean=(0.1, 0.4, 0.5, 0.6), std=(0.05, 0.2, 0.3, 0.25)),
}
KINDS["touch-full"] = KINDS["touch"].replace(covariance="full")  # a full-covariance head
KINDS["kanji-layer-norm"] = KINDS["kanji"].replace(cell="layer_norm")  # sketch-rnn's cell
KINDS["touch-offsets"] = KINDS["touch"].replace(targets="offsets")  # positions as changes
# Softplus scales: the head of every model saved before ELU + 1 became the default.
KINDS["touch-softplus"] = KINDS["touch-offsets"].replace(scale_activation="softplus")
KINDS["touch-log"] = KINDS["touch-offsets"].replace(dt_scale="log", mean=(0.5, 0.5, -3.5), std=(0.25, 0.3, 1.0))
# Conditioned on tempo: drawn from these quantiles from scratch, a prefix's own after prime.
KINDS["touch-tempo"] = KINDS["touch-offsets"].replace(tempo=True, tempo_quantiles=(0.3, 1.0, 2.0, 5.0))
KINDS["touch-beats"] = KINDS["touch-tempo"].replace(beats=True)  # and pauses in beats of it
PREFIXES = {
    "kanji": np.array([[3, 1, 0], [2, -4, 0], [0.5, 0.5, 1], [-6, 2, 0], [1, 1, 1]], np.float32),
    # (0, 0, 0) encodes to the padding row, which the training model masks: prime skips it.
    "stroke3": np.array([[3, 1, 0], [0, 0, 0], [2, -4, 1], [-6, 2, 0]], np.float32),
    "touch": np.array([[0.2, 0.3, 0.0], [0.25, 0.35, 0.02], [0.7, 0.1, 0.4], [0.72, 0.12, 0.03]], np.float32),
    "impsy": np.array([[0.0, 0.1, 0.9, 0.5], [0.2, 0.3, 0.8, 0.5], [0.05, 0.35, 0.7, 0.6]], np.float32),
}
PREFIXES["touch-full"] = PREFIXES["touch"]
PREFIXES["kanji-layer-norm"] = PREFIXES["kanji"]
PREFIXES["touch-offsets"] = PREFIXES["touch"]
PREFIXES["touch-softplus"] = PREFIXES["touch"]
PREFIXES["touch-log"] = PREFIXES["touch"]
PREFIXES["touch-tempo"] = PREFIXES["touch-beats"] = PREFIXES["touch"]


def random_model(config, seed):
    """A model whose every weight and bias is drawn from a normal distribution."""
    model = build_model(config)
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.4, weight.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """kind -> (model, path of its .tflite file)."""
    out = tmp_path_factory.mktemp("lite")
    result = {}
    for i, (kind, config) in enumerate(KINDS.items()):
        model = random_model(config, seed=i)
        path = out / f"{kind}.tflite"
        lite.export_litert(model, path)
        result[kind] = (model, path)
    return result


@pytest.mark.parametrize("kind", list(KINDS))
def test_params_match_generator_at_every_step(exported, kind):
    model, path = exported[kind]
    reference = Generator(model, seed=7)
    lite_generator = lite.LiteGenerator(path, seed=7)
    assert lite_generator.columns == reference.columns
    np.testing.assert_allclose(lite_generator.params, reference.params, atol=1e-4)  # after reset
    reference.prime(PREFIXES[kind])
    lite_generator.prime(PREFIXES[kind])
    np.testing.assert_allclose(lite_generator.params, reference.params, atol=1e-4)
    for step in range(25):
        rows, params = reference.step(return_params=True)
        lite_rows, lite_params = lite_generator.step(return_params=True)
        np.testing.assert_allclose(lite_params, params, atol=1e-4, err_msg=f"step {step}")
        # The same seed gives the same draws, so the sampled rows agree too.
        np.testing.assert_allclose(lite_rows, rows, atol=1e-4, err_msg=f"step {step}")
    assert np.abs(lite_params).max() > 0.1  # real, non-degenerate parameters


@pytest.mark.parametrize("kind", ["kanji", "stroke3", "touch", "touch-tempo", "touch-beats"])
def test_batched_prime_of_unequal_lengths(exported, kind):
    model, path = exported[kind]
    prefixes = [PREFIXES[kind], PREFIXES[kind][:2]]
    reference = Generator(model, seed=1)
    lite_generator = lite.LiteGenerator(path, seed=1)
    reference.prime(prefixes)
    lite_generator.prime(prefixes)
    np.testing.assert_allclose(lite_generator.params, reference.params, atol=1e-4)
    for _ in range(5):
        rows, params = reference.step(return_params=True)
        lite_rows, lite_params = lite_generator.step(return_params=True)
        np.testing.assert_allclose(lite_params, params, atol=1e-4)
        np.testing.assert_allclose(lite_rows, rows, atol=1e-4)


def test_min_steps_like_generator(tmp_path):
    """No "end of drawing" before min_steps points; a model that loves to end shows it."""
    model = random_model(KINDS["kanji"].replace(min_steps=6), seed=9)
    pen_bias = model.head.pen_dense.bias
    pen_bias.assign(np.array([0.0, 0.0, 4.0], np.float32))  # "end of drawing" most of the time
    lite.export_litert(model, tmp_path / "k.tflite")
    reference = Generator(model, seed=2)
    lite_generator = lite.LiteGenerator(tmp_path / "k.tflite", seed=2)
    assert lite_generator.min_steps == reference.min_steps == 6
    reference.prime(PREFIXES["kanji"][:2])
    lite_generator.prime(PREFIXES["kanji"][:2])
    rows = []
    for _ in range(12):
        rows.append(lite_generator.step())
        np.testing.assert_allclose(rows[-1], reference.step(), atol=1e-4)
    ends = [i for i, row in enumerate(rows) if not row[0, :2].any() and row[0, 2] == 1]
    assert ends and min(ends) >= 6 - 2  # 2 prefix points count


def test_temperatures_change_samples_like_generator(exported):
    model, path = exported["touch"]
    reference = Generator(model, temperature=0.3, sigma_temperature=0.5, seed=3)
    lite_generator = lite.LiteGenerator(path, temperature=0.3, sigma_temperature=0.5, seed=3)
    for _ in range(10):
        np.testing.assert_allclose(lite_generator.step(), reference.step(), atol=1e-4)
    touches = np.concatenate([lite_generator.step() for _ in range(50)])
    assert (touches[:, :2] >= 0).all() and (touches[:, :2] <= 1).all()  # clipped like Generator
    assert (touches[:, 2] >= formats.MIN_DT).all()
    # sigma_temperature=None (the default): the variance follows temperature, as in Generator.
    reference = Generator(model, temperature=0.4, seed=4)
    lite_generator = lite.LiteGenerator(path, temperature=0.4, seed=4)
    assert lite_generator.variance_scale == reference.variance_scale == 0.4
    for _ in range(10):
        np.testing.assert_allclose(lite_generator.step(), reference.step(), atol=1e-4)
    with pytest.raises(ValueError, match="temperature=0"):
        lite_generator.temperature = 0
    with pytest.raises(ValueError, match="sigma_temperature=nan"):
        lite.LiteGenerator(path, sigma_temperature=float("nan"))


def test_builtin_ops_only_and_sidecar(exported):
    from ai_edge_litert.interpreter import Interpreter

    _, path = exported["kanji"]
    interpreter = Interpreter(model_path=str(path))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops
    meta = json.loads(open(lite.sidecar_path(path)).read())
    assert meta["format"] == "mdnrnn-litert" and meta["columns"] == ["dx", "dy", "pen_lift"]
    assert {"dim": 2, "components": 4, "pen": "categorical"}.items() <= meta["config"]["spec"].items()


def test_bad_files(exported, tmp_path):
    _, path = exported["touch"]
    with pytest.raises(FileNotFoundError, match="No such file"):
        lite.LiteGenerator(tmp_path / "missing.tflite")
    # A sidecar paired with another model file is refused.
    other = tmp_path / "other.tflite"
    other.write_bytes(open(exported["kanji"][1], "rb").read())
    open(lite.sidecar_path(other), "w").write(open(lite.sidecar_path(path)).read())
    with pytest.raises(ValueError, match="different model file"):
        lite.LiteGenerator(other)
    open(lite.sidecar_path(other), "w").write('{"format": "something else"}')
    with pytest.raises(ValueError, match="not an mdnrnn LiteRT sidecar"):
        lite.LiteGenerator(other)
    # A config field this reader does not know is refused, not ignored.
    meta = json.loads(open(lite.sidecar_path(path)).read())
    meta["config"]["swing"] = 0.6
    open(lite.sidecar_path(other), "w").write(json.dumps(meta))
    with pytest.raises(ValueError, match=r"does not know: \['swing'\]"):
        lite.read_sidecar(other)
    generator = lite.LiteGenerator(path)
    with pytest.raises(ValueError, match=r"expected \(length >= 1, 3\)"):
        generator.prime(np.zeros((4, 2)))


def test_sidecar_knows_every_config_field():
    import dataclasses

    from mdnrnn.models import ModelConfig

    assert set(lite.CONFIG_FIELDS) == {field.name for field in dataclasses.fields(ModelConfig)}


def test_runs_without_tensorflow(exported):
    """`mdnrnn.lite` imports and samples in a process where TensorFlow cannot be imported."""
    _, path = exported["touch"]
    script = textwrap.dedent(f"""
        import sys
        for name in ("tensorflow", "keras", "tensorflow_probability", "tf_keras"):
            sys.modules[name] = None  # any import of them raises ImportError
        import numpy as np
        from mdnrnn.lite import LiteGenerator
        generator = LiteGenerator({str(path)!r}, seed=0)
        generator.prime(np.array([[0.2, 0.3, 0.0], [0.25, 0.35, 0.02]]))
        print(generator.step().shape, generator.step(return_params=True)[1].shape)
        assert not any(m.startswith("tensorflow") for m in sys.modules if sys.modules[m] is not None)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "(1, 3) (1, 21)" in result.stdout


def test_cli_export_model(exported, tmp_path, capsys):
    model, _ = exported["touch"]
    keras_path = tmp_path / "touch.keras"
    model.save(keras_path)
    assert cli.main(["export-model", str(keras_path), "--to", "litert"]) == 0
    out = tmp_path / "touch.tflite"
    assert out.is_file() and os.path.isfile(str(out) + ".json")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask
    assert "LiteRT model" in capsys.readouterr().out
    # An existing file is kept unless --force.
    assert cli.main(["export-model", str(keras_path), "--out", str(out)]) == 1
    assert "pass --force" in capsys.readouterr().err
    assert cli.main(["export-model", str(keras_path), "--out", str(out), "--force"]) == 0
    reference = Generator(model, seed=2)
    np.testing.assert_allclose(lite.LiteGenerator(out, seed=2).step(), reference.step(), atol=1e-4)
