"""Models the studio serves, and one WebSocket session's generation state and streams.

A `Session` belongs to one WebSocket (one browser tab): it owns its generators (one per
model it has used), its temperatures and the last exchange (for the SVG and MIDI
downloads). All generation work (priming with the person's drawing or call, then the
steps) runs on the studio's one worker thread, in the order it was asked for, so the event
loop stays free for other clients and a stream that is replaced or stopped never races the
next one. One thread, not one per session: the NumPy steps hold the GIL for much of their
time, and threads taking turns at it made the time to a first point ten times longer with
eight clients (docs/benchmarks.md, "Studio"). An unpaced stream runs `STEPS_PER_JOB`
steps per job, as each hop between the event loop and the worker costs about as much as
a step.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import itertools
import queue
import threading
import dataclasses
import re
import time
import xml.etree.ElementTree as ElementTree

import numpy as np

from mdnrnn.studio.protocol import Limits

# KanjiVG's viewBox is 0 0 109 109: drawing models' canvas spans this many data units
# unless their entry says otherwise.
DEFAULT_CANVAS_UNITS = 109.0
# The continuation's colour on the page and in downloaded SVGs (the person's is black).
MODEL_COLOR = "#d9480f"
PERSON_COLOR = "#111111"
# The touch -> note mapping of `mdnrnn.export.midi.performance_to_midi`'s defaults.
LOW_NOTE, HIGH_NOTE, SCALE, TAP_THRESHOLD = 48, 84, "pentatonic", 0.1
# Steps an unpaced stream computes per job on the worker thread (see `Session._stream`).
STEPS_PER_JOB = 8


@dataclasses.dataclass
class ModelEntry:
    """A model the studio serves.

    Args:
        name: The name clients use (`"kanji"`, `"touch"`, a file's stem...).
        model: The loaded `MixtureRNN`.
        canvas_units: For drawing models, the data units the page's square canvas spans
            (KanjiVG: 109). Defaults to 109.
        epsilon: RDP tolerance (data units) applied to strokes sent as `prime.strokes`, as
            the data's converter did (KanjiVG: 1.0). Defaults to 1.0.
        description: One line for the model menu.
    """

    name: str
    model: object
    canvas_units: float = DEFAULT_CANVAS_UNITS
    epsilon: float = 1.0
    description: str = ""

    @property
    def kind(self) -> str:
        """`"drawing"` for stroke models, `"performance"` for touch and IMPSY models."""
        return "drawing" if self.model.config.data_kind == "stroke3" else "performance"

    @property
    def columns(self) -> list[str]:
        from mdnrnn import formats

        config = self.model.config
        return list(formats.RowCodec(config.data_kind, config.spec.dim, config.spec.pen).columns)

    def info(self) -> dict:
        config = self.model.config
        return {
            "name": self.name, "kind": self.kind, "columns": self.columns,
            "data_kind": config.data_kind, "preset": config.preset, "pen": config.spec.pen,
            "can_end": config.spec.pen == "categorical", "canvas_units": self.canvas_units,
            "parameters": int(self.model.count_params()), "description": self.description,
        }


def load_entries(specs) -> dict[str, ModelEntry]:
    """Loads the models named in `specs` (names of pretrained models, or `.keras` paths).

    A spec is `"kanji"` / `"touch"` (shipped pretrained models), `path/to/model.keras`
    (named by the file's stem) or `name=path/to/model.keras`.

    Raises:
        ValueError: For a repeated name, or a file that is not an mdnrnn model.
        FileNotFoundError: For a missing file.
    """
    from mdnrnn import datasets
    from mdnrnn.models import load_model

    entries = {}
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        model = load_model(path)
        if not name:
            name = path if datasets.is_model_name(path) else re.sub(r"\.keras$", "", path.replace("\\", "/").split("/")[-1])
        if name in entries:
            raise ValueError(f"Two models are named {name!r}; name one with NAME=PATH.")
        card = datasets.model_facts(name) if datasets.is_model_name(path) else {}
        entries[name] = ModelEntry(
            name, model, canvas_units=card.get("canvas_units", DEFAULT_CANVAS_UNITS),
            epsilon=card.get("epsilon", 1.0), description=card.get("summary", ""),
        )
    return entries


_GENERATOR_CLASS = None


def generator_class():
    """`Generator` for models whose weights stay fixed while the studio serves them.

    `Generator` re-reads and re-fuses its model's weights at every `reset` and `prime`, so
    that it follows a model still in training; that took 5 to 25 ms per prime on a busy
    machine, most of a first point's delay. The studio never trains, so this subclass reads
    them once; everything else is `Generator`'s (tests hold the two equal).
    """
    global _GENERATOR_CLASS
    if _GENERATOR_CLASS is None:
        from mdnrnn.generate import Generator

        class FixedWeightsGenerator(Generator):
            def _read_weights(self):
                if getattr(self, "_weights_read", False):
                    return
                super()._read_weights()
                self._weights_read = True

        _GENERATOR_CLASS = FixedWeightsGenerator
    return _GENERATOR_CLASS


def scale_notes() -> list[int]:
    """The MIDI notes that `performance_to_midi`'s default mapping lays out across x."""
    from mdnrnn.export.midi import _scale_notes

    return _scale_notes(SCALE, LOW_NOTE, HIGH_NOTE)


def strokes_to_rows(strokes, epsilon: float) -> np.ndarray | None:
    """Absolute polylines (data units) -> stroke-3 rows, each simplified with RDP first."""
    from simplification.cutil import simplify_coords

    from mdnrnn import formats

    lines = [np.asarray(simplify_coords(np.ascontiguousarray(s, np.float64), epsilon)) if epsilon > 0
             and len(s) > 2 else s for s in strokes]
    lines = [line for line in lines if len(line)]
    if not lines:
        return None
    return formats.strokes_to_stroke3(lines).astype(np.float32)


class Worker:
    """One thread that runs all generation work, urgent jobs first.

    Jobs run one at a time. Priority 0 (a prime and the first points after it: what the
    person waits for) goes before priority 1 (the rest of the streams); within a priority,
    first come, first served. A job whose `token` was cancelled before it started is
    skipped, so a replaced stream's queued steps never touch the generator again.
    """

    def __init__(self):
        self._queue = queue.PriorityQueue()
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._serve, name="studio-worker", daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            _, _, job = self._queue.get()
            if job is None:
                return
            function, args, token, future = job
            if not future.set_running_or_notify_cancel():  # its coroutine was cancelled
                continue
            if token is not None and token.cancelled:
                future.set_result(None)
                continue
            try:
                future.set_result(function(*args))
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
                future.set_exception(error)

    async def run(self, function, *args, priority: int = 1, token=None):
        """Runs `function(*args)` on the worker thread and returns its result."""
        future = concurrent.futures.Future()
        self._queue.put((priority, next(self._order), (function, args, token, future)))
        return await asyncio.wrap_future(future)

    def close(self, timeout: float = 10.0):
        """Stops the thread once the job it is running ends (queued jobs are dropped)."""
        self._queue.put((-1, -1, None))
        self._thread.join(timeout)


class _Token:
    """Marks a stream's queued jobs as void once the stream has ended."""

    cancelled = False


class Session:
    """The state of one WebSocket client: generators, temperatures, the running stream.

    Args:
        models: Name -> `ModelEntry`, shared by all sessions (read only).
        limits: The server's `Limits`.
        send: Coroutine function sending one JSON-able dict to this client.
        session_id: A number for logs and the `ready` frame.
        worker: The `Worker` that runs all generation work.
    """

    def __init__(self, models, limits: Limits, send, session_id: int, worker):
        self.models = models
        self.limits = limits
        self.send = send
        self.id = session_id
        self.temperature = 1.0
        self.sigma_temperature = 1.0
        self._generators = {}
        self._worker = worker
        self._task: asyncio.Task | None = None
        self.last = None  # the last exchange: {"model", "prefix", "rows": [...]} for exports
        self.performance = []  # a performance model's whole call-and-response, rows in order
        self.closed = False

    # ---------------------------------------------------------------- lifecycle
    def ready_frame(self) -> dict:
        return {
            "type": "ready", "session": self.id,
            "models": [entry.info() for entry in self.models.values()],
            "limits": self.limits.to_dict(), "temperature": self.temperature,
            "sigma_temperature": self.sigma_temperature,
            "colors": {"person": PERSON_COLOR, "model": MODEL_COLOR},
            "notes": scale_notes(), "tap_threshold": TAP_THRESHOLD,
        }

    async def close(self):
        """Stops the stream and frees the generators."""
        self.closed = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: BLE001 - the stream's own end is of no interest now
                pass
        self._generators.clear()

    @property
    def streaming(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self, function, *args, priority=1, token=None):
        """Runs `function(*args)` on the worker thread."""
        return await self._worker.run(function, *args, priority=priority, token=token)

    # ----------------------------------------------------------------- requests
    async def handle(self, request: dict):
        kind = request["type"]
        if kind == "ping":
            await self.send({"type": "pong", "id": request["id"], "time": time.time()})
        elif kind == "set":
            self.temperature = request.get("temperature", self.temperature)
            self.sigma_temperature = request.get("sigma_temperature", self.sigma_temperature)
            await self.send({"type": "settings", "id": request["id"], "temperature": self.temperature,
                             "sigma_temperature": self.sigma_temperature})
        elif kind == "stop":
            await self.stop("stopped")
        elif kind == "export":
            await self.send(await self._run(self.export, request, priority=0))
        elif kind == "generate":
            await self.stop("replaced")
            self.temperature = request.get("temperature", self.temperature)
            self.sigma_temperature = request.get("sigma_temperature", self.sigma_temperature)
            self._task = asyncio.create_task(self._stream(request))

    async def stop(self, reason: str):
        """Stops the running stream; its `done` frame gives `reason`."""
        task = self._task
        if task is not None and not task.done():
            task.cancel(reason)
            try:
                await task
            except asyncio.CancelledError:
                pass

    def _generator(self, name):
        if name not in self._generators:
            self._generators[name] = generator_class()(self.models[name].model)
        return self._generators[name]

    def _prime(self, request, count, temperature, sigma_temperature) -> dict:
        """On the worker: converts the prefix, primes (or resets) the model's generator and
        takes its first `count` steps."""
        entry = self.models[request["model"]]
        if request["seed"] is not None:  # a seeded request gets a fresh, seeded generator
            self._generators[request["model"]] = generator_class()(entry.model, seed=request["seed"])
        generator = self._generator(request["model"])
        prefix = request.get("rows")
        if "strokes" in request:
            prefix = strokes_to_rows(request["strokes"], entry.epsilon)
        n = request["n"]
        if prefix is None or not len(prefix):
            prefix = None
            generator.reset(n)
        else:
            generator.prime([prefix] * n)
        rows = self._steps(generator, temperature, sigma_temperature, count)
        return {"generator": generator, "prefix": prefix, "rows": rows}

    def _steps(self, generator, temperature, sigma_temperature, count):
        """On the worker: `count` steps of `generator` at these temperatures."""
        generator.temperature = temperature
        generator.sigma_temperature = sigma_temperature
        return [generator.step() for _ in range(count)]

    async def _stream(self, request):
        """Primes, then streams one `points` frame per step until the stop rule."""
        entry = self.models[request["model"]]
        drawing = entry.kind == "drawing"
        can_end = entry.model.config.spec.pen == "categorical"
        n, until = request["n"], request["until"]
        rows_out = [[] for _ in range(n)]
        active = np.ones(n, bool)  # alternatives still drawing or playing
        ended = np.zeros(n, bool)  # alternatives that drew "end of drawing"
        elapsed = np.zeros(n)
        dt_column = entry.columns.index("dt") if "dt" in entry.columns else None
        reason, step = "max_points", 0
        token = _Token()
        # A paced stream computes each point when it is due; an unpaced one computes up to
        # STEPS_PER_JOB at a time (fewer hops to the worker), so a temperature change
        # applies from the next job, at most that many points later.
        chunk = 1 if request["rate"] > 0 else STEPS_PER_JOB
        try:
            temperature, sigma = self.temperature, self.sigma_temperature
            primed = await self._run(self._prime, request, min(chunk, request["max_points"]), temperature,
                                     sigma, priority=0, token=token)
            generator, prefix, batch = primed["generator"], primed["prefix"], primed["rows"]
            self.last = {"model": entry.name, "prefix": prefix, "rows": rows_out}
            await self.send({"type": "started", "id": request["id"], "model": entry.name, "n": n,
                             "until": until, "prefix_points": 0 if prefix is None else len(prefix),
                             "temperature": temperature, "sigma_temperature": sigma})
            started = time.perf_counter()
            while True:
                for rows in batch:
                    out = []
                    for i, row in enumerate(rows):
                        if not active[i]:
                            out.append(None)
                            continue
                        if can_end and row[0] == 0 and row[1] == 0 and row[2] == 1:
                            # "End of drawing": Generator.step gives the row (0, 0, 1) for it.
                            active[i], ended[i] = False, True
                            out.append(None)
                            continue
                        values = [round(float(v), 5) for v in row]
                        rows_out[i].append(values)
                        out.append(values)
                        if drawing and until == "stroke" and row[2] >= 0.5:
                            active[i] = False
                        if dt_column is not None:
                            elapsed[i] += row[dt_column]
                            if until == "seconds" and elapsed[i] >= request["seconds"]:
                                active[i] = False
                    step += 1
                    await self.send({"type": "points", "id": request["id"], "step": step - 1, "rows": out,
                                     "temperature": temperature, "sigma_temperature": sigma})
                    if not active.any():
                        break
                if not active.any():
                    reason = "end" if ended.all() else until
                    break
                if step >= request["max_points"]:
                    break
                if request["rate"] > 0:  # pace the stream: point `step` is due at step / rate
                    delay = started + step / request["rate"] - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                temperature, sigma = self.temperature, self.sigma_temperature
                batch = await self._run(self._steps, generator, temperature, sigma,
                                        min(chunk, request["max_points"] - step), token=token)
        except asyncio.CancelledError as cancelled:
            reason = cancelled.args[0] if cancelled.args else "stopped"
            if self.closed:
                raise
        finally:
            token.cancelled = True
            if not drawing and self.last is not None and self.last["rows"] is rows_out:
                self._record_performance(request, rows_out)
        await self.send({"type": "done", "id": request["id"], "reason": reason, "steps": step,
                         "points": [len(r) for r in rows_out]})

    def _record_performance(self, request, rows_out):
        """Appends a call and its answer to the session's performance (for MIDI)."""
        call = request.get("rows")
        if call is not None:
            self.performance.extend(call.tolist())
        answer = [list(row) for row in rows_out[0]]
        if answer and "after" in request:  # the answer starts after the page's pause
            answer[0][2] = request["after"]
        self.performance.extend(answer)

    # ------------------------------------------------------------------ exports
    def export(self, request) -> dict:
        """The last drawing (SVG: person in black, model in colour) or the performance (MIDI)."""
        from mdnrnn.studio.protocol import ProtocolError

        fmt = request["format"]
        if fmt == "svg":
            if self.last is None or self.models[self.last["model"]].kind != "drawing":
                raise ProtocolError("nothing_to_export", "No drawing yet: draw, then ask for SVG.", request["id"])
            text = drawing_svg(self.last["prefix"], self.last["rows"])
            return {"type": "export", "id": request["id"], "format": "svg", "mime": "image/svg+xml",
                    "filename": "drawing.svg", "text": text}
        if not self.performance:
            raise ProtocolError("nothing_to_export", "No performance yet: play, then ask for MIDI.", request["id"])
        from mdnrnn.export.midi import performance_to_midi

        midi = performance_to_midi(np.asarray(self.performance, np.float64), low_note=LOW_NOTE,
                                   high_note=HIGH_NOTE, scale=SCALE, tap_threshold=TAP_THRESHOLD)
        import io

        buffer = io.BytesIO()
        midi.save(file=buffer)
        return {"type": "export", "id": request["id"], "format": "midi", "mime": "audio/midi",
                "filename": "performance.mid", "base64": base64.b64encode(buffer.getvalue()).decode()}


def drawing_svg(prefix, continuations) -> str:
    """SVG of a drawing and its continuations, with `mdnrnn.export.svg`'s own geometry.

    One alternative gives `drawing_to_svg(prefix + continuation)`; several give
    `grid_to_svg` with one cell each. The exporter draws each drawing as one `<path>`
    (one `M ... L ...` run per stroke); here the runs of the person's strokes keep
    `PERSON_COLOR` and the model's runs move to a second `<path>` in `MODEL_COLOR`.
    """
    from mdnrnn import formats
    from mdnrnn.export.svg import drawing_to_svg, grid_to_svg

    prefix = np.zeros((0, 3), np.float32) if prefix is None else np.asarray(prefix, np.float32)
    person_strokes = len(formats.stroke3_to_strokes(prefix)) if len(prefix) else 0
    drawings = [np.concatenate([prefix, np.asarray(rows, np.float32).reshape(-1, 3)]) for rows in continuations]
    if len(drawings) == 1:
        text = drawing_to_svg(drawings[0], size=436, color=PERSON_COLOR, background="white")
    else:
        text = grid_to_svg(drawings, columns=len(drawings), cell_size=256, color=PERSON_COLOR,
                           background="white")
    return _recolor(text, person_strokes)


def _recolor(text: str, person_strokes: int) -> str:
    """Moves every drawing path's runs after the first `person_strokes` into a model path."""
    namespace = "http://www.w3.org/2000/svg"
    ElementTree.register_namespace("", namespace)
    ElementTree.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    root = ElementTree.fromstring(text)
    for parent in root.iter():
        for index, path in enumerate(list(parent)):
            if path.tag != f"{{{namespace}}}path":
                continue
            runs = ["M" + run.strip() for run in path.get("d", "").split("M") if run.strip()]
            person, model = runs[:person_strokes], runs[person_strokes:]
            path.set("class", "person")
            if not model:
                continue
            clone = ElementTree.Element(path.tag, dict(path.attrib))
            clone.set("d", " ".join(model))
            clone.set("stroke", MODEL_COLOR)
            clone.set("class", "model")
            if person:
                path.set("d", " ".join(person))
                parent.insert(index + 1, clone)
            else:
                parent.remove(path)
                parent.insert(index, clone)
    return '<?xml version="1.0" encoding="utf-8" ?>\n' + ElementTree.tostring(root, encoding="unicode")
