"""The studio's WebSocket protocol: limits, and the checks every client message goes through.

Messages are JSON objects in text frames, each with a `"type"`; docs/serve.md is the full
description, with examples. This module turns a frame's text into a checked request (plain
dicts and NumPy arrays) or raises `ProtocolError` with a code and a message; it imports no
TensorFlow, so the checks are cheap and testable on their own.

Client -> server:

- `generate`: prime with a prefix (or none: from scratch) and stream a continuation.
- `set`: change the temperatures; they apply from the next point of a running stream.
- `stop`: stop the running stream.
- `export`: the last exchange as SVG (drawings) or MIDI (performances).
- `ping`.

Server -> client: `ready`, `started`, `points`, `done`, `settings`, `export`, `pong`, `error`.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

CLIENT_TYPES = ("generate", "set", "stop", "export", "ping")
UNTIL = ("stroke", "end", "seconds", "points")


@dataclasses.dataclass(frozen=True)
class Limits:
    """Server-side bounds on what one client can ask for.

    Args:
        max_message_bytes: Longest text frame the server reads; a longer one gets an error
            frame (`too_large`). Defaults to 256 KiB.
        max_prime_points: Most points in one prefix (all alternatives' copies count once).
            Defaults to 5,000.
        max_points: Most points one `generate` streams per alternative. Defaults to 2,000.
        max_alternatives: Most sequences one `generate` samples side by side. Defaults to 8.
        max_seconds: Longest performance answer, in seconds. Defaults to 60.
        max_sessions: Most WebSocket sessions at once; one more is told `too_many_sessions`
            and closed. Defaults to 32.
        max_temperature: Highest temperature or sigma temperature accepted (both must be
            above 0). Defaults to 10.
        max_rate: Highest pacing a client can ask for, in points per second (0 asks for no
            pacing: as fast as the model runs). Defaults to 10,000.
    """

    max_message_bytes: int = 256 * 1024
    max_prime_points: int = 5_000
    max_points: int = 2_000
    max_alternatives: int = 8
    max_seconds: float = 60.0
    max_sessions: int = 32
    max_temperature: float = 10.0
    max_rate: float = 10_000.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ProtocolError(ValueError):
    """A client message the server cannot act on; answered with an `error` frame.

    Args:
        code: Short machine-readable reason (`bad_json`, `too_large`, `bad_message`,
            `unknown_type`, `unknown_model`, `bad_value`, `nothing_to_export`).
        message: What was wrong, for people.
        id: The request's `id`, when it had a readable one.
    """

    def __init__(self, code: str, message: str, id=None):
        super().__init__(message)
        self.code = code
        self.id = id

    def frame(self) -> dict:
        frame = {"type": "error", "code": self.code, "message": str(self)}
        if self.id is not None:
            frame["id"] = self.id
        return frame


def parse(text, limits: Limits, models: dict) -> dict:
    """Checks one client frame and returns the request.

    Args:
        text: The frame's text (`str`); binary frames are refused before this.
        limits: The server's `Limits`.
        models: Model name -> an object with `kind` (`"drawing"` or `"performance"`) and
            `columns` (the data columns of the model's rows).

    Returns:
        A dict with `"type"` and the checked fields (see the module docstring); a
        `generate` request holds `prime` as a float32 array `(points, columns)` of data rows
        or, for `strokes`, a list of float64 arrays `(points, 2)`.

    Raises:
        ProtocolError: For anything malformed, too large, unknown or out of range.
    """
    if len(text) > limits.max_message_bytes or len(text.encode("utf-8")) > limits.max_message_bytes:
        raise ProtocolError("too_large", f"Message of {len(text.encode('utf-8')):,} bytes; the limit is "
                                         f"{limits.max_message_bytes:,} bytes.")
    try:
        message = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ProtocolError("bad_json", f"Not valid JSON: {error}") from None
    if not isinstance(message, dict):
        raise ProtocolError("bad_message", "A message must be a JSON object with a \"type\".")
    request_id = message.get("id")
    if request_id is not None and not (isinstance(request_id, (int, str)) and not isinstance(request_id, bool)
                                       and len(str(request_id)) <= 64):
        raise ProtocolError("bad_value", "`id` must be an integer or a string of at most 64 characters.")
    kind = message.get("type")
    if kind not in CLIENT_TYPES:
        raise ProtocolError("unknown_type", f"Unknown message type {kind!r}; expected one of "
                                            f"{', '.join(CLIENT_TYPES)}.", request_id)
    request = {"type": kind, "id": request_id}
    if kind == "set":
        request.update(_temperatures(message, limits, request_id, required=True))
    elif kind == "generate":
        request.update(_generate(message, limits, models, request_id))
    elif kind == "export":
        fmt = message.get("format")
        if fmt not in ("svg", "midi"):
            raise ProtocolError("bad_value", f"`format` must be \"svg\" or \"midi\". Received: {fmt!r}",
                                request_id)
        request["format"] = fmt
    return request


def _temperatures(message, limits, request_id, required=False):
    values = {}
    for name in ("temperature", "sigma_temperature"):
        if name not in message:
            continue
        value = message[name]
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or not 0 < value <= limits.max_temperature):
            raise ProtocolError("bad_value", f"`{name}` must be a number in (0, {limits.max_temperature:g}]. "
                                             f"Received: {value!r}", request_id)
        values[name] = float(value)
    if required and not values:
        raise ProtocolError("bad_message", "`set` needs `temperature` and/or `sigma_temperature`.", request_id)
    return values


def _number(message, name, low, high, default, request_id, integer=False):
    value = message.get(name, default)
    if integer:
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        expected = f"an integer from {low:,} to {high:,}"
    else:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and low <= value <= high)
        expected = f"a number from {low:g} to {high:g}"
    if not ok:
        raise ProtocolError("bad_value", f"`{name}` must be {expected}. Received: {value!r}", request_id)
    return value


def _generate(message, limits, models, request_id):
    name = message.get("model")
    if name not in models:
        raise ProtocolError("unknown_model", f"Unknown model {name!r}; this server has "
                                             f"{', '.join(sorted(models))}.", request_id)
    entry = models[name]
    drawing = entry.kind == "drawing"
    request = {"model": name, **_temperatures(message, limits, request_id)}
    request["n"] = _number(message, "n", 1, limits.max_alternatives, 1, request_id, integer=True)
    until = message.get("until", "stroke" if drawing else "seconds")
    allowed = ("stroke", "end", "points") if drawing else ("seconds", "points")
    if until not in allowed:
        raise ProtocolError("bad_value", f"`until` must be one of {', '.join(allowed)} for a {entry.kind} "
                                         f"model. Received: {until!r}", request_id)
    request["until"] = until
    request["max_points"] = _number(message, "max_points", 1, limits.max_points, limits.max_points,
                                    request_id, integer=True)
    request["rate"] = float(_number(message, "rate", 0, limits.max_rate, 0, request_id))
    seconds = message.get("seconds")
    if until == "seconds" or seconds is not None:
        request["seconds"] = float(_number(message, "seconds", 0.01, limits.max_seconds, seconds,
                                           request_id))
    if "after" in message:  # performance models: the pause before the answer, for the MIDI record
        request["after"] = float(_number(message, "after", 0, limits.max_seconds, None, request_id))
    seed = message.get("seed")
    if seed is not None:
        seed = _number(message, "seed", 0, 2**32 - 1, None, request_id, integer=True)
    request["seed"] = seed
    prime = message.get("prime", {})
    if prime is None:
        prime = {}
    if not isinstance(prime, dict) or (set(prime) - {"rows", "strokes"}) or len(prime) > 1:
        raise ProtocolError("bad_message", "`prime` must be {\"rows\": [...]} or (drawing models) "
                                           "{\"strokes\": [[[x, y], ...], ...]}, or left out.", request_id)
    if "strokes" in prime:
        if not drawing:
            raise ProtocolError("bad_message", "`prime.strokes` is for drawing models; send `rows`.", request_id)
        request["strokes"] = _strokes(prime["strokes"], limits, request_id)
    elif "rows" in prime:
        request["rows"] = _rows(prime["rows"], len(entry.columns), entry.columns, limits, request_id)
    return request


def _array(value, what, request_id):
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ProtocolError("bad_value", f"{what} must hold numbers only.", request_id) from None
    if array.dtype == object or not np.isfinite(array).all():
        raise ProtocolError("bad_value", f"{what} must hold finite numbers only.", request_id)
    return array


def _rows(value, width, columns, limits, request_id):
    if not isinstance(value, list):
        raise ProtocolError("bad_value", "`prime.rows` must be a list of rows.", request_id)
    if len(value) > limits.max_prime_points:
        raise ProtocolError("too_large", f"`prime.rows` has {len(value):,} rows; the limit is "
                                         f"{limits.max_prime_points:,}.", request_id)
    if not value:
        return None
    rows = _array(value, "`prime.rows`", request_id)
    if rows.ndim != 2 or rows.shape[1] != width:
        raise ProtocolError("bad_value", f"`prime.rows` must be rows of {width} numbers "
                                         f"({', '.join(columns)}).", request_id)
    return rows.astype(np.float32)


def _strokes(value, limits, request_id):
    if not isinstance(value, list) or not all(isinstance(s, list) for s in value):
        raise ProtocolError("bad_value", "`prime.strokes` must be a list of strokes, each a list of "
                                         "[x, y] points.", request_id)
    total = sum(len(s) for s in value)
    if total > limits.max_prime_points:
        raise ProtocolError("too_large", f"`prime.strokes` has {total:,} points; the limit is "
                                         f"{limits.max_prime_points:,}.", request_id)
    strokes = []
    for stroke in value:
        if not stroke:
            continue
        points = _array(stroke, "`prime.strokes`", request_id)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ProtocolError("bad_value", "Each stroke in `prime.strokes` must be a list of [x, y] "
                                             "points.", request_id)
        strokes.append(points)
    return strokes
