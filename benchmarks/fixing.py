"""Fix the data and the model with the explanations: decoy MNIST, label errors, weak pairs.

Run from the repository root, in the project's environment:

    .venv/bin/python benchmarks/fixing.py                  # bundled data, seeds 0 1 2
    .venv/bin/python benchmarks/fixing.py --seeds 0 1 2 3 4 --num-epochs 6

Every model is a SmallCNN trained by ``training.train_new_cnn`` for --num-epochs from the seed.
Per seed: (1) decoy MNIST (``helpers.decoy``): the shortcut model trained on patched digits whose
patch shade encodes the label, the clean model (no patch), the data fix (random shades) and the
model fix (the right-reasons penalty, --weight, on the four corners), all tested on digits with
a random-shade patch; the share of |delta| of each model's explanations of its test mistakes
(the first --max-images) inside the patch, beside the patch's area share. (2) label errors
(``helpers.labelnoise``): --noise-rate of the labels flipped; the explanation score, the loss
and cleanlab scored out of --num-folds folds; precision at k (k = the flips) and AUROC; test
accuracy of the noisy model, of the clean-label model, and after removing each score's top k.
(3) weak pairs (``helpers.weaknesses``): the clean-label model's mistakes on the pool split
explained and grouped by (true -> predicted) pair; the --num-pairs pairs of at least 3
mistakes whose changes agree most; --num-extra augmented digits of their true classes, against
as many of any class. Prints the summary (mean ± std over seeds), writes build/bench/fixing.json.
"""

from __future__ import annotations

from dataclasses import replace
from statistics import mean, stdev

import common
import torch

from helpers import attacks, course, decoy, evaluation, labelnoise, metrics, training, weaknesses
from helpers.data import Split


def fit(dataset, split: Split, args, seed: int, **settings) -> torch.nn.Module:
    """A SmallCNN trained on ``split`` from ``seed`` (dataset: its shape, classes, test)."""
    model, _, _ = training.train_new_cnn(
        replace(dataset, train=split),
        num_epochs=args.num_epochs,
        seed=seed,
        device=args.device_,
        progress=False,
        **settings,
    )
    return model


def accuracy(model, split: Split) -> float:
    return evaluation.evaluate(model, split).accuracy


def decoy_run(dataset, args, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    patched, _ = decoy.add_patches(dataset.train, encode_label=True, generator=generator)
    randomized, _ = decoy.add_patches(dataset.train, encode_label=False, generator=generator)
    test, masks = decoy.add_patches(dataset.test, encode_label=False, generator=generator)
    corners = decoy.all_corners(dataset.image_shape, 4)
    models = {
        "shortcut": fit(dataset, patched, args, seed),
        "clean": fit(dataset, dataset.train, args, seed),
        "data_fix": fit(dataset, randomized, args, seed),
        "model_fix": fit(
            dataset, patched, args, seed, penalty=decoy.right_reasons_penalty(corners, args.weight)
        ),
    }
    record = {"area_share": decoy.area_share(masks[:1]).item()}
    for name, model in models.items():
        mistakes = evaluation.predict(model, test).misclassified.nonzero()[: args.max_images, 0]
        device = args.device_
        result = attacks.explain(model, test.x[mistakes].to(device), test.y[mistakes].to(device))
        share = decoy.region_share(result.delta.cpu(), masks[mistakes]).nanmean().item()
        record[name] = {"test_accuracy": accuracy(model, test), "patch_share": share}
    print(
        f"seed {seed} decoy: "
        + ", ".join(
            f"{n} {record[n]['test_accuracy']:.2%} (share {record[n]['patch_share']:.1%})"
            for n in models
        )
    )
    return record


def label_run(dataset, args, seed: int) -> tuple[dict, torch.nn.Module]:
    generator = torch.Generator().manual_seed(seed)
    noisy_y, flipped = labelnoise.flip_labels(
        dataset.train.y, args.noise_rate, dataset.num_classes, generator
    )
    noisy = Split(dataset.train.x, noisy_y)
    scores = labelnoise.out_of_fold_scores(
        replace(dataset, train=noisy),
        num_folds=args.num_folds,
        num_epochs=args.num_epochs,
        seed=seed,
        device=args.device_,
    )
    cleanlab, issues = labelnoise.cleanlab_scores(noisy_y, scores.probs)
    ranked = {"explanation": scores.explanation, "loss": scores.loss, "cleanlab": cleanlab}
    k = int(flipped.sum())
    clean_model = fit(dataset, dataset.train, args, seed)
    record = {
        "num_flips": k,
        "noisy_test_accuracy": accuracy(fit(dataset, noisy, args, seed), dataset.test),
        "clean_test_accuracy": accuracy(clean_model, dataset.test),
        "cleanlab_issues": {
            "flagged": int(issues.sum()),
            "precision": flipped[issues].float().mean().item() if issues.any() else None,
        },
    }
    for name, score in ranked.items():
        removed = fit(dataset, labelnoise.without_top(noisy, score, k), args, seed)
        record[name] = {
            "precision_at_k": labelnoise.precision_at_k(score, flipped, k),
            "auroc": metrics.auroc(score, flipped),
            "removed_test_accuracy": accuracy(removed, dataset.test),
        }
    print(
        f"seed {seed} labels: noisy {record['noisy_test_accuracy']:.2%}, clean "
        f"{record['clean_test_accuracy']:.2%}, "
        + ", ".join(
            f"{n} P@k {record[n]['precision_at_k']:.2f} AUROC {record[n]['auroc']:.3f} "
            f"removed {record[n]['removed_test_accuracy']:.2%}"
            for n in ranked
        )
    )
    return record, clean_model


def weakness_run(dataset, args, seed: int, model) -> dict:
    mistakes = evaluation.find_misclassified(model, dataset.pool)[: args.max_images]
    mistakes = mistakes.to(args.device_)
    pairs = weaknesses.pair_agreement(attacks.explain(model, mistakes))
    pairs = sorted((p for p in pairs if p.count >= 3), key=lambda p: -p.agreement)
    chosen = pairs[: args.num_pairs]
    classes = sorted({p.pair[0] for p in chosen})
    generator = torch.Generator().manual_seed(seed)
    aimed = weaknesses.extra_data(dataset.train, args.num_extra, generator, classes or None)
    anything = weaknesses.extra_data(dataset.train, args.num_extra, generator)
    record = {
        "pairs": [
            {"pair": list(p.pair), "count": p.count, "agreement": p.agreement} for p in chosen
        ],
        "other_pairs_mean_agreement": mean([p.agreement for p in pairs[args.num_pairs :]] or [0]),
        "baseline_test_accuracy": accuracy(model, dataset.test),
    }
    for name, extra in (("targeted", aimed), ("random", anything)):
        fixed = fit(dataset, weaknesses.joined(dataset.train, extra), args, seed)
        record[f"{name}_test_accuracy"] = accuracy(fixed, dataset.test)
    print(
        f"seed {seed} weak pairs {[p.pair for p in chosen]}: baseline "
        f"{record['baseline_test_accuracy']:.2%}, targeted {record['targeted_test_accuracy']:.2%}"
        f", random {record['random_test_accuracy']:.2%}"
    )
    return record


def summary(runs: list[dict]) -> dict:
    """Mean and standard deviation over the seeds of every number in the runs' records."""

    def walk(values: list, prefix: str, out: dict) -> None:
        first = values[0]
        if isinstance(first, dict):
            for key in first:
                walk([v[key] for v in values], f"{prefix}{key}.", out)
        elif isinstance(first, int | float) and not isinstance(first, bool):
            spread = stdev(values) if len(values) > 1 else 0.0
            out[prefix[:-1]] = {"mean": mean(values), "std": spread}

    out: dict = {}
    walk([{k: r[k] for k in ("decoy", "labels", "weak_pairs")} for r in runs], "", out)
    return out


def main() -> None:
    parser = common.parser(__doc__, "fixing.json")
    parser.set_defaults(num_epochs=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-size", type=int, default=None, help="first N training images")
    parser.add_argument("--weight", type=float, default=10.0, help="right-reasons lambda")
    parser.add_argument("--noise-rate", type=float, default=0.05)
    parser.add_argument("--num-folds", type=int, default=2)
    parser.add_argument("--num-pairs", type=int, default=3)
    parser.add_argument("--num-extra", type=int, default=300)
    args = parser.parse_args()
    lesson = course.setup(
        seed=args.seeds[0], device=args.device, dataset=args.dataset, num_threads=args.num_threads
    )
    args.device_ = lesson.device
    dataset = lesson.dataset
    if args.train_size:
        head = Split(dataset.train.x[: args.train_size], dataset.train.y[: args.train_size])
        dataset = replace(dataset, train=head)
    runs = []
    with common.timer(lesson.device) as seconds:
        for seed in args.seeds:
            labels, clean_model = label_run(dataset, args, seed)
            runs.append(
                {
                    "seed": seed,
                    "decoy": decoy_run(dataset, args, seed),
                    "labels": labels,
                    "weak_pairs": weakness_run(dataset, args, seed, clean_model),
                }
            )
    totals = summary(runs)
    for key, value in totals.items():
        print(f"{key:50} {value['mean']:.4f} ± {value['std']:.4f}")
    settings = {k: v for k, v in vars(args).items() if k not in ("device_", "output")}
    report = {
        "dataset": dataset.name,
        "device": str(lesson.device),
        "settings": settings,
        "seconds": seconds(),
        "runs": runs,
        "summary": totals,
    }
    common.write_report(args.output, report)


if __name__ == "__main__":
    main()
