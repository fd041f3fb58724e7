"""The course's notebooks share one structure (their execution is tested by nbval)."""

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "export"))
import colab_cell  # noqa: E402  (export/ is not a package)
import learner_time  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# written by export/colab_cell.py from the repository's address in pyproject.toml
COLAB_CELL = colab_cell.first_cell(colab_cell.repository())


def code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def tagged(cell, tag: str) -> bool:
    return tag in cell.metadata.get("tags", [])


def test_the_notebooks_are_there_in_order():
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert numbers == [f"{i:02d}" for i in range(1, len(NOTEBOOKS) + 1)] and len(numbers) >= 6


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    notebook = nbformat.read(path, as_version=4)
    code = code_cells(notebook)
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    assert code[0].source == COLAB_CELL  # one Colab cell, the same in every notebook
    parameters = [cell for cell in code if tagged(cell, "parameters")]
    assert (
        len(parameters) == 1 and 'os.environ.get("COURSE_FAST", "0") == "1"' in parameters[0].source
    )
    assert not any("COURSE_FAST" in cell.source for cell in code if cell is not parameters[0])
    for heading in ("**Objectives.**", "## Recap", "## Exercises", "## Solutions"):
        assert heading in markdown, heading
    assert all(not cell.outputs for cell in code), "commit notebooks without outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_a_solution_that_runs(path):
    notebook = nbformat.read(path, as_version=4)
    cells = notebook.cells
    exercises = next(c.source for c in cells if c.source.startswith("## Exercises"))
    numbered = [line for line in exercises.splitlines() if line[:1].isdigit() and ". " in line]
    solutions = [c for c in code_cells(notebook) if tagged(c, "solution")]
    assert len(numbered) == len(solutions) >= 2, (len(numbered), len(solutions))
    # each solution cell follows its heading and is followed by what the run shows
    for cell in solutions:
        at = cells.index(cell)
        assert cells[at - 1].source.startswith("**Solution"), cells[at - 1].source[:40]
        assert cells[at + 1].cell_type == "markdown" and cells[at + 1].source.strip()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_states_its_learner_time_by_the_one_rule(path):
    found = learner_time.estimate(path)
    assert learner_time.stated(path) == found.minutes, (
        f"state 'Learner time: about {found.minutes} minutes' in the objectives "
        f"(export/learner_time.py: {found})"
    )
    assert found.minutes <= learner_time.MAX_MINUTES, "more than one session: split it"
