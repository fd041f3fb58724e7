"""The black box: the provider's model answers queries and nothing else.

``BlackBox`` is the only way the end user touches the provider's model in this process: it
answers labels, or probabilities when asked, counts every image, refuses past its budget and
never exposes gradients. Anything with the same interface (``check_black_box``), such as a
client of a model served over HTTP, serves the black-box methods of ``helpers.attacks`` as well.
``Answers`` presents a black box to the engine as a model whose logits are its answers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from helpers import runtime, validation

Model = Callable[[Tensor], Tensor]  # x (n, C, H, W) in [0, 1] -> logits (n, K)
INTERFACE = ("labels", "probabilities", "queries", "queries_left", "answers_probabilities")


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
        bits: if given (8, as APIs take PNG or JPEG images), it answers about each image rounded
            to ``2**bits`` levels per pixel (``quantize``), as a served model would.
    """

    def __init__(
        self,
        model: Model,
        *,
        max_queries: int | None = None,
        probabilities: bool = True,
        bits: int | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(
                f"model must be a torch.nn.Module or a callable, got {type(model).__name__}."
            )
        if max_queries is not None:
            validation.check_count(max_queries, "max_queries", minimum=0)
        if bits is not None:
            validation.check_count(bits, "bits")
        self._answer = _closed_over(model)  # the model lives only inside this closure
        self.bits = bits
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

    def quantize(self, x: Tensor) -> Tensor:
        """The images it answers about in place of ``x`` (N, C, H, W): ``x`` itself, or rounded
        to ``bits`` bits a pixel."""
        return x if self.bits is None else quantize(x, self.bits)

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
        x = x.detach() if self.bits is None else quantize(x.detach(), self.bits)
        logits = self._answer(x)
        validation.check_logits(logits, len(x))
        self._queries += len(x)
        return logits.detach()


def quantize(x: Tensor, bits: int = 8) -> Tensor:
    """Images ``x`` (N, C, H, W) in [0, 1] rounded to the nearest of ``2**bits`` levels per
    pixel, as an 8-bit PNG stores them (k / 255 for 8 bits)."""
    validation.check_count(bits, "bits")
    levels = 2**bits - 1
    return (x * levels).round() / levels


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

    def quantize(self, x: Tensor) -> Tensor:
        """The images the black box answers about in place of ``x`` (see ``engine.Run``)."""
        quantize = getattr(self.black_box, "quantize", None)
        return x if quantize is None else quantize(x)

    def __call__(self, x: Tensor) -> Tensor:
        if self.black_box.answers_probabilities:
            return self.black_box.probabilities(x).to(x.dtype).log()
        labels = self.black_box.labels(x)
        return torch.nn.functional.one_hot(labels, self.num_classes).to(x.dtype).log()


def check_black_box(black_box: object, name: str = "black_box") -> None:
    """Check that ``black_box`` answers as a ``BlackBox`` does: ``labels(x)``,
    ``probabilities(x)``, ``queries``, ``queries_left`` and ``answers_probabilities``."""
    missing = [attribute for attribute in INTERFACE if not hasattr(black_box, attribute)]
    if missing:
        raise TypeError(
            f"{name} must be a BlackBox or have its interface ({', '.join(INTERFACE)}); "
            f"a {type(black_box).__name__} lacks {', '.join(missing)}. Wrap a model with "
            "blackbox.BlackBox(model)."
        )


__all__ = [
    "INTERFACE",
    "Answers",
    "BlackBox",
    "QueryBudgetExceeded",
    "check_black_box",
    "quantize",
]
