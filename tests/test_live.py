"""`mdnrnn play` (`mdnrnn.live`): OSC end to end over loopback UDP, MIDI conversion and
loopback ports, bad input, Ctrl-C. Every loop runs for a bounded time and stops by itself."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import mido
import numpy as np
import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from mdnrnn import build_model, lite, live, preset
from mdnrnn.export import performance_to_midi, sequence_to_midi

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def touch_model(tmp_path_factory):
    """A small touch model with random weights, as a LiteRT file."""
    config = preset("touch", units=32, layers=2, components=3, mean=(0.5, 0.5, 0.06), std=(0.25, 0.3, 0.03))
    model = build_model(config)
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.4, weight.shape).astype("float32"))
    path = tmp_path_factory.mktemp("live") / "touch.tflite"
    lite.export_litert(model, path)
    return path


class Receiver:
    """Collects OSC datagrams sent to a UDP socket on 127.0.0.1, with arrival times."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind((HOST, 0))
        self.socket.settimeout(0.005)
        self.address = self.socket.getsockname()
        self.messages = []  # (time.monotonic(), OscMessage)

    def collect_until(self, deadline):
        while time.monotonic() < deadline:
            try:
                datagram = self.socket.recv(65536)
            except socket.timeout:
                continue
            self.messages.append((time.monotonic(), OscMessage(datagram)))

    def times(self):
        return np.array([t for t, _ in self.messages])


def osc(address, *values):
    builder = OscMessageBuilder(address)
    for value in values:
        builder.add_arg(value)
    return builder.build().dgram


def start_loop(path, receiver, duration, **settings):
    loop = live.LiveLoop(lite.LiteGenerator(path, seed=0), live.LiveSettings(**settings),
                         osc_in=(HOST, 0), osc_out=receiver.address, warn=lambda text: None)
    thread = threading.Thread(target=loop.run, kwargs={"duration": duration}, daemon=True)
    thread.start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return loop, thread, lambda datagram: sender.sendto(datagram, loop.osc_in_address)


def perform(send, n=8, gap=0.05):
    """A scripted performer: `n` touches `gap` seconds apart; returns (first, last) send times."""
    times = []
    for i in range(n):
        times.append(time.monotonic())
        send(osc("/interface", 0.05 + 0.08 * i, 0.4))
        time.sleep(gap)
    return times[0], times[-1]


def test_osc_callresponse_answers_after_silence_for_as_long(touch_model):
    receiver = Receiver()
    loop, thread, send = start_loop(touch_model, receiver, 3.0, mode="callresponse", silence=0.25)
    first, last = perform(send)
    receiver.collect_until(last + 0.25 + 0.35 + 0.5)
    loop.stop()
    thread.join(5)
    assert not thread.is_alive()
    times = receiver.times()
    assert len(times) >= 2, loop.summary()
    assert times[0] >= last + 0.25 - 0.01  # only after the silence
    phrase = last - first  # 0.35 s
    answer_end = times[-1] - (last + 0.25)  # from the moment of silence to the last answer
    assert phrase - 0.2 <= answer_end <= phrase + 0.25, (phrase, times - last)  # + receiver lag
    assert all(m.address == "/prediction" and len(m.params) == 2 for _, m in receiver.messages)
    xy = np.array([m.params for _, m in receiver.messages])
    assert ((xy >= 0) & (xy <= 1)).all()
    assert loop.received == 8 and not loop.dropped


def test_osc_polyphony_answers_while_performer_plays(touch_model):
    receiver = Receiver()
    loop, thread, send = start_loop(touch_model, receiver, 3.0, mode="polyphony")
    collector = threading.Thread(target=receiver.collect_until, args=(time.monotonic() + 1.5,))
    collector.start()
    first, last = perform(send, n=12)
    collector.join()
    loop.stop()
    thread.join(5)
    times = receiver.times()
    assert np.sum(times < last) >= 3, (times - first, loop.summary())  # alongside the person
    assert loop.received == 12


def test_osc_useronly_passes_through(touch_model):
    receiver = Receiver()
    loop, thread, send = start_loop(touch_model, receiver, 2.0, mode="useronly")
    perform(send, n=5, gap=0.02)
    receiver.collect_until(time.monotonic() + 0.3)
    loop.stop()
    thread.join(5)
    sent = [[0.05 + 0.08 * i, 0.4] for i in range(5)]
    np.testing.assert_allclose([m.params for _, m in receiver.messages], sent, atol=1e-6)


def test_osc_drawing_model_answers_row_for_row(tmp_path):
    """Drawings have no dt: rows are paced `stroke_interval` apart, as many as were drawn."""
    model = build_model(preset("kanji", units=16, layers=1, components=2))
    lite.export_litert(model, tmp_path / "kanji.tflite")
    receiver = Receiver()
    log = io.StringIO()
    loop = live.LiveLoop(lite.LiteGenerator(tmp_path / "kanji.tflite", seed=0),
                         live.LiveSettings(mode="callresponse", silence=0.2, stroke_interval=0.02),
                         osc_in=(HOST, 0), osc_out=receiver.address, log=log)
    thread = threading.Thread(target=loop.run, kwargs={"duration": 2.0}, daemon=True)
    thread.start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    send = lambda datagram: sender.sendto(datagram, loop.osc_in_address)  # noqa: E731
    for row in ([3.0, 1.0, 0.0], [2.0, -4.0, 0.0], [0.5, 0.5, 1.0], [-6.0, 2.0, 0.0], [1.0, 1.0, 1.0]):
        send(osc("/interface", *row))
    receiver.collect_until(time.monotonic() + 0.2 + 0.1 + 0.4)
    loop.stop()
    thread.join(5)
    assert len(receiver.messages) == 5, loop.summary()
    scheduled = [float(line.split(",")[1]) for line in log.getvalue().splitlines() if line.startswith("out")]
    np.testing.assert_allclose(np.diff(scheduled), 0.02, atol=1e-6)
    assert all(len(m.params) == 3 and m.params[2] in (0.0, 1.0) for _, m in receiver.messages)


def test_bad_osc_input_is_dropped_and_counted(touch_model):
    receiver = Receiver()
    warnings = []
    loop = live.LiveLoop(lite.LiteGenerator(touch_model, seed=0),
                         live.LiveSettings(mode="callresponse", silence=0.2, max_rate=200),
                         osc_in=(HOST, 0), osc_out=receiver.address, warn=warnings.append)
    thread = threading.Thread(target=loop.run, kwargs={"duration": 4.0}, daemon=True)
    thread.start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    send = lambda datagram: sender.sendto(datagram, loop.osc_in_address)  # noqa: E731
    send(b"\x00garbage that is no OSC packet")
    send(osc("/elsewhere", 0.5, 0.5))
    send(osc("/interface", 0.5))  # one value short
    send(osc("/interface", "a", "b"))
    send(osc("/interface", float("nan"), 0.5))
    send(osc("/interface", 7.0, 0.5))  # x outside [0, 1]
    time.sleep(0.3)
    for _ in range(600):  # a flood: far over max_rate
        send(osc("/interface", 0.5, 0.5))
    time.sleep(0.6)
    received_in_flood = loop.received
    first, last = perform(send, n=4)  # the loop still answers
    receiver.collect_until(last + 0.2 + 0.5)
    loop.stop()
    thread.join(5)
    dropped = loop.dropped
    assert dropped["malformed OSC packet"] == 1
    assert dropped["OSC message to another address"] == 1
    assert dropped["OSC message with bad arguments"] == 2
    assert dropped["OSC value not finite"] == 1
    assert dropped["OSC value out of range"] == 1
    # Of 600 flood messages (some may already overflow the socket's buffer in the kernel),
    # the loop took in no more than max_rate allows and dropped the rest.
    assert dropped["flood (over max_rate events/s)"] >= 100
    assert received_in_flood < 150
    assert any(t > last for t in receiver.times())
    assert any("flood" in w for w in warnings) and len(warnings) < 20  # rate-limited warnings


# ---------------------------------------------------------------------- MIDI
def test_midi_touch_mapping_matches_the_exporter():
    settings = live.LiveSettings()
    codec = live.MidiCodec(["x", "y", "dt"], settings)
    touches = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [1.0, 1.0, 0.5], [0.3, 0.2, 0.4]])
    midi = performance_to_midi(touches, bend=False)
    expected = [(m.note, m.velocity) for m in midi.tracks[0] if m.type == "note_on"]
    played = []
    for i, row in enumerate(touches):
        played += [(m.note, m.velocity) for m in codec.encode(row, float(i)) if m.type == "note_on"]
    assert played == expected
    # Incoming notes map back to rows that play the same notes.
    back = live.MidiCodec(["x", "y", "dt"], settings)
    again = live.MidiCodec(["x", "y", "dt"], settings)
    for note, velocity in expected:
        values = back.decode(mido.Message("note_on", note=note, velocity=velocity))
        row = np.r_[values, 1.0]
        (on,) = [m for m in again.encode(row, 0.0) if m.type == "note_on"]
        assert (on.note, abs(on.velocity - velocity) <= 1) == (note, True)


def test_midi_swipes_bend_and_controller_both_ways():
    settings = live.LiveSettings(bend=True, cc=74)
    touches = np.array([[0.2, 0.5, 0.0], [0.3, 0.25, 0.02], [0.3, 0.0, 0.02]])
    expected = [(m.type, m.dict().get("pitch"), m.dict().get("value"))
                for m in performance_to_midi(touches, bend=True, cc=74).tracks[0]
                if m.type in ("pitchwheel", "control_change") and m.dict().get("control") in (None, 74)]
    codec = live.MidiCodec(["x", "y", "dt"], settings)
    played = [(m.type, m.dict().get("pitch"), m.dict().get("value"))
              for i, row in enumerate(touches) for m in codec.encode(row, 0.02 * i)
              if m.type in ("pitchwheel", "control_change")]
    assert played == expected
    back = live.MidiCodec(["x", "y", "dt"], settings)
    x0, _ = back.decode(mido.Message("note_on", note=60, velocity=127))
    x, y = back.decode(mido.Message("pitchwheel", pitch=4096))  # +6 semitones of 36
    assert x == pytest.approx(x0 + 6 / 36) and y == 0.0
    assert back.decode(mido.Message("control_change", control=74, value=0))[1] == pytest.approx(1.0)


def test_midi_impsy_mapping_matches_the_exporter():
    codec = live.MidiCodec(["dt", "x_1", "x_2"], live.LiveSettings(controls=[1, 11]))
    rows = np.array([[0.0, 0.0, 1.0], [0.5, 0.5, 1.0]])
    expected = [(m.control, m.value) for m in sequence_to_midi(rows, controls=[1, 11]).tracks[0]
                if m.type == "control_change"]
    played = [(m.control, m.value) for row in rows for m in codec.encode(row, 0.0)]
    assert played == expected
    assert codec.decode(mido.Message("control_change", control=11, value=127)).tolist() == [0.0, 1.0]
    assert codec.decode(mido.Message("control_change", control=5, value=3)) is None  # unmapped
    with pytest.raises(ValueError, match="OSC only"):
        live.MidiCodec(["dx", "dy", "pen_lift"], live.LiveSettings())


def test_midi_loopback_callresponse_and_bad_messages(touch_model):
    """MIDI through `LoopbackMidi` (this machine has no ALSA sequencer for virtual ports):
    the bytes go through the same decoding as a real port's messages."""
    midi_in, midi_out = live.LoopbackMidi(), live.LoopbackMidi()
    loop = live.LiveLoop(lite.LiteGenerator(touch_model, seed=0),
                         live.LiveSettings(mode="callresponse", silence=0.2),
                         midi_in=midi_in, midi_out=midi_out, warn=lambda text: None)
    thread = threading.Thread(target=loop.run, kwargs={"duration": 3.0}, daemon=True)
    thread.start()
    midi_in.push([0x90, 200, 100])  # a data byte above 127
    midi_in.push(mido.Message("note_on", note=20, velocity=90).bytes())  # below low_note 48
    midi_in.push([0x90])  # truncated
    for note in (60, 64, 67, 72):
        midi_in.push(mido.Message("note_on", note=note, velocity=100).bytes())
        time.sleep(0.06)
        midi_in.push(mido.Message("note_off", note=note).bytes())
    last = time.monotonic()
    time.sleep(0.2 + 0.18 + 0.4)
    loop.stop()
    thread.join(5)
    assert loop.received == 4
    assert loop.dropped["malformed MIDI message"] == 2
    assert loop.dropped["MIDI note out of range"] == 1
    answer = [(t, m) for t, m in midi_out.sent if t > last]
    ons = [m.note for _, m in answer if m.type == "note_on"]
    offs = [m.note for _, m in answer if m.type == "note_off"]
    assert ons and sorted(ons) == sorted(offs)  # every answered note ends
    assert all(48 <= note <= 84 for note in ons)


def test_midi_virtual_ports_where_alsa_exists(touch_model):
    try:
        live.list_ports()
        port = live.open_midi_port("virtual:mdnrnn-test-out", output=True)
    except OSError as error:
        pytest.skip(f"no ALSA sequencer here, MIDI ran through LoopbackMidi instead: {error}")
    reader = mido.open_input("mdnrnn-test-out")
    loop = live.LiveLoop(lite.LiteGenerator(touch_model, seed=0), live.LiveSettings(mode="battle"),
                         midi_out=port, warn=lambda text: None)
    loop.run(duration=0.5)
    port.close()
    messages = list(reader.iter_pending())
    reader.close()
    assert any(m.type == "note_on" for m in messages)


def test_ctrl_c_stops_cleanly_and_sends_note_offs(touch_model):
    midi_in, midi_out = live.LoopbackMidi(), live.LoopbackMidi()
    settings = live.LiveSettings(mode="useronly", tap_threshold=30.0, min_duration=30.0)
    loop = live.LiveLoop(lite.LiteGenerator(touch_model, seed=0), settings,
                         midi_in=midi_in, midi_out=midi_out, warn=lambda text: None)
    midi_in.push(mido.Message("note_on", note=60, velocity=100).bytes())

    def interrupt(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run(duration=5.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    kinds = [m.type for _, m in midi_out.sent]
    assert kinds == ["note_on", "note_off"]  # the held note ended on the way out


def test_bend_range_is_set_first(touch_model):
    midi_out = live.LoopbackMidi()
    loop = live.LiveLoop(lite.LiteGenerator(touch_model, seed=0), live.LiveSettings(mode="battle", bend=True, bend_range=7),
                         midi_out=midi_out, warn=lambda text: None)
    loop.run(duration=0.2)
    first = [(m.control, m.value) for _, m in midi_out.sent[:6]]
    assert first == [(101, 0), (100, 0), (6, 7), (38, 0), (101, 127), (100, 127)]  # RPN 0, as in files


def test_battle_with_a_keras_model_over_midi(tmp_path):
    """`load_generator` gives a `Generator` for a .keras file; battle plays from the start."""
    model = build_model(preset("touch", units=16, layers=1, components=2, mean=(0.5, 0.5, 0.05), std=(0.2, 0.2, 0.02)))
    model.save(tmp_path / "touch.keras")
    generator = live.load_generator(tmp_path / "touch.keras", seed=0)
    assert type(generator).__name__ == "Generator"
    midi_out = live.LoopbackMidi()
    loop = live.LiveLoop(generator, live.LiveSettings(mode="battle"), midi_out=midi_out, warn=lambda text: None)
    loop.run(duration=0.6)
    kinds = [m.type for _, m in midi_out.sent]
    assert kinds.count("note_on") >= 1 and kinds.count("note_on") == kinds.count("note_off")


def test_realtime_priority_is_given_back(touch_model):
    warnings = []
    loop = live.LiveLoop(lite.LiteGenerator(touch_model, seed=0),
                         live.LiveSettings(mode="battle", realtime=True),
                         midi_out=live.LoopbackMidi(), warn=warnings.append)
    before = os.sched_getscheduler(0)
    loop.run(duration=0.3)
    assert os.sched_getscheduler(0) == before  # whether or not it was allowed (warnings)
    assert loop.sent > 0
    assert (loop.priority == "real-time") == (not warnings)
    never = live.LiveLoop(lite.LiteGenerator(touch_model, seed=0), live.LiveSettings(mode="battle", realtime=False),
                          midi_out=live.LoopbackMidi())
    never.run(duration=0.1)
    assert never.priority == "normal" and "(normal priority)" in never.summary()


# ------------------------------------------------------------ settings, CLI
def test_settings_files(tmp_path):
    toml = tmp_path / "mapping.toml"
    toml.write_text('[play]\nmode = "polyphony"\nsilence = 2.0\n[midi]\nscale = "major"\ncc = 74\n'
                    '[osc]\nin_address = "/touch"\n')
    settings = live.load_settings(toml, silence=0.5)
    assert (settings.mode, settings.silence, settings.scale, settings.cc, settings.in_address) == (
        "polyphony", 0.5, "major", 74, "/touch")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"midi": {"colour": 3}}))
    with pytest.raises(ValueError, match="Unknown setting"):
        live.load_settings(bad)
    with pytest.raises(ValueError, match="mode"):
        live.load_settings(None, mode="solo")


@pytest.mark.parametrize("stop_signal, sigint_ignored", [(signal.SIGINT, False), (signal.SIGTERM, False),
                                                         (signal.SIGINT, True)],
                         ids=["SIGINT", "SIGTERM", "SIGINT-inherited-ignored"])
def test_cli_play_over_osc_without_tensorflow(touch_model, tmp_path, stop_signal, sigint_ignored):
    """`mdnrnn play` with a LiteRT model, TensorFlow unimportable: answers, then stops on
    Ctrl-C (SIGINT) or SIGTERM with its summary, also when started with SIGINT ignored (as
    a non-interactive shell starts a background job, and as CI once ran this test)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()  # a free port, picked now
    receiver = Receiver()
    log = tmp_path / "events.csv"
    script = textwrap.dedent("""
        import sys
        for name in ("tensorflow", "keras", "tensorflow_probability"):
            sys.modules[name] = None
        from mdnrnn.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    command = [sys.executable, "-c", script, "play", "--model", str(touch_model), "--mode", "polyphony",
               "--osc-in", f"{HOST}:{port}", "--osc-out", f"{HOST}:{receiver.address[1]}",
               "--seed", "1", "--log", str(log)]  # no --duration: it plays until Ctrl-C
    ignore_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=ignore_sigint)
    try:
        assert "playing" in process.stdout.readline()
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        perform(lambda datagram: sender.sendto(datagram, (HOST, port)), n=6)
        receiver.collect_until(time.monotonic() + 0.5)
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "received 6" in out and "dropped: none" in out
    assert len(receiver.messages) >= 1
    lines = log.read_text().splitlines()
    assert lines[0] == "direction,scheduled,sent,x,y,dt"
    assert sum(line.startswith("in,") for line in lines) == 6


def test_cli_play_user_errors(touch_model, capsys):
    from mdnrnn import cli

    assert cli.main(["play", "--model", str(touch_model)]) == 1
    assert "needs an output" in capsys.readouterr().err
    assert cli.main(["play", "--model", str(touch_model), "--osc-out", "nohost"]) == 1
    assert "HOST:PORT" in capsys.readouterr().err
    assert cli.main(["play", "--model", "missing.tflite", "--osc-out", f"{HOST}:9"]) == 1
    assert "No such file" in capsys.readouterr().err
    code = cli.main(["play", "--list-ports"])  # no ALSA sequencer here: one error line
    assert code == 0 or "no MIDI system" in capsys.readouterr().err
