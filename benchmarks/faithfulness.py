"""Does the explanation find the cause? Every method on mistakes whose cause is known, and on the
course CNN's real mistakes (notebook 14).

Run from the repository root, in the project's environment:

    .venv/bin/python benchmarks/faithfulness.py --num-threads 1   # 3 tasks x seeds 0 1 2

Known-cause tasks (``helpers.causes``: decoy, blocks, mark), for each of --seeds: the task's
SmallCNN (--task-epochs, from the seed) and its first --num-images test mistakes caused by the
planted cue; the end user's surrogate (SurrogateCNN, --surrogate-epochs) on the task's 1,000 pool
images labelled by the black box (probabilities, 1,000 label queries). Every method of
``comparison.METHODS`` but the GAN counterfactuals (a counterfactual GAN per task and seed would
cost several times the rest of the benchmark: left out, kept for the real mistakes) maps each
mistake; per method, means over the images: the map's share of mass on the causal mask, the
mask AUROC, the pointing game (tolerance 1 pixel), seconds per image; and Adebayo et al.'s
sanity check on the first --num-sanity images: the model's last two layers with weights (its
two linear layers) re-initialised, cascading from the top (``faithfulness.randomized``), every
method run again on the same images and the same question (the black-box ones with a surrogate
retrained on the randomized black box's answers), Spearman's rank correlation with the first
map; a method whose mean correlation is at least ``faithfulness.SANITY_THRESHOLD`` fails.
Summaries are mean ± standard deviation over the seeds.

Real mistakes: the course's CNN (notebook 01) and its first --max-images test mistakes; every
method (the black-box ones through a surrogate trained as the tasks' are, on the course's pool),
the GAN counterfactuals among them (notebook 15's recipe, --counterfactual-epochs: its
checkpoint is notebook 15's); RISE's insertion and deletion curves toward the true class (black
baseline, --step pixels per point): mean areas; the smooth explanation's success and its L2 over
the refined DeepFool's. The issue's targets are checked; wall and CPU seconds are recorded.
Writes build/bench/faithfulness.json.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from statistics import mean, stdev

import common
import torch

from helpers import causes, comparison, data, faithfulness, runtime
from helpers.data import Split

COUNTERFACTUAL = {"size_weight": 1.0, "judge_weight": 4.0, "near_share": 0.5}  # notebook 15's
RANDOMIZED_LAYERS = 2  # SmallCNN's two linear layers, re-initialised from the top
MEASURES = ("mass_share", "mask_auroc", "pointing_game", "sanity_correlation", "ms_per_image")


def known_cause_methods() -> list[str]:
    return [name for name in comparison.METHODS if name != "gan"]


def nanmean(values: torch.Tensor) -> float:
    values = values.double()
    return values.nanmean().item() if len(values) else math.nan


def task_run(name: str, dataset, seed: int, args) -> dict:
    """One task at one seed: every method's measures and sanity check."""
    device, start = args.device_, time.perf_counter()
    task = causes.build(name, dataset, seed=seed, num_epochs=args.task_epochs, device=device)
    mistakes = task.mistakes[: args.num_images].to(device)
    masks = task.masks[: args.num_images].to(device)
    subjects = with_surrogate(task.model, task.dataset.pool.x.to(device), seed, args)
    generator = torch.Generator().manual_seed(seed)
    shaken = faithfulness.randomized(task.model, RANDOMIZED_LAYERS, generator=generator)
    twin = with_surrogate(shaken, task.dataset.pool.x.to(device), seed, args)
    methods = {}
    for method in known_cause_methods():
        with common.timer(device) as seconds:
            found = comparison.explain(method, subjects, mistakes, generator=seeded(seed))
        methods[method] = measures(found.maps, masks, seconds() / max(len(mistakes), 1))
        methods[method].update(sanity(method, found.maps, twin, mistakes[: args.num_sanity], seed))
        if found.explanation is not None:
            methods[method]["success_rate"] = found.explanation.success_rate
    area = nanmean(masks.float().flatten(1).mean(1).cpu())
    counts = {key: task.metadata[key] for key in ("test_accuracy", "num_mistakes", "num_caused")}
    record = {"seed": seed, "num_images": len(mistakes), "mask_area": area, **counts}
    record["training_seconds"] = task.metadata.get("seconds", math.nan)  # when trained
    record["methods"], record["seconds"] = methods, time.perf_counter() - start
    print(
        f"{name} seed {seed}: {counts['num_caused']} mistakes caused by the cue "
        f"({len(mistakes)} explained), mask area {area:.3f}; mask AUROC "
        + ", ".join(f"{m} {r['mask_auroc']:.3f}" for m, r in methods.items())
    )
    return record


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def with_surrogate(model, pool, seed: int, args) -> comparison.Subjects:
    """``model`` with the end user's surrogate of it, trained on ``pool``."""
    user = comparison.user_surrogate(model, pool, num_epochs=args.surrogate_epochs, seed=seed)
    return comparison.Subjects(model, user)


def measures(maps, masks, seconds_per_image: float) -> dict:
    """Means over the images of the map's measures against the causal masks."""
    return {
        "mass_share": nanmean(faithfulness.mass_share(maps, masks).cpu()),
        "mask_auroc": nanmean(faithfulness.mask_auroc(maps, masks)),
        "pointing_game": nanmean(faithfulness.pointing_game(maps, masks).cpu()),
        "ms_per_image": 1000 * seconds_per_image,
    }


def sanity(method: str, maps, twin: comparison.Subjects, first, seed: int) -> dict:
    """The method again on the randomized model (``twin``) for the images ``first``: the mean
    rank correlation with its first maps, over the images where both maps vary."""
    redraw = seed + 1 if method == "random" else seed  # the reference draws afresh
    again = comparison.explain(method, twin, first, generator=seeded(redraw))
    correlation = faithfulness.rank_correlation(maps[: len(first)], again.maps).cpu()
    return {
        "sanity_correlation": nanmean(correlation),
        "sanity_images": int(correlation.isfinite().sum()),
    }


def summary(runs: list[dict]) -> dict:
    """Per method and measure: mean and standard deviation over the seeds (nan runs left out);
    and the masks' mean area, the mass share a map spread evenly would have."""

    def spread(values: list[float]) -> dict:
        values = [value for value in values if not math.isnan(value)]
        deviation = stdev(values) if len(values) > 1 else 0.0
        return {"mean": mean(values) if values else math.nan, "std": deviation}

    methods = {
        method: {
            key: spread([r["methods"][method].get(key, math.nan) for r in runs])
            for key in (*MEASURES, "success_rate")
        }
        for method in runs[0]["methods"]
    }
    return {"methods": methods, "mask_area": spread([r["mask_area"] for r in runs])}


def real_run(args) -> dict:
    """The course CNN's real mistakes: insertion and deletion for every method."""
    start = time.perf_counter()
    lesson, model, metadata, mistakes = common.setup(args)
    subjects = with_surrogate(model, lesson.dataset.pool.x.to(lesson.device), args.seed, args)
    gan = lesson.gan(
        "counterfactual",
        num_epochs=args.counterfactual_epochs,
        judge=model,
        progress=False,
        **COUNTERFACTUAL,
    )
    subjects = replace(subjects, gan=gan)
    methods, changes = {}, {}
    for method in comparison.METHODS:
        with common.timer(lesson.device) as seconds:
            found = comparison.explain(method, subjects, mistakes, generator=seeded(args.seed))
        curves = faithfulness.insertion_deletion(
            model, mistakes.x, mistakes.y, found.maps, step=args.step
        )
        methods[method] = {
            "insertion_auc": nanmean(curves.insertion_auc),
            "deletion_auc": nanmean(curves.deletion_auc),
            "ms_per_image": 1000 * seconds() / max(len(mistakes), 1),
        }
        if found.explanation is not None:
            methods[method]["success_rate"] = found.explanation.success_rate
            changes[method] = found.explanation
        record = methods[method]
        print(
            f"real mistakes, {method:22} insertion {record['insertion_auc']:.3f} "
            f"deletion {record['deletion_auc']:.3f}"
        )
    return {
        "num_mistakes": len(mistakes),
        "test_accuracy": metadata["test_accuracy"],
        "gan_training_seconds": lesson.metadata["gan_counterfactual"]["seconds"],
        "methods": methods,
        "smooth": smooth_size(changes["smooth"], changes["deepfool_refined"]),
        "seconds": time.perf_counter() - start,
    }


def smooth_size(smooth, refined) -> dict:
    """The smooth explanation's success, and its L2 over the refined DeepFool's (images both
    explain)."""
    both = smooth.success & refined.success
    ratio = (smooth.l2[both] / refined.l2[both]).cpu()
    return {
        "success_rate": smooth.success_rate,
        "median_l2_ratio_to_refined": ratio.median().item() if len(ratio) else math.nan,
        "mean_l2_ratio_to_refined": nanmean(ratio),
    }


def targets(tasks: dict, real: dict) -> dict:
    """Issue 25's targets, as this run measured them (means over the seeds)."""
    smooth = real["smooth"]
    return {
        "tasks": {name: task_targets(result["summary"]) for name, result in tasks.items()},
        "smooth_success_all_met": smooth["success_rate"] == 1.0,
        "smooth_l2_within_1.5x_refined_met": smooth["median_l2_ratio_to_refined"] <= 1.5,
    }


def task_targets(totals: dict) -> dict:
    """One task's targets: the best inverted explanation's AUROC against the best captum
    method's, its sanity check, and the smooth explanation's mass on the cause."""
    kinds = {name: entry.kind for name, entry in comparison.METHODS.items() if name != "gan"}
    inverted = [name for name, kind in kinds.items() if kind in ("white box", "black box")]
    captum = [name for name, kind in kinds.items() if kind == "attribution"]

    def value(method: str, key: str) -> float:
        return totals["methods"][method][key]["mean"]

    score = lambda method: value(method, "mask_auroc")  # noqa: E731
    best_inverted, best_captum = max(inverted, key=score), max(captum, key=score)
    rivals = ("smooth_unsmoothed", "deepfool_refined")
    shares = {method: value(method, "mass_share") for method in ("smooth", *rivals)}
    sanity = value(best_inverted, "sanity_correlation")
    return {
        "best_inverted": best_inverted,
        "best_inverted_auroc": score(best_inverted),
        "best_captum": best_captum,
        "best_captum_auroc": score(best_captum),
        "auroc_gap": score(best_inverted) - score(best_captum),
        "auroc_met": score(best_inverted) >= score(best_captum),
        "best_inverted_sanity": sanity,
        "sanity_met": sanity < faithfulness.SANITY_THRESHOLD,
        "mass_shares": shares,
        "smooth_more_mass_met": shares["smooth"] > max(shares[m] for m in rivals),
    }


def main() -> None:
    parser = common.parser(__doc__, "faithfulness.json")
    parser.add_argument("--tasks", nargs="+", default=list(causes.TASKS), choices=causes.TASKS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--task-epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=None, help="first N training images")
    parser.add_argument("--num-images", type=int, default=20, help="mistakes per task and seed")
    parser.add_argument("--num-sanity", type=int, default=10, help="of them, sanity-checked")
    parser.add_argument("--surrogate-epochs", type=int, default=20)
    parser.add_argument("--counterfactual-epochs", type=int, default=4)  # notebook 15's
    parser.add_argument("--step", type=int, default=28, help="pixels per insertion point")
    args = parser.parse_args()
    cpu_start = time.process_time()  # at one thread, about the wall time of an idle machine
    with common.timer(torch.device("cpu")) as seconds:
        real = real_run(args)  # sets up the course: seeds, threads, device
        args.device_ = runtime.resolve_device(args.device)
        dataset = data.load_dataset(args.dataset)
        if args.train_size:
            head = Split(dataset.train.x[: args.train_size], dataset.train.y[: args.train_size])
            dataset = replace(dataset, train=head)
        tasks = {}
        for name in args.tasks:
            runs = [task_run(name, dataset, seed, args) for seed in args.seeds]
            tasks[name] = {"runs": runs, "summary": summary(runs)}
    report = {
        "dataset": args.dataset,
        "device": str(args.device_),
        "settings": {k: v for k, v in vars(args).items() if k not in ("device_", "output")},
        "labels": {name: entry.label for name, entry in comparison.METHODS.items()},
        "kinds": {name: entry.kind for name, entry in comparison.METHODS.items()},
        "sanity_threshold": faithfulness.SANITY_THRESHOLD,
        "seconds": seconds(),
        "cpu_seconds": time.process_time() - cpu_start,
        "tasks": tasks,
        "real": real,
        "targets": targets(tasks, real),
    }
    print(f"targets: {report['targets']}")
    print(f"{report['seconds']:.0f} s in all ({report['cpu_seconds']:.0f} s of CPU time)")
    common.write_report(args.output, report)


if __name__ == "__main__":
    main()
