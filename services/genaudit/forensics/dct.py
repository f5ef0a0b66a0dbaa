"""Orthonormal DCT-II as matrix products: blockwise (Xu et al., CVPR 2020) and full-image (Frank et al.,
ICML 2020).

The transform of an n-sample signal is ``D @ s`` with the orthonormal DCT-II basis
``D[k, i] = a_k cos(pi (2 i + 1) k / (2 n))``, ``a_0 = sqrt(1 / n)``, ``a_k = sqrt(2 / n)`` otherwise (what
``scipy.fft.dct(norm="ortho")`` computes); a 2-D block is ``D @ X @ D.T`` and the inverse is ``D.T @ Y @ D``.
Matrix products keep everything batched and fast on GPU; the full-image version costs O(H W (H + W)),
fine for detector-size inputs (a few hundred pixels a side).
"""

from __future__ import annotations

import functools
import math

import torch

from genaudit.errors import InvalidArgument
from genaudit.forensics._inputs import check_batch
from genaudit.forensics.color import rgb_to_ycbcr


@functools.lru_cache(maxsize=32)
def dct_matrix(n: int, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
    """The (n, n) orthonormal DCT-II basis ``D`` (rows are frequencies), built in float64 then cast.
    Cached per (n, dtype, device): treat the returned tensor as read-only."""
    i = torch.arange(n, dtype=torch.float64)
    k = i[:, None]
    basis = torch.cos(math.pi * (2 * i[None, :] + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    basis[0] = math.sqrt(1.0 / n)
    return basis.to(dtype=dtype, device=device)


def _basis_for(x: torch.Tensor, n: int) -> torch.Tensor:
    return dct_matrix(n, x.dtype, x.device)


def _check_blocks(x: torch.Tensor, block: int) -> tuple[int, int, int, int]:
    """Sizes must be multiples of ``block``: cropping here would silently drop pixels (and break the
    inverse), so callers crop or resize first (the detector's 224 crops are multiples of 8)."""
    if not isinstance(block, int) or block < 1:
        raise InvalidArgument(f"block must be a positive integer, got {block!r}")
    b, c, h, w = x.shape
    if h % block or w % block:
        raise InvalidArgument(f"image size {h}x{w} is not a multiple of the {block}x{block} block")
    return b, c, h, w


def block_dct(x: torch.Tensor, block: int = 8) -> torch.Tensor:
    """Blockwise orthonormal 2-D DCT-II: (B, C, H, W) -> (B, C * block**2, H / block, W / block).

    Coefficient (u, v) (u vertical, v horizontal frequency) of the block at (i, j) of input channel c goes
    to output channel ``c * block**2 + block * u + v`` at position (i, j). H and W must be multiples of
    ``block`` (InvalidArgument otherwise). Linear: no level shift, pixel values as given.
    """
    check_batch(x)
    b, c, h, w = _check_blocks(x, block)
    basis = _basis_for(x, block)
    blocks = x.reshape(b, c, h // block, block, w // block, block)
    coefficients = torch.einsum("uy,bciyjx,vx->bcuvij", basis, blocks, basis)
    return coefficients.reshape(b, c * block * block, h // block, w // block)


def block_idct(coefficients: torch.Tensor, block: int = 8) -> torch.Tensor:
    """Inverse of :func:`block_dct`: (B, C * block**2, H', W') -> (B, C, H' * block, W' * block)."""
    check_batch(coefficients)
    b, cb, hb, wb = coefficients.shape
    if cb % (block * block):
        raise InvalidArgument(f"{cb} channels is not a multiple of block**2 = {block * block}")
    basis = _basis_for(coefficients, block)
    grid = coefficients.reshape(b, cb // (block * block), block, block, hb, wb)
    pixels = torch.einsum("uy,bcuvij,vx->bciyjx", basis, grid, basis)
    return pixels.reshape(b, cb // (block * block), hb * block, wb * block)


def ycbcr_block_dct(x: torch.Tensor, block: int = 8) -> torch.Tensor:
    """Xu et al.'s input: RGB in [0, 1] -> YCbCr (JPEG BT.601) -> 8x8 block DCT: (B, 192, H / 8, W / 8)
    for block 8; channels 0-63 are Y, 64-127 Cb, 128-191 Cr, each in the 8u+v order of block_dct."""
    return block_dct(rgb_to_ycbcr(x), block)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Full-image orthonormal 2-D DCT-II of each channel: (B, C, H, W) -> (B, C, H, W)."""
    check_batch(x)
    _, _, h, w = x.shape
    return _basis_for(x, h) @ x @ _basis_for(x, w).T


def log_dct_spectrum(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Frank et al.'s input: ``log(|DCT2(x)| + eps)`` per channel, (B, C, H, W) -> (B, C, H, W).

    ``eps`` only keeps exact zeros finite: with [0, 1] pixels it sits below the float32 rounding noise of
    the coefficients (the DC term is about sqrt(H W) / 2), so it does not clip real content.
    """
    if eps <= 0:
        raise InvalidArgument(f"eps must be positive, got {eps}")
    return torch.log(dct2(x).abs() + eps)
