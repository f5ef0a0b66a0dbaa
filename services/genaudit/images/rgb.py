"""Conversion of any decoded Pillow image to 8-bit RGB, the one pixel format the pipelines take."""

from __future__ import annotations

import numpy as np
from PIL import Image

from genaudit.errors import InvalidArgument

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# Integer grey modes holding 16-bit samples (PNG 16-bit grey opens as I;16). Pillow's own convert clips
# them at 255 instead of scaling, which would turn most of a 16-bit image white.
_WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_WHITE = (255, 255, 255, 255)


def _wide_grey_to_l(image: Image.Image) -> Image.Image:
    """16-bit grey -> 8-bit: v / 257 maps 0..65535 onto 0..255 exactly (65535 / 257 = 255); 32-bit
    'I' images are read as 16-bit data, values outside 0..65535 clipped."""
    samples = np.asarray(image, dtype=np.float64)
    return Image.fromarray(np.clip(np.rint(samples / 257.0), 0, 255).astype(np.uint8))


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB of ``image``: palettes expanded, transparency composited on white, 16-bit grey scaled,
    CMYK / YCbCr / grey converted. Floating-point images are refused (their value range is unknown)."""
    if image.mode == "RGB":
        return image
    if image.mode in _WIDE_GREY_MODES:
        return _wide_grey_to_l(image).convert("RGB")
    if image.mode == "F":
        raise InvalidArgument("unsupported image: floating-point pixels (mode F)")
    try:
        if image.mode in _ALPHA_MODES or "transparency" in image.info:
            rgba = image.convert("RGBA")
            return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
        return image.convert("RGB")
    except ValueError as exc:  # a mode Pillow cannot convert (e.g. LAB)
        raise InvalidArgument(f"unsupported image: pixel mode {image.mode}: {exc}") from exc
