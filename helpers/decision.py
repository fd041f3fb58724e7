"""What a decision-based search knows (``helpers.boundary``): the black box's labels, counted per
image within each image's budget (``Labels``), and each image's best point so far (``Points``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from helpers import blackbox, engine
from helpers.blackbox import BlackBox


class Labels:
    """The black box's answers for rows of a batch, counted per image, each within its budget.

    ``y`` (N,): the classes an explanation must reach; ``spent`` (N,): queries each image has
    used already; ``max_queries``: each image's budget, those included.
    """

    def __init__(self, black_box: BlackBox, num_classes: int, y: Tensor, spent: Tensor,
                 max_queries: int) -> None:  # fmt: skip
        answers = blackbox.Answers(black_box, num_classes)
        self.counter = engine.QueryCounter(answers, len(y), y.device)
        self.y, self.spent, self.max_queries = y, spent, max_queries
        self.num_classes = num_classes
        self.exhausted = False  # the black box's own budget ran out

    def used(self, rows: Tensor) -> Tensor:
        """(n,) queries the images ``rows`` (n,) have spent, the surrogate-guided step's too."""
        return self.spent[rows] + self.counter.queries[rows]

    def left(self, rows: Tensor) -> Tensor:
        """(n,) queries the images ``rows`` (n,) may still spend."""
        return self.max_queries - self.used(rows)

    def ask(self, points: Tensor, rows: Tensor, cost: int = 1) -> tuple[Tensor, Tensor]:
        """Answers on ``points`` (n·cost, C, H, W), ``cost`` of them for each image of ``rows``
        (n,), for the images whose budgets cover them. Returns (answered (n,) mask, their
        logits (m, cost, K)); only the label of an answer guides the search."""
        keep = self.left(rows) >= cost
        capacity = self.counter.capacity
        if capacity is not None and capacity < int(keep.sum()) * cost:
            self.exhausted = True
            keep &= keep.cumsum(0) <= capacity // cost
        points = points.unflatten(0, (len(rows), cost))[keep].flatten(0, 1)
        if len(points) == 0:
            return keep, points.new_zeros(0, cost, self.num_classes)
        with torch.no_grad():
            logits = self.counter(points, rows[keep].repeat_interleave(cost))
        return keep, logits.unflatten(0, (-1, cost))

    def reached(self, rows: Tensor, logits: Tensor) -> Tensor:
        """(m, cost) whether the black box answered y[rows] (m,) in ``logits`` (m, cost, K)."""
        return logits.argmax(2) == self.y[rows, None]


@dataclass(eq=False)
class Points:
    """Each image's best point so far, ``x_adv`` (N, C, H, W), always answered y, and the black
    box's answer there, ``logits_adv`` (N, K); updated in place."""

    x: Tensor
    x_adv: Tensor
    logits_adv: Tensor
    other: Tensor  # (N,) a class the black box answered on the far side of the boundary
    progress: list | None = None  # if a list, each improvement is appended (see ``Track``)

    def __post_init__(self) -> None:
        # what the random probes said so far: the sum of their signed directions (N, C, H, W),
        # how many there were, and how many of those on both sides agreed with the prior
        self.memory, self.probes = torch.zeros_like(self.x), self.x.new_zeros(len(self.x))
        self.agree, self.mixed = self.x.new_zeros(len(self.x)), self.x.new_zeros(len(self.x))
        self.gap = self.x.new_zeros(len(self.x))  # x_adv to the last point answered otherwise

    def distance(self, rows: Tensor) -> Tensor:
        return (self.x_adv[rows] - self.x[rows]).flatten(1).norm(dim=1)

    def keep(self, rows: Tensor, candidate: Tensor, logits: Tensor, better: Tensor,
             queries: Tensor) -> None:  # fmt: skip
        """Take ``candidate`` (n, C, H, W) for the ``rows`` (n,) where ``better`` (n,) and it is
        nearer x than the point it replaces; ``queries`` (n,): each image's count once answered
        there, for the progress (if it is kept)."""
        nearer = (candidate - self.x[rows]).flatten(1).norm(dim=1) < self.distance(rows)
        better = better & nearer
        self.x_adv[rows[better]], self.logits_adv[rows[better]] = candidate[better], logits[better]
        if self.progress is not None and better.any():
            self.progress.append((rows[better], queries[better], candidate[better], logits[better]))


__all__ = ["Labels", "Points"]
