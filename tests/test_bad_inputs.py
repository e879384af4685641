"""Crafted bad inputs through the real command line: every one is refused cleanly.

For each case of `make_bad_inputs.make`: exit code 1 or 2 as expected, exactly one line with
`error:` on stderr, no traceback, no output left behind, the input files unchanged, and no
code run from a data file (the payloads would create a marker file).
"""

import concurrent.futures
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import make_bad_inputs


def _checksums(directory):
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(directory).rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _run(argv):
    return subprocess.run([sys.executable, "-m", "mdnrnn.cli", *argv], capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    import mdnrnn
    from data_prep import robojam
    from mdnrnn import datasets

    base = tmp_path_factory.mktemp("bad")
    touch_store = base / "touch.h5"
    robojam.convert(datasets.path("robojam"), touch_store, progress=False)
    model = mdnrnn.build_model(mdnrnn.preset("kanji", units=8, layers=1, components=2))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    model.save(base / "kanji.keras")
    crafted = base / "crafted"
    crafted.mkdir()
    cases = make_bad_inputs.make(crafted, corpus=datasets.path("robojam"), touch_store=touch_store,
                                 kanji_model=base / "kanji.keras")
    return base, cases


@pytest.mark.slow
def test_every_bad_input_is_refused_cleanly(inputs, tmp_path):
    base, cases = inputs
    before = _checksums(base)
    outputs = [tmp_path / f"out_{i}" for i in range(len(cases))]
    commands = [[a.replace("{out}", str(out)) for a in case.argv] for case, out in zip(cases, outputs)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_run, commands))

    problems = []
    for case, out, result in zip(cases, outputs, results):
        err_lines = [line for line in result.stderr.splitlines() if "error:" in line]
        if result.returncode not in case.codes:
            problems.append(f"{case.name}: exit {result.returncode}, expected {case.codes}: {result.stderr[-600:]}")
        elif "Traceback" in result.stderr or len(err_lines) != 1:
            problems.append(f"{case.name}: stderr is not one error line: {result.stderr[-600:]}")
        elif result.returncode == 1 and not result.stderr.startswith("error: "):
            problems.append(f"{case.name}: stderr does not start with 'error: ': {result.stderr[-300:]}")
        elif out.exists():
            problems.append(f"{case.name}: left {out} behind")
    print(f"\n{len(cases)} bad inputs tried, {len(cases) - len(problems)} refused cleanly")
    assert not problems, "\n".join(problems)
    assert not (base / "crafted" / make_bad_inputs.MARKER).exists(), "a data file ran code"
    assert not list(tmp_path.iterdir()), "output left behind"
    assert _checksums(base) == before, "an input file changed"
    leftovers = [p.name for p in (base / "crafted").iterdir() if p.name.endswith((".partial", ".tmp"))]
    assert not leftovers
