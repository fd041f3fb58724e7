"""The exercises' tagging scheme, read by `./run handout`, `./run grade` and the tests.

Every notebook ends with "## Exercises" (a numbered list), then "## Solutions". Each cell of
the solutions carries a tag, and each cell of one exercise its number in its metadata,
`"exercise": N` (docs/grading.md):

- `answer`: the "## Solutions" heading (no number), each "**Solution N.**" heading and the
  prose after each solution, which says what the run shows;
- `solution`: the one code cell of exercise N's solution;
- `check`: one or more code cells after it, the assertions that any correct answer passes. They
  read the names that exercise N's text asks the learner's code to define.

A handout drops every `answer`, `solution` and `check` cell and puts, where the solutions began,
a "## Your answers" cell and one code cell per exercise tagged `workspace`, which repeats the
exercise and names what it must define. The grader inserts the reference's checks after each.
"""

from __future__ import annotations

import ast
import builtins
import copy
import re
import symtable
import textwrap
from collections.abc import Iterable, Iterator

import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from nbformat import NotebookNode

SOLUTION, ANSWER, CHECK, WORKSPACE = "solution", "answer", "check", "workspace"
HIDDEN = (SOLUTION, ANSWER, CHECK)  # the tags a handout leaves out
NUMBER = "exercise"  # the cell metadata key holding the exercise's number
EXERCISES, SOLUTIONS = "## Exercises", "## Solutions"
# names every kernel has without an import: Python's builtins and IPython's
KERNEL_NAMES = frozenset(dir(builtins)) | {"display", "get_ipython", "In", "Out", "exit", "quit"}
YOUR_ANSWERS = """\
## Your answers

Write each exercise's code in the code cell under its number (add cells below it if you need
more). Each exercise's text says which names your code must define: a grader runs this
notebook from the top in a fresh kernel, in fast mode, then checks what each exercise's cells
left defined (`./run grade`, docs/grading.md). Run the cells above first."""


def tags(cell: NotebookNode) -> list[str]:
    """The cell's tags (an empty list when it has none)."""
    return list(cell.metadata.get("tags", []))


def number(cell: NotebookNode) -> int | None:
    """The exercise a cell belongs to (its metadata's "exercise"), or None."""
    return cell.metadata.get(NUMBER)


def exercises_index(nb: NotebookNode) -> int:
    """The position of the "## Exercises" cell; ValueError if the notebook has none."""
    for at, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and cell.source.startswith(EXERCISES):
            return at
    raise ValueError(f"the notebook has no markdown cell starting with {EXERCISES!r}")


def exercise_texts(nb: NotebookNode) -> dict[int, str]:
    """Exercise number -> its text, from the numbered list of the "## Exercises" cell.

    An item is a line "N. text" and the indented lines under it; whitespace is collapsed.
    """
    items: dict[int, list[str]] = {}
    current = None
    for line in nb.cells[exercises_index(nb)].source.splitlines():
        if match := re.match(r"(\d+)\. (.*)", line):
            current = int(match.group(1))
            items[current] = [match.group(2)]
        elif current is not None and line[:1].isspace() and line.strip():
            items[current].append(line.strip())
        else:
            current = None
    return {n: " ".join(" ".join(lines).split()) for n, lines in items.items()}


def python(source: str) -> str:
    """A cell's source as plain Python (IPython's %magics and !shell lines turned into calls)."""
    return TransformerManager().transform_cell(source)


def _tables(table: symtable.SymbolTable) -> Iterator[symtable.SymbolTable]:
    yield table
    for child in table.get_children():
        yield from _tables(child)


def bound_names(source: str) -> set[str]:
    """Names that `source` binds at its top level (assigns, imports, defines, loops over)."""
    table = symtable.symtable(python(source), "<cell>", "exec")
    return {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}


def read_names(source: str) -> list[str]:
    """Global names that `source` reads and does not bind itself, in order of appearance.

    A name read inside a function, lambda or comprehension counts when it is global there.
    """
    code = python(source)
    top = symtable.symtable(code, "<cell>", "exec")
    own = bound_names(source)
    free = {
        s.get_name()
        for table in _tables(top)
        for s in table.get_symbols()
        if s.is_referenced() and (s.is_global() if table is not top else s.get_name() not in own)
    }
    loads = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)]
    loads.sort(key=lambda n: (n.lineno, n.col_offset))
    return list(dict.fromkeys(n.id for n in loads if n.id in free))


def lesson_names(nb: NotebookNode) -> set[str]:
    """Names bound by the code cells before "## Exercises": what every learner's kernel has."""
    cells = nb.cells[: exercises_index(nb)]
    return set().union(*(bound_names(c.source) for c in cells if c.cell_type == "code"))


def cells_tagged(nb: NotebookNode, tag: str, exercise: int | None = None) -> list[NotebookNode]:
    """The cells carrying `tag` (and, when given, belonging to `exercise`), in order."""
    return [
        cell
        for cell in nb.cells
        if tag in tags(cell) and (exercise is None or number(cell) == exercise)
    ]


def required_names(nb: NotebookNode) -> dict[int, list[str]]:
    """Exercise number -> the names its checks read that the learner's code must define.

    Those are the names the check cells read that neither the lesson (the cells before
    "## Exercises"), nor the kernel, nor the check itself defines.
    """
    known = lesson_names(nb) | KERNEL_NAMES
    required: dict[int, list[str]] = {n: [] for n in exercise_texts(nb)}
    for cell in cells_tagged(nb, CHECK):
        names = [name for name in read_names(cell.source) if name not in known]
        required.setdefault(number(cell), [])
        required[number(cell)] = list(dict.fromkeys(required[number(cell)] + names))
    return required


def and_list(names: Iterable[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    names = list(names)
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def workspace_source(exercise: int, text: str, names: list[str]) -> str:
    """The comment lines of a handout's empty cell: the exercise, then what it must define."""
    asked = textwrap.wrap(f"Exercise {exercise}. {text}", width=97)
    must = textwrap.wrap(
        "Write your code here. When it has run, it must have defined " + and_list(names) + ".",
        width=97,
    )
    return "\n".join(f"# {line}" for line in [*asked, "", *must]).replace("# \n", "#\n")


def handout(nb: NotebookNode) -> NotebookNode:
    """A student version of `nb`: no solution, answer or check cell, no output.

    Where the solutions began it puts a "## Your answers" markdown cell and, per exercise, a
    code cell tagged `workspace` with the exercise's number in its metadata.
    """
    student = copy.deepcopy(nb)
    texts, names = exercise_texts(nb), required_names(nb)
    hidden = [at for at, cell in enumerate(nb.cells) if set(tags(cell)) & set(HIDDEN)]
    if not hidden:
        raise ValueError("the notebook has no cell tagged solution, answer or check")
    workspace = [nbformat.v4.new_markdown_cell(YOUR_ANSWERS, metadata={"tags": [WORKSPACE]})]
    for exercise, text in texts.items():
        source = workspace_source(exercise, text, names[exercise])
        metadata = {"tags": [WORKSPACE], NUMBER: exercise}
        workspace.append(nbformat.v4.new_code_cell(source, metadata=metadata))
    kept = [cell for at, cell in enumerate(student.cells) if at not in hidden]
    first = hidden[0]  # every cell before the first hidden one is kept
    student.cells = kept[:first] + workspace + kept[first:]
    for cell in student.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return student
