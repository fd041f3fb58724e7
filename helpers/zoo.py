"""Models the course does not train itself: an MLP, a LeNet-style CNN, a small ResNet and a tiny
MLP-Mixer (the black-box benchmark's provider of a family that no surrogate candidate list holds).

Each takes pixels in [0, 1] (normalization inside, as in `models.SmallCNN`), returns logits, and
keeps its constructor arguments in ``config``, so `checkpoints.save` and `checkpoints.load`
round-trip it. `helpers.architectures` lists them by name.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from helpers import models


class MLP(models.Classifier):
    """Fully connected ReLU layers on the flattened image, 784-256-128-10 by default.

    Args:
        shape: image_shape, num_classes, mean, std, as `models.Classifier` takes them.
        hidden: widths of the hidden layers.
    Input (N, C, H, W) in [0, 1]; output logits (N, K).
    """

    def __init__(self, *shape: Any, hidden: tuple[int, ...] = (256, 128), **named: Any) -> None:
        super().__init__(*shape, hidden=list(hidden), **named)
        image_shape, num_classes = self.image_shape, self.num_classes
        widths = [image_shape[0] * image_shape[1] * image_shape[2], *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for width_in, width_out in zip(widths, widths[1:]):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
        self.layers = nn.Sequential(*layers, nn.Linear(widths[-1], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.normalize(x))


class LeNetBN(models.Classifier):
    """LeNet-5's layout (5x5 convolutions 6 and 16 wide, max pooling, then 120 and 84 units)
    with BatchNorm after every hidden layer and dropout before the last two linear layers.

    Args:
        shape: image_shape (H and W even and at least 12), num_classes, mean, std, as
            `models.Classifier` takes them. dropout: the probability of dropping a unit.
    Input (N, C, H, W) in [0, 1]; output logits (N, K).
    """

    def __init__(self, *shape: Any, dropout: float = 0.3, **named: Any) -> None:
        super().__init__(*shape, dropout=dropout, **named)
        channels, height, width = image_shape = self.image_shape
        num_classes = self.num_classes
        if height % 2 or width % 2 or min(height, width) < 12:
            raise ValueError(f"image_shape={image_shape}: H and W must be even and at least 12")
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 6, H/2, W/2)
            nn.Conv2d(6, 16, 5),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 16, H/4 - 2, W/4 - 2) rounded down: 5x5 for 28x28
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * ((height // 2 - 4) // 2) * ((width // 2 - 4) // 2), 120),
            nn.BatchNorm1d(120),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(120, 84),
            nn.BatchNorm1d(84),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BatchNorm layers plus a shortcut (a strided 1x1 conv where the shape
    changes), then ReLU: (N, C_in, H, W) -> (N, C_out, H / stride, W / stride)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(channels_out),
            nn.ReLU(),
            nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels_out),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels_out),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class SmallResNet(models.Classifier):
    """A stem conv, three residual blocks (``width``, 2, 4 times as wide, the last two at
    stride 2), global average pooling and a linear layer.

    Args:
        shape: image_shape, num_classes, mean, std, as `models.Classifier` takes them.
        width: channels of the stem and the first block.
    Input (N, C, H, W) in [0, 1]; output logits (N, K).
    """

    def __init__(self, *shape: Any, width: int = 16, **named: Any) -> None:
        super().__init__(*shape, width=width, **named)
        image_shape, num_classes = self.image_shape, self.num_classes
        self.features = nn.Sequential(
            nn.Conv2d(image_shape[0], width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),  # (N, width, H, W)
            ResidualBlock(width, width),
            ResidualBlock(width, 2 * width, stride=2),  # (N, 2 width, H/2, W/2)
            ResidualBlock(2 * width, 4 * width, stride=2),  # (N, 4 width, H/4, W/4)
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # (N, 4 width)
        )
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


class PatchMixer(models.Classifier):
    """A tiny MLP-Mixer (Tolstikhin et al. 2021): ``patch`` x ``patch`` patches embedded in
    ``dim`` channels, then ``depth`` blocks that mix across patches and across channels, a
    LayerNorm, the mean over patches and a linear layer.

    Args:
        shape: image_shape (H and W divisible by ``patch``), num_classes, mean, std, as
            `models.Classifier` takes them.
        patch: patch side in pixels; dim: channels per patch; depth: number of blocks.
    Input (N, C, H, W) in [0, 1]; output logits (N, K).
    """

    def __init__(
        self, *shape: Any, patch: int = 4, dim: int = 64, depth: int = 2, **named: Any
    ) -> None:
        super().__init__(*shape, patch=patch, dim=dim, depth=depth, **named)
        channels, height, width = image_shape = self.image_shape
        if height % patch or width % patch:
            raise ValueError(f"image_shape={image_shape}: H and W must be multiples of {patch=}")
        tokens = (height // patch) * (width // patch)
        self.embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.blocks = nn.ModuleList(MixerBlock(tokens, dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(self.normalize(x)).flatten(2).transpose(1, 2)  # (N, tokens, dim)
        for block in self.blocks:
            z = block(z)
        return self.head(self.norm(z).mean(1))


class MixerBlock(nn.Module):
    """An MLP across the tokens, then one across the channels, each after a LayerNorm and with
    a shortcut: (N, tokens, dim) -> (N, tokens, dim)."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.norm1, self.tokens = nn.LayerNorm(dim), _mlp(tokens)
        self.norm2, self.channels = nn.LayerNorm(dim), _mlp(dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z + self.tokens(self.norm1(z).transpose(1, 2)).transpose(1, 2)
        return z + self.channels(self.norm2(z))


def _mlp(width: int) -> nn.Sequential:
    """Two linear layers, twice as wide inside, with a GELU between: (..., width) -> same."""
    return nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))


__all__ = ["LeNetBN", "MLP", "MixerBlock", "PatchMixer", "ResidualBlock", "SmallResNet"]
