"""Images as the API takes them: 8-bit PNGs, base64 in JSON. ``quantize`` says which image the
server answers: each pixel rounded to the nearest k/255."""

from __future__ import annotations

import base64
import binascii
import io
import struct

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from helpers import blackbox, validation

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale + alpha", 6: "RGBA"}
CHANNELS = {1: 0, 3: 2}  # channels -> the PNG colour type that carries them


def quantize(x: Tensor) -> Tensor:
    """The 8-bit image the API answers for x (N, C, H, W) in [0, 1]: each pixel rounded to the
    nearest k/255 (ties to even), same shape, dtype and device. NaN or out-of-range pixels
    raise ValueError: nothing is clipped."""
    validation.check_images(x, "x")
    return blackbox.quantize(x, 8)


def to_pixels(x: Tensor) -> Tensor:
    """x (N, C, H, W) in [0, 1] -> its 8-bit pixels (N, C, H, W) uint8 on the CPU."""
    validation.check_images(x, "x")
    if x.shape[1] not in CHANNELS:
        raise ValueError(f"x has {x.shape[1]} channels; an 8-bit PNG here carries 1 or 3.")
    return torch.round(x.detach() * 255).to(torch.uint8).cpu()


def encode(pixels: Tensor) -> list[str]:
    """Pixels (N, C, H, W) uint8 -> one base64 PNG per image."""
    encoded = []
    for image in pixels.permute(0, 2, 3, 1).numpy():  # (H, W, C) each
        buffer = io.BytesIO()
        array = np.ascontiguousarray(image[:, :, 0] if image.shape[2] == 1 else image)
        Image.fromarray(array).save(buffer, "PNG", compress_level=1)  # fast; a few % larger
        encoded.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return encoded


def decode(images: list, shape: tuple[int, int, int]) -> Tensor:
    """Base64 PNGs -> pixels (N, C, H, W) uint8; each must be an 8-bit PNG of ``shape`` (C, H,
    W). Raises ValueError naming the first image that is not, what it is, and what is wanted."""
    return torch.stack([_decode(text, i, shape) for i, text in enumerate(images)])


def _decode(text: object, i: int, shape: tuple[int, int, int]) -> Tensor:
    channels, height, width = shape
    if not isinstance(text, str):
        raise ValueError(f"images[{i}] must be a base64 string, got {type(text).__name__}.")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"images[{i}] is not valid base64 ({error}).") from None
    if not raw.startswith(SIGNATURE) or raw[12:16] != b"IHDR" or len(raw) < 26:
        raise ValueError(
            f"images[{i}] is not a PNG (no PNG signature and header); send 8-bit PNG images."
        )
    found_width, found_height = struct.unpack(">II", raw[16:24])  # the header, before decoding
    depth, colour = raw[24], COLOUR_TYPES.get(raw[25], f"colour type {raw[25]}")
    wanted = COLOUR_TYPES[CHANNELS.get(channels, 0)]
    if depth != 8 or raw[25] != CHANNELS.get(channels):
        raise ValueError(
            f"images[{i}] is a PNG of {depth}-bit {colour}; this model takes 8-bit "
            f"{wanted} (no alpha, no palette)."
        )
    if (found_width, found_height) != (width, height):
        raise ValueError(
            f"images[{i}] is {found_width}×{found_height} pixels (width × height); "
            f"this model takes {width}×{height}."
        )
    try:
        with Image.open(io.BytesIO(raw), formats=["PNG"]) as image:
            pixels = np.array(image)  # (H, W) or (H, W, C), decoded here
    except (OSError, SyntaxError, ValueError) as error:  # a truncated or corrupt file
        raise ValueError(f"images[{i}] is not a readable PNG ({error}).") from None
    return torch.from_numpy(pixels.reshape(height, width, channels)).permute(2, 0, 1)
