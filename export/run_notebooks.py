"""Execute the course's notebooks and export each to offline HTML, in one process: `./run course`.

    python export/run_notebooks.py notebooks/[0-9][0-9]_*.ipynb \
        --executed-dir build/notebooks --html-dir build/html --timings build/timings.txt

Each notebook runs top to bottom in a fresh kernel started in its own folder (as `jupyter
nbconvert --execute` does), its executed copy is saved, and its HTML is written by
export/notebook_html.py. One process for all of them saves loading nbconvert once per notebook
(seconds each on a small CPU). Prints each notebook's seconds (executing and converting) and
writes them to `--timings`; stops at the first cell that raises, naming the notebook.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient.exceptions import CellExecutionError
from nbconvert.preprocessors import ExecutePreprocessor
from traitlets.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import js_assets  # noqa: E402  (beside this file; export/ is not a package)
import notebook_html  # noqa: E402

TIMEOUT = 1800  # seconds a cell may run


def kernel_config() -> Config:
    """Kernels whose sockets use CurveZMQ (export/grade.py starts its kernels with it too).

    ipykernel 7 asks for encrypted transport ("Kernel is running over TCP without encryption"
    otherwise); IPC sockets would be the other way, but the kernel starts in the notebook's folder
    and IPC paths are relative.
    """
    config = Config()
    config.KernelManager.transport_encryption = "auto"
    return config


def executor() -> ExecutePreprocessor:
    """Runs a notebook in a fresh python3 kernel (`kernel_config`)."""
    return ExecutePreprocessor(timeout=TIMEOUT, kernel_name="python3", config=kernel_config())


def run(notebook: Path, executed_dir: Path, html_dir: Path) -> float:
    """Execute ``notebook``, save the executed copy and its HTML; return the seconds it took."""
    start = time.perf_counter()
    nb = nbformat.read(notebook, as_version=4)
    executor().preprocess(nb, {"metadata": {"path": str(notebook.resolve().parent)}})
    executed_dir.mkdir(parents=True, exist_ok=True)
    executed = executed_dir / notebook.name
    nbformat.write(nb, executed)
    notebook_html.convert(executed, html_dir)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--executed-dir", type=Path, required=True)
    parser.add_argument("--html-dir", type=Path, required=True)
    parser.add_argument("--timings", type=Path, required=True)
    args = parser.parse_args(argv)
    args.timings.parent.mkdir(parents=True, exist_ok=True)
    args.timings.write_text("")
    total = 0.0
    for notebook in args.notebooks:
        print(f"==> executing {notebook.name}", flush=True)
        try:
            seconds = run(notebook, args.executed_dir, args.html_dir)
        except CellExecutionError as error:
            sys.exit(f"error: {notebook.name} failed:\n{error}")
        except js_assets.MissingAssetsError as error:
            sys.exit(f"error: {error}")
        total += seconds
        line = f"    {notebook.name:<36} {seconds:4.0f} s"
        print(line, flush=True)
        with args.timings.open("a") as timings:
            timings.write(line + "\n")
    print(
        f"==> all notebooks ran in {total:.0f} s; executed copies in {args.executed_dir}, "
        f"HTML in {args.html_dir}"
    )


if __name__ == "__main__":
    main()
