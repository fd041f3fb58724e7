"""What every screening of issue 27 here shares: each provider of benchmarks/blackbox.py, trained
and surrogated as its ``--routes`` run does (the provider's family left out of the end user's
candidates, the surrogate trained by ROUTE below), its tuning set (the first ``max_images`` pool
mistakes, never reported) with the developer's explanations of it, and the JSON each screening
writes beside itself. Not part of the benchmark: its scripts import it, run alone at 1 thread.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]

import blackbox as bench  # noqa: E402  (benchmarks/blackbox.py)
import curves  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from helpers import (  # noqa: E402
    data,
    defences,
    engine,
    evaluation,
    objectives,
    surrogate,
    training,
)
from helpers.records import Explanation, Mistakes  # noqa: E402
from helpers.translation import ShiftAveraged  # noqa: E402

ROUTE = "one of each candidate family, noise σ = 0.2"
"""The route a screening trains its surrogate by unless it names its own (``run``'s ``route``):
the benchmark's ROUTE while the first screenings were written. The benchmark's ROUTE since (this
route averaged over shifts of 2 pixels) came out of smoothing_screen.py, so the screenings keep
the route they measured and reproduce their JSONs; a later one names the route it ran through
as its own ROUTE."""
ARGS = types.SimpleNamespace(
    num_epochs=8, seed=0, surrogate_epochs=40, num_members=4, max_images=20
)


@dataclass(frozen=True, eq=False)
class Provider:
    """One provider as a screening sees it: ``model`` (its family ``family``), the end user's
    pool answers and choice (``trained``), ROUTE's surrogate (``net``), the tuning set
    (``mistakes``) and the developer's explanations of it (``whitebox``)."""

    family: str
    model: nn.Module
    trained: surrogate.Surrogate
    net: nn.Module
    mistakes: Mistakes
    whitebox: Explanation


def provider(family: str, dataset: data.Dataset, args=ARGS, route: str = ROUTE) -> Provider:
    """The provider of ``family``, trained as the benchmark trains it, and what the user has
    (the surrogate by ``route``, a name of the benchmark's ROUTES)."""
    model = train_provider(family, dataset, args.seed, args)
    trained = bench.train_user_surrogate(model, dataset, family, args)
    net = bench.route_surrogate(bench.ROUTES[route], trained, family, args)
    case = bench.judged_set(model, dataset, "tuning", trained, args.max_images)
    return Provider(family, model, trained, net, case.mistakes, case.whitebox)


def train_provider(family: str, dataset: data.Dataset, seed: int, args=ARGS) -> nn.Module:
    """A model of ``family`` trained on the provider's training set by the benchmark's recipe
    (``bench.train_provider``) from ``seed`` (``args.seed``: the provider itself)."""
    return bench.train_provider(family, dataset, args, seed)[0]


def gradients(model, mistakes: Mistakes, whitebox: Explanation) -> torch.Tensor:
    """(N, D) the gradient of y against the provider's answer at the white-box end points."""
    return gradients_at(model, mistakes, whitebox.x_adv)


def gradients_at(model, mistakes: Mistakes, points: torch.Tensor) -> torch.Tensor:
    """(N, D) the gradient of y against the provider's answer at ``points`` (N, C, H, W)."""
    pair = objectives.pair(mistakes.y_pred)
    return engine.objective_gradient(model, points, mistakes.y, pair)[2].flatten(1)


SEARCHES = "median L2 ÷ the developer's over the tuning mistakes, success"
"""The statistic of a screening's searches (``curves.ours_curve``'s points)."""


def ratios(curve: list[dict]) -> str:
    """A search's median ratios at each budget of ``curve``, for a progress line."""
    return ", ".join(f"{point['median_l2_ratio_to_whitebox']:.2f}" for point in curve)


def train_penalized(
    trained: surrogate.Surrogate,
    family: str,
    x: torch.Tensor,
    targets: torch.Tensor,
    penalty_for: Callable[[int], training.Penalty],
) -> nn.Module:
    """The shifted route's recipe (``bench.route_surrogate``'s: one member of each candidate
    family less ``family``, normalized with ``trained``'s pool, noise σ = 0.2 on each batch,
    then averaged over shifts of 2 pixels; member by member as ``surrogate.fit`` trains them,
    from the same seeds) on answers (``x``, ``targets``), with ``penalty_for(seed)`` as
    ``training.train``'s penalty of the member trained from ``seed``: ``surrogate.fit`` takes
    none."""
    names = [name for name in bench.CANDIDATES if name != family]
    net = surrogate.new_surrogate(
        tuple(x.shape[1:]), targets.shape[1], trained.x, seed=ARGS.seed + 1, architecture=names
    )
    for i, member in enumerate(net.members):
        seed = ARGS.seed + 1 + i
        noise = defences.gaussian_noise(0.2, torch.Generator().manual_seed(seed + 2**31))
        training.train(
            member,
            data.Split(x, targets),
            num_epochs=ARGS.surrogate_epochs,
            generator=torch.Generator().manual_seed(seed),
            progress=False,
            transform=noise,
            penalty=penalty_for(seed),
        )
    return ShiftAveraged(net.eval(), 2).eval()


def measure(
    provider: Provider, dataset: data.Dataset, nets: dict[str, Callable[[], nn.Module]], budgets
) -> dict:
    """Each surrogate of ``nets`` (its name -> a function that gives it, called in turn) on one
    provider: its agreement with the black box on the test split, its gradient's median cosine
    with the provider's at the developer's explanations of the tuning set (a diagnostic no user
    has), and ours (the benchmark's settings, pool starts) through it at ``budgets``."""
    model, trained, family = provider.model, provider.trained, provider.family
    mistakes, whitebox = provider.mistakes, provider.whitebox
    starts = surrogate.nearest_answered(mistakes.x, mistakes.y, trained.x, trained.targets)
    options = {**bench.SETTINGS, "starts": starts}
    test = evaluation.predict_logits(model, dataset.test.x).argmax(1)
    record = {}
    for name, build in nets.items():
        net = build()
        agreement = (evaluation.predict_logits(net, dataset.test.x).argmax(1) == test).float()
        cosine = curves.gradient_cosine(model, net, mistakes, whitebox)
        curve = curves.ours_curve(model, net, mistakes, whitebox, budgets, name, **options)
        record[name] = {"agreement": agreement.mean().item(), "gradient_cosine": cosine}
        record[name]["curve"] = curve
        line = f"{agreement.mean():.3f} {cosine:.3f} {ratios(curve)}"
        print(f"  {family} {name}: {line}", flush=True)
    return record


def run(
    script: str, screen: Callable[[Provider, data.Dataset], dict], route: str = ROUTE, **fields
) -> dict:
    """``screen`` on every provider (its surrogate trained by ``route``), alone at 1 thread; the
    result, with the command, the route and the time it took, goes to the JSON beside
    ``script`` (its ``__file__``)."""
    torch.set_num_threads(1)
    dataset = data.load_dataset(data.BUNDLED)
    elapsed = curves.clock()
    providers = {
        family: screen(provider(family, dataset, route=route), dataset) for family in bench.FAMILIES
    }
    path = Path(script)
    result = {
        "command": f"python benchmarks/prototypes/{path.name}",
        "route": route,
        **fields,
        "providers": providers,
        **elapsed(),
    }
    path.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    return result
