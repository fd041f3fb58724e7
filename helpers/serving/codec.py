"""Images as the API takes them: 8-bit PNGs, base64 in JSON. ``quantize`` says which image the
server answers: each pixel rounded to the nearest k/255."""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from helpers import validation

MODES = {1: "L", 3: "RGB"}  # channels -> the 8-bit PNG mode that carries them
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def quantize(x: Tensor) -> Tensor:
    """The 8-bit image the API answers for x (N, C, H, W) in [0, 1]: each pixel rounded to the
    nearest k/255 (ties to even), same shape, dtype and device. NaN or out-of-range pixels
    raise ValueError: nothing is clipped."""
    validation.check_images(x, "x")
    return torch.round(x * 255) / 255


def to_pixels(x: Tensor) -> Tensor:
    """x (N, C, H, W) in [0, 1] -> its 8-bit pixels (N, C, H, W) uint8 on the CPU."""
    validation.check_images(x, "x")
    if x.shape[1] not in MODES:
        raise ValueError(f"x has {x.shape[1]} channels; an 8-bit PNG carries 1 (L) or 3 (RGB).")
    return torch.round(x.detach() * 255).to(torch.uint8).cpu()


def encode(pixels: Tensor) -> list[str]:
    """Pixels (N, C, H, W) uint8 -> one base64 PNG per image."""
    encoded = []
    for image in pixels.permute(0, 2, 3, 1).numpy():  # (H, W, C) each
        buffer = io.BytesIO()
        array = image[:, :, 0] if image.shape[2] == 1 else image
        Image.fromarray(np.ascontiguousarray(array), MODES[image.shape[2]]).save(buffer, "PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return encoded


def decode(images: list[str], shape: tuple[int, int, int]) -> Tensor:
    """Base64 PNGs -> pixels (N, C, H, W) uint8; each must be an 8-bit PNG of ``shape`` (C, H,
    W). Raises ValueError naming the first image that is not, what it is, and what is wanted."""
    channels, height, width = shape
    decoded = []
    for i, text in enumerate(images):
        if not isinstance(text, str):
            raise ValueError(f"images[{i}] must be a base64 string, got {type(text).__name__}.")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"images[{i}] is not valid base64 ({error}).") from None
        if not raw.startswith(PNG_SIGNATURE):
            raise ValueError(
                f"images[{i}] is not a PNG (its bytes do not start with the PNG signature); "
                "send 8-bit PNG images."
            )
        decoded.append(_open(raw, i, MODES.get(channels), (width, height)))
    pixels = np.stack(decoded).reshape(len(images), height, width, channels)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


def _open(raw: bytes, i: int, mode: str | None, size: tuple[int, int]) -> np.ndarray:
    try:
        image = Image.open(io.BytesIO(raw), formats=["PNG"])
        if image.mode != mode:
            raise ValueError(
                f"images[{i}] is a PNG of mode {image.mode!r}; this model takes 8-bit {mode!r} "
                "images (L: grayscale, RGB: colour; no alpha, palette or 16-bit)."
            )
        if image.size != size:
            raise ValueError(
                f"images[{i}] is {image.size[0]}×{image.size[1]} pixels (width × height); this "
                f"model takes {size[0]}×{size[1]}."
            )
        return np.asarray(image)  # decodes here; a truncated file raises OSError
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"images[{i}] is not a readable PNG ({error}).") from None
