"""Installing the course in Colab changes none of Colab's packages, checked without Colab.

uv resolves the package's requirements for Colab's Python on Linux with Colab's published
`pip freeze` (colab/pip-freeze.txt, see colab/README.md) as constraints, so a requirement that
Colab's versions do not meet makes the resolution fail. `./run test` also runs the notebooks and
the widget tests in .venv-colab/, built from colab/requirements.txt with Colab's versions.
"""

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLAB = ROOT / "colab"
_spec = importlib.util.spec_from_file_location("colab_constraints", COLAB / "constraints.py")
constraints = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(constraints)

PLATFORM = "x86_64-manylinux_2_35"  # Colab runs Ubuntu 22.04, glibc 2.35
# What installing the course adds to Colab. PyPI's torch is the CUDA build, so a resolver off
# Colab adds its CUDA runtime and triton, which Colab's CPU build neither has nor needs (pip leaves
# the installed torch alone); jedi is a requirement of Colab's ipython 7.34 that its image lacks;
# captum and cleanlab are the course's own requirements that Colab lacks (whatever they need in
# turn, Colab has at its own version).
EXPECTED_NEW = re.compile(r"nvidia-.*|cuda-.*|triton|jedi|captum|cleanlab")
# The Colab versions that .venv-colab pins (colab/requirements.in)
PINNED = ("torch", "torchvision", "ipywidgets", "ipykernel", "numpy", "matplotlib")


def uv() -> str:
    local = ROOT / ".tools" / "bin" / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    assert found, "uv is missing: ./run test installs it into .tools/"
    return found


def resolve(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """`uv pip compile` the package's requirements (plus `extra`) under Colab's freeze."""
    more = tmp_path / "extra.in"
    more.write_text("".join(f"{line}\n" for line in extra))
    command = [uv(), "pip", "compile", "pyproject.toml", str(more)]
    command += ["--constraints", "colab/constraints.txt", "--no-header", "--no-annotate"]
    command += ["--python-version", constraints.python_version(), "--python-platform", PLATFORM]
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)


def versions(requirements: str) -> dict[str, str]:
    pairs = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", requirements, re.M)
    return {constraints.normalize(name): version for name, version in pairs}


@pytest.fixture(scope="module")
def colab() -> dict[str, str]:
    return constraints.pinned_versions()


def test_constraints_are_what_the_script_makes_of_the_freeze():
    assert (COLAB / "constraints.txt").read_text() == constraints.constraints_text()


def test_the_freeze_is_colab_with_ipywidgets_7(colab):
    assert colab["ipywidgets"].startswith("7.")
    assert all(name in colab for name in constraints.PROTECTED)


def test_installing_the_course_changes_no_colab_package(tmp_path, colab):
    result = resolve(tmp_path)
    assert result.returncode == 0, result.stderr
    resolved = versions(result.stdout)
    for name in constraints.PROTECTED:
        assert resolved[name] == colab[name], name
    changed = {name: (colab[name], v) for name, v in resolved.items() if colab.get(name, v) != v}
    assert changed == {}
    new = sorted(name for name in resolved if name not in colab)
    assert [name for name in new if not EXPECTED_NEW.fullmatch(name)] == [], new


def test_the_check_fails_for_a_requirement_that_would_upgrade_colab(tmp_path):
    result = resolve(tmp_path, "ipywidgets>=8.0")  # what the package asked for before
    assert result.returncode != 0
    assert "ipywidgets>=8.0" in result.stderr and "ipywidgets==7.7.1" in result.stderr


def test_the_pinned_environment_has_colab_versions(colab):
    pinned = versions((COLAB / "requirements.txt").read_text())
    assert {name: pinned[name] for name in PINNED} == {name: colab[name] for name in PINNED}
    differing = {name: v for name, v in pinned.items() if colab.get(name, v) != v}
    assert differing.keys() == overridden(), "only colab/overrides.txt may differ from Colab"


def overridden() -> set[str]:
    """The packages colab/overrides.txt swaps for .venv-colab/ (each with its reason there)."""
    lines = (COLAB / "overrides.txt").read_text().splitlines()
    names = [re.split(r"[<>=!~ ]", line, maxsplit=1)[0] for line in lines]
    return {constraints.normalize(name) for name in names if name and not name.startswith("#")}
