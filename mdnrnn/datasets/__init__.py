"""Small real datasets shipped with mdnrnn, for the demo, the recipes and the tests.

`path(name)` returns the file of a shipped dataset; nothing is ever downloaded.

| name          | file                      | what it is                                          | licence |
|---------------|---------------------------|-----------------------------------------------------|---------|
| `robojam`     | `TinyPerformanceCorpus.h5`| about 1,000 five-second touch-screen performances   | CC0 1.0 |
|               |                           | from the MicroJam app (the RoboJam corpus): one     |         |
|               |                           | dataset `total_performances`, rows (x, y, dt)       |         |
| `short_kanji` | `short_kanji.npz`         | 11,100 KanjiVG characters in sketch-rnn's stroke-3  | CC BY-SA 3.0 |
|               |                           | `.npz` format (train 10,000 / valid 600 / test 500) | (KanjiVG, Ulrich Apel) |

Credits: the RoboJam corpus comes from the creative-prediction-datasets project (CC0 1.0);
`short_kanji.npz` was derived from KanjiVG (Copyright (C) Ulrich Apel, CC BY-SA 3.0) by the
sketch-rnn-datasets project, and drawings or models made from it fall under the same terms.

Pretrained models (`model_path(name)`, in `models/`, each with a model card `NAME.md` and
its facts `NAME.json`; `scripts/train_pretrained.py` retrains them):

| name    | what it is                                                         | licence      |
|---------|--------------------------------------------------------------------|--------------|
| `kanji` | stroke-5 drawing model trained on every KanjiVG base character      | CC BY-SA 3.0 |
| `touch` | touch-performance model (x, y, dt) trained on the RoboJam corpus    | CC0 1.0      |

`mdnrnn.load_model("kanji")` loads a pretrained model by name.

Example:

```python
from mdnrnn import datasets
corpus = datasets.path("robojam")   # .../mdnrnn/datasets/TinyPerformanceCorpus.h5
kanji = datasets.model_path("kanji")  # .../mdnrnn/datasets/models/kanji.keras
```
"""

import json
from pathlib import Path

FILES = {
    "robojam": "TinyPerformanceCorpus.h5",
    "short_kanji": "short_kanji.npz",
}


def path(name: str) -> Path:
    """The file of the shipped dataset `name` (one of `FILES`).

    Raises:
        ValueError: if `name` is not a shipped dataset.
    """
    if name not in FILES:
        raise ValueError(
            f"Received an invalid value for `name`, expected one of {sorted(FILES)}. "
            f"Received: name={name!r}"
        )
    return Path(__file__).resolve().parent / FILES[name]


MODELS = ("kanji", "touch")
"""Names of the pretrained models shipped in `models/`."""


def is_model_name(name) -> bool:
    """Whether `name` names a shipped pretrained model (not a file path)."""
    return isinstance(name, str) and name in MODELS


def model_path(name: str) -> Path:
    """The `.keras` file of the pretrained model `name` (one of `MODELS`).

    Raises:
        ValueError: if `name` is not a shipped pretrained model.
    """
    if not is_model_name(name):
        raise ValueError(
            f"Received an invalid value for `name`, expected one of {sorted(MODELS)}. "
            f"Received: name={name!r}"
        )
    return Path(__file__).resolve().parent / "models" / f"{name}.keras"


def model_facts(name: str) -> dict:
    """The facts of a pretrained model (`models/NAME.json`: held-out NLL, data, licence...)."""
    return json.loads(model_path(name).with_suffix(".json").read_text())
