"""Screening for issue 27: how good a prior could any surrogate give, knowing more than an end
user can? (A prototype: kept with its result, not part of the benchmark.)

Run from the repository root, alone:

    .venv/bin/python benchmarks/prototypes/ceiling_screen.py  # its JSON beside it

prior_screen.py placed the targets at a gradient cosine of 0.6 to 0.9 with the provider's; every
route an end user can take stayed at 0.07 to 0.57. This screening asks whether any surrogate
gets there, by handing it what no end user of a model of unknown family has, one piece at a
time, each on every provider:

- the route's: the benchmark's end user (1,000 answers about the pool, ROUTE's recipe: one
  member of each candidate family less the provider's, noise σ = 0.2, distilled at T = 10,
  averaged over shifts of 2 px), for reference;
- the same recipe on the black box's answers about 4,000 images (the provider's 3,000 training
  images and the pool): the provider's data, still not its family;
- the same recipe with ``args.num_members`` members of the provider's own family on those
  4,000 answers: its data and its family (model extraction with the architecture known);
- the provider's twin: its family, its training images and labels, its recipe
  (``screening.train_provider``), another seed (1): everything but the weights;
- TWINS such twins (seeds 1 to TWINS), their log-probabilities averaged.

For each: agreement with the black box on the test split, the gradient's median cosine with the
provider's at the developer's explanations of the tuning set (a diagnostic no user has), and
ours (the benchmark's settings, pool starts) through it on the tuning set (the first 20 pool
mistakes, never reported) at BUDGETS. The answers about the training images are bought
through a ``BlackBox`` that counts them; they are not charged to the searches, which this
screening uses only to place the ceiling.
"""

from __future__ import annotations

import dataclasses

import screening  # first: it puts benchmarks/ and the repository on the path
import torch
from ensemble_screen import Averaged
from screening import bench

from helpers import blackbox, data

ROUTE = bench.ROUTE
"""The end user's route (the benchmark's), whose recipe the 4,000-answer surrogates follow."""
TWINS = 4
"""How many twins the averaged twin holds (seeds 1 to TWINS; the single twin is seed 1)."""
BUDGETS = (100, 500)
"""Queries per image of the searches."""


def answered(provider: screening.Provider, dataset: data.Dataset):
    """The end user's surrogate record with the black box's probabilities about the provider's
    training images added to the pool's (4,000 answers, each counted by the black box)."""
    x = torch.cat([dataset.train.x, dataset.pool.x])
    box = blackbox.BlackBox(provider.model, max_queries=len(x))
    targets = box.probabilities(x)
    assert box.queries == len(x), "every answer is one query"
    return dataclasses.replace(provider.trained, x=x, targets=targets)


def screen(provider: screening.Provider, dataset: data.Dataset) -> dict:
    """The ladder of knowledge above on one provider."""
    args, family = screening.ARGS, provider.family
    route = bench.ROUTES[ROUTE]
    more = answered(provider, dataset)
    own = dataclasses.replace(more, settings={**more.settings, "chosen": family})
    own_route = {key: value for key, value in route.items() if key != "mixed"}
    twins = [screening.train_provider(family, dataset, seed) for seed in range(1, TWINS + 1)]
    nets = {
        "the route's (1,000 answers, other families)": lambda: provider.net,
        "4,000 answers, other families": lambda: bench.route_surrogate(route, more, family, args),
        "4,000 answers, the provider's family": lambda: bench.route_surrogate(
            own_route, own, family, args
        ),
        "the provider's twin (seed 1)": lambda: twins[0],
        f"{TWINS} twins averaged": lambda: Averaged(twins).eval(),
    }
    return screening.measure(provider, dataset, nets, BUDGETS)


def main() -> None:
    fields = dict(twins=TWINS, budgets=list(BUDGETS))
    screening.run(__file__, screen, route=ROUTE, statistic=screening.SEARCHES, **fields)


if __name__ == "__main__":
    main()
