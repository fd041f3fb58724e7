"""Defences: train on perturbed images, or clean the input before the model sees it.

Training defences are per-batch transforms for ``training.train`` (no second training loop):
Gaussian noise; fast adversarial training with FGSM from a random start (Wong, Rice, Kolter
2020); PGD adversarial training (Madry et al. 2018). Input cleaning: ``BitDepth`` rounds each
pixel to a few levels, which hides gradients (Athalye, Carlini, Wagner 2018); ``Purifier``
replaces the image by the closest one a GAN's generator makes (Defense-GAN, Samangouei et al.
2018). ``StraightThrough`` is the BPDA view of any cleaner, its answer on the forward pass and
the identity on the backward pass, that an adaptive attacker uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from helpers import attacks, generative, generators, runtime, validation
from helpers.training import Transform

DEFENCES = ("standard", "noise", "fgsm_rs", "pgd")


def gaussian_noise(std: float, generator: torch.Generator | None = None) -> Transform:
    """Add N(0, std²) noise to each pixel, then clip to [0, 1]."""
    validation.check_positive(std, "std")

    def transform(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        device = x.device if generator is None else generator.device  # drawn where it lives
        noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
        return (x + std * noise.to(x.device)).clamp(0, 1)

    return transform


def adversarial(attack: Callable[..., Any]) -> Transform:
    """Replace each batch by ``attack(model, x, y).x_adv``, the attack run in eval mode."""

    def transform(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        with runtime.eval_mode(model):
            return attack(model, x, y).x_adv.detach()

    return transform


def fgsm_random_start(eps: float, generator: torch.Generator | None = None) -> Transform:
    """Wong et al.'s fast adversarial training: δ uniform in [−eps, eps], one signed step of
    1.25 eps, clipped to the ball and to [0, 1]; every image takes its step."""
    return adversarial(
        lambda model, x, y: attacks.forward.pgd(
            model,
            x,
            y,
            eps=eps,
            step_size=1.25 * eps,
            num_steps=1,
            generator=generator,
            stop_at_success=False,
        )
    )


def pgd_training(
    eps: float,
    num_steps: int = 40,
    step_size: float = 0.01,
    generator: torch.Generator | None = None,
) -> Transform:
    """Madry et al.'s PGD adversarial training: every batch replaced by its PGD examples."""
    return adversarial(
        lambda model, x, y: attacks.forward.pgd(
            model,
            x,
            y,
            eps=eps,
            step_size=step_size,
            num_steps=num_steps,
            generator=generator,
            stop_at_success=False,
        )
    )


class BitDepth(nn.Module):
    """Round each pixel to one of 2^bits levels; ``straight_through`` passes gradients on as if
    nothing had been rounded (BPDA), so gradient attacks see through it."""

    def __init__(self, bits: int, *, straight_through: bool = False) -> None:
        super().__init__()
        validation.check_count(bits, "bits")
        self.levels, self.straight_through = 2**bits - 1, straight_through

    def forward(self, x: Tensor) -> Tensor:
        rounded = torch.round(x * self.levels) / self.levels
        return x + (rounded - x).detach() if self.straight_through else rounded


class StraightThrough(nn.Module):
    """BPDA (Athalye et al. 2018): ``cleaner``'s output on the forward pass, the identity on the
    backward pass, so a gradient attack sees through any cleaner, differentiable or not."""

    def __init__(self, cleaner: nn.Module) -> None:
        super().__init__()
        self.cleaner = cleaner

    def forward(self, x: Tensor) -> Tensor:
        return x + (self.cleaner(x) - x).detach()


class Purifier(nn.Module):
    """Defense-GAN: replace each image by the closest one ``gan``'s generator makes
    (``generative.project`` with these settings, from the same random starts at every call,
    so the defence is a function of its input). No gradient reaches the input through it: the
    projection is an inner optimization, not a layer."""

    def __init__(
        self,
        gan: generators.GAN,
        *,
        num_steps: int = 50,
        num_restarts: int = 1,
        lr: float = 0.4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        validation.check_count(num_steps, "num_steps")
        validation.check_count(num_restarts, "num_restarts")
        self.gan, self.seed = gan, seed
        self.settings = {"num_steps": num_steps, "num_restarts": num_restarts, "lr": lr}

    def forward(self, x: Tensor) -> Tensor:
        starts = torch.Generator().manual_seed(self.seed)
        projected = generative.project(self.gan, x.detach(), generator=starts, **self.settings).x
        return projected + 0 * x  # in the graph, with a zero gradient (as rounding's is)


def cleaned(
    model: nn.Module, cleaner: int | nn.Module, *, straight_through: bool = False
) -> nn.Module:
    """``model`` behind an input cleaner, in the model's mode and device: ``cleaner`` is a
    module (a ``Purifier``), or an int, the bits of a ``BitDepth``; ``straight_through`` wraps
    it in ``StraightThrough`` (BPDA gradients, the same answers)."""
    if isinstance(cleaner, bool) or not isinstance(cleaner, int | nn.Module):
        raise TypeError(f"cleaner must be a number of bits or an nn.Module, got {cleaner!r}")
    cleaner = BitDepth(cleaner) if isinstance(cleaner, int) else cleaner
    if straight_through:
        cleaner = StraightThrough(cleaner)
    return nn.Sequential(cleaner, model).train(model.training)


def make_transform(defence: str, settings: dict[str, Any], generator: torch.Generator):
    """The training transform of ``defence`` (None for "standard") with its ``settings``, the
    keyword arguments of its function (``std``; ``eps``; ``eps``, ``num_steps``, ``step_size``)."""
    validation.check_choice(defence, "defence", DEFENCES)
    functions = {"noise": gaussian_noise, "fgsm_rs": fgsm_random_start, "pgd": pgd_training}
    if defence == "standard":
        if settings:
            raise TypeError(f"the standard model takes no settings, got {sorted(settings)}")
        return None
    return functions[defence](**settings, generator=generator)  # a missing one: a TypeError


__all__ = [
    "DEFENCES",
    "BitDepth",
    "Purifier",
    "StraightThrough",
    "adversarial",
    "cleaned",
    "fgsm_random_start",
    "gaussian_noise",
    "make_transform",
    "pgd_training",
]
