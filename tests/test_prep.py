"""data_prep importers on real data and on bad input.

References come from the inputs themselves: NumPy / h5py reads of the source
files, `<path>` elements and `M` commands read from the SVGs with
ElementTree and a regular expression, and hand-computed IMPSY rows.
"""

import hashlib
import importlib.metadata
import io
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import data_prep
from data_prep import common, impsy, kanjivg, robojam, sketch_npz
from data_prep.common import PrepError, load_npz
from mdnrnn import data, datasets

ROOT = Path(__file__).parents[1]
SHORT_KANJI = datasets.path("short_kanji")  # sketch-rnn stroke-3 .npz, shipped
CORPUS = datasets.path("robojam")  # TinyPerformanceCorpus.h5, shipped
ARRAYS = ROOT / "tests" / "data" / "TinyPerformanceArrays.npz"  # one array per performance
SVG = "{http://www.w3.org/2000/svg}"


def _kanjivg_dir():
    files = importlib.metadata.files("kanjivg")
    return Path(next(f for f in files if f.name == "04e8c.svg").locate()).parent


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _no_leftovers(folder):
    return not any(p.name.endswith(".tmp") for p in Path(folder).iterdir())


def _one_error(capsys, argv, watched=()):
    """Runs `data_prep.main(argv)` and checks that it failed cleanly.

    Exit status 1, exactly one `error: ...` line on stderr, no `--out` (nor a
    temporary file beside it), and the `watched` input files unchanged.

    Returns:
        The error line.
    """
    before = [_digest(path) for path in watched]
    out = Path(argv[argv.index("--out") + 1])
    assert data_prep.main([*argv, "--no-progress"]) == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), captured.err
    assert not out.exists() and _no_leftovers(out.parent)
    assert [_digest(path) for path in watched] == before
    return err[0]


def _objects(*items):
    """A 1-d object array holding `items` (as sketch-rnn and IMPSY files do)."""
    array = np.empty(len(items), dtype=object)
    array[:] = list(items)
    return array


class _Payload:
    """Unpickles as a call to `os.system(command)`: what a crafted .npz can hold."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


# --- .npz files are read without running code from them ----------------------


@pytest.mark.parametrize("command, key", [("sketch-npz", "train"), ("robojam", "arr_0"),
                                          ("impsy", "perfs")])
def test_npz_pickle_payload_does_not_run(tmp_path, capsys, command, key):
    marker = tmp_path / "MARKER"
    crafted = tmp_path / "crafted.npz"
    drawing = np.zeros((2, 3), dtype=np.int16)
    np.savez(crafted, **{key: _objects(drawing, _Payload(f"touch {marker}"))})
    error = _one_error(capsys, [command, str(crafted), "--out", str(tmp_path / "o.h5")],
                       watched=[crafted])
    assert error == (f"error: {crafted}: array {key!r}: refused to load "
                     f"{os.system.__module__}.system (only arrays are read)")
    assert not marker.exists()
    # The payload is real: NumPy's own unrestricted loading runs it.
    with np.load(crafted, allow_pickle=True) as npz:
        npz[key]
    assert marker.exists()


@pytest.mark.parametrize("path", [SHORT_KANJI, ARRAYS], ids=["short_kanji", "arrays"])
def test_shipped_npz_files_load_as_numpy_loads_them(path):
    arrays = load_npz(path)
    with np.load(path, allow_pickle=True, encoding="latin1") as npz:  # our own, trusted files
        assert sorted(arrays) == sorted(npz.files)
        for key in npz.files:
            reference = npz[key]
            assert arrays[key].dtype == reference.dtype == object
            assert arrays[key].shape == reference.shape
            for ours, theirs in zip(arrays[key], reference):
                assert ours.dtype == theirs.dtype
                np.testing.assert_array_equal(ours, theirs)


def _npy_bytes(header, body):
    """An `.npy` member: a format 1.0 header (a dict), then `body` bytes."""
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, header)
    return stream.getvalue() + body


def test_load_npz_refuses_what_is_not_numbers(tmp_path):
    nested = _objects(_objects(np.zeros(2)))
    cases = {  # file -> (members, the error after the file's name)
        "bool.npz": ({"x.npy": np.zeros(3, dtype=bool)},
                     "array 'x' has dtype bool, expected integers or floats"),
        "nested.npz": ({"x.npy": nested},
                       "x[0] is object, expected an array of integers or floats"),
        "none.npz": ({"x.npy": _objects(np.zeros(2), None)},
                     "x[1] is NoneType, expected an array of integers or floats"),
        "text.npz": ({"readme.txt": b"hello"}, "member 'readme.txt' is not an .npy array"),
        "huge.npz": ({"x.npy": _npy_bytes({"descr": "<f8", "fortran_order": False,
                                           "shape": (10**12,)}, bytes(80))},
                     "array 'x' is shorter than its shape (1000000000000,)"),
        "list.npz": ({"x.npy": _npy_bytes({"descr": "|O", "fortran_order": False, "shape": (2,)},
                                          pickle.dumps([1, 2], protocol=3))},
                     "array 'x' does not hold the object array of its header"),
    }
    for name, (members, message) in cases.items():
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            for member, content in members.items():
                if isinstance(content, np.ndarray):
                    stream = io.BytesIO()
                    np.lib.format.write_array(stream, content, allow_pickle=True)
                    content = stream.getvalue()
                archive.writestr(member, content)
        with pytest.raises(PrepError) as caught:
            load_npz(tmp_path / name)
        assert str(caught.value) == f"{tmp_path / name}: {message}"


def test_npz_numeric_arrays_load_without_pickle(tmp_path):
    fortran = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4))
    np.savez_compressed(tmp_path / "plain.npz", a=fortran, b=np.arange(5, dtype=">i4"))
    arrays = load_npz(tmp_path / "plain.npz")
    np.testing.assert_array_equal(arrays["a"], fortran)
    np.testing.assert_array_equal(arrays["b"], np.arange(5))


# --- sketch-rnn .npz ---------------------------------------------------------


def test_short_kanji_keeps_splits_and_points(tmp_path):
    summary = sketch_npz.convert([SHORT_KANJI], tmp_path / "k.h5", progress=False)
    with np.load(SHORT_KANJI, allow_pickle=True, encoding="latin1") as npz:
        source = {name: list(npz[name]) for name in ("train", "valid", "test")}
    assert {k: len(v) for k, v in source.items()} == {"train": 10000, "valid": 600, "test": 500}
    with data.open_store(tmp_path / "k.h5") as store:
        assert store.kind == "stroke3"
        for name, drawings in source.items():
            indices = store.split(name)
            assert len(indices) == len(drawings)
            for i, drawing in zip(indices, drawings):
                np.testing.assert_array_equal(store[i], drawing)
        assert set(store.labels) == {"short_kanji"}
        total = sum(len(d) for v in source.values() for d in v)
        assert store.n_points == total
    assert summary.points == summary.points_read == total
    assert summary.splits == {"train": 10000, "valid": 600, "test": 500}


def test_sketch_npz_without_expected_keys(tmp_path):
    np.savez(tmp_path / "odd.npz", drawings=np.zeros(3))
    with pytest.raises(PrepError, match=r"odd.npz: no 'train', 'valid' or 'test' array "
                                        r"\(found keys: drawings\)"):
        sketch_npz.convert([tmp_path / "odd.npz"], tmp_path / "out.h5", progress=False)
    assert not (tmp_path / "out.h5").exists()


def test_sketch_npz_truncated_file(tmp_path):
    raw = (SHORT_KANJI).read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(PrepError, match="cut.npz: not a readable .npz file"):
        sketch_npz.convert([tmp_path / "cut.npz"], tmp_path / "out.h5", progress=False)


def test_sketch_npz_bad_drawings_are_skipped_and_named(tmp_path):
    good = np.array([[1, 2, 0], [3, 4, 1]], dtype=np.int16)
    drawings = np.empty(4, dtype=object)
    other = np.array([[7, -2, 1]], dtype=np.int16)
    drawings[:] = [good, np.zeros((3, 2)), np.array([[1.0, np.nan, 1.0]]), other]
    valid = np.empty(1, dtype=object)
    valid[0] = np.array([[0, 0, 1], [5, 5, 7]])
    np.savez(tmp_path / "cat.npz", train=drawings, valid=valid)
    summary = sketch_npz.convert([tmp_path / "cat.npz"], tmp_path / "out.h5", progress=False)
    assert summary.skipped == {
        "not a non-empty (n, 3) array": ["cat.npz:train[1]"],
        "NaN or inf values": ["cat.npz:train[2]"],
        "pen values other than 0 and 1": ["cat.npz:valid[0]"],
    }
    assert summary.points_read == 2 + 3 + 1 + 1 + 2
    assert summary.points + sum(summary.dropped_points.values()) == summary.points_read
    with data.open_store(tmp_path / "out.h5") as store:
        assert len(store) == 2 and list(store.labels) == ["cat", "cat"]
        np.testing.assert_array_equal(store[1], other)


def _sketch_case(folder, case):
    """A bad sketch-rnn file for `case` and the start of its error message."""
    path = folder / f"{case}.npz"
    good = np.array([[1, 2, 1]], dtype=np.int16)
    if case == "0-d drawing":
        np.savez(path, train=_objects(np.array(5, dtype=np.int16), good))
        return path, f"{path}: train[0] is 0-d (one value), expected a sequence of numbers"
    if case == "npy renamed":
        np.save(folder / "drawings.npy", np.zeros((2, 3)))
        (folder / "drawings.npy").rename(path)
        return path, f"{path}: a single .npy array, not an .npz archive"
    if case == "complex array":
        np.savez(path, train=np.ones((4, 2, 3), dtype=complex))
        return path, f"{path}: array 'train' has dtype complex128, expected integers or floats"
    if case == "complex drawing":
        np.savez(path, train=_objects(good, good + 1j))
        return path, f"{path}: train[1] is complex128, expected an array of integers or floats"
    if case == "string array":
        np.savez(path, train=np.array([["1", "2", "0"]]))
        return path, f"{path}: array 'train' has dtype <U1, expected integers or floats"
    if case == "string drawing":
        np.savez(path, valid=_objects(good, "1,2,0"))
        return path, f"{path}: valid[1] is str, expected an array of integers or floats"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["0-d drawing", "npy renamed", "complex array",
                                  "complex drawing", "string array", "string drawing"])
def test_sketch_npz_bad_files_are_one_line_errors(tmp_path, capsys, case):
    path, message = _sketch_case(tmp_path, case)
    error = _one_error(capsys, ["sketch-npz", str(path), "--out", str(tmp_path / "o.h5")],
                       watched=[path])
    assert error == f"error: {message}"


def test_sketch_npz_a_bad_second_file_writes_nothing(tmp_path, capsys):
    path, _ = _sketch_case(tmp_path, "complex drawing")
    _one_error(capsys, ["sketch-npz", str(SHORT_KANJI), str(path), "--out",
                        str(tmp_path / "o.h5")], watched=[SHORT_KANJI, path])


def test_sketch_npz_sample_is_short_kanji(tmp_path, capsys):
    assert data_prep.main(["sketch-npz", "--sample", "--out", str(tmp_path / "k.h5"),
                           "--no-progress"]) == 0
    assert "sequences: 11,100 (train 10,000, valid 600, test 500)" in capsys.readouterr().out
    with data.open_store(tmp_path / "k.h5") as store, np.load(
        SHORT_KANJI, allow_pickle=True, encoding="latin1"
    ) as npz:
        np.testing.assert_array_equal(store[store.split("test")[-1]], npz["test"][-1])
    assert data_prep.main(["sketch-npz", str(SHORT_KANJI), "--sample", "--out",
                           str(tmp_path / "x.h5")]) == 2
    assert data_prep.main(["sketch-npz", "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == ("python -m data_prep sketch-npz: error: "
                       "give exactly one of FILE.npz and --sample")
    assert not (tmp_path / "x.h5").exists()


# --- RoboJam -----------------------------------------------------------------


def test_robojam_corpus_keeps_every_point_in_order(tmp_path):
    summary = robojam.convert(CORPUS, tmp_path / "t.h5",
                              progress=False)
    with h5py.File(CORPUS, "r") as f:
        raw = f["total_performances"][:]
    assert len(raw) == 172261
    with data.open_store(tmp_path / "t.h5") as store:
        assert store.kind == "touch" and store.n_points == 172261
        rows = np.concatenate([store[i] for i in range(len(store))])
        np.testing.assert_array_equal(rows, raw)
        for i in range(len(store)):
            dt = store[i][:, 2]
            assert dt[0] == 0  # every performance starts with dt == 0 ...
            # ... and no row with dt == 0 after a row with dt != 0 is inside one
            assert not np.any((dt[1:] == 0) & (dt[:-1] != 0))
        assert sum(len(store.split(s)) for s in data.SPLITS) == len(store)
    assert summary.points_read == summary.points == 172261
    assert summary.dropped_points == {}


def test_robojam_arrays_cleaned_and_accounted(tmp_path):
    summary = robojam.convert(ARRAYS, tmp_path / "t.h5",
                              progress=False)
    with np.load(ARRAYS, allow_pickle=True) as npz:
        perfs = [p for p in npz["arr_0"]]
    everything = np.concatenate(perfs)
    assert summary.points_read == len(everything) == 249870
    assert summary.points + sum(summary.dropped_points.values()) == summary.points_read
    assert summary.clipped == {
        "x": int(((everything[:, 0] < 0) | (everything[:, 0] > 1)).sum()),
        "y": int(((everything[:, 1] < 0) | (everything[:, 1] > 1)).sum()),
        "dt": int(((everything[:, 2] < 0) | (everything[:, 2] > 5)).sum()),
    }
    assert summary.clipped["dt"] > 0 and summary.clipped["x"] > 0
    kept = [p for p in perfs if len(p)]
    with data.open_store(tmp_path / "t.h5") as store:
        assert len(store) == len(kept)
        for i in (0, 100, len(store) - 1):
            np.testing.assert_array_equal(store[i], np.clip(kept[i], 0, [1, 1, 5]))
        values = np.concatenate([store[i] for i in range(len(store))])
        assert values.min() >= 0 and values[:, :2].max() <= 1 and values[:, 2].max() <= 5


def test_robojam_bad_inputs(tmp_path):
    with h5py.File(tmp_path / "wrong.h5", "w") as f:
        f["something"] = np.zeros((4, 3))
    with pytest.raises(PrepError, match="no dataset 'total_performances' .found: something"):
        robojam.convert(tmp_path / "wrong.h5", tmp_path / "o.h5", progress=False)
    raw = (CORPUS).read_bytes()
    (tmp_path / "cut.h5").write_bytes(raw[:5000])
    with pytest.raises(PrepError, match="cut.h5: not a readable HDF5 file"):
        robojam.convert(tmp_path / "cut.h5", tmp_path / "o.h5", progress=False)
    np.savez(tmp_path / "two.npz", a=np.zeros(2), b=np.zeros(2))
    with pytest.raises(PrepError, match="expected one array or 'arr_0' .found keys: a, b"):
        robojam.convert(tmp_path / "two.npz", tmp_path / "o.h5", progress=False)
    assert not (tmp_path / "o.h5").exists()


def _robojam_case(folder, case):
    """A bad RoboJam corpus file for `case` and its error message."""
    if case.startswith("h5"):
        path = folder / "corpus.h5"
        with h5py.File(path, "w") as f:
            if case == "h5 group":
                f.create_group("total_performances")
            elif case == "h5 scalar":
                f["total_performances"] = 0.5
            elif case == "h5 strings":
                f["total_performances"] = np.array([[b"0.1", b"0.2", b"0"]])
            elif case == "h5 complex":
                f["total_performances"] = np.ones((2, 3), dtype=complex)
            elif case == "h5 soft link":
                f["total_performances"] = h5py.SoftLink("/elsewhere")
            elif case == "h5 external link":
                f["total_performances"] = h5py.ExternalLink(str(CORPUS), "/total_performances")
        name = f"{path}: /total_performances"
        return path, {
            "h5 group": f"{name} is a Group, expected a dataset",
            "h5 scalar": f"{name} has shape (), expected (N, 3)",
            "h5 strings": f"{name} has dtype |S3, expected integers or floats",
            "h5 complex": f"{name} has dtype complex128, expected integers or floats",
            "h5 soft link": f"{name} is a link (SoftLink), expected a dataset",
            "h5 external link": f"{name} is a link (ExternalLink), expected a dataset",
        }[case]
    path = folder / "arrays.npz"
    if case == "npz strings":
        np.savez(path, arr_0=np.array([[["0.1", "0.2", "0"]]]))
        return path, f"{path}: array 'arr_0' has dtype <U3, expected integers or floats"
    if case == "npz 0-d":
        np.savez(path, arr_0=np.array(0.5))
        return path, f"{path}: array 'arr_0' is 0-d (one value), expected one entry per sequence"
    if case == "npz complex":
        np.savez(path, arr_0=_objects(np.ones((2, 3)), np.ones((2, 3), dtype=np.complex64)))
        return path, f"{path}: arr_0[1] is complex64, expected an array of integers or floats"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["h5 group", "h5 scalar", "h5 strings", "h5 complex",
                                  "h5 soft link", "h5 external link", "npz strings",
                                  "npz 0-d", "npz complex"])
def test_robojam_bad_files_are_one_line_errors(tmp_path, capsys, case):
    path, message = _robojam_case(tmp_path, case)
    error = _one_error(capsys, ["robojam", str(path), "--out", str(tmp_path / "o.h5")],
                       watched=[path])
    assert error == f"error: {message}"


def test_robojam_sample_is_the_shipped_corpus(tmp_path, capsys):
    assert data_prep.main(["robojam", "--sample", "--out", str(tmp_path / "t.h5"),
                           "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"source:    RoboJam touch corpus {CORPUS}" in out
    assert "points read 172,261 = kept 172,261 + dropped 0" in out
    assert data_prep.main(["robojam", str(CORPUS), "--sample", "--out",
                           str(tmp_path / "x.h5")]) == 2
    assert data_prep.main(["robojam", "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "python -m data_prep robojam: error: give exactly one of FILE and --sample"
    assert not (tmp_path / "x.h5").exists()


# --- KanjiVG -----------------------------------------------------------------

CHARACTERS = {"二": "04e8c", "漢": "06f22", "一": "04e00", "永": "06c38", "書": "066f8"}


@pytest.fixture(scope="module")
def kanji_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kanjivg")
    for code in CHARACTERS.values():
        shutil.copy(_kanjivg_dir() / f"{code}.svg", folder)
    shutil.copy(_kanjivg_dir() / "04e14-Kaisho.svg", folder)
    return folder


def _svg_strokes(path):
    """Stroke count, start points and viewBox, read straight from the SVG."""
    root = ET.parse(path).getroot()
    paths = list(root.iter(SVG + "path"))
    starts = [
        [float(v) for v in re.match(r"\s*M\s*([-\d.]+)[\s,]*([-\d.]+)", p.get("d")).groups()]
        for p in paths
    ]
    box = [float(v) for v in root.get("viewBox").split()]
    return len(paths), np.array(starts), box


def test_kanjivg_strokes_order_and_viewbox(kanji_dir, tmp_path):
    summary = kanjivg.convert(tmp_path / "k.h5", directory=kanji_dir, progress=False)
    assert summary.sequences == len(CHARACTERS)  # the -Kaisho variant is left out
    with data.open_store(tmp_path / "k.h5") as store:
        by_label = {label: store[i] for i, label in enumerate(store.labels)}
    assert set(by_label) == set(CHARACTERS)
    assert _svg_strokes(kanji_dir / "04e8c.svg")[0] == 2
    assert _svg_strokes(kanji_dir / "06f22.svg")[0] == 13
    for char, code in CHARACTERS.items():
        n_strokes, starts, (x0, y0, width, height) = _svg_strokes(kanji_dir / f"{code}.svg")
        rows = by_label[char]
        pen = rows[:, 2]
        assert pen.sum() == n_strokes and pen[-1] == 1
        points = np.cumsum(rows[:, :2].astype(np.float64), axis=0)
        assert points[:, 0].min() >= x0 and points[:, 0].max() <= x0 + width
        assert points[:, 1].min() >= y0 and points[:, 1].max() <= y0 + height
        first = np.concatenate([[0], np.flatnonzero(pen)[:-1] + 1])  # each stroke's start
        np.testing.assert_allclose(points[first], starts, atol=1e-3)


def test_kanjivg_variants_on_request(kanji_dir, tmp_path):
    summary = kanjivg.convert(tmp_path / "k.h5", directory=kanji_dir, include_variants=True,
                              progress=False)
    assert summary.sequences == len(CHARACTERS) + 1
    with data.open_store(tmp_path / "k.h5") as store:
        assert sorted(store.labels).count("且") == 1  # U+4E14, from 04e14-Kaisho.svg


def test_kanjivg_epsilon_simplifies(kanji_dir, tmp_path):
    points = [
        kanjivg.convert(tmp_path / f"k{e}.h5", directory=kanji_dir, epsilon=e,
                        progress=False).points
        for e in (0.0, 0.5, 2.0)
    ]
    assert points[0] > points[1] > points[2] >= sum(_svg_strokes(kanji_dir / f"{c}.svg")[0] * 2
                                                      for c in CHARACTERS.values())


def test_kanjivg_split_is_deterministic_by_seed(tmp_path):
    def splits(seed, name):
        kanjivg.convert(tmp_path / name, limit=200, seed=seed, progress=False)
        with data.open_store(tmp_path / name) as store:
            return [store.split(s).tolist() for s in data.SPLITS]

    first = splits(1, "a.h5")
    assert splits(1, "b.h5") == first
    assert splits(2, "c.h5") != first
    assert [len(s) for s in first] == [180, 10, 10]


def test_kanjivg_bad_files_are_skipped_counted_and_named(kanji_dir, tmp_path, capsys):
    folder = tmp_path / "svgs"
    folder.mkdir()
    shutil.copy(kanji_dir / "04e8c.svg", folder)
    text = (kanji_dir / "06f22.svg").read_text(encoding="utf-8")
    broken = text.replace('d="M20,19.5c3.62,1.47,8.62,5.38,10.25,8.34"', 'd="M20,19.5c3.62,1.47"')
    assert broken != text
    (folder / "06f22.svg").write_text(broken, encoding="utf-8")
    (folder / "04e00.svg").write_text("<svg><g>unclosed", encoding="utf-8")
    (folder / "05c71.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    first_stroke = 'd="M20,19.5c3.62,1.47,8.62,5.38,10.25,8.34"'
    arc = text.replace(first_stroke, 'd="M20,19.5 A5,5 0 0 1 30,28"')
    (folder / "06c38.svg").write_text(arc, encoding="utf-8")
    rc = data_prep.main(["kanjivg", "--dir", str(folder), "--out", str(tmp_path / "k.h5"),
                         "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "skipped 4: malformed or unsupported SVG" in out
    for name in ("06f22.svg (kvg:06f22-s1: broken path data", "04e00.svg (not readable as XML",
                 "05c71.svg (no stroke <path> elements)", "06c38.svg (kvg:06f22-s1: unsupported"):
        assert name in out
    with data.open_store(tmp_path / "k.h5") as store:
        assert list(store.labels) == ["二"]


def test_kanjivg_empty_or_missing_folder(tmp_path, capsys):
    assert data_prep.main(["kanjivg", "--dir", str(tmp_path), "--out",
                           str(tmp_path / "k.h5")]) == 1
    assert data_prep.main(["kanjivg", "--dir", str(tmp_path / "nope"), "--out",
                           str(tmp_path / "k.h5")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {tmp_path}: no SVG files in this folder",
                   f"error: {tmp_path / 'nope'}: no such folder"]
    assert list(tmp_path.iterdir()) == []


def _stroke_svg(*paths):
    body = "".join(f'<path d="{d}"/>' for d in paths)
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 109 109">{body}</svg>'


def test_kanjivg_absurd_coordinates_are_skipped_and_named(kanji_dir, tmp_path, capsys):
    folder = tmp_path / "svgs"
    folder.mkdir()
    shutil.copy(kanji_dir / "04e8c.svg", folder)
    for code, far in (("04e00", "1e12"), ("04e01", "1e20"), ("04e02", "1e300")):
        (folder / f"{code}.svg").write_text(_stroke_svg(f"M10,10 L{far},20"))
    argv = ["kanjivg", "--dir", str(folder), "--out", str(tmp_path / "k.h5"), "--no-progress"]
    assert data_prep.main(argv) == 0
    out = capsys.readouterr().out
    assert "skipped 3: malformed or unsupported SVG: " in out
    for code, far in (("04e00", "1e+12"), ("04e01", "1e+20"), ("04e02", "1e+300")):
        assert (f"{code}.svg (coordinate {far} outside +-1000 "
                "(KanjiVG's viewBox is 0 0 109 109))") in out
    with data.open_store(tmp_path / "k.h5") as store:
        assert list(store.labels) == ["二"]


def test_failed_conversion_prints_only_the_error_line(tmp_path, capsys):
    folder = tmp_path / "svgs"
    folder.mkdir()
    (folder / "04e00.svg").write_text(_stroke_svg("M10,10 L1e12,20"))
    # With progress on, but stderr is not a terminal: no bar, just the error.
    assert data_prep.main(["kanjivg", "--dir", str(folder), "--out", str(tmp_path / "k.h5")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("error: no sequences to write (malformed or unsupported SVG: "
                            "04e00.svg (coordinate 1e+12 outside +-1000 (KanjiVG's viewBox is "
                            "0 0 109 109))); nothing written\n")


def test_kanjivg_one_file_cannot_take_all_memory(tmp_path):
    many = tmp_path / "04e00.svg"  # 5 strokes along the diagonal of the allowed square
    many.write_text(_stroke_svg(*["M-1000,-1000 L1000,1000"] * 5))
    samples = 5 * (math.ceil(2000 * math.sqrt(2) / 0.01) + 1)  # each stroke's start too
    with pytest.raises(kanjivg.SvgError, match=rf"^{samples:,} curve samples at step 0.01, "
                                               r"more than 1,000,000$"):
        kanjivg.read_strokes(many, sample_step=0.01)
    big = tmp_path / "04e01.svg"
    big.write_text(_stroke_svg("M10,10 L20,20") + " " * kanjivg.MAX_SVG_BYTES)
    with pytest.raises(kanjivg.SvgError, match=r"bytes, more than the 1,048,576 of a KanjiVG"):
        kanjivg.read_strokes(big)


# --- IMPSY ---------------------------------------------------------------------

LOG = """\
2024-06-01T12:00:00.000000,interface,0.1,0.2
2024-06-01T12:00:00.500000,interface,0.3,0.4
2024-06-01T12:00:00.600000,rnn,0.9,0.9
garbage
2024-06-01T12:00:01.000000,interface,abc,0.2
not-a-time,interface,0.1,0.2
2024-06-01T12:00:01.250000,interface,0.5,0.6
2024-06-01T12:00:01.300000,interface,0.5
2024-06-01T12:00:01.100000,interface,0.7,0.7
2024-06-01T12:00:02.000000,interface,nan,0.1

2024-06-01T12:00:03.000000,interface,0.7,0.8
"""
# dt from consecutive kept interface timestamps; the first row has none.
LOG_ROWS = np.array([[0.5, 0.3, 0.4], [0.75, 0.5, 0.6], [1.75, 0.7, 0.8]], dtype=np.float32)


@pytest.fixture
def log_dir(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "2024-06-01T12-00-00-3d-mdrnn.log").write_text(LOG)
    (folder / "2024-06-02T12-00-00-3d-mdrnn.log").write_text(
        "2024-06-02T12:00:00,rnn,0.1,0.2\n2024-06-02T12:00:01,rnn,0.1,0.2\n"
    )
    return folder


def test_impsy_log_with_garbage_lines(log_dir, tmp_path):
    summary = impsy.convert(log_dir, tmp_path / "i.h5", progress=False)
    with data.open_store(tmp_path / "i.h5") as store:
        assert store.kind == "impsy" and store.columns == ("dt", "x_1", "x_2")
        assert len(store) == 1
        np.testing.assert_allclose(store[0], LOG_ROWS, rtol=1e-6)
        assert list(store.labels) == ["2024-06-01T12-00-00-3d-mdrnn.log"]
    assert summary.dropped_points == {
        "log rows from source 'rnn' (not 'interface')": 3,
        "log lines with too few fields": 1,
        "log lines with a non-numeric value": 1,
        "log lines with a bad timestamp": 1,
        "log lines without exactly 2 values": 1,
        "log rows whose timestamp goes backwards": 1,
        "log lines with NaN or inf values": 1,
        "first row of each log (no previous timestamp for dt)": 1,
    }
    assert summary.skipped == {"log with no usable interface rows": [
        "2024-06-02T12-00-00-3d-mdrnn.log"]}
    assert summary.points_read == 11 + 2
    assert summary.points + sum(summary.dropped_points.values()) == summary.points_read


def test_impsy_dataset_npz_matches_logs(tmp_path):
    perfs = np.empty(2, dtype=object)
    perfs[:] = [LOG_ROWS, np.array([[0.0, 0.5, 0.5], [np.inf, 0.1, 0.1]], dtype=np.float32)]
    np.savez_compressed(tmp_path / "training-dataset-3d.npz", perfs=perfs)
    summary = impsy.convert(tmp_path / "training-dataset-3d.npz", tmp_path / "i.h5",
                            progress=False)
    with data.open_store(tmp_path / "i.h5") as store:
        np.testing.assert_array_equal(store[0], LOG_ROWS)
        np.testing.assert_array_equal(store[1], [[0.0, 0.5, 0.5]])
    assert summary.dropped_points == {"rows with NaN or inf values": 1}


def test_impsy_dimensions(log_dir, tmp_path):
    (log_dir / "2024-06-03T12-00-00-5d-mdrnn.log").write_text(
        "2024-06-03T12:00:00,interface,1,2,3,4\n2024-06-03T12:00:01,interface,1,2,3,4\n"
    )
    with pytest.raises(PrepError, match=r"logs of several dimensions \(3d, 5d\)"):
        impsy.convert(log_dir, tmp_path / "i.h5", progress=False)
    summary = impsy.convert(log_dir, tmp_path / "i.h5", dimension=5, progress=False)
    assert summary.sequences == 1 and summary.points == 1
    with data.open_store(tmp_path / "i.h5") as store:
        assert store.columns == ("dt", "x_1", "x_2", "x_3", "x_4")


def test_impsy_bad_inputs(tmp_path):
    with pytest.raises(PrepError, match=r"no IMPSY log files \(\*.log\) in this folder"):
        impsy.convert(tmp_path, tmp_path / "i.h5", progress=False)
    np.savez(tmp_path / "x.npz", arr_0=np.zeros(2))
    with pytest.raises(PrepError, match="no 'perfs' array .found keys: arr_0.; expected an IMPSY"):
        impsy.convert(tmp_path / "x.npz", tmp_path / "i.h5", progress=False)
    (tmp_path / "only-garbage.log").write_text("junk\n,,\n")
    with pytest.raises(PrepError, match="no 'interface' rows in any log"):
        impsy.convert(tmp_path, tmp_path / "i.h5", progress=False)
    assert not (tmp_path / "i.h5").exists()


def test_impsy_folders_links_big_files_and_far_timestamps_in_logs(log_dir, tmp_path,
                                                                  monkeypatch):
    (log_dir / "x.log").mkdir()
    (log_dir / "loop.log").symlink_to(log_dir / "loop.log")  # a link to itself
    monkeypatch.setattr(impsy, "MAX_LOG_BYTES", 1000)
    (log_dir / "big.log").write_text("2024-06-01T12:00:00,interface,0.1,0.2\n" * 30)
    (log_dir / "2024-06-01T12-00-00-3d-mdrnn.log").write_text(
        LOG
        + "0001-01-01T00:00:00+05:00,interface,0.1,0.2\n"  # before year 1 in UTC
        + "2024-06-01T12:00:04,interface,1e300,0.2\n"  # inf as float32
    )
    summary = impsy.convert(log_dir, tmp_path / "i.h5", progress=False)
    assert summary.skipped["not a regular file"] == ["loop.log", "x.log"]
    assert summary.skipped["log larger than 1,000 bytes"] == ["big.log"]
    assert summary.dropped_points["log lines with a bad timestamp"] == 2
    assert summary.dropped_points["log lines with NaN or inf values"] == 2
    with data.open_store(tmp_path / "i.h5") as store:
        np.testing.assert_allclose(store[0], LOG_ROWS, rtol=1e-6)


def test_impsy_folder_of_only_unreadable_logs(tmp_path, capsys):
    (tmp_path / "x.log").mkdir()
    (tmp_path / "loop.log").symlink_to(tmp_path / "loop.log")
    error = _one_error(capsys, ["impsy", str(tmp_path), "--out", str(tmp_path / "o.h5")])
    assert error == f"error: {tmp_path}: no IMPSY log files (*.log) in this folder"


def test_impsy_dimension_named_in_logs_is_bounded(tmp_path, capsys):
    (tmp_path / "a-999d-mdrnn.log").write_text("2024-06-01T12:00:00,interface,0.1\n")
    error = _one_error(capsys, ["impsy", str(tmp_path), "--out", str(tmp_path / "o.h5")])
    assert error == f"error: {tmp_path}: the logs have IMPSY dimension 999, outside 2 to 256"


@pytest.mark.parametrize("case", ["0-d", "strings", "all empty"])
def test_impsy_bad_npz_are_one_line_errors(tmp_path, capsys, case):
    path = tmp_path / "training-dataset-9d.npz"
    if case == "0-d":
        np.savez(path, perfs=np.array(1.0))
        message = f"{path}: array 'perfs' is 0-d (one value), expected one entry per sequence"
    elif case == "strings":
        np.savez(path, perfs=np.array([["0.5", "0.1"]]))
        message = f"{path}: array 'perfs' has dtype <U3, expected integers or floats"
    else:
        np.savez(path, perfs=_objects(np.zeros((0, 9)), np.zeros((0, 9))))
        message = "no sequences to write (empty array: perfs[0] and 1 more); nothing written"
    error = _one_error(capsys, ["impsy", str(path), "--out", str(tmp_path / "o.h5")],
                       watched=[path])
    assert error == f"error: {message}"


def test_impsy_empty_arrays_are_reported_as_empty(tmp_path):
    path = tmp_path / "training-dataset-3d.npz"
    np.savez(path, perfs=_objects(np.zeros((0, 3)), LOG_ROWS,
                                  np.array([[np.nan, 0.1, 0.1]])))
    summary = impsy.convert(path, tmp_path / "i.h5", progress=False)
    assert summary.skipped == {"empty array": ["perfs[0]"], "no finite rows": ["perfs[2]"]}


# --- the command line ----------------------------------------------------------


def test_cli_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "t.h5"
    args = ["robojam", str(CORPUS), "--out", str(out), "--no-progress"]
    assert data_prep.main(args) == 0
    summary = capsys.readouterr().out
    assert "sequences:" in summary and "points read 172,261 = kept 172,261 + dropped 0" in summary
    before = _digest(out)
    assert data_prep.main(args) == 1
    err = capsys.readouterr().err
    assert err == f"error: {out} already exists; pass --force to overwrite it\n"
    assert _digest(out) == before
    assert data_prep.main(args + ["--force", "--seed", "5"]) == 0
    assert _digest(out) != before


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    assert data_prep.main([]) == 2
    assert data_prep.main(["kanjivg"]) == 2  # --out is required
    assert data_prep.main(["kanjivg", "--out", "x.h5", "--limit", "many"]) == 2
    assert "usage:" in capsys.readouterr().err


BOUNDED_OPTIONS = [  # (command, option, bounds, a value outside them)
    ("kanjivg", "--sample-step", kanjivg.SAMPLE_STEP_RANGE, "1e-7"),
    ("kanjivg", "--sample-step", kanjivg.SAMPLE_STEP_RANGE, "0"),
    ("kanjivg", "--epsilon", kanjivg.EPSILON_RANGE, "-1"),
    ("kanjivg", "--epsilon", kanjivg.EPSILON_RANGE, "nan"),
    ("kanjivg", "--limit", kanjivg.LIMIT_RANGE, "0"),
    ("kanjivg", "--limit", kanjivg.LIMIT_RANGE, "10000000"),
    ("kanjivg", "--seed", common.SEED_RANGE, "99999999999999999999999"),
    ("robojam", "--seed", common.SEED_RANGE, "-1"),
    ("robojam", "--valid-fraction", common.FRACTION_RANGE, "1.5"),
    ("robojam", "--test-fraction", common.FRACTION_RANGE, "0.5"),
    ("impsy", "--dimension", impsy.DIMENSION_RANGE, "1"),
    ("impsy", "--dimension", impsy.DIMENSION_RANGE, "100000"),
]


@pytest.mark.parametrize("command, option, bounds, value", BOUNDED_OPTIONS)
def test_cli_options_out_of_bounds_are_usage_errors(tmp_path, capsys, command, option,
                                                    bounds, value):
    source = {"kanjivg": [], "robojam": [str(CORPUS)], "impsy": [str(tmp_path)]}[command]
    argv = [command, *source, "--out", str(tmp_path / "o.h5"), option, value]
    assert data_prep.main(argv, prog="mdnrnn prep") == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"usage: mdnrnn prep {command} ")
    low, high = bounds
    assert err[-1] == (f"mdnrnn prep {command}: error: argument {option}: "
                       f"must be between {low} and {high}, received {value}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["kanjivg", "robojam", "impsy"])
def test_cli_help_documents_the_bounds(capsys, command):
    assert data_prep.main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for kind, option, (low, high), _ in BOUNDED_OPTIONS:
        if kind == command:
            high = f"{high:,}" if option == "--limit" else high
            assert f"{option} " in text and f"{low} to {high}" in text


def test_convert_checks_the_same_bounds(tmp_path):
    with pytest.raises(PrepError, match=r"--sample-step must be between 0.01 and 10.0, "
                                        r"received 1e-07"):
        kanjivg.convert(tmp_path / "k.h5", sample_step=1e-7, progress=False)
    with pytest.raises(PrepError, match=r"--seed must be between 0 and 4294967295"):
        robojam.convert(CORPUS, tmp_path / "t.h5", seed=10**23, progress=False)
    with pytest.raises(PrepError, match=r"--dimension must be between 2 and 256, received 1"):
        impsy.convert(tmp_path, tmp_path / "i.h5", dimension=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_prog_names_the_command(capsys):
    assert data_prep.main(["--help"], prog="mdnrnn prep") == 0
    assert capsys.readouterr().out.startswith("usage: mdnrnn prep [-h] SOURCE ...")
    assert data_prep.main(["robojam", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: python -m data_prep robojam ")


def test_cli_user_mistakes_are_one_line(tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("# not a corpus\n")
    assert data_prep.main(["sketch-npz", str(tmp_path / "absent.npz"), "--out",
                           str(tmp_path / "o.h5")]) == 1
    assert data_prep.main(["robojam", str(notes), "--out", str(tmp_path / "o.h5")]) == 1
    assert data_prep.main(["robojam", str(CORPUS), "--out",
                           str(tmp_path / "no" / "o.h5")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"error: {tmp_path / 'absent.npz'}: no such .npz file",
        f"error: {notes}: expected a .h5 or .npz file",
        f"error: {tmp_path / 'no' / 'o.h5'}: the folder {tmp_path / 'no'} does not exist",
    ]


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "k.h5"
    args = ["sketch-npz", str(SHORT_KANJI), "--out", str(out), "--no-progress"]
    assert data_prep.main(args) == 0
    before = _digest(out)
    add = data.StoreWriter.add

    def interrupted(self, *a, **k):
        if len(self) == 5000:
            raise KeyboardInterrupt
        return add(self, *a, **k)

    monkeypatch.setattr(data.StoreWriter, "add", interrupted)
    assert data_prep.main(args + ["--force"]) == 1
    assert capsys.readouterr().err.endswith("error: interrupted; nothing written\n")
    assert _digest(out) == before
    new = tmp_path / "new.h5"
    assert data_prep.main(args[:-2] + [str(new), "--no-progress"]) == 1
    assert not new.exists() and _no_leftovers(tmp_path)


def test_python_dash_m_entry_point(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "data_prep", "kanjivg", "--limit", "3", "--out",
         str(tmp_path / "k.h5"), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "sequences: 3" in result.stdout
