"""Screening for issue 27: would a subspace of several surrogates' gradients hold the provider's
gradient better than their mean does? (A prototype: kept with its result, not part of the
benchmark.)

Run from the repository root, alone:

    .venv/bin/python benchmarks/prototypes/subspace_screen.py  # subspace_screen.json beside it

For each provider of benchmarks/blackbox.py, trained and surrogated as its ``--routes`` run does
(the provider's family left out), two surrogates are trained on the same answers: ROUTE's (one
member of each candidate family, with noise) and the chosen family's ensemble. At the
developer's explanations of the tuning set (the first 20 pool mistakes), the provider's
gradient is compared (a diagnostic no user has) with the ensembles' mean gradients, which the
search uses as its prior, and with its projection onto the span of every member's gradient:
the most a search confined to that subspace could recover. A span of as many random directions
is the baseline.
"""

from __future__ import annotations

import statistics

import screening  # first: it puts benchmarks/ and the repository on the path
import torch
from screening import bench, gradients

from helpers import data, geometry


def span_cosine(target: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """(N,) the cosine of each target (N, D) with its projection onto the span of its basis
    vectors (N, K, D)."""
    q, _ = torch.linalg.qr(basis.transpose(1, 2))  # (N, D, K)
    projection = (q @ (q.transpose(1, 2) @ target[..., None]))[..., 0]
    return projection.norm(dim=1) / target.norm(dim=1)


def screen(provider: screening.Provider, dataset: data.Dataset) -> dict:
    """The mean's and the span's cosines with the provider's gradient on one provider."""
    model, mistakes, whitebox = provider.model, provider.mistakes, provider.whitebox
    chosen = bench.route_surrogate(
        bench.ROUTES["the chosen family"], provider.trained, provider.family, screening.ARGS
    )
    nets = {screening.ROUTE: provider.net, "the chosen family": chosen}
    explained = whitebox.success
    provider_gradient = geometry.unit(gradients(model, mistakes, whitebox))[explained]
    members = [m for net in nets.values() for m in net.members]
    basis = torch.stack([gradients(m, mistakes, whitebox) for m in members], 1)[explained]
    generator = torch.Generator().manual_seed(screening.ARGS.seed)
    noise = torch.randn(basis.shape, generator=generator)
    record = {
        f"mean of {name}": (
            geometry.unit(gradients(net, mistakes, whitebox))[explained] * provider_gradient
        )
        .sum(1)
        .median()
        .item()
        for name, net in nets.items()
    }
    record["members"] = len(members)
    record["span of every member"] = span_cosine(provider_gradient, basis).median().item()
    record["span of as many random directions"] = (
        span_cosine(provider_gradient, noise).median().item()
    )
    print(provider.family, {k: round(v, 3) for k, v in record.items()}, flush=True)
    return record


def main() -> None:
    statistic = "median over the tuning mistakes the developer explains"
    result = screening.run(__file__, screen, statistic=statistic)
    providers = result["providers"].values()
    print(statistics.median(p["span of every member"] for p in providers))


if __name__ == "__main__":
    main()
