"""MIDI files from touch performances and from generic dt-first sequences.

Data formats (the authoritative note is DESIGN.md, "Data formats"):

- touch (RoboJam / MicroJam): rows `(x, y, dt)`, absolute screen position in [0, 1] (`y`
  grows downwards) and seconds since the previous row; `dt > tap_threshold` starts a new
  touch (a tap if it has one row, a swipe if more).
- IMPSY / generic: rows `(dt, x_1, ..., x_n)`, values in [0, 1], `dt` in seconds.

Time: row `i` happens `sum(dt[: i + 1])` seconds after the start (negative `dt`, found in
uncleaned recordings, counts as zero). Seconds become ticks at the file's tempo and
resolution, `tick = round(seconds * ticks_per_beat * 1e6 / tempo)` with `tempo` the
microseconds per beat stored in the file (`mido.bpm2tempo(tempo_bpm)`), rounded from the
absolute time so errors never accumulate. Files are type 0: one track holding a `set_tempo`
message and every event.

Values are clamped into [0, 1] before mapping, and every mapped value into its MIDI range;
NaN or infinity raise `ValueError`.
"""

import io
import operator

import mido
import numpy as np

from mdnrnn import atomic, formats
from mdnrnn.export import _common

SCALES = {
    "chromatic": (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),  # natural minor
    "pentatonic": (0, 2, 4, 7, 9),  # major pentatonic
    "minor_pentatonic": (0, 3, 5, 7, 10),
}
"""Named scales: semitone steps above the tonic (`low_note`), repeating every octave."""

# Controller numbers MIDI leaves undefined, used in order when `sequence_to_midi` gets no
# `controls`: 20-31 (their LSB partners 52-63 are undefined too), then 102-119.
DEFAULT_CONTROLS = tuple(range(20, 32)) + tuple(range(102, 120))

_PITCH_BEND_MAX = 8191  # mido's pitchwheel range is [-8192, 8191]
_MAX_DELTA_TICKS = 0x0FFFFFFF  # largest variable-length delta time in a MIDI file


def performance_to_midi(
    touches,
    path=None,
    *,
    low_note=48,
    high_note=84,
    scale="pentatonic",
    velocity_range=(40, 127),
    bend=True,
    bend_range=12,
    cc=None,
    min_duration=0.1,
    tempo_bpm=120.0,
    ticks_per_beat=480,
    channel=0,
    tap_threshold=formats.NEW_TOUCH_DT,
):
    """Turns a touch performance into a monophonic MIDI file.

    Default mapping, one note per touch (tap or swipe):

    - Pitch: the notes of `scale` from `low_note` (the tonic) up to `high_note` are laid out
      left to right across the screen in equal slices; the touch's first `x` picks the
      slice. With the defaults: C major pentatonic from C3 (48) to C6 (84), 16 notes.
    - Velocity: from the touch's first `y`, loud at the top of the screen: `y = 0` gives
      `velocity_range[1]`, `y = 1` gives `velocity_range[0]`, linear in between.
    - Swipe movement, with `bend`: horizontal travel from the touch's first `x` bends the
      pitch as if gliding across a chromatic keyboard spanning the screen, i.e.
      `(x - x_first) * (high_note - low_note)` semitones, saturating at `+-bend_range`. The
      file starts with the RPN 0 message that sets the synth's bend range to `bend_range`,
      and the bend returns to centre before the next note.
    - Swipe movement, with `cc` set: every row of a touch also sends controller `cc` with
      the height `round((1 - y) * 127)`, a controller stream next to (or instead of) bend.
    - Duration: the note starts at the touch's first row and ends at its last row, but
      lasts at least `min_duration` seconds (so taps sound), and ends no later than the next
      touch starts.

    Pitch bend and controller messages are only sent when their value changes.

    Args:
        touches: array-like of shape `(timesteps, 3)`, columns `(x, y, dt)`. Positions
            outside [0, 1] are clamped. An empty performance gives a file with no notes.
        path: optional `.mid` file path; written atomically (an existing file stays intact
            if anything fails). Defaults to `None`.
        low_note: lowest MIDI note and tonic of the scale, 0-127. Defaults to `48` (C3).
        high_note: highest MIDI note, `low_note`-127. Defaults to `84` (C6).
        scale: a name from `SCALES` (`"chromatic"`, `"major"`, `"minor"`, `"pentatonic"`,
            `"minor_pentatonic"`) or a sequence of semitone steps 0-11 above the tonic.
            Defaults to `"pentatonic"`.
        velocity_range: `(quietest, loudest)` note-on velocities, 1-127.
            Defaults to `(40, 127)`.
        bend: send pitch bend from horizontal swipe movement. Defaults to `True`.
        bend_range: semitones of full pitch bend, 1-24. Defaults to `12`.
        cc: controller number (0-127) for the vertical-position stream, or `None` for no
            stream. Defaults to `None`.
        min_duration: shortest note in seconds. Defaults to `0.1`.
        tempo_bpm: tempo in beats per minute. Defaults to `120.0`.
        ticks_per_beat: resolution, 1-32767. Defaults to `480`.
        channel: MIDI channel, 0-15. Defaults to `0`.
        tap_threshold: seconds; a row with `dt > tap_threshold` starts a new touch.
            Defaults to `formats.NEW_TOUCH_DT` (0.1).

    Returns:
        A `mido.MidiFile` of type 0.

    Raises:
        ValueError: for a bad shape, NaN or infinite values, an unknown scale, or a setting
            outside the ranges above; the message names the argument and the value.

    Example:

    >>> touches = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.6, 0.5, 0.05], [1.0, 1.0, 0.5]]
    >>> midi = performance_to_midi(touches, scale="chromatic", low_note=60, high_note=72)
    >>> [(m.note, m.velocity) for m in midi.tracks[0] if m.type == "note_on"]
    [(60, 127), (66, 84), (72, 40)]
    """
    touches = _common.touch_array(touches)
    _check_int(low_note, "low_note", 0, 127)
    _check_int(high_note, "high_note", low_note, 127)
    notes = _scale_notes(scale, low_note, high_note)
    quietest, loudest = _velocity_bounds(velocity_range)
    _check_int(bend_range, "bend_range", 1, 24)
    if cc is not None:
        _check_int(cc, "cc", 0, 127)
    if not np.isfinite(min_duration) or min_duration < 0:
        raise ValueError(
            "Received an invalid value for `min_duration`, expected a non-negative number "
            f"of seconds. Received: min_duration={min_duration!r}"
        )
    _check_int(channel, "channel", 0, 15)
    _common.check_threshold(tap_threshold)
    midi, ticks_per_second = _new_file(tempo_bpm, ticks_per_beat)

    positions = np.clip(touches[:, :2], 0.0, 1.0)  # [N, 2]
    times = _common.onset_times(touches[:, 2])  # [N]
    spans = _common.touch_spans(touches[:, 2], tap_threshold)
    events = []  # (tick, message) in playing order
    if bend and spans:
        events += [(0, message) for message in _bend_range_messages(bend_range, channel)]
    current_bend = 0
    for index, span in enumerate(spans):
        x, y = positions[span].T  # [n], [n]
        start, end = times[span.start], times[span.stop - 1]
        stop = max(end, start + min_duration)
        if index + 1 < len(spans):
            stop = min(stop, times[spans[index + 1].start])
        start_tick = _to_tick(start, ticks_per_second)
        note = notes[min(int(x[0] * len(notes)), len(notes) - 1)]
        velocity = round(loudest + y[0] * (quietest - loudest))
        if bend and current_bend != 0:
            current_bend = 0
            events.append((start_tick, _message("pitchwheel", channel, pitch=0)))
        events.append((start_tick, _message("note_on", channel, note=note, velocity=velocity)))
        last_control = None
        for row in range(len(x)):
            tick = _to_tick(times[span.start + row], ticks_per_second)
            if bend:
                semitones = (x[row] - x[0]) * (high_note - low_note)
                pitch = round(semitones / bend_range * (_PITCH_BEND_MAX + 1))
                pitch = int(np.clip(pitch, -_PITCH_BEND_MAX - 1, _PITCH_BEND_MAX))
                if pitch != current_bend:
                    current_bend = pitch
                    events.append((tick, _message("pitchwheel", channel, pitch=pitch)))
            if cc is not None:
                value = round((1.0 - y[row]) * 127)
                if value != last_control:
                    last_control = value
                    events.append(
                        (tick, _message("control_change", channel, control=cc, value=value))
                    )
        stop_tick = max(_to_tick(stop, ticks_per_second), start_tick + 1)
        events.append((stop_tick, _message("note_off", channel, note=note, velocity=0)))
    _fill_track(midi, events, "touches")
    _save(midi, path)
    return midi


def sequence_to_midi(
    rows,
    path=None,
    *,
    controls=None,
    channel=0,
    tempo_bpm=120.0,
    ticks_per_beat=480,
):
    """Turns a generic dt-first sequence (IMPSY style) into a stream of MIDI controllers.

    Each value column drives one controller: `x_i` in [0, 1] becomes the 7-bit value
    `round(x_i * 127)` of controller `controls[i]` at the row's time. The first row sends
    every controller; later rows send only the values that changed.

    Args:
        rows: array-like of shape `(timesteps, 1 + dimensions)`, columns
            `(dt, x_1, ..., x_n)`. Values outside [0, 1] are clamped. An empty sequence
            gives a file with no controller messages.
        path: optional `.mid` file path, written atomically. Defaults to `None`.
        controls: sequence of `dimensions` distinct controller numbers 0-127, or `None` for
            the first `dimensions` of `DEFAULT_CONTROLS` (20-31, then 102-119, the
            controllers MIDI leaves undefined). Defaults to `None`.
        channel: MIDI channel, 0-15. Defaults to `0`.
        tempo_bpm: tempo in beats per minute. Defaults to `120.0`.
        ticks_per_beat: resolution, 1-32767. Defaults to `480`.

    Returns:
        A `mido.MidiFile` of type 0.

    Raises:
        ValueError: for a bad shape, NaN or infinite values, `controls` of the wrong length,
            duplicated or out of range, or a setting out of range.

    Example:

    >>> midi = sequence_to_midi([[0.0, 0.0, 1.0], [0.5, 0.5, 1.0]], controls=[1, 11])
    >>> [(m.control, m.value) for m in midi.tracks[0] if m.type == "control_change"]
    [(1, 0), (11, 127), (1, 64)]
    """
    rows = _common.finite_array(rows, "rows")
    if rows.ndim != 2 or rows.shape[1] < 2:
        raise ValueError(
            "Received an invalid value for `rows`, expected an array of shape "
            "(timesteps, 1 + dimensions) with columns (dt, x_1, ..., x_n) and at least one "
            f"value column. Received: rows.shape={rows.shape}"
        )
    dimensions = rows.shape[1] - 1
    if controls is None:
        if dimensions > len(DEFAULT_CONTROLS):
            raise ValueError(
                f"Received {dimensions} value columns in `rows`, more than the "
                f"{len(DEFAULT_CONTROLS)} default controllers; pass `controls` explicitly."
            )
        controls = DEFAULT_CONTROLS[:dimensions]
    controls = list(controls)
    if len(controls) != dimensions or len(set(controls)) != dimensions:
        raise ValueError(
            f"Received an invalid value for `controls`, expected {dimensions} distinct "
            f"controller numbers, one per value column of `rows`. Received: controls={controls}"
        )
    for control in controls:
        _check_int(control, "controls", 0, 127)
    _check_int(channel, "channel", 0, 15)
    midi, ticks_per_second = _new_file(tempo_bpm, ticks_per_beat)

    times = _common.onset_times(rows[:, 0])  # [N]
    values = np.rint(np.clip(rows[:, 1:], 0.0, 1.0) * 127).astype(int)  # [N, D]
    events = []
    last_values = np.full(dimensions, -1)  # [D], -1: nothing sent yet
    for time, row_values in zip(times, values):
        tick = _to_tick(time, ticks_per_second)
        for control, value, last in zip(controls, row_values, last_values):
            if value != last:
                events.append(
                    (tick, _message("control_change", channel, control=control, value=value))
                )
        last_values = row_values
    _fill_track(midi, events, "rows[:, 0]")
    _save(midi, path)
    return midi


def _check_int(value, name, low, high):
    """Raises `ValueError` unless `value` is an integer in [low, high]."""
    try:
        integer = operator.index(value)
    except TypeError:
        integer = None
    if integer is None or isinstance(value, bool) or not low <= integer <= high:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected an integer from {low} to "
            f"{high}. Received: {name}={value!r}"
        )


def _scale_notes(scale, low_note, high_note):
    """MIDI notes of `scale` (a name or semitone steps) from `low_note` to `high_note`."""
    if isinstance(scale, str):
        if scale not in SCALES:
            raise ValueError(
                f"Received an invalid value for `scale`, expected one of {sorted(SCALES)} or "
                f"a sequence of semitone steps 0-11. Received: scale={scale!r}"
            )
        steps = SCALES[scale]
    else:
        steps = list(scale)
        for step in steps:
            _check_int(step, "scale", 0, 11)
    notes = [note for note in range(low_note, high_note + 1) if (note - low_note) % 12 in steps]
    if not notes:
        raise ValueError(
            f"Received a `scale` with no note from low_note={low_note} to "
            f"high_note={high_note}. Received: scale={scale!r}"
        )
    return notes


def _velocity_bounds(velocity_range):
    """Checks `velocity_range` and returns it as `(quietest, loudest)`."""
    try:
        quietest, loudest = velocity_range
    except (TypeError, ValueError):
        quietest = loudest = None
    if quietest is None:
        raise ValueError(
            "Received an invalid value for `velocity_range`, expected a (quietest, loudest) "
            f"pair. Received: velocity_range={velocity_range!r}"
        )
    _check_int(quietest, "velocity_range", 1, 127)
    _check_int(loudest, "velocity_range", quietest, 127)
    return quietest, loudest


def _new_file(tempo_bpm, ticks_per_beat):
    """A type 0 `MidiFile` with its `set_tempo` message, and its ticks per second."""
    _check_int(ticks_per_beat, "ticks_per_beat", 1, 32767)
    valid = np.isfinite(tempo_bpm) and tempo_bpm > 0
    if not valid or not 1 <= mido.bpm2tempo(tempo_bpm) <= 0xFFFFFF:
        raise ValueError(
            "Received an invalid value for `tempo_bpm`, expected a number of beats per "
            f"minute from 3.6 to 60,000,000. Received: tempo_bpm={tempo_bpm!r}"
        )
    tempo = mido.bpm2tempo(tempo_bpm)  # microseconds per beat
    midi = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo, time=0)]))
    return midi, ticks_per_beat * 1e6 / tempo


def _to_tick(seconds, ticks_per_second):
    """Absolute time in seconds to an absolute tick."""
    return round(seconds * ticks_per_second)


def _message(kind, channel, **values):
    """A channel message with plain Python integers (mido rejects NumPy integers)."""
    plain = {key: int(value) for key, value in values.items()}
    return mido.Message(kind, channel=channel, **plain)


def _bend_range_messages(semitones, channel):
    """RPN 0 (pitch bend sensitivity) set to `semitones`, then the null RPN."""
    return [
        _message("control_change", channel, control=control, value=value)
        for control, value in (
            (101, 0), (100, 0), (6, semitones), (38, 0), (101, 127), (100, 127)
        )
    ]


def _fill_track(midi, events, time_name):
    """Appends `(absolute tick, message)` events in order, then the end of the track.

    Ticks are made non-decreasing before taking differences, so the playing order of the
    events is kept even where rounding would swap them.
    """
    track = midi.tracks[0]
    previous = 0
    for tick, message in events:
        tick = max(tick, previous)
        if tick - previous > _MAX_DELTA_TICKS:
            raise ValueError(
                f"Received a gap of {(tick - previous):,} ticks in `{time_name}`, more than "
                f"a MIDI file can hold ({_MAX_DELTA_TICKS:,}); shorten long pauses first."
            )
        track.append(message.copy(time=tick - previous))
        previous = tick
    track.append(mido.MetaMessage("end_of_track", time=0))


def _save(midi, path):
    """Writes `midi` to `path` atomically when a path is given."""
    if path is None:
        return
    buffer = io.BytesIO()
    midi.save(file=buffer)
    atomic.write_atomically(path, buffer.getvalue())
