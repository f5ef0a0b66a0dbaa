"""Image grids and PNG bytes of uint8 arrays: sample sheets, before/after rows, examples. numpy and Pillow only.

Cells are separated by 1 px dark grey gutters. Images of different sizes (InGAN retargetings) share one grid:
each cell is as large as the largest image, and a smaller image sits in its cell's top-left corner on the gutter
grey.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from genaudit.errors import InvalidArgument

GUTTER = 64


def image_grid(images: np.ndarray | Sequence[np.ndarray], columns: int) -> np.ndarray:
    """uint8 images (N, H, W, C), or a sequence of (h_i, w_i, C) arrays, tiled ``columns`` per row in order ->
    one uint8 (rows (H+1) + 1, columns (W+1) + 1, C) array (H, W: the largest sides)."""
    if columns < 1:
        raise InvalidArgument(f"columns must be at least 1, got {columns}")
    n = len(images)
    if n == 0:
        raise InvalidArgument("a grid needs at least one image")
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    c = images[0].shape[2]
    columns = min(columns, n)
    rows = -(-n // columns)
    grid = np.full((rows * (h + 1) + 1, columns * (w + 1) + 1, c), GUTTER, dtype=np.uint8)
    for i, im in enumerate(images):
        y, x = divmod(i, columns)
        top, left = 1 + y * (h + 1), 1 + x * (w + 1)
        grid[top: top + im.shape[0], left: left + im.shape[1]] = im
    return grid


def png_bytes(array: np.ndarray) -> bytes:
    """uint8 (H, W, 1 or 3) -> PNG (grey or RGB)."""
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, format="PNG")
    return buffer.getvalue()
