"""Screening for issue 27: does the provider's gradient at the developer's explanations lie in a
low-dimensional subspace the end user can build from their own images (QEBA, Li et al. 2020:
search in a subspace of the image space)? (A prototype: kept with its result, not part of the
benchmark.)

Run from the repository root, alone:

    .venv/bin/python benchmarks/prototypes/data_subspace_screen.py  # data_subspace_screen.json

For each provider of benchmarks/blackbox.py, trained and surrogated as its ``--routes`` run does
(the provider's family left out, the surrogate by ROUTE), at the developer's explanations of the
tuning set (the first 20 pool mistakes): the share of the provider's gradient (a diagnostic no
user has) that lies in each subspace, ||P g|| / ||g||, which bounds what a search confined to it
can reach (for a flat boundary, the smallest change inside it is 1 / share times the smallest
change), and the cosine of the surrogate's gradient with the provider's inside it. Subspaces:
the top principal components of the user's pool images, and the lowest 2-d DCT frequencies.
"""

from __future__ import annotations

import json
import math
import statistics

import screening  # first: it puts benchmarks/ and the repository on the path
import torch
from screening import gradients

from helpers import data, geometry

SIZES = (25, 50, 100, 200, 300, 400)


def pca_basis(images: torch.Tensor, size: int) -> torch.Tensor:
    """(size, D) orthonormal rows: the top principal directions of ``images`` (N, C, H, W)."""
    flat = images.flatten(1)
    _, _, vh = torch.linalg.svd(flat - flat.mean(0), full_matrices=False)
    return vh[:size]


def dct_basis(side: int, size: int) -> torch.Tensor:
    """(size, side * side) orthonormal rows: the 2-d DCT-II basis images of the lowest
    frequencies (by u + v, then u)."""
    n = torch.arange(side, dtype=torch.float64)
    k = torch.arange(side, dtype=torch.float64)[:, None]
    one = torch.cos(math.pi * (n + 0.5) * k / side)  # (side, side): frequency k, pixel n
    one = one / one.norm(dim=1, keepdim=True)
    order = sorted(((u, v) for u in range(side) for v in range(side)), key=lambda f: (sum(f), f))
    rows = [torch.outer(one[u], one[v]).flatten() for u, v in order[:size]]
    return torch.stack(rows).float()


def share(vectors: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """(N,) ||P v|| / ||v|| for each row of ``vectors`` (N, D), P onto ``basis``'s rows."""
    return (vectors @ basis.T).norm(dim=1) / vectors.norm(dim=1)


def inside_cosine(a: torch.Tensor, b: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """(N,) the cosine of a's and b's (N, D) projections onto ``basis``'s rows."""
    pa, pb = a @ basis.T, b @ basis.T
    return (pa * pb).sum(1) / (pa.norm(dim=1) * pb.norm(dim=1))


def screen(provider: screening.Provider, dataset: data.Dataset) -> dict:
    """Each subspace's share of the provider's gradient, of the developer's change, and the
    surrogate's cosine inside it, on one provider."""
    model, net = provider.model, provider.net
    mistakes, whitebox = provider.mistakes, provider.whitebox
    explained = whitebox.success
    truth = gradients(model, mistakes, whitebox)[explained]
    prior = gradients(net, mistakes, whitebox)[explained]
    change = (whitebox.x_adv - whitebox.x).flatten(1)[explained]
    side = dataset.pool.x.shape[-1]
    bases = {f"pca {k}": pca_basis(dataset.pool.x, k) for k in SIZES}
    bases.update({f"dct {k}": dct_basis(side, k) for k in SIZES})
    record = {"prior cosine": (geometry.unit(prior) * geometry.unit(truth)).sum(1).median().item()}
    for name, basis in bases.items():
        record[name] = {
            "gradient share": share(truth, basis).median().item(),
            "change share": share(change, basis).median().item(),
            "prior cosine inside": inside_cosine(prior, truth, basis).median().item(),
        }
    print(provider.family, json.dumps(record), flush=True)
    return record


def main() -> None:
    statistic = "median over the tuning mistakes the developer explains"
    providers = screening.run(__file__, screen, statistic=statistic)["providers"]
    for name in providers["SmallCNN"]:
        if name != "prior cosine":
            print(name, [round(p[name]["gradient share"], 2) for p in providers.values()])
    print(statistics.median(p["prior cosine"] for p in providers.values()))


if __name__ == "__main__":
    main()
