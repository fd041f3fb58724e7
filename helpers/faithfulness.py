"""Does an explanation find the cause? Measures of a map against the pixels that caused a mistake,
of the model's answer as the map's pixels come and go, and of the map's dependence on the model.

A *map* is anything that scores pixels, (N, C, H, W) or (N, 1, H, W): an attribution, or an
explanation's change ``delta``. Every measure reads its magnitude, |value| summed over channels
(``magnitude``). Against a causal ``mask`` (N, 1, H, W) bool:

- ``mass_share``: the share of the magnitude on the causal pixels (compare the mask's area);
- ``mask_auroc``: the AUROC of the pixel ranking against the mask (0.5: chance);
- ``pointing_game`` (Zhang et al. 2016): the top pixel lies within ``tolerance`` pixels
  (Chebyshev) of the mask; a map whose top is shared by several pixels hits only if they all do.

Without a mask, ``insertion_deletion`` (Petsiuk, Das, Saenko, RISE, BMVC 2018) follows the
probability of the true class as pixels are taken out (deletion) or put in (insertion) in the
map's order; and ``randomized`` with ``rank_correlation`` give Adebayo et al.'s (NeurIPS 2018)
sanity check: re-initialise the model's last layers, explain again, and compare.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from helpers import metrics, runtime, validation

SANITY_THRESHOLD = 0.5  # an explanation whose rank correlation stays at or above this fails


def magnitude(maps: Tensor) -> Tensor:
    """(N, 1, H, W): |value| summed over channels."""
    if maps.dim() != 4:
        raise ValueError(f"maps must be (N, C, H, W), got shape {tuple(maps.shape)}")
    return maps.abs().sum(1, keepdim=True)


def _check_masks(maps: Tensor, masks: Tensor) -> None:
    if masks.dtype != torch.bool or masks.shape != (len(maps), 1, *maps.shape[2:]):
        raise ValueError(
            f"masks must be bool (N, 1, H, W) = {(len(maps), 1, *maps.shape[2:])} for maps "
            f"{tuple(maps.shape)}, got {masks.dtype} {tuple(masks.shape)}"
        )


def mass_share(maps: Tensor, masks: Tensor) -> Tensor:
    """(N,) the share of each map's magnitude on its mask's pixels; nan for an all-zero map."""
    _check_masks(maps, masks)
    size = magnitude(maps).flatten(1)
    total = size.sum(1)
    inside = (size * masks.flatten(1)).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-30), torch.nan)


def mask_auroc(maps: Tensor, masks: Tensor) -> Tensor:
    """(N,) the AUROC of each map's pixel ranking (by magnitude) against its mask: the chance that
    a causal pixel outranks another, ties counting half (``metrics.auroc``)."""
    _check_masks(maps, masks)
    size, flags = magnitude(maps).flatten(1), masks.flatten(1)
    return torch.tensor([metrics.auroc(s, f) for s, f in zip(size, flags)], dtype=torch.float64)


def pointing_game(maps: Tensor, masks: Tensor, *, tolerance: int = 1) -> Tensor:
    """(N,) bool: every pixel of largest magnitude lies within ``tolerance`` pixels of the mask
    (its dilation by a (2 tolerance + 1)-pixel square); an all-zero map misses."""
    _check_masks(maps, masks)
    validation.check_count(tolerance, "tolerance", minimum=0)
    size = magnitude(maps)
    near = F.max_pool2d(masks.float(), 2 * tolerance + 1, stride=1, padding=tolerance) > 0
    top = (size == size.flatten(1).amax(1).view(-1, 1, 1, 1)) & (size > 0)
    return top.flatten(1).any(1) & ~(top & ~near).flatten(1).any(1)


@dataclass(frozen=True)
class Curves:
    """Insertion and deletion curves: the probability of the true class (N, S + 1) at each
    ``fraction`` (S + 1,) of the pixels put in or taken out, and their areas (N,)."""

    fraction: Tensor
    insertion: Tensor
    deletion: Tensor

    @property
    def insertion_auc(self) -> Tensor:
        return torch.trapezoid(self.insertion, self.fraction, dim=1)

    @property
    def deletion_auc(self) -> Tensor:
        return torch.trapezoid(self.deletion, self.fraction, dim=1)


@torch.no_grad()
def insertion_deletion(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    maps: Tensor,
    *,
    step: int = 16,
    baseline: float = 0.0,
    batch_size: int = 1000,
) -> Curves:
    """RISE's curves toward the true class y: pixels ranked by the map's magnitude (ties in
    raster order); deletion sets the top k to ``baseline`` in x, insertion starts from an
    image of ``baseline`` and puts back x's top k, for k = 0, step, 2 step, ..., H W.

    Args:
        model: the classifier; its mode is left as it was (eval inside).
        x: (N, C, H, W) in [0, 1]; y: (N,) true labels; maps: (N, C or 1, H, W).
        step: pixels added or removed between two points; baseline: the value of a removed
            pixel (0: MNIST's black background).
    Returns: ``Curves`` with S + 1 = ceil(H W / step) + 1 points from 0 to 1.
    """
    validation.check_images(x, "x")
    validation.check_labels(y, len(x), device=x.device)
    validation.check_count(step, "step")
    if maps.dim() != 4 or len(maps) != len(x) or maps.shape[2:] != x.shape[2:]:
        raise ValueError(
            f"maps must be (N, C or 1, H, W) for x {tuple(x.shape)}, got {tuple(maps.shape)}"
        )
    pixels = x.shape[2] * x.shape[3]
    counts = list(range(0, pixels, step)) + [pixels]
    order = magnitude(maps).flatten(1).argsort(dim=1, descending=True, stable=True)  # (N, H W)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(pixels).expand_as(order))
    taken = torch.stack([rank < k for k in counts], 1)  # (N, S + 1, H W): the top k
    taken = taken.view(len(x), len(counts), 1, *x.shape[2:])
    blank = torch.full_like(x, baseline)[:, None]
    deleted = torch.where(taken, blank, x[:, None])  # (N, S + 1, C, H, W)
    inserted = torch.where(taken, x[:, None], blank)
    probability = lambda images: _probability(model, images, y, batch_size)  # noqa: E731
    fraction = torch.tensor(counts, dtype=torch.float64) / pixels
    return Curves(fraction, probability(inserted), probability(deleted))


def _probability(model: nn.Module, images: Tensor, y: Tensor, batch_size: int) -> Tensor:
    """p(y) (N, S) for images (N, S, C, H, W)."""
    flat = images.flatten(0, 1)
    with runtime.eval_mode(model):
        logits = torch.cat([model(part) for part in flat.split(batch_size)])
    probs = logits.softmax(1).view(len(images), images.shape[1], -1)
    return probs.gather(2, y[:, None, None].expand(-1, images.shape[1], 1))[..., 0].double().cpu()


def rank_correlation(first: Tensor, second: Tensor) -> Tensor:
    """(N,) Spearman's rank correlation between the magnitudes of two maps of each image (ties
    get their average rank); nan where either map is constant."""
    if first.shape != second.shape:
        raise ValueError(f"the maps differ in shape: {tuple(first.shape)}, {tuple(second.shape)}")
    a, b = _ranks(magnitude(first).flatten(1)), _ranks(magnitude(second).flatten(1))
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    spread = (a.norm(dim=1) * b.norm(dim=1)).double()
    return torch.where(spread > 0, (a * b).sum(1).double() / spread.clamp(min=1e-30), torch.nan)


def _ranks(values: Tensor) -> Tensor:
    """(N, D) float64 ranks of each row, ties averaged."""
    ranks = torch.empty_like(values, dtype=torch.float64)
    for row, value in enumerate(values):
        _, inverse, counts = torch.unique(value, return_inverse=True, return_counts=True)
        ends = counts.cumsum(0).double()  # the last rank (1-based) of each distinct value
        ranks[row] = (ends - (counts.double() - 1) / 2)[inverse]
    return ranks


def randomized(model: nn.Module, num_layers: int, *, generator: torch.Generator) -> nn.Module:
    """A copy of ``model`` whose last ``num_layers`` layers with weights (in module order) are
    re-initialised (Adebayo et al.'s cascading randomization, from the top); ``model`` itself
    is untouched. Weights come from ``generator``, never the global random state."""
    validation.check_count(num_layers, "num_layers")
    validation.check_generator(generator, torch.device("cpu"))
    device = runtime.model_device(model)
    copied = copy.deepcopy(model).cpu()  # re-initialised on the CPU, whose RNG is forked
    layers = [m for m in copied.modules() if _has_own_weights(m)]
    if num_layers > len(layers):
        raise ValueError(f"num_layers={num_layers}, but the model has {len(layers)} such layers")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        for layer in layers[-num_layers:]:
            layer.reset_parameters()
    return copied.to(device)


def _has_own_weights(module: nn.Module) -> bool:
    """A layer ``randomized`` re-initialises: it has parameters of its own and can reset them."""
    return hasattr(module, "reset_parameters") and next(module.parameters(False), None) is not None


__all__ = [
    "SANITY_THRESHOLD",
    "Curves",
    "insertion_deletion",
    "magnitude",
    "mask_auroc",
    "mass_share",
    "pointing_game",
    "randomized",
    "rank_correlation",
]
