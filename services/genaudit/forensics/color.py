"""RGB -> YCbCr and luma with the ITU-R BT.601 full-range matrix that JPEG (JFIF) uses.

Value convention: RGB in [0, 1]; Y, Cb, Cr come out in [0, 1] too, chroma offset by 128/255 (JFIF's
offset of 128 on the 0..255 scale). Multiply by 255 to get the numbers Pillow's ``convert("YCbCr")``
and a JPEG encoder compute (before their integer rounding).
"""

from __future__ import annotations

import torch

from genaudit.forensics._inputs import check_batch

# Rows: Y, Cb, Cr; columns: R, G, B (JFIF 1.02, section 7).
BT601_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
CHROMA_OFFSET = 128.0 / 255.0


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 3, H, W) Y, Cb, Cr in [0, 1] (JPEG's BT.601 full range)."""
    check_batch(x, channels=3)
    matrix = torch.tensor(BT601_YCBCR, dtype=x.dtype, device=x.device)
    offset = torch.tensor([0.0, CHROMA_OFFSET, CHROMA_OFFSET], dtype=x.dtype, device=x.device)
    return torch.einsum("kc,bchw->bkhw", matrix, x) + offset[:, None, None]


def rgb_to_luma(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, H, W) BT.601 luma; a single-channel batch is taken as luma already."""
    check_batch(x)
    if x.shape[1] == 1:
        return x[:, 0]
    check_batch(x, channels=3)
    weights = torch.tensor(BT601_YCBCR[0], dtype=x.dtype, device=x.device)
    return torch.einsum("c,bchw->bhw", weights, x)
