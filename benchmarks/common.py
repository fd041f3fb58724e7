"""What every benchmark shares: the course's set-up, timing on a device, the printed table and
the JSON report (always written under build/bench/ unless --output says otherwise)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers import course, data, evaluation  # noqa: E402
from helpers.records import Mistakes  # noqa: E402

Column = tuple[str, str, str]  # (header, key in a record, format spec such as "8.2%")


def parser(doc: str, output: str) -> argparse.ArgumentParser:
    """The options every benchmark takes; ``output`` names its JSON under build/bench/."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--dataset", default=data.BUNDLED, choices=data.DATASETS)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-epochs", type=int, default=8, help="if the model must be trained")
    parser.add_argument("--max-images", type=int, default=None, help="explain only the first N")
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "bench" / output)
    return parser


# The peers some benchmarks compare against: pyproject.toml's optional `bench` group, which
# `./run bench` and `./run test` install and `./run course` and `./run lab` do not.
# module -> distribution
PEERS = {
    "adv_lib": "adv-lib",
    "torchattacks": "torchattacks",
    "art": "adversarial-robustness-toolbox",
}


def missing_peers(*modules: str) -> list[str]:
    """The distributions of ``modules`` (keys of PEERS) that are not installed."""
    unknown = [module for module in modules if module not in PEERS]
    if unknown:
        raise ValueError(f"modules={unknown!r} are not benchmark peers: choose from {list(PEERS)}")
    return [PEERS[module] for module in modules if importlib.util.find_spec(module) is None]


def require_peers(*modules: str) -> None:
    """Stop before any work if a peer among ``modules`` is missing, saying how to install it."""
    missing = missing_peers(*modules)
    if missing:
        raise SystemExit(
            f"error: {', '.join(missing)} missing: this benchmark compares against the peers of "
            "pyproject.toml's `bench` group, which ./run course and ./run lab leave out; "
            "run it with ./run bench (which installs them), or install them with "
            ".tools/bin/uv sync --frozen --group bench"
        )


def setup(args: argparse.Namespace) -> tuple[course.Course, torch.nn.Module, dict, Mistakes]:
    """The course, the provider's CNN, its metadata and its first ``--max-images`` mistakes."""
    lesson = course.setup(
        seed=args.seed,
        device=args.device,
        dataset=args.dataset,
        num_epochs=args.num_epochs,
        num_threads=args.num_threads,
    )
    model = lesson.model()
    metadata = {"test_accuracy": evaluation.evaluate(model, lesson.dataset.test).accuracy}
    mistakes = evaluation.find_misclassified(model, lesson.dataset.test)
    mistakes = mistakes[: args.max_images].to(lesson.device)
    print(
        f"{len(mistakes)} misclassified test images of {lesson.dataset.name} (model accuracy "
        f"{metadata['test_accuracy']:.2%}), device {lesson.device}, "
        f"{torch.get_num_threads()} threads\n"
    )
    return lesson, model, metadata, mistakes


@contextmanager
def timer(device: torch.device) -> Iterator[Callable[[], float]]:
    """``with timer(device) as seconds: ...``, then ``seconds()``: wall time, GPU work included."""
    _synchronize(device)
    start, end = time.perf_counter(), None

    def seconds() -> float:
        return (end if end is not None else time.perf_counter()) - start

    yield seconds
    _synchronize(device)
    end = time.perf_counter()


def best_time(
    function: Callable[[], Any], device: torch.device, *, max_runs: int = 3, budget: float = 10.0
) -> tuple[Any, float, int]:
    """Run ``function`` up to ``max_runs`` times, stopping once ``budget`` seconds have gone, and
    return (the first run's result, the shortest run's seconds, the number of runs).

    Every method of a table is timed by the same rule, so a method that takes a fraction of a
    second is not judged by one run that another process on the machine happened to slow down,
    and one that takes minutes is run once.
    """
    result, times = None, []
    while len(times) < max_runs and sum(times) < budget:
        with timer(device) as seconds:
            output = function()
        result = output if not times else result
        times.append(seconds())
    return result, min(times), len(times)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def print_table(results: dict[str, dict], columns: list[Column], first: str, width: int) -> None:
    """One row per named record, one column per (header, key, format)."""
    widths = [int(fmt.split(".")[0].rstrip("d%f")) for _, _, fmt in columns]
    header = f"{first:{width}}" + "".join(f" {h:>{w}}" for (h, _, _), w in zip(columns, widths))
    print(header + "\n" + "-" * len(header))
    for name, record in results.items():
        print(f"{name:{width}}" + "".join(f" {record[key]:{fmt}}" for _, key, fmt in columns))


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as JSON with the command that produced it and the environment."""
    report = {
        **report,
        "torch": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "command": " ".join(["python", *sys.argv]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {path}")
