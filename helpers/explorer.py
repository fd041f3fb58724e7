"""The explorer's logic, free of widgets: which methods it offers and what one view shows.

`helpers.widgets.Explorer` draws these views; tests call `compute_view` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from helpers import attacks, blackbox, evaluation
from helpers.explanation import Explanation

# (x (1, C, H, W), y (1,), strength, max_queries) -> Explanation
ExplainFunction = Callable[[Tensor, Tensor, float, int], Explanation]


@dataclass(frozen=True)
class Method:
    """One way to explain a mistake, with the meaning and range of its strength knob."""

    name: str
    explain: ExplainFunction
    strength_name: str  # e.g. "overshoot" or "step size"
    strength_range: tuple[float, float, float]  # (min, max, step) of the slider
    strength_default: float


@dataclass(frozen=True)
class View:
    """Everything the explorer shows for one (image, method, strength, budget) choice."""

    index: int
    method: str
    strength: float
    max_queries: int
    x: Tensor  # (C, H, W) the misclassified image
    x_adv: Tensor  # (C, H, W) the candidate the method ended on
    probs: Tensor  # (K,) probabilities on x
    probs_adv: Tensor  # (K,) probabilities on x_adv
    y: int
    success: bool
    queries: int
    l2: float
    text: str  # one status line: prediction before → after, success, queries, L2


def whitebox_methods(model: nn.Module, *, num_refine_steps: int = 20) -> list[Method]:
    """The white-box methods of notebook 03, each with its strength knob."""

    def iterative(norm: str) -> ExplainFunction:
        def explain(x, y, strength, max_queries):
            return attacks.iterative_gradient(
                model, x, y, norm=norm, step_size=strength, max_queries=max_queries
            )

        return explain

    def deepfool(refine_steps: int) -> ExplainFunction:
        def explain(x, y, strength, max_queries):
            return attacks.deepfool(
                model,
                x,
                y,
                overshoot=strength,
                max_queries=max_queries,
                num_refine_steps=refine_steps,
            )

        return explain

    return [
        Method("DeepFool", deepfool(0), "overshoot", (0.0, 1.0, 0.01), 0.05),
        Method(
            f"DeepFool + {num_refine_steps} refinement steps",
            deepfool(num_refine_steps),
            "overshoot",
            (0.0, 1.0, 0.01),
            0.05,
        ),
        Method("iterative L∞", iterative("linf"), "step size", (0.002, 0.1, 0.002), 0.02),
        Method("iterative L2", iterative("l2"), "step size", (0.02, 1.0, 0.02), 0.25),
    ]


def blackbox_methods(
    black_box: blackbox.BlackBox,
    surrogate: nn.Module,
    *,
    num_shrink_steps: int = 3,
    min_radius: float = 0.2,
) -> list[Method]:
    """The black-box strategies of notebook 05; the strength is the step schedule's growth.

    Every candidate costs a query of `black_box`; directions come from `surrogate`'s gradients.
    """

    def schedule(method: str, shrink_steps: int) -> ExplainFunction:
        def explain(x, y, strength, max_queries):
            return blackbox.explain(
                black_box,
                surrogate,
                x,
                y,
                method=method,
                growth=strength,
                max_queries=max_queries,
                min_radius=min_radius,
                num_shrink_steps=shrink_steps,
            )

        return explain

    growth = ("growth", (1.1, 3.0, 0.05), 1.5)
    return [
        Method("surrogate DeepFool, step schedule", schedule("deepfool", 0), *growth),
        Method(
            f"surrogate DeepFool, schedule + {num_shrink_steps} shrink steps",
            schedule("deepfool", num_shrink_steps),
            *growth,
        ),
        Method("surrogate iterative L2, step schedule", schedule("iterative_l2", 0), *growth),
    ]


def model_probabilities(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """Softmax probabilities (N, K) of `model`, the white-box way to see its answers."""
    return lambda x: evaluation.predict_logits(model, x).softmax(1)


def compute_view(
    method: Method,
    probabilities: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    classes: Sequence[str],
    *,
    index: int,
    strength: float,
    max_queries: int,
) -> View:
    """Explain image `index` of `x` (N, C, H, W) with `method` and describe the result.

    Args:
        probabilities: maps images (n, C, H, W) to probabilities (n, K), for the bars.
        y: (N,) true labels. `strength` and `max_queries` go to the method.
    """
    if not 0 <= index < len(x):
        raise IndexError(f"index={index} is outside the {len(x)} images; pick 0..{len(x) - 1}")
    low, high, _ = method.strength_range
    if not low <= strength <= high:
        raise ValueError(f"{method.strength_name}={strength} is outside [{low}, {high}]")
    image, label = x[index : index + 1], y[index : index + 1]
    result = method.explain(image, label, strength, max_queries)
    probs, probs_adv = probabilities(torch.cat([image, result.x_adv])).detach()
    success, queries = bool(result.success.item()), int(result.queries.item())
    before, after = classes[int(probs.argmax())], classes[int(probs_adv.argmax())]
    cost = f"{queries} {'query' if queries == 1 else 'queries'}"
    outcome = f"explained in {cost}" if success else f"not explained in {cost}"
    text = (
        f"true {classes[int(label)]} · predicted {before} → {after} · {outcome} · "
        f"L2 {result.l2.item():.3f}"
    )
    return View(
        index=index,
        method=method.name,
        strength=strength,
        max_queries=max_queries,
        x=image[0],
        x_adv=result.x_adv[0],
        probs=probs,
        probs_adv=probs_adv,
        y=int(label),
        success=success,
        queries=queries,
        l2=result.l2.item(),
        text=text,
    )
