"""How good is a model: held-out NLL, sample statistics, a classifier two-sample test.

`evaluate(model, store)` runs all three and returns one JSON-ready dict (its keys are
documented in docs/quality.md); the parts are public functions too:

- `heldout_nll`: the negative log-likelihood of a split's sequences, per step (as the
  training loss), split into the continuous and the pen part, plus sketch-rnn's `Lr`
  convention (each drawing's summed NLL divided by a fixed maximum length).
- `sequence_statistics` / `compare_statistics`: points and strokes per drawing, the
  generated set against the data (means, two-sample Kolmogorov-Smirnov statistics), and
  the fraction of samples that ended by themselves.
- `classifier_two_sample_test`: a small CNN learns to tell rasterised real drawings from
  generated ones; its accuracy on held-out drawings is near 0.5 when it cannot.

NLL units: nats per step of the *normalised* model rows (continuous columns divided by
the store's train std), like the training loss; a continuous density can exceed 1, so
values can be negative.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from mdnrnn._tf import keras, tf
from mdnrnn import data
from mdnrnn.export.svg import grid_to_svg, strokes_to_polylines
from mdnrnn.generate import Generator
from mdnrnn.mixture import mixture_parts

RASTER_SIZE = 48


def heldout_nll(model, store, split="test", *, batch_size=64, max_len=None):
    """Negative log-likelihood of a split under `model`, in nats per step.

    Every sequence of the split is fed as in training (stroke-5 models: start token, the
    points, and the end-of-drawing step as the last target; touch and IMPSY models: whole
    sequences, next-row prediction).

    Args:
        model: A `MixtureRNN`.
        store: A store path or `SequenceStore` of the model's data kind.
        split: The split to score. Defaults to `"test"`.
        batch_size: Sequences per batch. Defaults to 64.
        max_len: sketch-rnn's `N_max` for `nll_sketch_rnn`; `None`: the most steps any
            sequence of the split has.

    Returns:
        A dict: `nll` (mean over all real steps, the training loss's convention),
        `nll_continuous` and `nll_pen` (its two parts; `nll_pen` is `None` without a
        pen), `nll_sketch_rnn` (mean over sequences of the summed NLL divided by
        `max_len`: sketch-rnn's `Lr = Ls + Lp`, except that sketch-rnn also adds the pen
        terms of the padding steps after the end, which here do not exist),
        `max_len`, `steps` (real steps scored) and `sequences`.
    """
    config = model.config
    spec = config.spec
    window = None
    dataset = data.make_dataset(store, split, batch_size, pen=spec.pen, window=window, shuffle=False,
                                targets=config.targets, stats=config.normalisation, dt_scale=config.dt_scale,
                                tempo_quantiles=config.tempo_quantiles, beats=config.beats)
    continuous_total = pen_total = 0.0
    steps = 0
    per_sequence = []
    for inputs, targets, weights in dataset:
        params = model(inputs, training=False)
        continuous_dist, pen_dist = mixture_parts(params, spec)
        continuous = -continuous_dist.log_prob(targets[..., : spec.dim])  # [B, T]
        pen = tf.zeros_like(continuous) if pen_dist is None else -pen_dist.log_prob(targets[..., spec.dim :])
        real = weights.numpy() > 0
        continuous = np.where(real, continuous.numpy(), 0.0).astype(np.float64)
        pen = np.where(real, pen.numpy(), 0.0).astype(np.float64)
        continuous_total += continuous.sum()
        pen_total += pen.sum()
        steps += int(real.sum())
        per_sequence += list(zip((continuous + pen).sum(1), real.sum(1)))
    sums, lengths = np.array(per_sequence).T
    max_len = int(lengths.max()) if max_len is None else int(max_len)
    if max_len < lengths.max():
        raise ValueError(
            f"Received an invalid value for `max_len`, expected at least the longest sequence's "
            f"{int(lengths.max())} steps. Received: max_len={max_len}"
        )
    return {
        "nll": (continuous_total + pen_total) / steps,
        "nll_continuous": continuous_total / steps,
        "nll_pen": pen_total / steps if spec.pen else None,
        "nll_sketch_rnn": float(np.mean(sums / max_len)),
        "max_len": max_len,
        "steps": steps,
        "sequences": len(sums),
    }


def sequence_statistics(sequences):
    """Points and strokes per stroke-3 drawing (a stroke ends where the pen lifts, or at
    the end of the drawing).

    Returns:
        `(points, strokes)`: two int arrays, one entry per drawing.
    """
    points = np.array([len(s) for s in sequences], np.int64)
    strokes = np.array(
        [int((np.asarray(s)[:, 2] >= 0.5).sum() + (len(s) > 0 and np.asarray(s)[-1, 2] < 0.5)) for s in sequences],
        np.int64,
    )
    return points, strokes


def compare_statistics(generated, real):
    """Points and strokes per drawing, generated against real.

    Returns:
        A dict with `points` and `strokes`, each `{"generated_mean", "data_mean", "ks",
        "ks_pvalue"}` (two-sample Kolmogorov-Smirnov statistic: the largest gap between
        the two empirical CDFs; 0 is identical, 1 is disjoint).
    """
    result = {}
    for name, gen, ref in zip(("points", "strokes"), sequence_statistics(generated), sequence_statistics(real)):
        test = stats.ks_2samp(gen, ref)
        result[name] = {
            "generated_mean": float(gen.mean()),
            "data_mean": float(ref.mean()),
            "ks": float(test.statistic),
            "ks_pvalue": float(test.pvalue),
        }
    return result


def rasterise(drawing, size=RASTER_SIZE, margin=2):
    """A stroke-3 drawing as a `(size, size)` float32 image in [0, 1] (lines drawn as
    dense points, the drawing scaled to fit with its aspect ratio kept)."""
    image = np.zeros((size, size), np.float32)
    polylines = strokes_to_polylines(np.asarray(drawing, np.float64)) if len(drawing) else []
    if not polylines:
        return image
    every = np.concatenate(polylines)
    low, high = every.min(0), every.max(0)
    scale = (size - 1 - 2 * margin) / max(float((high - low).max()), 1e-9)
    offset = margin + ((size - 1 - 2 * margin) - (high - low) * scale) / 2
    for line in polylines:
        line = (line - low) * scale + offset  # pixels
        if len(line) == 1:
            line = np.concatenate([line, line])
        for a, b in zip(line[:-1], line[1:]):
            n = int(np.ceil(np.abs(b - a).max() * 2)) + 1
            points = np.rint(a + (b - a) * np.linspace(0, 1, n)[:, None]).astype(int)
            image[points[:, 1], points[:, 0]] = 1.0
    return image


def classifier_two_sample_test(real, generated, *, seed=0, epochs=15, held_out=0.3, size=RASTER_SIZE):
    """Trains a small CNN to tell rasterised real drawings from generated ones.

    The two sets are cut to the same size, shuffled and split; the CNN (two 3x3
    convolutions with pooling, one dense layer) trains on the rest and is scored on the
    `held_out` fraction. 0.5 means the classifier cannot tell them apart.

    Returns:
        A dict: `classifier_accuracy` (held-out accuracy) and `classifier_examples`
        (held-out examples scored).
    """
    n = min(len(real), len(generated))
    if n < 4:
        raise ValueError(f"The classifier test needs at least 4 drawings of each kind; got {n}.")
    rng = np.random.default_rng(seed)
    real = [real[i] for i in rng.permutation(len(real))[:n]]
    generated = [generated[i] for i in rng.permutation(len(generated))[:n]]
    images = np.stack([rasterise(d, size) for d in real + generated])[..., None]
    labels = np.r_[np.zeros(n), np.ones(n)].astype(np.float32)
    order = rng.permutation(2 * n)
    images, labels = images[order], labels[order]
    cut = int(round(2 * n * (1 - held_out)))
    keras.utils.set_random_seed(seed)
    classifier = keras.Sequential([
        keras.Input((size, size, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    classifier.fit(images[:cut], labels[:cut], epochs=epochs, batch_size=32, verbose=0)
    predicted = classifier.predict(images[cut:], verbose=0)[:, 0] > 0.5
    return {
        "classifier_accuracy": float((predicted == labels[cut:].astype(bool)).mean()),
        "classifier_examples": int(len(predicted)),
    }


def evaluate(model, store, *, split="test", n=100, temperature=1.0, sigma_temperature=None,
             max_steps=None, seed=0, classifier=True, svg_path=None, max_len=None):
    """Held-out NLL, sample statistics and the classifier test, as one dict.

    Args:
        model: A `MixtureRNN`.
        store: The store (path) the model's data comes from.
        split: The held-out split. Defaults to `"test"`.
        n: Samples to generate. Defaults to 100.
        temperature, sigma_temperature: The `Generator`'s.
        max_steps: Step limit per sample; `None`: twice the split's longest drawing.
        seed: Seed of sampling and of the classifier.
        classifier: Run the classifier test (drawings only). Defaults to True.
        svg_path: If given, write a grid SVG: the samples' first row(s), then as many
            real drawings of the split, captioned.
        max_len: `N_max` of `nll_sketch_rnn` (see `heldout_nll`).

    Returns:
        A JSON-ready dict; docs/quality.md lists its keys.
    """
    config = model.config
    result = {"split": split, "n_samples": n, "temperature": temperature,
              "sigma_temperature": sigma_temperature, "seed": seed}
    result.update(heldout_nll(model, store, split, max_len=max_len))
    with data.open_store(store) as opened:
        indices = opened.split(split)
        real = [opened[int(i)] for i in indices]
    drawing = config.data_kind == "stroke3"
    if max_steps is None:
        max_steps = 2 * max(len(r) for r in real)
    generator = Generator(model, temperature=temperature, sigma_temperature=sigma_temperature, seed=seed)
    generated = generator.generate(n=n, max_steps=int(max_steps))
    result["max_steps"] = int(max_steps)
    result["min_steps"] = generator.min_steps
    if config.spec.pen == "categorical":
        result["ended_fraction"] = float(np.mean([len(g) < max_steps for g in generated]))
    else:
        result["ended_fraction"] = None  # no end-of-drawing state
    if drawing:
        result.update(compare_statistics(generated, real))
        if classifier:
            result.update(classifier_two_sample_test(real, generated, seed=seed))
        if svg_path is not None:
            shown = min(n, len(real), 10)
            drawings = list(generated[:shown]) + list(real[:shown])
            captions = [f"sample {i}" for i in range(shown)] + [f"data {i}" for i in range(shown)]
            grid_to_svg([d if len(d) else np.zeros((0, 3)) for d in drawings], svg_path,
                        columns=shown, captions=captions)
    if not drawing or not classifier:
        result.setdefault("classifier_accuracy", None)
    return result


def _finite(value):
    """JSON has no NaN or inf: they become `None`."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def to_json_ready(result):
    """`result` with non-finite floats as `None` (recursively)."""
    if isinstance(result, dict):
        return {k: to_json_ready(v) for k, v in result.items()}
    return _finite(result)
