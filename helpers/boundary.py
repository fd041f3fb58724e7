"""Shrink a black-box explanation toward the boundary nearest x, from label answers only.

``blackbox.explain`` finds an x_adv the black box answers y to; ``explain`` here spends the rest
of each image's budget moving it closer to x, in the spirit of HopSkipJump (Chen, Jordan,
Wainwright 2020): a binary search puts the point on the boundary; the boundary's normal there is
estimated from the surrogate's gradient (the prior) and the labels of random perturbations
(Cheng et al. 2019's prior-guided estimate), most of them orthogonal to the prior and none on a
pixel at 0 or 1 (clamped, it would push every probe the same way); a step along that normal,
halved until the black box still answers y, then a binary search from x bring the point back to
the boundary, nearer x. Every answer goes through the ``BlackBox``, is counted per image and
stays within its budget; the provider's gradients are never read.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from helpers import attacks, blackbox, engine, geometry, objectives, registry, validation
from helpers.blackbox import BlackBox, Strategy
from helpers.decision import Labels, Points
from helpers.engine import Model
from helpers.records import Explanation, Predictions

TOLERANCE = 0.002  # a binary search stops within this fraction of the distance to x
SPREAD = 0.05  # random perturbations this fraction of the distance to x long
STEP = 1.0  # the first step along the normal, a fraction of the distance to x
RADIUS = 2  # random directions vary most within this many pixels of the strokes (geometry)
NUM_TRIES = 4  # halvings of a step before the point stays put this round
FREE_SHARE = 0.25  # of each round's probes, the share left free to say how good the prior is;
# the rest are orthogonal to it, so that their labels say only what the prior misses


def explain(
    black_box: BlackBox,
    surrogate: Model,
    x: Tensor | Predictions,
    y: Tensor | None = None,
    *,
    num_shrink_queries: int = 80,
    num_directions: int = 80,
    strategy: Strategy | None = None,
    generator: torch.Generator | None = None,
    index: Tensor | None = None,
    progress: list | None = None,
    **changes: Any,
) -> Explanation:
    """Explain the black box's mistakes with ``blackbox.explain``, then shrink each explanation.

    Args:
        black_box, surrogate, x, y, index: as for ``blackbox.explain``.
        num_shrink_queries: each image's budget is ``strategy.max_queries`` (the surrogate-guided
            step's, a ``change`` like the others) plus this; shrinking spends what the step
            left of it.
        num_directions: random perturbations whose labels refine the surrogate's normal at each
            step (0: the surrogate's gradient alone); a step probes only if its image has more
            than this many queries left.
        strategy, changes: the surrogate-guided step's ``Strategy`` and changes to it.
        generator: draws the random perturbations (default: seeded with 0).
        progress: if a list, every improvement is appended to it, the surrogate-guided step's
            first: (rows (m,), each image's queries when answered (m,), x_adv (m, C, H, W),
            logits_adv (m, K)), in the order found; ``track`` replays them.
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
    points = Points(first.x, first.x_adv.clone(), first.logits_adv.clone(), first.y_pred.clone(),
                    progress)  # fmt: skip
    if progress is not None:
        every = torch.arange(len(y), device=y.device)
        progress.append((every, first.queries, first.x_adv, first.logits_adv))
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


@dataclass(frozen=True)
class Track:
    """One boundary search with its progress, to replay at any smaller shrinking budget (the
    explorer's slider redraws from it without a query).

    ``final``: ``explain``'s result; ``progress``: its improvements, in order (see ``explain``).
    ``at(n)`` is, for each image, the nearest point the search had found once it had spent n
    shrinking queries. ``explain`` run with a budget of n plans for it (it stops probing when
    few queries are left), so its result can differ from ``at(n)``: both are explanations the
    black box answered y to, within n shrinking queries.
    """

    final: Explanation
    progress: tuple[tuple[Tensor, Tensor, Tensor, Tensor], ...]

    def at(self, num_shrink_queries: int) -> Explanation:
        """The explanation after ``num_shrink_queries`` (at most the search's own) per image."""
        most = self.final.settings["num_shrink_queries"]
        validation.check_count(num_shrink_queries, "num_shrink_queries", minimum=0)
        if num_shrink_queries > most:
            raise ValueError(f"num_shrink_queries={num_shrink_queries}: this track ran {most}")
        limit = self.final.settings["max_queries"] + num_shrink_queries
        x_adv, logits_adv = self.final.x_adv.clone(), self.final.logits_adv.clone()
        for rows, queries, candidate, logits in self.progress:  # later ones are nearer x
            within = queries <= limit
            x_adv[rows[within]], logits_adv[rows[within]] = candidate[within], logits[within]
        queries = self.final.queries.clamp(max=limit)
        return replace(
            self.final, x_adv=x_adv, logits_adv=logits_adv, queries=queries,
            forward_passes=self.final.forward_passes - (self.final.queries - queries),
            settings={**self.final.settings, "num_shrink_queries": num_shrink_queries},
        )  # fmt: skip


def track(black_box: BlackBox, surrogate: Model, x: Tensor | Predictions,
          y: Tensor | None = None, **settings: Any) -> Track:  # fmt: skip
    """``explain`` with ``settings``, keeping its progress: ``track(...).at(n)`` for every n up
    to ``num_shrink_queries``, from one search."""
    progress: list = []
    final = explain(black_box, surrogate, x, y, progress=progress, **settings)
    return Track(final, tuple(progress))


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
        points.keep(rows[active], candidate, logits, reached, labels.used(rows[active]))
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
    prior = geometry.unit(grad)
    asked = (labels.left(rows) >= num_directions + 1).nonzero()[:, 0]  # keep one to step with
    if num_directions and len(asked):
        _probe(labels, points, rows[asked], prior[asked], num_directions, generator)
    agree = points.agree[rows] / points.mixed[rows].clamp(min=1)  # P(agree) = 1 - angle / pi
    has = points.mixed[rows] > 0  # probes on both sides of the boundary say something
    cosine = torch.where(has, torch.cos(math.pi * (1 - agree)), torch.ones_like(agree))
    memory = points.memory[rows]
    orthogonal = geometry.unit(
        memory - (memory * prior).flatten(1).sum(1)[:, None, None, None] * prior
    )
    dimension = point[0].numel()  # all pixels: the normal moves as the point does, so trust less
    trust = (2 * points.probes[rows] / (math.pi * dimension)).sqrt().clamp(max=1)
    weight = trust * (1 - cosine**2).clamp(min=0).sqrt()
    return geometry.unit(
        cosine[:, None, None, None] * prior + weight[:, None, None, None] * orthogonal
    )


def _probe(labels: Labels, points: Points, rows: Tensor, prior: Tensor, num_directions: int,
           generator: torch.Generator) -> None:  # fmt: skip
    """Ask about ``num_directions`` random points around each ``x_adv[rows]`` and add what
    their labels say about the normal to the points' memory."""
    point = points.x_adv[rows]
    inside = (point > 1e-4) & (point < 1 - 1e-4)  # a pixel at 0 or 1 clamps one way: no probe
    weights = geometry.content_weights(points.x[rows], RADIUS) * inside
    noise = geometry.weighted_directions(weights, num_directions, generator)  # (m, B, C, H, W)
    free = max(1, round(FREE_SHARE * num_directions))
    seen = geometry.unit(prior * inside)[:, None]  # the prior where probes vary
    along = (noise[:, free:] * seen).flatten(2).sum(2)[..., None, None, None]
    noise[:, free:] = geometry.unit((noise[:, free:] - along * seen).flatten(0, 1)
                                    ).unflatten(0, (len(rows), -1))  # fmt: skip
    spread = SPREAD * points.distance(rows)[:, None, None, None, None]
    inward = (
        geometry.unit(points.x[rows] - points.x_adv[rows]) * points.gap[rows, None, None, None] / 2
    )
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
    along = (noise[:, :free] * prior[:, None]).flatten(2).sum(2)  # (m, free) the prior's share
    points.agree[rows] += ((along > 0) == reached[:, :free]).sum(1) * mixed
    points.mixed[rows] += free * mixed


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


registry.register(
    registry.Method("blackbox_deepfool_boundary", "surrogate DeepFool, schedule + boundary search",
                    "black box", explain, "num_shrink_queries", (0, 500, 10),
                    {"num_shrink_queries": 80, "growth": 1.5}, ("black_box", "surrogate"),
                    replay=track)
)  # fmt: skip

__all__ = ["Track", "explain", "track"]
