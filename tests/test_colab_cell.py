"""The repository's address is written once (pyproject.toml) and every Colab cell and badge uses it.

export/colab_cell.py writes each notebook's first cell and the README's Colab badges from it;
the first cell, run again in Colab, updates its clone instead of failing.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "export"))
import colab_cell  # noqa: E402  (export/ is not a package)

URL = colab_cell.repository()
FORK = "https://github.com/a-teacher/course-fork"
NOTEBOOKS = colab_cell.course_notebooks()
# a badge's link, which opens a notebook from GitHub (its image is under .../assets/)
BADGE = re.compile(r"\]\((https://colab\.research\.google\.com/github/[^)\s]+)\)")


def test_the_address_is_pyprojects_repository_url():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11; the script reads the line itself
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Repository"] == URL and URL.startswith("https://github.com/")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_first_cell_clones_the_address(path):
    cells = json.loads(path.read_text())["cells"]
    first = next(cell for cell in cells if cell["cell_type"] == "code")
    assert "".join(first["source"]) == colab_cell.first_cell(URL)
    assert f"git clone -q --depth 1 {URL} /content/course" in colab_cell.first_cell(URL)


def test_every_notebook_has_one_badge_and_every_badge_opens_the_address():
    links = BADGE.findall((ROOT / "README.md").read_text())
    colab = URL.replace("https://github.com/", "https://colab.research.google.com/github/")
    expected = [f"{colab}/blob/main/notebooks/{path.name}" for path in NOTEBOOKS]
    assert links == expected


def test_retargeting_changes_the_first_cell_and_nothing_else(tmp_path):
    original = NOTEBOOKS[0].read_text()
    copy = tmp_path / NOTEBOOKS[0].name
    copy.write_text(original)
    assert colab_cell.retarget_notebook(copy, FORK)
    before, after = json.loads(original)["cells"], json.loads(copy.read_text())["cells"]
    differing = [at for at, (old, new) in enumerate(zip(before, after)) if old != new]
    assert len(before) == len(after) and differing == [1]  # cell 0 is the title
    assert f"git clone -q --depth 1 {FORK} /content/course" in "".join(after[1]["source"])
    assert not colab_cell.retarget_notebook(copy, FORK)  # a second run changes nothing
    assert colab_cell.retarget_notebook(copy, URL) and copy.read_text() == original


def test_retargeting_the_readme_moves_every_badge_and_nothing_else():
    readme = (ROOT / "README.md").read_text()
    forked = colab_cell.retarget_readme(readme, FORK)
    links = BADGE.findall(forked)
    assert len(links) == len(NOTEBOOKS)
    assert all(link.startswith(f"{colab_cell.badge_link(FORK)}notebooks/") for link in links)
    assert "github/a-teacher/course-fork/blob/main/notebooks/01_train_cnn.ipynb" in forked
    assert colab_cell.retarget_readme(forked, URL) == readme


@pytest.mark.parametrize(
    "url",
    [
        "github.com/a-teacher/course",  # no scheme
        "https://github.com/a-teacher/course.git",
        "https://github.com/a-teacher/course/",
        "https://gitlab.com/a-teacher/course",  # Colab opens notebooks from GitHub only
    ],
)
def test_an_address_colab_cannot_open_is_rejected(url):
    with pytest.raises(ValueError, match="https://github.com/OWNER/NAME"):
        colab_cell.first_cell(url)


def test_running_the_first_cell_again_pulls_instead_of_failing(tmp_path):
    # the cell's shell lines, with a local repository for the address and tmp_path for /content
    upstream, clone = tmp_path / "upstream", tmp_path / "content" / "course"
    cell = colab_cell.first_cell(URL).replace(URL, upstream.as_uri())
    commands = [
        line.strip()[1:].replace(colab_cell.CLONE, str(clone))
        for line in cell.splitlines()
        if line.strip().startswith("!")
    ]
    assert len(commands) == 2
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(upstream)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(upstream)], check=True)

    def commit(text: str) -> None:
        (upstream / "lesson.txt").write_text(text)
        subprocess.run([*git, "add", "lesson.txt"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", text], check=True)

    def run_cell() -> None:
        for command in commands:
            subprocess.run(["sh", "-c", command], check=True, capture_output=True)

    commit("first")
    run_cell()
    assert (clone / "lesson.txt").read_text() == "first"
    commit("second")
    run_cell()  # `git clone` alone fails here: "destination path ... already exists"
    assert (clone / "lesson.txt").read_text() == "second"
