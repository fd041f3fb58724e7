"""Seeds, devices, threads, model modes and the folders the course writes to."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent  # the repository (a clone, or an editable install)
T = TypeVar("T")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch once, and return a CPU `torch.Generator` for explicit use.

    Call it from a notebook's parameters cell, never on import.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def default_device() -> torch.device:
    """The best device available now: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None` or "auto" means `default_device()`; anything else goes through `torch.device`."""
    if device is None or device == "auto":
        return default_device()
    return torch.device(device)


def set_num_threads(num_threads: int | None) -> int:
    """Set torch's CPU threads (`None` keeps torch's choice); return the number in use."""
    if num_threads is not None:
        if not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
        torch.set_num_threads(num_threads)
    return torch.get_num_threads()


def artifacts_dir() -> Path:
    """Where notebooks save models and figures: $COURSE_ARTIFACTS, else `<repo>/artifacts`."""
    path = Path(os.environ.get("COURSE_ARTIFACTS", ROOT / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def eval_mode(model: T) -> Iterator[T]:
    """Put `model` in eval mode for the block, then give every submodule back the mode it had.

    Module by module, not `model.train(was_training)`: a model in training mode whose BatchNorm
    layers the user froze with `.eval()` keeps them frozen. A model that is no `nn.Module` (a
    plain function of x) has no mode and is left alone.
    """
    if not isinstance(model, nn.Module):
        yield model
        return
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a parameter-free model)."""
    return next(model.parameters(), torch.empty(0)).device
