"""mdnrnn.evaluate and `mdnrnn eval`: NLL conventions against hand-computed values, the
sample statistics, and the classifier two-sample test."""

import json

import numpy as np
import pytest
from scipy import special, stats

import mdnrnn
from mdnrnn import build_model, evaluate, preset
from mdnrnn.cli import main


def tiny_store(path, seed=0):
    """Stroke-3 drawings of 3..8 points: 12 train, 3 valid, 5 test."""
    rng = np.random.default_rng(seed)
    sequences = []
    for i in range(20):
        length = 3 + i % 6
        rows = np.column_stack([rng.normal(0, 4, (length, 2)), np.zeros(length)])
        rows[0, 2] = rows[-1, 2] = 1
        sequences.append(rows.astype(np.float32))
    splits = ["train"] * 12 + ["valid"] * 3 + ["test"] * 5
    mdnrnn.data.write_store(path, sequences, kind="stroke3", splits=splits)
    return [s for s, split in zip(sequences, splits) if split == "test"]


# Pinned head biases (the kernels are zeroed): two components, stroke-5 pen.
LOGITS, LOC, SCALE_BIAS, PEN = [0.3, -0.2], [0.5, -0.1, -0.4, 0.2], [0.1, -0.3, 0.4, 0.0], [0.2, -0.5, -1.0]


@pytest.fixture(scope="module")
def pinned(tmp_path_factory):
    """(store path, test drawings, a kanji model whose params are the same at every step)."""
    from mdnrnn import train

    path = tmp_path_factory.mktemp("eval") / "tiny.h5"
    test_drawings = tiny_store(path)
    config = train.prepare_config(path, preset("kanji", units=4, layers=1, components=2))
    model = build_model(config)
    head = model.head
    for dense, bias in zip(head.denses(), (LOGITS, LOC, SCALE_BIAS, PEN)):
        dense.kernel.assign(np.zeros(dense.kernel.shape, np.float32))
        dense.bias.assign(np.asarray(bias, np.float32))
    return path, test_drawings, model


def hand_nll(drawing, std):
    """Per-step (continuous, pen) NLL of one drawing under the pinned head, from SciPy:
    targets are the normalised points then the end row (0, 0, class 2)."""
    weights = special.log_softmax(np.array(LOGITS, np.float64))
    loc = np.reshape(LOC, (2, 2))
    bias = np.array(SCALE_BIAS, np.float64)
    scale = np.reshape(np.where(bias > 0, bias + 1.0, np.exp(bias)) + 1e-4, (2, 2))  # ELU + 1, the default
    pen = special.log_softmax(np.array(PEN, np.float64))
    targets = np.concatenate([drawing[:, :2] / std, np.zeros((1, 2))])
    classes = np.r_[drawing[:, 2].astype(int), 2]
    continuous = -np.array([
        special.logsumexp([weights[k] + stats.norm.logpdf(y, loc[k], scale[k]).sum() for k in range(2)])
        for y in targets
    ])
    return continuous, -pen[classes]


def test_heldout_nll_conventions_match_hand_computed_values(pinned):
    path, drawings, model = pinned
    _, std = model.config.normalisation
    parts = [hand_nll(d.astype(np.float64), std.astype(np.float64)) for d in drawings]
    steps = sum(len(c) for c, _ in parts)
    continuous = sum(c.sum() for c, _ in parts) / steps
    pen = sum(p.sum() for _, p in parts) / steps
    n_max = max(len(c) for c, _ in parts)  # the longest: 8 points + the end step
    sketch_rnn = np.mean([(c.sum() + p.sum()) / n_max for c, p in parts])
    got = evaluate.heldout_nll(model, path, "test", batch_size=2)
    assert got["steps"] == steps == sum(len(d) + 1 for d in drawings) and got["sequences"] == 5
    assert got["max_len"] == n_max == 9
    assert got["nll_continuous"] == pytest.approx(continuous, rel=1e-5)
    assert got["nll_pen"] == pytest.approx(pen, rel=1e-5)
    assert got["nll"] == pytest.approx(continuous + pen, rel=1e-5)
    assert got["nll_sketch_rnn"] == pytest.approx(sketch_rnn, rel=1e-5)
    # The per-step NLL is the training loss.
    dataset = mdnrnn.data.make_dataset(path, "test", 64, pen="categorical", shuffle=False)
    assert got["nll"] == pytest.approx(model.evaluate(dataset, verbose=0), rel=1e-5)
    # A longer N_max divides by more.
    longer = evaluate.heldout_nll(model, path, "test", max_len=18)
    assert longer["nll_sketch_rnn"] == pytest.approx(sketch_rnn / 2, rel=1e-5)
    with pytest.raises(ValueError, match="max_len=3"):
        evaluate.heldout_nll(model, path, "test", max_len=3)


def test_statistics_and_ks_by_hand():
    line = lambda n, lifts: np.column_stack([np.ones((n, 2)), np.isin(np.arange(n), lifts)]).astype(np.float32)
    # Strokes: pen lifts, plus one for a drawing whose last point keeps the pen down.
    points, strokes = evaluate.sequence_statistics([line(4, [1, 3]), line(3, [0]), line(2, []), line(0, [])])
    assert points.tolist() == [4, 3, 2, 0] and strokes.tolist() == [2, 2, 1, 0]
    # Points: real [2, 2, 4, 4] vs generated [2, 4, 4, 4]: the CDFs differ by 0.25 at 2.
    real = [line(2, [1]), line(2, [1]), line(4, [3]), line(4, [3])]
    generated = [line(2, [1]), line(4, [3]), line(4, [3]), line(4, [1, 3])]
    result = evaluate.compare_statistics(generated, real)
    assert result["points"]["ks"] == pytest.approx(0.25)
    assert result["points"]["generated_mean"] == 3.5 and result["points"]["data_mean"] == 3.0
    # Strokes: real [1, 1, 1, 1] vs generated [1, 1, 1, 2]: 0.25 again.
    assert result["strokes"]["ks"] == pytest.approx(0.25) and result["strokes"]["generated_mean"] == 1.25


def random_drawing(rng, kind):
    """A jittered horizontal line ("line") or a closed circle ("circle"), stroke-3."""
    if kind == "line":
        points = np.column_stack([np.linspace(0, 10, 12), rng.normal(0, 0.3, 12)])
    else:
        angle = np.linspace(0, 2 * np.pi, 16) + rng.uniform(0, 1)
        points = np.column_stack([np.cos(angle), np.sin(angle)]) * rng.uniform(3, 6)
    points += rng.normal(0, 0.1, points.shape)
    offsets = np.diff(np.vstack([[0, 0], points]), axis=0)
    return np.column_stack([offsets, np.r_[np.zeros(len(offsets) - 1), 1]]).astype(np.float32)


def test_rasterise_puts_a_line_inside_the_image():
    image = evaluate.rasterise(np.array([[0, 0, 0], [10, 0, 1]], np.float32), size=48)
    assert image.shape == (48, 48) and image.max() == 1.0
    assert (image.sum(0) > 0).sum() >= 40  # spans the width
    assert evaluate.rasterise(np.zeros((0, 3), np.float32)).sum() == 0


def test_classifier_separates_different_sets_and_not_two_halves_of_one():
    """150 lines vs 150 circles: held-out accuracy above 0.9. Two halves of 300 drawings
    drawn alike (half lines, half circles each): within 0.5 +- 0.15 (90 held out, so the
    standard error at 0.5 is 0.053; 0.15 is about 3 of them)."""
    rng = np.random.default_rng(0)
    lines = [random_drawing(rng, "line") for _ in range(150)]
    circles = [random_drawing(rng, "circle") for _ in range(150)]
    different = evaluate.classifier_two_sample_test(lines, circles, seed=1)
    assert different["classifier_accuracy"] > 0.9 and different["classifier_examples"] == 90
    mixed = [random_drawing(rng, kind) for kind in ["line", "circle"] * 150]
    same = evaluate.classifier_two_sample_test(mixed[:150], mixed[150:], seed=1)
    assert abs(same["classifier_accuracy"] - 0.5) < 0.15


def test_eval_command_writes_the_documented_json(pinned, tmp_path, capsys):
    path, drawings, model = pinned
    model_path = tmp_path / "m.keras"
    model.save(model_path)
    out = tmp_path / "eval.json"
    argv = ["eval", "--model", str(model_path), "--data", str(path), "--n", "12", "--max-steps", "20",
            "--json", str(out), "--svg", str(tmp_path / "grid.svg"), "--seed", "3"]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    for key in ("nll", "nll_continuous", "nll_pen", "nll_sketch_rnn", "max_len", "steps", "sequences",
                "ended_fraction", "points", "strokes", "classifier_accuracy", "classifier_examples",
                "split", "n_samples", "temperature", "sigma_temperature", "max_steps", "min_steps"):
        assert key in result, key
    assert result["nll"] == pytest.approx(evaluate.heldout_nll(model, path, "test")["nll"], rel=1e-6)
    # The pinned pen ends a drawing with probability e^-1 / (e^0.2 + e^-0.5 + e^-1) = 0.19
    # each step after min_steps (the shortest training drawing, 3 points).
    assert result["min_steps"] == 3 and 0 < result["ended_fraction"] <= 1
    assert 0 <= result["classifier_accuracy"] <= 1
    assert (tmp_path / "grid.svg").read_text().count("sample ") == 5  # 5 test drawings beside them
    assert "held-out NLL" in capsys.readouterr().out
    assert main(["eval", "--model", str(model_path), "--data", str(tmp_path / "none.h5")]) == 1


def test_heldout_nll_of_a_touch_model_uses_its_normalisation(tmp_path):
    """A touch model with random non-zero weights and a normalisation other than the
    store's: `nll` is -log sum_k pi_k N_k(target) on rows encoded with the model's
    statistics (by hand, SciPy densities), not the store's."""
    rng = np.random.default_rng(4)
    performances = [np.column_stack([rng.uniform(0, 1, (n, 2)), rng.choice([0.02, 0.3], n)]).astype(np.float32)
                    for n in (6, 9, 4, 5)]
    path = mdnrnn.data.write_store(tmp_path / "t.h5", performances, kind="touch", splits=["test"] * 3 + ["train"])
    config = mdnrnn.preset("touch", units=6, layers=1, components=2, mean=(0.3, 0.6, 0.2), std=(0.5, 0.4, 0.3))
    model = mdnrnn.build_model(config)
    for weight in model.weights:
        weight.assign(rng.normal(0, 0.5, weight.shape).astype(np.float32))
    codec, (k, d) = config.codec(), (2, 3)
    nll = []
    for rows in performances[:3]:
        params = model(codec.encode(rows)[None, :-1]).numpy()[0].astype(np.float64)
        for p, y in zip(params, codec.targets(rows)[1:]):
            log_w = special.log_softmax(p[:k])
            loc, scale = p[k : k + k * d].reshape(k, d), p[k + k * d : k + 2 * k * d].reshape(k, d)  # the head's scales
            nll.append(-special.logsumexp(log_w + stats.norm.logpdf(y, loc, scale).sum(1)))
    got = evaluate.heldout_nll(model, path, "test", batch_size=2)
    assert got["steps"] == len(nll) == 16
    assert got["nll"] == pytest.approx(np.mean(nll), rel=1e-4)
    assert got["nll_continuous"] == got["nll"] and got["nll_pen"] is None
