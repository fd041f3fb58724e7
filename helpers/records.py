"""Result records: per-image tensors that keep each image's identity, sliced like a tensor.

A record holds, for N images, their ``index`` in the source split, their labels ``y``, the
model's predictions and the logits it already computed. Callers slice a record
(``mistakes[:6]``, ``result[result.success]``) and move it (``.to(device)``); they never take
it apart into parallel tensors or run the model again to rebuild what it holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

import torch
from torch import Tensor

R = TypeVar("R", bound="Record")


@dataclass(frozen=True, eq=False)
class Record:
    """Base class: every tensor field has one row per image; other fields describe the batch."""

    def __len__(self) -> int:
        return len(self.index)  # type: ignore[attr-defined]

    def __getitem__(self: R, rows: int | slice | Tensor | list[int]) -> R:
        """The records of ``rows`` (an int keeps a batch of one), every tensor sliced alike."""
        if isinstance(rows, int):
            rows = slice(rows, rows + 1 if rows != -1 else None)
        if isinstance(rows, Tensor):
            rows = rows.to(self.index.device)  # type: ignore[attr-defined]
        return self._map(lambda tensor: tensor[rows])

    def to(self: R, device: torch.device | str) -> R:
        """The same record with every tensor on ``device``."""
        return self._map(lambda tensor: tensor.to(device))

    def _map(self: R, function) -> R:
        changes = {
            f.name: function(getattr(self, f.name))
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **changes)


def concatenate(parts: Sequence[R]) -> R:
    """One record of the rows of ``parts`` (records of one type, on one device), in order:
    every tensor field joined along its first axis; the other fields are the first part's."""
    if not parts:
        raise ValueError("parts is empty: pass at least one record to concatenate")
    kinds = {type(part).__name__ for part in parts}
    if len(kinds) > 1:
        raise TypeError(f"parts must be records of one type, got {sorted(kinds)}")
    first = parts[0]
    joined = {
        f.name: torch.cat([getattr(part, f.name) for part in parts])
        for f in fields(first)
        if isinstance(getattr(first, f.name), Tensor)
    }
    return replace(first, **joined)


@dataclass(frozen=True, eq=False)
class Predictions(Record):
    """Images with their labels and the model's answer on them.

    ``index`` (N,) int64 rows of the source split; ``x`` (N, C, H, W) in [0, 1]; ``y`` (N,)
    true labels; ``logits`` (N, K) the model's output on ``x`` (for a black box: the log of
    the probabilities it answered, so ``softmax`` gives them back).
    """

    index: Tensor
    x: Tensor
    y: Tensor
    logits: Tensor

    @property
    def y_pred(self) -> Tensor:
        """(N,) the predicted class."""
        return self.logits.argmax(1)

    @property
    def probs(self) -> Tensor:
        """(N, K) the predicted probabilities."""
        return self.logits.softmax(1)

    @property
    def confidence(self) -> Tensor:
        """(N,) the probability of the predicted class."""
        return self.probs.amax(1)

    @property
    def misclassified(self) -> Tensor:
        """(N,) bool: the model's answer on ``x`` is not ``y``."""
        return self.y_pred != self.y

    def pairs(self) -> list[tuple[tuple[int, int], int]]:
        """Each (true, predicted) pair with its count, the most frequent first (ties by pair)."""
        counts = Counter(zip(self.y.tolist(), self.y_pred.tolist()))
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True, eq=False)
class Mistakes(Predictions):
    """The misclassified images of a split, most confidently wrong first (see
    ``evaluation.find_misclassified``)."""


@dataclass(frozen=True, eq=False)
class Explanation(Predictions):
    """What a method did to each image; every tensor is on the images' device.

    Besides the fields of ``Predictions`` (on the original images ``x``):
    ``x_adv`` (N, C, H, W) in [0, 1] the image each method ended on, and ``logits_adv`` (N, K)
    the model's answer there. ``attacked`` (N,) the images the method worked on (the
    misclassified ones for an explanation, the correct ones for a forward attack; the others
    come back untouched, at zero queries); ``success`` (N,) the model answers as the method
    wanted on ``x_adv``. ``queries``: answers on candidate images (the paper's cost);
    ``forward_passes`` also counts the pass on ``x``, so for a black box it is every answer it
    gave; ``backward_passes``: gradients taken through the model.
    """

    x_adv: Tensor
    logits_adv: Tensor
    attacked: Tensor
    success: Tensor
    queries: Tensor
    forward_passes: Tensor
    backward_passes: Tensor
    method: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def delta(self) -> Tensor:
        """(N, C, H, W) the change ``x_adv - x``: the explanation."""
        return self.x_adv - self.x

    @property
    def y_adv(self) -> Tensor:
        """(N,) the predicted class on ``x_adv``."""
        return self.logits_adv.argmax(1)

    @property
    def probs_adv(self) -> Tensor:
        """(N, K) the predicted probabilities on ``x_adv``."""
        return self.logits_adv.softmax(1)

    @property
    def l2(self) -> Tensor:
        """(N,) L2 norm of ``delta``."""
        return self.delta.flatten(1).norm(dim=1)

    @property
    def linf(self) -> Tensor:
        """(N,) L∞ norm of ``delta``."""
        return self.delta.flatten(1).abs().amax(1) if self.x.numel() else self.x.new_zeros(0)

    @property
    def success_rate(self) -> float:
        """Fraction of the attacked images where the method succeeded (nan if none)."""
        return self.success[self.attacked].float().mean().item()

    @property
    def mean_queries(self) -> float:
        """Mean queries per attacked image (nan if none)."""
        return self.queries[self.attacked].double().mean().item()


__all__ = ["Explanation", "Mistakes", "Predictions", "Record", "concatenate"]
