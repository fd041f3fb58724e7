"""The course's CNN (normalization inside, so attacks work in pixel space) and its checkpoints."""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

CHECKPOINT_FORMAT = "misclassification-explained/checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or made for another model or dataset."""


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


ARCHITECTURES: dict[str, type[Classifier]] = {"SmallCNN": SmallCNN, "SurrogateCNN": SurrogateCNN}
GENERATIVE: dict[str, type[nn.Module]] = {}  # helpers.generators adds its GAN: not classifiers


def fingerprint(model: nn.Module) -> str:
    """A short hash of ``model``'s weights and buffers: a model trained against another one
    (a GAN against its judge) records which, so a retrained judge retrains it too."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_checkpoint(model: nn.Module, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Save weights, architecture and `metadata` (dataset, seed, accuracy, ...) to `path`."""
    name = type(model).__name__
    known = {**ARCHITECTURES, **GENERATIVE}
    if name not in known or not hasattr(model, "config"):
        raise ValueError(f"cannot save a {name}: only {sorted(known)} can be checkpointed")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    record = {
        "format": CHECKPOINT_FORMAT,
        "architecture": name,
        "config": model.config,
        "metadata": dict(metadata),
        "state_dict": state,
    }
    torch.save(record, path)
    return path


def load_checkpoint(
    path: str | Path, *, expected: dict[str, Any] | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model saved by `save_checkpoint` (with `weights_only=True`), in eval mode on the CPU.

    Args:
        path: the checkpoint file.
        expected: metadata the checkpoint must match, e.g. {"dataset": "mnist-bundled"}.
    Returns:
        (model, metadata). Raises `CheckpointError` on a missing, corrupt or mismatched file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path} yet")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path} is not a readable checkpoint ({error})") from error
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} was not written by save_checkpoint ({CHECKPOINT_FORMAT})")
    metadata = record["metadata"]
    for key, value in (expected or {}).items():
        if metadata.get(key) != value:
            raise CheckpointError(
                f"{path} has {key}={metadata.get(key)!r} but {value!r} is expected: "
                "retrain, or load the matching checkpoint"
            )
    from helpers import generators, zoo  # noqa: F401  (they register their models; import this)

    architecture = {**ARCHITECTURES, **GENERATIVE}.get(record["architecture"])
    if architecture is None:
        raise CheckpointError(f"{path} holds an unknown architecture {record['architecture']!r}")
    config = record["config"]
    model = architecture(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    try:
        model.load_state_dict(record["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: weights do not fit {record['architecture']} ({error})"
        ) from error
    return model.eval(), metadata


def load_or_build(
    path: str | Path,
    *,
    expected: dict[str, Any],
    build: Callable[[], tuple[nn.Module, dict[str, Any]]],
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Load the checkpoint at `path` if its metadata matches `expected`, else call `build()`
    for (model, metadata) and save that. Prints which happened, and why; returns
    (model in eval mode on `device`, metadata)."""
    try:
        model, metadata = load_checkpoint(path, expected=expected)
        print(f"Loaded {path}.")
        return model.to(device), metadata
    except CheckpointError as error:
        print(f"Cannot use the checkpoint: {error}\nRebuilding it instead (the next run loads it).")
    model, metadata = build()
    save_checkpoint(model, path, metadata)
    return model.to(device).eval(), metadata
