"""Screening for issue 27: does a wider ensemble, the route's surrogate trained from several seeds
and averaged, point the provider's way better than one? (A prototype: kept with its result,
not part of the benchmark.)

Run from the repository root, alone:

    .venv/bin/python benchmarks/prototypes/ensemble_screen.py  # its JSON beside it

Transfer attacks average several surrogates because each one's error about another network is
partly its own (Liu et al. 2017): what the members share is more likely to be the target's. The
route's surrogate already averages one member of each candidate family; a draw from another
seed (another start, another batch order, other noise) errs differently again, and
``blackbox_seeds.py`` measures how far one draw's figures move. Here the benchmark's ROUTE is
trained from the seeds 1 to max(WIDTHS) (draw k of the seed study: seed 1 + k), and the first
``width`` of them averaged, their log-probabilities meaned as an ensemble's are, so each
gradient is the mean of theirs. It costs training time and time per gradient, never a query.
For each provider: agreement with the black box on the test split, the gradient's median
cosine with the provider's at the developer's explanations of the tuning set (a diagnostic no
user has), and ours (the benchmark's settings, pool starts) through it on the tuning set (the
first 20 pool mistakes, never reported) at BUDGETS.
"""

from __future__ import annotations

import screening  # first: it puts benchmarks/ and the repository on the path
import torch
from screening import bench
from torch import Tensor, nn

from helpers import data

ROUTE = bench.ROUTE
"""The route each draw is trained by: the benchmark's (distilled at T = 10, shifts of 2 px)."""
WIDTHS = (1, 2, 4)
"""How many draws each surrogate averages (1: the benchmark's own surrogate, as it is)."""
BUDGETS = (100, 500)
"""Queries per image of the searches."""


class Averaged(nn.Module):
    """Several trained surrogates as one: the mean of their log-probabilities (N, K)."""

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([net(x).log_softmax(1) for net in self.nets]).mean(0)


def screen(provider: screening.Provider, dataset: data.Dataset) -> dict:
    """The route's surrogate averaged over 1, 2 and 4 draws on one provider."""
    args, route = screening.ARGS, bench.ROUTES[ROUTE]
    draws = [provider.net]  # the benchmark's: seed args.seed + 1
    for k in range(1, max(WIDTHS)):
        seed = args.seed + 1 + k
        draws.append(bench.route_surrogate(route, provider.trained, provider.family, args, seed))
    nets = {"1 draw (the route's)": lambda: provider.net}
    for width in WIDTHS[1:]:
        nets[f"{width} draws"] = lambda width=width: Averaged(draws[:width]).eval()
    return screening.measure(provider, dataset, nets, BUDGETS)


def main() -> None:
    fields = dict(widths=list(WIDTHS), budgets=list(BUDGETS))
    screening.run(__file__, screen, route=ROUTE, statistic=screening.SEARCHES, **fields)


if __name__ == "__main__":
    main()
