"""Screening for issue 27: how good a prior would the search need to meet the targets? (A
prototype: kept with its result, not part of the benchmark; it reads the provider's gradients,
which no end user has, to place the targets, not to explain anything.)

Run from the repository root, alone:

    .venv/bin/python benchmarks/prototypes/prior_screen.py  # prior_screen.json beside it

The search follows a prior, its surrogate's gradient at the point it stands on, and refines it
with label probes. Every route so far changed the surrogate and measured its gradient's cosine
with the provider's afterwards; this sets the cosine instead. The search runs through
``Prior(provider, cosine)``, a stand-in surrogate whose gradient at any point, wherever the
search asks for one (the surrogate-guided step's and the boundary search's), is the
provider's own gradient of the same objective turned to make exactly ``cosine`` with it,
toward one fixed random direction (the same error at every point, as a surrogate's error
persists from one point to the next); its logits are the provider's (the route's surrogate,
trained on the provider's probabilities, approximates them), so only its gradient's direction
is set. For each provider, ours (the benchmark's SETTINGS,
pool starts) on its tuning set (the first 20 pool mistakes, never reported) at BUDGETS, for
each cosine of COSINES, beside the route's surrogate's own cosine (ROUTE: the surrogate of
the reported runs when this ran), measured as the routes table measures it. Every answer
still goes through the black box and is counted: only the prior is the provider's.
"""

from __future__ import annotations

import math

import screening  # first: it puts benchmarks/ and the repository on the path
import torch
from screening import bench, curves
from torch import Tensor, nn

from helpers import data, geometry, surrogate

ROUTE = "one of each candidate family, noise σ = 0.2, averaged over shifts of 2 px"
"""The route the reported runs used when this ran: its surrogate's cosine places it among
the set ones."""
COSINES = (0.2, 0.4, 0.6, 0.8, 0.9, 1.0)
"""The priors' cosines with the provider's gradient."""
BUDGETS = (100, 500)
"""Queries per image: the budgets issue 27 judges."""


class _Turn(torch.autograd.Function):
    """The identity on the way forward; on the way back, each image's gradient (a row of the
    incoming one) turned to make ``cosine`` with itself toward ``error``'s part orthogonal to
    it, its length kept (a zero gradient stays zero)."""

    @staticmethod
    def forward(ctx, x: Tensor, cosine: float, error: Tensor) -> Tensor:
        ctx.cosine = cosine
        ctx.save_for_backward(error)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        (error,) = ctx.saved_tensors
        flat = grad.flatten(1)
        length = flat.norm(dim=1, keepdim=True)
        along = geometry.unit(flat)
        aside = error.flatten(1).expand_as(flat)
        aside = geometry.unit(aside - (aside * along).sum(1, keepdim=True) * along)
        turned = ctx.cosine * along + math.sqrt(1 - ctx.cosine**2) * aside
        return (turned * length).view_as(grad), None, None


class Prior(nn.Module):
    """The provider ``model`` as a surrogate whose input gradients make ``cosine`` with its
    own, toward a fixed random direction drawn from ``seed``."""

    def __init__(self, model: nn.Module, cosine: float, shape: tuple[int, ...], seed: int = 0):
        super().__init__()
        self.model, self.cosine = model, cosine
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("error", torch.randn((1, *shape), generator=generator))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(_Turn.apply(x, self.cosine, self.error))


def screen(provider: screening.Provider, dataset: data.Dataset) -> dict:
    """The route's surrogate's cosine and ours through each set prior on one provider."""
    trained, mistakes, whitebox = provider.trained, provider.mistakes, provider.whitebox
    starts = surrogate.nearest_answered(mistakes.x, mistakes.y, trained.x, trained.targets)
    options = {**bench.SETTINGS, "starts": starts}
    own = curves.gradient_cosine(provider.model, provider.net, mistakes, whitebox)
    result = {"route's gradient cosine": own, "curves": {}}
    shape = tuple(mistakes.x.shape[1:])
    for cosine in COSINES:
        prior = Prior(provider.model, cosine, shape, seed=screening.ARGS.seed).eval()
        name = f"cosine {cosine}"
        measured = curves.gradient_cosine(provider.model, prior, mistakes, whitebox)
        assert abs(measured - cosine) < 1e-3, (cosine, measured)  # the prior is as set
        curve = curves.ours_curve(
            provider.model, prior, mistakes, whitebox, BUDGETS, name, **options
        )
        result["curves"][name] = curve
        print(
            f"  {provider.family} {name}: {screening.ratios(curve)} (the route's: {own:.2f})",
            flush=True,
        )
    return result


def main() -> None:
    fields = dict(budgets=list(BUDGETS), cosines=list(COSINES), statistic=screening.SEARCHES)
    screening.run(__file__, screen, route=ROUTE, **fields)


if __name__ == "__main__":
    main()
