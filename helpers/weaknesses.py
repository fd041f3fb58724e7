"""Systematic weaknesses: mistakes of one (true -> predicted) pair whose explanations agree, and
training data aimed at them (augmented digits of the true class) or at nothing in particular
(the same number of augmented digits of any class, the baseline)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from helpers import validation
from helpers.data import Split
from helpers.records import Explanation


@dataclass(frozen=True)
class PairAgreement:
    """One (true, predicted) pair: its number of explained mistakes and how much their changes
    agree (the mean cosine between the changes of every two of them; nan below two)."""

    pair: tuple[int, int]
    count: int
    agreement: float


def pair_agreement(result: Explanation) -> list[PairAgreement]:
    """Group the explanations by (true -> predicted) pair and measure their agreement, the most
    frequent pair first. Args: result, explanations of mistakes (only successes count)."""
    result = result[result.success & result.attacked]
    out = []
    for pair, count in result.pairs():
        rows = (result.y == pair[0]) & (result.y_pred == pair[1])
        out.append(PairAgreement(pair, count, mean_cosine(result.delta[rows])))
    return out


def mean_cosine(delta: Tensor) -> float:
    """The mean cosine between every two of the changes ``delta`` (n, C, H, W) (nan below two):
    of one pair, their agreement; of all the mistakes mixed, the agreement to expect anyway."""
    unit = F.normalize(delta.flatten(1), dim=1)  # (n, C*H*W)
    cosine = unit @ unit.T  # (n, n)
    off = ~torch.eye(len(delta), dtype=torch.bool, device=cosine.device)
    return cosine[off].mean().item() if len(delta) > 1 else math.nan


def augment(
    x: Tensor, generator: torch.Generator, *, max_angle: float = 15.0, max_shift: float = 2.0
) -> Tensor:
    """Each image (N, C, H, W) rotated by up to ``max_angle`` degrees and shifted by up to
    ``max_shift`` pixels, at random (a CPU ``generator``); the result stays in [0, 1]."""
    validation.check_images(x, "x")
    n, _, height, width = x.shape
    draws = torch.rand(n, 3, generator=generator) * 2 - 1  # (N, 3) in [-1, 1)
    angle = draws[:, 0] * math.radians(max_angle)
    shift = draws[:, 1:] * 2 * max_shift / torch.tensor([width, height])  # in grid units
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False).clamp(0, 1)


def extra_data(
    split: Split, num_images: int, generator: torch.Generator, classes: list[int] | None = None
) -> Split:
    """``num_images`` augmented copies of training images drawn at random (with replacement)
    from ``classes`` (None: from every class), with their labels."""
    validation.check_count(num_images, "num_images")
    allowed = torch.ones(len(split), dtype=torch.bool)
    if classes is not None:
        allowed = torch.isin(split.y, torch.tensor(classes))
    rows = allowed.nonzero()[:, 0]
    if len(rows) == 0:
        raise ValueError(f"no training image of classes={classes}")
    picked = rows[torch.randint(len(rows), (num_images,), generator=generator)]
    return Split(augment(split.x[picked], generator), split.y[picked])


def joined(split: Split, extra: Split) -> Split:
    """The training split with the extra images after it."""
    return Split(torch.cat([split.x, extra.x]), torch.cat([split.y, extra.y]))


__all__ = ["PairAgreement", "augment", "extra_data", "joined", "mean_cosine", "pair_agreement"]
