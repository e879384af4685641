"""The studio (`mdnrnn serve`): protocol checks, WebSocket sessions, exports, the command,
and the shipped pretrained models.

The server tests run the real ASGI app under uvicorn in a thread, with small random-weight
models, and talk to it with the `websockets` client, as a browser or script would.
"""

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import mido
import numpy as np
import pytest
import uvicorn
from websockets.sync.client import connect

from mdnrnn.studio import protocol
from mdnrnn.studio.protocol import Limits, ProtocolError

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ fixtures
def random_model(config, seed):
    """A model with random, non-zero weights (an untrained model's biases are zeros)."""
    from mdnrnn.models import build_model

    model = build_model(config)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def entries():
    from mdnrnn.models import preset
    from mdnrnn.studio.session import ModelEntry

    drawing = random_model(preset("kanji", units=32, layers=1, components=3, std=(4.0, 4.0)), 0)
    # Pen biases (down, up, end) that make strokes of a few points and rarely end the drawing.
    drawing.head.pen_dense.bias.assign(np.array([1.5, 0.0, -3.0], "float32"))
    touch = random_model(preset("touch", units=32, layers=1, components=3, mean=(0.5, 0.5, 0.05),
                                std=(0.25, 0.25, 0.03)), 1)
    return {"draw": ModelEntry("draw", drawing, description="random drawing model"),
            "touch": ModelEntry("touch", touch, description="random touch model")}


@contextlib.contextmanager
def running(entries, limits=Limits()):
    """Serves the studio on a free port in a thread; yields (base URL, the Studio)."""
    from mdnrnn.studio.app import create_app

    app = create_app(entries, limits)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           ws="websockets-sansio", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", app.state.studio
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.studio.close()


@pytest.fixture(scope="module")
def server(entries):
    with running(entries) as (address, studio):
        yield address, studio


def frames(ws, until=("done", "error"), timeout=20):
    """Frames from `ws` up to and including the first whose type is in `until`."""
    out = []
    while True:
        frame = json.loads(ws.recv(timeout=timeout))
        out.append(frame)
        if frame["type"] in until:
            return out


def open_session(address):
    ws = connect(f"ws://{address}/ws", max_size=None)
    ready = json.loads(ws.recv(timeout=10))
    assert ready["type"] == "ready"
    return ws, ready


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


STROKES = [[[20.0, 20.0], [40.0, 22.0], [60.0, 25.0], [80.0, 24.0]], [[50.0, 10.0], [52.0, 50.0], [50.0, 90.0]]]


# ------------------------------------------------------------------ protocol (no server)
class _Entry:
    def __init__(self, kind, columns):
        self.kind, self.columns = kind, columns


MODELS = {"draw": _Entry("drawing", ["dx", "dy", "pen_lift"]), "touch": _Entry("performance", ["x", "y", "dt"])}


@pytest.mark.parametrize("text, code", [
    ("{", "bad_json"),
    ("[1, 2]", "bad_message"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "generate", "model": "nope"}', "unknown_model"),
    ('{"type": "generate", "model": "draw", "temperature": 0}', "bad_value"),
    ('{"type": "generate", "model": "draw", "temperature": 11}', "bad_value"),
    ('{"type": "set", "sigma_temperature": -1}', "bad_value"),
    ('{"type": "set", "temperature": NaN}', "bad_value"),
    ('{"type": "set", "temperature": true}', "bad_value"),
    ('{"type": "set"}', "bad_message"),
    ('{"type": "generate", "model": "draw", "n": 9}', "bad_value"),
    ('{"type": "generate", "model": "draw", "max_points": 0}', "bad_value"),
    ('{"type": "generate", "model": "draw", "until": "seconds"}', "bad_value"),
    ('{"type": "generate", "model": "touch", "until": "seconds"}', "bad_value"),  # no seconds
    ('{"type": "generate", "model": "touch", "seconds": 1, "prime": {"strokes": []}}', "bad_message"),
    ('{"type": "generate", "model": "touch", "seconds": 1, "prime": {"rows": [[0.1, 0.2]]}}', "bad_value"),
    ('{"type": "generate", "model": "draw", "prime": {"rows": [[1, "a", 0]]}}', "bad_value"),
    ('{"type": "generate", "model": "draw", "prime": {"strokes": [[[1, 2, 3]]]}}', "bad_value"),
    ('{"type": "export", "format": "png"}', "bad_value"),
])
def test_parse_rejects_bad_messages(text, code):
    with pytest.raises(ProtocolError) as caught:
        protocol.parse(text, Limits(), MODELS)
    assert caught.value.code == code
    assert caught.value.frame()["type"] == "error"


def test_parse_limits_sizes_and_points():
    limits = Limits(max_message_bytes=1000, max_prime_points=10)
    with pytest.raises(ProtocolError, match="1,000 bytes") as caught:
        protocol.parse(json.dumps({"type": "ping", "pad": "x" * 1000}), limits, MODELS)
    assert caught.value.code == "too_large"
    rows = [[1.0, 1.0, 0.0]] * 11
    with pytest.raises(ProtocolError, match="11 rows") as caught:
        protocol.parse(json.dumps({"type": "generate", "id": 3, "model": "draw", "prime": {"rows": rows}}),
                       limits, MODELS)
    assert caught.value.code == "too_large" and caught.value.frame()["id"] == 3


def test_parse_accepts_a_generate_request():
    request = protocol.parse(json.dumps({
        "type": "generate", "id": "a", "model": "draw", "n": 2, "until": "end", "temperature": 0.5,
        "prime": {"strokes": STROKES}}), Limits(), MODELS)
    assert request["n"] == 2 and request["until"] == "end" and request["temperature"] == 0.5
    assert [s.shape for s in request["strokes"]] == [(4, 2), (3, 2)]
    touch = protocol.parse(json.dumps({"type": "generate", "model": "touch", "seconds": 2,
                                       "prime": {"rows": [[0.1, 0.2, 0.0]]}}), Limits(), MODELS)
    assert touch["until"] == "seconds" and touch["seconds"] == 2.0 and touch["rows"].dtype == np.float32


# ------------------------------------------------------------------ server
def test_pages_and_model_list(server):
    import urllib.request

    address, _ = server
    listing = json.loads(urllib.request.urlopen(f"http://{address}/api/models").read())
    assert [m["name"] for m in listing["models"]] == ["draw", "touch"]
    assert [m["kind"] for m in listing["models"]] == ["drawing", "performance"]
    for page, marker in (("/", b"mdnrnn studio"), ("/draw", b"draw.js"), ("/play", b"play.js"),
                         ("/static/studio.js", b"StudioSocket")):
        assert marker in urllib.request.urlopen(f"http://{address}{page}").read()


def test_drawing_stream_continues_the_strokes(server):
    address, _ = server
    ws, ready = open_session(address)
    with ws:
        assert {m["name"] for m in ready["models"]} == {"draw", "touch"}
        ws.send(json.dumps({"type": "generate", "id": 1, "model": "draw", "n": 3, "until": "end",
                            "max_points": 40, "seed": 5, "prime": {"strokes": STROKES}}))
        got = frames(ws)
        assert got[0]["type"] == "started" and got[0]["n"] == 3 and got[0]["prefix_points"] >= 4
        points = [f for f in got if f["type"] == "points"]
        done = got[-1]
        assert done["type"] == "done" and done["reason"] in ("end", "max_points")
        assert all(len(f["rows"]) == 3 for f in points)
        counts = [sum(f["rows"][i] is not None for f in points) for i in range(3)]
        assert counts == done["points"] and max(counts) > 0
        assert all(len(row) == 3 for f in points for row in f["rows"] if row is not None)


def test_until_stroke_stops_each_alternative_after_one_stroke(server):
    address, _ = server
    ws, _ = open_session(address)
    with ws:
        ws.send(json.dumps({"type": "generate", "id": 1, "model": "draw", "n": 2, "until": "stroke",
                            "max_points": 200, "seed": 1, "prime": {"strokes": STROKES}}))
        got = frames(ws)
        for i in range(2):
            rows = [f["rows"][i] for f in got if f["type"] == "points" and f["rows"][i] is not None]
            assert sum(row[2] >= 0.5 for row in rows) <= 1
            if rows and got[-1]["reason"] == "stroke":
                assert rows[-1][2] == 1


def test_touch_answer_lasts_about_the_call(server):
    address, _ = server
    ws, _ = open_session(address)
    with ws:
        call = [[0.2, 0.3, 0.0], [0.25, 0.3, 0.02], [0.3, 0.32, 0.02], [0.8, 0.6, 0.5], [0.5, 0.5, 0.6]]
        ws.send(json.dumps({"type": "generate", "id": 7, "model": "touch", "seconds": 1.12,
                            "prime": {"rows": call}}))
        got = frames(ws)
        rows = [f["rows"][0] for f in got if f["type"] == "points"]
        seconds = sum(row[2] for row in rows)
        assert got[-1]["reason"] == "seconds"
        assert 1.12 <= seconds < 1.12 + max(row[2] for row in rows) + 1e-6
        assert all(0 <= row[0] <= 1 and 0 <= row[1] <= 1 for row in rows)


def test_errors_keep_the_session_usable(server):
    address, _ = server
    ws, _ = open_session(address)
    with ws:
        bad = ["{not json", json.dumps({"type": "generate", "id": 1, "model": "nope"}),
               json.dumps({"type": "generate", "id": 2, "model": "draw", "temperature": 1e9}),
               json.dumps({"type": "set", "temperature": 0}),
               json.dumps({"type": "ping", "pad": "x" * (Limits().max_message_bytes + 1)}),
               json.dumps({"type": "export", "id": 3, "format": "svg"})]
        codes = []
        for message in bad:
            ws.send(message)
            frame = json.loads(ws.recv(timeout=10))
            assert frame["type"] == "error", frame
            codes.append(frame["code"])
        ws.send(b"\x00binary")
        codes.append(json.loads(ws.recv(timeout=10))["code"])
        assert codes == ["bad_json", "unknown_model", "bad_value", "bad_value", "too_large",
                         "nothing_to_export", "bad_message"]
        ws.send(json.dumps({"type": "ping", "id": 9}))
        assert json.loads(ws.recv(timeout=10)) | {"time": 0} == {"type": "pong", "id": 9, "time": 0}
        ws.send(json.dumps({"type": "generate", "id": 4, "model": "draw", "max_points": 5}))
        assert frames(ws)[-1]["type"] == "done"


def test_live_temperature_applies_to_the_next_point(server):
    address, studio = server
    ws, _ = open_session(address)
    with ws:
        ws.send(json.dumps({"type": "generate", "id": 1, "model": "touch", "until": "points",
                            "max_points": 60, "rate": 100, "temperature": 0.8}))
        got = frames(ws, until=("points",))
        assert got[0]["temperature"] == 0.8
        ws.send(json.dumps({"type": "set", "temperature": 0.3, "sigma_temperature": 0.7}))
        rest = frames(ws)
        settings = next(f for f in rest if f["type"] == "settings")
        assert settings["temperature"] == 0.3
        after = rest[rest.index(settings) + 1:]
        later = [f for f in after if f["type"] == "points"]
        assert later and all(f["temperature"] == 0.3 and f["sigma_temperature"] == 0.7 for f in later[1:])
        ws.send(json.dumps({"type": "generate", "id": 2, "model": "draw", "max_points": 3}))
        assert frames(ws)[0]["temperature"] == 0.3  # and for the next request


def test_sessions_keep_their_own_state(server):
    address, studio = server
    first, _ = open_session(address)
    second, _ = open_session(address)
    with first, second:
        first.send(json.dumps({"type": "set", "temperature": 0.25}))
        assert json.loads(first.recv(timeout=10))["temperature"] == 0.25
        second.send(json.dumps({"type": "generate", "id": 1, "model": "draw", "max_points": 3}))
        first.send(json.dumps({"type": "generate", "id": 1, "model": "draw", "max_points": 3}))
        assert frames(second)[0]["temperature"] == 1.0
        assert frames(first)[0]["temperature"] == 0.25
        assert len(studio.sessions) >= 2


def test_disconnect_mid_stream_frees_the_session(server):
    address, studio = server
    before = set(studio.sessions)
    ws, ready = open_session(address)
    session_id = ready["session"]
    ws.send(json.dumps({"type": "generate", "id": 1, "model": "touch", "until": "points",
                        "max_points": 2000, "rate": 50}))
    frames(ws, until=("points",))
    assert session_id in studio.sessions and studio.sessions[session_id].streaming
    session = studio.sessions[session_id]
    ws.close()
    assert wait_for(lambda: session_id not in studio.sessions)
    assert set(studio.sessions) <= before
    assert session.closed and not session.streaming and not session._generators


def test_streams_do_not_block_other_clients(server):
    address, _ = server
    busy, _ = open_session(address)
    quiet, _ = open_session(address)
    with busy, quiet:
        busy.send(json.dumps({"type": "generate", "id": 1, "model": "touch", "until": "points",
                              "max_points": 2000}))
        frames(busy, until=("points",))
        waits = []
        for i in range(5):
            started = time.perf_counter()
            quiet.send(json.dumps({"type": "ping", "id": i}))
            assert json.loads(quiet.recv(timeout=10))["type"] == "pong"
            waits.append(time.perf_counter() - started)
        assert min(waits) < 0.5, waits
        busy.send(json.dumps({"type": "stop"}))
        assert frames(busy)[-1]["reason"] == "stopped"


def test_too_many_sessions_are_refused(entries):
    with running(entries, Limits(max_sessions=2)) as (address, studio):
        first, _ = open_session(address)
        second, _ = open_session(address)
        with first, second:
            with connect(f"ws://{address}/ws") as third:
                frame = json.loads(third.recv(timeout=10))
                assert frame["code"] == "too_many_sessions"
                with pytest.raises(Exception):
                    third.recv(timeout=10)
                assert third.close_code == 1013
            assert len(studio.sessions) == 2


def test_svg_export_holds_the_person_and_the_model(server):
    from mdnrnn.studio.session import MODEL_COLOR, PERSON_COLOR

    address, _ = server
    ws, _ = open_session(address)
    with ws:
        for n in (1, 2):
            # Seeded: unseeded, the random model once ended its only drawing at the first step.
            ws.send(json.dumps({"type": "generate", "id": n, "model": "draw", "n": n, "until": "points",
                                "max_points": 12, "seed": 2, "prime": {"strokes": STROKES}}))
            drawn = frames(ws)[-1]["points"]
            ws.send(json.dumps({"type": "export", "id": 10 + n, "format": "svg"}))
            frame = json.loads(ws.recv(timeout=10))
            assert frame["type"] == "export" and frame["mime"] == "image/svg+xml"
            root = ElementTree.fromstring(frame["text"].split("?>", 1)[1])
            paths = root.iter("{http://www.w3.org/2000/svg}path")
            colors = [(p.get("class"), p.get("stroke"), p.get("d").count("M")) for p in paths]
            assert [c for c in colors if c[0] == "person"] == [("person", PERSON_COLOR, 2)] * n
            assert len([c for c in colors if c[0] == "model" and c[1] == MODEL_COLOR]) == sum(p > 0 for p in drawn)
            assert sum(drawn) > 0


def test_midi_export_is_the_whole_exchange(server):
    address, _ = server
    ws, _ = open_session(address)
    with ws:
        call = [[0.0, 0.1, 1.0], [1.0, 0.9, 0.4], [0.5, 0.2, 0.4]]  # 1 s after the last answer
        for i in range(2):
            ws.send(json.dumps({"type": "generate", "id": i, "model": "touch", "seconds": 0.8,
                                "after": 0.5, "seed": i, "prime": {"rows": call}}))
            frames(ws)
        ws.send(json.dumps({"type": "export", "id": 5, "format": "midi"}))
        frame = json.loads(ws.recv(timeout=10))
        import base64

        midi = mido.MidiFile(file=io.BytesIO(base64.b64decode(frame["base64"])))
        notes = [m for m in midi.tracks[0] if m.type == "note_on"]
        assert len(notes) >= 8  # three taps per call and an answer starting 0.5 s later, twice
        assert notes[0].note == 48 and notes[1].note == 84  # x = 0: C3, x = 1: C6


def test_session_svg_recolours_only_the_model_runs():
    from mdnrnn.export.svg import drawing_to_svg
    from mdnrnn.studio.session import drawing_svg

    prefix = np.array([[10, 10, 0], [20, 0, 1], [0, 10, 1]], np.float32)
    model = [[5.0, 5.0, 0.0], [5.0, 0.0, 1.0]]
    text = drawing_svg(prefix, [model])
    whole = drawing_to_svg(np.concatenate([prefix, np.array(model, np.float32)]), size=436)
    runs = ElementTree.fromstring(whole.split("?>", 1)[1]).find("{http://www.w3.org/2000/svg}path").get("d")
    root = ElementTree.fromstring(text.split("?>", 1)[1])
    paths = list(root.iter("{http://www.w3.org/2000/svg}path"))
    assert " ".join(p.get("d") for p in paths) == runs  # the exporter's geometry, split in two
    assert [p.get("d").count("M") for p in paths] == [2, 1]


def test_fixed_weights_generator_samples_as_generator(entries):
    from mdnrnn.generate import Generator
    from mdnrnn.studio.session import generator_class, strokes_to_rows

    model = entries["draw"].model
    prefix = strokes_to_rows([np.array(s) for s in STROKES], 1.0)
    outputs = []
    for cls in (Generator, generator_class()):
        generator = cls(model, temperature=0.7, seed=3)
        rows = []
        for batch in (2, 1):  # two primes: the second reuses the weights read by the first
            generator.prime([prefix] * batch)
            rows += [generator.step() for _ in range(20)]
        generator.reset(3)
        rows += [generator.step() for _ in range(5)]
        outputs.append(np.concatenate(rows))
    np.testing.assert_array_equal(outputs[0], outputs[1])


# ------------------------------------------------------------------ the command
def test_serve_help_needs_no_tensorflow():
    code = ("import sys; from mdnrnn import cli; p = cli.build_parser(); "
            "a = p.parse_args(['serve', '--model', 'kanji', '--port', '0']); "
            "assert a.func is cli.cmd_serve and a.host == '127.0.0.1'; "
            "assert 'tensorflow' not in sys.modules, 'TF imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.slow
def test_serve_command_prints_its_url_and_stops_on_ctrl_c(tmp_path, entries):
    import urllib.request

    path = tmp_path / "sketchy.keras"
    entries["draw"].model.save(path)
    process = subprocess.Popen([sys.executable, "-m", "mdnrnn.cli", "serve", "--model", str(path),
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=ROOT)
    try:
        line = process.stdout.readline()
        assert line.startswith("mdnrnn studio: http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[2]
        listing = json.loads(urllib.request.urlopen(url + "api/models").read())
        assert [m["name"] for m in listing["models"]] == ["sketchy"]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


# ------------------------------------------------------------------ pretrained models
@pytest.mark.parametrize("name", ["kanji", "touch"])
def test_pretrained_model_loads_by_name(name):
    import keras

    import mdnrnn
    import mdnrnn.models
    from mdnrnn import datasets

    path = datasets.model_path(name)
    facts = datasets.model_facts(name)
    assert path.stat().st_size == facts["bytes"] < 8_000_000
    model = keras.models.load_model(path)  # no custom_objects once mdnrnn.models is imported
    assert isinstance(model, mdnrnn.models.MixtureRNN) and getattr(model, "optimizer", None) is None
    assert mdnrnn.load_model(name).config == model.config
    card = path.with_suffix(".md").read_text()
    assert facts["licence"].split(" (")[0] in card and f"{facts['heldout_nll']:.4f}" in card


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kanji", "touch"])
def test_pretrained_model_reproduces_its_heldout_nll(name, tmp_path):
    import keras

    import mdnrnn.models  # noqa: F401 - registers the classes
    from mdnrnn import datasets
    from mdnrnn.evaluate import heldout_nll

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import train_pretrained
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    store = tmp_path / f"{name}.h5"
    train_pretrained.convert(name, store)
    facts = datasets.model_facts(name)
    scored = heldout_nll(keras.models.load_model(datasets.model_path(name)), store)
    assert scored["steps"] == facts["heldout_steps"]
    assert abs(scored["nll"] - facts["heldout_nll"]) < 1e-3


def test_closing_the_studio_stops_its_worker_thread(entries):
    with running(entries) as (_, studio):
        thread = studio.worker._thread
        assert thread.is_alive()
    assert not thread.is_alive()
