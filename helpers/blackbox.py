"""Explanations through a black box: the provider's model answers queries and nothing else.

``BlackBox`` is the only way the end user touches the provider's model: it answers labels, or
probabilities when asked, counts every image, refuses past its budget and never exposes
gradients. ``explain`` runs a white-box method of ``helpers.attacks`` on a surrogate model
(``helpers.surrogate``) and checks each candidate with one black-box query, on the same
``helpers.engine`` as the white-box methods.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor, nn

from helpers import attacks, engine, objectives, registry, runtime, validation
from helpers.engine import Model, Run
from helpers.records import Explanation, Predictions


class QueryBudgetExceeded(RuntimeError):
    """The black box was asked about more images than its budget has left; nothing was counted."""


class BlackBox:
    """The provider's model behind an API: answers per image, counted, within a budget.

    Args:
        model: the provider's classifier, x (n, C, H, W) in [0, 1] -> logits (n, K). No
            attribute is the model (a closure keeps it) and it runs under ``torch.no_grad``,
            in eval mode, its mode restored afterwards.
        max_queries: images it answers in all, over every call; None means no limit.
        probabilities: whether the API also answers with probabilities (else labels only).
    """

    def __init__(
        self, model: Model, *, max_queries: int | None = None, probabilities: bool = True
    ) -> None:
        if not callable(model):
            raise TypeError(
                f"model must be a torch.nn.Module or a callable, got {type(model).__name__}."
            )
        if max_queries is not None:
            validation.check_count(max_queries, "max_queries", minimum=0)
        self._answer = _closed_over(model)  # the model lives only inside this closure
        self._max_queries = max_queries
        self._probabilities = bool(probabilities)
        self._queries = 0

    @property
    def queries(self) -> int:
        """Images answered so far, over every call."""
        return self._queries

    @property
    def queries_left(self) -> int | None:
        """Images it will still answer (None: no limit)."""
        return None if self._max_queries is None else self._max_queries - self._queries

    @property
    def answers_probabilities(self) -> bool:
        """Whether it answers probabilities too (else labels only)."""
        return self._probabilities

    def labels(self, x: Tensor) -> Tensor:
        """The predicted class of each image x (N, C, H, W) in [0, 1]: (N,) int64; costs N."""
        return self._ask(x).argmax(1)

    def probabilities(self, x: Tensor) -> Tensor:
        """The class probabilities of each image x (N, C, H, W) in [0, 1]: (N, K); costs N."""
        if not self._probabilities:
            raise PermissionError(
                "this black box answers labels only (probabilities=False); call labels(x), or "
                "create it with BlackBox(model, probabilities=True)."
            )
        return self._ask(x).softmax(1)

    def __repr__(self) -> str:
        limit = "no limit" if self._max_queries is None else f"max_queries={self._max_queries}"
        mode = "labels and probabilities" if self._probabilities else "labels only"
        return f"BlackBox({mode}, {self._queries} queries so far, {limit})"

    def _ask(self, x: Tensor) -> Tensor:
        validation.check_images(x, "x")
        left = self.queries_left
        if left is not None and len(x) > left:
            raise QueryBudgetExceeded(
                f"asked about {len(x)} images, but only {left} of max_queries="
                f"{self._max_queries} are left ({self._queries} answered so far); ask about "
                "fewer images, or create a BlackBox with a larger max_queries."
            )
        logits = self._answer(x.detach())
        validation.check_logits(logits, len(x))
        self._queries += len(x)
        return logits.detach()


def _closed_over(model: Model):
    @torch.no_grad()
    def answer(x: Tensor) -> Tensor:
        if isinstance(model, nn.Module):
            validation.check_dtype(model, x, "the black box's model")
            with runtime.eval_mode(model):
                return model(x.to(runtime.model_device(model))).to(x.device)
        return model(x)

    return answer


class Answers:
    """The black box as the engine's model: its 'logits' are the log of the probabilities it
    answers (one-hot labels when it answers labels only), so ``softmax`` gives them back."""

    def __init__(self, black_box: BlackBox, num_classes: int) -> None:
        self.black_box, self.num_classes = black_box, num_classes

    @property
    def queries_left(self) -> int | None:
        return self.black_box.queries_left

    def __call__(self, x: Tensor) -> Tensor:
        if self.black_box.answers_probabilities:
            return self.black_box.probabilities(x).to(x.dtype).log()
        labels = self.black_box.labels(x)
        return torch.nn.functional.one_hot(labels, self.num_classes).to(x.dtype).log()


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
        validation.check_choice(self.method, "method", attacks.METHODS)
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


def explain(
    black_box: BlackBox,
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
            a query in the paper's sense, but an answer its budget pays for).
        surrogate: a differentiable stand-in for the black box, x -> logits (n, K).
        x (N, C, H, W) in [0, 1], y (N,): images and true labels, or a record.
        strategy, changes: a ``Strategy`` (default ``Strategy()``) and changes to it.
    Returns: an ``Explanation`` whose logits are the log of the black box's answers;
        ``backward_passes`` is 0, since the black box gives no gradient. A budget that cannot
        cover a round answers its first images (in the batch's order) and leaves the rest
        unexplained; once spent, ``explain`` warns and returns what it found. ``queries``
        counts candidates; ``forward_passes`` every answer, the originals' included.
    """
    if not isinstance(black_box, BlackBox):
        raise TypeError(f"black_box must be a BlackBox, got {type(black_box).__name__}.")
    x, y, from_record = attacks.unpack(x, y)
    strategy = (strategy or Strategy()).but(**changes)
    validation.check_images(x, "x")
    validation.check_model(surrogate, x, "surrogate")
    answers = Answers(black_box, _num_classes(surrogate, x))
    index = from_record if index is None else index
    with evaluating(surrogate), Run(answers, x, y, index=index, name="black box") as run:
        x, answer = run.x, run.logits.argmax(1)  # (N,) the black box's latest answers
        wrong = run.attacked.nonzero()[:, 0]
        first = attacks.explain(surrogate, x[wrong], y[wrong], strategy.method, **strategy.settings)
        point, radius = x.clone(), x.new_zeros(len(x))  # (N, C, H, W), (N,)
        point[wrong], radius[wrong] = first.x_adv, first.l2.clamp(min=strategy.min_radius)
        for _ in range(strategy.max_queries):
            rows = run.active()
            if len(rows) == 0 or run.exhausted:
                break
            candidate = _step_out(
                surrogate, x[rows], point[rows], y[rows], answer[rows], radius[rows]
            )
            probe = run.query(candidate, rows)
            rows = probe.rows
            point[rows], answer[rows] = probe.x, probe.logits.argmax(1)
            radius[rows] = torch.where(probe.reached, radius[rows], radius[rows] * strategy.growth)
            run.keep(probe)
        _shrink(run, strategy)
        return run.finish(f"blackbox_{strategy.method}", _options(strategy))


def _shrink(run: Run, strategy: Strategy) -> None:
    """Bisect on the segment from x to each hit, keeping the closest candidate that works."""
    low, high = run.x.new_zeros(len(run.x)), run.x.new_ones(len(run.x))  # t in x + t delta
    delta = run.x_adv - run.x  # (N, C, H, W)
    for _ in range(strategy.num_shrink_steps):
        within = run.counter.queries < strategy.max_queries
        rows = (run.attacked & run.success & within).nonzero()[:, 0]
        if len(rows) == 0 or run.exhausted:
            break
        middle = (low[rows] + high[rows]) / 2
        candidate = (run.x[rows] + middle[:, None, None, None] * delta[rows]).clamp(0, 1)
        probe = run.query(candidate, rows)
        rows, middle = probe.rows, middle[: len(probe.rows)]
        high[rows] = torch.where(probe.reached, middle, high[rows])
        low[rows] = torch.where(probe.reached, low[rows], middle)
        run.keep(probe, probe.reached)


def _options(strategy: Strategy) -> dict[str, Any]:
    options = {f.name: getattr(strategy, f.name) for f in fields(strategy) if f.name != "settings"}
    return {**options, **strategy.settings}


def evaluating(model: Model):
    """The surrogate in eval mode for the call (the engine warns about the provider's mode)."""
    return runtime.eval_mode(model) if isinstance(model, nn.Module) else nullcontext()


def _num_classes(surrogate: Model, x: Tensor) -> int:
    if len(x) == 0:
        return 2
    with torch.no_grad(), evaluating(surrogate):
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


_GROWTH = (1.1, 3.0, 0.05)
for _method in (
    registry.Method("blackbox_deepfool", "surrogate DeepFool, step schedule", "black box",
                    explain, "growth", _GROWTH, {"growth": 1.5}, ("black_box", "surrogate")),
    registry.Method("blackbox_deepfool_shrink",
                    "surrogate DeepFool, schedule + 3 shrink steps", "black box", explain,
                    "growth", _GROWTH, {"growth": 1.5, "num_shrink_steps": 3},
                    ("black_box", "surrogate")),
    registry.Method("blackbox_iterative_l2", "surrogate iterative L2, step schedule",
                    "black box", explain, "growth", _GROWTH,
                    {"growth": 1.5, "method": "iterative_l2"}, ("black_box", "surrogate")),
):  # fmt: skip
    registry.register(_method)

__all__ = ["BlackBox", "QueryBudgetExceeded", "Strategy", "explain"]
