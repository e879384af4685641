"""mdnrnn.atomic: the one atomic-write helper (permissions, failure, leftovers)."""

import os
import stat

import pytest

from mdnrnn import atomic


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def test_write_atomically_creates_and_replaces(tmp_path, umask_027):
    target = tmp_path / "a.bin"
    atomic.write_atomically(target, b"one")
    assert target.read_bytes() == b"one"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask_027  # 0640, as open() gives
    atomic.write_atomically(str(target), b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_replacing_keeps_the_target_when_the_block_fails(tmp_path):
    target = tmp_path / "store.h5"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic.replacing(target) as temp:
            assert temp.parent == tmp_path and temp.name.startswith(".store.h5.")
            temp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["store.h5"]


def test_replacing_moves_the_temporary_file_with_its_suffix(tmp_path, umask_027):
    target = tmp_path / "model.keras"
    with atomic.replacing(target, suffix=".tmp.keras") as temp:
        assert temp.name.endswith(".tmp.keras") and temp.exists()
        assert stat.S_IMODE(temp.stat().st_mode) == 0o640
        temp.write_bytes(b"model")
    assert target.read_bytes() == b"model"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_missing_folder_is_an_error_and_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic.write_atomically(tmp_path / "no" / "a.bin", b"x")
    assert os.listdir(tmp_path) == []
