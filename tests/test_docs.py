"""The README is one screen for a learner, and the code the docs print runs as printed."""

import re
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PACKAGE = ROOT / "docs" / "package.md"


def test_the_readme_is_short_and_says_first_what_to_run_and_what_it_takes():
    lines = README.read_text().splitlines()
    assert len(lines) <= 120
    first_screen = "\n".join(lines[:40])
    for needed in ("./run lab", "no GPU", "CPU", "GB on disk", "notebook 01", "Colab"):
        assert needed in first_screen, needed


def test_every_link_of_the_readme_and_docs_points_at_a_file():
    for page in [README, ROOT / "TEACHING.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_the_course_tables_are_up_to_date():
    ran = subprocess.run(
        [sys.executable, str(ROOT / "export" / "course_table.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr + ran.stdout


def test_the_own_model_and_data_snippet_runs_as_printed(capsys):
    code = re.search(r"```python\n(.*?)```", PACKAGE.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/package.md", "exec"), namespace)
    white, black, mistakes = namespace["white"], namespace["black"], namespace["mistakes"]
    assert len(mistakes) > 0 and torch.equal(white.index, mistakes.index)
    assert white.success_rate > 0.9 and black.success_rate > 0.5
    assert "| white box |" in capsys.readouterr().out
