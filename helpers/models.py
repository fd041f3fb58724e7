"""The course's CNNs, normalization inside so that attacks work in pixel space: the provider's
`SmallCNN` and the end user's `SurrogateCNN` (more architectures: `helpers.zoo`; all of them by
name: `helpers.architectures`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Normalize(nn.Module):
    """Subtract the per-channel mean and divide by the std: pixels in [0, 1] go in."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        if len(mean) != len(std) or min(std) <= 0:
            raise ValueError(f"need one mean and one positive std per channel, got {mean}, {std}")
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """What every course model shares: images (N, C, H, W) with pixels in [0, 1] in, normalized
    inside (so attacks work in pixel space), logits (N, K) out, and a ``config`` from which
    ``load_checkpoint`` rebuilds it.

    Args:
        image_shape: (C, H, W) of the inputs; num_classes: K, the number of logits.
        mean, std: per-channel statistics of the training images (for `Normalize`).
        settings: the subclass's own keyword arguments, kept in ``config``.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        mean: tuple[float, ...] = (0.5,),
        std: tuple[float, ...] = (0.25,),
        **settings: Any,
    ) -> None:
        super().__init__()
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        self.config = {"image_shape": list(image_shape), "num_classes": num_classes}
        self.config.update(mean=list(mean), std=list(std), **settings)
        self.normalize = Normalize(tuple(mean), tuple(std))


class SmallCNN(Classifier):
    """Two conv blocks and two linear layers: about 99% on full MNIST, seconds per epoch on a CPU.

    Args:
        shape: image_shape (C, H, W; H and W divisible by 4), num_classes, mean, std, as
            `Classifier` takes them.
        width: channels of the first conv layer (the second has twice as many).
    Input (N, C, H, W) in [0, 1]; output logits (N, K).
    """

    def __init__(self, *shape: Any, width: int = 32, **named: Any) -> None:
        super().__init__(*shape, width=width, **named)
        channels, height, width_px = image_shape = self.image_shape
        if height % 4 or width_px % 4:
            raise ValueError(f"image_shape={image_shape}: H and W must be divisible by 4")
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, width, H/2, W/2)
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 2 width, H/4, W/4)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * (height // 4) * (width_px // 4), 128),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(128, self.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


class SurrogateCNN(Classifier):
    """The end user's surrogate: unlike `SmallCNN`, 5×5 strided convolutions and no pooling.

    Args:
        shape: image_shape, num_classes, mean, std (of the user's own images), as `Classifier`
            takes them.
        width: channels of the first conv layer (the second has twice as many).
        hidden: units of the hidden linear layer.
    Input (N, C, H, W) in [0, 1]; output logits (N, K).
    """

    def __init__(self, *shape: Any, width: int = 16, hidden: int = 100, **named: Any) -> None:
        super().__init__(*shape, width=width, hidden=hidden, **named)
        channels, height, width_px = self.image_shape
        num_classes = self.num_classes
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 5, stride=2, padding=2),
            nn.ReLU(),  # (N, width, ceil(H/2), ceil(W/2))
            nn.Conv2d(width, 2 * width, 5, stride=2, padding=2),
            nn.ReLU(),  # (N, 2 width, ceil(H/4), ceil(W/4))
        )
        flat = 2 * width * -(-height // 4) * -(-width_px // 4)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


__all__ = ["Classifier", "Normalize", "SmallCNN", "SurrogateCNN"]
