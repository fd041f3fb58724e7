"""Screening for issue 27: does the end user's surrogate learn the provider's gradient better if
it is fitted to the small probabilities of the answers, not only to the large ones? (A
prototype: kept with its result, not part of the benchmark.)

Run from the repository root, alone:

    .venv/bin/python benchmarks/prototypes/distillation_screen.py  # its JSON beside it

The search needs the gradient of the provider's margin between the true class and its answer,
and on a mistake the true class is rarely the answer's top one. The route's surrogate is fitted
to the answered probabilities by cross-entropy, which hardly weighs a class answered with a
probability of 0.001 against one answered with 0.00001, though their logits differ by 4.6. Two
known remedies need nothing but the answers the user already has:

- distillation at a temperature T (Hinton et al. 2015): the answers softened to p^(1/T)
  (normalized; the provider's softmax at T, computed from its probabilities alone) and matched
  by the member's softmax at T. As T grows this tends to matching the logits;
- matching the logits (Ba & Caruana 2014): the cross-entropy as built plus the mean squared
  error between the member's centred log-probabilities and the answers' (log-probabilities less
  their mean, the logits up to a constant; the answers' floored at FLOOR), over the answers'
  own mean square, with weight WEIGHT.

Each surrogate follows ROUTE's recipe otherwise (one member of each candidate family less the
provider's, from the same seeds, noise σ = 0.2 on each batch, then averaged over shifts of 2
pixels). For each provider: the surrogate's agreement with the black box on the test split,
its gradient's median cosine with the provider's at the developer's explanations of the tuning
set (a diagnostic no user has), and ours (the benchmark's settings, pool starts) through it on
the tuning set (the first 20 pool mistakes, never reported) at BUDGETS. Distillation was built
after this screening (``surrogate.fit(temperature=...)``, a route of ``--routes``); the
temperatures go through it here, which gives the surrogates the screening's own copy gave.
"""

from __future__ import annotations

import screening  # first: it puts benchmarks/ and the repository on the path
import torch.nn.functional as F
from screening import bench
from sobolev_screen import centred
from torch import Tensor, nn

from helpers import data, surrogate

ROUTE = "one of each candidate family, noise σ = 0.2, averaged over shifts of 2 px"
"""The route whose recipe every surrogate follows, and whose surrogate they are compared with."""
VARIANTS = {
    "distilled at temperature 2": {"temperature": 2.0},
    "distilled at temperature 4": {"temperature": 4.0},
    "distilled at temperature 10": {"temperature": 10.0},
    "cross-entropy and the logits matched": {"match": True},
}
"""How each surrogate beside the route's is fitted to the same answers."""
FLOOR = 1e-8
"""The smallest answered probability the logit matching takes at its word."""
WEIGHT = 1.0
"""The logit matching's penalty beside the cross-entropy (relative to the targets' scale)."""
BUDGETS = (100, 500)
"""Queries per image of the searches."""


def logit_matching(targets: Tensor):
    """``training.train``'s penalty: WEIGHT times the mean squared error between the member's
    centred log-probabilities and the answers' (floored at FLOOR), over the latter's mean
    square on every answer."""
    scale = centred(targets.clamp(min=FLOOR).log()).pow(2).mean()

    def penalty(model: nn.Module, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        wanted = centred(y.clamp(min=FLOOR).log())
        return WEIGHT * (centred(F.log_softmax(logits, 1)) - wanted).pow(2).mean() / scale

    return penalty


def train_route(trained: surrogate.Surrogate, family: str, temperature=1.0, match=False):
    """ROUTE's recipe on the pool's answers, distilled at ``temperature`` (``surrogate.fit``'s,
    built after this screening, through ``bench.route_surrogate``; the screening's own copy of
    it gave the same surrogates to the last bit) or with the logits matched if ``match``, member
    by member as ``surrogate.fit`` trains them, from the same seeds (it takes no penalty)."""
    args, x, targets = screening.ARGS, trained.x, trained.targets
    if not match:
        route = {**bench.ROUTES[ROUTE], "temperature": temperature}
        return bench.route_surrogate(route, trained, family, args)
    penalty = logit_matching(targets)
    return screening.train_penalized(trained, family, x, targets, lambda seed: penalty)


def screen(provider: screening.Provider, dataset: data.Dataset) -> dict:
    """The route's surrogate and each variant's on one provider."""
    trained, family = provider.trained, provider.family
    nets = {"the route's (soft cross-entropy)": lambda: provider.net}
    for name, variant in VARIANTS.items():
        nets[name] = lambda variant=variant: train_route(trained, family, **variant)
    return screening.measure(provider, dataset, nets, BUDGETS)


def main() -> None:
    fields = dict(floor=FLOOR, weight=WEIGHT, budgets=list(BUDGETS))
    screening.run(__file__, screen, route=ROUTE, statistic=screening.SEARCHES, **fields)


if __name__ == "__main__":
    main()
