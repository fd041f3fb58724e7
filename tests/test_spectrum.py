"""Radial power spectra and frequency filters on images whose spectrum is known."""

import math

import pytest
import torch

from helpers import spectrum
from tests import tiny


def wave(frequency: int, size: int = 28) -> torch.Tensor:
    """(1, 1, size, size) a cosine of ``frequency`` cycles per image along the rows."""
    rows = torch.arange(size, dtype=torch.float64)
    return (0.5 + 0.25 * torch.cos(2 * math.pi * frequency * rows / size))[None, None, :, None]


def test_a_cosine_puts_its_power_at_its_frequency():
    x = wave(5).expand(1, 1, 28, 28)
    power = spectrum.radial_power(x)  # (1, R)
    assert power.shape == (1, 21)  # radii up to 14 * sqrt(2) = 19.8, rounded to 20
    nonzero = (power[0] > 1e-9).nonzero()[:, 0].tolist()
    assert nonzero == [0, 5]  # the mean (DC) and the wave


def test_power_adds_up_to_the_energy_parseval():
    x = tiny.make_batch(0, 3)[0].double()
    power = spectrum.radial_power(x)
    counts = torch.bincount(spectrum.radii(6, 6).round().long().flatten())
    assert torch.allclose((power * counts).sum(1), x.pow(2).flatten(1).sum(1))


def test_low_and_high_pass_split_an_image_and_keep_their_bands():
    x = (wave(2) + wave(9) - 0.5).expand(2, 1, 28, 28).contiguous()
    low, high = spectrum.filtered(x, 4, "low"), spectrum.filtered(x, 4, "high")
    assert torch.allclose(low + high, x, atol=1e-12)
    assert torch.allclose(low, wave(2).expand(2, 1, 28, 28), atol=1e-12)
    assert spectrum.low_frequency_share(low, 4).min() > 1 - 1e-9
    assert spectrum.low_frequency_share(high, 4).max() < 1e-9


def test_filtered_accuracy_and_bad_input():
    model, (x, y) = tiny.make_model("cnn", 0), tiny.make_batch(0, 8)
    full = (model(x).argmax(1) == y).float().mean().item()
    assert spectrum.filtered_accuracy(model, x, y, [100.0], "low") == [pytest.approx(full)]
    with pytest.raises(ValueError, match="kind must be one of"):
        spectrum.filtered(x, 3, "band")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        spectrum.radial_power(x[0])
