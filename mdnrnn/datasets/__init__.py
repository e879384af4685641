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

Example:

```python
from mdnrnn import datasets
corpus = datasets.path("robojam")   # .../mdnrnn/datasets/TinyPerformanceCorpus.h5
```
"""

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
