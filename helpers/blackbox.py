"""Explanations through a black box: the provider's model answers queries and nothing else.

``BlackBox`` is the only way the end user touches the provider's model: it answers labels, or
probabilities when asked, counts every image, refuses past its budget and never exposes
gradients. ``explain`` runs any white-box method of ``helpers.attacks`` on a surrogate model
(``helpers.surrogate``) and checks each candidate with one black-box query.
"""

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from helpers import attacks, evaluation, validation
from helpers.explanation import Explanation, Model, QueryCounter, finish


class QueryBudgetExceeded(RuntimeError):
    """The black box was asked about more images than its budget has left; nothing was counted."""


class BlackBox:
    """The provider's model behind an API: answers per image, counted, within a budget.

    Args:
        model: the provider's classifier, x (n, C, H, W) in [0, 1] -> logits (n, K). No
            attribute is the model (a closure keeps it) and it runs under ``torch.no_grad``.
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
            return evaluation.predict_logits(model, x)  # its device, eval mode, mode restored
        return model(x)

    return answer


def explain(
    black_box: BlackBox,
    surrogate: Model,
    x: Tensor,
    y: Tensor,
    *,
    method: str = "deepfool",
    max_queries: int = 20,
    growth: float = 1.5,
    min_radius: float = 0.2,
    num_shrink_steps: int = 0,
    **settings: object,
) -> Explanation:
    """Explain the black box's mistakes on ``x`` with directions from the surrogate's gradients.

    Args:
        black_box: answers labels; every candidate costs one query (the pass on ``x`` does not).
        surrogate: a differentiable stand-in for the black box, x -> logits (n, K).
        x (N, C, H, W) in [0, 1], y (N,): the images and their true labels.
        method, settings: the white-box method of ``attacks.METHODS`` run on the surrogate, and
            its keyword arguments; its explanation is the first candidate (at least
            ``min_radius`` away in L2).
        max_queries: black-box queries per image, shrink steps included.
        growth: after a miss the next candidate is ``growth`` times farther from ``x``, stepping
            along the surrogate's gradient of (logit of y - logit of the class the black box
            just answered), taken at the missed candidate.
        num_shrink_steps: after a hit, bisect on the segment from ``x`` to it (one query each).
    Returns: an ``Explanation``; ``backward_passes`` is 0, since the black box gives no gradient.
        If the black box's budget runs out, it warns and returns what it found so far.
    """
    if not isinstance(black_box, BlackBox):
        raise TypeError(f"black_box must be a BlackBox, got {type(black_box).__name__}.")
    validation.check_images(x, "x")
    validation.check_model(surrogate, x.device, "surrogate")
    validation.check_labels(y, len(x), device=x.device)
    validation.check_choice(method, "method", attacks.METHODS)
    validation.check_count(max_queries, "max_queries")
    validation.check_positive(growth, "growth")
    if growth <= 1:
        raise ValueError(f"growth must be > 1, so that each miss steps farther; got {growth}.")
    validation.check_positive(min_radius, "min_radius")
    validation.check_count(num_shrink_steps, "num_shrink_steps", minimum=0)
    options = dict(method=method, max_queries=max_queries, growth=growth, min_radius=min_radius)
    options.update(num_shrink_steps=num_shrink_steps, **settings)
    x = x.detach()  # a caller's graph must not reach the result
    num_classes = _num_classes(surrogate, x)
    validation.check_labels(y, len(x), num_classes=num_classes)
    counter = QueryCounter(_one_hot(black_box, num_classes), len(x), x.device)
    answer = counter(x, query=False).argmax(1) if len(x) else y.clone()  # (N,)
    misclassified = answer != y
    x_adv, success = x.clone(), ~misclassified

    wrong = misclassified.nonzero()[:, 0]
    first = attacks.explain(surrogate, x[wrong], y[wrong], method, **settings)
    point, radius = x.clone(), x.new_zeros(len(x))  # (N, C, H, W), (N,)
    point[wrong], radius[wrong] = first.x_adv, first.l2.clamp(min=min_radius)
    active = misclassified.clone()
    for _ in range(max_queries):
        index = active.nonzero()[:, 0]
        if len(index) == 0:
            break
        candidate = _step_out(
            surrogate, x[index], point[index], y[index], answer[index], radius[index]
        )
        labels = _ask(counter, candidate, index)
        if labels is None:
            break
        correct = labels == y[index]
        point[index], answer[index], x_adv[index] = candidate, labels, candidate
        success[index], active[index] = correct, ~correct
        radius[index] = torch.where(correct, radius[index], radius[index] * growth)

    low = x.new_zeros(len(x))  # bisection bounds on t in x + t (x_adv - x)
    high, delta = x.new_ones(len(x)), x_adv - x
    for _ in range(num_shrink_steps):
        index = (success & misclassified & (counter.queries < max_queries)).nonzero()[:, 0]
        if len(index) == 0:
            break
        middle = (low[index] + high[index]) / 2
        candidate = (x[index] + middle[:, None, None, None] * delta[index]).clamp(0, 1)
        labels = _ask(counter, candidate, index)
        if labels is None:
            break
        correct = labels == y[index]
        high[index] = torch.where(correct, middle, high[index])
        low[index] = torch.where(correct, low[index], middle)
        x_adv[index[correct]] = candidate[correct]
    return finish(counter, x, x_adv, success, misclassified, f"blackbox_{method}", options)


def _num_classes(surrogate: Model, x: Tensor) -> int:
    if len(x) == 0:
        return 2
    with torch.no_grad():
        return validation.check_logits(surrogate(x[:1]), 1)


def _one_hot(black_box: BlackBox, num_classes: int) -> Model:
    """The black box as a model whose 'logits' are the one-hot labels it answers."""
    return lambda x: F.one_hot(black_box.labels(x), num_classes).to(x.dtype)


def _ask(counter: QueryCounter, candidate: Tensor, index: Tensor) -> Tensor | None:
    """The black box's labels (n,) for the rows ``index``; None once its budget is spent."""
    try:
        return counter(candidate, index).argmax(1)
    except QueryBudgetExceeded as error:
        warnings.warn(f"stopped early, results so far are kept: {error}", stacklevel=3)
        return None


def _step_out(
    surrogate: Model, x: Tensor, point: Tensor, y: Tensor, other: Tensor, radius: Tensor
) -> Tensor:
    """Step from ``point`` (n, C, H, W) along the surrogate's gradient of z_y - z_other until
    ``radius`` away from ``x`` in L2 (before clipping to [0, 1]); points already there stay."""
    distance = (point - x).flatten(1).norm(dim=1)  # (n,)
    short = distance < radius
    if not short.any():
        return point
    with torch.enable_grad():
        z_in = point[short].detach().requires_grad_(True)
        logits = surrogate(z_in)
        pair = logits.gather(1, y[short, None]) - logits.gather(1, other[short, None])
        (grad,) = torch.autograd.grad(pair.sum(), z_in)
    norm = grad.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None, None]
    step = (radius[short] - distance[short])[:, None, None, None] * grad / norm
    stepped = point.clone()
    stepped[short] = (point[short] + step).clamp(0, 1)
    return stepped


@dataclass(frozen=True, eq=False)
class Similarity:
    """How alike two explanations are, per image (N,): the cosine of their perturbations, and
    the fraction of the top-k pixels (largest |delta|, summed over channels) they share."""

    cosine: Tensor
    overlap: Tensor


def similarity(delta: Tensor, reference: Tensor, *, top_k: int = 50) -> Similarity:
    """Compare perturbations ``delta`` and ``reference`` (N, C, H, W) image by image.

    A zero perturbation has cosine 0. Two random choices of k of the H·W pixels share k/(H·W).
    """
    if delta.shape != reference.shape or delta.dim() != 4:
        raise ValueError(
            f"delta and reference must both be (N, C, H, W), got {tuple(delta.shape)} and "
            f"{tuple(reference.shape)}."
        )
    validation.check_count(top_k, "top_k")
    if top_k > delta[0, 0].numel():
        raise ValueError(f"top_k={top_k} exceeds the {delta[0, 0].numel()} pixels of an image.")
    a, b = delta.flatten(1), reference.flatten(1)
    cosine = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-12)
    top_a = delta.abs().sum(1).flatten(1).topk(top_k, dim=1).indices  # (N, k)
    top_b = reference.abs().sum(1).flatten(1).topk(top_k, dim=1).indices
    shared = (top_a[:, :, None] == top_b[:, None, :]).any(2).sum(1)
    return Similarity(cosine=cosine, overlap=shared.to(delta.dtype) / top_k)


__all__ = ["BlackBox", "QueryBudgetExceeded", "Similarity", "explain", "similarity"]
