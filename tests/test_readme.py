"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the blocks write into the current folder, as a user's would
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert len(namespace["characters"]) == 16 and (tmp_path / "kanji-grid.svg").exists()
    assert len(namespace["drawings"]) == 8
    assert (namespace["work"] / "grid.svg").exists()
    assert tuple(namespace["points"].shape) == (4, 30, 3)
