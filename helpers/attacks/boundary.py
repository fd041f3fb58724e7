"""Shrink a black-box explanation toward the boundary nearest x, from label answers only.

``transfer.explain`` finds an x_adv the black box answers y to; ``explain`` here spends the rest
of each image's budget moving it closer to x, in the spirit of HopSkipJump (Chen, Jordan,
Wainwright 2020). Where ``starts`` gives points the black box is already known to answer y to
(the user's own pool images it labelled y: ``surrogate.nearest_answered``, at no query), an
image whose start is nearer x than the surrogate-guided step's point starts from it. A binary
search then puts the point on the boundary, and each round:

1. estimates the boundary's normal there from the surrogate's gradient (the prior) and the
   labels of random perturbations (Cheng et al. 2019's prior-guided estimate), most of them
   orthogonal to the prior and none on a pixel at 0 or 1 (clamped, it would push every probe
   the same way);
2. steps (``step``). By default HopSkipJump's step: along the normal, halved until the black
   box still answers y, then a binary search from x. ``"semicircle"``: CGBA's (Reza et al.
   2023), one bisection on the angle of the half circle from x_adv to x in the plane of
   x_adv - x and the normal. Every point of it is nearer x than x_adv; for a flat boundary
   through x_adv and the exact normal, the point where it leaves the y side is the boundary's
   point nearest x (the foot of the perpendicular from x sees the diameter [x, x_adv] at a
   right angle, so it lies on the circle): a poor normal costs a smaller gain, never a step
   wasted. On the black-box benchmark's tuning set (``benchmarks/blackbox.py --tune``) the
   semicircle was the smaller at the issue's budgets but not at every budget, so it is an
   option, not the default.

Every answer goes through the black box, is counted per image by the engine's ``Run`` and stays
within each image's budget; the provider's gradients are never read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers import blackbox, engine, geometry, objectives, runtime, validation
from helpers.attacks import transfer
from helpers.attacks.transfer import Strategy
from helpers.engine import Model, Run
from helpers.records import Explanation, Predictions

TOLERANCE = 0.002  # a binary search stops within this fraction of the distance to x
SPREAD = 0.05  # random perturbations this fraction of the distance to x long
STEP = 1.0  # the first step along the normal, a fraction of the distance to x
RADIUS = 2  # random directions vary most within this many pixels of the strokes
NUM_TRIES = 4  # halvings of a step before the point stays put this round
ARC_TOLERANCE = 0.01  # radians: the semicircle's bisection stops within this angle
STEPS = ("hopskipjump", "semicircle")  # how a round moves the point, see the module's doc
DIRECTIONS = ("content", "uniform")  # where random probes vary, see Probes.draw
FREE_SHARE = 0.25  # of each round's probes, the share left free to say how good the prior is;
# the rest are orthogonal to it, so that their labels say only what the prior misses


def explain(
    black_box: blackbox.BlackBox,
    surrogate: Model,
    x: Tensor | Predictions,
    y: Tensor | None = None,
    *,
    num_shrink_queries: int = 80,
    num_directions: int = 80,
    step: str = "hopskipjump",
    directions: str = "content",
    starts: Tensor | None = None,
    strategy: Strategy | None = None,
    generator: torch.Generator | None = None,
    index: Tensor | None = None,
    progress: list | None = None,
    **changes: Any,
) -> Explanation:
    """Explain the black box's mistakes with ``transfer.explain``, then shrink each explanation.

    Args:
        black_box, surrogate, x, y, index: as for ``transfer.explain``.
        num_shrink_queries: each image's budget is ``strategy.max_queries`` (the surrogate-guided
            step's, a ``change`` like the others) plus this; shrinking spends what the step
            left of it.
        num_directions: random perturbations whose labels refine the surrogate's normal at each
            step (0: the surrogate's gradient alone); a step probes only if its image has more
            than this many queries left.
        step: how each round moves the point, one of ``STEPS`` (see the module's doc).
        directions: where the random perturbations vary, one of ``DIRECTIONS``: "content"
            (``content_weights``: on and beside the strokes, where a CNN's minimal change
            lies) or "uniform" (every pixel alike, as HopSkipJump's do: a model of another
            kind may be changed most where the image is blank).
        starts: (N, C, H, W) in [0, 1], points the black box is known to have answered y to
            (``surrogate.nearest_answered``; a start equal to its x means none): an attacked
            image whose start is nearer x than the surrogate-guided step's point (or that the
            step left unexplained) searches from it. No query is asked about a start; its
            record's logits are the log of y's one-hot, as a labels-only answer is.
        strategy, changes: the surrogate-guided step's ``Strategy`` and changes to it.
        generator: a CPU ``torch.Generator`` for the random perturbations (default: seed 0).
        progress: if a list, every improvement is appended to it, in the order found (see
            ``engine.Run``); ``track`` replays them.
    Returns: an ``Explanation``; each x_adv is the nearest point to x found that the black box
        answered y to, so its L2 is never above that of the surrogate-guided step.
    """
    validation.check_count(num_shrink_queries, "num_shrink_queries", minimum=0)
    validation.check_count(num_directions, "num_directions", minimum=0)
    validation.check_generator(generator, torch.device("cpu"))
    validation.check_choice(step, "step", STEPS)
    validation.check_choice(directions, "directions", DIRECTIONS)
    strategy = (strategy or Strategy()).but(**changes)
    x, y, index, answers = transfer.prepare(black_box, surrogate, x, y, index)
    if starts is not None:
        _check_starts(starts, x)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    budget = strategy.max_queries + num_shrink_queries
    run = Run(answers, x, y, index=index, name="black box", max_queries=budget, progress=progress)
    with runtime.eval_mode(surrogate), run:
        transfer.schedule(run, surrogate, strategy)
        if starts is not None:
            _start_nearer(run, answers.quantize(starts))
        rows = (run.success & run.attacked).nonzero()[:, 0]
        probes = Probes(num_directions, directions, generator)
        _shrink(run, Search.start(run), surrogate, rows, probes, step)
        settings = {**strategy.options(), "num_shrink_queries": num_shrink_queries}
        settings.update(num_directions=num_directions, step=step, directions=directions)
        settings.update(starts=starts is not None)
        return run.finish(f"blackbox_{strategy.method}_boundary", settings)


def _check_starts(starts: object, x: Tensor) -> None:
    """Check that ``starts`` are images shaped like ``x`` (N, C, H, W), of its dtype and on its
    device, before the black box is asked anything."""
    validation.check_images(starts, "starts")
    if starts.shape != x.shape or starts.dtype != x.dtype or starts.device != x.device:
        raise ValueError(
            f"starts must be one point per image, shaped like x {tuple(x.shape)} ({x.dtype}, "
            f"{x.device}), got {tuple(starts.shape)} ({starts.dtype}, {starts.device}); build "
            "them with surrogate.nearest_answered(x, y, pool, answers)."
        )


def _start_nearer(run: Run, starts: Tensor) -> None:
    """Make each attacked image's start its point where it is nearer x than the point the
    surrogate-guided step found (or the step found none), at no query: the black box answered
    y to it already. A start equal to x is none."""
    reach = torch.where(run.success, _norm(run.x_adv - run.x), torch.inf)  # (N,)
    distance = _norm(starts - run.x)
    rows = (run.attacked & (distance > 0) & (distance < reach)).nonzero()[:, 0]
    point = starts[rows]  # (m, C, H, W)
    known = F.one_hot(run.y[rows], run.logits.shape[1]).to(point.dtype).log()  # (m, K)
    reached = torch.ones_like(rows, dtype=torch.bool)
    zeros = point.new_zeros(len(rows))  # no objective: nothing was asked
    run.keep(engine.Probe(rows, point, known, reached, zeros, torch.zeros_like(point)))


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
            self.final,
            x_adv=x_adv,
            logits_adv=logits_adv,
            queries=queries,
            forward_passes=self.final.forward_passes - (self.final.queries - queries),
            settings={**self.final.settings, "num_shrink_queries": num_shrink_queries},
        )


def track(
    black_box: blackbox.BlackBox,
    surrogate: Model,
    x: Tensor | Predictions,
    y: Tensor | None = None,
    **settings: Any,
) -> Track:
    """``explain`` with ``settings``, keeping its progress: ``track(...).at(n)`` for every n up
    to ``num_shrink_queries``, from one search."""
    progress: list = []
    final = explain(black_box, surrogate, x, y, progress=progress, **settings)
    return Track(final, tuple(progress))


@dataclass(eq=False)
class Search:
    """What the search knows of each image besides its best point (``Run.x_adv``); updated in
    place. ``other`` (N,): a class the black box answered on the far side of the boundary;
    ``memory`` (N, C, H, W): the sum of the random probes' signed directions; ``probes`` (N,):
    how many there were; ``agree`` and ``mixed`` (N,): of the free probes of rounds answered on
    both sides, how many agreed with the prior, and how many there were; ``gap`` (N,): the
    distance from x_adv to the last point answered otherwise."""

    other: Tensor
    memory: Tensor
    probes: Tensor
    agree: Tensor
    mixed: Tensor
    gap: Tensor

    @classmethod
    def start(cls, run: Run) -> Search:
        zeros = run.x.new_zeros(len(run.x))
        other = run.logits_adv.argmax(1)  # overwritten on the far side by the first search
        other = torch.where(run.success, run.logits.argmax(1), other)
        return cls(
            other, torch.zeros_like(run.x), zeros, zeros.clone(), zeros.clone(), zeros.clone()
        )


@dataclass(frozen=True)
class Probes:
    """How each round's random perturbations are drawn: how many per image (``number``),
    where they vary (``directions``, one of ``DIRECTIONS``), from which ``generator``."""

    number: int
    directions: str
    generator: torch.Generator

    def draw(self, x: Tensor, inside: Tensor) -> Tensor:
        """(n, number, C, H, W) random unit directions around images ``x`` (n, C, H, W),
        zero where ``inside`` (n, C, H, W) is False."""
        uniform = torch.ones_like(x)  # x's dtype and device, as content_weights keeps them
        weights = content_weights(x, RADIUS) if self.directions == "content" else uniform
        return weighted_directions(weights * inside, self.number, self.generator)


def _distance(run: Run, rows: Tensor) -> Tensor:
    return _norm(run.x_adv[rows] - run.x[rows])


def _norm(delta: Tensor) -> Tensor:
    return delta.flatten(1).norm(dim=1)


def _shrink(
    run: Run,
    search: Search,
    surrogate: Model,
    rows: Tensor,
    probes: Probes,
    step: str,
) -> None:
    """Move ``run.x_adv[rows]`` toward x with ``step`` each round, keeping only points answered
    y and nearer x, until each image's budget is spent."""
    _search(run, search, rows, run.x_adv[rows])
    # every point of the semicircle may be kept; HopSkipJump's step needs a search after it
    least = 1 if step == "semicircle" else 2
    iteration = 0
    while len(rows := rows[run.left(rows) >= least]) and not run.exhausted:
        iteration += 1
        normal = _normal(run, search, surrogate, rows, probes)
        if step == "semicircle":
            _semicircle(run, search, rows, normal)
            continue
        moved, ends = _step(run, rows, normal, STEP / math.sqrt(iteration))
        if len(moved):
            _search(run, search, moved, ends)


def _semicircle(run: Run, search: Search, rows: Tensor, normal: Tensor) -> None:
    """CGBA's step: bisect on the angle theta of the half circle whose diameter is [x, x_adv],
    x + r cos(theta) (cos(theta) u + sin(theta) v), with u = unit(x_adv - x), v the unit part of
    ``normal`` (n, C, H, W) orthogonal to u, r = |x_adv - x|: theta = 0 is x_adv (answered y),
    pi / 2 is x (answered otherwise), and the point at theta is r cos(theta) from x. Keeps every
    point answered y that is nearer x (clamping to [0, 1] only brings a point nearer x), to
    within ``ARC_TOLERANCE``; note the class answered beyond and the bracket's length."""
    x, radius = run.x[rows], _distance(run, rows)  # (n, C, H, W), (n,)
    u = geometry.unit(run.x_adv[rows] - x)
    v = geometry.unit(normal - (normal * u).flatten(1).sum(1)[:, None, None, None] * u)
    low, high = x.new_zeros(len(rows)), x.new_full((len(rows),), math.pi / 2)
    active = torch.arange(len(rows), device=x.device)
    while len(active := active[(high[active] - low[active]) > ARC_TOLERANCE]):
        active = active[run.within(rows[active])]
        if len(active) == 0:
            break
        middle = (low[active] + high[active]) / 2
        theta = middle[:, None, None, None]
        along = radius[active, None, None, None] * theta.cos()
        candidate = x[active] + along * (theta.cos() * u[active] + theta.sin() * v[active])
        probe = run.query(candidate.clamp(0, 1), rows[active])  # the box may answer a prefix
        if len(probe.rows) == 0:
            break
        active, middle = active[: len(probe.rows)], middle[: len(probe.rows)]
        low[active] = torch.where(probe.reached, middle, low[active])
        high[active] = torch.where(probe.reached, high[active], middle)
        far = ~probe.reached
        search.other[probe.rows[far]] = probe.logits[far].argmax(1)
        nearer = _norm(probe.x - x[active]) < _distance(run, probe.rows)
        run.keep(probe, probe.reached & nearer)
    search.gap[rows] = radius * (high - low)  # about the arc from x_adv to the far side


def _search(run: Run, search: Search, rows: Tensor, end: Tensor) -> None:
    """Binary search from x to ``end`` (n, C, H, W), answered y, for the point nearest x that
    is answered y, to within ``TOLERANCE`` of the segment's length; note the class answered
    on the far side and how wide the last bracket is."""
    found = engine.bisect(run, rows, end, tolerance=TOLERANCE)
    far = found.other >= 0
    search.other[rows[far]] = found.other[far]
    length = (end - run.x[rows]).flatten(1).norm(dim=1)
    ended = (found.high * length - _distance(run, rows)).abs() <= 1e-6 * length  # x_adv: high
    search.gap[rows[ended]] = ((found.high - found.low) * length)[ended]


def _normal(
    run: Run,
    search: Search,
    surrogate: Model,
    rows: Tensor,
    probes: Probes,
) -> Tensor:
    """(n, C, H, W) unit estimates of the boundary's normal at ``x_adv[rows]``, toward y: the
    surrogate's gradient (the prior), weighed by its cosine with the normal as the probes
    estimate it, plus their estimate of the rest, weighed by how much they have said."""
    point, y, other = run.x_adv[rows], run.y[rows], search.other[rows]
    _, _, grad = engine.objective_gradient(surrogate, point, y, objectives.pair(other))
    prior = geometry.unit(grad)
    asked = (run.left(rows) >= probes.number + 1).nonzero()[:, 0]  # keep one to step with
    if probes.number and len(asked):
        _probe(run, search, rows[asked], prior[asked], probes)
    agree = search.agree[rows] / search.mixed[rows].clamp(min=1)  # P(agree) = 1 - angle / pi
    has = search.mixed[rows] > 0  # probes on both sides of the boundary say something
    cosine = torch.where(has, torch.cos(math.pi * (1 - agree)), torch.ones_like(agree))
    memory = search.memory[rows]
    along = (memory * prior).flatten(1).sum(1)[:, None, None, None]
    orthogonal = geometry.unit(memory - along * prior)
    dimension = point[0].numel()  # all pixels: the normal moves as the point does, so trust less
    trust = (2 * search.probes[rows] / (math.pi * dimension)).sqrt().clamp(max=1)
    weight = trust * (1 - cosine**2).clamp(min=0).sqrt()
    return geometry.unit(
        cosine[:, None, None, None] * prior + weight[:, None, None, None] * orthogonal
    )


def _probe(
    run: Run,
    search: Search,
    rows: Tensor,
    prior: Tensor,
    probes: Probes,
) -> None:
    """Ask about ``probes.number`` random points around each ``x_adv[rows]`` and add what
    their labels say about the normal to the search's memory."""
    x, point = run.x[rows], run.x_adv[rows]
    inside = (point > 1e-4) & (point < 1 - 1e-4)  # a pixel at 0 or 1 clamps one way: no probe
    noise = probes.draw(x, inside)  # (n, B, C, H, W)
    num_directions = probes.number
    free = max(1, round(FREE_SHARE * num_directions))
    noise[:, free:] = _orthogonal(noise[:, free:], geometry.unit(prior * inside))
    spread = SPREAD * _distance(run, rows)[:, None, None, None, None]
    inward = geometry.unit(x - point) * search.gap[rows, None, None, None] / 2
    center = point + inward  # the middle of the search's last bracket
    points = (center[:, None] + spread * noise).clamp(0, 1)
    keep, logits = run.ask(points.flatten(0, 1), rows, num_directions)
    rows, noise, prior = rows[keep], noise[keep], prior[keep]
    reached = run.reached(rows, logits)  # (m, B)
    sign = reached.to(noise.dtype) * 2 - 1
    centred = (sign - sign.mean(1, keepdim=True))[..., None, None, None]
    search.memory[rows] += (centred * noise).sum(1)
    search.probes[rows] += num_directions
    mixed = reached.any(1) & ~reached.all(1)
    along = (noise[:, :free] * prior[:, None]).flatten(2).sum(2)  # (m, free) the prior's share
    search.agree[rows] += ((along > 0) == reached[:, :free]).sum(1) * mixed
    search.mixed[rows] += free * mixed


def _orthogonal(noise: Tensor, seen: Tensor) -> Tensor:
    """``noise`` (n, B, C, H, W) with its component along ``seen`` (n, C, H, W), a unit vector
    per image, removed, each direction scaled back to unit length."""
    along = (noise * seen[:, None]).flatten(2).sum(2)[..., None, None, None]  # (n, B, 1, 1, 1)
    return geometry.unit((noise - along * seen[:, None]).flatten(0, 1)).unflatten(
        0, noise.shape[:2]
    )


def _step(run: Run, rows: Tensor, normal: Tensor, step: float) -> tuple[Tensor, Tensor]:
    """HopSkipJump's step: from each ``x_adv[rows]`` along its ``normal`` (n, C, H, W) by
    ``step`` times its distance to x, halved until the black box answers y there; a landing
    nearer x is kept at once (the search after it may find nothing nearer still). Returns the
    rows that stepped (m,) and where they landed (m, C, H, W), to search toward x from."""
    point, distance = run.x_adv[rows], _distance(run, rows)
    pending = torch.arange(len(rows), device=point.device)
    ends = torch.zeros_like(point)
    moved = torch.zeros(len(rows), dtype=torch.bool, device=point.device)
    for tries in range(NUM_TRIES):
        length = (distance[pending] * step / 2**tries)[:, None, None, None]
        candidate = (point[pending] + length * normal[pending]).clamp(0, 1)
        keep, logits = run.ask(candidate, rows[pending], 1)
        pending, candidate = pending[keep], candidate[keep]
        reached = run.reached(rows[pending], logits)[:, 0]
        ends[pending[reached]], moved[pending[reached]] = candidate[reached], True
        _keep_nearer(run, rows[pending[reached]], candidate[reached], logits[reached, 0])
        if len(pending := pending[~reached]) == 0:
            break
    return rows[moved], ends[moved]


def _keep_nearer(run: Run, rows: Tensor, points: Tensor, logits: Tensor) -> None:
    """Make ``points`` (m, C, H, W), answered y with ``logits`` (m, K), the results of ``rows``
    (m,) where they are nearer x than the current ones."""
    nearer = _norm(points - run.x[rows]) < _distance(run, rows)
    zeros = points.new_zeros(len(rows))
    reached = torch.ones_like(rows, dtype=torch.bool)
    probe = engine.Probe(rows, points, logits, reached, zeros, torch.zeros_like(points))
    run.keep(probe, nearer)


def content_weights(x: Tensor, radius: int = 2, floor: float = 0.05) -> Tensor:
    """(n, C, H, W) where random directions around each image x (n, C, H, W) should vary: how
    far each pixel departs from the image's median, spread over ``radius`` pixels and scaled to
    at most 1, plus ``floor`` everywhere. A minimal change to a digit lies on and beside its
    strokes; directions so weighted find it with fewer probes than uniform ones."""
    median = x.flatten(1).median(1).values[:, None, None, None]
    content = (x - median).abs().amax(1, keepdim=True)  # (n, 1, H, W)
    spread = F.max_pool2d(content, 2 * radius + 1, stride=1, padding=radius)  # (n, 1, H, W)
    top = spread.flatten(1).amax(1).clamp(min=geometry.TINY)[:, None, None, None]
    return (spread / top + floor).expand_as(x)


def weighted_directions(weights: Tensor, num: int, generator: torch.Generator) -> Tensor:
    """(n, num, C, H, W) random unit directions, each pixel's Gaussian scaled by its weight in
    ``weights`` (n, C, H, W) (``content_weights``)."""
    noise = torch.randn((len(weights), num, *weights.shape[1:]), generator=generator)
    weighted = (noise.to(weights) * weights[:, None]).flatten(0, 1)
    return geometry.unit(weighted).unflatten(0, (-1, num))


__all__ = ["Search", "Track", "explain", "track"]
