"""The package's shape: one module per concern, each importing only modules below it, every
import of the package at the top of its module (so no circle can hide in a function); only
plotting and widgets import matplotlib."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "helpers"
# bottom to top; a module may import modules of its own floor or below, never above
FLOORS = [
    {"runtime", "validation", "records", "objectives", "geometry"},
    {"models", "zoo", "generators", "translation", "data"},
    {"architectures", "engine", "blackbox", "evaluation", "metrics", "evidence", "spectrum"},
    {"checkpoints", "decoy", "weaknesses", "attributions", "faithfulness"},
    {"training", "serving"},
    {"attacks", "generative", "transparent"},
    {"surrogate", "defences", "labelnoise", "remote", "causes"},
    {"comparison"},
    {"course", "explorer"},
    {"plotting"},
    {"widgets"},
]
FLOOR = {name: level for level, names in enumerate(FLOORS) for name in names}
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def concern(path: Path) -> str:
    """The module's concern: its name, or its package's (helpers/plotting/basics.py: plotting)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(helpers modules it imports, top-level third-party packages it imports)."""
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "helpers":
                ours |= {alias.name for alias in node.names}
            elif node.module.startswith("helpers."):
                ours.add(node.module.split(".")[1])
            else:
                theirs.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            theirs |= {alias.name.split(".")[0] for alias in node.names}
    return ours - {concern(path)}, theirs


def test_every_module_has_a_floor():
    assert {concern(path) for path in MODULES} == set(FLOOR)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_one_above_it(path):
    ours, _ = imports(path)
    above = {name for name in ours if FLOOR[name] > FLOOR[concern(path)]}
    assert not above, f"{concern(path)} imports {sorted(above)} from a higher floor"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_keep_to_their_libraries(path):
    _, theirs = imports(path)
    if concern(path) not in ("plotting", "widgets"):
        assert "matplotlib" not in theirs
    if concern(path) != "widgets":
        assert "ipywidgets" not in theirs


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_import_of_the_package_sits_at_the_top_of_its_module(path):
    """No helpers module is imported inside a function, where a circle could hide (a heavy
    third-party library may be, so that a path that never needs it never pays for it)."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    late = [
        node.lineno
        for node in ast.walk(tree)
        if id(node) not in top
        and (
            (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers"))
            or (
                isinstance(node, ast.Import)
                and any(alias.name.startswith("helpers") for alias in node.names)
            )
        )
    ]
    assert not late, f"helpers imported inside a function or class at lines {late}"
