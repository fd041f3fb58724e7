"""Write every notebook's first cell and the README's Colab badges from the repository's address.

    python export/colab_cell.py             # rewrite them from pyproject.toml's address
    python export/colab_cell.py --repository https://github.com/OWNER/NAME   # ./run retarget URL

The address lives once, as `Repository` under `[project.urls]` in pyproject.toml. The first code
cell of each course notebook clones it in Colab (or updates the clone when the cell runs again)
and installs the helpers; each badge opens a notebook of it in Colab. Only those lines change:
every other cell and byte of a notebook stays as it is. tests/test_colab_cell.py checks that the
notebooks and the README hold what this script writes. Standard library only, Python >= 3.10.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
README = ROOT / "README.md"
NOTEBOOKS = ROOT / "notebooks"
BRANCH = "main"  # the branch the badges open
CLONE = "/content/course"  # where the first cell puts the course in Colab
# the one line of pyproject.toml's [project.urls] that holds the address
URL_LINE = re.compile(r'^Repository = "(?P<url>[^"]*)"$', re.M)
GITHUB = re.compile(r"https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
# a badge's link: https://colab.research.google.com/github/OWNER/NAME/blob/BRANCH/notebooks/...
COLAB = re.escape("https://colab.research.google.com/github/")
BADGE_LINK = re.compile(COLAB + r"[^/\s]+/[^/\s]+/blob/[^/\s]+/")


def check_repository(url: str) -> str:
    """The address unchanged if it is a GitHub repository's, which Colab's badges need.

    Args:
        url: e.g. "https://github.com/OWNER/NAME", without a trailing ".git" or "/".

    Returns:
        url.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    if not GITHUB.fullmatch(url) or url.endswith(".git"):
        raise ValueError(
            f"url={url!r} is not a GitHub repository's address: give it as "
            "https://github.com/OWNER/NAME (Colab opens notebooks from GitHub), without .git or /"
        )
    return url


def repository(pyproject: Path = PYPROJECT) -> str:
    """The repository's address, from `Repository = "..."` in pyproject.toml's [project.urls]."""
    match = URL_LINE.search(pyproject.read_text(encoding="utf-8"))
    if match is None:
        raise ValueError(f'{pyproject}: no line `Repository = "..."` under [project.urls]')
    return check_repository(match.group("url"))


def first_cell(url: str) -> str:
    """The source of every course notebook's first code cell for the repository at `url`."""
    check_repository(url)
    return "\n".join(
        [
            "# Colab only: fetch the course, or update it when run again, and install its helpers",
            "# (Colab's own packages stay as they are)",
            "import sys",
            "",
            'if "google.colab" in sys.modules:',
            f"    !test -d {CLONE} || git clone -q --depth 1 {url} {CLONE}",
            f"    !git -C {CLONE} pull -q --ff-only",
            f"    %pip install -q -e {CLONE}",
            f'    sys.path.insert(0, "{CLONE}")',
            f"    %cd {CLONE}/notebooks",
        ]
    )


def badge_link(url: str) -> str:
    """The start of every badge's link, to which the notebook's path is appended."""
    owner_name = check_repository(url).removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_name}/blob/{BRANCH}/"


def course_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """The course's notebooks, in reading order."""
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def retarget_notebook(path: Path, url: str) -> bool:
    """Set the notebook's first code cell to first_cell(url); True if the file changed."""
    text = path.read_text(encoding="utf-8")
    notebook = json.loads(text)
    cell = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    cell["source"] = first_cell(url).splitlines(keepends=True)
    # as nbformat and Jupyter write a notebook, so that no other line of the file changes
    written = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    if written == text:
        return False
    path.write_text(written, encoding="utf-8")
    return True


def retarget_readme(text: str, url: str) -> str:
    """The README with every Colab badge's link pointing at the repository at `url`."""
    return BADGE_LINK.sub(badge_link(url), text)


def retarget(url: str) -> list[Path]:
    """Write `url` into pyproject.toml, the notebooks' first cells and the README's badges.

    Returns:
        The files that changed.
    """
    check_repository(url)
    changed = []
    text = PYPROJECT.read_text(encoding="utf-8")
    repository(PYPROJECT)  # fails if pyproject.toml has no address to replace
    new = URL_LINE.sub(f'Repository = "{url}"', text)
    if new != text:
        PYPROJECT.write_text(new, encoding="utf-8")
        changed.append(PYPROJECT)
    changed += [path for path in course_notebooks() if retarget_notebook(path, url)]
    text = README.read_text(encoding="utf-8")
    new = retarget_readme(text, url)
    if new != text:
        README.write_text(new, encoding="utf-8")
        changed.append(README)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", help="the new address, https://github.com/OWNER/NAME")
    arguments = parser.parse_args()
    url = repository() if arguments.repository is None else arguments.repository
    try:
        changed = retarget(url)
    except ValueError as error:
        parser.error(str(error))
    for path in changed:
        sys.stdout.write(f"rewrote {path.relative_to(ROOT)}\n")
    sys.stdout.write(f"first cells and badges point to {url} ({len(changed)} files changed)\n")


if __name__ == "__main__":
    main()
