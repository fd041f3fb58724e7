"""How fast does the explorer redraw after one change? Target: under 0.2 s on a 2-core CPU.

Run from the repository root, in the project's environment:

    .venv/bin/python benchmarks/explorer.py

Builds the explorer of notebook 08 on the course's model (white box, and black box with the
surrogate of notebook 04, loaded or trained with the same settings), then drags each control
through a fixed sequence of values, as a person would, timing every redraw
(`Explorer.last_seconds`: the explanation, the probabilities, the images and the text).
Prints a table and writes build/bench/explorer.json.
"""

from __future__ import annotations

import statistics

import common

from helpers import blackbox, explorer, widgets

TARGET_SECONDS = 0.2


def drag(panel: widgets.ExplorerPanel, num_images: int) -> dict[str, list[float]]:
    """Move every control of every method; return the redraw times per method."""
    times: dict[str, list[float]] = {}
    for mode, methods in panel.logic.modes.items():
        panel.mode.value = mode
        for method in methods:
            panel.method.value = method.label
            low, high, _ = method.knob_range
            samples = times.setdefault(f"{mode}: {method.label}", [])
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
    parser = common.parser(__doc__, "explorer.json")
    parser.add_argument("--surrogate-epochs", type=int, default=40, help="as in notebooks 04-08")
    parser.add_argument("--num-images", type=int, default=10, help="images visited per method")
    args = parser.parse_args()
    lesson, model, _, mistakes = common.setup(args)
    surrogate = lesson.surrogate(
        blackbox.BlackBox(model, max_queries=1000),
        num_seed=1000,
        probabilities=True,
        num_epochs=args.surrogate_epochs,
    )
    logic = explorer.Explorer(
        mistakes,
        lesson.dataset.classes,
        model=model,
        black_box=blackbox.BlackBox(model),
        surrogate=surrogate,
    )
    times = drag(widgets.ExplorerPanel(logic), min(args.num_images, len(mistakes)))

    results = {}
    for name, samples in times.items():
        ordered = sorted(samples)
        results[name] = {
            "redraws": len(samples),
            "median_seconds": statistics.median(samples),
            "p95_seconds": ordered[int(0.95 * (len(ordered) - 1))],
            "max_seconds": ordered[-1],
        }
    common.print_table(results, COLUMNS, "method", 56)
    worst = max(r["p95_seconds"] for r in results.values())
    print(
        f"\nslowest method's 95th percentile: {worst:.3f} s (target < {TARGET_SECONDS} s): "
        f"{'met' if worst < TARGET_SECONDS else 'NOT MET'}"
    )
    report = {"device": str(lesson.device), "target_seconds": TARGET_SECONDS, "methods": results}
    common.write_report(args.output, report)


COLUMNS = [  # (header, key, format)
    ("redraws", "redraws", "7d"),
    ("median s", "median_seconds", "9.3f"),
    ("p95 s", "p95_seconds", "7.3f"),
    ("max s", "max_seconds", "7.3f"),
]


if __name__ == "__main__":
    main()
