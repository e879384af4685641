"""Crafted bad inputs for the `mdnrnn` command, and the commands that must refuse them.

`make(directory)` writes the files (truncated and byte-flipped stores, pickled payloads,
malformed SVG / npz / HDF5 / log files, symlink loops) and returns the cases: the command
line of each (with `{out}` standing for an output path that must not appear) and the exit
codes it may end with (1: a failure named in one `error:` line, 2: bad usage). The stores
and the model it needs are made from the shipped RoboJam corpus and a random-weight model
that the caller passes in, so nothing here needs TensorFlow.

Run it as a script to look at the files: `python tests/make_bad_inputs.py DIR`.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import shutil
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np

FAIL, USAGE = (1,), (2,)
# The command line of every case runs in a subprocess; `{marker}` must never appear (code ran).
MARKER = "PWNED"


@dataclasses.dataclass
class Case:
    name: str
    argv: list[str]
    codes: tuple[int, ...]


class _Payload:
    """Unpickling this runs a shell command that creates the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _ragged(*arrays):
    out = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


def _pickled_npz(path, key, payload):
    """An .npz whose member `key.npy` is an object array header followed by `payload`."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    buffer.write(pickle.dumps(payload, protocol=2))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{key}.npy", buffer.getvalue())
    return path


def _flip(source, target, offset):
    raw = bytearray(Path(source).read_bytes())
    raw[offset] ^= 0xFF
    Path(target).write_bytes(bytes(raw))
    return target


def _svg(path, d):
    path.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="109" height="109" viewBox="0 0 109 109">'
        f'<g><path id="kvg:0{path.stem}-s1" d="{d}"/></g></svg>'
    )
    return path


def make(directory, *, corpus, touch_store, kanji_model) -> list[Case]:
    """Writes the crafted inputs into `directory` and returns the cases.

    Args:
        directory: an empty folder for the inputs.
        corpus: the RoboJam corpus (`mdnrnn.datasets.path("robojam")`).
        touch_store: a good touch store made from it (read only).
        kanji_model: a good `.keras` stroke-5 model (read only).
    """
    d = Path(directory)
    marker = d / MARKER
    ragged = _ragged(np.zeros((3, 3), np.int16), np.ones((4, 3), np.int16))
    cases = []

    def case(name, argv, codes=FAIL):
        cases.append(Case(name, [str(a) for a in argv], codes))

    # -- sketch-npz
    payload = _pickled_npz(d / "payload.npz", "train", [_Payload(marker)])
    case("sketch-npz: pickled os.system payload", ["prep", "sketch-npz", payload, "--out", "{out}"])
    payload_obj = _pickled_npz(d / "payload_in_array.npz", "train", _ragged(_Payload(marker)))
    case("sketch-npz: payload inside an object array", ["prep", "sketch-npz", payload_obj, "--out", "{out}"])
    zero_d = _npz(d / "zero_d.npz", train=_ragged(np.array(5, np.int16), np.ones((4, 3), np.int16)))
    case("sketch-npz: object array holding a 0-d array", ["prep", "sketch-npz", zero_d, "--out", "{out}"])
    np.save(d / "plain.npy", np.ones((4, 3), np.int16))
    shutil.copy(d / "plain.npy", d / "plain_renamed.npz")
    case("sketch-npz: a .npy renamed .npz", ["prep", "sketch-npz", d / "plain_renamed.npz", "--out", "{out}"])
    complex_npz = _npz(d / "complex.npz", train=_ragged(np.ones((4, 3), np.complex64)))
    case("sketch-npz: complex drawings", ["prep", "sketch-npz", complex_npz, "--out", "{out}"])
    strings = _npz(d / "strings.npz", train=np.array(["a", "b"]))
    case("sketch-npz: strings", ["prep", "sketch-npz", strings, "--out", "{out}"])
    good = _npz(d / "good_sketch.npz", train=ragged, valid=ragged, test=ragged)
    raw = Path(good).read_bytes()
    (d / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    case("sketch-npz: truncated archive", ["prep", "sketch-npz", d / "truncated.npz", "--out", "{out}"])
    (d / "random.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    case("sketch-npz: random bytes", ["prep", "sketch-npz", d / "random.npz", "--out", "{out}"])

    # -- robojam
    with h5py.File(d / "group.h5", "w") as f:
        f.create_group("total_performances")
    case("robojam: dataset is a group", ["prep", "robojam", d / "group.h5", "--out", "{out}"])
    with h5py.File(d / "scalar.h5", "w") as f:
        f["total_performances"] = 3.0
    case("robojam: scalar dataset", ["prep", "robojam", d / "scalar.h5", "--out", "{out}"])
    with h5py.File(d / "string.h5", "w") as f:
        f["total_performances"] = np.array([b"x", b"y", b"z"])
    case("robojam: string data", ["prep", "robojam", d / "string.h5", "--out", "{out}"])
    _npz(d / "robojam_strings.npz", arr_0=np.array(["0.1,0.2,0.3"]))
    case("robojam: .npz of strings", ["prep", "robojam", d / "robojam_strings.npz", "--out", "{out}"])
    _npz(d / "robojam_0d.npz", arr_0=np.array(1.0))
    case("robojam: .npz with a 0-d array", ["prep", "robojam", d / "robojam_0d.npz", "--out", "{out}"])
    _npz(d / "robojam_complex.npz", arr_0=_ragged(np.ones((5, 3), np.complex128)))
    case("robojam: complex performances", ["prep", "robojam", d / "robojam_complex.npz", "--out", "{out}"])
    _pickled_npz(d / "robojam_payload.npz", "arr_0", _ragged(_Payload(marker)))
    case("robojam: pickled payload", ["prep", "robojam", d / "robojam_payload.npz", "--out", "{out}"])
    case("robojam: both a file and --sample", ["prep", "robojam", corpus, "--sample", "--out", "{out}"], USAGE)

    # -- impsy
    logs = d / "logs_dir"
    (logs / "x.log").mkdir(parents=True)
    case("impsy: a folder named x.log", ["prep", "impsy", logs, "--out", "{out}"])
    loops = d / "logs_loop"
    loops.mkdir()
    os.symlink(loops / "b.log", loops / "a.log")
    os.symlink(loops / "a.log", loops / "b.log")
    case("impsy: a *.log symlink loop", ["prep", "impsy", loops, "--out", "{out}"])
    old = d / "logs_old"
    old.mkdir()
    (old / "2024-01-01-3d-mdrnn.log").write_text(
        "0001-01-01T00:00:00+05:00,interface,0.1,0.2\n0001-01-01T00:00:01+05:00,interface,0.2,0.3\n"
        "0001-01-01T00:00:02+05:00,interface,0.3,0.4\n"
    )
    case("impsy: a timestamp before year 1 in UTC", ["prep", "impsy", old, "--out", "{out}"])
    _npz(d / "impsy_0d.npz", perfs=np.array(2.0))
    case("impsy: 0-d perfs", ["prep", "impsy", d / "impsy_0d.npz", "--out", "{out}"])
    _npz(d / "impsy_strings.npz", perfs=np.array(["a"]))
    case("impsy: string perfs", ["prep", "impsy", d / "impsy_strings.npz", "--out", "{out}"])
    _npz(d / "impsy_empty.npz", perfs=_ragged(np.zeros((0, 9)), np.zeros((0, 9))))
    case("impsy: empty performances", ["prep", "impsy", d / "impsy_empty.npz", "--out", "{out}"])
    case("impsy: absurd dimension", ["prep", "impsy", logs, "--dimension", "100000", "--out", "{out}"], USAGE)

    # -- kanjivg
    for name, coordinate in (("1e12", "1e12"), ("1e20", "1e20"), ("1e300", "1e300")):
        folder = d / f"kanji_{name}"
        folder.mkdir()
        _svg(folder / "04e00.svg", f"M11,54c3,0,6,1,{coordinate},0")
        case(f"kanjivg: a coordinate of {name}", ["prep", "kanjivg", "--dir", folder, "--out", "{out}"])
    folder = d / "kanji_broken"
    folder.mkdir()
    (folder / "04e00.svg").write_text("<svg><g><path d='M1,1")
    case("kanjivg: malformed XML", ["prep", "kanjivg", "--dir", folder, "--out", "{out}"])
    folder = d / "kanji_laughs"
    folder.mkdir()
    entities = "".join(f'<!ENTITY l{i} "{"&l%d;" % (i - 1) * 10 if i else "lol"}">' for i in range(10))
    (folder / "04e00.svg").write_text(
        f'<?xml version="1.0"?><!DOCTYPE svg [{entities}]>'
        '<svg xmlns="http://www.w3.org/2000/svg"><g><path d="M1,1L2,2"/><text>&l9;</text></g></svg>'
    )
    case("kanjivg: billion laughs", ["prep", "kanjivg", "--dir", folder, "--out", "{out}"])
    case("kanjivg: huge seed", ["prep", "kanjivg", "--seed", "99999999999999999999999", "--out", "{out}"], USAGE)
    case("kanjivg: tiny sample step", ["prep", "kanjivg", "--sample-step", "1e-7", "--out", "{out}"], USAGE)
    case("kanjivg: missing folder", ["prep", "kanjivg", "--dir", d / "nowhere", "--out", "{out}"])

    # -- stores
    raw = Path(touch_store).read_bytes()
    (d / "truncated.h5").write_bytes(raw[: len(raw) // 3])
    case("info: truncated store", ["info", d / "truncated.h5"])
    case("export: truncated store", ["export", d / "truncated.h5", "--to", "midi", "--out", "{out}"])
    with h5py.File(touch_store, "r") as f:
        values_at = f["sequences/values"].id.get_chunk_info(0).byte_offset
        offsets_at = f["sequences/offsets"].id.get_chunk_info(0).byte_offset
    _flip(touch_store, d / "flipped_values.h5", values_at + 100)
    case("export: a flipped byte in the values", ["export", d / "flipped_values.h5", "--to", "midi", "--out", "{out}"])
    _flip(touch_store, d / "flipped_offsets.h5", offsets_at + 3)
    case("info: a flipped byte in the offsets", ["info", d / "flipped_offsets.h5"])
    shutil.copy(touch_store, d / "zero_std.h5")
    os.chmod(d / "zero_std.h5", 0o644)
    with h5py.File(d / "zero_std.h5", "r+") as f:
        f["stats/std"][...] = 0.0
    case("info: a store whose std is 0", ["info", d / "zero_std.h5"])
    shutil.copy(touch_store, d / "no_train.h5")
    os.chmod(d / "no_train.h5", 0o644)
    with h5py.File(d / "no_train.h5", "r+") as f:
        del f["splits/train"]
    case("train: a store with no train split",
         ["train", "--data", d / "no_train.h5", "--preset", "touch", "--units", "8", "--layers", "1", "--out", "{out}"])
    (d / "random.h5").write_bytes(np.random.default_rng(1).bytes(8192))
    case("info: random bytes named .h5", ["info", d / "random.h5"])
    with h5py.File(d / "not_a_store.h5", "w") as f:
        f["x"] = np.arange(3)
    case("export: an HDF5 file that is not a store", ["export", d / "not_a_store.h5", "--to", "svg", "--out", "{out}"])

    # -- train
    case("train: absurd --seq-len", ["train", "--data", touch_store, "--preset", "touch", "--seq-len", "100000",
                                     "--out", "{out}"], USAGE)
    case("train: NaN learning rate", ["train", "--data", touch_store, "--lr", "nan", "--out", "{out}"], USAGE)
    case("train: a touch store for a kanji model", ["train", "--data", touch_store, "--preset", "kanji", "--out", "{out}"])
    case("train: offset targets for a drawing model",
         ["train", "--data", touch_store, "--preset", "kanji", "--targets", "offsets", "--out", "{out}"])
    case("train: resume a folder that is no run", ["train", "--resume", d])

    # -- generate
    (d / "text.keras").write_text("not a model")
    case("generate: a text file named .keras", ["generate", "--model", d / "text.keras", "--out", "{out}"])
    with zipfile.ZipFile(d / "empty_zip.keras", "w") as archive:
        archive.writestr("readme.txt", "nothing")
    case("generate: a zip that is no model", ["generate", "--model", d / "empty_zip.keras", "--out", "{out}"])
    for value in ("inf", "-1", "nan", "0"):
        case(f"generate: temperature {value}",
             ["generate", "--model", kanji_model, "--temperature", value, "--out", "{out}"], USAGE)
    case("generate: --n 1000000000", ["generate", "--model", kanji_model, "--n", "1000000000", "--out", "{out}"], USAGE)
    np.save(d / "prime_shape.npy", np.ones((4, 7), np.float32))
    case("generate: a prime of the wrong width",
         ["generate", "--model", kanji_model, "--prime", d / "prime_shape.npy", "--out", "{out}"])
    np.save(d / "prime_nan.npy", np.full((4, 3), np.nan, np.float32))
    case("generate: a prime with NaN", ["generate", "--model", kanji_model, "--prime", d / "prime_nan.npy", "--out", "{out}"])
    np.save(d / "prime_object.npy", _ragged(_Payload(marker)), allow_pickle=True)
    case("generate: a pickled prime", ["generate", "--model", kanji_model, "--prime", d / "prime_object.npy", "--out", "{out}"])
    case("generate: --out in a missing folder",
         ["generate", "--model", kanji_model, "--n", "1", "--max-steps", "2", "--out", d / "missing" / "out"])

    # -- export and info
    case("export: a model instead of a store", ["export", kanji_model, "--to", "svg", "--out", "{out}"])
    case("info: no such file", ["info", d / "nothing.h5"])
    return cases


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python tests/make_bad_inputs.py DIR TOUCH_STORE KANJI_MODEL")
    from mdnrnn import datasets

    for c in make(sys.argv[1], corpus=datasets.path("robojam"), touch_store=sys.argv[2], kanji_model=sys.argv[3]):
        print(f"{c.name}: mdnrnn {' '.join(c.argv)} -> exit {'/'.join(map(str, c.codes))}")
