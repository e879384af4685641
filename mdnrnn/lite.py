"""LiteRT export of the step model, and `LiteGenerator`, which runs it without TensorFlow.

`export_litert(model, "M.tflite")` converts one step of a trained `MixtureRNN` (the step
model of `mdnrnn.models.build_step_model`: one input row and the LSTM states in, the
mixture parameters and the new states out) into a LiteRT flatbuffer that uses builtin
operators only (no Flex ops), with the batch size fixed at 1. Everything else a generator
needs (the `ModelConfig`: mixture spec, data kind, normalisation; the data's columns) goes
into a JSON sidecar next to it, `M.tflite.json`, which also records the flatbuffer's
SHA-256 so that a sidecar is never paired with the wrong model.

`LiteGenerator("M.tflite")` reads both and has `Generator`'s reset / prime / step API and
sampling semantics (see `mdnrnn.generate`): the same temperatures, the same row codec
(`mdnrnn.formats.RowCodec`: start rows, encoding, decoding into data units, clipping), and,
given the same seed and parameters, the same random draws. It needs only NumPy and
`ai-edge-litert` (the `lite` extra; docs/live.md says how to install without TensorFlow):
importing this module never imports TensorFlow; only `export_litert` does.

Flatbuffer signature (`serving_default`), with L LSTM layers of `units` units:

    inputs:  x      (1, input_size)     one model input row (normalised, pen encoded)
             state  (2 * L, 1, units)   h_1, c_1, ..., h_L, c_L
    outputs: output_0 (1, params_size)    the next step's mixture parameters
             output_1 (2 * L, 1, units)   the new states, in the same order
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from mdnrnn import atomic, formats
from mdnrnn.sampler import PEN_SIZES, SamplerTables, sample_numpy
from mdnrnn.temperature import Temperatures

FORMAT = "mdnrnn-litert"
# 2: configs may hold `beats` (pauses in beats of the tempo), which a version-1 reader would
# ignore and so read dt in seconds; this reader takes 1 and 2, and refuses a config
# field it does not know rather than ignore it.
FORMAT_VERSION = 2
READS_VERSIONS = (1, 2)
# The saved `ModelConfig` fields this module knows (`mdnrnn.models.ModelConfig`).
CONFIG_FIELDS = ("spec", "data_kind", "units", "layers", "dropout", "mean", "std", "preset", "min_steps", "cell",
                 "recurrent_dropout", "targets", "dt_scale", "tempo", "beats", "tempo_quantiles")


def sidecar_path(path) -> str:
    """The JSON sidecar of a LiteRT model file: `path` + `.json`."""
    return os.fspath(path) + ".json"


# ------------------------------------------------------------------ export
def export_litert(model, path):
    """Converts `model`'s step model to a LiteRT flatbuffer plus its JSON sidecar.

    Both files are written atomically (an existing file stays intact if anything fails).
    Imports TensorFlow.

    Args:
        model: A `MixtureRNN` (from `build_model` or `load_model`).
        path: The `.tflite` file to write; the sidecar is `path + ".json"`.

    Returns:
        A dict with `path`, `sidecar` and `size` (bytes of the flatbuffer).

    Raises:
        ValueError: If `model` is not a `MixtureRNN`, or the converter needs operators
            outside LiteRT's builtin set.

    Example:

    >>> export_litert(load_model("kanji.keras"), "kanji.tflite")["size"]
    """
    from mdnrnn._tf import tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from mdnrnn.models import MixtureRNN, build_step_model

    if not isinstance(model, MixtureRNN):
        raise ValueError(
            f"Received an invalid value for `model`, expected a MixtureRNN. Received: {type(model).__name__}"
        )
    config = model.config
    step_model = build_step_model(model)
    states = 2 * config.layers

    @tf.function(
        input_signature=[
            tf.TensorSpec([1, config.input_size], tf.float32, name="x"),
            tf.TensorSpec([states, 1, config.units], tf.float32, name="state"),
        ]
    )
    def serving_default(x, state):
        outputs = step_model([x] + tf.unstack(state, num=states))  # [params, h_1, c_1, ...]
        return outputs[0], tf.stack(outputs[1:])  # [1, P], [2L, 1, units]

    # Weights become constants of the graph (left as variables, LiteRT would read
    # uninitialised resource variables).
    frozen = convert_variables_to_constants_v2(serving_default.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], step_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        flatbuffer = converter.convert()
    except Exception as error:  # the converter raises its own ConverterError types
        raise ValueError(f"LiteRT conversion failed: {str(error).splitlines()[0]}") from None
    columns = formats.default_columns(config.data_kind, config.spec.target_size)
    sidecar = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "columns": list(columns),
        "input_size": config.input_size,
        "params_size": config.spec.params_size,
        "sha256": hashlib.sha256(flatbuffer).hexdigest(),
    }
    path = os.fspath(path)
    atomic.write_atomically(path, flatbuffer)
    atomic.write_atomically(sidecar_path(path), (json.dumps(sidecar, indent=2) + "\n").encode())
    return {"path": path, "sidecar": sidecar_path(path), "size": len(flatbuffer)}


# ------------------------------------------------------------------ reading
@dataclasses.dataclass(frozen=True)
class LiteSpec:
    """The mixture layout of a LiteRT model (what `MixtureSpec` says, without TensorFlow).

    Params rows are laid out as in `MixtureSpec`:
    `[ mixture logits (K) | loc (K * D) | scale (K * D) | correlation (K * C) | pen logits ]`.
    """

    dim: int  # D, continuous dimensions
    components: int  # K
    pen: str | None = None  # None, "bernoulli" (stroke-3) or "categorical" (stroke-5)
    covariance: str = "diagonal"  # or "full": C = D (D - 1) / 2 correlation values
    scale_activation: str = "softplus"  # or "elu"; computed inside the model (a sidecar written before the field: softplus)

    @property
    def correlation_size(self) -> int:
        return self.dim * (self.dim - 1) // 2 if self.covariance == "full" else 0

    @property
    def params_size(self) -> int:
        return self.components * (1 + 2 * self.dim + self.correlation_size) + PEN_SIZES[self.pen]


@dataclasses.dataclass(frozen=True)
class LiteConfig:
    """What `LiteGenerator` needs from the sidecar: the saved `ModelConfig`'s fields."""

    spec: LiteSpec
    data_kind: str
    units: int
    layers: int
    mean: tuple | None
    std: tuple | None
    preset: str | None
    columns: tuple  # the data's columns (see `mdnrnn.formats`)
    input_size: int  # width of a model input row
    min_steps: int = 0  # stroke-5: no "end of drawing" before this many points
    targets: str = "rows"  # "offsets": positions predicted as changes (see `ModelConfig`)
    dt_scale: str = "linear"  # "log": the model sees log(dt + shift) (see `ModelConfig`)
    tempo_quantiles: tuple | None = None  # a tempo-conditioned touch model's (see `ModelConfig`)
    beats: bool = False  # pauses in beats of the tempo (see `ModelConfig`)

    @property
    def normalisation(self) -> tuple[np.ndarray, np.ndarray]:
        """`(mean, std)` as float32 arrays of length `spec.dim`."""
        dim = self.spec.dim
        mean = np.zeros(dim, np.float32) if self.mean is None else np.asarray(self.mean, np.float32)
        std = np.ones(dim, np.float32) if self.std is None else np.asarray(self.std, np.float32)
        return mean, std

    def codec(self) -> formats.RowCodec:
        """The model's row codec, as `ModelConfig.codec`."""
        return formats.RowCodec(self.data_kind, self.spec.dim, self.spec.pen, *self.normalisation, self.targets,
                                self.dt_scale, self.tempo_quantiles, self.beats)


def read_sidecar(path) -> LiteConfig:
    """Reads and checks the sidecar of the LiteRT model at `path`.

    Raises:
        FileNotFoundError: If the model or its sidecar is missing.
        ValueError: If the sidecar is not an mdnrnn LiteRT sidecar, or does not belong
            to this model file (a different SHA-256).
    """
    path = os.fspath(path)
    meta_path = sidecar_path(path)
    for needed in (path, meta_path):
        if not os.path.exists(needed):
            raise FileNotFoundError(f"No such file: {needed} (export with `mdnrnn export-model`).")
    try:
        with open(meta_path, encoding="utf-8") as file:
            meta = json.load(file)
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, not {FORMAT!r}")
        if meta.get("format_version") not in READS_VERSIONS:
            raise ValueError(f"format_version {meta.get('format_version')!r} is not one of {READS_VERSIONS}")
        config = meta["config"]
        unknown = sorted(set(config) - set(CONFIG_FIELDS))
        if unknown:
            raise ValueError(f"its config has fields this mdnrnn does not know: {unknown} (a newer mdnrnn wrote it)")
        spec = LiteSpec(**config["spec"])
        lite = LiteConfig(
            spec=spec, data_kind=config["data_kind"], units=int(config["units"]),
            layers=int(config["layers"]), mean=config.get("mean"), std=config.get("std"),
            preset=config.get("preset"), columns=tuple(meta["columns"]),
            input_size=int(meta["input_size"]), min_steps=int(config.get("min_steps", 0)),
            targets=config.get("targets", "rows"), dt_scale=config.get("dt_scale", "linear"),
            tempo_quantiles=None if config.get("tempo_quantiles") is None else tuple(config["tempo_quantiles"]),
            beats=bool(config.get("beats", False)),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{meta_path} is not an mdnrnn LiteRT sidecar: {error}") from None
    with open(path, "rb") as file:
        digest = hashlib.sha256(file.read()).hexdigest()
    if digest != meta.get("sha256"):
        raise ValueError(f"{meta_path} belongs to a different model file than {path} (SHA-256 differs).")
    return lite


# ------------------------------------------------------------------ generator
class LiteGenerator(Temperatures):
    """Samples sequences from a LiteRT model: `Generator`'s API with NumPy and LiteRT only.

    Args:
        path: A `.tflite` file written by `export_litert` (its sidecar next to it).
        temperature: Divides the mixture and pen logits and, unless `sigma_temperature`
            is set, also multiplies every component's variance (sketch-rnn's temperature).
            1.0 samples the model as trained; below 1 is more conservative; above 1 is
            wilder. Defaults to 1.0.
        sigma_temperature: Multiplies every component's variance on its own; `None`
            means "the same as `temperature`". Defaults to `None`.
        seed: Integer seed; the same seed gives the same output. Defaults to `None`.
        min_steps: Stroke-5 models: "end of drawing" is not sampled while a drawing has
            fewer than this many points, prefix included (see `Generator`). `None`: the
            saved config's `min_steps`. Defaults to `None`.
        num_threads: LiteRT interpreter threads. Defaults to 1 (steady latency on a
            busy machine).
        tempo: Tempo-conditioned touch models: touches per second of the sequences
            started next, or `None` to draw them (see `Generator`). Defaults to `None`.

    `step()` at batch size B runs the flatbuffer B times (its batch size is 1) and samples
    all B rows at once, with the same draws as `Generator.step()`.

    Raises:
        FileNotFoundError, ValueError: See `read_sidecar`; ValueError also for a bad
            temperature.

    Example:

    >>> generator = LiteGenerator("touch.tflite", temperature=0.8, seed=1)
    >>> generator.prime(my_touches)      # (length, 3) rows x, y, dt
    >>> next_touch = generator.step()    # (1, 3)
    """

    def __init__(self, path, temperature=1.0, sigma_temperature=None, seed=None, min_steps=None, num_threads=1,
                 tempo=None):
        from ai_edge_litert.interpreter import Interpreter

        self.config = config = read_sidecar(path)
        self.spec = config.spec
        self.columns = list(config.columns)
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
        # The row codec: encodes inputs, start rows, decodes samples (see `mdnrnn.formats`).
        self.codec = config.codec()
        self.tempo = tempo
        self._tables = SamplerTables(self.spec)
        self._interpreter = Interpreter(model_path=os.fspath(path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        runner = self._interpreter.get_signature_runner("serving_default")
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        self._x_index = inputs["x"]["index"]
        self._state_in_index = inputs["state"]["index"]
        self._params_index = outputs["output_0"]["index"]
        self._state_out_index = outputs["output_1"]["index"]
        del runner  # it holds views into the interpreter, which block `invoke`
        self.reset(1)

    @property
    def batch_size(self) -> int:
        return self._params.shape[0]

    @property
    def params(self) -> np.ndarray:
        """The mixture parameters `(batch_size, params_size)` the next step samples from."""
        return self._params.copy()

    def reset(self, batch_size: int = 1):
        """Starts `batch_size` fresh sequences: zero state, then the start row (see `Generator.reset`)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(
                f"Received an invalid value for `batch_size`, expected a positive integer. Received: batch_size={batch_size!r}"
            )
        self._zero_state(batch_size)
        self._last = self._start_rows(batch_size)
        self._params = self._advance(self._last)

    def prime(self, prefixes):
        """Resets to one sequence per prefix and feeds the prefixes (see `Generator.prime`).

        Drawings are fed after the start row, as in training; touch and IMPSY prefixes are
        fed as they are.

        Args:
            prefixes: A list of arrays in data units and columns; lengths may differ. A
                single 2-D array is one prefix.

        Raises:
            ValueError: If a prefix has the wrong width, is empty, or is not finite.
        """
        if isinstance(prefixes, np.ndarray) and prefixes.ndim == 2:
            prefixes = [prefixes]
        prefixes = [self._check_rows(p, f"prefixes[{i}]") for i, p in enumerate(prefixes)]
        if not prefixes:
            raise ValueError("`prefixes` is empty; pass at least one prefix.")
        batch = len(prefixes)
        self._zero_state(batch)
        self._last = self._start_rows(batch)
        if self.config.data_kind == "stroke3":
            self._params = self._advance(self._last)
        lengths = np.array([len(p) for p in prefixes])
        encoded = [self._encode_prefix(p) for p in prefixes]  # [len_i, input_size] each
        for t in range(lengths.max()):
            active = np.flatnonzero(lengths > t)  # finished prefixes keep their state
            model_rows = np.stack([encoded[i][t] for i in active])
            # The training model's Masking layer skips all-zero model rows (padding), and
            # so a real stroke-3 row (0, 0, 0): it keeps the state and the output. So here.
            fed = model_rows.any(axis=1)
            if fed.any():
                self._params[active[fed]] = self._advance(model_rows[fed], active[fed])
            self._last[active] = model_rows
            self._points[active] += 1

    def step(self, return_params: bool = False):
        """Samples the next row of every sequence and feeds it back (see `Generator.step`).

        Returns:
            `(batch_size, columns)` rows in data units; with `return_params`, a tuple
            `(rows, params)` with params `(batch_size, params_size)`.
        """
        params = self._params
        no_end = self._points < self.min_steps if self.min_steps else None
        values, pen = sample_numpy(
            params, self._tables, self._rng, self._temperature, self.variance_scale, no_end, self.codec, self._last
        )
        rows, model_rows = self.codec.decode(values, pen, self._last)
        self._params = self._advance(model_rows)
        self._last = model_rows
        self._points += 1
        return (rows, params) if return_params else rows

    # ------------------------------------------------------------- helpers
    def _zero_state(self, batch_size):
        self._state = np.zeros((batch_size, 2 * self.config.layers, 1, self.config.units), np.float32)
        self._params = np.zeros((batch_size, self.spec.params_size), np.float32)
        self._points = np.zeros(batch_size, np.int64)  # rows so far (prefix included)

    def _advance(self, model_rows, sequences=None):
        """Feeds one model row to each of `sequences` (default all); returns their params."""
        interpreter = self._interpreter
        sequences = range(len(model_rows)) if sequences is None else sequences
        params = np.empty((len(model_rows), self.spec.params_size), np.float32)
        for row, i in enumerate(sequences):
            interpreter.set_tensor(self._x_index, model_rows[row : row + 1])
            interpreter.set_tensor(self._state_in_index, self._state[i])
            interpreter.invoke()
            params[row] = interpreter.get_tensor(self._params_index)[0]
            self._state[i] = interpreter.get_tensor(self._state_out_index)
        return params

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
