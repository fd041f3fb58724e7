"""Screening for issue 27: can the end user buy the provider's slopes, not only its answers, and
train the surrogate to match them? (A prototype: kept with its result, not part of the
benchmark.)

Run from the repository root, alone:

    .venv/bin/python benchmarks/prototypes/sobolev_screen.py  # sobolev_screen.json beside it

The prior screening says the targets need a surrogate whose gradient makes a cosine of 0.7 to
0.9 with the provider's; trained on answers alone, none of the routes' surrogates passes 0.5.
Sobolev training (Czarnecki et al. 2017) fits a student to its teacher's derivatives as well as
its outputs. The black box answers probabilities, so the end user can measure a slope by
finite differences: the change of its centred log-probabilities (log-probabilities less their
mean: the logits up to a constant) between a point and a point STEP away, over STEP. At
POINTS mixtures of two pool images the black box answered differently (between two classes,
where a boundary lies), the user asks about the mixture and about SLOPES points around it: one
along the gradient of the route's surrogate (whether its steepest direction is steep for the
provider too), the others random; POINTS × (SLOPES + 1) = 2,000 queries, bought once, as the
budget split's 2,000 extra labels were. Two surrogates are trained by the route's recipe (one
member of each candidate family, noise σ = 0.2 on the answers' batches, then averaged over
shifts of 2 pixels), each on the pool's answers and more:

- "2,000 more answers": as many mixtures, their answers only (the control: the same queries
  spent on labels);
- "500 answers and their slopes": the POINTS mixtures' answers, and a penalty (WEIGHT times
  the mean squared error of the member's slopes between the same pairs of points, over the
  slopes' own mean square) on a batch of the pairs with every batch of answers.

For each provider: each surrogate's agreement with the black box on the test split, its
gradient's median cosine with the provider's at the developer's explanations of the tuning set
(a diagnostic no user has), and ours (the benchmark's settings, pool starts) through it on the
tuning set at BUDGETS, beside the route's own surrogate (pool answers only).
"""

from __future__ import annotations

import dataclasses

import screening  # first: it puts benchmarks/ and the repository on the path
import torch
import torch.nn.functional as F
from budget_split_screen import EXTRA as MIXTURES
from budget_split_screen import mixup
from screening import bench
from torch import Tensor, nn

from helpers import (
    blackbox,
    data,
    engine,
    geometry,
    objectives,
)

ROUTE = "one of each candidate family, noise σ = 0.2, averaged over shifts of 2 px"
"""The route whose recipe both surrogates follow, and whose surrogate they are compared with."""
POINTS = 500
"""Mixtures at which slopes are bought."""
SLOPES = 3
"""Slopes bought at each mixture: along the route's surrogate's gradient, then random."""
STEP = 0.1
"""The finite difference's length (L2) before clipping to [0, 1]."""
WEIGHT = 1.0
"""The slopes' penalty beside the answers' cross-entropy."""
BUDGETS = (100, 500)
"""Queries per image of the searches."""
EXTRA = POINTS * (SLOPES + 1)
"""Queries bought beyond the pool's answers, by either surrogate: the budget split's."""
assert EXTRA == MIXTURES


def centred(log_probabilities: Tensor) -> Tensor:
    """Log-probabilities (n, K) less their mean: the logits up to a constant per image."""
    return log_probabilities - log_probabilities.mean(1, keepdim=True)


def directions(net: nn.Module, points: Tensor, generator) -> Tensor:
    """(n, SLOPES, C, H, W) unit directions at each point: the gradient of ``net``'s pair
    objective between its two likeliest classes, then random ones."""
    with torch.no_grad():
        top = net(points).topk(2, dim=1).indices
    _, _, grad = engine.objective_gradient(net, points, top[:, 0], objectives.pair(top[:, 1]))
    random = torch.randn((len(points), SLOPES - 1, *points.shape[1:]), generator=generator)
    return torch.cat(
        [geometry.unit(grad)[:, None], geometry.unit(random.flatten(0, 1)).view_as(random)], 1
    )


def buy_slopes(model: nn.Module, net: nn.Module, points: Tensor, generator):
    """Ask the black box about each point and SLOPES points around it (probabilities): the
    answers at the points, and the pairs (start, end) with the change of the centred
    log-probabilities between them over STEP."""
    ends = (points[:, None] + STEP * directions(net, points, generator)).clamp(0, 1)
    box = blackbox.BlackBox(model, max_queries=EXTRA)
    asked = torch.cat([points, ends.flatten(0, 1)])
    answered = box.probabilities(asked)
    assert box.queries == EXTRA
    logs = centred(answered.clamp(min=1e-30).log())
    at, around = logs[: len(points)], logs[len(points) :].view(len(points), SLOPES, -1)
    starts = points[:, None].expand_as(ends).flatten(0, 1)
    slopes = ((around - at[:, None]) / STEP).flatten(0, 1)
    return answered[: len(points)], (starts, ends.flatten(0, 1), slopes)


def slope_penalty(pairs, generator, batch: int = 64):
    """``training.train``'s penalty: WEIGHT times the member's slopes' mean squared error on a
    random batch of ``pairs``, over the slopes' own mean square."""
    starts, ends, slopes = pairs
    scale = slopes.pow(2).mean()

    def penalty(model: nn.Module, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        pick = torch.randint(len(slopes), (batch,), generator=generator)
        both = centred(F.log_softmax(model(torch.cat([starts[pick], ends[pick]])), 1))
        own = (both[batch:] - both[:batch]) / STEP
        return WEIGHT * (own - slopes[pick]).pow(2).mean() / scale

    return penalty


def screen(provider: screening.Provider, dataset: data.Dataset) -> dict:
    """The route's surrogate and the two grown ones on one provider."""
    model, trained, family = provider.model, provider.trained, provider.family
    generator = torch.Generator().manual_seed(screening.ARGS.seed)
    made = mixup(provider.net, trained.x, trained.targets, generator)  # the budget split's
    answers = blackbox.BlackBox(model, max_queries=EXTRA).probabilities(made)
    points = made[:POINTS]
    at, pairs = buy_slopes(model, provider.net, points, generator)
    assert torch.allclose(at, answers[:POINTS], atol=1e-6)  # the same mixtures, asked again
    pool_x, pool_t, args = trained.x, trained.targets, screening.ARGS
    grown = dataclasses.replace(
        trained, x=torch.cat([pool_x, made]), targets=torch.cat([pool_t, answers])
    )
    nets = {
        "the route's (pool answers only)": provider.net,
        "2,000 more answers": bench.route_surrogate(bench.ROUTES[ROUTE], grown, family, args),
        "500 answers and their slopes": screening.train_penalized(
            trained,
            family,
            torch.cat([pool_x, points]),
            torch.cat([pool_t, at]),
            lambda seed: slope_penalty(pairs, torch.Generator().manual_seed(seed + 2**30)),
        ),
    }
    built = {name: (lambda net=net: net) for name, net in nets.items()}
    return screening.measure(provider, dataset, built, BUDGETS)


def main() -> None:
    fields = dict(points=POINTS, slopes=SLOPES, step=STEP, weight=WEIGHT, budgets=list(BUDGETS))
    screening.run(__file__, screen, route=ROUTE, statistic=screening.SEARCHES, **fields)


if __name__ == "__main__":
    main()
