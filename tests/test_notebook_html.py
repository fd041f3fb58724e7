"""The HTML of `./run course` works offline: math, saved widget state, alt text on every image.

A tiny notebook made here (a formula, a figure, a progress bar's saved state) goes through
export/notebook_html.py, the conversion `./run course` uses; no course notebook is executed.
"""

import base64
import html
import importlib.util
import io
import re
from pathlib import Path

import ipywidgets
import matplotlib.pyplot as plt
import nbformat
import pytest
from ipywidgets.embed import dependency_state

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("notebook_html", ROOT / "export/notebook_html.py")
notebook_html = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebook_html)
CDNS = ("cdnjs.cloudflare.com", "unpkg.com", "cdn.jsdelivr.net", "mathjax.org")
INTRODUCTION = "# 00 · Tiny\n\nA change $\\delta$ and its size $\\|\\delta\\|$."
PLACEHOLDER = "No description has been provided for this image"  # nbconvert's own alt text


def figure_png() -> str:
    figure, axes = plt.subplots(figsize=(2, 2))
    axes.plot([0, 1], [1, 0])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def tiny_notebook(path: Path) -> str:
    """Write an executed-looking notebook; return the progress bar's model id."""
    progress = ipywidgets.IntProgress(value=3, max=3, description="epochs")
    state = {"version_major": 2, "version_minor": 0, "state": dependency_state(progress)}
    view = {"model_id": progress.model_id, "version_major": 2, "version_minor": 0}
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    nb.cells = [
        nbformat.v4.new_markdown_cell(INTRODUCTION),
        nbformat.v4.new_markdown_cell("## Learning curves"),
        nbformat.v4.new_code_cell(
            'fig = plotting.plot_history(history, title="Loss per epoch")\nplt.show()',
            outputs=[
                nbformat.v4.new_output(
                    "display_data",
                    data={"image/png": figure_png(), "text/plain": "<Figure size 200x200>"},
                )
            ],
        ),
        nbformat.v4.new_code_cell(
            "show(progress)",
            outputs=[
                nbformat.v4.new_output(
                    "display_data",
                    data={"application/vnd.jupyter.widget-view+json": view, "text/plain": "bar"},
                )
            ],
        ),
    ]
    nbformat.write(nb, path)
    progress.close()
    return view["model_id"]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("html")
    model_id = tiny_notebook(folder / "00_tiny.ipynb")
    page = notebook_html.convert(folder / "00_tiny.ipynb", folder / "html")
    return page, page.read_text(), model_id


def test_scripts_load_from_beside_the_page(page):
    path, text, _ = page
    sources = re.findall(r"<script[^>]*\ssrc=\"([^\"]+)\"", text)
    sources += re.findall(r"var widgetRendererSrc = '([^']+)'", text)
    assert len(sources) >= 3  # require.js, MathJax, the widget manager
    for source in sources:
        assert not re.match(r"[a-z]+:|//", source), source
        assert (path.parent / source).is_file(), source
    assert not [cdn for cdn in CDNS if cdn in text]


def test_math_is_left_for_the_local_mathjax(page):
    _, text, _ = page
    assert "$\\delta$" in text and "inlineMath: [['$', '$']" in text
    assert 'src="_static/mathjax/tex-svg-full.js"' in text


def test_the_saved_widget_state_is_embedded(page):
    _, text, model_id = page
    assert '<script type="application/vnd.jupyter.widget-state+json">' in text
    assert text.count(model_id) >= 2  # in the state and in the view


def test_every_image_has_alt_text(page):
    _, text, _ = page
    images = re.findall(r"<img\b[^>]*>", text)
    assert len(images) == 1
    alt = html.unescape(re.search(r'alt="([^"]*)"', images[0]).group(1))
    assert alt == (
        "Figure 1 of “00 · Tiny”, section “Learning curves”: “Loss per epoch”, "
        "drawn by plotting.plot_history(history, title='Loss per epoch')"
    )
    assert PLACEHOLDER not in text


def test_alt_text_from_the_notebook_wins(tmp_path):
    tiny_notebook(tmp_path / "00_tiny.ipynb")
    nb = nbformat.read(tmp_path / "00_tiny.ipynb", as_version=4)
    nb.cells[2].metadata["alt"] = "Loss falls from 2.3 to 0.1 over 8 epochs."
    nbformat.write(nb, tmp_path / "00_tiny.ipynb")
    text = notebook_html.convert(tmp_path / "00_tiny.ipynb", tmp_path / "html").read_text()
    assert '<img alt="Loss falls from 2.3 to 0.1 over 8 epochs."' in text


@pytest.mark.browser
def test_a_browser_offline_renders_the_math_and_the_widget(page):
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS

    path, _, _ = page
    requested = []

    def offline(route):
        requested.append(route.request.url)
        route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        tab = browser.new_page()
        tab.route(re.compile(r"^(?!file:)"), offline)
        tab.goto(path.as_uri())
        tab.locator("mjx-container svg").first.wait_for(timeout=30_000)
        tab.locator(".widget-hprogress .progress-bar").wait_for(timeout=30_000)
        label = tab.locator(".widget-hprogress .widget-label").inner_text()
        browser.close()
    assert label == "epochs" and requested == []


def test_run_notebooks_executes_saves_and_times_each_notebook(tmp_path):
    """export/run_notebooks.py, the body of `./run course`, on two tiny notebooks."""
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "export/run_notebooks.py")
    run_notebooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_notebooks)
    source = tmp_path / "notebooks"
    source.mkdir()
    cells = {
        "01_here.ipynb": "from pathlib import Path\nprint(Path.cwd().name)",
        "02_fails.ipynb": "raise ValueError('bad cell')",
    }
    for name, code in cells.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        nbformat.write(nb, source / name)
    out = {name: tmp_path / name for name in ("executed", "html", "timings.txt")}
    options = ["--executed-dir", str(out["executed"]), "--html-dir", str(out["html"])]
    options += ["--timings", str(out["timings.txt"])]
    with pytest.raises(SystemExit, match="02_fails.ipynb failed"):
        run_notebooks.main([str(source / name) for name in cells] + options)
    executed = nbformat.read(out["executed"] / "01_here.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "notebooks\n"  # ran in its own folder
    assert (out["html"] / "01_here.html").is_file() and not (out["html"] / "02_fails.html").exists()
    assert re.fullmatch(r" +01_here\.ipynb +\d+ s\n", out["timings.txt"].read_text())
