"""What every detector net exposes, whatever its architecture (docs/layout conventions of issue 4).

A net maps a float (B, 3, H, W) RGB batch in [0, 1] to (B,) logits, > 0 meaning "generated". ``input_size``
is the fixed side it needs (the caller centre-crops to it; None: any multiple of 8). ``fit_normalization``
fits input standardization buffers on training batches before training, and ``regularization`` is an extra
loss term; the defaults here are "nothing to fit" and 0.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from genaudit.errors import InvalidArgument
from genaudit.forensics._inputs import check_batch


def center_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of the centred ``size`` x ``size`` window: ``((H - size) // 2, (W - size) // 2)``."""
    if height < size or width < size:
        raise InvalidArgument(f"image {width}x{height} is smaller than the {size}x{size} crop the detector needs")
    return (height - size) // 2, (width - size) // 2


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The centred ``size`` x ``size`` window of a (B, C, H, W) batch (see :func:`center_offsets`)."""
    top, left = center_offsets(x.shape[-2], x.shape[-1], size)
    return x[..., top : top + size, left : left + size]


class DetectorNet(nn.Module):
    input_size: int | None = None

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` itself when it is a (B, 3, H, W) float batch the net can take: sides at least ``input_size``
        (larger inputs are centre-cropped by the net), else multiples of 8."""
        check_batch(x, channels=3)
        h, w = x.shape[-2:]
        if self.input_size is None and (h % 8 or w % 8):
            raise InvalidArgument(f"image size {w}x{h} is not a multiple of 8")
        if self.input_size is not None:
            center_offsets(h, w, self.input_size)
        return x

    def fit_normalization(self, batches: Iterable[torch.Tensor]) -> None:
        """Fit input standardization on training batches (B, 3, H, W); this net has none."""

    def regularization(self) -> torch.Tensor:
        """Extra loss term; 0 for this net."""
        return torch.zeros((), device=next(self.parameters()).device)
