"""IMPSY interaction logs or IMPSY datasets to an impsy store (dt, x_1..x_n).

IMPSY (the Interactive Musical Predictive System) logs every event as a CSV
line `timestamp,source,x_1,...,x_n`, with an ISO 8601 timestamp, `source`
`interface` (the performer) or `rnn` (the model), and `n` values in [0, 1].
Its log files are named `<date>-<D>d-mdrnn.log`, `D = n + 1` its "dimension"
(dt plus the values).

- **Log folder**: every `*.log` file (or, with `dimension=D`, every
  `*-Dd-mdrnn.log`) becomes one sequence, labelled with the file's name.
  Entries that are not regular files (folders, broken links), unreadable
  files and files over `MAX_LOG_BYTES` are skipped and named. Only
  `interface` rows are kept. As in IMPSY's own `dataset` command, `dt` is the
  difference of consecutive kept timestamps, so each log's first row (which
  has no previous timestamp) is dropped. Lines that cannot be parsed (too few
  fields, bad timestamp, non-numeric or non-finite values, the wrong number of
  values) and rows whose timestamp goes backwards are dropped and counted by
  reason. A log left with no rows is skipped and named.
- **IMPSY dataset** `.npz` (written by `impsy dataset`): key `perfs`, an
  object array of `(n_i, D)` float arrays with `dt` first, read by
  `data_prep.common.load_npz` (NumPy arrays of numbers only). Rows with NaN or
  inf are dropped; empty arrays and arrays of another width than the first
  are skipped.

The dimension `D` lies in `DIMENSION_RANGE`.

Values are kept as they are (IMPSY keeps them in [0, 1]). Sequences are split
into train / valid / test at random with a seed.
"""

import datetime
import io
import math
import re
from pathlib import Path

import numpy as np

from data_prep.common import (
    PrepError,
    Summary,
    as_float32,
    check_range,
    check_split,
    finish,
    load_npz,
    open_writer,
    progress_bar,
    sequence_list,
)

NPZ_KEY = "perfs"
LICENCE = "see the logs' owner"
_DIMENSION_IN_NAME = re.compile(r"-(\d+)d-mdrnn\.log$")
_EPOCH = datetime.datetime(1970, 1, 1)
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # larger values would be inf in the store

# IMPSY dimensions read (dt plus D - 1 values; IMPSY's own go up to about 17).
DIMENSION_RANGE = (2, 256)
# The largest log file read: 64 MiB, hours of events at 100 per second.
MAX_LOG_BYTES = 2**26


def _seconds(stamp):
    """An ISO 8601 timestamp as seconds since 1970 (UTC if it has a zone)."""
    moment = datetime.datetime.fromisoformat(stamp)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return (moment - _EPOCH).total_seconds()


def parse_log(path, n_values, summary):
    """Reads the `interface` rows of one IMPSY log as `(dt, x_1..x_n)` rows.

    Args:
        path: the log file.
        n_values: values expected per line (IMPSY dimension minus 1).
        summary: a `Summary`; adds the log's non-blank lines to
            `points_read` and counts dropped lines by reason.

    Returns:
        Float32 array `(m, n_values + 1)`; `m` may be 0.

    Raises:
        OSError: if the file cannot be read (nothing is counted then).
    """
    times, values = [], []
    # Read whole first, so that an OSError comes before any line is counted.
    text = path.read_text(encoding="utf-8", errors="replace")
    for line in io.StringIO(text):
        fields = line.strip().split(",")
        if fields == [""]:
            continue  # blank line
        summary.points_read += 1
        if len(fields) < 3:
            summary.drop_points("log lines with too few fields", 1)
            continue
        try:
            seconds = _seconds(fields[0].strip())
        except (ValueError, OverflowError):  # OverflowError: a zone moves it past year 1
            summary.drop_points("log lines with a bad timestamp", 1)
            continue
        source = fields[1].strip()
        if source != "interface":
            summary.drop_points(f"log rows from source {source!r} (not 'interface')", 1)
            continue
        try:
            row = [float(v) for v in fields[2:]]
        except ValueError:
            summary.drop_points("log lines with a non-numeric value", 1)
            continue
        if len(row) != n_values:
            summary.drop_points(f"log lines without exactly {n_values} values", 1)
            continue
        if not all(math.isfinite(v) and abs(v) <= _FLOAT32_MAX for v in row):  # else inf
            summary.drop_points("log lines with NaN or inf values", 1)
            continue
        if times and seconds < times[-1]:
            summary.drop_points("log rows whose timestamp goes backwards", 1)
            continue
        times.append(seconds)
        values.append(row)
    if not times:
        return np.zeros((0, n_values + 1), dtype=np.float32)
    summary.drop_points("first row of each log (no previous timestamp for dt)", 1)
    dt = np.diff(np.asarray(times))
    return np.column_stack([dt, np.asarray(values[1:])]).astype(np.float32)


def _log_files(directory, dimension, summary):
    """The log files to read and their dimension; skips what cannot be read."""
    files = sorted(directory.glob("*.log"))
    if dimension is not None:
        files = [f for f in files if f.name.endswith(f"-{dimension}d-mdrnn.log")]
    readable = []
    for path in files:
        if not path.is_file():  # a folder, a broken link, a link loop, a device
            summary.skip("not a regular file", path.name)
        elif path.stat().st_size > MAX_LOG_BYTES:
            summary.skip(f"log larger than {MAX_LOG_BYTES:,} bytes", path.name)
        else:
            readable.append(path)
    files = readable
    if not files:
        pattern = "*.log" if dimension is None else f"*-{dimension}d-mdrnn.log"
        raise PrepError(f"{directory}: no IMPSY log files ({pattern}) in this folder")
    named = {int(m.group(1)) for f in files if (m := _DIMENSION_IN_NAME.search(f.name))}
    if dimension is None and len(named) > 1:
        dims = ", ".join(f"{d}d" for d in sorted(named))
        raise PrepError(
            f"{directory}: logs of several dimensions ({dims}); choose one with --dimension"
        )
    if dimension is None and named:
        dimension = named.pop()
    if dimension is None:
        dimension = _dimension_from_lines(files)
    low, high = DIMENSION_RANGE
    if not low <= dimension <= high:
        raise PrepError(
            f"{directory}: the logs have IMPSY dimension {dimension}, "
            f"outside {low} to {high}"
        )
    return files, dimension


def _dimension_from_lines(files):
    """IMPSY dimension (values + 1) of the first parseable interface line."""
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    fields = line.strip().split(",")
                    if len(fields) >= 3 and fields[1].strip() == "interface":
                        return len(fields) - 1
        except OSError:
            continue  # skipped and named by _from_logs
    raise PrepError(f"{files[0].parent}: no 'interface' rows in any log")


def _from_logs(directory, dimension, writer, summary, progress):
    files, dimension = _log_files(directory, dimension, summary)
    summary.notes.append(
        f"{len(files)} log files of dimension {dimension} (dt + {dimension - 1} values)"
    )
    for path in progress_bar(files, shown=progress, desc="impsy", unit="log"):
        try:
            rows = parse_log(path, dimension - 1, summary)
        except OSError as exc:
            summary.skip("unreadable log", f"{path.name} ({exc.strerror or exc})")
            continue
        if len(rows) == 0:
            summary.skip("log with no usable interface rows", path.name)
            continue
        writer.add(rows, label=path.name)


def _from_npz(path, writer, summary, progress):
    arrays = load_npz(path)
    if NPZ_KEY not in arrays:
        raise PrepError(
            f"{path}: no {NPZ_KEY!r} array (found keys: {', '.join(arrays) or 'none'}); "
            "expected an IMPSY dataset"
        )
    perfs = sequence_list(path, NPZ_KEY, arrays[NPZ_KEY])
    low, high = DIMENSION_RANGE
    width = None
    for i, perf in enumerate(progress_bar(perfs, shown=progress, desc="impsy", unit="perf")):
        shape = np.shape(perf)
        size = shape[0] if len(shape) else 0
        summary.points_read += size
        if len(shape) != 2 or not low <= shape[1] <= high or shape[1] != (width or shape[1]):
            expected = f"(n, {width})" if width else f"(n, D), {low} <= D <= {high}"
            summary.skip(f"array not of shape {expected}", f"perfs[{i}]", points=size)
            continue
        if size == 0:
            summary.skip("empty array", f"perfs[{i}]")
            continue
        width = shape[1]
        rows = as_float32(perf)
        finite = np.all(np.isfinite(rows), axis=1)
        summary.drop_points("rows with NaN or inf values", int((~finite).sum()))
        if not finite.any():
            summary.skip("no finite rows", f"perfs[{i}]")
            continue
        writer.add(rows[finite])


def convert(
    source,
    out,
    *,
    dimension=None,
    seed=0,
    valid_fraction=0.05,
    test_fraction=0.05,
    force=False,
    shard_size=None,
    progress=True,
):
    """Converts an IMPSY log folder or IMPSY dataset `.npz` into an impsy store.

    Args:
        source: a folder of IMPSY `.log` files, or an IMPSY dataset `.npz`.
        out: the store to write.
        dimension: for a log folder, IMPSY's dimension `D` (dt plus `D - 1`
            values): only `*-Dd-mdrnn.log` files are read. Defaults to the
            dimension in the log names, else to the width of the first
            interface line.
        seed: seed of the random split. Defaults to 0.
        valid_fraction: share of sequences in `valid`. Defaults to 0.05.
        test_fraction: share in `test`. Defaults to 0.05.
        force: overwrite an existing `out`. Defaults to `False`.
        shard_size: write `out` as a shard directory of stores of this many
            sequences (`mdnrnn.data.shards`), within `common.SHARD_SIZE_RANGE`;
            `None` (the default) writes one store file.
        progress: show a progress bar. Defaults to `True`.

    Returns:
        A `data_prep.common.Summary`.

    Raises:
        PrepError: for a missing source, an empty folder, logs of mixed
            dimensions, an `.npz` without `perfs` or with anything but
            numbers, an option outside its bounds (`DIMENSION_RANGE`,
            `common.SEED_RANGE`, `common.FRACTION_RANGE`), an existing `out`
            without `force`, or nothing usable.
    """
    if dimension is not None:
        check_range("--dimension", dimension, DIMENSION_RANGE)
    check_split(seed, valid_fraction, test_fraction)
    source = Path(source)
    if not source.exists():
        raise PrepError(f"{source}: no such folder or file")
    summary = Summary(source=f"IMPSY {'logs in' if source.is_dir() else 'dataset'} {source}")
    summary.points_read = 0
    with open_writer(
        out, shard_size=shard_size, kind="impsy", force=force, source=summary.source,
        licence=LICENCE, seed=seed, valid_fraction=valid_fraction, test_fraction=test_fraction,
    ) as writer:
        if source.is_dir():
            _from_logs(source, dimension, writer, summary, progress)
        else:
            _from_npz(source, writer, summary, progress)
        return finish(writer, summary)
