"""Screening for issue 27: does the search weigh what its probes said as well as it could? (A
prototype: kept with its result, not part of the benchmark.)

Run from the repository root, alone:

    .venv/bin/python benchmarks/prototypes/probe_screen.py  # probe_screen.json beside it

Each round of the boundary search (``helpers/attacks/boundary.py``) asks about random probes
around its point and adds their signed directions to a memory it keeps for the whole search;
its estimate of the normal is the surrogate's gradient plus that memory's part orthogonal to
it, weighed by how much the probes have said (``trust``, the cosine that many random sign
probes would give the normal of a boundary that stayed put). The score screening found that
the normal turns as the point moves, so what earlier rounds measured goes stale; this asks
whether the search should forget (part of the memory dropped before each round), trust the
memory more than that formula does, or hedge where the probes vary (stroke-weighted
directions, ``boundary.content_weights``, with more weight left on the blank pixels). Each
VARIANT is ours (the benchmark's SETTINGS, pool starts) through ROUTE's surrogate on each
provider's tuning set (the first 20 pool mistakes, never reported) at BUDGETS, the same probes
drawn (one seed) for every variant. The variants change the search inside ``weighing``, which
wraps the module's own functions for the run and puts them back after: no query is added or
saved by any of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import screening  # first: it puts benchmarks/ and the repository on the path
from screening import bench, curves

from helpers import data, surrogate
from helpers.attacks import boundary

ROUTE = "one of each candidate family, noise σ = 0.2, averaged over shifts of 2 px"
"""The route the reported runs used when this ran (the benchmark's ROUTE then): the search is
screened through the surrogate it runs through."""
BUDGETS = (100, 500)
"""Queries per image: the budgets issue 27 judges (at 100 the search has one round of probes,
so forgetting changes nothing there)."""
VARIANTS = {
    "as built": {},
    "half the memory forgotten each round": {"forget": 0.5},
    "the memory forgotten each round": {"forget": 1.0},
    "the memory trusted 1.5 times as much": {"trust": 1.5},
    "the memory trusted twice as much": {"trust": 2.0},
    "stroke-weighted directions": {"directions": "content"},
    "stroke-weighted, floor 0.3": {"directions": "content", "floor": 0.3},
}
"""forget: the share of the memory (and of its count of probes) dropped before each round;
trust: the factor on the memory's weight (its count of probes times its square, so that the
formula's square root gives the factor); directions and floor: where probes vary
(``boundary.DIRECTIONS``; the stroke weights' floor on blank pixels, 0.05 as built)."""


@contextlib.contextmanager
def weighing(forget: float = 0.0, trust: float = 1.0, floor: float = 0.05) -> Iterator[None]:
    """Within it, the search forgets ``forget`` of its memory before each round, trusts the
    memory ``trust`` times as much, and its stroke-weighted directions keep ``floor``."""
    probe, weights = boundary._probe, boundary.content_weights

    def probe_weighed(run, search, rows, prior, probes) -> None:
        search.memory[rows] *= 1 - forget
        search.probes[rows] *= 1 - forget
        before = search.probes[rows].clone()
        probe(run, search, rows, prior, probes)
        search.probes[rows] = before + trust**2 * (search.probes[rows] - before)

    boundary._probe = probe_weighed
    boundary.content_weights = lambda x, radius=boundary.RADIUS: weights(x, radius, floor)
    try:
        yield
    finally:
        boundary._probe, boundary.content_weights = probe, weights


def screen(provider: screening.Provider, dataset: data.Dataset) -> dict:
    """Each variant's curve on one provider's tuning set."""
    trained, mistakes = provider.trained, provider.mistakes
    starts = surrogate.nearest_answered(mistakes.x, mistakes.y, trained.x, trained.targets)
    result = {}
    for name, variant in VARIANTS.items():
        options = {**bench.SETTINGS, "starts": starts}
        options["directions"] = variant.get("directions", options["directions"])
        change = {k: v for k, v in variant.items() if k != "directions"}
        with weighing(**change):
            curve = curves.ours_curve(
                provider.model, provider.net, mistakes, provider.whitebox, BUDGETS, name, **options
            )
        result[name] = curve
        print(f"  {provider.family} {name}: {screening.ratios(curve)}", flush=True)
    return result


def main() -> None:
    screening.run(
        __file__,
        screen,
        route=ROUTE,
        budgets=list(BUDGETS),
        variants=VARIANTS,
        statistic=screening.SEARCHES,
    )


if __name__ == "__main__":
    main()
