"""Iterative gradient steps: the simplest inverted adversarial example.

Each step moves every image still misclassified along the gradient of an objective, by default
log p(y) (``goal="fix"``), in L∞ (the gradient's sign, as iterative FGSM) or L2 (its
direction), optionally within a ball of radius ``eps``; each candidate costs one query. With
``goal="fool"`` and the cross-entropy it is FGSM and PGD's step (``attacks.forward``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from helpers import geometry, objectives, validation
from helpers.engine import Model, Run
from helpers.objectives import Objective, log_probability
from helpers.records import Explanation


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
    goal: str = "fix",
    objective: Objective | None = None,
    stop_at_success: bool = True,
    index: Tensor | None = None,
) -> Explanation:
    """Iterative FGSM (linf) or L2 gradient steps, one query each, up ``objective``: by default
    log p(y) to fix a mistake (``goal="fix"``), the cross-entropy of y to fool a right answer
    (``goal="fool"``, as FGSM and PGD do); any callable of that shape will do.

    Args:
        model, x (N, C, H, W) in [0, 1], y (N,): the classifier, images and true labels.
        norm: "linf" steps along the gradient's sign, "l2" along its direction.
        eps: radius of the ball the perturbation must stay in; None: only [0, 1] binds.
        step_size: length of a step (default 0.01 for linf, 0.1 for L2).
        max_queries: candidates per image; random_start: draw the first one in the eps ball
            (linf) or on its sphere (L2) with ``generator``.
        stop_at_success: stop each image at its first success (else attack every image, the
            ones already there too, for every step, and keep the last candidate, as
            adversarial training does).
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
    settings = dict(norm=norm, eps=eps, step_size=step_size, max_queries=max_queries)
    if objective is None:
        objective = log_probability if goal == "fix" else objectives.cross_entropy
    validation.check_images(x, "x")
    validation.check_generator(generator, x.device)
    validation.check_callable(objective, "objective")
    first = None if random_start else objective
    attack_all = not stop_at_success
    with Run(
        model,
        x,
        y,
        goal=goal,
        objective=first,
        index=index,
        attack_all=attack_all,
        max_queries=max_queries,
    ) as run:
        x, grad = run.x, run.grad  # grad (N, C, H, W): of the objective at the last candidate
        for step in range(max_queries):
            rows = run.active() if stop_at_success else run.attacked.nonzero()[:, 0]
            if len(rows) == 0:
                break
            x_i = x[rows]  # (n, C, H, W)
            if random_start and step == 0:
                delta = geometry.random_in_ball(x_i, norm, eps, generator)
            else:
                delta = run.x_adv[rows] - x_i + step_size * geometry.direction(grad[rows], norm)
            candidate = (x_i + geometry.project_to_ball(delta, norm, eps)).clamp(0, 1)
            more = step < max_queries - 1
            need = _gradient_for(misses=more, hits=more and not stop_at_success)
            probe = run.query(candidate, rows, objective, need_grad=need)
            grad[rows] = probe.grad
            run.keep(probe)
        return run.finish(f"iterative_{norm}", settings)


def _gradient_for(misses: bool, hits: bool) -> Callable[[Tensor, Tensor], Tensor]:
    """Which rows need a gradient, as a function of the (n,) mask of rows that reached the goal
    (and their values): the gradient of a miss steers the next step, that of a hit starts
    refinement."""
    return lambda reached, value: (~reached & misses) | (reached & hits)


__all__ = ["iterative_gradient"]
