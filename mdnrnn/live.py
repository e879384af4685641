"""`mdnrnn play`: a model as a live partner over MIDI and OSC, with real-time scheduling.

A `LiveLoop` reads a person's events (MIDI notes and controllers through mido with the
python-rtmidi backend, or OSC messages over UDP), turns each into a row of the model's data
(see `mdnrnn.formats`; its `dt` is measured on arrival, 0 for the first event of a phrase),
lets the model answer, and sends the model's rows out at their times. One thread does it
all: it waits in `select` for input or for the next due event, sends what is due, and
computes model steps only while the next send is far enough away (`guard`), up to
`lookahead` seconds ahead of time, so a model step never delays a send.

Modes (as in IMPSY):

- `callresponse`: the person plays a phrase; after `silence` seconds of quiet the model,
  primed with the phrase, answers for as long as the phrase lasted (first to last event).
  Playing again cuts the answer short.
- `polyphony`: every event of the person primes the model with the person's latest
  `context` rows and the model's next row is played `dt` after that event: it plays
  alongside, while the person plays.
- `battle`: the model improvises on its own from the start, continuing its own output and
  never hearing the person, on the same dimensions (the same mapping) the person plays.
- `useronly`: no model; the person's events pass through to the outputs.

`thru` (default on in `useronly` only) also sends the person's events to the outputs.

The mapping between rows and MIDI is the one of `mdnrnn.export.midi` (documented there),
applied live: for touch models (x, y, dt) a touch is a note (pitch from x across `scale`
from `low_note` to `high_note`, velocity from y, loud at the top), a row with
`dt > tap_threshold` starts a new touch, later rows of a swipe send pitch bend (`bend`)
and/or controller `cc` from y; a note ends `tap_threshold` after its touch's last row (the
first moment the loop knows the touch is over), and lasts at least `min_duration`. For
IMPSY models (dt, x_1 ... x_n), value i is controller `controls[i]` (`round(x * 127)`).
Incoming MIDI is mapped back: a note-on gives the row (x of the note's slice centre, y
from velocity), pitch bend and controller `cc` move x and y of the held touch; IMPSY
controllers set their value. Drawing models (stroke-3) play over OSC only.

OSC: a message to `osc_in_address` (default `/interface`, IMPSY's) carries the row's
columns other than `dt` as numbers; the model's rows go out to `osc_out_address` (default
`/prediction`) the same way, as float32. Drawings have no `dt`: their rows are paced
`stroke_interval` seconds apart.

Settings come from a small TOML or JSON file (`load_settings`) with optional sections
`[play]`, `[midi]` and `[osc]` holding `LiveSettings`' fields.

Bad input on the wire (a malformed OSC packet, a wrong address or argument list, a value
outside its column's range, an undecodable or out-of-range MIDI message, more than
`max_rate` events per second) is dropped and counted in `LiveLoop.dropped`, with a warning
on stderr at most once a second per reason; the loop never stops for it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import heapq
import json
import math
import os
import queue
import select
import socket
import sys
import time

import numpy as np

from mdnrnn import formats

MODES = ("callresponse", "polyphony", "battle", "useronly")
_PITCH_BEND_MAX = 8191


@dataclasses.dataclass
class LiveSettings:
    """How `mdnrnn play` listens, answers and maps rows to MIDI and OSC.

    Timing and behaviour (`[play]`):
        mode: One of `MODES`. Defaults to "callresponse".
        silence: Seconds of quiet after which the model answers (callresponse). 1.0.
        context: Most rows of the person's playing the model is primed with. 32.
        lookahead: Seconds of model output computed ahead of time. 0.05.
        guard: A model step starts only if the next send is further away than this, or
            than twice the slowest of the last 32 steps if that is more. 0.003.
        stroke_interval: Seconds between rows of a drawing model (no dt column). 0.02.
        max_rate: Input events per second; events above it are a flood, dropped. 500.
        thru: Send the person's events to the outputs; `None`: in useronly only.
        realtime: Run the loop's thread with real-time priority (`SCHED_FIFO`, Linux;
            needs root, CAP_SYS_NICE or an rtprio limit) so that a busy machine does not
            delay its wake-ups. `None` (default): try, and play on at normal priority
            without a word where the system refuses; True: try, and warn if refused;
            False: never.
        temperature, sigma_temperature: The sampler's (see `Generator`). 1.0 and `None`
            (the variance follows `temperature`).
    MIDI (`[midi]`, the mapping of `mdnrnn.export.midi.performance_to_midi` /
    `sequence_to_midi`):
        channel (0-15), low_note, high_note, scale, velocity_range, tap_threshold,
        min_duration, bend, bend_range, cc (touch models); controls (IMPSY models,
        default `DEFAULT_CONTROLS`).
    OSC (`[osc]`):
        in_address, out_address: OSC addresses of incoming and outgoing rows.
    """

    mode: str = "callresponse"
    silence: float = 1.0
    context: int = 32
    lookahead: float = 0.05
    guard: float = 0.003
    stroke_interval: float = 0.02
    max_rate: float = 500.0
    thru: bool | None = None
    realtime: bool | None = None
    temperature: float = 1.0
    sigma_temperature: float | None = None
    channel: int = 0
    low_note: int = 48
    high_note: int = 84
    scale: str | list = "pentatonic"
    velocity_range: tuple = (40, 127)
    tap_threshold: float = formats.NEW_TOUCH_DT
    min_duration: float = 0.1
    bend: bool = False
    bend_range: int = 12
    cc: int | None = None
    controls: list | None = None
    in_address: str = "/interface"
    out_address: str = "/prediction"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(
                f"Received an invalid value for `mode`, expected one of {MODES}. Received: mode={self.mode!r}"
            )
        for name in ("silence", "lookahead", "guard", "stroke_interval", "max_rate", "tap_threshold", "min_duration"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"Received an invalid value for `{name}`, expected a non-negative number. Received: {name}={value!r}"
                )
        if self.max_rate <= 0 or self.stroke_interval <= 0:
            raise ValueError("`max_rate` and `stroke_interval` must be above 0.")
        if isinstance(self.context, bool) or not isinstance(self.context, int) or self.context < 1:
            raise ValueError(
                f"Received an invalid value for `context`, expected a positive integer. Received: context={self.context!r}"
            )
        for name in ("in_address", "out_address"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.startswith("/"):
                raise ValueError(f"Received an invalid value for `{name}`, expected an OSC address like '/name'. Received: {name}={value!r}")
        self.velocity_range = tuple(self.velocity_range)


def load_settings(path=None, **overrides) -> LiveSettings:
    """Reads `LiveSettings` from a TOML or JSON file, then applies `overrides` (not None).

    The file may hold the fields at its top level or in `[play]`, `[midi]` and `[osc]`
    sections.

    Raises:
        OSError: If the file cannot be read.
        ValueError: For a file that does not parse, an unknown field or a bad value.
    """
    fields = {}
    if path is not None:
        text = open(path, "rb").read()
        try:
            if os.fspath(path).endswith(".json"):
                data = json.loads(text)
            else:
                import tomllib

                data = tomllib.loads(text.decode())
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not valid {'JSON' if str(path).endswith('.json') else 'TOML'}: {error}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a table of settings.")
        for key, value in data.items():
            if key in ("play", "midi", "osc") and isinstance(value, dict):
                fields.update(value)
            else:
                fields[key] = value
    fields.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(LiveSettings)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"Unknown setting(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}.")
    return LiveSettings(**fields)


class BadInput(Exception):
    """An incoming message that is dropped; `reason` names the kind of problem."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason = reason


# ----------------------------------------------------------------------- OSC
class OscCodec:
    """Rows <-> OSC datagrams: the row's columns other than `dt`, in order, as numbers.

    Args:
        columns: The model's data columns.
        settings: `LiveSettings` (its `in_address` and `out_address`).
    """

    def __init__(self, columns, settings):
        self.columns = list(columns)
        self.value_columns = [i for i, c in enumerate(self.columns) if c != "dt"]
        names = [self.columns[i] for i in self.value_columns]
        self.bounded = np.array([c not in ("dx", "dy", "pen_lift") for c in names])  # in [0, 1]
        self.pen = names.index("pen_lift") if "pen_lift" in names else None
        self.in_address = settings.in_address
        self.out_address = settings.out_address

    def encode(self, row) -> bytes:
        from pythonosc.osc_message_builder import OscMessageBuilder

        builder = OscMessageBuilder(self.out_address)
        for i in self.value_columns:
            builder.add_arg(float(row[i]), "f")
        return builder.build().dgram

    def decode(self, datagram) -> list[np.ndarray]:
        """The value rows (without dt) in one datagram (a message or a bundle).

        Raises:
            BadInput: For a malformed packet, another address, or bad arguments.
        """
        from pythonosc.osc_bundle import OscBundle
        from pythonosc.osc_message import OscMessage

        try:
            if OscBundle.dgram_is_bundle(datagram):
                messages = list(_bundle_messages(OscBundle(datagram)))
            else:
                messages = [OscMessage(datagram)]
        except Exception as error:  # python-osc raises ParseError, and others on odd bytes
            raise BadInput("malformed OSC packet", str(error)[:60]) from None
        return [self._values(message) for message in messages]

    def _values(self, message):
        if message.address != self.in_address:
            raise BadInput("OSC message to another address", message.address[:40])
        params = message.params
        width = len(self.value_columns)
        if len(params) != width or not all(
            isinstance(p, (int, float)) and not isinstance(p, bool) for p in params
        ):
            raise BadInput("OSC message with bad arguments", f"expected {width} numbers, got {params!r:.60}")
        values = np.array(params, np.float32)
        if not np.isfinite(values).all():
            raise BadInput("OSC value not finite")
        bounded = values[self.bounded]
        if ((bounded < 0) | (bounded > 1)).any():
            raise BadInput("OSC value out of range", f"{params!r:.60}")
        if self.pen is not None:
            values[self.pen] = float(values[self.pen] > 0.5)
        return values


def _bundle_messages(bundle):
    from pythonosc.osc_bundle import OscBundle

    for content in bundle:
        if isinstance(content, OscBundle):
            yield from _bundle_messages(content)
        else:
            yield content


def parse_host_port(text, name="address"):
    """'HOST:PORT' -> (host, port); raises ValueError for anything else."""
    host, _, port = str(text).rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not host or not 0 <= number <= 65535:
        raise ValueError(f"Received an invalid value for `{name}`, expected HOST:PORT. Received: {text!r}")
    return host, number


# ---------------------------------------------------------------------- MIDI
class MidiCodec:
    """Rows <-> MIDI messages, the mapping of `mdnrnn.export.midi`, applied live.

    One codec is one voice: it remembers the sounding note (touch models) or the last
    controller values (IMPSY models) of what it sent and of what it received.

    Args:
        columns: The model's data columns ("x", "y", "dt" or "dt", "x_1", ...).
        settings: `LiveSettings`.

    Raises:
        ValueError: For a drawing model, or a mapping setting out of range.
    """

    def __init__(self, columns, settings):
        from mdnrnn.export import midi

        self.columns = list(columns)
        self.settings = s = settings
        midi._check_int(s.channel, "channel", 0, 15)
        if self.columns == ["x", "y", "dt"]:
            self.kind = "touch"
            midi._check_int(s.low_note, "low_note", 0, 127)
            midi._check_int(s.high_note, "high_note", s.low_note, 127)
            self.notes = midi._scale_notes(s.scale, s.low_note, s.high_note)
            self.quietest, self.loudest = midi._velocity_bounds(s.velocity_range)
            midi._check_int(s.bend_range, "bend_range", 1, 24)
            if s.cc is not None:
                midi._check_int(s.cc, "cc", 0, 127)
        elif self.columns[0] == "dt":
            self.kind = "impsy"
            n = len(self.columns) - 1
            controls = list(s.controls if s.controls is not None else midi.DEFAULT_CONTROLS[:n])
            if len(controls) != n or len(set(controls)) != n:
                raise ValueError(
                    f"Received an invalid value for `controls`, expected {n} distinct controller "
                    f"numbers, one per value column. Received: controls={controls}"
                )
            for control in controls:
                midi._check_int(control, "controls", 0, 127)
            self.controls = controls
        else:
            raise ValueError("Drawing models (stroke-3) play over OSC only; use --osc-in/--osc-out.")
        self._mido = __import__("mido")
        # What this voice sent: the sounding note and its touch, the last bend / values.
        self.note = None
        self.note_start = 0.0
        self.note_x = 0.0
        self.off_at = math.inf
        self.bend_value = 0
        self.control_value = None
        self.sent_values = None
        # What it received: the held touch's note x and y, the last controller values.
        self.in_x = self.in_x0 = None  # x of the held touch now, and at its note-on
        self.in_y = 0.5
        self.in_values = np.zeros(max(len(self.columns) - 1, 1), np.float32)

    def _message(self, kind, **values):
        return self._mido.Message(kind, channel=self.settings.channel, **{k: int(v) for k, v in values.items()})

    # ------------------------------------------------------------ rows out
    def encode(self, row, when) -> list:
        """The messages that play `row` at time `when` (seconds); updates the voice."""
        if self.kind == "impsy":
            values = np.rint(np.clip(row[1:], 0.0, 1.0) * 127).astype(int)
            out = [
                self._message("control_change", control=c, value=v)
                for i, (c, v) in enumerate(zip(self.controls, values))
                if self.sent_values is None or v != self.sent_values[i]
            ]
            self.sent_values = values
            return out
        s = self.settings
        x, y, dt = (float(np.clip(row[0], 0, 1)), float(np.clip(row[1], 0, 1)), float(row[2]))
        out = []
        if self.note is None or dt > s.tap_threshold:
            out += self.note_off()
            if s.bend and self.bend_value != 0:
                self.bend_value = 0
                out.append(self._message("pitchwheel", pitch=0))
            note = self.notes[min(int(x * len(self.notes)), len(self.notes) - 1)]
            velocity = round(self.loudest + y * (self.quietest - self.loudest))
            out.append(self._message("note_on", note=note, velocity=velocity))
            self.note, self.note_start, self.note_x = note, when, x
        elif s.bend:
            semitones = (x - self.note_x) * (s.high_note - s.low_note)
            pitch = int(np.clip(round(semitones / s.bend_range * (_PITCH_BEND_MAX + 1)), -_PITCH_BEND_MAX - 1, _PITCH_BEND_MAX))
            if pitch != self.bend_value:
                self.bend_value = pitch
                out.append(self._message("pitchwheel", pitch=pitch))
        if s.cc is not None:
            value = round((1.0 - y) * 127)
            if value != self.control_value:
                self.control_value = value
                out.append(self._message("control_change", control=s.cc, value=value))
        self.off_at = max(self.note_start + s.min_duration, when + s.tap_threshold)
        return out

    def start_messages(self) -> list:
        """What to send before anything else: the pitch bend range (RPN 0), when bending."""
        if self.kind != "touch" or not self.settings.bend:
            return []
        from mdnrnn.export import midi

        return midi._bend_range_messages(self.settings.bend_range, self.settings.channel)

    def note_off(self) -> list:
        """The note-off of the sounding note, if any (and forgets it)."""
        if self.note is None:
            return []
        note, self.note, self.off_at = self.note, None, math.inf
        return [self._message("note_off", note=note, velocity=0)]

    # ------------------------------------------------------------- rows in
    def decode(self, message):
        """The value row (without dt) a received message stands for, or `None` if it maps
        to nothing (a note-off, another controller, a clock tick).

        Args:
            message: A `mido.Message`, or its bytes.

        Raises:
            BadInput: For bytes that are no MIDI message, or a note outside the mapping.
        """
        if not isinstance(message, self._mido.Message):
            try:
                message = self._mido.Message.from_bytes(list(message))
            except (ValueError, TypeError, IndexError) as error:
                raise BadInput("malformed MIDI message", str(error)[:60]) from None
        kind = message.type
        if self.kind == "impsy":
            if kind == "control_change" and message.control in self.controls:
                self.in_values[self.controls.index(message.control)] = message.value / 127
                return self.in_values.copy()
            return None
        s = self.settings
        if kind == "note_on" and message.velocity > 0:
            if not s.low_note <= message.note <= s.high_note:
                raise BadInput("MIDI note out of range", f"{message.note} not in {s.low_note}-{s.high_note}")
            index = int(np.argmin([abs(n - message.note) for n in self.notes]))
            self.in_x = (index + 0.5) / len(self.notes)
            self.in_y = float(np.clip((self.loudest - message.velocity) / max(self.loudest - self.quietest, 1), 0, 1))
            self.in_x0 = self.in_x
            return np.array([self.in_x, self.in_y], np.float32)
        if self.in_x is None:
            return None
        if kind == "pitchwheel" and s.bend:
            semitones = message.pitch / (_PITCH_BEND_MAX + 1) * s.bend_range
            self.in_x = float(np.clip(self.in_x0 + semitones / max(s.high_note - s.low_note, 1), 0, 1))
            return np.array([self.in_x, self.in_y], np.float32)
        if kind == "control_change" and s.cc is not None and message.control == s.cc:
            self.in_y = 1.0 - message.value / 127
            return np.array([self.in_x, self.in_y], np.float32)
        return None


class LoopbackMidi:
    """A MIDI port pair in memory: what `send` gets comes out of `iter_pending` as bytes.

    Stands in for a virtual port where there is no ALSA sequencer; the bytes go through
    the same decoding as a real port's messages (`mido.Message.from_bytes`).
    """

    def __init__(self):
        self.queue = queue.SimpleQueue()
        self.sent = []  # (time.monotonic(), mido.Message)
        self.callback = None

    def send(self, message):
        self.sent.append((time.monotonic(), message))
        self.push(message.bytes())

    def push(self, data):
        """Delivers raw bytes as if they came in on the wire."""
        if self.callback is not None:
            self.callback(data)
        else:
            self.queue.put(data)

    def iter_pending(self):
        while True:
            try:
                yield self.queue.get_nowait()
            except queue.Empty:
                return

    def close(self):
        pass


def open_midi_port(name, output):
    """Opens a mido (python-rtmidi) port by name; `virtual:NAME` makes a virtual port.

    Raises:
        OSError: If the MIDI system or the port is not available.
    """
    import mido

    try:
        opener = mido.open_output if output else mido.open_input
        if name.startswith("virtual:"):
            return opener(name[len("virtual:"):], virtual=True)
        return opener(name)
    except (OSError, IOError, ValueError, RuntimeError) as error:
        raise OSError(f"cannot open MIDI {'output' if output else 'input'} {name!r}: {error}") from None
    except Exception as error:  # rtmidi's own SystemError when there is no ALSA sequencer
        raise OSError(f"cannot open MIDI {'output' if output else 'input'} {name!r}: {error}") from None


def list_ports():
    """`(inputs, outputs)`: the names of the MIDI ports mido sees.

    Raises:
        OSError: If there is no MIDI system (no ALSA sequencer, say).
    """
    import mido

    try:
        return mido.get_input_names(), mido.get_output_names()
    except Exception as error:
        raise OSError(f"no MIDI system: {error}") from None


# ---------------------------------------------------------------------- loop
class LiveLoop:
    """The real-time loop of `mdnrnn play` (see the module docstring).

    Args:
        generator: A `Generator` or `LiteGenerator` (reset / prime / step, `columns`).
        settings: `LiveSettings`. Defaults to `LiveSettings()`.
        osc_in: `(host, port)` to listen on for OSC (port 0: any free port, see
            `osc_in_address`), or `None`.
        osc_out: `(host, port)` to send OSC rows to, or `None`.
        midi_in, midi_out: mido ports (or `LoopbackMidi`), or `None`.
        log: A file to write every event to as CSV lines
            `direction,scheduled,sent,values...` (times from `time.monotonic()`), or `None`.
        warn: Where dropped-input warnings go. Defaults to stderr.

    Example:

    >>> loop = LiveLoop(LiteGenerator("touch.tflite"), LiveSettings(mode="polyphony"),
    ...                 osc_in=("127.0.0.1", 5001), osc_out=("127.0.0.1", 5002))
    >>> loop.run()     # until Ctrl-C or loop.stop()
    """

    def __init__(self, generator, settings=None, *, osc_in=None, osc_out=None,
                 midi_in=None, midi_out=None, log=None, warn=None):
        self.generator = generator
        self.settings = s = settings or LiveSettings()
        self.columns = list(generator.columns)
        self.dt_index = self.columns.index("dt") if "dt" in self.columns else None
        if s.mode != "useronly":
            generator.temperature = s.temperature
            generator.sigma_temperature = s.sigma_temperature
        self.thru = s.mode == "useronly" if s.thru is None else bool(s.thru)
        self.osc = OscCodec(self.columns, s)
        needs_midi = midi_in is not None or midi_out is not None
        self.midi_model = MidiCodec(self.columns, s) if needs_midi else None
        self.midi_thru = MidiCodec(self.columns, s) if needs_midi else None
        self.midi_in, self.midi_out = midi_in, midi_out
        self.osc_out = osc_out
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._midi_queue = queue.SimpleQueue()
        if midi_in is not None:
            midi_in.callback = self._on_midi
        self._osc_socket = None
        if osc_in is not None:
            self._osc_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._osc_socket.bind(osc_in)
            self._osc_socket.setblocking(False)
        self._out_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if osc_out else None
        self.log = log
        self.warn = warn or (lambda text: print(text, file=sys.stderr, flush=True))
        self.dropped = collections.Counter()  # reason -> messages dropped
        self.received = 0
        self.sent = 0
        self.lateness = collections.deque(maxlen=100_000)  # seconds each send left after its time
        self._warned_at = {}
        self._stopping = False
        self._outbox = []  # heap of (due, order, source, row)
        self._order = 0
        self._phrase = []  # the person's rows since the phrase began
        self._last_in = None  # time of the person's last event
        self._tokens, self._tokens_at = s.max_rate, None
        self._prime_due = False  # polyphony: a new event to answer
        self._response = None  # (anchor, duration, next_time, elapsed) of a running answer
        self._step_seconds = collections.deque(maxlen=32)  # how long recent model steps took
        self.priority = "normal"  # of the loop's thread while it runs (see `realtime`)

    @property
    def osc_in_address(self):
        """`(host, port)` the loop listens on for OSC (the real port when 0 was asked)."""
        return self._osc_socket.getsockname() if self._osc_socket else None

    def stop(self):
        """Asks `run` to finish (from another thread or a handler); safe to call twice."""
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    # ------------------------------------------------------------- running
    def run(self, duration=None):
        """Runs until `stop()`, Ctrl-C (KeyboardInterrupt, re-raised) or `duration` seconds.

        On the way out every sounding note gets its note-off.
        """
        clock = time.monotonic
        end = math.inf if duration is None else clock() + duration
        realtime = self.settings.realtime
        policy = None if realtime is False else self._raise_priority(warn=realtime is True)
        self.priority = "normal" if policy is None else "real-time"
        if self.settings.mode == "battle":
            self._start_response(clock(), math.inf)
        blas = _one_blas_thread()
        blas.__enter__()
        if self.midi_out is not None:
            for message in self.midi_model.start_messages():
                self._send_midi(message)
        try:
            while not self._stopping:
                now = clock()
                if now >= end:
                    break
                self._receive(now)
                self._send_due(clock())
                now = clock()
                work, next_due = self._model_work_wanted(now), self._next_due()
                if work and next_due - now > self._guard():
                    self._model_work(now)
                    continue
                wake = min(next_due, end) if work else min(next_due, end, self._next_decision(now))
                self._wait(wake - clock())
        finally:
            self._all_notes_off()
            blas.__exit__(None, None, None)
            if policy is not None:
                os.sched_setscheduler(0, *policy)

    def _raise_priority(self, warn):
        """Puts this thread on `SCHED_FIFO`; returns its old policy, or None if refused."""
        try:
            old = (os.sched_getscheduler(0), os.sched_getparam(0))
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(min(10, os.sched_get_priority_max(os.SCHED_FIFO))))
            return old
        except (AttributeError, OSError) as error:
            if warn:
                self.warn(f"warning: no real-time priority ({error}); timing may suffer on a busy machine")
            return None

    def close(self):
        for sock in (self._osc_socket, self._out_socket, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def summary(self) -> str:
        late = np.sort(np.asarray(self.lateness)) * 1e3
        timing = (f", lateness p50 {np.percentile(late, 50):.2f} ms, p95 {np.percentile(late, 95):.2f} ms"
                  if len(late) else "")
        dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dropped.items())) or "none"
        return f"received {self.received}, sent {self.sent}{timing} ({self.priority} priority); dropped: {dropped}"

    # ------------------------------------------------------------- input
    def _on_midi(self, message):
        self._midi_queue.put(message)
        try:
            self._wake_w.send(b"m")
        except OSError:
            pass

    def _wait(self, timeout):
        sockets = [self._wake_r] + ([self._osc_socket] if self._osc_socket else [])
        if timeout > 0:  # at most a second: nothing may be due at all (inf)
            readable, _, _ = select.select(sockets, [], [], min(timeout, 1.0))
            if self._wake_r in readable:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except (BlockingIOError, OSError):
                    pass

    def _receive(self, now):
        events = []
        if self._osc_socket is not None:
            for _ in range(256):  # bounded, so a flood cannot starve the sends
                try:
                    datagram = self._osc_socket.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                try:
                    events += [(values, "osc") for values in self.osc.decode(datagram)]
                except BadInput as bad:
                    self._drop(bad.reason, now)
        for _ in range(256):
            try:
                message = self._midi_queue.get_nowait()
            except queue.Empty:
                break
            events.append((message, "midi"))
        if self.midi_in is not None and not hasattr(self.midi_in, "callback"):
            events += [(message, "midi") for message in self.midi_in.iter_pending()]
        for item, source in events:
            if source == "midi":
                try:
                    item = self.midi_model.decode(item)
                except BadInput as bad:
                    self._drop(bad.reason, now)
                    continue
                if item is None:
                    continue
            if not self._rate_ok(now):
                self._drop("flood (over max_rate events/s)", now)
                continue
            self._person_row(item, now)

    def _rate_ok(self, now):
        """A token bucket: up to `max_rate` events per second, bursts of a tenth of that."""
        rate = self.settings.max_rate
        if self._tokens_at is not None:
            self._tokens = min(max(rate / 10, 1.0), self._tokens + (now - self._tokens_at) * rate)
        else:
            self._tokens = max(rate / 10, 1.0)
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _drop(self, reason, now):
        self.dropped[reason] += 1
        if now - self._warned_at.get(reason, -math.inf) >= 1.0:
            self._warned_at[reason] = now
            self.warn(f"warning: dropped {reason} ({self.dropped[reason]} so far)")

    def _person_row(self, values, now):
        """Turns the person's value row into a data row (measured dt) and acts on it."""
        self.received += 1
        mode = self.settings.mode
        new_phrase = self._last_in is None or (mode == "callresponse" and not self._phrase)
        row = np.empty(len(self.columns), np.float32)
        if self.dt_index is None:
            row[:] = values
        else:
            dt = 0.0 if new_phrase else now - self._last_in
            row[: self.dt_index] = values[: self.dt_index]
            row[self.dt_index] = dt
            row[self.dt_index + 1 :] = values[self.dt_index :]
        self._last_in = now
        if mode == "callresponse" and self._response is not None:
            self._cancel_response(now)  # the person plays again: the answer stops
        if mode in ("callresponse", "polyphony"):
            self._phrase.append(row)
            del self._phrase[: -self.settings.context]
        if mode == "polyphony":
            self._prime_due = True
        self._log("in", now, now, row)
        if self.thru:
            self._emit(row, "thru", now, now)

    # ------------------------------------------------------------- model
    def _guard(self):
        """Seconds a model step needs to stay clear of the next send (learnt, see `guard`)."""
        return max(self.settings.guard, 2 * max(self._step_seconds, default=0.0))

    def _model_work_wanted(self, now):
        mode = self.settings.mode
        if mode == "polyphony":
            return self._prime_due
        if mode == "callresponse" and self._response is None and self._phrase:
            return now - self._last_in >= self.settings.silence
        if self._response is not None:
            return self._response[2] < now + self.settings.lookahead
        return False

    def _next_decision(self, now):
        """When the loop next has model work to start (an answer after silence, or lookahead)."""
        if self.settings.mode == "callresponse" and self._response is None and self._phrase:
            return self._last_in + self.settings.silence
        if self._response is not None:
            return self._response[2] - self.settings.lookahead
        return math.inf

    def _model_work(self, now):
        """One unit of model work: a prime, or one step of a running answer."""
        mode = self.settings.mode
        generator = self.generator
        if mode == "polyphony":
            self._prime_due = False
            generator.prime(np.stack(self._phrase))
            row = generator.step()[0]
            self._schedule(row, self._last_in + self._row_seconds(row), "model")
            return
        if self._response is None:  # callresponse: the silence has come
            phrase = np.stack(self._phrase)
            self._phrase = []
            duration = self._phrase_seconds(phrase)
            generator.prime(phrase)
            self._start_response(time.monotonic(), duration)
            return
        anchor, duration, next_time, elapsed = self._response
        start = time.monotonic()
        row = generator.step()[0]
        self._step_seconds.append(time.monotonic() - start)
        seconds = self._row_seconds(row)
        elapsed += seconds
        if elapsed > duration and elapsed > seconds:  # always at least one row
            self._response = None
            return
        self._schedule(row, anchor + elapsed, "model")
        self._response = (anchor, duration, anchor + elapsed, elapsed)

    def _start_response(self, now, duration):
        if duration == math.inf:
            self.generator.reset(1)
        self._response = (now, duration, now, 0.0)

    def _cancel_response(self, now):
        self._response = None
        self._outbox = [item for item in self._outbox if item[2] != "model"]
        heapq.heapify(self._outbox)
        if self.midi_model is not None and self.midi_out is not None:
            for message in self.midi_model.note_off():
                self._send_midi(message)

    def _row_seconds(self, row):
        return float(row[self.dt_index]) if self.dt_index is not None else self.settings.stroke_interval

    def _phrase_seconds(self, phrase):
        """First to last event of a phrase (its first dt is 0), or its rows' pacing."""
        if self.dt_index is None:
            return len(phrase) * self.settings.stroke_interval
        return float(phrase[1:, self.dt_index].sum())

    # ------------------------------------------------------------- output
    def _schedule(self, row, due, source):
        self._order += 1
        heapq.heappush(self._outbox, (due, self._order, source, row))

    def _next_due(self):
        due = self._outbox[0][0] if self._outbox else math.inf
        for codec in (self.midi_model, self.midi_thru):
            if codec is not None and codec.note is not None:
                due = min(due, codec.off_at)
        return due

    def _send_due(self, now):
        while self._outbox and self._outbox[0][0] <= now:
            due, _, source, row = heapq.heappop(self._outbox)
            self._emit(row, source, due, time.monotonic())
        if self.midi_out is not None:
            for codec in (self.midi_model, self.midi_thru):
                if codec.note is not None and codec.off_at <= now:
                    for message in codec.note_off():
                        self._send_midi(message)

    def _emit(self, row, source, due, now):
        if self._out_socket is not None:
            try:
                self._out_socket.sendto(self.osc.encode(row), self.osc_out)
            except OSError as error:  # nobody listening, a full buffer: the show goes on
                self._drop(f"OSC send failed ({error.strerror or error})", now)
        if self.midi_out is not None:
            codec = self.midi_thru if source == "thru" else self.midi_model
            for message in codec.encode(row, due):
                self._send_midi(message)
        self.sent += 1
        sent = time.monotonic()
        if source != "thru":
            self.lateness.append(sent - due)
        self._log("out" if source != "thru" else "thru", due, sent, row)

    def _send_midi(self, message):
        try:
            self.midi_out.send(message)
        except Exception as error:  # a port that went away must not stop the loop
            self._drop(f"MIDI send failed ({type(error).__name__})", time.monotonic())

    def _all_notes_off(self):
        if self.midi_out is None:
            return
        for codec in (self.midi_model, self.midi_thru):
            for message in codec.note_off():
                self._send_midi(message)

    def _log(self, direction, due, sent, row):
        if self.log is not None:
            values = ",".join(f"{v:.6g}" for v in row)
            self.log.write(f"{direction},{due:.6f},{sent:.6f},{values}\n")


def _one_blas_thread():
    """Limits BLAS to one thread while the loop runs, where threadpoolctl is installed.

    `Generator.step()`'s matrix products are small; OpenBLAS's extra threads spin while they
    wait for work, and on a busy machine they take the CPU the loop needs on time
    (docs/benchmarks.md, "Live and LiteRT"). `OPENBLAS_NUM_THREADS=1` does the same.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def load_generator(path, seed=None):
    """A `LiteGenerator` for a `.tflite` file, else a `Generator` for a `.keras` model."""
    if os.fspath(path).endswith(".tflite"):
        from mdnrnn.lite import LiteGenerator

        return LiteGenerator(path, seed=seed)
    from mdnrnn import Generator, load_model

    return Generator(load_model(path), seed=seed)
