"""The provider's model answering 8-bit images, and the answer each plan gives."""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from torch import Tensor, nn

from helpers import runtime, validation
from helpers.serving.plans import Plan
from helpers.serving.protocol import DECIMALS


class Predictor:
    """Any classifier x (N, C, H, W) in [0, 1] -> logits (N, K), answering 8-bit pixels.

    Args:
        model: a torch.nn.Module (run in eval mode under no_grad, its mode restored after each
            batch, on its own device and dtype) or a callable.
        input_shape: (C, H, W) of the images it takes.
    One batch at a time (a lock): uvicorn answers on several threads, and switching a module's
    mode is not thread-safe.
    """

    def __init__(
        self, model: nn.Module | Callable[[Tensor], Tensor], input_shape: tuple[int, int, int]
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be a torch.nn.Module or a callable, got {model!r}.")
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(f"input_shape must be (C, H, W), got {input_shape}.")
        self.model, self.input_shape = model, tuple(int(n) for n in input_shape)
        self._lock = threading.Lock()
        self.num_classes = self.probabilities(
            torch.zeros(1, *self.input_shape, dtype=torch.uint8)
        ).shape[1]

    def probabilities(self, pixels: Tensor) -> Tensor:
        """Pixels (N, C, H, W) uint8 -> class probabilities (N, K) float64 on the CPU."""
        model = self.model
        with self._lock, torch.no_grad():
            if isinstance(model, nn.Module):
                parameter = next(model.parameters(), None)
                dtype = torch.float32 if parameter is None else parameter.dtype
                x = pixels.to(runtime.model_device(model), dtype) / 255  # exactly k/255
                with runtime.eval_mode(model):
                    logits = model(x)
            else:
                logits = model(pixels.float() / 255)
        validation.check_logits(logits, len(pixels), "the model's logits")
        return logits.double().softmax(1).cpu()


def answers(probabilities: Tensor, plan: Plan) -> list[dict]:
    """Each image's answer under ``plan`` from its probabilities (N, K): {"labels": [best,
    ...]} with the plan's top_k classes, best first (ties: the lower class first), and for a
    "probabilities" plan their probabilities rounded to ``DECIMALS`` decimals."""
    top_k = min(plan.top_k, probabilities.shape[1])
    ranked, order = probabilities.sort(dim=1, descending=True, stable=True)
    labels = order[:, :top_k].tolist()
    if plan.answer != "probabilities":
        return [{"labels": row} for row in labels]
    rounded = [[round(p, DECIMALS) for p in row] for row in ranked[:, :top_k].tolist()]
    return [{"labels": row, "probabilities": p} for row, p in zip(labels, rounded)]
