"""Inverted adversarial examples: change a misclassified image as little as possible until the
model gets it right.

Every method takes a batch of images ``x`` (N, C, H, W) in [0, 1] and their true labels ``y``
(N,), stops per image at the first correct prediction, and returns an ``Explanation``.
Images the model already gets right come back untouched, at zero queries.
"""

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers import validation
from helpers.explanation import (
    Explanation,
    Model,
    QueryCounter,
    finish,
    forward_with_grad,
    input_gradient,
    start,
)

METHODS = ("iterative_linf", "iterative_l2", "deepfool", "deepfool_refined")
TINY = 1e-4  # extra L2 distance past a linearized boundary, so that a tie is not a target


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """Logit of the true class minus the largest other logit, (n,); > 0 iff the model is right."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return true - other


def log_probability(logits: Tensor, y: Tensor) -> Tensor:
    """Log-probability of the true class, (n,): the targeted FGSM objective."""
    return -F.cross_entropy(logits, y, reduction="none")


def iterative_gradient(
    model: Model,
    x: Tensor,
    y: Tensor,
    *,
    norm: str = "linf",
    eps: float | None = None,
    step_size: float | None = None,
    max_queries: int = 100,
    random_start: bool = False,
    generator: torch.Generator | None = None,
) -> Explanation:
    """Targeted iterative FGSM (linf) or L2 gradient steps up log p(y), one query each.

    Args:
        model, x (N, C, H, W) in [0, 1], y (N,): the classifier, images and true labels.
        norm: "linf" steps along the gradient's sign, "l2" along its direction.
        eps: radius of the ball the perturbation must stay in; None: only [0, 1] binds.
        step_size: length of a step (default 0.01 for linf, 0.1 for L2).
        max_queries: candidates per image; random_start: draw the first one in the eps ball
            (linf) or on its sphere (L2) with ``generator``.
    Returns: an ``Explanation``; each candidate costs one query and, unless it is the last, one
        backward pass.
    """
    validation.check_choice(norm, "norm", ("linf", "l2"))
    step_size = {"linf": 0.01, "l2": 0.1}[norm] if step_size is None else step_size
    validation.check_positive(step_size, "step_size")
    if eps is not None:
        validation.check_positive(eps, "eps")
    validation.check_count(max_queries, "max_queries")
    if random_start and (eps is None or generator is None):
        raise ValueError(
            f"random_start=True needs eps and a generator, got eps={eps}, generator={generator}; "
            "pass e.g. eps=0.1, generator=torch.Generator(x.device).manual_seed(0)."
        )
    validation.check_generator(generator, x.device)
    settings = dict(norm=norm, eps=eps, step_size=step_size, max_queries=max_queries)
    x = x.detach()  # a caller's graph must not reach the result
    counter, misclassified, _, grad = start(model, x, y, None if random_start else log_probability)
    x_adv, success, active = x.clone(), ~misclassified, misclassified.clone()
    for step in range(max_queries):
        index = active.nonzero()[:, 0]
        if len(index) == 0:
            break
        x_i = x[index]  # (n, C, H, W)
        if random_start and step == 0:
            delta = _random_delta(x_i, norm, eps, generator)
        else:
            delta = x_adv[index] - x_i + step_size * _direction(grad[index], norm)
        candidate = (x_i + _project(delta, norm, eps)).clamp(0, 1)
        correct, value, x_in = forward_with_grad(
            counter, candidate, y[index], index, log_probability
        )
        grad[index] = input_gradient(value, x_in, ~correct & (step < max_queries - 1))
        x_adv[index], success[index], active[index] = candidate, correct, ~correct
    return finish(counter, x, x_adv, success, misclassified, f"iterative_{norm}", settings)


def deepfool(
    model: Model,
    x: Tensor,
    y: Tensor,
    *,
    overshoot: float = 0.05,
    max_queries: int = 50,
    num_refine_steps: int = 0,
    refine_overshoot: float = 0.02,
) -> Explanation:
    """Targeted DeepFool: step to the linearized boundary of y and the strongest wrong class.

    Args:
        model, x (N, C, H, W) in [0, 1], y (N,): the classifier, images and true labels.
        overshoot: the perturbation is lengthened by this fraction past the linear boundary.
        max_queries: candidates per image; a miss re-linearizes the margin at the candidate.
        num_refine_steps, refine_overshoot: then shrink each success as ``refine`` does.
    Returns: an ``Explanation``. Each step is the shortest one inside [0, 1] that makes the
        linearized margin positive; each candidate costs one query and one backward pass.
    """
    validation.check_non_negative(overshoot, "overshoot")
    validation.check_count(max_queries, "max_queries")
    validation.check_count(num_refine_steps, "num_refine_steps", minimum=0)
    validation.check_non_negative(refine_overshoot, "refine_overshoot")
    settings = dict(overshoot=overshoot, max_queries=max_queries)
    x = x.detach()  # a caller's graph must not reach the result
    counter, misclassified, value, grad = start(model, x, y, margin)
    x_adv, success, active = x.clone(), ~misclassified, misclassified.clone()
    for step in range(max_queries):
        index = active.nonzero()[:, 0]
        if len(index) == 0:
            break
        x_i, point = x[index], x_adv[index]  # (n, C, H, W)
        target = _boundary_point(point, grad[index], value[index], anchor=point)
        candidate = (x_i + (1 + overshoot) * (target - x_i)).clamp(0, 1)
        correct, new_value, x_in = forward_with_grad(counter, candidate, y[index], index, margin)
        need = (~correct & (step < max_queries - 1)) | (correct & (num_refine_steps > 0))
        grad[index] = input_gradient(new_value, x_in, need)
        value[index] = new_value.detach()
        x_adv[index], success[index], active[index] = candidate, correct, ~correct
    if num_refine_steps == 0:
        return finish(counter, x, x_adv, success, misclassified, "deepfool", settings)
    settings.update(num_refine_steps=num_refine_steps, refine_overshoot=refine_overshoot)
    rows = success & misclassified
    state = (x_adv, value, grad)
    x_adv, success = _refine_loop(
        counter, x, y, state, success, rows, num_refine_steps, refine_overshoot
    )
    return finish(counter, x, x_adv, success, misclassified, "deepfool_refined", settings)


def refine(
    model: Model,
    x: Tensor,
    y: Tensor,
    x_adv: Tensor,
    *,
    num_steps: int = 20,
    overshoot: float = 0.02,
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
    validation.check_images(x_adv, "x_adv")
    if x_adv.shape != x.shape or x_adv.device != x.device or x_adv.dtype != x.dtype:
        raise ValueError(
            f"x_adv must match x in shape, device and dtype; got {tuple(x_adv.shape)} "
            f"{x_adv.device} {x_adv.dtype} for x {tuple(x.shape)} {x.device} {x.dtype}."
        )
    settings = dict(num_steps=num_steps, overshoot=overshoot)
    x = x.detach()  # a caller's graph must not reach the result
    counter, misclassified, value, grad = start(model, x, y, None)
    index = misclassified.nonzero()[:, 0]
    point = torch.where(misclassified[:, None, None, None], x_adv, x)
    success = ~misclassified
    if len(index):
        correct, new_value, x_in = forward_with_grad(counter, point[index], y[index], index, margin)
        grad[index] = input_gradient(new_value, x_in, torch.full_like(correct, num_steps > 0))
        value[index], success[index] = new_value.detach(), correct
    state = (point, value, grad)
    x_out, success = _refine_loop(
        counter, x, y, state, success, misclassified, num_steps, overshoot
    )
    return finish(counter, x, x_out, success, misclassified, "refine", settings)


def explain(
    model: Model, x: Tensor, y: Tensor, method: str = "deepfool", **settings: object
) -> Explanation:
    """Explain why ``model`` misclassifies ``x`` (N, C, H, W) with a method of ``METHODS``.

    Args:
        model, x, y: as for every method; method: "iterative_linf" and "iterative_l2" run
            ``iterative_gradient``, "deepfool" and "deepfool_refined" (20 refinement steps by
            default) run ``deepfool``; settings: keyword arguments for that function.
    Returns: its ``Explanation``.
    """
    validation.check_choice(method, "method", METHODS)
    methods = {
        "iterative_linf": partial(iterative_gradient, norm="linf"),
        "iterative_l2": partial(iterative_gradient, norm="l2"),
        "deepfool": deepfool,
        "deepfool_refined": partial(deepfool, num_refine_steps=20),
    }
    return methods[method](model, x, y, **settings)


def project_to_halfspace(anchor: Tensor, grad: Tensor, bound: Tensor) -> Tensor:
    """Point nearest to ``anchor`` in {z in [0, 1]^D : grad·z >= bound}, exactly.

    Args: ``anchor`` (n, D) in [0, 1], ``grad`` (n, D), ``bound`` (n,). The answer is
    clip(anchor + lam * grad, 0, 1) for the smallest lam >= 0 that reaches ``bound``; an
    unreachable bound gives the corner of the box that maximizes grad·z.
    """
    face = (grad > 0).to(anchor.dtype)  # each coordinate moves toward this face of the box
    moving = grad != 0
    breaks = torch.where(moving, (face - anchor) / torch.where(moving, grad, 1), torch.inf)
    breaks, order = breaks.sort(1)  # lam at which each coordinate reaches its face, (n, D)
    squares = grad.gather(1, order) ** 2
    gains = ((face - anchor) * grad).gather(1, order)
    slope = squares.flip(1).cumsum(1).flip(1)  # d(grad·z)/d(lam) just before each break
    start = (grad * anchor).sum(1)  # grad·anchor, (n,)
    after = torch.where(breaks.isfinite(), breaks * (slope - squares), 0)
    reached = start[:, None] + gains.cumsum(1) + after  # grad·z at each break, (n, D)
    passed = (reached < bound[:, None]).sum(1, keepdim=True)  # breaks before the answer
    last = (passed - 1).clamp(min=0)
    lam0 = torch.where(passed > 0, breaks.gather(1, last), 0).squeeze(1)
    reached0 = torch.where(passed > 0, reached.gather(1, last), start[:, None]).squeeze(1)
    slope0 = torch.cat([slope, slope.new_zeros(len(slope), 1)], 1).gather(1, passed).squeeze(1)
    lam = lam0 + (bound - reached0).clamp(min=0) / slope0
    lam = torch.where(bound <= start, 0, lam)[:, None]
    return torch.where(moving, (anchor + lam * grad).clamp(0, 1), anchor)


def _boundary_point(point: Tensor, grad: Tensor, value: Tensor, anchor: Tensor) -> Tensor:
    """Nearest point to ``anchor`` where the margin linearized at ``point`` reaches TINY·|grad|."""
    grad_flat = grad.flatten(1)  # (n, D)
    bound = (grad_flat * point.flatten(1)).sum(1) - value + TINY * grad_flat.norm(dim=1)
    return project_to_halfspace(anchor.flatten(1), grad_flat, bound).view_as(anchor)


def _refine_loop(counter, x, y, state, success, rows, num_steps, overshoot):
    """Refine ``rows`` (N,) for ``num_steps``; return the best (x_adv, success).

    ``state`` = (point, value, grad): the last candidates (N, C, H, W), their margins (N,) and
    gradients, updated in place. From a correct point, slide a fraction ``alpha`` of the way to
    the point of its linearized boundary nearest ``x`` (``alpha`` halves after a miss and grows
    after a hit); from a wrong one, take a DeepFool step back. Keep the smallest correct one.
    """
    point, value, grad = state
    x_adv = point.clone()
    best = torch.where(success, (x_adv - x).flatten(1).norm(dim=1), torch.inf)
    right, alpha = success.clone(), x.new_ones(len(x))  # (N,) each
    index = rows.nonzero()[:, 0]
    for step in range(num_steps if len(index) else 0):
        x_i, point_i, value_i, grad_i = x[index], point[index], value[index], grad[index]
        slid = right[index]  # (n,) which rows slide this step
        toward_x = _boundary_point(point_i, grad_i, value_i, anchor=x_i)
        toward_point = _boundary_point(point_i, grad_i, value_i, anchor=point_i)
        slide = point_i + alpha[index][:, None, None, None] * (toward_x - point_i)
        back = (point_i + (1 + overshoot) * (toward_point - point_i)).clamp(0, 1)
        candidate = torch.where(slid[:, None, None, None], slide, back)
        correct, new_value, x_in = forward_with_grad(counter, candidate, y[index], index, margin)
        grad[index] = input_gradient(
            new_value, x_in, torch.full_like(correct, step < num_steps - 1)
        )
        point[index], value[index], right[index] = candidate, new_value.detach(), correct
        grown = torch.where(correct, (alpha[index] * 1.5).clamp(max=1), alpha[index] / 2)
        alpha[index] = torch.where(slid, grown, alpha[index])
        l2 = (candidate - x_i).flatten(1).norm(dim=1)
        better = correct & (l2 < best[index])
        x_adv[index[better]], best[index[better]] = candidate[better], l2[better]
        success[index[better]] = True
    return x_adv, success


def _direction(grad: Tensor, norm: str) -> Tensor:
    if norm == "linf":
        return grad.sign()
    return grad / grad.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None, None]


def _project(delta: Tensor, norm: str, eps: float | None) -> Tensor:
    if eps is None:
        return delta
    if norm == "linf":
        return delta.clamp(-eps, eps)
    scale = (eps / delta.flatten(1).norm(dim=1).clamp(min=1e-12)).clamp(max=1)
    return delta * scale[:, None, None, None]


def _random_delta(x: Tensor, norm: str, eps: float, generator: torch.Generator) -> Tensor:
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
    return eps * (noise if norm == "linf" else _direction(noise, "l2"))


__all__ = [
    "METHODS",
    "Explanation",
    "QueryCounter",
    "deepfool",
    "explain",
    "iterative_gradient",
    "log_probability",
    "margin",
    "project_to_halfspace",
    "refine",
]
