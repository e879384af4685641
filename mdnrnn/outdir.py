"""Output directories that never cost the user their work.

Every directory mdnrnn writes (a training run, generated sequences, an export) holds a
marker file, `.mdnrnn`. `--force` replaces a directory only when it has that marker, so a
mistyped `--out` (`.`, a home folder, someone else's project) is refused, never deleted. A
replacement is built in a temporary sibling and swapped in only when it is complete, so a
command that fails leaves the old directory exactly as it was and nothing half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

MARKER = ".mdnrnn"


def mark(directory, what: str):
    """Writes the marker into `directory` (which mdnrnn has just created).

    Args:
        directory: the directory.
        what: what it holds, for people reading the marker (`"run"`, `"generate"`, ...).
    """
    (Path(directory) / MARKER).write_text(json.dumps({"made_by": "mdnrnn", "holds": what}) + "\n")


def is_marked(directory) -> bool:
    """Whether `directory` is a directory that mdnrnn made (it holds the marker)."""
    return (Path(directory) / MARKER).is_file()


def check_replaceable(path, force: bool):
    """Raises unless `path` is free, or `force` is set and `path` is a directory mdnrnn made.

    Raises:
        FileExistsError: if `path` exists and `force` is not set, or it is not a marked
            directory (a file, or a directory mdnrnn did not make), or it holds the current
            working directory.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not force:
        raise FileExistsError(f"{path} already exists; choose another --out or pass --force.")
    if path.is_symlink() or not path.is_dir():
        raise FileExistsError(f"refusing to replace {path}: it is not a directory made by mdnrnn.")
    if Path.cwd().resolve().is_relative_to(path.resolve()):
        raise FileExistsError(f"refusing to replace {path}: it holds the current directory.")
    if not is_marked(path):
        raise FileExistsError(
            f"refusing to replace {path}: it was not made by mdnrnn (no {MARKER} marker file "
            "in it); remove it yourself or choose another --out."
        )


@contextlib.contextmanager
def building(path, what: str | None, *, force: bool = False):
    """Builds a new output directory for `path`, atomically.

    Yields the path of a fresh directory in a hidden folder beside `path`; when the block
    ends without an exception, that directory takes `path`'s place (an old marked
    directory there is removed only then). When the block raises, the hidden folder is
    removed and `path` is left as it was.

    Args:
        path: the directory to create or replace.
        what: what it holds (see `mark`): the yielded directory is created and marked. With
            `None` it is not created, for code that creates and marks it itself.
        force: allow replacing an existing directory made by mdnrnn.

    Raises:
        FileExistsError: see `check_replaceable` (checked before anything is written).
        FileNotFoundError: if the parent folder of `path` does not exist.
    """
    path = Path(path)
    check_replaceable(path, force)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent} does not exist (the folder for {path}).")
    holder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    work = holder / path.name
    try:
        if what is not None:
            work.mkdir()
            mark(work, what)
        yield work
        check_replaceable(path, force)  # still true now that the work is done
        if path.exists():
            os.replace(path, holder / (path.name + ".old"))
        os.replace(work, path)
    finally:
        shutil.rmtree(holder, ignore_errors=True)
