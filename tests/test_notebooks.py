"""The notebooks under notebooks/ run from top to bottom (in quick mode) so they never rot.

Each notebook is executed with nbclient in a fresh "python3" kernel whose working folder is
notebooks/ (as in Jupyter) and with MDNRNN_QUICK=1 (tiny data and model, a few training
steps). Outputs go to pytest's tmp_path through MDNRNN_OUT. A cell appended here reports
the kernel's sys.prefix, so the test also checks that the kernel runs in the test's own
environment (the venv), not some other Python.
"""

import sys
import time
from pathlib import Path

import mido
import nbclient
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT = 300  # seconds per cell; quick mode needs well under a minute in all
PREFIX_MARK = "KERNEL SYS.PREFIX="


def _texts(cell):
    """The text outputs of one executed code cell (streams and text/plain results)."""
    texts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            texts.append(output["text"])
        elif "text/plain" in output.get("data", {}):
            texts.append(output["data"]["text/plain"])
    return "".join(texts)


def _svg_outputs(cells):
    return [
        output["data"]["image/svg+xml"]
        for cell in cells
        for output in cell.get("outputs", [])
        if "image/svg+xml" in output.get("data", {})
    ]


def _execute(name, tmp_path, monkeypatch):
    """Runs notebooks/NAME in quick mode; returns (executed code cells, all text, seconds)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.append(
        nbformat.v4.new_code_cell(f"import sys\nprint({PREFIX_MARK!r} + sys.prefix)")
    )
    monkeypatch.setenv("MDNRNN_QUICK", "1")
    monkeypatch.setenv("MDNRNN_OUT", str(tmp_path))
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    start = time.monotonic()
    client.execute()  # raises CellExecutionError naming the cell on the first error
    seconds = time.monotonic() - start
    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    for cell in cells:
        errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, f"{name}: cell raised {errors[0]['ename']}: {errors[0]['evalue']}"
    text = "\n".join(_texts(cell) for cell in cells)
    prefixes = [line for line in text.splitlines() if line.startswith(PREFIX_MARK)]
    assert prefixes, f"{name}: the kernel did not report its sys.prefix"
    assert Path(prefixes[-1][len(PREFIX_MARK):]).resolve() == Path(sys.prefix).resolve(), (
        f"{name}: the kernel runs in {prefixes[-1]!r}, not in this environment ({sys.prefix})"
    )
    return cells, text, seconds


@pytest.mark.parametrize("name", ["kanji.ipynb", "touch_performances.ipynb"])
def test_notebooks_are_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{name}: code cell {index} holds outputs; clear them before committing"
            )


@pytest.mark.slow
def test_kanji_notebook_runs(tmp_path, monkeypatch):
    cells, text, seconds = _execute("kanji.ipynb", tmp_path, monkeypatch)
    print(f"kanji.ipynb ran in {seconds:.1f} s")
    assert "KANJI NOTEBOOK DONE: 8 drawings generated" in text
    # Real examples, one sample, the samples grid, three temperatures, the priming grid,
    # plus the loss curve.
    svgs = _svg_outputs(cells)
    assert len(svgs) >= 8, f"expected at least 8 inline SVG pictures, found {len(svgs)}"
    assert all("<svg" in svg for svg in svgs)
    for temperature in ("0.2", "0.6", "1.0"):
        assert f"temperature {temperature}:" in text
    run_dirs = list(tmp_path.glob("kanji-*/run"))
    assert len(run_dirs) == 1 and (run_dirs[0] / "model.keras").is_file()
    assert list(tmp_path.glob("kanji-*/samples.svg"))


@pytest.mark.slow
def test_touch_performances_notebook_runs(tmp_path, monkeypatch):
    cells, text, seconds = _execute("touch_performances.ipynb", tmp_path, monkeypatch)
    print(f"touch_performances.ipynb ran in {seconds:.1f} s")
    assert "TOUCH NOTEBOOK DONE: wrote 4 MIDI files" in text
    svgs = _svg_outputs(cells)
    assert len(svgs) >= 3, f"expected real, loss and generated SVG pictures, found {len(svgs)}"
    assert any("polyline" in svg or "circle" in svg for svg in svgs)
    midi_files = sorted(tmp_path.glob("touch-*/midi/performance_*.mid"))
    assert len(midi_files) == 4
    for path in midi_files:
        assert any(m.type == "note_on" for m in mido.MidiFile(path)), f"{path.name} has no notes"
    assert text.count("generated performance") == 4
