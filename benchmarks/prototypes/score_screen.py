"""Screening for issue 27: with the probabilities the black box already answers (the end user
labelled the pool with them), do explanations get smaller at 100 and 500 queries than the
label-only search's? (A prototype: kept with its result, not part of the benchmark.)

Run from the repository root, alone:

    .venv/bin/python benchmarks/prototypes/score_screen.py  # score_screen.json beside it

For each provider of benchmarks/blackbox.py, trained and surrogated as its ``--routes`` run does
(the provider's family left out, the surrogate by ROUTE), on the tuning set (the first 20 pool
mistakes, never reported), each image starts where ours does (the surrogate-guided step's point
or the nearest pool image answered y, whichever is nearer x), is brought onto the boundary by
regula falsi on the segment from x, then searched by rounds:

1. the margin m = log p_y - max_{k != y} log p_k is read from each answer (the probabilities);
   its slope along new directions (the direction from x, the surrogate's gradient, VARIANTS'
   number of random ones) is measured by forward differences from the current point, every
   direction kept orthonormal to all measured before, so that the estimate of the gradient is
   its projection onto everything measured so far (Cheng et al. 2019's P-RGF, which uses
   scores; a label-only search gets one sign per probe instead);
2. the step is CGBA's semicircle (Reza et al. 2023) in the plane of x_adv - x and that
   estimate, searched by regula falsi on the angle with the margins (not bisection on labels).

The cosine of the estimate with the provider's gradient there (a diagnostic no user has) is
recorded at each image's last round. The label-only search's figures on the same tuning set
are the routes table's (docs/benchmarks.md, ROUTE's row).
"""

from __future__ import annotations

import json
import math
import statistics

import screening  # first: it puts benchmarks/ and the repository on the path
import torch

from helpers import blackbox, data, geometry, surrogate
from helpers.attacks import transfer

BUDGETS = (100, 250, 500)  # queries per image, the step's included
FLOOR = 1e-12  # probabilities below this read as it (log 0 is -inf)
VARIANTS = {  # name -> (random directions a round, queries of each regula falsi, spread)
    "20 random, 3 steps": (20, 3, 0.05),
    "40 random, 4 steps": (40, 4, 0.05),
    "80 random, 3 steps": (80, 3, 0.05),
    "20 random, 3 steps, spread 0.01": (20, 3, 0.01),
}


def margins(model, y: int, points: torch.Tensor) -> torch.Tensor:
    """(n,) m at each point (n, C, H, W), from probabilities as an API answers them."""
    logp = model(points.clamp(0, 1)).softmax(1).clamp(min=FLOOR).log()
    mine = logp[:, y].clone()
    logp[:, y] = -torch.inf
    return mine - logp.max(1).values


class Margin:
    """The black box's margin of one image's class y, each image counted as a query."""

    def __init__(self, box: blackbox.BlackBox, y: int, spent: int) -> None:
        self.box, self.y, self.queries = box, y, spent

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        self.queries += len(points)
        return self.uncounted(points)

    def uncounted(self, points: torch.Tensor) -> torch.Tensor:
        """m at ``points`` as the black box answers it, not counted here (x's own answer)."""
        return margins(lambda p: self.box.probabilities(p).log(), self.y, points)


def falsi(margin, point, low: float, high: float, mlow: float, mhigh: float, steps: int):
    """Regula falsi (Illinois) on t in [low, high] where m(point(low)) >= 0 > m(point(high)):
    the point answered y at the t nearest high found in ``steps`` queries, and its margin (None,
    None if none beyond low was)."""
    found, mfound, side = None, None, 0
    for _ in range(steps):
        t = low + (high - low) * mlow / (mlow - mhigh)
        t = min(max(t, low + 0.02 * (high - low)), high - 0.02 * (high - low))
        candidate = point(t).clamp(0, 1)
        mt = margin(candidate[None])[0].item()
        if mt >= 0:
            low, mlow, found, mfound = t, mt, candidate, mt
            mhigh, side = (mhigh / 2 if side == 1 else mhigh), 1
        else:
            high, mhigh = t, mt
            mlow, side = (mlow / 2 if side == -1 else mlow), -1
    return found, mfound


def prior(net, z: torch.Tensor, y: int) -> torch.Tensor:
    """(D,) the gradient of m at z, of ``net``."""
    z = z[None].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(margins(net, y, z).sum(), z)
    return grad.flatten()


def search(box, net, model, x, y, start, spent, variant, generator):
    """One image's search; (queries, distance) at each improvement, and the last estimate's
    cosine with ``model``'s gradient."""
    num_random, steps, spread = variant
    budget = max(BUDGETS)
    margin = Margin(box, y, spent)
    mx = margin.uncounted(x[None])[0].item()  # as for ours, x's answer is not a query
    mz = margin(start[None])[0].item()
    if mz < 0:
        return [(margin.queries, math.inf)], math.nan
    z, shape, dim = start, x.shape, x.numel()
    found, mfound = falsi(margin, lambda t: z + t * (x - z), 0.0, 1.0, mz, mx, steps)
    z, mz = (found, mfound) if found is not None else (z, mz)
    best = [(margin.queries, (z - x).norm().item())]
    basis, slopes, cosine = torch.zeros(0, dim), torch.zeros(0), math.nan
    while (room := budget - margin.queries - steps) > 0:
        dist = (z - x).norm().item()
        new = [(z - x).flatten(), prior(net, z, y)]
        new += list(torch.randn(max(0, min(num_random, room - 2)), dim, generator=generator))
        fresh = torch.zeros(0, dim)
        for v in new:
            v = v - basis.T @ (basis @ v) - fresh.T @ (fresh @ v)
            if v.norm() > 1e-6 and len(basis) + len(fresh) < dim:
                fresh = torch.cat([fresh, (v / v.norm())[None]])
        fresh = fresh[:room]
        if len(fresh):
            h = spread * dist
            values = margin(z[None] + h * fresh.view(-1, *shape))
            basis, slopes = torch.cat([basis, fresh]), torch.cat([slopes, (values - mz) / h])
        g = basis.T @ slopes
        cosine = (geometry.unit(g[None]) @ geometry.unit(prior(model, z, y)[None]).T).item()
        u = (z - x).flatten() / dist
        v = g - (g @ u) * u
        if v.norm() == 0 or budget - margin.queries <= 0:
            break
        u, v = u.view(shape), (v / v.norm()).view(shape)

        def arc(theta: float, u=u, v=v, dist=dist) -> torch.Tensor:
            c, s = math.cos(theta), math.sin(theta)
            return x + dist * c * (c * u + s * v)

        left = min(steps, budget - margin.queries)
        found, mfound = falsi(margin, arc, 0.0, math.pi / 2, mz, mx, left)
        if found is not None and (found - x).norm() < dist:
            z, mz = found, mfound
            best.append((margin.queries, (z - x).norm().item()))
    return best, cosine


def screen(provider: screening.Provider, dataset: data.Dataset) -> dict:
    """Each variant's median size ratio at each budget on one provider's tuning set."""
    model, trained, net = provider.model, provider.trained, provider.net
    mistakes, whitebox, family = provider.mistakes, provider.whitebox, provider.family
    step = transfer.explain(blackbox.BlackBox(model), net, mistakes)
    starts = surrogate.nearest_answered(mistakes.x, mistakes.y, trained.x, trained.targets)
    record = {}
    for name, variant in VARIANTS.items():
        generator = torch.Generator().manual_seed(screening.ARGS.seed)
        ratios, cosines = {b: [] for b in BUDGETS}, []
        for i in whitebox.success.nonzero()[:, 0].tolist():
            x, y = mistakes.x[i], int(mistakes.y[i])
            start, spent = starts[i], 0
            if step.success[i] and (step.x_adv[i] - x).norm() < (start - x).norm():
                start, spent = step.x_adv[i], int(step.queries[i])
            box = blackbox.BlackBox(model)
            best, cosine = search(box, net, model, x, y, start, spent, variant, generator)
            reference = (whitebox.x_adv[i] - x).norm().item()
            for b in BUDGETS:
                ratios[b].append(min(d for q, d in best if q <= b) / reference)
            cosines.append(cosine)
        record[name] = {
            "median_l2_ratio_to_whitebox": {
                str(b): statistics.median(r) for b, r in ratios.items()
            },
            "success_rate": {
                str(b): statistics.mean(r < math.inf for r in v) for b, v in ratios.items()
            },
            "final_estimate_cosine": statistics.median(cosines),
        }
        print(family, name, json.dumps(record[name]), flush=True)
    return record


def main() -> None:
    statistic = "median over the tuning mistakes the developer explains"
    fields = dict(statistic=statistic, route=screening.ROUTE, budgets=BUDGETS)
    providers = screening.run(__file__, screen, **fields)["providers"]
    for name in VARIANTS:
        sums = {
            b: sum(p[name]["median_l2_ratio_to_whitebox"][str(b)] for p in providers.values())
            for b in (100, 500)
        }
        print(name, sums)


if __name__ == "__main__":
    main()
