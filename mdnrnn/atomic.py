"""Atomic file writes: readers see the old file or the new one, never half of one.

Every file mdnrnn writes in place of another (stores, models, checkpoints, SVG and MIDI
exports, LiteRT files, JSON state) goes through this module. The content is written to a
hidden temporary file in the destination's folder, which then replaces the destination
with `os.replace` (atomic on POSIX file systems); on any error, `KeyboardInterrupt`
included, the temporary file is removed and the destination is left as it was.

New files get the permissions a plain `open()` would give them (0666 less the umask), not
the private 0600 of `tempfile.mkstemp`. Only a process killed outright (SIGKILL, power
loss) can leave a temporary file `.NAME.RANDOM.tmp` behind.

Standard library only: `mdnrnn.lite` uses it where TensorFlow is not installed.

Example:

```python
from mdnrnn import atomic

atomic.write_atomically("notes.json", b"{}")
with atomic.replacing("model.keras", suffix=".tmp.keras") as temp:
    model.save(temp)  # writers that need a path: h5py, Keras
```
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


def temporary_sibling(path, suffix: str = ".tmp") -> Path:
    """Creates an empty, hidden temporary file beside `path` and returns its path.

    The name is `.NAME.RANDOM` + `suffix` in `path`'s folder, so the later `os.replace`
    stays on one file system. The file is created with mode 0666 less the umask (as a
    plain `open()` would). The caller replaces `path` with it or removes it; prefer
    `replacing`, which does both.

    Args:
        path: the destination file (`str` or `os.PathLike`).
        suffix: the end of the temporary name; Keras needs `".keras"` at the end.
            Defaults to `".tmp"`.

    Returns:
        The temporary file's `pathlib.Path`.

    Raises:
        FileNotFoundError: if `path`'s folder does not exist.
    """
    path = Path(os.path.abspath(path))
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}{suffix}")
    # os.open applies the user's umask, unlike tempfile's private 0o600 files.
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return temporary


@contextlib.contextmanager
def replacing(path, suffix: str = ".tmp"):
    """Yields a temporary path that replaces `path` when the block succeeds.

    For writers that need a file name (h5py, `keras.Model.save`): they write to the
    yielded path (an empty file made by `temporary_sibling`), and when the `with` block
    ends without an exception it is moved onto `path` with `os.replace`. When the block
    raises, the temporary file is removed and `path` is untouched.

    Args:
        path: the destination file.
        suffix: the end of the temporary name (see `temporary_sibling`).

    Yields:
        The temporary file's `pathlib.Path`.
    """
    temporary = temporary_sibling(path, suffix)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomically(path, data: bytes):
    """Writes `data` to `path` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same folder, flushed to disk (`fsync`), which
    then replaces `path`. On any error the temporary file is removed and `path` is left
    untouched.

    Args:
        path: destination file path (`str` or `os.PathLike`).
        data: the complete file contents, `bytes`.
    """
    with replacing(path) as temporary:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
