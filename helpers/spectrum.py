"""Where the energy of an image, an explanation or an attack lies in the spectrum, and how a
model does on images with only their low or only their high frequencies (Wang et al. 2020).

Frequencies are those of the centred 2-d Fourier transform; the radius of a frequency (u, v)
is sqrt(u² + v²) in cycles per image. Filters are hard radial masks, 1 inside the radius (low
pass) or outside it (high pass), 0 elsewhere, as in Wang et al.'s corrected code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from helpers import evaluation, validation


def radii(height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """(H, W) the radius of each frequency of the centred spectrum of an H×W image."""
    u = torch.fft.fftshift(torch.fft.fftfreq(height, 1 / height, device=device))  # (H,)
    v = torch.fft.fftshift(torch.fft.fftfreq(width, 1 / width, device=device))  # (W,)
    return (u[:, None] ** 2 + v[None, :] ** 2).sqrt()


def _check_4d(x: object, name: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor (N, C, H, W), got {shape}.")


def radial_power(x: Tensor) -> Tensor:
    """Radially averaged power spectrum of each image or change.

    Args: x: (N, C, H, W), any real values (an image, an explanation δ, an attack).
    Returns: (N, R) the mean of |FFT|² (summed over channels, divided by H·W) over the
        frequencies whose radius rounds to r = 0, 1, ..., R - 1 (R: the largest radius + 1).
    """
    _check_4d(x, "x")
    height, width = x.shape[2:]
    power = torch.fft.fftshift(torch.fft.fft2(x.double()), dim=(-2, -1)).abs() ** 2
    power = power.sum(1).flatten(1) / (height * width)  # (N, H*W)
    ring = radii(height, width, x.device).round().long().flatten()  # (H*W,)
    num_rings = int(ring.max()) + 1
    totals = power.new_zeros(len(x), num_rings).index_add_(1, ring, power)
    counts = torch.bincount(ring, minlength=num_rings).to(power)
    return totals / counts


def low_frequency_share(x: Tensor, radius: float) -> Tensor:
    """(N,) the fraction of each image's power (DC excluded) at radii <= ``radius``."""
    _check_4d(x, "x")
    validation.check_positive(radius, "radius")
    power = torch.fft.fftshift(torch.fft.fft2(x.double()), dim=(-2, -1)).abs() ** 2
    power = power.sum(1)  # (N, H, W)
    r = radii(*x.shape[2:], x.device)
    ac = r > 0
    low = (power * ((r <= radius) & ac)).flatten(1).sum(1)
    total = (power * ac).flatten(1).sum(1)
    return torch.where(total > 0, low / total.clamp(min=1e-300), torch.nan)


def filtered(x: Tensor, radius: float, kind: str = "low") -> Tensor:
    """Images with only their low (radius <= ``radius``) or high (> radius) frequencies.

    Args: x: (N, C, H, W); radius: in cycles per image, > 0; kind: "low" or "high".
    Returns: (N, C, H, W) of x's dtype, NOT clipped to [0, 1]: a high-pass image has mean 0 and
        negative pixels, which is what Wang et al. feed to the model.
    """
    _check_4d(x, "x")
    validation.check_positive(radius, "radius")
    validation.check_choice(kind, "kind", ["high", "low"])
    r = radii(*x.shape[2:], x.device)
    mask = (r <= radius) if kind == "low" else (r > radius)  # (H, W)
    spectrum = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1)) * mask
    return torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).real.to(x.dtype)


def filtered_accuracy(
    model: nn.Module, x: Tensor, y: Tensor, radii_: list[float], kind: str = "low"
) -> list[float]:
    """Accuracy of ``model`` on ``filtered(x, r, kind)`` for each radius r of ``radii_``."""
    validation.check_labels(y, len(x), device=x.device)
    answers = [evaluation.predict_logits(model, filtered(x, r, kind)).argmax(1) for r in radii_]
    return [(y_pred == y).float().mean().item() for y_pred in answers]


__all__ = ["filtered", "filtered_accuracy", "low_frequency_share", "radial_power", "radii"]
