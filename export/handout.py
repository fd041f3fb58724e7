"""Student versions of the course's notebooks, without solutions, and their HTML: `./run handout`.

    python export/handout.py notebooks/[0-9][0-9]_*.ipynb --output-dir build/handout

Each handout keeps the lesson, the same first cell and the exercises' texts, and leaves out every
cell tagged solution, answer or check (export/exercises.py, docs/grading.md): where the solutions
began it has one code cell per exercise, tagged workspace, whose comments repeat the exercise and
name what the learner's code must define. Outputs are cleared. `--output-dir`/html/ holds each
handout as HTML, unexecuted, offline, written by export/notebook_html.py as for the course.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exercises  # noqa: E402  (beside this file; export/ is not a package)
import notebook_html  # noqa: E402


def write_handout(notebook: Path, output_dir: Path) -> Path:
    """Write `output_dir/<name>.ipynb`, the handout of `notebook`, and its HTML in html/."""
    student = exercises.handout(nbformat.read(notebook, as_version=4))
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / notebook.name
    nbformat.write(student, target)
    notebook_html.convert(target, output_dir / "html")
    return target


def main(argv: list[str] | None = None) -> None:
    notebook_html.main(argv, write=write_handout, description=__doc__)


if __name__ == "__main__":
    main()
