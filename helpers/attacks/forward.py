"""Forward attacks: make a model that is right about an image wrong, with a small change.

The same machinery as the inverted attacks with ``goal="fool"``: the
attacked images are those the model gets right, ``success`` means "the model is now wrong",
each candidate is one query, and an image stops at its first success. FGSM (Goodfellow et al.
2015) is one signed step; PGD (Madry et al. 2018) many, from a random start, with restarts;
untargeted DeepFool (Moosavi-Dezfooli et al. 2016) steps to the nearest linearized boundary.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from helpers import validation
from helpers.attacks.deepfool import deepfool as _deepfool
from helpers.attacks.iterative import iterative_gradient
from helpers.engine import Model
from helpers.records import Explanation


def fgsm(model: Model, x: Tensor, y: Tensor, *, eps: float = 0.1, **options) -> Explanation:
    """One step of ``eps`` along the sign of the cross-entropy's gradient (L∞), one query.

    Args: model, x (N, C, H, W) in [0, 1], y (N,) true labels; eps > 0, the L∞ budget.
    Returns: an ``Explanation`` whose ``success`` says the model is now wrong.
    """
    validation.check_positive(eps, "eps")
    result = iterative_gradient(
        model, x, y, norm="linf", eps=eps, step_size=eps, max_queries=1, goal="fool", **options
    )
    return replace(result, method="fgsm", settings={"eps": eps})


def pgd(
    model: Model,
    x: Tensor,
    y: Tensor,
    *,
    eps: float = 0.1,
    norm: str = "linf",
    step_size: float | None = None,
    num_steps: int = 40,
    num_restarts: int = 1,
    generator: torch.Generator | None = None,
    stop_at_success: bool = True,
    index: Tensor | None = None,
) -> Explanation:
    """Projected gradient descent from a random start in the ``eps`` ball, with restarts.

    Args:
        model, x (N, C, H, W) in [0, 1], y (N,): the classifier, images and true labels.
        eps: radius of the ball (L∞ or L2, by ``norm``); step_size: per step, by default the
            larger of eps / 4 and Madry et al.'s 2.5 eps / num_steps, at most eps; num_steps:
            gradient steps after the random start, so num_steps + 1 queries per restart.
        num_restarts: each restart begins anew, from another random start, on the images the
            earlier ones did not fool; ``generator`` draws the starts (default: seed 0).
        stop_at_success: stop each image at its first success (else take every step: the
            strongest example for adversarial training).
    Returns: an ``Explanation``: per image, the first candidate that fooled the model (or the
        last one tried), and the queries and passes of every restart added up.
    """
    validation.check_positive(eps, "eps")
    validation.check_count(num_steps, "num_steps")
    validation.check_count(num_restarts, "num_restarts")
    if step_size is None:  # never past eps: 2.5 eps / 2 would trip the check below
        step_size = min(eps, max(eps / 4, 2.5 * eps / num_steps))
    validation.check_positive(step_size, "step_size")
    if norm == "linf" and step_size > eps and num_steps > 1:
        raise ValueError(
            f"step_size={step_size} is larger than eps={eps}: every L∞ step would be clipped "
            "to the ball at once; take step_size <= eps (e.g. eps / 4). (One step from a random "
            "start may be longer, as in fast adversarial training.)"
        )
    validation.check_images(x, "x")
    validation.check_labels(y, len(x), device=x.device)  # before y is indexed by restarts
    if index is not None:
        validation.check_labels(index, len(x), device=x.device, name="index")
    generator = generator if generator is not None else _default_generator(x.device)
    validation.check_generator(generator, x.device)
    settings = dict(eps=eps, norm=norm, step_size=step_size, max_queries=num_steps + 1)
    options = dict(random_start=True, generator=generator, goal="fool", index=index)
    options["stop_at_success"] = stop_at_success
    result = iterative_gradient(model, x, y, **options, **settings)
    for _ in range(num_restarts - 1):
        rows = (result.attacked & ~result.success).nonzero()[:, 0]  # not fooled yet
        if len(rows) == 0:
            break
        part = iterative_gradient(model, x[rows], y[rows], **{**options, "index": None}, **settings)
        result = _merge(result, part, rows)
    counts = {"num_steps": num_steps, "num_restarts": num_restarts}
    return replace(result, method=f"pgd_{norm}", settings={**settings, **counts})


def deepfool(model: Model, x: Tensor, y: Tensor, **settings) -> Explanation:
    """Untargeted DeepFool: ``attacks.deepfool`` with ``goal="fool"`` (same settings)."""
    return _deepfool(model, x, y, goal="fool", **settings)


def _merge(result: Explanation, part: Explanation, rows: Tensor) -> Explanation:
    """``result`` with rows ``rows`` replaced by ``part``'s, counts added up."""
    fields = {}
    for name in ("x_adv", "logits_adv", "success"):
        merged = getattr(result, name).clone()
        merged[rows] = getattr(part, name)
        fields[name] = merged
    for name in ("queries", "forward_passes", "backward_passes"):
        fields[name] = getattr(result, name).index_add(0, rows, getattr(part, name))
    return replace(result, **fields)


def _default_generator(device: torch.device) -> torch.Generator:
    return torch.Generator(device).manual_seed(0)


__all__ = ["deepfool", "fgsm", "pgd"]
