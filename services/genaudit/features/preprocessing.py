"""Image preparation shared by every feature space: one function for real and generated images alike."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps

from genaudit.features.spaces import Preprocessing
from genaudit.images import to_rgb

_EXIF_ORIENTATION = 0x0112


def upright_rgb8(img: Image.Image) -> Image.Image:
    """8-bit RGB view of ``img`` whatever its mode, upright.

    An EXIF orientation tag is applied (camera photos are often stored sideways; generated images carry
    none, so both sets end up as they are meant to be seen); the mode conversion is the one untrusted
    uploads get (``genaudit.images.to_rgb``: alpha over white, 16-bit grey scaled, float refused).
    """
    if img.getexif().get(_EXIF_ORIENTATION, 1) != 1:
        img = ImageOps.exif_transpose(img)
    return to_rgb(img)


def preprocess_image(img: Image.Image, spec: Preprocessing) -> torch.Tensor:
    """Float32 tensor (3, size, size): RGB 8-bit, PIL resize to size x size, then (x - mean) / std."""
    rgb = upright_rgb8(img)
    resample = Image.Resampling[spec.resize_filter.upper()]
    resized = rgb.resize((spec.size, spec.size), resample)
    pixels = np.asarray(resized, dtype=np.float32)  # (H, W, 3), values 0..255
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    normalized = (pixels - mean) / std
    return torch.from_numpy(np.ascontiguousarray(normalized.transpose(2, 0, 1)))
