"""Screening for issue 27: do the transfer attacks' ways of smoothing a surrogate's gradient
point it closer to the provider's? (A prototype: kept with its result, not part of the
benchmark.)

Run from the repository root, alone:

    .venv/bin/python benchmarks/prototypes/smoothing_screen.py  # smoothing_screen.json beside it

The search's prior is the surrogate's gradient at the point it stands on. Transfer attacks
smooth that gradient before they follow it, because what a surrogate gets wrong about another
network is mostly in the gradient's fine detail: averaged over Gaussian noise on the input
(SmoothGrad, Smilkov et al. 2017; VMI-FGSM, Wang and He 2021 average over a neighbourhood),
blurred with a Gaussian kernel (the translation-invariant attack, Dong et al. 2019), or
averaged over small shifts of the image. For each provider of benchmarks/blackbox.py, trained
and surrogated as its ``--routes`` run does (the provider's family left out, ROUTE's
surrogate), at the developer's explanations of the tuning set (the first 20 pool mistakes),
the cosine of each smoothed gradient with the provider's (a diagnostic no user has) beside
the raw gradient's, which the search used; then ours (the benchmark's settings, pool starts)
through the surrogate and through it averaged over shifts of 1 and 2 pixels
(``translation.ShiftAveraged``, whose gradient is the shift-averaged one) at 100 and 500
queries. No query is spent by any smoothing: a route that raised the cosine costs the end user
nothing but computing time.
"""

from __future__ import annotations

import screening  # first: it puts benchmarks/ and the repository on the path
import torch
from screening import bench, curves, gradients_at
from torch.nn import functional as F

from helpers import data, geometry, surrogate
from helpers.translation import ShiftAveraged

SAMPLES = 32
"""Noisy copies a SmoothGrad estimate averages."""
BUDGETS = (100, 500)
"""Queries per image of the searches through the raw and the shift-averaged surrogate."""


def noise_averaged(net, mistakes, points, sigma: float, generator) -> torch.Tensor:
    """(N, D) the surrogate's gradient averaged over ``SAMPLES`` copies of each point with
    Gaussian noise of standard deviation ``sigma`` (not clipped: the gradient is the model's)."""
    total = torch.zeros(len(points), points[0].numel())
    for _ in range(SAMPLES):
        noisy = points + sigma * torch.randn(points.shape, generator=generator)
        total += gradients_at(net, mistakes, noisy)
    return total / SAMPLES


def blurred(gradient: torch.Tensor, shape, width: float) -> torch.Tensor:
    """(N, D) each gradient blurred with a Gaussian kernel of ``width`` pixels (the
    translation-invariant attack's smoothing)."""
    radius = max(1, round(3 * width))
    offsets = torch.arange(-radius, radius + 1, dtype=gradient.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * width**2))
    kernel = kernel / kernel.sum()
    image = gradient.view(-1, 1, *shape[-2:])
    image = F.conv2d(image, kernel.view(1, 1, 1, -1), padding=(0, radius))
    image = F.conv2d(image, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    return image.flatten(1)


def shift_averaged(net, mistakes, points, reach: int) -> torch.Tensor:
    """(N, D) the surrogate's gradient averaged over the image shifted by up to ``reach``
    pixels each way (each gradient shifted back)."""
    total = torch.zeros(len(points), points[0].numel())
    shifts = [(dy, dx) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)]
    for dy, dx in shifts:
        moved = torch.roll(points, shifts=(dy, dx), dims=(-2, -1))
        grad = gradients_at(net, mistakes, moved).view(points.shape)
        total += torch.roll(grad, shifts=(-dy, -dx), dims=(-2, -1)).flatten(1)
    return total / len(shifts)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """The median cosine of the rows of ``a`` and ``b``."""
    return (geometry.unit(a) * geometry.unit(b)).sum(1).median().item()


def screen(provider: screening.Provider, dataset: data.Dataset) -> dict:
    """Each smoothing's median cosine with the provider's gradient on one provider."""
    mistakes, whitebox, net = provider.mistakes, provider.whitebox, provider.net
    explained = whitebox.success
    mistakes, points = mistakes[explained], whitebox.x_adv[explained]
    target = gradients_at(provider.model, mistakes, points)
    raw = gradients_at(net, mistakes, points)
    generator = torch.Generator().manual_seed(screening.ARGS.seed)
    record = {"raw (the search's prior now)": cosine(raw, target)}
    members = torch.stack([geometry.unit(gradients_at(m, mistakes, points)) for m in net.members])
    record["mean of each member's unit gradient"] = cosine(members.mean(0), target)
    for sigma in (0.1, 0.2, 0.3, 0.5):
        smooth = noise_averaged(net, mistakes, points, sigma, generator)
        record[f"noise-averaged, sigma {sigma}"] = cosine(smooth, target)
        if sigma == 0.2:
            record["noise-averaged 0.2, blurred 1 px"] = cosine(
                blurred(smooth, points.shape, 1.0), target
            )
    for width in (0.5, 1.0, 1.5, 2.0):
        record[f"blurred, {width} px"] = cosine(blurred(raw, points.shape, width), target)
    for reach in (1, 2):
        record[f"shift-averaged, {reach} px"] = cosine(
            shift_averaged(net, mistakes, points, reach), target
        )
    record["provider's own gradient blurred 1 px (how much its detail weighs)"] = cosine(
        blurred(target, points.shape, 1.0), target
    )
    record["shift-averaged model, 1 px (its gradient)"] = cosine(
        gradients_at(ShiftAveraged(net, 1), mistakes, points), target
    )
    print(provider.family, {k: round(v, 3) for k, v in record.items()}, flush=True)
    return {"cosines": record, "searches": searches(provider)}


def searches(provider: screening.Provider) -> dict:
    """Ours (the benchmark's SETTINGS, pool starts) through ROUTE's surrogate and through it
    shift-averaged, at BUDGETS."""
    trained, mistakes = provider.trained, provider.mistakes
    starts = surrogate.nearest_answered(mistakes.x, mistakes.y, trained.x, trained.targets)
    options = {**bench.SETTINGS, "starts": starts}
    result = {}
    for name, net in {
        "raw": provider.net,
        "shift-averaged, 1 px": ShiftAveraged(provider.net, 1),
        "shift-averaged, 2 px": ShiftAveraged(provider.net, 2),
    }.items():
        curve = curves.ours_curve(
            provider.model, net, mistakes, provider.whitebox, BUDGETS, name, **options
        )
        result[name] = curve
        print(
            f"  {name}: " + ", ".join(f"{c['median_l2_ratio_to_whitebox']:.2f}" for c in curve),
            flush=True,
        )
    return result


def main() -> None:
    statistic = "median cosine over the tuning mistakes the developer explains"
    result = screening.run(
        __file__, screen, statistic=statistic, samples=SAMPLES, budgets=list(BUDGETS)
    )
    providers = [p["cosines"] for p in result["providers"].values()]
    for name in providers[0]:
        print(f"{name}: {[round(p[name], 3) for p in providers]}", flush=True)


if __name__ == "__main__":
    main()
