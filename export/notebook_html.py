"""Executed notebooks to HTML that works offline, with alt text on every figure.

    python export/notebook_html.py build/notebooks/01_train_cnn.ipynb --output-dir build/html

nbconvert's lab template loads MathJax, require.js and the widget manager from CDNs; here they
come from `_static/` beside the HTML (export/js_assets.py), so formulas and the saved widget
state (the training progress bar) render without internet. nbconvert reads no alt text for
matplotlib's images: the template in export/templates/course/ takes it from the output's
metadata (`display(fig, metadata={"image/png": {"alt": "..."}})`) or the cell's `alt` metadata,
and `AltTextPreprocessor` writes a default where neither gives one.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Callable
from pathlib import Path

from nbconvert import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from traitlets.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import js_assets  # noqa: E402  (beside this file; export/ is not a package)

TEMPLATES = Path(__file__).resolve().parent / "templates"
IMAGE_TYPES = ("image/png", "image/jpeg")
DRAWING_MODULES = ("plotting", "widgets", "plt")  # calls whose figure an image shows
NOT_DRAWING = ("show", "save_figure", "savefig", "close")


class AltTextPreprocessor(Preprocessor):
    """Give each image output without alt text one that says what drew it and where.

    The default names the notebook, the section, the figure's title when the drawing call
    passes one, and that call, e.g. 'Figure 5 of “02 · Find the CNN's mistakes”, section “The
    most confidently wrong images”: “The most confidently wrong test images”, drawn by
    plotting.show_probabilities(...)'. A notebook can say more, per figure.
    """

    def preprocess(self, nb, resources):
        title, heading, number = _notebook_title(nb), "", 0
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                heading = _last_heading(cell.source) or heading
                continue
            if cell.cell_type != "code" or cell.metadata.get("alt"):
                continue
            images = [
                (output, mimetype)
                for output in cell.get("outputs", [])
                for mimetype in IMAGE_TYPES
                if mimetype in output.get("data", {})
            ]
            for index, (output, mimetype) in enumerate(images):
                number += 1
                metadata = output.setdefault("metadata", {}).setdefault(mimetype, {})
                if not metadata.get("alt"):
                    where = f"Figure {number}" + (f" of “{title}”" if title else "")
                    if heading and heading != title:
                        where += f", section “{heading}”"
                    if len(images) > 1:
                        where += f" (image {index + 1} of {len(images)} from one cell)"
                    metadata["alt"] = where + _drawing(cell.source)
        return nb, resources


def _notebook_title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (match := re.search(r"^#\s+(.+)$", cell.source, re.M)):
            return match.group(1).strip()
    return ""


def _last_heading(markdown: str) -> str:
    headings = re.findall(r"^#{1,6}\s+(.+)$", markdown, re.M)
    return headings[-1].strip() if headings else ""


def _drawing(source: str) -> str:
    """': “title”, drawn by plotting.fn(...)' for the cell's first drawing call, or ''."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax (%magic, !shell): no description from the code
        return ""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        module, _, function = name.rpartition(".")
        if module not in DRAWING_MODULES or function in NOT_DRAWING:
            continue
        titles = [
            keyword.value.value
            for keyword in node.keywords
            if keyword.arg in ("title", "suptitle") and isinstance(keyword.value, ast.Constant)
        ]
        call = ast.unparse(node)
        call = call if len(call) <= 100 else f"{name}(...)"
        return (f": “{titles[0]}”" if titles else "") + f", drawn by {call}"
    return ""


def exporter() -> HTMLExporter:
    """An HTMLExporter whose pages load their scripts from `_static/` and carry alt text."""
    config = Config()
    config.HTMLExporter.extra_template_basedirs = [str(TEMPLATES)]
    config.HTMLExporter.template_name = "course"
    config.HTMLExporter.mathjax_url = js_assets.MATHJAX_URL
    config.HTMLExporter.require_js_url = js_assets.REQUIRE_JS_URL
    config.HTMLExporter.widget_renderer_url = js_assets.WIDGET_RENDERER_URL
    html = HTMLExporter(config=config)
    html.register_preprocessor(AltTextPreprocessor(), enabled=True)
    return html


def convert(notebook: Path, output_dir: Path) -> Path:
    """Write `output_dir/<name>.html` and the scripts it loads into `output_dir/_static/`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    js_assets.install(output_dir / "_static")
    body, _ = exporter().from_filename(str(notebook))
    target = output_dir / f"{notebook.stem}.html"
    target.write_text(body, encoding="utf-8")
    return target


def main(
    argv: list[str] | None = None,
    write: Callable[[Path, Path], Path] = convert,
    description: str = __doc__,
) -> None:
    """`write(notebook, output_dir)` for each notebook named on the command line (export/handout.py
    passes its own `write`)."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        for notebook in args.notebooks:
            write(notebook, args.output_dir)
    except js_assets.MissingAssetsError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
