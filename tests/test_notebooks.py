"""The course's notebooks share one structure (their execution is tested by nbval).

The exercises' tagging scheme (docs/grading.md) is checked here on every notebook, statically;
tests/test_grading.py runs the handouts and the grader on two of them.
"""

import ast
import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "export"))
import colab_cell  # noqa: E402  (export/ is not a package)
import learner_time  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
_spec = importlib.util.spec_from_file_location("exercises", ROOT / "export/exercises.py")
exercises = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(exercises)
TRAINING_CALLS = re.compile(r"train|fit$|load_or_train")  # what a check must never call
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
    # each solution cell follows its heading, then its checks, then what the run shows
    for cell in solutions:
        at = cells.index(cell)
        assert cells[at - 1].source.startswith("**Solution"), cells[at - 1].source[:40]
        after = at + 1
        while tagged(cells[after], "check"):
            after += 1
        assert after > at + 1, f"solution {cell.metadata.get('exercise')} has no check cell"
        assert cells[after].cell_type == "markdown" and cells[after].source.strip()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_of_the_solutions_is_tagged(path):
    """From "## Solutions" on: the heading (answer), then per exercise its "**Solution N.**"
    (answer), one solution cell, one or more check cells and the prose (answer), each cell
    carrying the exercise's number, so that a handout can leave out every one of them."""
    notebook = nbformat.read(path, as_version=4)
    texts = exercises.exercise_texts(notebook)
    assert list(texts) == list(range(1, len(texts) + 1)), list(texts)
    start = next(i for i, c in enumerate(notebook.cells) if c.source.startswith("## Solutions"))
    heading, *rest = notebook.cells[start:]
    assert exercises.tags(heading) == ["answer"] and exercises.number(heading) is None
    expected = []
    for exercise in texts:
        checks = exercises.cells_tagged(notebook, "check", exercise)
        expected += [("answer", exercise), ("solution", exercise)]
        expected += [("check", exercise)] * len(checks) + [("answer", exercise)]
    found = [(" ".join(exercises.tags(c)), exercises.number(c)) for c in rest]
    assert found == expected
    titles = [c.source for c in rest if c.source.startswith("**Solution")]
    assert [t.split(".")[0] for t in titles] == [f"**Solution {n}" for n in texts]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_exercise_names_what_its_checks_read(path):
    """A check reads the lesson's names and the ones its exercise asks the learner to define:
    each of those is named in the exercise's text, none is one the lesson already binds (an
    untouched handout must fail), the solutions define it, and no check rebinds a name of the
    lesson or one a learner defines. Asserts live in the checks, not in the solutions."""
    notebook = nbformat.read(path, as_version=4)
    texts, required = exercises.exercise_texts(notebook), exercises.required_names(notebook)
    learners = set().union(*required.values())
    lesson = exercises.lesson_names(notebook)
    defined = set()
    for exercise, text in texts.items():
        names = required[exercise]
        assert names, f"exercise {exercise}: its checks read nothing the learner defines"
        missing = [name for name in names if f"`{name}`" not in text]
        assert not missing, f"exercise {exercise} does not name {missing} in its text"
        solution = exercises.cells_tagged(notebook, "solution", exercise)[0]
        assert "assert " not in solution.source, f"solution {exercise}: move asserts to a check"
        defined |= exercises.bound_names(solution.source)
        assert set(names) <= defined, f"solution {exercise} does not define {set(names) - defined}"
        for check in exercises.cells_tagged(notebook, "check", exercise):
            rebound = exercises.bound_names(check.source) & (lesson | learners)
            assert not rebound, f"a check of exercise {exercise} rebinds {sorted(rebound)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_checks_train_nothing(path):
    """Checks are cheap: they evaluate what the learner made, never train a model."""
    notebook = nbformat.read(path, as_version=4)
    for check in exercises.cells_tagged(notebook, "check"):
        calls = [
            ast.unparse(node.func)
            for node in ast.walk(ast.parse(check.source))
            if isinstance(node, ast.Call)
        ]
        training = [call for call in calls if TRAINING_CALLS.search(call.rpartition(".")[2])]
        assert not training, f"a check of exercise {exercises.number(check)} calls {training}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_states_its_learner_time_by_the_one_rule(path):
    found = learner_time.estimate(path)
    assert learner_time.stated(path) == found.minutes, (
        f"state 'Learner time: about {found.minutes} minutes' in the objectives "
        f"(export/learner_time.py: {found})"
    )
    assert found.minutes <= learner_time.MAX_MINUTES, "more than one session: split it"
