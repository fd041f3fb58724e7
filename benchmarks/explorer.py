"""How fast does the explorer redraw after one change? Target: under 0.2 s on a 2-core CPU.

Run from the repository root, in the project's environment:

    .venv/bin/python benchmarks/explorer.py

Builds the explorer of notebook 06 on the course's model (white box, and black box with the
surrogate of notebook 04, loaded or trained with the same settings), then drags each control
through a fixed sequence of values, as a person would, timing every redraw
(`Explorer.last_seconds`: the explanation, the probabilities, the images and the text).
Prints a table and writes build/bench/explorer.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers import (  # noqa: E402
    blackbox,
    data,
    evaluation,
    explorer,
    runtime,
    surrogate,
    training,
    widgets,
)

TARGET_SECONDS = 0.2


def drag(panel: widgets.Explorer, num_images: int) -> dict[str, list[float]]:
    """Move every control of every method; return the redraw times per method."""
    times: dict[str, list[float]] = {}
    for mode in panel.methods:
        panel.mode.value = mode
        for method in panel.methods[mode]:
            panel.method.value = method.name
            low, high, _ = method.strength_range
            samples = times.setdefault(f"{mode}: {method.name}", [])
            for index in range(num_images):
                panel.index.value = index
                samples.append(panel.last_seconds)
                for fraction in (0.0, 0.25, 0.5, 1.0):
                    panel.strength.value = round(low + fraction * (high - low), 3)
                    samples.append(panel.last_seconds)
                for budget in (1, 50):
                    panel.budget.value = budget
                    samples.append(panel.last_seconds)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-epochs", type=int, default=8, help="if the model must be trained")
    parser.add_argument("--surrogate-epochs", type=int, default=40, help="as in notebooks 04-06")
    parser.add_argument("--num-images", type=int, default=10, help="images visited per method")
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "bench" / "explorer.json")
    args = parser.parse_args()

    runtime.seed_everything(0)
    device = runtime.resolve_device(args.device)
    dataset = data.load_dataset()
    model, _ = training.load_or_train(
        dataset,
        runtime.artifacts_dir() / f"cnn_{dataset.name}.pt",
        num_epochs=args.num_epochs,
        seed=0,
        device=device,
    )
    mistakes = evaluation.find_misclassified(model, dataset.test)
    surrogate_model, _ = surrogate.load_or_train_surrogate(
        blackbox.BlackBox(model, max_queries=1000),
        dataset,
        runtime.artifacts_dir() / f"surrogate_{dataset.name}.pt",
        seed=0,
        num_seed=1000,
        probabilities=True,
        num_epochs=args.surrogate_epochs,
    )
    black_box = blackbox.BlackBox(model)
    methods = {
        "white box": explorer.whitebox_methods(model),
        "black box": explorer.blackbox_methods(black_box, surrogate_model.to(device)),
    }
    probabilities = {
        "white box": explorer.model_probabilities(model),
        "black box": black_box.probabilities,
    }
    panel = widgets.Explorer(
        mistakes.x.to(device),
        mistakes.y.to(device),
        mistakes.y_pred.to(device),
        dataset.classes,
        methods,
        probabilities,
    )
    times = drag(panel, min(args.num_images, len(mistakes)))

    results = {}
    print(f"{'method':45} {'redraws':>7} {'median s':>9} {'p95 s':>7} {'max s':>7}")
    for name, samples in times.items():
        ordered = sorted(samples)
        results[name] = {
            "redraws": len(samples),
            "median_seconds": statistics.median(samples),
            "p95_seconds": ordered[int(0.95 * (len(ordered) - 1))],
            "max_seconds": ordered[-1],
        }
        r = results[name]
        seconds = f"{r['median_seconds']:9.3f} {r['p95_seconds']:7.3f} {r['max_seconds']:7.3f}"
        print(f"{name:45} {r['redraws']:7d} {seconds}")
    worst = max(r["p95_seconds"] for r in results.values())
    print(
        f"\nslowest method's 95th percentile: {worst:.3f} s (target < {TARGET_SECONDS} s): "
        f"{'met' if worst < TARGET_SECONDS else 'NOT MET'}"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "target_seconds": TARGET_SECONDS,
        "methods": results,
        "command": " ".join(["python", *sys.argv]),
    }
    args.output.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
