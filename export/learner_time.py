"""How long a learner needs for a notebook, from what it asks of them: one rule for every notebook.

    python export/learner_time.py notebooks/*.ipynb     # prints each notebook's estimate

Everything before "## Solutions" counts: its prose at WORDS_PER_MINUTE (technical prose with
formulas, read closely), each code cell at MINUTES_PER_CELL (read it, run it, look at what it
shows), and each numbered exercise at MINUTES_PER_EXERCISE; the total is rounded up to a
multiple of 5. Each notebook states its estimate in its objectives ("Learner time: about N
minutes"), and tests/test_notebooks.py checks that the statement matches this rule and that no
notebook needs more than MAX_MINUTES.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

WORDS_PER_MINUTE = 120
MINUTES_PER_CELL = 1.0
MINUTES_PER_EXERCISE = 8.0
MAX_MINUTES = 90  # one class session
STATED = re.compile(r"Learner time: about (\d+) minutes")


@dataclass(frozen=True)
class Estimate:
    """What a notebook asks of a learner, and the minutes it takes."""

    words: int
    code_cells: int
    exercises: int

    @property
    def minutes(self) -> int:
        raw = (
            self.words / WORDS_PER_MINUTE
            + self.code_cells * MINUTES_PER_CELL
            + self.exercises * MINUTES_PER_EXERCISE
        )
        return 5 * math.ceil(raw / 5)


def estimate(path: str | Path) -> Estimate:
    """The estimate for the notebook at ``path``: its cells before "## Solutions"."""
    cells = json.loads(Path(path).read_text())["cells"]
    words = code = exercises = 0
    colab = next(i for i, cell in enumerate(cells) if cell["cell_type"] == "code")
    for at, cell in enumerate(cells):
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and source.startswith("## Solutions"):
            break
        if at == colab:  # the first code cell is Colab's set-up, not the lesson
            continue
        if cell["cell_type"] == "code":
            code += 1
        else:
            words += len(re.sub(r"\$[^$]*\$", " formula ", source).split())
            if source.startswith("## Exercises"):
                exercises = sum(1 for line in source.splitlines() if re.match(r"\d+\. ", line))
    return Estimate(words, code, exercises)


def stated(path: str | Path) -> int | None:
    """The minutes the notebook states in its objectives, or None."""
    text = "".join("".join(cell["source"]) for cell in json.loads(Path(path).read_text())["cells"])
    found = STATED.search(text)
    return int(found.group(1)) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args()
    for path in args.notebooks:
        found = estimate(path)
        print(
            f"{path.name}: about {found.minutes} minutes ({found.words} words, "
            f"{found.code_cells} code cells, {found.exercises} exercises; states {stated(path)})"
        )


if __name__ == "__main__":
    main()
