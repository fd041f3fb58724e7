"""Input checks shared by the white-box attacks and the black-box wrapper.

Each check raises a ``ValueError`` or ``TypeError`` that names the argument, the value it got
and the fix. Nothing is clipped or coerced: a check only looks.
"""

import numbers
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor


def check_images(x: object, name: str = "x") -> None:
    """Check that ``x`` is a batch of images: a finite float tensor (N, C, H, W) in [0, 1]."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of images, got {type(x).__name__}.")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor with pixels in [0, 1], got dtype {x.dtype}; "
            f"convert it with {name}.float() / 255 if it holds 0-255 integers."
        )
    if x.dim() != 4:
        raise ValueError(
            f"{name} must have shape (N, C, H, W), got shape {tuple(x.shape)}; "
            f"add a batch dimension with {name}.unsqueeze(0) for a single image."
        )
    if x.numel() == 0:
        return
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values; remove or repair those images.")
    low, high = x.min().item(), x.max().item()
    if low < 0 or high > 1:
        raise ValueError(
            f"{name} must hold pixels in [0, 1], got values in [{low:.4g}, {high:.4g}]; "
            "pass unnormalized images and keep the normalization inside the model."
        )


def check_labels(
    y: object,
    num_images: int,
    num_classes: int | None = None,
    device: torch.device | None = None,
    name: str = "y",
) -> None:
    """Check that ``y`` is an int64 tensor (num_images,) of classes in [0, num_classes)."""
    if not isinstance(y, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of labels, got {type(y).__name__}.")
    if y.dtype != torch.int64:
        raise TypeError(
            f"{name} must have dtype torch.int64, got {y.dtype}; convert it with {name}.long()."
        )
    if y.shape != (num_images,):
        raise ValueError(
            f"{name} must have shape ({num_images},), one label per image, "
            f"got shape {tuple(y.shape)}."
        )
    if device is not None and y.device != device:
        raise ValueError(
            f"{name} is on {y.device} but the images are on {device}; "
            f"move it with {name}.to(x.device)."
        )
    if num_classes is not None and y.numel() > 0:
        low, high = y.min().item(), y.max().item()
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"{name} must hold classes in [0, {num_classes - 1}] (the model has "
                f"{num_classes} logits), got labels in [{low}, {high}]."
            )


def check_logits(logits: object, num_images: int, name: str = "logits") -> int:
    """Check that a model returned a float tensor (num_images, K) with K >= 2; return K."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"the model must return a tensor of {name}, got {type(logits).__name__}.")
    if not logits.is_floating_point() or logits.dim() != 2 or logits.shape[0] != num_images:
        raise ValueError(
            f"the model must return float {name} of shape ({num_images}, K), got "
            f"shape {tuple(logits.shape)} and dtype {logits.dtype}; flatten its output."
        )
    if logits.shape[1] < 2:
        raise ValueError(
            f"the model must return at least 2 {name} per image, got {logits.shape[1]}."
        )
    return logits.shape[1]


def check_model(model: object, x: Tensor, name: str = "model") -> None:
    """Check that ``model`` is callable, on ``x``'s device and of ``x``'s floating dtype."""
    if not callable(model):
        raise TypeError(
            f"{name} must be a torch.nn.Module or a callable, got {type(model).__name__}."
        )
    if not isinstance(model, torch.nn.Module):
        return
    tensors = [*model.parameters(), *model.buffers()]
    if tensors and tensors[0].device != x.device:
        raise ValueError(
            f"{name} is on {tensors[0].device} but the images are on {x.device}; "
            f"move one of them, e.g. x.to({str(tensors[0].device)!r})."
        )
    check_dtype(model, x, name)


def check_dtype(model: object, x: Tensor, name: str = "model") -> None:
    """Check that a module's floating parameters have the images' dtype (else a clear error)."""
    if not isinstance(model, torch.nn.Module):
        return
    dtypes = {t.dtype for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()}
    if dtypes and x.dtype not in dtypes:
        found = ", ".join(sorted(str(d) for d in dtypes))
        raise TypeError(
            f"{name}'s parameters are {found} but the images x are {x.dtype}; convert one to "
            f"match, e.g. x.to({found.split(',')[0]}) or {name}.to({x.dtype})."
        )


def warn_if_probabilities(logits: Tensor, name: str = "model") -> None:
    """Warn if every row of ``logits`` (n, K) looks like probabilities (>= 0, summing to 1)."""
    if len(logits) == 0:
        return
    detached = logits.detach()
    sums = detached.sum(1)
    if (detached >= 0).all() and torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        warnings.warn(
            f"{name} seems to return probabilities (every row is >= 0 and sums to 1); the "
            "helpers expect logits. Drop the model's final softmax to give them logits.",
            stacklevel=4,
        )


def check_positive(value: object, name: str) -> None:
    """Check that ``value`` is a finite real number > 0."""
    _check_real(value, name)
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}.")


def check_non_negative(value: object, name: str) -> None:
    """Check that ``value`` is a finite real number >= 0."""
    _check_real(value, name)
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}.")


def check_count(value: object, name: str, minimum: int = 1) -> None:
    """Check that ``value`` is an int >= ``minimum`` (a number of steps or queries)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")


def check_choice(value: object, name: str, choices: Sequence[str]) -> None:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")


def check_generator(generator: object, device: torch.device, name: str = "generator") -> None:
    """Check that ``generator`` is None or a torch.Generator on ``device``."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{name} must be a torch.Generator or None, got {type(generator).__name__}."
        )
    if generator.device.type != device.type:
        raise ValueError(
            f"{name} is on {generator.device} but the images are on {device}; "
            f"create it with torch.Generator(device={str(device)!r})."
        )


def check_callable(value: object, name: str) -> None:
    """Check that ``value`` is None or callable (an objective, a factory)."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {type(value).__name__}.")


def _check_real(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__}).")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}.")


__all__ = [
    "check_images",
    "check_labels",
    "check_logits",
    "check_model",
    "check_dtype",
    "warn_if_probabilities",
    "check_positive",
    "check_non_negative",
    "check_count",
    "check_choice",
    "check_generator",
    "check_callable",
]
