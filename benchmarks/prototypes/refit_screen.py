"""Screening for issue 27: how far can refitting the end user's surrogate on the boundary search's
own answers turn its gradient toward the provider's? (A prototype: kept with its result, not
part of the benchmark.)

Run from the repository root, alone:

    .venv/bin/python benchmarks/prototypes/refit_screen.py  # refit_screen.json beside it

For each provider of benchmarks/blackbox.py, trained and surrogated as its ``--routes`` run does
(ROUTE's surrogate, the provider's family left out), ours searches the tuning set (the first
20 pool mistakes) with half the largest target budget, through a black box that logs every
image asked about and its answer (``curves.Recorder``). Copies of the surrogate are then
trained on those answers in VARIANTS' ways, and each one's ``curves.gradient_cosine`` with the
provider (a diagnostic no user has) is written beside the surrogate's before.
"""

from __future__ import annotations

import copy

import screening  # first: it puts benchmarks/ and the repository on the path
import torch
from screening import bench, curves

from helpers import data, surrogate
from helpers.attacks import boundary

BUDGET = 250  # half of the largest target budget, as the halves routes spend first
VARIANTS = {  # name -> (the pool's answers too, epochs, learning rate)
    "pool and search answers, 10 epochs": (True, 10, 1e-3),
    "pool and search answers, 40 epochs": (True, 40, 1e-3),
    "search answers only, 10 epochs": (False, 10, 1e-3),
    "search answers only, 40 epochs, lr 1e-4": (False, 40, 1e-4),
}


def screen(provider: screening.Provider, dataset: data.Dataset) -> dict:
    """VARIANTS' gradient cosines on one provider."""
    model, trained, net = provider.model, provider.trained, provider.net
    mistakes, whitebox, family = provider.mistakes, provider.whitebox, provider.family
    starts = surrogate.nearest_answered(mistakes.x, mistakes.y, trained.x, trained.targets)
    box, schedule = curves.Recorder(model), curves.SCHEDULE_QUERIES
    options = {**bench.SETTINGS, "starts": starts}
    shrink = BUDGET - schedule
    boundary.explain(box, net, mistakes, max_queries=schedule, num_shrink_queries=shrink, **options)
    asked, answered = torch.cat(box.asked), torch.cat(box.answered)
    record = {
        "search_answers": len(asked),
        "before": curves.gradient_cosine(model, net, mistakes, whitebox),
    }
    for name, (pool, epochs, lr) in VARIANTS.items():
        x = torch.cat([trained.x, asked]) if pool else asked
        targets = torch.cat([trained.targets, answered]) if pool else answered
        refit = copy.deepcopy(net)
        surrogate.fit(refit, x, targets, num_epochs=epochs, lr=lr, seed=screening.ARGS.seed + 2)
        record[name] = curves.gradient_cosine(model, refit.eval(), mistakes, whitebox)
        print(f"{family}: {name}: {record[name]:.3f} (before {record['before']:.3f})", flush=True)
    return record


def main() -> None:
    variants = {name: dict(zip(("pool", "epochs", "lr"), v)) for name, v in VARIANTS.items()}
    screening.run(__file__, screen, route=screening.ROUTE, budget=BUDGET, variants=variants)


if __name__ == "__main__":
    main()
