"""Decoy MNIST (Ross, Hughes and Doshi-Velez 2017, "Right for the Right Reasons"): a shortcut
that explanations reveal, and the input-gradient penalty that trains it away.

Each training digit gets a small grey patch in a random corner whose shade encodes its label
(1 - 0.1 * label, the paper's 255 - 25 * label); test digits get a patch of random shade. A CNN
trained on the patched digits reads the patch and fails on the test.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from helpers import validation
from helpers.data import Split

Penalty = Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]  # (model, x, y, logits) -> ()


def _check_size(size: int, shape: tuple[int, ...]) -> None:
    validation.check_count(size, "size")
    if size > min(shape[-2:]):
        raise ValueError(
            f"size={size} is larger than the images ({shape[-2]}x{shape[-1]}): a patch must fit "
            "inside the image; choose a size of a few pixels, e.g. size=4."
        )


def corner_masks(shape: tuple[int, ...], corners: Tensor, size: int) -> Tensor:
    """Boolean masks (N, 1, H, W) of a ``size`` x ``size`` square in corner ``corners`` (N,)
    (0 top left, 1 top right, 2 bottom left, 3 bottom right) of images of ``shape``."""
    _check_size(size, shape)
    height, width = shape[-2:]
    rows = torch.arange(height, device=corners.device).view(1, height, 1)
    cols = torch.arange(width, device=corners.device).view(1, 1, width)
    bottom, right = (corners // 2).view(-1, 1, 1), (corners % 2).view(-1, 1, 1)
    in_rows = torch.where(bottom == 1, rows >= height - size, rows < size)  # (N, H, 1)
    in_cols = torch.where(right == 1, cols >= width - size, cols < size)  # (N, 1, W)
    return (in_rows & in_cols).unsqueeze(1)


def all_corners(shape: tuple[int, ...], size: int) -> Tensor:
    """The mask (1, 1, H, W) of the four corner squares: wherever a patch may be."""
    return corner_masks(shape, torch.arange(4), size).any(0, keepdim=True)


def add_patches(
    split: Split, *, size: int = 4, encode_label: bool, generator: torch.Generator
) -> tuple[Split, Tensor]:
    """``split`` with a grey patch in a random corner of each image, and the patches' masks.

    Args:
        split: images (N, C, H, W) in [0, 1] with labels (N,).
        size: the patch's side in pixels (at most the image's side).
        encode_label: True: shade 1 - 0.1 * y (the shortcut, for training); False: a random
            shade from the same ten (the test, where the shortcut does not hold).
        generator: a CPU generator for the corners (and the shades when random).
    Returns:
        (the patched split, masks (N, 1, H, W) bool of each image's patch).
    """
    _check_size(size, tuple(split.x.shape))
    validation.check_generator(generator, torch.device("cpu"))
    corners = torch.randint(4, (len(split),), generator=generator)
    masks = corner_masks(tuple(split.x.shape), corners, size)
    codes = split.y if encode_label else torch.randint(10, (len(split),), generator=generator)
    shade = (1 - 0.1 * codes.float()).view(-1, 1, 1, 1)  # (N, 1, 1, 1)
    return Split(torch.where(masks, shade, split.x), split.y), masks


def region_share(delta: Tensor, masks: Tensor) -> Tensor:
    """(N,) the share of each change's |delta| (N, C, H, W) inside its region ``masks``
    (N or 1, 1, H, W); nan for an image left unchanged. Compare it with ``area_share``."""
    magnitude = delta.abs().sum(1, keepdim=True)  # (N, 1, H, W)
    inside = (magnitude * masks).flatten(1).sum(1)
    return inside / magnitude.flatten(1).sum(1)


def area_share(masks: Tensor) -> Tensor:
    """(N,) the share of the image that each mask (N, 1, H, W) covers: what ``region_share``
    would be if the change were spread evenly."""
    return masks.flatten(1).float().mean(1)


def right_reasons_penalty(masks: Tensor, weight: float) -> Penalty:
    """The "right for the right reasons" penalty for ``training.train(penalty=...)``:
    ``weight`` times the sum over the masked pixels of (d sum_k log p_k / dx)^2, averaged over
    the batch (Ross et al. 2017 penalize the summed log-probabilities of all classes, so no
    class may lean on those pixels).

    Args:
        masks: (1, 1, H, W) bool, the region the model must not use (e.g. ``all_corners``).
        weight: lambda >= 0.
    """
    validation.check_non_negative(weight, "weight")

    def penalty(model: nn.Module, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        summed = logits.log_softmax(1).sum()
        (grad,) = torch.autograd.grad(summed, x, create_graph=True)  # (N, C, H, W)
        return weight * (grad * masks.to(x.device)).pow(2).flatten(1).sum(1).mean()

    return penalty


__all__ = [
    "add_patches",
    "all_corners",
    "area_share",
    "corner_masks",
    "region_share",
    "right_reasons_penalty",
]
