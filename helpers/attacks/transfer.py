"""Explanations through a black box with a surrogate's gradients: the paper's black-box method.

A white-box method of the table runs on the surrogate (a model the end user trained on the black
box's answers, ``helpers.surrogate``); its explanation is the first candidate, and every
candidate is checked with one black-box query. After a miss, the next candidate steps farther
from x along the surrogate's gradient toward y; after a hit, bisection toward x shrinks it. The
black box never gives a gradient; each image's queries are counted where they happen.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor

from helpers import attacks, blackbox, engine, objectives, runtime, validation
from helpers.engine import Model, Run
from helpers.records import Explanation, Predictions


@dataclass(frozen=True)
class Strategy:
    """How ``explain`` spends the black box's queries on each image.

    ``method`` (a white-box method name) with ``settings`` runs on the surrogate; its
    explanation, at least ``min_radius`` away in L2, is the first candidate. After a miss the
    next one is ``growth`` times farther from x along the surrogate's gradient of (logit of y
    − logit of the class the black box just answered). After a hit, ``num_shrink_steps``
    bisect toward x. ``max_queries`` bounds it all, per image.
    """

    method: str = "deepfool"
    max_queries: int = 20
    growth: float = 1.5
    min_radius: float = 0.2
    num_shrink_steps: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [method.name for method in attacks.methods("white box")]
        validation.check_choice(self.method, "method", names)
        validation.check_count(self.max_queries, "max_queries")
        validation.check_positive(self.growth, "growth")
        if self.growth <= 1:
            raise ValueError(f"growth must be > 1, so each miss steps farther; got {self.growth}.")
        validation.check_positive(self.min_radius, "min_radius")
        validation.check_count(self.num_shrink_steps, "num_shrink_steps", minimum=0)

    def but(self, **changes: Any) -> Strategy:
        """A copy with ``changes``; names that are no field go to the surrogate's ``settings``."""
        names = {f.name for f in fields(self)}
        extra = {k: changes.pop(k) for k in list(changes) if k not in names}
        return replace(self, **changes, settings={**self.settings, **extra})

    def options(self) -> dict[str, Any]:
        """Its fields and the surrogate's settings, as one flat record of settings."""
        options = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "settings"}
        return {**options, **self.settings}


def explain(
    black_box: blackbox.BlackBox,
    surrogate: Model,
    x: Tensor | Predictions,
    y: Tensor | None = None,
    strategy: Strategy | None = None,
    *,
    index: Tensor | None = None,
    **changes: Any,
) -> Explanation:
    """Explain the black box's mistakes on ``x`` with directions from the surrogate's gradients.

    Args:
        black_box: answers every candidate with one query, and the original images too (not
            a query in the paper's sense, but an answer its budget pays for); a ``BlackBox`` or
            anything with its interface (``blackbox.check_black_box``).
        surrogate: a differentiable stand-in for the black box, x -> logits (n, K).
        x (N, C, H, W) in [0, 1], y (N,): images and true labels, or a record.
        strategy, changes: a ``Strategy`` (default ``Strategy()``) and changes to it.
    Returns: an ``Explanation`` whose logits are the log of the black box's answers;
        ``backward_passes`` is 0, since the black box gives no gradient. A budget that cannot
        cover a round answers its first images (in the batch's order) and leaves the rest
        unexplained; once spent, ``explain`` warns and returns what it found. ``queries``
        counts candidates; ``forward_passes`` every answer, the originals' included.
    """
    strategy = (strategy or Strategy()).but(**changes)
    x, y, index, answers = prepare(black_box, surrogate, x, y, index)
    run = Run(answers, x, y, index=index, name="black box", max_queries=strategy.max_queries)
    with runtime.eval_mode(surrogate), run:
        schedule(run, surrogate, strategy)
        return run.finish(f"blackbox_{strategy.method}", strategy.options())


def prepare(
    black_box: blackbox.BlackBox,
    surrogate: Model,
    x: Tensor | Predictions,
    y: Tensor | None,
    index: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor | None, blackbox.Answers]:
    """Check a black-box method's arguments before the black box is asked anything; return
    (x, y, index, the black box as the engine's model). The labels are checked against the
    surrogate's classes, since the black box may not be asked to find out."""
    blackbox.check_black_box(black_box)
    x, y, from_record = engine.unpack(x, y)
    validation.check_images(x, "x")
    validation.check_model(surrogate, x, "surrogate")
    num_classes = _num_classes(surrogate, x)
    validation.check_labels(y, len(x), num_classes, device=x.device)
    index = from_record if index is None else index
    if index is not None:
        validation.check_labels(index, len(x), device=x.device, name="index")
    return x, y, index, blackbox.Answers(black_box, num_classes)


def schedule(run: Run, surrogate: Model, strategy: Strategy) -> None:
    """The step schedule on ``run`` (the black box's answers), within ``strategy.max_queries``
    queries per image, however large the run's own budget: the surrogate's explanation first,
    ``growth`` times farther after each miss, then ``num_shrink_steps`` of bisection."""
    x, answer = run.x, run.logits.argmax(1)  # (N,) the black box's latest answers
    wrong = run.attacked.nonzero()[:, 0]
    first = attacks.explain(
        surrogate, x[wrong], y=run.y[wrong], method=strategy.method, **strategy.settings
    )
    point, radius = x.clone(), x.new_zeros(len(x))  # (N, C, H, W), (N,)
    point[wrong], radius[wrong] = first.x_adv, first.l2.clamp(min=strategy.min_radius)
    limit = strategy.max_queries
    while len(rows := run.active(limit)) and not run.exhausted:
        candidate = _step_out(
            surrogate, x[rows], point[rows], run.y[rows], answer[rows], radius[rows]
        )
        probe = run.query(candidate, rows)
        rows = probe.rows
        point[rows], answer[rows] = probe.x, probe.logits.argmax(1)
        radius[rows] = torch.where(probe.reached, radius[rows], radius[rows] * strategy.growth)
        run.keep(probe)
    hits = (run.attacked & run.success).nonzero()[:, 0]
    if strategy.num_shrink_steps and len(hits) and not run.exhausted:
        engine.bisect(run, hits, run.x_adv[hits], num_steps=strategy.num_shrink_steps, limit=limit)


def _num_classes(surrogate: Model, x: Tensor) -> int:
    if len(x) == 0:
        return 2
    with torch.no_grad(), runtime.eval_mode(surrogate):
        return validation.check_logits(surrogate(x[:1]), 1)


def _step_out(
    surrogate: Model, x: Tensor, point: Tensor, y: Tensor, other: Tensor, radius: Tensor
) -> Tensor:
    """Step from ``point`` (n, C, H, W) along the surrogate's gradient of z_y - z_other until
    ``radius`` away from ``x`` in L2 (before clipping to [0, 1]); points already there stay."""
    distance = (point - x).flatten(1).norm(dim=1)  # (n,)
    short = distance < radius
    if not short.any():
        return point
    objective = objectives.pair(other[short])
    _, _, grad = engine.objective_gradient(surrogate, point[short], y[short], objective)
    norm = grad.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None, None]
    step = (radius[short] - distance[short])[:, None, None, None] * grad / norm
    stepped = point.clone()
    stepped[short] = (point[short] + step).clamp(0, 1)
    return stepped


__all__ = ["Strategy", "explain", "prepare", "schedule"]
