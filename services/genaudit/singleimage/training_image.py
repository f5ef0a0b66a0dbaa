"""The training image of a single-image generator: 8-bit RGB (or grey), its longest side capped, in [-1, 1].

SinGAN's code resizes the photo so that its longest side is 250 px before it builds the pyramid; the same cap is
a recipe parameter here (small on a CPU). The image is never enlarged: upscaling would invent the fine scale the
generator is meant to learn. Resizing is PIL bicubic with antialiasing, then rounding to 8 bits, so the tensor
holds exactly the pixels of the PNG a user would save, and the audit compares samples with those pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from genaudit.errors import InvalidArgument
from genaudit.generators.sampling import from_uint8
from genaudit.images.rgb import to_rgb

MIN_SIDE = 8  # the registry's smallest single-image side (generators.registry)


def fit_longest_side(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` shrunk (aspect ratio kept, bicubic, antialiased) so that its longest side is at most ``max_side``;
    returned unchanged when it already fits."""
    if max_side < MIN_SIDE:
        raise InvalidArgument(f"max_side must be at least {MIN_SIDE}, got {max_side}")
    w, h = image.size
    longest = max(w, h)
    if longest <= max_side:
        return image
    size = (max(1, round(w * max_side / longest)), max(1, round(h * max_side / longest)))
    if min(size) < MIN_SIDE:
        raise InvalidArgument(f"image of {w}x{h} px would shrink to {size[0]}x{size[1]} px at max_side {max_side}: "
                              f"its shorter side must stay at least {MIN_SIDE} px")
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=None)


def training_tensor(image: Image.Image, max_side: int, channels: int = 3) -> torch.Tensor:
    """(1, channels, H, W) float32 in [-1, 1] of ``image`` (any mode: ``images.rgb.to_rgb``; grey for
    ``channels`` = 1) with its longest side capped at ``max_side``."""
    if channels not in (1, 3):
        raise InvalidArgument(f"channels must be 1 or 3, got {channels}")
    rgb = to_rgb(image)
    if min(rgb.size) < MIN_SIDE:
        raise InvalidArgument(f"image of {rgb.size[0]}x{rgb.size[1]} px is too small: sides of at least {MIN_SIDE} px")
    fitted = fit_longest_side(rgb, max_side)
    array = np.asarray(fitted.convert("L") if channels == 1 else fitted, dtype=np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    return from_uint8(array[None])
