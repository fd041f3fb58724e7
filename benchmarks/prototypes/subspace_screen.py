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

import json
import statistics
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]

import blackbox as bench  # noqa: E402  (benchmarks/blackbox.py)
import curves  # noqa: E402
import torch  # noqa: E402

from helpers import attacks, data, engine, evaluation, geometry, objectives, training  # noqa: E402


def gradients(model, mistakes, whitebox) -> torch.Tensor:
    """(N, D) the gradient of y against the provider's answer at the white-box end points."""
    pair = objectives.pair(mistakes.y_pred)
    grad = engine.objective_gradient(model, whitebox.x_adv, mistakes.y, pair)[2]
    return grad.flatten(1)


def span_cosine(target: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """(N,) the cosine of each target (N, D) with its projection onto the span of its basis
    vectors (N, K, D)."""
    q, _ = torch.linalg.qr(basis.transpose(1, 2))  # (N, D, K)
    projection = (q @ (q.transpose(1, 2) @ target[..., None]))[..., 0]
    return projection.norm(dim=1) / target.norm(dim=1)


def screen(family: str, dataset: data.Dataset, args) -> dict:
    """The mean's and the span's cosines with the provider's gradient on one provider."""
    model, _, _ = training.train_new_cnn(
        dataset, num_epochs=args.num_epochs, seed=args.seed, architecture=family, progress=False
    )
    model.eval()
    trained = bench.train_user_surrogate(model, dataset, family, args)
    nets = {
        name: bench.route_surrogate(bench.ROUTES[name], trained, family, args)
        for name in (bench.ROUTE, "the chosen family")
    }
    mistakes = evaluation.find_misclassified(model, dataset.pool)
    mistakes = mistakes[mistakes.index.argsort()[: args.max_images]]
    whitebox = attacks.explain(model, mistakes, method="deepfool_refined")
    explained = whitebox.success
    provider = geometry.unit(gradients(model, mistakes, whitebox))[explained]
    members = [m for net in nets.values() for m in net.members]
    basis = torch.stack([gradients(m, mistakes, whitebox) for m in members], 1)[explained]
    noise = torch.randn(basis.shape, generator=torch.Generator().manual_seed(args.seed))
    record = {
        f"mean of {name}": (geometry.unit(gradients(net, mistakes, whitebox))[explained] * provider)
        .sum(1)
        .median()
        .item()
        for name, net in nets.items()
    }
    record["members"] = len(members)
    record["span of every member"] = span_cosine(provider, basis).median().item()
    record["span of as many random directions"] = span_cosine(provider, noise).median().item()
    print(family, {k: round(v, 3) for k, v in record.items()}, flush=True)
    return record


def main() -> None:
    torch.set_num_threads(1)
    args = types.SimpleNamespace(
        num_epochs=8, seed=0, surrogate_epochs=40, num_members=4, max_images=20
    )
    dataset = data.load_dataset(data.BUNDLED)
    elapsed = curves.clock()
    providers = {family: screen(family, dataset, args) for family in bench.FAMILIES}
    result = {
        "command": "python benchmarks/prototypes/subspace_screen.py",
        "statistic": "median over the tuning mistakes the developer explains",
        "providers": providers,
        **elapsed(),
    }
    (HERE / "subspace_screen.json").write_text(json.dumps(result, indent=2) + "\n")
    print(statistics.median(p["span of every member"] for p in providers.values()))


if __name__ == "__main__":
    main()
