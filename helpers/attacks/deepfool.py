"""DeepFool, targeted (to fix a mistake) or untargeted (to fool a right answer), with its step
policy, and the refinement that shrinks any explanation toward the nearest point of the decision
boundary.

Each step aims at the nearest point of the [0, 1] box where the linearized margins hold
(``geometry.project_to_polytope``) and adapts its length per image to the curvature it meets
(``next_step_scale``, ``step_curvature``, ``curvature_scale``, below), so an image never walks
away from the boundary. In the table of methods as "deepfool" and "deepfool_refined".
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

from helpers import geometry, objectives, validation
from helpers.engine import Model, Run
from helpers.objectives import Objective, margin
from helpers.records import Explanation


def deepfool(
    model: Model,
    x: Tensor,
    y: Tensor,
    *,
    overshoot: float = 0.05,
    max_queries: int = 50,
    num_refine_steps: int = 0,
    refine_overshoot: float = 0.02,
    num_constraints: int = 9,
    goal: str = "fix",
    index: Tensor | None = None,
) -> Explanation:
    """Targeted DeepFool: step to the nearest point of the box where the linearized true logit
    beats the ``num_constraints`` strongest wrong ones (``goal="fix"``); untargeted DeepFool
    with ``goal="fool"``: step to the boundary of y and its strongest rival, away from y.

    Args:
        model, x (N, C, H, W) in [0, 1], y (N,): the classifier, images and true labels.
        overshoot: the first step goes this fraction past its linear target; later steps adapt
            per image to the curvature they met (``next_step_scale``).
        max_queries: candidates per image in all, refinement included. A miss that raised the
            margin re-linearizes there; one that did not is not taken, and the next step leaves
            from the same point 1/2, 2, 1/4, 4... times as long, so no image walks away.
        num_refine_steps, refine_overshoot: then shrink each success as ``refine`` does.
    Returns: an ``Explanation``; a failure keeps its candidate with the highest margin. Each
        candidate costs one query, and one backward pass per constraint if the search goes on.
    """
    validation.check_non_negative(overshoot, "overshoot")
    validation.check_count(max_queries, "max_queries")
    validation.check_count(num_refine_steps, "num_refine_steps", minimum=0)
    validation.check_non_negative(refine_overshoot, "refine_overshoot")
    validation.check_count(num_constraints, "num_constraints")
    settings = dict(overshoot=overshoot, max_queries=max_queries, num_constraints=num_constraints)
    fix = goal == "fix"
    objective = partial(class_margins, num_constraints=num_constraints) if fix else _away
    name = "deepfool" if fix else "deepfool_fool"
    if num_refine_steps:
        settings.update(num_refine_steps=num_refine_steps, refine_overshoot=refine_overshoot)
        name = f"{name}_refined"
    with Run(
        model, x, y, goal=goal, objective=objective, index=index, max_queries=max_queries
    ) as run:
        if not run.attacked.any():  # nothing to change (an empty batch, say)
            return run.finish(name, settings)
        x, value, grad = run.x, run.value, run.grad  # (N, m) margins, (N, m, C, H, W) gradients
        point = x.clone()  # (N, C, H, W): the best point so far, where the next step starts
        scale = x.new_full((len(x),), 1 + overshoot)  # (N,) how far along its linear step
        failures = torch.zeros_like(y)  # (N,) steps in a row that did not raise the margin
        curvature = x.new_zeros(len(x))  # (N,) <= 0, of the margin along the last good step
        for step in range(max_queries):
            rows = run.active()
            if len(rows) == 0:
                break
            point_i, value_i, grad_i = point[rows], value[rows], grad[rows]
            step_i = _polytope_point(point_i, grad_i, value_i) - point_i  # the linear step
            bent = curvature_scale(value_i[:, 0], _norm(step_i), curvature[rows])
            first = failures[rows] == 0
            used = torch.where(
                first, torch.maximum(scale[rows], (1 + overshoot) * bent), scale[rows]
            )
            candidate = (point_i + used[:, None, None, None] * step_i).clamp(0, 1)
            linear = (value_i + _dot(grad_i, candidate - point_i)).amin(1)  # predicted margin

            judge = partial(
                next_step_scale, used, failures[rows], 1 + overshoot, value_i[:, 0], linear
            )
            more, refining = step < max_queries - 1, num_refine_steps > 0
            need = partial(_need_gradient, judge=judge, more=more, refining=refining)
            probe = run.query(candidate, rows, objective, need_grad=need)
            margin_new = probe.value[:, 0]
            scale[rows], failures[rows], improved = judge(margin_new)
            bend = step_curvature(value_i[:, 0], linear, margin_new, _norm(candidate - point_i))
            curvature[rows] = torch.where(improved, bend, curvature[rows])
            take = improved | probe.reached  # a step that did not raise the margin is not taken
            point[rows] = torch.where(take[:, None, None, None], candidate, point_i)
            value[rows] = torch.where(take[:, None], probe.value, value_i)
            grad[rows] = torch.where(take[:, None, None, None, None], probe.grad, grad_i)
            run.keep(probe, take)
        if num_refine_steps:
            away = margin if fix else objectives.away
            first, first_grad = value[:, 0].clone(), grad[:, 0].clone()
            _refine(run, away, first, first_grad, num_refine_steps, refine_overshoot)
        return run.finish(name, settings)


def _need_gradient(
    reached: Tensor, value: Tensor, *, judge: Callable, more: bool, refining: bool
) -> Tensor:
    """(n, m): the margins' gradients a step needs: every column where the search goes on from
    this candidate (a miss that raised the margin), the first where refinement starts."""
    improved = judge(value[:, 0])[2]
    mask = (~reached & improved & more)[:, None].repeat(1, value.shape[1])
    mask[:, 0] |= reached & refining
    return mask


def class_margins(logits: Tensor, y: Tensor, num_constraints: int) -> Tensor:
    """Logit of the true class minus each of the strongest wrong logits, strongest first.

    Returns (n, m), m = min(num_constraints, K - 1); column 0 is ``objectives.margin``.
    """
    other = logits.scatter(1, y[:, None], float("-inf"))
    strongest = other.topk(min(num_constraints, logits.shape[1] - 1), dim=1).values  # (n, m)
    return logits.gather(1, y[:, None]) - strongest


def _away(logits: Tensor, y: Tensor) -> Tensor:
    return objectives.away(logits, y)[:, None]  # (n, 1): fooling needs to beat one class only


def _polytope_point(point: Tensor, grad: Tensor, value: Tensor) -> Tensor:
    """Nearest point to ``point`` (n, C, H, W) where every margin ``value`` (n, m) linearized
    there with ``grad`` (n, m, C, H, W) reaches TINY·|grad|."""
    grad_flat, point_flat = grad.flatten(2), point.flatten(1)  # (n, m, D), (n, D)
    bound = _dot(grad, point[:, None]) - value + geometry.TINY * grad_flat.norm(dim=2)  # (n, m)
    target, _ = geometry.project_to_polytope(point_flat, grad_flat, bound)
    return target.view_as(point)


def _dot(grad: Tensor, delta: Tensor) -> Tensor:
    """grad (n, m, C, H, W) · delta (n, [1,] C, H, W) per constraint -> (n, m)."""
    if delta.dim() == grad.dim() - 1:
        delta = delta[:, None]
    return (grad * delta).flatten(2).sum(2)


def _norm(delta: Tensor) -> Tensor:
    return delta.flatten(1).norm(dim=1)


def refine(
    model: Model,
    x: Tensor,
    y: Tensor,
    x_adv: Tensor,
    *,
    num_steps: int = 20,
    overshoot: float = 0.02,
    index: Tensor | None = None,
) -> Explanation:
    """Shrink explanations ``x_adv`` toward the nearest point of the decision boundary.

    Args:
        model, x (N, C, H, W) in [0, 1], y (N,): the classifier, images and true labels.
        x_adv: (N, C, H, W) in [0, 1], explanations from any method (rows that ``x`` already
            gets right are ignored); checking them costs one query.
        num_steps: refinement steps per image, one query and one backward pass each.
        overshoot: how far past the linear boundary a step back to the right side goes.
    Returns: an ``Explanation`` holding the smallest correct candidate, so L2 never grows.
    """
    validation.check_count(num_steps, "num_steps", minimum=0)
    validation.check_non_negative(overshoot, "overshoot")
    validation.check_images(x, "x")
    validation.check_images(x_adv, "x_adv")
    if x_adv.shape != x.shape or x_adv.device != x.device or x_adv.dtype != x.dtype:
        raise ValueError(
            f"x_adv must match x in shape, device and dtype; got {tuple(x_adv.shape)} "
            f"{x_adv.device} {x_adv.dtype} for x {tuple(x.shape)} {x.device} {x.dtype}."
        )
    settings = dict(num_steps=num_steps, overshoot=overshoot)
    with Run(model, x, y, index=index, max_queries=1 + num_steps) as run:
        rows = run.attacked.nonzero()[:, 0]
        if len(rows):
            probe = run.query(x_adv[rows].detach(), rows, margin, need_grad=num_steps > 0)
            run.value[rows], run.grad[rows] = probe.value, probe.grad
            run.keep(probe)  # the starting point: refinement keeps it unless it finds a smaller one
        _refine(run, margin, run.value, run.grad, num_steps, overshoot)
        return run.finish("refine", settings)


def _refine(
    run: Run,
    objective: Objective,
    value: Tensor,
    grad: Tensor,
    num_steps: int,
    overshoot: float,
) -> None:
    """Shrink the run's successes for ``num_steps`` steps, within the run's budget per image.

    ``run.x_adv`` holds the last candidates (N, C, H, W); ``value`` (N,) their ``objective``
    (> 0 where the goal is met) and ``grad`` (N, C, H, W) its gradient, updated in place.
    From a point that meets the goal, slide a fraction ``alpha`` of the way to the point of
    its linearized boundary nearest ``x`` (``alpha`` halves after a miss and grows after a
    hit); from one that does not, take a DeepFool step back. Keep the smallest one that
    meets the goal.
    """
    x = run.x
    point = run.x_adv.clone()  # (N, C, H, W): where each image's refinement stands
    best = torch.where(run.success, (point - x).flatten(1).norm(dim=1), torch.inf)  # (N,)
    right, alpha = run.success.clone(), x.new_ones(len(x))  # (N,) each
    rows = (run.attacked & run.success).nonzero()[:, 0]
    for step in range(num_steps):
        rows = rows[run.within(rows)]
        if len(rows) == 0:
            break
        x_i, point_i, value_i, grad_i = x[rows], point[rows], value[rows], grad[rows]
        slid = right[rows]  # (n,) which rows slide this step
        wide = slid[:, None, None, None]
        anchor = torch.where(wide, x_i, point_i)  # slide toward x, or step back from the point
        target = geometry.boundary_point(point_i, grad_i, value_i, anchor=anchor)
        length = torch.where(wide, alpha[rows][:, None, None, None], 1 + overshoot)
        candidate = (point_i + length * (target - point_i)).clamp(0, 1)
        more = (step < num_steps - 1) & (run.left(rows) > 1)
        probe = run.query(candidate, rows, objective, need_grad=more)
        point[rows], value[rows], right[rows] = candidate, probe.value, probe.reached
        grad[rows] = probe.grad
        grown = torch.where(probe.reached, (alpha[rows] * 1.5).clamp(max=1), alpha[rows] / 2)
        alpha[rows] = torch.where(slid, grown, alpha[rows])
        l2 = (candidate - x_i).flatten(1).norm(dim=1)
        better = probe.reached & (l2 < best[rows])
        best[rows[better]] = l2[better]
        run.keep(probe, better)


# The step policy: how far each image's next step goes, from what its last step did.


def next_step_scale(
    scale: Tensor,
    failures: Tensor,
    base: float,
    margin: Tensor,
    linear: Tensor,
    margin_new: Tensor,
    *,
    max_scale: float = 2.0,
    min_efficiency: float = 0.1,
) -> tuple[Tensor, Tensor, Tensor]:
    """How far each image's next DeepFool step goes, as a multiple of its linear step.

    Args:
        scale: (n,) the last step's multiple; failures: (n,) int64, steps in a row that did
            not raise the margin before it; base: 1 + the first step's overshoot.
        margin, linear, margin_new: (n,) the margin where the step started, the margin its
            linearization predicted at the candidate, and the margin the model gave there.
    Returns: ``scale`` (n,), ``failures`` (n,) and ``improved`` (n,) bool. After a step that
        raised the margin by a fraction rho of the predicted gain, the next one (from the
        candidate) is ``base`` / rho, within [base, max_scale]: the curvature is likely to
        persist. After one that did not, the next leaves from the same point, 1/2, 2, 1/4,
        4, ... times the first multiple that failed: shorter in case the step ran past a bend,
        longer in case it was too short to tell, so that no image stalls on one length.
    """
    improved = margin_new > margin
    predicted = linear - margin  # (n,)
    rho = torch.where(predicted > 0, (margin_new - margin) / predicted.clamp(min=1e-30), 1.0)
    grown = (base / rho.clamp(min=min_efficiency)).clamp(base, max_scale)
    tries = failures + 1
    exponent = torch.where(tries % 2 == 1, -tries, tries).to(scale.dtype)
    bracketed = scale * 2.0**exponent
    return (
        torch.where(improved, grown, bracketed),
        torch.where(improved, 0, tries),
        improved,
    )


def step_curvature(margin: Tensor, linear: Tensor, margin_new: Tensor, distance: Tensor) -> Tensor:
    """Second derivative of the margin along the last step, if the margin bends down, else 0.

    Args: (n,) each: the margin where the step started, its linear prediction and the model's
    margin at the candidate, and the L2 length of the step. A parabola through the start, with
    the start's slope, reaches ``margin_new`` with this curvature; returns (n,) <= 0.
    """
    return (2 * (margin_new - linear) / distance.clamp(min=1e-30) ** 2).clamp(max=0)


def curvature_scale(
    margin: Tensor, distance: Tensor, curvature: Tensor, *, max_scale: float = 3.0
) -> Tensor:
    """How much longer than its linear step (``distance`` to where the linearized ``margin``
    reaches 0) a step must be for the parabola of that ``curvature`` to reach 0.

    Args: (n,) each; ``margin`` < 0 and ``curvature`` <= 0 (from ``step_curvature``).
    Returns: (n,) in [1, 2] where the parabola reaches 0 (2 where it just touches it), and
        ``max_scale`` where it bends down before reaching it.
    """
    bend = 2 * (-curvature) * distance**2 / (-margin).clamp(min=1e-30)  # (n,) >= 0
    reaches = 2 / (1 + (1 - bend).clamp(min=0).sqrt())
    return torch.where(bend <= 1, reaches, max_scale)


__all__ = [
    "class_margins",
    "curvature_scale",
    "deepfool",
    "next_step_scale",
    "refine",
    "step_curvature",
]
