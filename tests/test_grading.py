"""Handouts and the grader (export/handout.py, export/grade.py, docs/grading.md).

Every handout is built, HTML included, and searched for the text of every solution. Grading
executes notebooks, which is slow: one grader run grades the two cheapest notebooks (02 and 06)
as the course has them and as untouched handouts, and notebook 02 once more with a solution that
raises and one that kills its kernel. tests/test_notebooks.py checks the tags and checks of all
eleven notebooks statically.
"""

import contextlib
import csv
import html.parser
import importlib.util
import io
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHEAP = ("02_find_misclassified", "08_explore")  # the notebooks graded here: seconds each
WINDOW = 8  # words in a row that count as a piece of text found in a handout


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "export" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


exercises, handout, grade = load("exercises"), load("handout"), load("grade")


class _Text(html.parser.HTMLParser):
    """The text a reader sees in an HTML page (scripts and styles left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def words(text: str) -> list[str]:
    """The text's words, without markdown's and TeX's marks, which HTML renders away."""
    return re.sub(r"[`*$\\]", " ", text).split()


def windows(text: str) -> set[tuple[str, ...]]:
    """Every run of WINDOW consecutive words (the whole text when it is shorter)."""
    found = words(text)
    return {tuple(found[i : i + WINDOW]) for i in range(max(1, len(found) - WINDOW + 1))}


def page_text(path: Path) -> str:
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    return "\n".join(parser.parts)


@pytest.fixture(scope="module")
def handouts(tmp_path_factory) -> Path:
    """Every notebook's handout and its HTML, made by export/handout.py."""
    folder = tmp_path_factory.mktemp("handout")
    handout.main([*map(str, NOTEBOOKS), "--output-dir", str(folder)])
    return folder


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_solution_text_survives_in_a_handout(handouts, path):
    """No run of words of a solution, answer or check cell that the lesson does not also hold
    appears in the handout's cells or in its HTML; each exercise has its workspace cell."""
    reference = nbformat.read(path, as_version=4)
    student = nbformat.read(handouts / path.name, as_version=4)
    is_hidden = [bool(set(exercises.tags(c)) & set(exercises.HIDDEN)) for c in reference.cells]
    text = {False: set(), True: set()}  # the lesson's and the solutions' runs of words
    for cell, hidden in zip(reference.cells, is_hidden):
        text[hidden] |= windows(cell.source)
    secret = text[True] - text[False]
    assert len(secret) > 100  # the solutions hold text of their own
    page = handouts / "html" / f"{path.stem}.html"
    for shown in ("\n".join(c.source for c in student.cells), page_text(page)):
        leaked = secret & windows(shown)
        assert not leaked, f"{len(leaked)} pieces leaked, e.g. {' '.join(sorted(leaked)[0])}"
    assert not any(set(exercises.tags(c)) & set(exercises.HIDDEN) for c in student.cells)
    assert all(not c.outputs for c in student.cells if c.cell_type == "code")
    code = [c for c in student.cells if c.cell_type == "code"]
    assert code[0].source == [c for c in reference.cells if c.cell_type == "code"][0].source
    workspace = exercises.cells_tagged(student, exercises.WORKSPACE)
    required = exercises.required_names(reference)
    assert [exercises.number(c) for c in workspace[1:]] == list(required)
    for cell in workspace[1:]:
        assert all(name in cell.source for name in required[exercises.number(cell)])


# a learner's own answers to notebook 02, other than the solutions: lists, numpy, plain calls
OWN_ANSWERS = {
    1: """top_rows = [int(i) for i in mistakes.index[:5]]
fresh_answers = model(dataset.test.x[top_rows].to(lesson.device)).argmax(dim=1).tolist()""",
    2: """counts = {(t, p): int(matrix[t, p]) for t in range(10) for p in range(10) if t != p}
t, p = max(counts, key=counts.get)
same_pair = mistakes[(mistakes.y == t) & (mistakes.y_pred == p)]
plotting.show_mistakes(same_pair, classes)""",
    3: """import numpy as np

confidence, wrong = answers.confidence.numpy(), answers.misclassified.numpy()
wrong_share = float(np.mean(confidence[wrong] > CONFIDENT))
right_share = float(np.mean(confidence[~wrong] > CONFIDENT))""",
    4: """def confusion(y, y_pred, num_classes):
    table = [[0] * num_classes for _ in range(num_classes)]
    for true, predicted in zip(y.tolist(), y_pred.tolist()):
        table[true][predicted] += 1
    return table


my_matrix = confusion(answers.y, answers.y_pred, 10)""",
}


def solution_of(path: Path, exercise: int, source: str) -> nbformat.NotebookNode:
    """The course notebook at `path` with exercise `exercise`'s solution cell replaced."""
    notebook = nbformat.read(path, as_version=4)
    exercises.cells_tagged(notebook, exercises.SOLUTION, exercise)[0].source = source
    return notebook


@pytest.fixture(scope="module")
def graded(handouts, tmp_path_factory) -> tuple[list[dict], str]:
    """One grader run, as `./run grade ... --csv`, over a small class: the course's notebooks
    02 and 08 (student "course"), their untouched handouts ("untouched"), 02's handout filled
    with answers of a learner's own ("own"), and 02 whose second solution raises and whose third
    kills the kernel ("broken")."""
    folder = tmp_path_factory.mktemp("class")
    submissions = []
    for stem in CHEAP:
        for student, source in (("course", ROOT / "notebooks"), ("untouched", handouts)):
            (folder / student).mkdir(exist_ok=True)
            submissions.append(shutil.copy(source / f"{stem}.ipynb", folder / student))
    own = nbformat.read(handouts / f"{CHEAP[0]}.ipynb", as_version=4)
    for cell in exercises.cells_tagged(own, exercises.WORKSPACE)[1:]:
        cell.source += "\n" + OWN_ANSWERS[exercises.number(cell)]
    submissions.append(folder / f"own_{CHEAP[0]}.ipynb")
    nbformat.write(own, submissions[-1])
    broken = solution_of(ROOT / "notebooks" / f"{CHEAP[0]}.ipynb", 2, 'raise RuntimeError("stop")')
    exercises.cells_tagged(broken, exercises.SOLUTION, 3)[0].source = "import os\n\nos._exit(1)"
    submissions.append(folder / f"broken_{CHEAP[0]}.ipynb")
    nbformat.write(broken, submissions[-1])
    table = folder / "class.csv"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        grade.main([*map(str, submissions), "--csv", str(table)])
    with table.open(newline="") as file:
        return list(csv.DictReader(file)), printed.getvalue()


def num_exercises(stem: str) -> int:
    return len(exercises.exercise_texts(nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", 4)))


def results(rows: list[dict], student: str, notebook: str) -> list[str]:
    return [r["result"] for r in rows if r["student"] == student and r["notebook"] == notebook]


@pytest.mark.parametrize("stem", CHEAP)
def test_the_course_notebooks_score_full_marks(graded, stem):
    rows, _ = graded
    number = num_exercises(stem)
    assert results(rows, "course", stem) == [grade.PASSED] * number


@pytest.mark.parametrize("stem", CHEAP)
def test_untouched_handouts_score_zero(graded, stem):
    rows, _ = graded
    mine = [r for r in rows if r["student"] == "untouched" and r["notebook"] == stem]
    assert mine and all(r["result"] == grade.FAILED for r in mine)
    assert all(r["error"].startswith("NameError: name '") for r in mine)  # nothing was defined


def test_a_learner_s_own_correct_answers_pass(graded):
    rows, _ = graded
    assert results(rows, "own", CHEAP[0]) == [grade.PASSED] * num_exercises(CHEAP[0])


def test_a_notebook_that_raises_scores_what_it_reached(graded):
    rows, printed = graded
    mine = [r for r in rows if r["student"] == "broken"]
    reached = [grade.PASSED, grade.FAILED, grade.NOT_REACHED, grade.NOT_REACHED]
    assert [r["result"] for r in mine] == reached  # the kernel died in exercise 3, before 4
    assert mine[1]["error"] == "RuntimeError: stop"
    assert "1 of 4 exercises passed" in printed and "the kernel died in cell" in printed


def test_the_csv_has_a_row_per_notebook_and_exercise(graded, tmp_path):
    rows, _ = graded
    expected = []
    for stem in CHEAP:
        number = num_exercises(stem)
        for student in ("course", "untouched"):
            expected += [(student, stem, str(n)) for n in range(1, number + 1)]
    numbers = range(1, num_exercises(CHEAP[0]) + 1)
    expected += [(student, CHEAP[0], str(n)) for student in ("own", "broken") for n in numbers]
    assert [(r["student"], r["notebook"], r["exercise"]) for r in rows] == expected
    assert list(rows[0]) == list(grade.CSV_COLUMNS)
    assert rows[-1]["file"].endswith(f"broken_{CHEAP[0]}.ipynb")
    # a second run appends its rows under the same header
    table = tmp_path / "class.csv"
    reference = ROOT / "notebooks" / f"{CHEAP[0]}.ipynb"
    again = grade.Graded(Path("carol") / reference.name, "carol", reference)
    again.scores = [grade.Score(1, grade.PASSED), grade.Score(2, grade.FAILED, "NameError: x")]
    grade.append_csv(table, again)
    grade.append_csv(table, again)
    lines = table.read_text().splitlines()
    assert lines[0] == ",".join(grade.CSV_COLUMNS) and len(lines) == 5
    assert lines[2] == f"carol,{CHEAP[0]},2,failed,NameError: x,{again.path}"


def tiny_reference() -> nbformat.NotebookNode:
    """A course notebook of two exercises, one check each."""
    new = nbformat.v4
    return new.new_notebook(
        cells=[
            new.new_code_cell("lesson = 1"),
            new.new_markdown_cell("## Exercises\n\n1. Define `a`.\n2. Define `b`."),
            new.new_code_cell("a = 1", metadata={"tags": ["solution"], "exercise": 1}),
            new.new_code_cell("assert a == 1", metadata={"tags": ["check"], "exercise": 1}),
            new.new_code_cell("b = 2", metadata={"tags": ["solution"], "exercise": 2}),
            new.new_code_cell("assert b == 2", metadata={"tags": ["check"], "exercise": 2}),
        ]
    )


def test_checks_go_after_each_exercise_s_cells_and_the_learner_s_own():
    reference = tiny_reference()
    submission = exercises.handout(reference)
    workspace = exercises.cells_tagged(submission, exercises.WORKSPACE)
    assert [exercises.number(c) for c in workspace] == [None, 1, 2]
    assert "it must have defined a." in workspace[1].source
    extra = nbformat.v4.new_code_cell("a = 1  # a cell the learner added")
    submission.cells.insert(submission.cells.index(workspace[1]) + 1, extra)
    submission.cells.append(nbformat.v4.new_code_cell("assert False", metadata={"tags": ["check"]}))
    nb, checks, areas = grade.with_checks(submission, reference)
    sources = [c.source for c in nb.cells]
    assert "assert False" not in sources  # the submission's own checks are dropped
    assert sources.index(extra.source) + 1 == sources.index("assert a == 1")
    assert sources.index("assert a == 1") + 1 == sources.index(workspace[2].source)
    assert sources[-1] == "assert b == 2"
    assert [c.source for c in areas[1]] == [workspace[1].source, extra.source]
    assert [c.source for c in checks[2]] == ["assert b == 2"]
    # a learner who deleted exercise 1's cell still gets its checks, at the end
    submission.cells.remove(workspace[1])
    nb, checks, areas = grade.with_checks(submission, reference)
    assert [c.source for c in nb.cells[-2:]] == ["assert a == 1", "assert b == 2"]
    assert areas[1] == []


def test_student_ids_come_from_the_file_name_or_its_folder():
    reference = ROOT / "notebooks" / f"{CHEAP[0]}.ipynb"
    references = grade.course_notebooks()
    for name, student in ((f"alice/{CHEAP[0]}.ipynb", "alice"), (f"x/bob_{CHEAP[0]}.ipynb", "bob")):
        assert grade.reference_for(Path(name), references) == reference
        assert grade.student_id(Path(name), reference) == student


def test_unusable_notebooks_are_refused_before_any_runs(tmp_path, capsys):
    notes, broken = tmp_path / "notes.ipynb", tmp_path / f"dave_{CHEAP[0]}.ipynb"
    shutil.copy(ROOT / "notebooks" / f"{CHEAP[0]}.ipynb", notes)
    broken.write_text("not a notebook")
    with pytest.raises(SystemExit) as stopped:
        grade.main([str(notes), str(broken), str(tmp_path / f"{CHEAP[1]}.ipynb")])
    assert stopped.value.code == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and "not a course notebook" in errors[0]
    assert str(broken) in errors[1] and f"{CHEAP[1]}.ipynb" in errors[2]


def test_a_cell_past_its_time_is_interrupted_and_the_run_goes_on(tmp_path):
    """A kernel-only notebook (no torch): exercise 1's answer sleeps past the time-out."""
    reference = tmp_path / "99_tiny.ipynb"
    nbformat.write(tiny_reference(), reference)
    submission = exercises.handout(tiny_reference())
    answers = {1: "import time\n\ntime.sleep(120)\na = 1", 2: "b = 2"}
    for cell in exercises.cells_tagged(submission, exercises.WORKSPACE)[1:]:
        cell.source += "\n" + answers[exercises.number(cell)]
    path = tmp_path / "erin" / reference.name
    path.parent.mkdir()
    nbformat.write(submission, path)
    graded = grade.grade(path, reference, timeout=5, artifacts=tmp_path / "artifacts")
    assert graded.student == "erin"
    assert [s.result for s in graded.scores] == [grade.FAILED, grade.PASSED]
    interrupted = "TimeoutError: the cell ran past 5 s; the grader interrupted it"
    assert graded.scores[0].error == interrupted
