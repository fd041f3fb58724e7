"""Checkpoints: a model's weights, its architecture's name and config, and metadata that says
what it was trained on, saved and loaded by name through ``helpers.architectures``."""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from helpers import architectures

CHECKPOINT_FORMAT = "misclassification-explained/checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or made for another model or dataset."""


def fingerprint(model: nn.Module) -> str:
    """A short hash of ``model``'s weights and buffers: a model trained against another one
    (a GAN against its judge) records which, so a retrained judge retrains it too."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save(model: nn.Module, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Save weights, architecture and `metadata` (dataset, seed, accuracy, ...) to `path`."""
    name = type(model).__name__
    known = architectures.ARCHITECTURES
    if known.get(name) is not type(model) or not hasattr(model, "config"):
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


def load(
    path: str | Path, *, expected: dict[str, Any] | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model saved by `save` (with `weights_only=True`), in eval mode on the CPU.

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
        raise CheckpointError(f"{path} was not written by checkpoints.save ({CHECKPOINT_FORMAT})")
    metadata = record["metadata"]
    for key, value in (expected or {}).items():
        if metadata.get(key) != value:
            raise CheckpointError(
                f"{path} has {key}={metadata.get(key)!r} but {value!r} is expected: "
                "retrain, or load the matching checkpoint"
            )
    name = record["architecture"]
    if name not in architectures.ARCHITECTURES:
        raise CheckpointError(f"{path} holds an unknown architecture {name!r}")
    model = architectures.build(name, record["config"])
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
        model, metadata = load(path, expected=expected)
        print(f"Loaded {path}.")
        return model.to(device), metadata
    except CheckpointError as error:
        print(f"Cannot use the checkpoint: {error}\nRebuilding it instead (the next run loads it).")
    model, metadata = build()
    save(model, path, metadata)
    return model.to(device).eval(), metadata


__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "fingerprint", "load", "load_or_build", "save"]
