"""What an explanation is, and how its cost is counted.

A ``QueryCounter`` wraps the model and counts, per image, every forward pass, every query (a
forward pass on a candidate image) and every backward pass. The attacks in ``helpers.attacks``
only ever call the model through it, and return an ``Explanation`` built from its counts.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from helpers import validation

Model = Callable[[Tensor], Tensor]  # x (n, C, H, W) in [0, 1] -> logits (n, K)
Objective = Callable[[Tensor, Tensor], Tensor]  # (logits (n, K), y (n,)) -> value (n,) to raise


@dataclass(frozen=True, eq=False)
class Explanation:
    """Per-image result of an explanation attack; all tensors are on the images' device.

    Shapes: ``x_adv``, ``delta`` (N, C, H, W) with ``x_adv`` in [0, 1]; every other tensor (N,).
    ``success``: the model predicts ``y`` on ``x_adv``. ``misclassified``: it did not on ``x``
    (the other images come back untouched). ``queries``: forward passes on candidate images;
    ``forward_passes`` and ``backward_passes`` also count the pass on the original image.
    """

    x_adv: Tensor
    delta: Tensor
    success: Tensor
    misclassified: Tensor
    queries: Tensor
    forward_passes: Tensor
    backward_passes: Tensor
    l2: Tensor
    linf: Tensor
    method: str
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        """Fraction of the misclassified images that were explained (nan if there are none)."""
        return self.success[self.misclassified].float().mean().item()

    @property
    def mean_queries(self) -> float:
        """Mean number of queries per misclassified image (nan if there are none)."""
        return self.queries[self.misclassified].double().mean().item()


class QueryCounter:
    """Wrap a model and count forward passes, queries and backward passes per image.

    Call it as ``counter(x, index, query=True)``: ``x`` (n, C, H, W) are the rows ``index`` (n,)
    of the batch. A backward pass is counted for each row whose logits get a nonzero gradient.
    """

    def __init__(self, model: Model, num_images: int, device: torch.device) -> None:
        self.model = model
        self.forward_passes = torch.zeros(num_images, dtype=torch.int64, device=device)
        self.queries = torch.zeros_like(self.forward_passes)
        self.backward_passes = torch.zeros_like(self.forward_passes)

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


def forward_with_grad(
    counter: QueryCounter, x: Tensor, y: Tensor, index: Tensor, objective: Objective
) -> tuple[Tensor, Tensor, Tensor]:
    """Query the model on candidates ``x`` (n, C, H, W), the rows ``index`` (n,) of the batch.

    Returns ``correct`` (n,) bool, the objective ``value`` (n,) with its graph, and the leaf
    ``x_in`` (n, C, H, W) to pass to ``input_gradient``.
    """
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        logits = counter(x_in, index)
        value = objective(logits, y)
    return logits.argmax(1) == y, value, x_in


def input_gradient(value: Tensor, x_in: Tensor, need: Tensor) -> Tensor:
    """Gradient of ``value`` (n,) w.r.t. ``x_in`` for the rows in ``need`` (n,); zeros elsewhere."""
    if not need.any():
        return torch.zeros_like(x_in)
    (grad,) = torch.autograd.grad(value[need].sum(), x_in)
    return grad


def start(
    model: Model, x: Tensor, y: Tensor, objective: Objective | None
) -> tuple[QueryCounter, Tensor, Tensor, Tensor]:
    """Check the inputs and run the pass on the original images, which is not a query.

    Returns the counter, ``misclassified`` (N,) bool, and the objective value (N,) and its
    gradient (N, C, H, W) at ``x`` for the misclassified rows (zeros if ``objective`` is None).
    """
    validation.check_images(x, "x")
    validation.check_model(model, x.device)
    validation.check_labels(y, len(x), device=x.device)
    counter = QueryCounter(model, len(x), x.device)
    zeros = x.new_zeros(len(x))
    if len(x) == 0:
        return counter, torch.zeros_like(y, dtype=torch.bool), zeros, torch.zeros_like(x)
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        logits = counter(x_in, query=False)
        validation.check_labels(y, len(x), num_classes=logits.shape[1])
        value = (objective or _zero)(logits, y)
    correct = logits.argmax(1) == y
    need = ~correct if objective is not None else torch.zeros_like(correct)
    grad = input_gradient(value, x_in, need)
    return counter, ~correct, value.detach(), grad


def finish(
    counter: QueryCounter,
    x: Tensor,
    x_adv: Tensor,
    success: Tensor,
    misclassified: Tensor,
    method: str,
    settings: dict,
) -> Explanation:
    """Package the final images and the counter's counts into an ``Explanation``."""
    delta = x_adv - x  # (N, C, H, W)
    return Explanation(
        x_adv=x_adv,
        delta=delta,
        success=success,
        misclassified=misclassified,
        queries=counter.queries.clone(),
        forward_passes=counter.forward_passes.clone(),
        backward_passes=counter.backward_passes.clone(),
        l2=delta.flatten(1).norm(dim=1),
        linf=delta.flatten(1).abs().amax(1) if delta.numel() else x.new_zeros(len(x)),
        method=method,
        settings=settings,
    )


def _zero(logits: Tensor, y: Tensor) -> Tensor:
    return logits.new_zeros(len(logits))


def summarize(result: Explanation) -> dict[str, float]:
    """Success rate, mean and median queries, and median L2 / L∞ over the misclassified images.

    Norms are medians over the explained (successful) images; nan where there are none.
    """
    explained = result.success & result.misclassified
    queries = result.queries[result.misclassified].double()
    nan = float("nan")
    return {
        "success_rate": result.success_rate,
        "mean_queries": queries.mean().item() if len(queries) else nan,
        "median_queries": queries.median().item() if len(queries) else nan,
        "median_l2": result.l2[explained].median().item() if explained.any() else nan,
        "median_linf": result.linf[explained].median().item() if explained.any() else nan,
    }


def summary_markdown(results: dict[str, Explanation], reference_rows: dict[str, str]) -> str:
    """A Markdown table of `summarize` for each named result, then literal `reference_rows`.

    `reference_rows` maps a label to its already formatted cells, e.g. the paper's figures.
    """
    lines = [
        "| method | success | mean queries | median queries | median L2 | median L∞ |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        s = summarize(result)
        lines.append(
            f"| {name} | {s['success_rate']:.2%} | {s['mean_queries']:.2f} | "
            f"{s['median_queries']:.0f} | {s['median_l2']:.3f} | {s['median_linf']:.3f} |"
        )
    lines += [f"| {label} | {cells} |" for label, cells in reference_rows.items()]
    return "\n".join(lines)
