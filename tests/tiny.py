"""Tiny models and images shared by the tests, small enough to check answers by hand."""

import torch
from torch import nn

from helpers.records import Explanation

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


class Residual(nn.Module):
    """x + body(x), then ReLU: the skip connection of a residual block."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


def make_model(
    arch: str, seed: int, dtype: torch.dtype = torch.float32, num_classes: int = 4
) -> nn.Sequential:
    """A tiny model of one of ``ARCHS`` for (N, 1, 6, 6) images, random weights and BatchNorm
    statistics from its own generator, in eval mode; the last module is its linear layer."""
    if arch == "cnn":
        return make_cnn(seed, dtype, num_classes)
    layers = {
        "mlp": lambda: [
            nn.Flatten(),
            nn.Linear(36, 16),
            nn.ReLU(),
            nn.Linear(16, 8),
            nn.ReLU(),
            nn.Linear(8, num_classes),
        ],
        "lenet_bn": lambda: [
            nn.Conv2d(1, 3, 3, padding=1),
            nn.BatchNorm2d(3),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 3, 3, 3)
            nn.Flatten(),
            nn.Linear(27, 8),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(8, num_classes),
        ],
        "resnet": lambda: [
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            Residual(
                nn.Sequential(
                    nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1)
                )
            ),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(16, num_classes),
        ],
    }[arch]
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(*layers())
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif tensor.dim() > 1:
                tensor.copy_(
                    torch.randn(tensor.shape, generator=generator) * tensor[0].numel() ** -0.5
                )
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
    return model.to(dtype).eval()


ARCHS = ("cnn", "mlp", "lenet_bn", "resnet")


def make_bn_model(seed: int) -> nn.Module:
    """A small CNN with BatchNorm and dropout, briefly 'trained' so its statistics are not 0/1."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(4 * 36, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Linear(8, 4),
    )
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
        model.train()
        for _ in range(3):  # move the running statistics away from their initial values
            model(torch.rand(16, *SHAPE, generator=generator))
    return model


def explained(
    x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, logits: torch.Tensor, **fields
) -> Explanation:
    """A record of every image of ``x`` explained by ``x_adv`` at one query each, its answers
    ``logits`` flipped afterwards (the explanation reads the other class); ``fields`` override
    any other field (``method``, the pass counts)."""
    n = len(x)
    counts = torch.ones(n, dtype=torch.int64)
    record = {
        "index": torch.arange(n),
        "x": x,
        "y": y,
        "logits": logits,
        "x_adv": x_adv,
        "logits_adv": logits.flip(1),
        "attacked": torch.ones(n, dtype=torch.bool),
        "success": torch.ones(n, dtype=torch.bool),
        "queries": counts,
        "forward_passes": counts,
        "backward_passes": counts,
    }
    return Explanation(**{**record, **fields})
