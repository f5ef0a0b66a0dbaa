"""Input handling shared by the set metrics: dtype resolution and feature-matrix validation (devices:
``genaudit.devices``).

Every metric accepts ``np.ndarray`` or ``torch.Tensor`` features of shape (n_samples, n_dims). On CPU the
input is wrapped without a copy (``torch.as_tensor``) and converted to the compute dtype one block at a
time, so a float32 array scored in float64 never gets a full float64 copy. On CUDA the whole matrix is
moved once, in the compute dtype (device memory is the cheaper trade there: one transfer, not one per tile).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from genaudit.errors import InvalidArgument

ArrayLike = np.ndarray | torch.Tensor
DTypeLike = str | torch.dtype | np.dtype | type

DEFAULT_BLOCK_SIZE = 1024

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_dtype(dtype: DTypeLike) -> torch.dtype:
    """float32 (fast default) or float64 (reference mode); accepts torch/numpy dtypes or their names."""
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    else:
        resolved = _DTYPES.get(np.dtype(dtype).name) if _is_numpy_dtype(dtype) else None
    if resolved not in (torch.float32, torch.float64):
        raise InvalidArgument(f"dtype must be float32 or float64, got {dtype!r}")
    return resolved


def _is_numpy_dtype(dtype: Any) -> bool:
    try:
        np.dtype(dtype)
    except TypeError:
        return False
    return True


def check_block_size(block_size: int) -> int:
    if not isinstance(block_size, int) or block_size < 1:
        raise InvalidArgument(f"block_size must be a positive integer, got {block_size!r}")
    return block_size


def as_features(
    x: ArrayLike, name: str, device: torch.device, dtype: torch.dtype, block_size: int
) -> torch.Tensor:
    """Validate a 2-D, non-empty, finite feature matrix and place it for blocked computation.

    CPU: zero-copy view of the input (dtype conversion happens per block). CUDA: one copy in ``dtype``.
    """
    tensor = torch.as_tensor(x)
    if tensor.ndim != 2 or tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise InvalidArgument(f"{name} must be a non-empty 2-D (samples x dims) matrix, got shape "
                              f"{tuple(tensor.shape)}")
    if tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise InvalidArgument(f"{name} must hold real numbers, got {tensor.dtype}")
    tensor = tensor.detach()
    tensor = tensor.to(device, dtype) if device.type == "cuda" else tensor.cpu()
    for start in range(0, tensor.shape[0], block_size):
        block = tensor[start:start + block_size]
        # a finite float64 sum proves every value finite (one read, no mask); else check exactly
        if not torch.isfinite(block.sum(dtype=torch.float64)) and not torch.isfinite(block).all():
            raise InvalidArgument(f"{name} contains NaN or infinite values")
    return tensor


def check_same_dims(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise InvalidArgument(f"{names} must have the same feature dimension, got {a.shape[1]} and {b.shape[1]}")


def check_radii(radii: ArrayLike, n: int, name: str) -> np.ndarray:
    """Precomputed k-NN radii: one finite, non-negative value per row of the matching feature set."""
    values = np.asarray(torch.as_tensor(radii).detach().cpu().numpy(), dtype=np.float64)
    if values.shape != (n,):
        raise InvalidArgument(f"{name} must have shape ({n},), got {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any():
        raise InvalidArgument(f"{name} must be finite and non-negative")
    return values


def check_k(k: int, n: int, name: str) -> None:
    """The k-th nearest OTHER sample exists only when k <= n - 1."""
    if not isinstance(k, int) or k < 1:
        raise InvalidArgument(f"k must be a positive integer, got {k!r}")
    if k >= n:
        raise InvalidArgument(f"k={k} needs at least k+1={k + 1} samples in {name}, got {n}")
