"""Validation and conversion of image inputs shared by the forensic transforms.

Convention: torch tensors are channels-first float batches (B, C, H, W) with values in [0, 1];
numpy arrays (the conversion helper only) are channels-last, as Pillow and skimage give them.
"""

from __future__ import annotations

import numpy as np
import torch

from genaudit.errors import InvalidArgument

ImageLike = torch.Tensor | np.ndarray


def check_batch(x: torch.Tensor, *, channels: int | None = None) -> torch.Tensor:
    """``x`` itself when it is a floating (B, C, H, W) tensor (with ``channels`` channels if given)."""
    if not isinstance(x, torch.Tensor):
        raise InvalidArgument(f"expected a torch.Tensor, got {type(x).__name__} (see to_image_batch)")
    if x.ndim != 4:
        raise InvalidArgument(f"expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InvalidArgument(f"expected a floating-point tensor with values in [0, 1], got {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise InvalidArgument(f"expected {channels} channels, got {x.shape[1]}")
    return x


def to_image_batch(image: ImageLike, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A (B, C, H, W) float batch in [0, 1] from one image or a batch.

    Tensors are channels-first: (C, H, W) gains a batch axis, (B, C, H, W) is kept; integer tensors are
    divided by 255. Numpy arrays are channels-last: (H, W) grey, (H, W, C), or (B, H, W, C); uint8 is
    divided by 255, floating arrays are taken as already in [0, 1]. The result is always contiguous
    channels-first: torch 2.14's CPU (mkldnn) backward of a strided 1x1 convolution corrupts memory on a
    channels-last view such as the permuted numpy batch.
    """
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4:
            raise InvalidArgument(f"expected an (H, W), (H, W, C) or (B, H, W, C) array, got {image.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
    elif isinstance(image, torch.Tensor):
        tensor = image[None] if image.ndim == 3 else image
        if tensor.ndim != 4:
            raise InvalidArgument(f"expected a (C, H, W) or (B, C, H, W) tensor, got {tuple(image.shape)}")
    else:
        raise InvalidArgument(f"expected a numpy array or torch tensor, got {type(image).__name__}")
    if tensor.is_floating_point():
        return tensor.to(dtype).contiguous()
    if tensor.dtype != torch.uint8:
        raise InvalidArgument(f"integer images must be uint8, got {tensor.dtype}")
    return (tensor.to(dtype) / 255.0).contiguous()
