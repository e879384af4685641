"""Tests for mdnrnn.export.midi: touch performances and generic sequences as MIDI files."""

import os
from pathlib import Path

import mido
import numpy as np
import pytest

from data_prep.common import load_npz
from mdnrnn.export import performance_to_midi, sequence_to_midi
from mdnrnn.export.midi import SCALES

DATA = Path(__file__).resolve().parent / "data"  # test-only files

# A tap, a three-point swipe to the right, and a tap: dt > 0.1 s starts a touch.
TOUCHES = np.array(
    [
        [0.00, 0.00, 0.25],
        [0.50, 0.50, 0.40],
        [0.55, 0.50, 0.03],
        [0.60, 0.40, 0.03],
        [1.00, 1.00, 0.75],
    ]
)


def read_back(midi, tmp_path):
    """Saves `midi`, reads the file with mido, returns (file, [(absolute tick, message)])."""
    target = tmp_path / "out.mid"
    midi.save(target)
    reread = mido.MidiFile(target)
    events, tick = [], 0
    for message in mido.merge_tracks(reread.tracks):
        tick += message.time
        events.append((tick, message))
    return reread, events


def notes(events):
    """(onset tick, note, velocity, offset tick) per note, pairing note_on with note_off."""
    playing, found = {}, []
    for tick, message in events:
        if message.type == "note_on" and message.velocity > 0:
            assert message.note not in playing, "overlapping notes of the same pitch"
            playing[message.note] = (tick, message.velocity)
        elif message.type in ("note_off", "note_on"):
            onset, velocity = playing.pop(message.note)
            found.append((onset, message.note, velocity, tick))
    assert not playing, f"notes never ended: {playing}"
    return sorted(found)


def seconds_to_ticks(seconds, midi):
    (tempo,) = [m.tempo for m in midi.tracks[0] if m.type == "set_tempo"]
    return np.array([mido.second2tick(s, midi.ticks_per_beat, tempo) for s in seconds])


def load_performance(index):
    return load_npz(DATA / "TinyPerformanceArrays.npz")["arr_0"][index].astype(float)


def test_one_note_per_touch_with_pitch_velocity_and_onsets(tmp_path):
    midi = performance_to_midi(
        TOUCHES, low_note=60, high_note=72, scale="chromatic", tempo_bpm=100, ticks_per_beat=96
    )
    reread, events = read_back(midi, tmp_path)
    assert reread.type == 0 and reread.ticks_per_beat == 96
    found = notes(events)
    assert len(found) == 3
    # 13 chromatic notes across the screen: x = 0 -> 60, 0.5 -> slice 6 -> 66, 1 -> 72.
    assert [note for _, note, _, _ in found] == [60, 66, 72]
    # Velocity from y: top of the screen loudest (127), bottom quietest (40).
    assert [velocity for _, _, velocity, _ in found] == [127, 84, 40]
    onsets = seconds_to_ticks(np.cumsum(TOUCHES[:, 2])[[0, 1, 4]], reread)
    np.testing.assert_allclose([onset for onset, _, _, _ in found], onsets, atol=1)


def test_note_lengths(tmp_path):
    midi = performance_to_midi(TOUCHES, min_duration=0.1, tempo_bpm=120, ticks_per_beat=480)
    _, events = read_back(midi, tmp_path)
    times = np.cumsum(TOUCHES[:, 2])
    # Both taps and the 0.06 s swipe are shorter than min_duration, so all last 0.1 s.
    assert times[3] - times[1] < 0.1
    expected = [(times[0], times[0] + 0.1), (times[1], times[1] + 0.1), (times[4], times[4] + 0.1)]
    found = notes(events)
    for (onset, _, _, offset), (start, stop) in zip(found, expected):
        assert abs(onset - start * 960) <= 1 and abs(offset - stop * 960) <= 1


def test_long_swipe_note_ends_with_the_touch_and_before_the_next(tmp_path):
    swipe = np.array([[0.2, 0.2, 0.0]] + [[0.2 + 0.01 * i, 0.2, 0.05] for i in range(1, 11)])
    touches = np.vstack([swipe, [[0.9, 0.9, 0.2]]])
    _, events = read_back(performance_to_midi(touches, min_duration=0.3), tmp_path)
    (first, second) = notes(events)
    assert abs(first[3] - 0.5 * 960) <= 1  # ten rows of 0.05 s
    assert abs(second[0] - 0.7 * 960) <= 1 and abs(second[3] - 1.0 * 960) <= 1
    # A min_duration longer than the gap is cut at the next touch.
    _, events = read_back(performance_to_midi(touches[[0, -1]], min_duration=5.0), tmp_path)
    (first, second) = notes(events)
    assert abs(first[3] - 0.2 * 960) <= 1 and first[3] <= second[0]


@pytest.mark.parametrize("scale", sorted(SCALES))
def test_pitches_stay_in_range_and_scale(scale, tmp_path):
    x = np.linspace(0, 1, 41)
    touches = np.column_stack([x, np.full_like(x, 0.5), np.full_like(x, 0.2)])
    midi = performance_to_midi(touches, low_note=50, high_note=75, scale=scale)
    _, events = read_back(midi, tmp_path)
    pitches = [note for _, note, _, _ in notes(events)]
    assert len(pitches) == len(x)
    assert min(pitches) == 50 and max(pitches) <= 75
    assert all((pitch - 50) % 12 in SCALES[scale] for pitch in pitches)
    assert pitches == sorted(pitches)  # left to right is low to high
    # Every note of the scale in range is reachable.
    in_scale = [n for n in range(50, 76) if (n - 50) % 12 in SCALES[scale]]
    assert sorted(set(pitches)) == in_scale


def test_custom_scale_steps():
    midi = performance_to_midi(
        [[0.0, 0.5, 0.0], [0.7, 0.5, 0.5], [1.0, 0.5, 0.5]],
        low_note=60,
        high_note=84,
        scale=[0, 7],
    )
    # Five notes across the screen: 60, 67, 72, 79, 84.
    pitches = [m.note for m in midi.tracks[0] if m.type == "note_on"]
    assert pitches == [60, 79, 84]


def test_out_of_range_values_are_clamped(tmp_path):
    touches = [[-0.5, -2.0, 0.0], [1.7, 3.0, 0.5], [0.5, 0.5, -0.2], [0.5, 0.5, 0.4]]
    midi = performance_to_midi(
        touches, low_note=40, high_note=52, scale="chromatic", velocity_range=(10, 100)
    )
    _, events = read_back(midi, tmp_path)
    found = notes(events)
    assert [(note, velocity) for _, note, velocity, _ in found] == [
        (40, 100),
        (52, 10),
        (46, 55),
    ]
    # The negative dt counts as zero: the third touch starts with the second, then 0.4 s.
    onsets = [onset for onset, _, _, _ in found]
    np.testing.assert_allclose(onsets, np.array([0.0, 0.5, 0.9]) * 960, atol=1)


def test_swipe_movement_becomes_pitch_bend(tmp_path):
    swipe = [[0.5, 0.5, 0.0], [0.51, 0.5, 0.02], [0.9, 0.5, 0.02], [0.1, 0.5, 0.02]]
    tap = [[0.5, 0.5, 0.5]]
    midi = performance_to_midi(swipe + tap, low_note=48, high_note=72, bend_range=2)
    _, events = read_back(midi, tmp_path)
    controls = [(m.control, m.value) for _, m in events if m.type == "control_change"]
    assert controls == [(101, 0), (100, 0), (6, 2), (38, 0), (101, 127), (100, 127)]
    bends = [m.pitch for _, m in events if m.type == "pitchwheel"]
    # x travel times the 24-semitone span over 2 semitones of full bend: 0.01 of the screen
    # is 0.24 semitones; 0.4 either way saturates; the last value resets before the tap.
    assert bends == [round(0.24 / 2 * 8192), 8191, -8192, 0]
    # The reset to centre comes before the tap's note.
    kinds = [m.type for _, m in events if m.type in ("pitchwheel", "note_on")]
    assert kinds[-2:] == ["pitchwheel", "note_on"]
    assert all(-8192 <= pitch <= 8191 for pitch in bends)


def test_bend_off_and_cc_stream(tmp_path):
    swipe = [[0.5, 1.0, 0.0], [0.55, 0.5, 0.02], [0.6, 0.5, 0.02], [0.6, 0.0, 0.02]]
    midi = performance_to_midi(swipe, bend=False, cc=11, channel=3)
    _, events = read_back(midi, tmp_path)
    assert not [m for _, m in events if m.type == "pitchwheel"]
    stream = [(t, m.value) for t, m in events if m.type == "control_change"]
    assert [value for _, value in stream] == [0, 64, 127]  # sent only when it changes
    np.testing.assert_allclose([t for t, _ in stream], [0, 0.02 * 960, 0.06 * 960], atol=1)
    assert {m.channel for _, m in events if not m.is_meta} == {3}


def test_empty_performance_gives_file_without_notes(tmp_path):
    reread, events = read_back(performance_to_midi(np.zeros((0, 3))), tmp_path)
    assert not [m for _, m in events if not m.is_meta]
    assert [m.type for _, m in events] == ["set_tempo", "end_of_track"]


def test_real_performance(tmp_path):
    touches = load_performance(5)
    midi = performance_to_midi(touches, low_note=36, high_note=96, scale="major")
    reread, events = read_back(midi, tmp_path)
    starts = np.union1d([0], np.flatnonzero(touches[:, 2] > 0.1))
    found = notes(events)
    assert len(found) == len(starts)
    assert all(36 <= note <= 96 for _, note, _, _ in found)
    assert all(40 <= velocity <= 127 for _, _, velocity, _ in found)
    onsets = seconds_to_ticks(np.cumsum(np.maximum(touches[:, 2], 0))[starts], reread)
    np.testing.assert_allclose([onset for onset, _, _, _ in found], onsets, atol=1)


def test_uncleaned_corpus_exports_without_error():
    performances = load_npz(DATA / "TinyPerformanceArrays.npz")["arr_0"]
    lows = [p[:, :2].min() for p in performances]
    highs = [p[:, :2].max() for p in performances]
    index = int(np.argmin(lows))  # a performance that leaves the screen
    assert lows[index] < 0
    for touches in (performances[index], performances[int(np.argmax(highs))]):
        midi = performance_to_midi(touches, cc=1)
        values = [m.note for m in midi.tracks[0] if m.type == "note_on"]
        assert values and all(48 <= v <= 84 for v in values)


def test_sequence_to_midi_controls_and_times(tmp_path):
    rows = np.array(
        [
            [0.00, 0.0, 0.5, 1.0],
            [0.10, 0.0, 0.25, 1.0],
            [0.35, 1.5, -1.0, 0.5],  # out of range: clamped to 127 and 0
        ]
    )
    midi = sequence_to_midi(rows, controls=[1, 7, 74], tempo_bpm=90, ticks_per_beat=192)
    reread, events = read_back(midi, tmp_path)
    found = [(t, m.control, m.value) for t, m in events if m.type == "control_change"]
    times = seconds_to_ticks(np.cumsum(rows[:, 0]), reread)
    expected = [
        (times[0], 1, 0),
        (times[0], 7, 64),
        (times[0], 74, 127),
        (times[1], 7, 32),
        (times[2], 1, 127),
        (times[2], 7, 0),
        (times[2], 74, 64),
    ]
    assert [(c, v) for _, c, v in found] == [(c, v) for _, c, v in expected]
    np.testing.assert_allclose([t for t, _, _ in found], [t for t, _, _ in expected], atol=1)


def test_sequence_to_midi_default_controls():
    rows = np.column_stack([np.full(4, 0.1), np.random.default_rng(0).random((4, 14))])
    midi = sequence_to_midi(rows)
    controls = {m.control for m in midi.tracks[0] if m.type == "control_change"}
    assert controls == set(range(20, 32)) | {102, 103}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"touches": np.zeros((3, 2))}, r"`touches`.*\(timesteps, 3\).*shape=\(3, 2\)"),
        ({"touches": [[0.5, np.nan, 0.1]]}, r"non-finite.*`touches` at rows \[0\]"),
        ({"touches": [[0.5, 0.5, 0], [0.5, 0.5, np.inf]]}, r"non-finite.*`touches` at rows \[1\]"),
        ({"low_note": 70, "high_note": 60}, r"`high_note`.*from 70 to 127.*high_note=60"),
        ({"low_note": -1}, r"`low_note`.*low_note=-1"),
        ({"high_note": 128}, r"`high_note`.*high_note=128"),
        ({"scale": "lydian"}, r"`scale`.*'chromatic'.*scale='lydian'"),
        ({"scale": [0, 12]}, r"`scale`.*from 0 to 11"),
        ({"scale": [5], "low_note": 60, "high_note": 62}, r"no note from low_note=60"),
        ({"velocity_range": (100, 50)}, r"`velocity_range`.*from 100 to 127"),
        ({"velocity_range": 64}, r"`velocity_range`.*pair"),
        ({"channel": 16}, r"`channel`.*channel=16"),
        ({"cc": 128}, r"`cc`.*cc=128"),
        ({"bend_range": 0}, r"`bend_range`"),
        ({"tempo_bpm": 0}, r"`tempo_bpm`.*tempo_bpm=0"),
        ({"tempo_bpm": np.nan}, r"`tempo_bpm`"),
        ({"ticks_per_beat": 0}, r"`ticks_per_beat`.*ticks_per_beat=0"),
        ({"min_duration": -1}, r"`min_duration`"),
        ({"tap_threshold": -0.1}, r"`tap_threshold`"),
    ],
)
def test_performance_to_midi_rejects_bad_input(kwargs, message):
    kwargs = {"touches": TOUCHES} | kwargs
    with pytest.raises(ValueError, match=message):
        performance_to_midi(**kwargs)


@pytest.mark.parametrize(
    "rows, controls, message",
    [
        (np.zeros((3, 1)), None, r"`rows`.*shape=\(3, 1\)"),
        ([[0.1, np.nan]], None, r"non-finite.*`rows` at rows \[0\]"),
        (np.zeros((2, 3)), [1], r"`controls`.*2 distinct"),
        (np.zeros((2, 3)), [1, 1], r"`controls`.*2 distinct"),
        (np.zeros((2, 3)), [1, 200], r"`controls`.*from 0 to 127"),
        (np.zeros((2, 32)), None, r"31 value columns.*pass `controls`"),
    ],
)
def test_sequence_to_midi_rejects_bad_input(rows, controls, message):
    with pytest.raises(ValueError, match=message):
        sequence_to_midi(rows, controls=controls)


def test_too_long_pause_raises():
    with pytest.raises(ValueError, match="gap of .* ticks in `touches`"):
        performance_to_midi([[0.5, 0.5, 0.0], [0.5, 0.5, 1e6]])


def test_writes_file_atomically(tmp_path):
    target = tmp_path / "performance.mid"
    midi = performance_to_midi(TOUCHES, target)
    original = target.read_bytes()
    assert len(mido.MidiFile(target).tracks[0]) == len(midi.tracks[0])
    # A failing export leaves the existing file as it was and no temporary file behind.
    with pytest.raises(ValueError):
        performance_to_midi([[np.nan, 0, 0]], target)
    with pytest.raises(ValueError):
        sequence_to_midi(np.zeros((2, 3)), target, controls=[1])
    assert target.read_bytes() == original
    assert os.listdir(tmp_path) == ["performance.mid"]
    sequence_to_midi([[0.0, 0.5]], str(target))
    assert [m.type for m in mido.MidiFile(target).tracks[0]] == [
        "set_tempo",
        "control_change",
        "end_of_track",
    ]
    assert os.listdir(tmp_path) == ["performance.mid"]
