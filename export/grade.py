"""Grade learners' notebooks: run each with the exercises' checks, print scores: `./run grade`.

    python export/grade.py alice/02_find_misclassified.ipynb bob_08_explore.ipynb --csv class.csv

A submission is a handout (`./run handout`) that a learner filled in. Its reference is the course
notebook whose name its file name contains (`02_find_misclassified`); the student is the rest of
the file name (`bob_08_explore.ipynb`: bob), or else the folder's name (alice). The grader drops
any check cell the submission holds, inserts the reference's checks of each exercise after that
exercise's cells (from its workspace cell up to the next exercise's) and runs the notebook in a
fresh kernel, in fast mode (COURSE_FAST=1), in an empty folder, each cell within `--timeout`
seconds, going on after a cell that raises. An exercise passes when its checks ran without an
error, fails when one raised, and is "not reached" when the kernel died before its checks ran.

Models are saved in `--artifacts` (default: $COURSE_ARTIFACTS, else build/grade-artifacts): the
first notebook to need one trains it in fast mode, the others load it. Grading runs the
learners' code as it is: run it where that is safe.

Exit status: 0 once every submission is graded, whatever its score; 2 when a submission is
unusable (missing, not a notebook, not named after a course notebook), before any of them runs.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exercises  # noqa: E402  (beside this file; export/ is not a package)
import run_notebooks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = ROOT / "notebooks"
TIMEOUT = 600  # seconds a cell may run before the grader interrupts it
PASSED, FAILED, NOT_REACHED = "passed", "failed", "not reached"
CSV_COLUMNS = ("student", "notebook", "exercise", "result", "error", "file")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Score:
    """One exercise of one submission: its result and the first error among its cells."""

    exercise: int
    result: str  # PASSED, FAILED or NOT_REACHED
    error: str = ""


@dataclass
class Graded:
    """One submission: who, against which reference, each exercise's score, what went wrong."""

    path: Path
    student: str
    reference: Path
    scores: list[Score] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def num_passed(self) -> int:
        return sum(score.result == PASSED for score in self.scores)


def course_notebooks(reference_dir: Path = REFERENCES) -> dict[str, Path]:
    """File stem -> path of each course notebook (NN_name.ipynb) in `reference_dir`."""
    return {path.stem: path for path in sorted(reference_dir.glob("[0-9][0-9]_*.ipynb"))}


def reference_for(path: Path, references: dict[str, Path]) -> Path:
    """The course notebook whose name `path`'s file name contains; ValueError if none is."""
    if path.suffix != ".ipynb":
        raise ValueError(f"{path}: not a notebook (.ipynb)")
    found = [stem for stem in references if stem in path.stem]
    if len(found) != 1:
        raise ValueError(
            f"{path}: not a course notebook: its file name must contain the name of exactly one "
            f"of {', '.join(references)} (as alice/02_find_misclassified.ipynb or "
            "alice_02_find_misclassified.ipynb do)"
        )
    return references[found[0]]


def student_id(path: Path, reference: Path) -> str:
    """The file name without the course notebook's name, or else the folder's name."""
    rest = path.stem.replace(reference.stem, "").strip(" _-.")
    return rest or path.resolve().parent.name


def with_checks(
    submission: NotebookNode, reference: NotebookNode
) -> tuple[NotebookNode, dict[int, list[NotebookNode]], dict[int, list[NotebookNode]]]:
    """A copy of `submission` with the reference's checks after each exercise's cells.

    Exercise N's cells run from the first cell that carries its number to the next such cell of
    another exercise (or the end): cells a learner adds below a workspace cell belong to it.
    Returns the notebook, exercise -> its check cells, and exercise -> the submission's own
    cells for it (none when the learner deleted them: its checks then go to the end).
    """
    nb = copy.deepcopy(submission)
    own = [cell for cell in nb.cells if exercises.CHECK not in exercises.tags(cell)]
    numbers = sorted(exercises.exercise_texts(reference))
    starts: dict[int, int] = {}
    for at, cell in enumerate(own):
        if exercises.number(cell) in numbers:
            starts.setdefault(exercises.number(cell), at)
    bounds = sorted(starts.values()) + [len(own)]
    ends = {n: next(b for b in bounds if b > start) for n, start in starts.items()}
    areas = {n: own[starts[n] : ends[n]] if n in starts else [] for n in numbers}
    checks = {
        n: [copy.deepcopy(cell) for cell in exercises.cells_tagged(reference, exercises.CHECK, n)]
        for n in numbers
    }
    cells = []
    for at in range(len(own) + 1):
        for n in numbers:
            if ends.get(n, len(own)) == at:
                cells += checks[n]
        cells += own[at : at + 1]
    nb.cells = cells
    return nb, checks, areas


def error_line(content: dict) -> str:
    """'Name: first line of the message' of an execute reply's error (or its failing line)."""
    name, value = content.get("ename", "Error"), content.get("evalue", "").strip()
    first = value.splitlines()[0] if value else _failing_line(content.get("traceback", []))
    return f"{name}: {first}" if first else name


def _failing_line(traceback: list[str]) -> str:
    """The source line IPython's traceback points at ('----> 5 assert ...'), or ''."""
    for line in ANSI.sub("", "\n".join(traceback)).splitlines():
        if match := re.match(r"-+>\s*\d+\s+(.*)", line):
            return match.group(1).strip()
    return ""


def execute(nb: NotebookNode, *, timeout: int, artifacts: Path) -> tuple[dict[int, str], bool]:
    """Run `nb` in place, in a fresh kernel started in an empty folder, in fast mode.

    Returns cell position -> its first error line ('' when it ran without one; a cell that never
    ran is absent) and whether the kernel died before the end.
    """
    outcome: dict[int, str] = {}

    def record(cell: NotebookNode, cell_index: int, execute_reply: dict) -> None:
        content = execute_reply.get("content", {})
        outcome[cell_index] = error_line(content) if content.get("status") == "error" else ""

    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = os.environ | {
        "COURSE_FAST": "1",
        "COURSE_ARTIFACTS": str(artifacts.resolve()),
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join(paths),  # this repository's helpers, as ./run test
    }
    interrupted = f"the cell ran past {timeout} s; the grader interrupted it"
    with tempfile.TemporaryDirectory(prefix="grade-") as folder:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            allow_errors=True,
            interrupt_on_timeout=True,
            error_on_timeout={"ename": "TimeoutError", "evalue": interrupted, "traceback": []},
            on_cell_executed=record,
            resources={"metadata": {"path": folder}},
            config=run_notebooks.kernel_config(),
        )
        try:
            client.execute(env=env)
        except DeadKernelError:
            return outcome, True
    return outcome, False


def score(
    nb: NotebookNode, checks: dict[int, list], areas: dict[int, list], outcome: dict[int, str]
) -> list[Score]:
    """Each exercise's Score: passed when every check ran without an error, failed when one
    raised, not reached when one never ran; the error is the first among its cells."""
    position = {id(cell): at for at, cell in enumerate(nb.cells)}
    scores = []
    for exercise in sorted(checks):
        mine = [position[id(cell)] for cell in checks[exercise]]
        cells = sorted(mine + [position[id(cell)] for cell in areas[exercise]])
        errors = [outcome[at] for at in cells if outcome.get(at)]
        if any(outcome.get(at) for at in mine):
            result = FAILED
        elif all(at in outcome for at in mine):
            result = PASSED
        else:
            result = NOT_REACHED
        scores.append(Score(exercise, result, errors[0] if errors and result != PASSED else ""))
    return scores


def grade(path: Path, reference: Path, *, timeout: int = TIMEOUT, artifacts: Path) -> Graded:
    """Run one submission with the reference's checks and score each exercise."""
    start = time.perf_counter()
    graded = Graded(path, student_id(path, reference), reference)
    reference_nb = nbformat.read(reference, as_version=4)
    nb, checks, areas = with_checks(nbformat.read(path, as_version=4), reference_nb)
    outcome, died = execute(nb, timeout=timeout, artifacts=artifacts)
    graded.scores = score(nb, checks, areas, outcome)
    first_exercise = min(
        (at for at, cell in enumerate(nb.cells) if exercises.number(cell) is not None),
        default=len(nb.cells),
    )
    lesson_errors = [(at, outcome[at]) for at in range(first_exercise) if outcome.get(at)]
    if lesson_errors:
        at, line = lesson_errors[0]
        graded.notes.append(f"before the exercises, cell {at + 1} raised {line}")
    if died:
        code = [at for at, cell in enumerate(nb.cells) if cell.cell_type == "code"]
        at = next((at for at in code if at not in outcome and nb.cells[at].source.strip()), None)
        graded.notes.append(f"the kernel died in cell {at + 1 if at is not None else '?'}")
    graded.seconds = time.perf_counter() - start
    return graded


def table(graded: Graded) -> str:
    """The score table of one submission, as printed."""
    lines = [f"==> {graded.path}: student {graded.student}, notebook {graded.reference.stem}"]
    lines.append(f"    {'exercise':<10}{'result':<13}first error")
    for s in graded.scores:
        lines.append(f"    {s.exercise:<10}{s.result:<13}{s.error}".rstrip())
    lines += [f"    note: {note}" for note in graded.notes]
    lines.append(
        f"    {graded.num_passed} of {len(graded.scores)} exercises passed ({graded.seconds:.0f} s)"
    )
    return "\n".join(lines)


def append_csv(path: Path, graded: Graded) -> None:
    """Append one row per exercise of `graded` to the CSV at `path` (a header when new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as file:
        writer = csv.writer(file)
        if new:
            writer.writerow(CSV_COLUMNS)
        for s in graded.scores:
            row = (graded.student, graded.reference.stem, s.exercise, s.result, s.error)
            writer.writerow((*row, str(graded.path)))


def usable(paths: list[Path], references: dict[str, Path]) -> tuple[list[Path], list[str]]:
    """Each submission's reference, and a message for each unusable submission."""
    found, problems = [], []
    for path in paths:
        try:
            reference = reference_for(path, references)
            nbformat.read(path, as_version=4)
        except (OSError, ValueError) as error:  # nbformat's NotJSONError is a ValueError
            problems.append(str(error) if str(path) in str(error) else f"{path}: {error}")
            continue
        found.append(reference)
    return found, problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="the learners' notebooks")
    parser.add_argument("--csv", type=Path, help="append one row per (notebook, exercise) here")
    parser.add_argument("--timeout", type=int, default=TIMEOUT, help="seconds per cell")
    default_artifacts = os.environ.get("COURSE_ARTIFACTS", str(ROOT / "build/grade-artifacts"))
    parser.add_argument("--artifacts", type=Path, default=Path(default_artifacts))
    args = parser.parse_args(argv)
    if args.timeout < 1:
        parser.error(f"--timeout {args.timeout}: give the seconds a cell may run, at least 1")
    references, problems = usable(args.notebooks, course_notebooks())
    if problems:
        print("\n".join(f"error: {problem}" for problem in problems), file=sys.stderr)
        sys.exit(2)
    for path, reference in zip(args.notebooks, references):
        graded = grade(path, reference, timeout=args.timeout, artifacts=args.artifacts)
        print(table(graded), flush=True)
        if args.csv:
            append_csv(args.csv, graded)
    if args.csv:
        print(f"==> rows appended to {args.csv}")


if __name__ == "__main__":
    main()
