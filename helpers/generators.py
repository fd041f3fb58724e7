"""Generative models of notebook 15: a conditional DCGAN-sized generator, an image-to-image
counterfactual generator, and a discriminator that is also a (K + 1)-way classifier.

A ``GAN`` holds one generator and its discriminator, and keeps their settings in ``config``, so
`checkpoints.save` and `checkpoints.load` round-trip the pair as one file (`helpers.architectures`
lists it). Images are (N, C, H, W) in [0, 1] in and out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from helpers import models, validation

KINDS = ("conditional", "counterfactual")  # what a GAN's generator makes: from noise, from images


class ConditionalGenerator(nn.Module):
    """DCGAN-style (Radford et al. 2016): (z, class) -> a linear layer to (2 width, H/4, W/4),
    then two transposed convolutions that double the size, BatchNorm and ReLU, a sigmoid out.

    Args: image_shape (C, H, W; H, W divisible by 4), num_classes K, latent_size (z's length),
        width (channels of the last hidden layer).
    """

    def __init__(
        self, image_shape: tuple[int, int, int], num_classes: int, latent_size: int, width: int
    ) -> None:
        super().__init__()
        channels, height, width_px = image_shape
        self.num_classes, self.latent_size = num_classes, latent_size
        self.start = (2 * width, height // 4, width_px // 4)
        self.project = nn.Sequential(
            nn.Linear(latent_size + num_classes, 2 * width * (height // 4) * (width_px // 4)),
            nn.BatchNorm1d(2 * width * (height // 4) * (width_px // 4)),
            nn.ReLU(),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),  # (N, width, H/2, W/2)
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),  # (N, C, H, W)
            nn.Sigmoid(),
        )

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        """Images (N, C, H, W) in [0, 1] from latent codes z (N, latent_size) and classes y (N,)."""
        hidden = self.project(torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], 1))
        return self.upsample(hidden.view(len(z), *self.start))


class CounterfactualGenerator(nn.Module):
    """Image-to-image (a small U-Net): (x, target class) -> x + a change in [-1, 1], clipped to
    [0, 1]. The class enters at half size as a learned bias per channel; one skip connection
    keeps x's detail.

    Args: image_shape (C, H, W; H, W even), num_classes K, width (channels at full size).
    """

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, width: int) -> None:
        super().__init__()
        channels = image_shape[0]
        self.down = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),  # (N, 2 width, H/2, W/2)
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.embed = nn.Embedding(num_classes, 2 * width)  # the target class, per channel
        self.middle = nn.Sequential(
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),  # (N, width, H, W)
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        self.out = nn.Conv2d(width + channels, channels, 3, padding=1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """The counterfactual (N, C, H, W) in [0, 1] of images x toward classes y (N,)."""
        hidden = self.down(x) + self.embed(y)[:, :, None, None]  # (N, 2 width, H/2, W/2)
        change = torch.tanh(self.out(torch.cat([self.middle(hidden), x], 1)))
        return (x + change).clamp(0, 1)


class Discriminator(models.Classifier):
    """A classifier and a discriminator in one (Bischof et al. 2023; Salimans et al. 2016):
    K logits for the real classes and one for "fake". ``forward`` returns the K class logits,
    so it is a classifier like any other (attacks, evaluation); ``scores`` all K + 1.

    Args: shape as `models.Classifier` takes it (H, W divisible by 4); width (first conv's
        channels); dropout (after each conv, as DCGAN discriminators on small data need).
    """

    def __init__(self, *shape: Any, width: int = 32, dropout: float = 0.3, **named: Any) -> None:
        super().__init__(*shape, width=width, dropout=dropout, **named)
        channels, height, width_px = self.image_shape
        self.layers = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),  # (N, width, H/2, W/2)
            nn.LeakyReLU(0.2),
            nn.Dropout(dropout),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),  # (N, 2 width, H/4, W/4)
            nn.LeakyReLU(0.2),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(2 * width * (height // 4) * (width_px // 4), self.num_classes + 1),
        )

    def scores(self, x: Tensor) -> Tensor:
        """(N, K + 1) logits: the K classes, then "fake" (index K)."""
        return self.layers(self.normalize(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.scores(x)[:, : self.num_classes]

    def fakeness(self, x: Tensor) -> Tensor:
        """(N,) the probability that each image is generated, not real."""
        return self.scores(x).softmax(1)[:, self.num_classes]


class GAN(nn.Module):
    """A generator of ``kind`` ("conditional": from noise and a class; "counterfactual": from
    an image and a target class) and its `Discriminator`, saved and loaded as one checkpoint.

    Args:
        image_shape (C, H, W; H, W divisible by 4), num_classes, mean, std: the data's, as
            `models.Classifier` takes them; kind: one of ``KINDS``.
        latent_size: length of z (conditional only); width: the generator's channels;
        discriminator_width: the discriminator's.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        mean: tuple[float, ...] = (0.5,),
        std: tuple[float, ...] = (0.25,),
        *,
        kind: str = "conditional",
        latent_size: int = 32,
        width: int = 32,
        discriminator_width: int = 32,
    ) -> None:
        super().__init__()
        validation.check_choice(kind, "kind", KINDS)
        validation.check_count(latent_size, "latent_size")
        validation.check_count(width, "width")
        validation.check_count(discriminator_width, "discriminator_width")
        image_shape = tuple(image_shape)
        if image_shape[1] % 4 or image_shape[2] % 4:
            raise ValueError(f"image_shape={image_shape}: H and W must be divisible by 4")
        self.kind, self.num_classes, self.latent_size = kind, num_classes, latent_size
        self.config = {
            "image_shape": list(image_shape),
            "num_classes": num_classes,
            "mean": list(mean),
            "std": list(std),
            "kind": kind,
            "latent_size": latent_size,
            "width": width,
            "discriminator_width": discriminator_width,
        }
        if kind == "conditional":
            self.generator = ConditionalGenerator(image_shape, num_classes, latent_size, width)
        else:
            self.generator = CounterfactualGenerator(image_shape, num_classes, width)
        self.discriminator = Discriminator(
            image_shape, num_classes, tuple(mean), tuple(std), width=discriminator_width
        )

    def sample(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Images (N, C, H, W) of classes ``y`` (N,) from random latent codes (conditional)."""
        if self.kind != "conditional":
            raise TypeError("sample() needs a conditional GAN; a counterfactual GAN maps images")
        validation.check_labels(y, len(y), self.num_classes, name="y")
        device = next(self.parameters()).device
        drawn_on = generator.device if generator is not None else device
        z = torch.randn(len(y), self.latent_size, generator=generator, device=drawn_on)
        return self.generator(z.to(device), y.to(device))
