"""Which surrogate architecture gives the smallest black-box explanations? (issue: black-box
explanations as small as the developer's)

Run from the repository root, in the project's environment:

    .venv/bin/python benchmarks/surrogates.py                 # bundled data, default settings
    .venv/bin/python benchmarks/surrogates.py --architectures SurrogateCNN MLP LeNetBN

The user's 1,000 pool images are labelled once through the black box (probabilities, 1,000
label queries); a surrogate of each architecture of `architectures.ARCHITECTURES` (the course's
SurrogateCNN, the provider's own SmallCNN, helpers.zoo's MLP, LeNetBN and SmallResNet, and an
Ensemble of 4 SmallCNNs) is trained on those same answers for --surrogate-epochs, from the seed
after the provider's (with the provider's own seed, a SmallCNN would start from the provider's
very initial weights, which no user knows). Per architecture: agreement with the black
box on the test set; a diagnostic no user has, the median cosine between the surrogate's
gradient and the provider's (of the true class against the wrong answer, at the white-box
minimal explanation's end point, on the boundary); and the label-only boundary search of
notebook 05 at each of --budgets black-box queries per image: success, median L2 ÷ the
white-box minimal explanation (DeepFool + refinement) and cosine with it. Writes
build/bench/surrogates.json.
"""

from __future__ import annotations

import common
import curves
import torch

from helpers import (
    architectures,
    attacks,
    blackbox,
    evaluation,
    metrics,
    surrogate,
)
from helpers.attacks import boundary

ARCHITECTURES = ("SurrogateCNN", "SmallCNN", "MLP", "LeNetBN", "SmallResNet", "Ensemble")


def main() -> None:
    parser = common.parser(__doc__, "surrogates.json")
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--surrogate-epochs", type=int, default=40)
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 100, 500])
    args = parser.parse_args()
    lesson, model, metadata, mistakes = common.setup(args)
    dataset, device = lesson.dataset, lesson.device
    pool = dataset.pool.x.to(device)
    targets = blackbox.BlackBox(model, max_queries=len(pool)).probabilities(pool)
    whitebox = attacks.explain(model, mistakes, method="deepfool_refined")
    check = dataset.test.x.to(device), evaluation.predict_logits(model, dataset.test.x.to(device))
    records = []
    for name in args.architectures:
        mean = tuple(pool.mean(dim=(0, 2, 3)).tolist())
        std = tuple(pool.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed + 1)  # not the provider's seed: see the docstring
            build = architectures.classifier(name)
            net = build(dataset.image_shape, dataset.num_classes, mean, std)
        net.to(device)
        surrogate.fit(net, pool, targets, num_epochs=args.surrogate_epochs, seed=args.seed + 1)
        net.eval()
        agreement = evaluation.predict_logits(net, check[0]).argmax(1) == check[1].argmax(1)
        record = {
            "architecture": name,
            "label_queries": len(pool),
            "agreement": agreement.float().mean().item(),
            "gradient_cosine": curves.gradient_cosine(model, net, mistakes, whitebox),
            "budget_curve": [],
        }
        for budget in args.budgets:
            schedule = min(curves.SCHEDULE_QUERIES, budget)
            result = boundary.explain(
                blackbox.BlackBox(model),
                net,
                mistakes.x,
                mistakes.y,
                max_queries=schedule,
                num_shrink_queries=budget - schedule,
            )
            assert (result.queries <= budget).all()
            point = metrics.budget_record(name, budget, result, whitebox)
            record["budget_curve"].append(point)
        records.append(record)
        print(
            f"{name:12} agreement {record['agreement']:.1%}  gradient cosine "
            f"{record['gradient_cosine']:.2f}  "
            + "  ".join(
                f"{p['budget']} q: {p['median_l2_ratio_to_whitebox']:.2f}× "
                f"({p['success_rate']:.0%})"
                for p in record["budget_curve"]
            )
        )
    report = {
        "dataset": dataset.name,
        "device": str(device),
        "num_misclassified": len(mistakes),
        "test_accuracy": metadata["test_accuracy"],
        "budgets": args.budgets,
        "architectures": records,
    }
    common.write_report(args.output, report)


if __name__ == "__main__":
    main()
