"""Samples of a generator as 8-bit images: what audits, demos and sample grids consume."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image

from genaudit.generators.base import Generator


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator outputs in [-1, 1], (N, C, H, W) -> uint8 (N, H, W, C), values clamped then rounded."""
    scaled = ((images.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1]: the generators' range, the inverse of ``to_uint8``."""
    # a copy: arrays from PIL are read-only, and torch refuses to wrap those without a warning
    return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@torch.no_grad()
def sample_images(generator: Generator, count: int, seed: int, batch_size: int = 64) -> Iterator[Image.Image]:
    """``count`` samples for seeded latents, in order. The latents are the same on every device and for every
    batch size; the pixels are too up to float rounding (CPU kernels differ by batch size: at most one 8-bit
    level)."""
    latents = generator.sample_latents(count, torch.Generator().manual_seed(seed))
    for start in range(0, count, batch_size):
        for array in to_uint8(generator(latents[start:start + batch_size])):
            yield Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
