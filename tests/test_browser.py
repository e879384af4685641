"""The studio's pages in a real browser: Debian's headless chromium, driven by Playwright.

Playwright for Python installs no browser of its own; these tests launch the system's
`chromium` (`.ci/run` installs it with apt-get) through `executable_path`. The server runs
the real app in a thread with small random-weight models (see tests/test_studio.py).
Screenshots of both pages are saved under the test's tmp dir (`pytest --basetemp DIR`
keeps them in a known folder).
"""

import base64
import io
import json
import shutil
import xml.etree.ElementTree as ElementTree

import mido
import pytest

from test_studio import entries, running  # noqa: F401 - the fixture and the server

from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM, "Debian's chromium is needed (apt-get install chromium; .ci/run does it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(entries):  # noqa: F811
    with running(entries) as (address, studio):
        yield address, studio


def open_page(browser, address, path):
    context = browser.new_context(viewport={"width": 1100, "height": 800}, accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"http://{address}{path}")
    page.wait_for_function("window.studioState && document.getElementById('status').textContent.startsWith('Ready')")
    return context, page, errors


def draw_stroke(page, points, selector="canvas.board", pointer="mouse"):
    """Synthetic pointer events along `points` (fractions of the element's box)."""
    box = page.locator(selector).first.bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()


def wait_done(page, previous=None):
    page.wait_for_function("(prev) => window.studioState.lastDone && window.studioState.lastDone !== null "
                           "&& window.studioState.request === null && JSON.stringify(window.studioState.lastDone) !== prev",
                           arg=previous, timeout=20000)
    return page.evaluate("JSON.stringify(window.studioState.lastDone)")


def model_colored_pixels(page, color="#d9480f"):
    return page.evaluate("""(color) => {
        const rgb = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
        let count = 0;
        for (const canvas of document.querySelectorAll('canvas.board')) {
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            for (let i = 0; i < data.length; i += 4)
                if (Math.abs(data[i] - rgb[0]) < 40 && Math.abs(data[i + 1] - rgb[1]) < 40 &&
                    Math.abs(data[i + 2] - rgb[2]) < 40 && data[i + 3] > 200) count++;
        }
        return count;
    }""", color)


def test_drawing_page(browser, server, tmp_path):
    address, studio = server
    context, page, errors = open_page(browser, address, "/draw")
    page.select_option("#pace", "0")
    # Draw a stroke: the model continues it, in its own colour.
    draw_stroke(page, [(0.2, 0.25), (0.4, 0.27), (0.6, 0.3), (0.8, 0.28)])
    done = wait_done(page)
    state = page.evaluate("window.studioState")
    assert len(state["strokes"]) == 1 and len(state["strokes"][0]) > 4
    assert state["lastStarted"]["prefix_points"] >= 2
    assert len(state["firstPointLatency"]) == 1 or json.loads(done)["points"] == [0]
    # "Finish" runs to the end of the drawing: the drawn model points grow.
    page.click("#finish")
    done = wait_done(page, done)
    grown = page.evaluate("window.studioState.modelPoints")
    assert grown > 0 and grown == sum(json.loads(done)["points"])
    assert model_colored_pixels(page) > 20

    # The temperature slider sets the temperature the server uses for the next request.
    page.eval_on_selector("#temperature", "(e) => { e.value = '0.35'; e.dispatchEvent(new Event('input')); }")
    page.wait_for_function("document.getElementById('temperature-value').value === '0.35'")
    draw_stroke(page, [(0.5, 0.1), (0.52, 0.5), (0.5, 0.9)])
    done = wait_done(page, done)
    assert page.evaluate("window.studioState.lastStarted.temperature") == 0.35
    session = next(iter(studio.sessions.values()))
    assert session.temperature == 0.35

    # Undo removes the last stroke.
    assert page.evaluate("window.studioState.strokes.length") == 2
    page.click("#undo")
    assert page.evaluate("window.studioState.strokes.length") == 1
    assert page.evaluate("window.studioState.modelPoints") == 0

    # Continue again, then download the SVG: both the person's and the model's strokes.
    page.click("#finish")
    done = wait_done(page, done)
    assert sum(json.loads(done)["points"]) > 0, "the random model drew nothing; pick another seed"
    with page.expect_download() as download:
        page.click("#svg")
    path = tmp_path / "drawing.svg"
    download.value.save_as(path)
    root = ElementTree.parse(path).getroot()
    classes = [p.get("class") for p in root.iter("{http://www.w3.org/2000/svg}path")]
    assert classes == ["person", "model"]

    # Alternatives side by side.
    page.select_option("#alternatives", "3")
    assert page.locator("canvas.board").count() == 3
    draw_stroke(page, [(0.3, 0.6), (0.7, 0.62)], selector="canvas.board")
    page.click("#finish")
    wait_done(page, done)
    page.screenshot(path=tmp_path / "draw.png")
    assert (tmp_path / "draw.png").stat().st_size > 5000
    assert not errors and not page.evaluate("window.studioState.errors")
    context.close()


def test_drawing_page_with_touch_and_pen_pointers(browser, server):
    address, _ = server
    context, page, errors = open_page(browser, address, "/draw")
    page.select_option("#pace", "0")
    box = page.locator("canvas.board").bounding_box()
    for pointer_type in ("pen", "touch"):
        page.evaluate("""([box, type]) => {
            const canvas = document.querySelector('canvas.board');
            const fire = (name, fx, fy) => canvas.dispatchEvent(new PointerEvent(name, {
                pointerId: 7, pointerType: type, isPrimary: true, bubbles: true,
                clientX: box.x + fx * box.width, clientY: box.y + fy * box.height}));
            fire('pointerdown', 0.2, 0.7);
            for (let i = 1; i <= 10; i++) fire('pointermove', 0.2 + i * 0.05, 0.7 + i * 0.01);
            fire('pointerup', 0.7, 0.8);
        }""", [box, pointer_type])
    assert page.evaluate("window.studioState.strokes.length") == 2
    wait_done(page)
    assert not errors
    context.close()


def test_performance_page(browser, server, tmp_path):
    address, _ = server
    context, page, errors = open_page(browser, address, "/play")
    # A pause well above the gaps below (250 ms), so that a busy machine's stall between two
    # synthetic taps does not end the call early.
    page.fill("#pause", "1.5")
    box = page.locator("#pad").bounding_box()

    def at(fx, fy):
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    # Two taps and a swipe, with pauses under the answer's.
    for fx, fy in ((0.1, 0.2), (0.8, 0.3)):
        page.mouse.move(*at(fx, fy))
        page.mouse.down()
        page.wait_for_timeout(60)
        page.mouse.up()
        page.wait_for_timeout(250)
    page.mouse.move(*at(0.2, 0.8))
    page.mouse.down()
    for i in range(1, 16):
        page.mouse.move(*at(0.2 + i * 0.04, 0.8 - i * 0.02))
        page.wait_for_timeout(20)
    page.mouse.up()
    page.wait_for_function("window.studioState.lastDone !== null", timeout=20000)
    exchange = page.evaluate("window.studioState.calls[0]")
    assert exchange["callRows"] >= 10
    assert 0.5 < exchange["callSeconds"] < 3
    # The answer lasts about as long as the call (the server stops once its dt sum reaches it).
    assert exchange["answerRows"] > 0
    assert abs(exchange["answerSeconds"] - exchange["callSeconds"]) < 0.5 * exchange["callSeconds"] + 0.3
    page.wait_for_timeout(int(1000 * exchange["answerSeconds"]) + 200)  # let it play
    page.screenshot(path=tmp_path / "play.png")

    with page.expect_download() as download:
        page.click("#midi")
    path = tmp_path / "performance.mid"
    download.value.save_as(path)
    midi = mido.MidiFile(path)
    notes = [m for m in midi.tracks[0] if m.type == "note_on"]
    assert len(notes) >= 4  # the two taps, the swipe, and the answer's notes
    assert notes[0].note == 50 and notes[1].note == 76  # x = 0.1 and 0.8, pentatonic C3-C6
    assert not errors and not page.evaluate("window.studioState.errors")
    context.close()
