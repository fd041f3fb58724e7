"""Tiny models and images shared by the tests, small enough to check answers by hand."""

import torch
from torch import nn

SHAPE = (1, 6, 6)  # (C, H, W)


def make_cnn(seed: int, dtype: torch.dtype = torch.float32, num_classes: int = 4) -> nn.Module:
    """A two-layer CNN with weights drawn from its own generator, in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, num_classes)
    )
    with torch.no_grad():
        for param in model.parameters():
            scale = param[0].numel() ** -0.5 if param.dim() > 1 else 0.1
            param.copy_(torch.randn(param.shape, generator=generator) * scale)
    return model.to(dtype).eval()


def make_batch(
    seed: int, num_images: int, dtype: torch.dtype = torch.float32, num_classes: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 6, 6) with some pixels exactly 0 or 1, and random labels (N,)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((num_images, *SHAPE), generator=generator, dtype=dtype)
    x = torch.where(x < 0.2, 0.0, torch.where(x > 0.8, 1.0, x))
    y = torch.randint(0, num_classes, (num_images,), generator=generator)
    return x, y


def linear_model(weight: list[list[float]], bias: list[float]) -> nn.Module:
    """logits = weight @ x.flatten() + bias, in float64."""
    layer = nn.Linear(len(weight[0]), len(weight), dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    return nn.Sequential(nn.Flatten(), layer).eval()
