"""Installing the course in Colab changes none of Colab's packages, checked without Colab.

uv resolves the package's requirements for Colab's Python (3.13) on Linux with Colab's published
`pip freeze` (colab/pip-freeze.txt, see colab/README.md) as constraints, so a requirement that
Colab's versions do not meet makes the resolution fail. `./run test` also runs the notebooks and
the widget tests in .venv-colab/, built from colab/requirements.txt with Colab's versions on this
machine's Python (3.11).
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
# What installing the course adds to Colab: jedi is a requirement of Colab's ipython 7.34 that its
# image lacks; captum and cleanlab are the course's own requirements that Colab lacks (whatever
# they need in turn, Colab has at its own version).
EXPECTED_NEW = ("captum", "cleanlab", "jedi")
# The Colab versions that .venv-colab pins (colab/requirements.in)
PINNED = (
    *("torch", "torchvision", "numpy", "matplotlib", "ipywidgets"),
    *("ipykernel", "ipython", "notebook", "jupyter-server"),
    *("fastapi", "uvicorn", "httpx", "tenacity"),
)
# What helpers.serving and helpers.remote add to the package's requirements (issue 24's merge)
SERVING = ("fastapi>=0.110", "uvicorn>=0.30", "httpx>=0.27", "tenacity>=8.2")


def uv() -> str:
    local = ROOT / ".tools" / "bin" / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    assert found, "uv is missing: ./run test installs it into .tools/"
    return found


def compile_for_colab(*arguments: str) -> subprocess.CompletedProcess:
    """`uv pip compile` for Colab's Python and OS, never downloading an interpreter."""
    command = [uv(), "pip", "compile", *arguments, "--no-header", "--no-annotate"]
    command += ["--python-version", constraints.python_version(), "--python-platform", PLATFORM]
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def cuda_runtime(tmp_path_factory, colab) -> Path:
    """An excludes file: what PyPI's build of Colab's torch needs and its CPU build does not."""
    folder = tmp_path_factory.mktemp("cuda")
    torch = folder / "torch.in"
    torch.write_text(f"torch=={colab['torch']}\ntorchvision=={colab['torchvision']}\n")
    result = compile_for_colab(str(torch))
    assert result.returncode == 0, result.stderr
    names = [name for name in versions(result.stdout) if constraints.CUDA_RUNTIME.fullmatch(name)]
    assert "triton" in names and any(name.startswith("nvidia-") for name in names), names
    excludes = folder / "excludes.txt"
    excludes.write_text("".join(f"{name}\n" for name in names))
    return excludes


def resolve(tmp_path: Path, cuda_runtime: Path, *extra: str) -> subprocess.CompletedProcess:
    """`uv pip compile` the package's requirements (plus `extra`) under Colab's freeze.

    Colab's torch is the CPU build: the CUDA runtime that PyPI's build pins (at versions that may
    clash with the freeze's, which are there for other packages) is left out of the resolution.
    """
    more = tmp_path / "extra.in"
    more.write_text("".join(f"{line}\n" for line in extra))
    return compile_for_colab(
        *("pyproject.toml", str(more), "--constraints", "colab/constraints.txt"),
        *("--excludes", str(cuda_runtime)),
    )


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


def added_to_colab(resolved: dict[str, str], colab: dict[str, str]) -> list[str]:
    """What the resolution installs that Colab lacks, after failing on any version changed."""
    for name in constraints.PROTECTED:
        assert resolved[name] == colab[name], name
    changed = {name: (colab[name], v) for name, v in resolved.items() if colab.get(name, v) != v}
    assert changed == {}
    return sorted(name for name in resolved if name not in colab)


def test_installing_the_course_changes_no_colab_package(tmp_path, cuda_runtime, colab):
    result = resolve(tmp_path, cuda_runtime)
    assert result.returncode == 0, result.stderr
    assert added_to_colab(versions(result.stdout), colab) == list(EXPECTED_NEW)


def test_the_serving_requirements_take_colab_versions(tmp_path, cuda_runtime, colab):
    result = resolve(tmp_path, cuda_runtime, *SERVING)
    assert result.returncode == 0, result.stderr
    resolved = versions(result.stdout)
    assert added_to_colab(resolved, colab) == list(EXPECTED_NEW)
    served = [re.split(r"[<>=]", requirement, maxsplit=1)[0] for requirement in SERVING]
    assert {name: resolved[name] for name in served} == {name: colab[name] for name in served}


def test_the_check_fails_for_a_requirement_that_would_upgrade_colab(tmp_path, cuda_runtime):
    result = resolve(tmp_path, cuda_runtime, "ipywidgets>=8.0")  # the package's requirement before
    assert result.returncode != 0
    assert "ipywidgets>=8.0" in result.stderr and "ipywidgets==7.7.1" in result.stderr


def test_the_pinned_environment_has_colab_versions(colab):
    pinned = versions((COLAB / "requirements.txt").read_text())
    assert {name: pinned[name] for name in PINNED} == {name: colab[name] for name in PINNED}
    differing = {name for name, v in pinned.items() if colab.get(name, v) != v}
    cuda = {name for name in differing if constraints.CUDA_RUNTIME.fullmatch(name)}
    message = "only colab/overrides.txt and PyPI torch's CUDA runtime may differ from Colab"
    assert differing - cuda == constraints.overridden(), message
