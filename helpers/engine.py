"""The machinery every attack shares, forward or inverted, white box or black box.

A method opens a ``Run`` on a batch: it checks the inputs, puts the model in eval mode for the
call, and asks the model about the original images (not a query). Then the method proposes
candidates and asks about them with ``Run.query``, which counts per image through a
``QueryCounter`` and returns a ``Probe`` with the answers, the objective and its gradient; it
keeps what it wants with ``Run.keep`` and ends with ``Run.finish``, which returns the record.

The ``Run`` is also the one budget keeper: it knows each image's ``max_queries`` and a black
box's own limit, answers only what they cover, and says once, in ``finish``, when a budget ran
out. ``bisect`` is the one binary search toward x that the black-box methods share.

What an attack raises is an *objective* (``helpers.objectives``): a small callable
``(logits (n, K), y (n,)) -> (n,)``, as grad-cam's targets are.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from helpers import runtime, validation
from helpers.objectives import Objective
from helpers.records import Explanation, Predictions

Model = Callable[[Tensor], Tensor]  # x (n, C, H, W) in [0, 1] -> logits (n, K)
GOALS = ("fix", "fool")  # fix: make the model answer y; fool: make it answer anything else


class QueryCounter:
    """Wrap a model and count forward passes, queries and backward passes per image.

    Call it as ``counter(x, index, query=True)``: ``x`` (n, C, H, W) are the rows ``index`` (n,)
    of the batch. A backward pass is counted for each row whose logits get a nonzero gradient.
    A model with a ``queries_left`` attribute (a black box) bounds how many rows it answers.
    """

    def __init__(self, model: Model, num_images: int, device: torch.device) -> None:
        self.model = model
        self.forward_passes = torch.zeros(num_images, dtype=torch.int64, device=device)
        self.queries = torch.zeros_like(self.forward_passes)
        self.backward_passes = torch.zeros_like(self.forward_passes)

    @property
    def capacity(self) -> int | None:
        """How many more images the model answers (None: no limit)."""
        return getattr(self.model, "queries_left", None)

    def __call__(self, x: Tensor, index: Tensor | None = None, query: bool = True) -> Tensor:
        if index is None:
            index = torch.arange(len(x), device=x.device)
        logits = self.model(x)
        validation.check_logits(logits, len(x))
        ones = torch.ones_like(index)
        self.forward_passes.index_add_(0, index, ones)
        if query:
            self.queries.index_add_(0, index, ones)
        if logits.requires_grad:
            logits.register_hook(lambda grad: self._count_backward(index, grad))
        return logits

    def _count_backward(self, index: Tensor, grad: Tensor) -> None:
        self.backward_passes.index_add_(0, index, grad.ne(0).any(1).long())


@dataclass(frozen=True, eq=False)
class Probe:
    """The model's answers on candidates ``x`` (n, C, H, W), the rows ``rows`` (n,) of the batch:
    ``logits`` (n, K), ``reached`` (n,) the goal is met, the objective ``value`` (n,) and its
    gradient ``grad`` (n, C, H, W) (zeros for rows where it was not needed)."""

    rows: Tensor
    x: Tensor
    logits: Tensor
    reached: Tensor
    value: Tensor
    grad: Tensor


def objective_gradient(
    model: Model,
    x: Tensor,
    y: Tensor,
    objective: Objective,
    need: Tensor | Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Logits (n, K), objective value and its input gradient at ``x`` (n, C, H, W).

    An objective of one value per image (n,) has a gradient (n, C, H, W); one of several
    (n, m), such as DeepFool's margins against each strong wrong class, has one per column,
    (n, m, C, H, W), one backward pass each. The gradient is taken only where ``need`` says:
    a mask (n,) or (n, m), or a function of the logits that returns one (default: all);
    zeros elsewhere (the function gets the logits and the values). Nothing flows into the
    model's parameters.
    """
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        logits = model(x_in)
        value = objective(logits, y)
    if need is None:
        need = torch.ones(len(value), dtype=torch.bool, device=value.device)
    elif callable(need):
        need = need(logits.detach(), value.detach())
    return logits.detach(), value.detach(), input_gradient(value, x_in, need)


def input_gradient(value: Tensor, x_in: Tensor, need: Tensor) -> Tensor:
    """Gradient of ``value`` (n,) or of each column of ``value`` (n, m) w.r.t. ``x_in`` for
    the rows (and columns) in ``need`` (n,) or (n, m); zeros elsewhere."""
    if value.dim() == 1:
        if not need.any():
            return torch.zeros_like(x_in)
        (grad,) = torch.autograd.grad(value[need].sum(), x_in)
        return grad
    need = need[:, None].expand_as(value) if need.dim() == 1 else need
    grads = x_in.new_zeros(len(x_in), value.shape[1], *x_in.shape[1:])  # (n, m, C, H, W)
    for j in need.any(0).nonzero()[:, 0].tolist():
        (grads[:, j],) = torch.autograd.grad(value[need[:, j], j].sum(), x_in, retain_graph=True)
    return grads


class Run:
    """One call of a method on a batch ``x`` (N, C, H, W) in [0, 1] with labels ``y`` (N,).

    Use it as a context manager: on entry it checks the inputs, runs the model in eval mode
    (warning once if it was training, and giving every submodule its mode back on exit) and asks
    it about ``x``; with ``objective`` it also takes that objective's value and gradient at ``x``
    for the rows to attack (``Run.value``, ``Run.grad``). ``goal`` "fix" attacks the
    misclassified rows, "fool" the correct ones (``attack_all``: every row, as adversarial
    training wants). ``index`` (N,) names the rows in their source split. ``max_queries``
    bounds each image's queries (None: no bound); a model with a ``queries_left`` attribute (a
    black box) bounds them all together, and one with a ``quantize`` method (an API that takes
    8-bit images) is asked about ``quantize(candidate)``, which is then the candidate kept.
    ``progress``, if a list, gets every ``keep``: (rows (m,), their query counts then (m,),
    x_adv (m, C, H, W), logits_adv (m, K)), in order, so that a search can be replayed at any
    smaller budget.
    """

    def __init__(
        self,
        model: Model,
        x: Tensor,
        y: Tensor,
        *,
        goal: str = "fix",
        objective: Objective | None = None,
        index: Tensor | None = None,
        name: str = "model",
        attack_all: bool = False,
        max_queries: int | None = None,
        progress: list | None = None,
    ) -> None:
        validation.check_images(x, "x")
        validation.check_model(model, x, name)
        validation.check_labels(y, len(x), device=x.device)
        validation.check_choice(goal, "goal", GOALS)
        if index is not None:
            validation.check_labels(index, len(x), device=x.device, name="index")
        if max_queries is not None:
            validation.check_count(max_queries, "max_queries", minimum=0)
        self.model, self.goal, self.name = model, goal, name
        self.x, self.y = x.detach(), y
        self.index = torch.arange(len(x), device=x.device) if index is None else index
        self.max_queries, self.progress = max_queries, progress
        self._objective, self._attack_all = objective, attack_all
        self.exhausted = False  # the black box's own budget ran out

    def __enter__(self) -> Run:
        self._mode = ExitStack()
        if isinstance(self.model, nn.Module):
            if self.model.training:
                warnings.warn(
                    f"{self.name} is in training mode; it is run in eval mode for this call and "
                    f"every module gets its mode back afterwards. Call {self.name}.eval() before "
                    "explaining to silence this warning.",
                    stacklevel=3,
                )
            self._mode.enter_context(runtime.eval_mode(self.model))
        try:
            self._start()
        except BaseException:
            self._mode.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._mode.close()

    def _start(self) -> None:
        x, y = self.x, self.y
        self.counter = QueryCounter(self.model, len(x), x.device)
        self.value, self.grad = x.new_zeros(len(x)), torch.zeros_like(x)  # at x, attacked rows
        # (an objective of several values per image makes them (N, m) and (N, m, C, H, W))
        self.answered = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        self.logits = x.new_zeros(len(x), 2)  # uniform until the model answers
        rows = torch.arange(len(x), device=x.device)
        rows = rows[self._capped(torch.ones_like(rows, dtype=torch.bool))]  # not queries
        if len(rows):
            self._first_pass(rows)
        wanted = (self.logits.argmax(1) == y) ^ (self.goal == "fix")
        self.attacked = (wanted | self._attack_all) & self.answered
        self.x_adv, self.logits_adv = x.clone(), self.logits.clone()
        self.success = ~self.attacked & self.answered  # the goal is met on x_adv (= x so far)

    def _first_pass(self, rows: Tensor) -> None:
        """The pass on the original images ``rows``: not a query, as in the paper."""
        x, y = self.x, self.y
        with torch.enable_grad():
            x_in = x[rows].detach().requires_grad_(True)
            logits = self.counter(x_in, rows, query=False)
            validation.check_labels(y, len(x), num_classes=logits.shape[1])
            validation.warn_if_probabilities(logits, self.name)
            value = (self._objective or _zero)(logits, y[rows])
        attacked = ((logits.argmax(1) == y[rows]) ^ (self.goal == "fix")) | self._attack_all
        grad = input_gradient(value, x_in, attacked & (self._objective is not None))
        self.value = x.new_zeros(len(x), *value.shape[1:])
        self.grad = x.new_zeros(len(x), *grad.shape[1:])
        self.logits = x.new_zeros(len(x), logits.shape[1])
        self.logits[rows], self.value[rows] = logits.detach(), value.detach()
        self.grad[rows] = grad
        self.answered[rows] = True

    def left(self, rows: Tensor) -> Tensor:
        """(n,) queries the images ``rows`` (n,) may still spend (a large number if unbounded)."""
        if self.max_queries is None:
            return torch.full_like(rows, torch.iinfo(torch.int64).max)
        return self.max_queries - self.counter.queries[rows]

    def active(self, limit: int | None = None) -> Tensor:
        """(n,) rows still attacked, not yet successful and with a query left (within ``limit``
        queries, if given: a phase of a method that has a budget of its own), in order."""
        rows = (self.attacked & ~self.success).nonzero()[:, 0]
        return rows[self.within(rows, limit=limit)]

    def query(
        self,
        candidate: Tensor,
        rows: Tensor,
        objective: Objective | None = None,
        need_grad: bool | Tensor | Callable[[Tensor], Tensor] = False,
    ) -> Probe:
        """Ask the model about ``candidate`` (n, C, H, W), the rows ``rows`` (n,): one query each.

        With ``objective``, also its value and its gradient for the rows in ``need_grad``:
        a bool, an (n,) mask, or a function of the (n,) ``reached`` mask and the new values
        that returns one ((n,) or, for several values per image, (n, m)). Only the rows whose
        budgets cover them are answered (``Probe.rows`` says which).
        """
        keep = self._capped(self.within(rows))
        answered, candidate, y = rows[keep], self._quantized(candidate[keep]), self.y[rows[keep]]
        if objective is None:
            with torch.no_grad():
                logits = self.counter(candidate, answered)
            value, grad = candidate.new_zeros(len(answered)), torch.zeros_like(candidate)
        else:

            def need(logits: Tensor, value: Tensor) -> Tensor:
                if callable(need_grad):
                    return need_grad(self._reached(logits, y), value)
                mask = torch.as_tensor(need_grad, device=rows.device)
                return mask.expand(len(rows))[keep]

            counted = lambda z: self.counter(z, answered)  # noqa: E731
            logits, value, grad = objective_gradient(counted, candidate, y, objective, need)
        return Probe(answered, candidate, logits.detach(), self._reached(logits, y), value, grad)

    def ask(self, points: Tensor, rows: Tensor, cost: int) -> tuple[Tensor, Tensor]:
        """The model's answers on ``points`` (n·cost, C, H, W), ``cost`` of them for each image
        of ``rows`` (n,), for the images whose budgets cover all of them. Returns (answered
        (n,) mask, their logits (m, cost, K)); no gradient."""
        keep = self._capped(self.within(rows, cost=cost), cost)
        points = self._quantized(points.unflatten(0, (len(rows), cost))[keep].flatten(0, 1))
        if len(points) == 0:
            return keep, points.new_zeros(0, cost, self.logits.shape[1])
        with torch.no_grad():
            logits = self.counter(points, rows[keep].repeat_interleave(cost))
        return keep, logits.unflatten(0, (-1, cost))

    def _quantized(self, candidate: Tensor) -> Tensor:
        """``candidate`` as the model will see it: rounded by its ``quantize``, if it has one."""
        quantize = getattr(self.model, "quantize", None)
        return candidate if quantize is None else quantize(candidate)

    def reached(self, rows: Tensor, logits: Tensor) -> Tensor:
        """(m, cost): whether ``ask``'s answers ``logits`` (m, cost, K) on the images ``rows``
        (m,) meet the goal."""
        return (logits.argmax(2) == self.y[rows, None]) ^ (self.goal == "fool")

    def _reached(self, logits: Tensor, y: Tensor) -> Tensor:
        return (logits.argmax(1) == y) ^ (self.goal == "fool")

    def keep(self, probe: Probe, mask: Tensor | None = None) -> None:
        """Make the probe's candidates (where ``mask``, default all) the current results."""
        mask = torch.ones_like(probe.reached) if mask is None else mask
        rows = probe.rows[mask]
        self.x_adv[rows], self.logits_adv[rows] = probe.x[mask], probe.logits[mask]
        self.success[rows] = probe.reached[mask]
        if self.progress is not None and len(rows):
            queries = self.counter.queries[rows].clone()
            self.progress.append((rows, queries, probe.x[mask], probe.logits[mask]))

    def within(self, rows: Tensor, *, cost: int = 1, limit: int | None = None) -> Tensor:
        """(n,) mask of the ``rows`` (n,) whose own budgets cover ``cost`` more queries each:
        ``max_queries``, and ``limit`` if given (a phase of a method with a budget of its own)."""
        keep = self.left(rows) >= cost
        if limit is not None:
            keep &= self.counter.queries[rows] + cost <= limit
        return keep

    def _capped(self, keep: Tensor, cost: int = 1) -> Tensor:
        """``keep`` (n,) narrowed, in order, to what the black box's own budget still covers."""
        capacity = self.counter.capacity
        if capacity is not None and capacity < int(keep.sum()) * cost:
            self.exhausted = True
            keep = keep & (keep.cumsum(0) <= capacity // cost)
        return keep

    def finish(self, method: str, settings: dict) -> Explanation:
        """The record of this run, warning if the black box's budget stopped it early."""
        if self.exhausted:
            left = int((self.attacked & ~self.success).sum() + (~self.answered).sum())
            warnings.warn(
                f"the {self.name}'s budget ran out: {left} of {len(self.x)} images are left "
                "without an explanation (success False) and the others may be larger than they "
                "would be; results so far are kept. Give it a larger max_queries.",
                stacklevel=3,
            )
        return Explanation(
            index=self.index,
            x=self.x,
            y=self.y,
            logits=self.logits,
            x_adv=self.x_adv,
            logits_adv=self.logits_adv,
            attacked=self.attacked | ~self.answered,
            success=self.success,
            queries=self.counter.queries.clone(),
            forward_passes=self.counter.forward_passes.clone(),
            backward_passes=self.counter.backward_passes.clone(),
            method=method,
            settings=settings,
        )


@dataclass(frozen=True, eq=False)
class Bisection:
    """Where ``bisect`` left each segment x + t (end - x): ``low`` (n,) the largest t answered
    short of the goal, ``high`` (n,) the smallest t that meets it, ``other`` (n,) the class
    answered at ``low`` (-1 if no point short of the goal was asked)."""

    low: Tensor
    high: Tensor
    other: Tensor


def bisect(
    run: Run,
    rows: Tensor,
    end: Tensor,
    *,
    tolerance: float = 0.0,
    num_steps: int | None = None,
    limit: int | None = None,
) -> Bisection:
    """Binary search on each segment from x to ``end`` (n, C, H, W), which meets the goal, for
    the point nearest x that meets it, one query a step; keeps each point that meets the goal
    and is nearer x than the run's current one.

    Args:
        run: the run whose images ``rows`` (n,) are searched; its budgets bound the search.
        tolerance: stop a row once high - low is at most this fraction of the segment.
        num_steps: stop after this many steps (None: only the tolerance and budgets stop it).
        limit: queries per image this search may bring each image's count to.
    Returns: a ``Bisection``.
    """
    x, delta = run.x[rows], end - run.x[rows]  # (n, C, H, W)
    low, high = x.new_zeros(len(rows)), x.new_ones(len(rows))  # t in x + t delta
    other = torch.full_like(rows, -1)
    active = torch.arange(len(rows), device=x.device)
    for step in itertools.count():
        active = active[(high[active] - low[active]) > tolerance]
        active = active[run.within(rows[active], limit=limit)]
        if len(active) == 0 or step == num_steps:
            break
        middle = (low[active] + high[active]) / 2
        candidate = (x[active] + middle[:, None, None, None] * delta[active]).clamp(0, 1)
        probe = run.query(candidate, rows[active])  # the black box may answer only a prefix
        if len(probe.rows) == 0:
            break
        active, middle = active[: len(probe.rows)], middle[: len(probe.rows)]
        high[active] = torch.where(probe.reached, middle, high[active])
        low[active] = torch.where(probe.reached, low[active], middle)
        other[active] = torch.where(probe.reached, other[active], probe.logits.argmax(1))
        nearer = _norm(probe.x - x[active]) < _norm(run.x_adv[probe.rows] - x[active])
        run.keep(probe, probe.reached & nearer)
    return Bisection(low, high, other)


def _norm(delta: Tensor) -> Tensor:
    return delta.flatten(1).norm(dim=1)


def unpack(x: Tensor | Predictions, y: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """(x, y, index) from a record, or from images and labels (index None)."""
    if isinstance(x, Predictions):
        if y is not None:
            raise ValueError("pass either a record or images x with labels y, not both")
        return x.x, x.y, x.index
    if y is None:
        raise TypeError("y is missing: pass labels y (N,) with the images, or pass a record")
    return x, y, None


def _zero(logits: Tensor, y: Tensor) -> Tensor:
    return logits.new_zeros(len(logits))


__all__ = [
    "GOALS",
    "Bisection",
    "Model",
    "Probe",
    "QueryCounter",
    "Run",
    "bisect",
    "objective_gradient",
    "unpack",
]
