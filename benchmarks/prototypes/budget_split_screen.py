"""Screening for issue 27: would spending part of the search's budget on labelling images of the
end user's own making give a surrogate whose gradient points the provider's way? (A prototype:
kept with its result, not part of the benchmark.)

Run from the repository root, alone:

    .venv/bin/python benchmarks/prototypes/budget_split_screen.py  # budget_split_screen.json

For each provider of benchmarks/blackbox.py, trained and surrogated as its ``--routes`` run does
(ROUTE's surrogate from the 1,000 pool answers, the provider's family left out), EXTRA more
images are made in VARIANTS' ways, labelled through the black box (probabilities), and ROUTE's
surrogate is trained afresh on the pool's and their answers. Each one's
``curves.gradient_cosine`` with the provider (a diagnostic no user has) at the developer's
explanations of the tuning set (the first 20 pool mistakes) is written beside the pool-only
surrogate's, with ours (the benchmark's SETTINGS, pool starts) through each at BUDGETS. EXTRA
labels cost as many queries as EXTRA / 20 = 100 per tuning mistake would: the split moves them
from the search to the surrogate, so a grown surrogate's 400 compares with the pool-only
surrogate's 500 (and its 100 with nothing: the labels alone spend that budget).
"""

from __future__ import annotations

import dataclasses

import screening  # first: it puts benchmarks/ and the repository on the path
import torch
from screening import bench, curves

from helpers import blackbox, data, surrogate

EXTRA = 2000  # made-up images labelled: 100 queries per tuning mistake
BUDGETS = (100, 400, 500)  # ours' queries per image; 400 + the labels' 100 = 500


def jacobian(net, pool, answers, generator) -> torch.Tensor:
    """Papernot et al.'s augmentation from every pool image, a step of 0.1 each way."""
    labels = answers.argmax(1)
    steps = [surrogate.jacobian_augment(net, pool, labels, s) for s in (0.1, -0.1)]
    return torch.cat(steps)[:EXTRA]


def mixup(net, pool, answers, generator) -> torch.Tensor:
    """Mixtures of two pool images of different answers, in shares drawn from [0.25, 0.75]:
    points between two classes, where a boundary lies."""
    labels = answers.argmax(1)
    first = torch.randint(len(pool), (4 * EXTRA,), generator=generator)
    second = torch.randint(len(pool), (4 * EXTRA,), generator=generator)
    keep = (labels[first] != labels[second]).nonzero()[:EXTRA, 0]
    share = torch.rand(len(keep), generator=generator)[:, None, None, None] / 2 + 0.25
    return share * pool[first[keep]] + (1 - share) * pool[second[keep]]


VARIANTS = {"Jacobian augmentation": jacobian, "mixup of two answers": mixup}


def screen(provider: screening.Provider, dataset: data.Dataset) -> dict:
    """The gradient cosine of the pool-only surrogate and of VARIANTS', and ours through each at
    BUDGETS, on one provider."""
    model, trained, net, family = provider.model, provider.trained, provider.net, provider.family
    mistakes, whitebox, route = provider.mistakes, provider.whitebox, bench.ROUTES[screening.ROUTE]
    starts = surrogate.nearest_answered(mistakes.x, mistakes.y, trained.x, trained.targets)
    options = {**bench.SETTINGS, "starts": starts}
    nets = {"pool only": net}
    for name, make in VARIANTS.items():
        generator = torch.Generator().manual_seed(screening.ARGS.seed)
        made = make(net, trained.x, trained.targets, generator)
        answers = blackbox.BlackBox(model, max_queries=EXTRA).probabilities(made)
        grown = dataclasses.replace(
            trained, x=torch.cat([trained.x, made]), targets=torch.cat([trained.targets, answers])
        )
        nets[name] = bench.route_surrogate(route, grown, family, screening.ARGS)
    record = {}
    for name, each in nets.items():
        subject = (model, each, mistakes, whitebox, BUDGETS, name)
        record[name] = {
            "gradient_cosine": curves.gradient_cosine(model, each, mistakes, whitebox),
            "curve": curves.ours_curve(*subject, **options),
        }
        ratios = [round(p["median_l2_ratio_to_whitebox"], 2) for p in record[name]["curve"]]
        print(f"{family}: {name}: {record[name]['gradient_cosine']:.3f} {ratios}", flush=True)
    return record


def main() -> None:
    statistic = "median over the tuning mistakes the developer explains"
    fields = dict(route=screening.ROUTE, extra_labels=EXTRA, budgets=BUDGETS, statistic=statistic)
    screening.run(__file__, screen, **fields)


if __name__ == "__main__":
    main()
