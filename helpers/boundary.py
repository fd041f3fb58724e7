"""Shrink a black-box explanation toward the boundary nearest x, from label answers only.

``blackbox.explain`` finds an x_adv the black box answers y to; ``explain`` here spends the rest
of each image's budget moving it closer to x, in the spirit of HopSkipJump (Chen, Jordan,
Wainwright 2020): a binary search puts the point on the boundary; the boundary's normal there is
estimated from the surrogate's gradient (the prior) and the labels of a few random perturbations
(Cheng et al. 2019's prior-guided estimate); a step along that normal, halved until the black
box still answers y, then a binary search from x bring the point back to the boundary, nearer
x. Every answer goes through the ``BlackBox``, is counted per image and stays within its budget;
the provider's gradients are never read.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers import attacks, blackbox, engine, objectives, registry, validation
from helpers.blackbox import BlackBox, Strategy
from helpers.engine import Model
from helpers.records import Explanation, Predictions

TOLERANCE = 0.005  # a binary search stops within this fraction of the distance to x
SPREAD = 0.05  # random perturbations this fraction of the distance to x long
STEP = 1.0  # the first step along the normal, a fraction of the distance to x
COARSE = 2  # random directions vary over blocks of this many pixels
NUM_TRIES = 4  # halvings of a step before the point stays put this round


class Labels:
    """The black box's answers for rows of a batch, counted per image, each within its budget.

    ``y`` (N,): the classes an explanation must reach; ``spent`` (N,): queries each image has
    used already; ``max_queries``: each image's budget, those included.
    """

    def __init__(self, black_box: BlackBox, num_classes: int, y: Tensor, spent: Tensor,
                 max_queries: int) -> None:  # fmt: skip
        answers = blackbox.Answers(black_box, num_classes)
        self.counter = engine.QueryCounter(answers, len(y), y.device)
        self.y, self.spent, self.max_queries = y, spent, max_queries
        self.num_classes = num_classes
        self.exhausted = False  # the black box's own budget ran out

    def left(self, rows: Tensor) -> Tensor:
        """(n,) queries the images ``rows`` (n,) may still spend."""
        return self.max_queries - self.spent[rows] - self.counter.queries[rows]

    def ask(self, points: Tensor, rows: Tensor, cost: int = 1) -> tuple[Tensor, Tensor]:
        """Answers on ``points`` (n·cost, C, H, W), ``cost`` of them for each image of ``rows``
        (n,), for the images whose budgets cover them. Returns (answered (n,) mask, their
        logits (m, cost, K)); only the label of an answer guides the search."""
        keep = self.left(rows) >= cost
        capacity = self.counter.capacity
        if capacity is not None and capacity < int(keep.sum()) * cost:
            self.exhausted = True
            keep &= keep.cumsum(0) <= capacity // cost
        points = points.unflatten(0, (len(rows), cost))[keep].flatten(0, 1)
        if len(points) == 0:
            return keep, points.new_zeros(0, cost, self.num_classes)
        with torch.no_grad():
            logits = self.counter(points, rows[keep].repeat_interleave(cost))
        return keep, logits.unflatten(0, (-1, cost))

    def reached(self, rows: Tensor, logits: Tensor) -> Tensor:
        """(m, cost) whether the black box answered y[rows] (m,) in ``logits`` (m, cost, K)."""
        return logits.argmax(2) == self.y[rows, None]


@dataclass(eq=False)
class Points:
    """Each image's best point so far, ``x_adv`` (N, C, H, W), always answered y, and the black
    box's answer there, ``logits_adv`` (N, K); updated in place."""

    x: Tensor
    x_adv: Tensor
    logits_adv: Tensor
    other: Tensor  # (N,) a class the black box answered on the far side of the boundary

    def __post_init__(self) -> None:
        # what the random probes said so far: the sum of their signed directions (N, C, H, W),
        # how many there were, and how many of those on both sides agreed with the prior
        self.memory, self.probes = torch.zeros_like(self.x), self.x.new_zeros(len(self.x))
        self.agree, self.mixed = self.x.new_zeros(len(self.x)), self.x.new_zeros(len(self.x))
        self.gap = self.x.new_zeros(len(self.x))  # x_adv to the last point answered otherwise

    def distance(self, rows: Tensor) -> Tensor:
        return (self.x_adv[rows] - self.x[rows]).flatten(1).norm(dim=1)

    def keep(self, rows: Tensor, candidate: Tensor, logits: Tensor, better: Tensor) -> None:
        """Take ``candidate`` (n, C, H, W) for the ``rows`` (n,) where ``better`` (n,) and it is
        nearer x than the point it replaces."""
        nearer = (candidate - self.x[rows]).flatten(1).norm(dim=1) < self.distance(rows)
        better = better & nearer
        self.x_adv[rows[better]], self.logits_adv[rows[better]] = candidate[better], logits[better]


def explain(
    black_box: BlackBox,
    surrogate: Model,
    x: Tensor | Predictions,
    y: Tensor | None = None,
    *,
    num_shrink_queries: int = 80,
    num_directions: int = 20,
    strategy: Strategy | None = None,
    generator: torch.Generator | None = None,
    index: Tensor | None = None,
    **changes: Any,
) -> Explanation:
    """Explain the black box's mistakes with ``blackbox.explain``, then shrink each explanation.

    Args:
        black_box, surrogate, x, y, index: as for ``blackbox.explain``.
        num_shrink_queries: each image's budget is ``strategy.max_queries`` (the surrogate-guided
            step's, a ``change`` like the others) plus this; shrinking spends what the step
            left of it.
        num_directions: random perturbations whose labels refine the surrogate's normal at each
            step (0: the surrogate's gradient alone).
        strategy, changes: the surrogate-guided step's ``Strategy`` and changes to it.
        generator: draws the random perturbations (default: seeded with 0).
    Returns: an ``Explanation``; each x_adv is the nearest point to x found that the black box
        answered y to, so its L2 is never above that of the surrogate-guided step.
    """
    validation.check_count(num_shrink_queries, "num_shrink_queries", minimum=0)
    validation.check_count(num_directions, "num_directions", minimum=0)
    x, y, from_record = attacks.unpack(x, y)
    strategy = (strategy or Strategy()).but(**changes)
    max_queries = strategy.max_queries + num_shrink_queries
    index = from_record if index is None else index
    first = blackbox.explain(black_box, surrogate, x, y, strategy, index=index)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    labels = Labels(black_box, first.logits.shape[1], y, first.queries, max_queries)
    points = Points(first.x, first.x_adv.clone(), first.logits_adv.clone(), first.y_pred.clone())
    rows = (first.success & first.attacked).nonzero()[:, 0]
    with blackbox.evaluating(surrogate):
        _shrink(labels, surrogate, points, rows, num_directions, generator)
    if labels.exhausted:
        warnings.warn(
            "the black box's budget ran out while shrinking; the explanations found so far "
            "are kept (each still succeeds).",
            stacklevel=2,
        )
    return replace(
        first,
        x_adv=points.x_adv,
        logits_adv=points.logits_adv,
        queries=first.queries + labels.counter.queries,
        forward_passes=first.forward_passes + labels.counter.forward_passes,
        method="blackbox_deepfool_boundary"
        if strategy.method == "deepfool"
        else f"{first.method}_boundary",
        settings={
            **first.settings,
            "num_shrink_queries": num_shrink_queries,
            "num_directions": num_directions,
        },  # fmt: skip
    )


def _shrink(labels: Labels, surrogate: Model, points: Points, rows: Tensor,
            num_directions: int, generator: torch.Generator) -> None:  # fmt: skip
    """Move ``points.x_adv[rows]`` toward x, keeping only points answered y and nearer x, until
    each image's budget is spent."""
    _search(labels, points, rows, points.x_adv[rows])
    iteration = 0
    while len(rows := rows[labels.left(rows) >= 2]) and not labels.exhausted:
        iteration += 1
        normal = _normal(labels, surrogate, points, rows, num_directions, generator)
        moved, ends = _step(labels, points, rows, normal, STEP / math.sqrt(iteration))
        if len(moved):
            _search(labels, points, moved, ends)


def _search(labels: Labels, points: Points, rows: Tensor, end: Tensor) -> None:
    """Binary search on each segment from x to ``end`` (n, C, H, W), answered y, for the point
    nearest x that is answered y, to within ``TOLERANCE`` of the segment's length."""
    x, delta = points.x[rows], end - points.x[rows]  # (n, C, H, W)
    low, high = x.new_zeros(len(rows)), x.new_ones(len(rows))  # t in x + t delta
    active = torch.arange(len(rows), device=x.device)
    while len(active := active[(high[active] - low[active]) > TOLERANCE]):
        middle = (low[active] + high[active]) / 2
        candidate = x[active] + middle[:, None, None, None] * delta[active]
        keep, logits = labels.ask(candidate, rows[active])
        if not keep.any():
            break
        active, middle, candidate = active[keep], middle[keep], candidate[keep]
        logits = logits[:, 0]
        reached = labels.reached(rows[active], logits[:, None])[:, 0]
        high[active] = torch.where(reached, middle, high[active])
        low[active] = torch.where(reached, low[active], middle)
        points.keep(rows[active], candidate, logits, reached)
        points.other[rows[active][~reached]] = logits[~reached].argmax(1)
    length = delta.flatten(1).norm(dim=1)
    ended = (high * length - points.distance(rows)).abs() <= 1e-6 * length  # x_adv is high's
    points.gap[rows[ended]] = ((high - low) * length)[ended]


def _normal(labels: Labels, surrogate: Model, points: Points, rows: Tensor,
            num_directions: int, generator: torch.Generator) -> Tensor:  # fmt: skip
    """(n, C, H, W) unit estimates of the boundary's normal at ``x_adv[rows]``, toward y: the
    surrogate's gradient (the prior), weighed by its cosine with the normal as the probes
    estimate it, plus their estimate of the rest, weighed by how much they have said."""
    point, y, other = points.x_adv[rows], labels.y[rows], points.other[rows]
    _, _, grad = engine.objective_gradient(surrogate, point, y, objectives.pair(other))
    prior = _unit(grad)
    asked = (labels.left(rows) >= num_directions + 1).nonzero()[:, 0]  # keep one to step with
    if num_directions and len(asked):
        _probe(labels, points, rows[asked], prior[asked], num_directions, generator)
    agree = points.agree[rows] / points.mixed[rows].clamp(min=1)  # P(agree) = 1 - angle / pi
    has = points.mixed[rows] > 0  # probes on both sides of the boundary say something
    cosine = torch.where(has, torch.cos(math.pi * (1 - agree)), torch.ones_like(agree))
    memory = points.memory[rows]
    orthogonal = _unit(memory - (memory * prior).flatten(1).sum(1)[:, None, None, None] * prior)
    dimension = point[0].numel() / COARSE**2
    trust = (2 * points.probes[rows] / (math.pi * dimension)).sqrt().clamp(max=1)
    weight = trust * (1 - cosine**2).clamp(min=0).sqrt()
    return _unit(cosine[:, None, None, None] * prior + weight[:, None, None, None] * orthogonal)


def _probe(labels: Labels, points: Points, rows: Tensor, prior: Tensor, num_directions: int,
           generator: torch.Generator) -> None:  # fmt: skip
    """Ask about ``num_directions`` random points around each ``x_adv[rows]`` and add what
    their labels say about the normal to the points' memory."""
    noise = _low_frequency(len(rows) * num_directions, prior, generator)
    noise = noise.unflatten(0, (len(rows), num_directions))  # (m, B, C, H, W) unit
    spread = SPREAD * points.distance(rows)[:, None, None, None, None]
    inward = _unit(points.x[rows] - points.x_adv[rows]) * points.gap[rows, None, None, None] / 2
    center = points.x_adv[rows] + inward  # the middle of the search's last bracket
    probes = (center[:, None] + spread * noise).clamp(0, 1)
    keep, logits = labels.ask(probes.flatten(0, 1), rows, num_directions)
    rows, noise, prior = rows[keep], noise[keep], prior[keep]
    reached = labels.reached(rows, logits)  # (m, B)
    sign = reached.to(noise.dtype) * 2 - 1
    points.memory[rows] += ((sign - sign.mean(1, keepdim=True))[..., None, None, None] * noise).sum(
        1
    )
    points.probes[rows] += num_directions
    mixed = reached.any(1) & ~reached.all(1)
    along = (noise * prior[:, None]).flatten(2).sum(2)  # (m, B) the prior's share of each probe
    points.agree[rows] += ((along > 0) == reached).sum(1) * mixed
    points.mixed[rows] += num_directions * mixed


def _step(labels: Labels, points: Points, rows: Tensor, normal: Tensor,
          step: float) -> tuple[Tensor, Tensor]:  # fmt: skip
    """HopSkipJump's step: from each ``x_adv[rows]`` along its ``normal`` (n, C, H, W) by
    ``step`` times its distance to x, halved until the black box answers y there. Returns the
    rows that stepped (m,) and where they landed (m, C, H, W), to search toward x from."""
    x, point, distance = points.x[rows], points.x_adv[rows], points.distance(rows)
    pending = torch.arange(len(rows), device=x.device)
    ends = torch.zeros_like(point)
    moved = torch.zeros(len(rows), dtype=torch.bool, device=x.device)
    for tries in range(NUM_TRIES):
        length = (distance[pending] * step / 2**tries)[:, None, None, None]
        candidate = (point[pending] + length * normal[pending]).clamp(0, 1)
        keep, logits = labels.ask(candidate, rows[pending])
        pending, candidate = pending[keep], candidate[keep]
        reached = labels.reached(rows[pending], logits)[:, 0]
        ends[pending[reached]], moved[pending[reached]] = candidate[reached], True
        if len(pending := pending[~reached]) == 0:
            break
    return rows[moved], ends[moved]


def _low_frequency(num: int, like: Tensor, generator: torch.Generator) -> Tensor:
    """(num, C, H, W) random unit directions, smooth at ``COARSE`` pixels: the subspace where
    decision-based searches find the boundary's normal with few queries (Li et al. 2020)."""
    channels, height, width = like.shape[1:]
    small = (num, channels, max(1, height // COARSE), max(1, width // COARSE))
    noise = torch.randn(small, generator=generator).to(like)
    return _unit(F.interpolate(noise, size=(height, width), mode="bilinear"))


def _unit(v: Tensor) -> Tensor:
    return v / v.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *[1] * (v.dim() - 1))


registry.register(
    registry.Method("blackbox_deepfool_boundary", "surrogate DeepFool, schedule + boundary search",
                    "black box", explain, "num_shrink_queries", (0, 500, 10),
                    {"num_shrink_queries": 80, "growth": 1.5}, ("black_box", "surrogate"))
)  # fmt: skip

__all__ = ["Labels", "Points", "explain"]
