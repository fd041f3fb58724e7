"""The course's notebooks share one structure (their execution is tested by nbval)."""

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_the_six_notebooks_are_there_in_order():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    # the first code cell sets Colab up, installs the package editable, and leaves torch alone
    colab = code[0].source
    assert "google.colab" in colab and '"-e", "/content/course"' in colab
    installs = [line for line in colab.splitlines() if "pip" in line and "install" in line]
    assert len(installs) == 1 and "torch" not in installs[0]
    parameters = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert (
        len(parameters) == 1 and 'os.environ.get("COURSE_FAST", "0") == "1"' in parameters[0].source
    )
    assert not any("COURSE_FAST" in cell.source for cell in code if cell is not parameters[0])
    for heading in ("**Objectives.**", "## Recap", "## Exercises", "<details><summary>"):
        assert heading in markdown, heading
    assert all(not cell.outputs for cell in code), "commit notebooks without outputs"
