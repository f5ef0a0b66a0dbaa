"""Whether an image went through JPEG: the comb its quantization leaves on the 8x8 luminance DCT coefficients.

A JPEG encoder rounds the DCT coefficient (u, v) of every 8x8 luminance block to a multiple of a step
``q(u, v)``; decoding to 8-bit pixels adds rounding noise of about 0.3 grey levels per pixel, which the
orthonormal DCT keeps at that size. So the coefficients recomputed on the decoded image's block grid sit within
about one grey level of multiples of ``q``, which ``cos(2 pi c / q)`` turns into values near 1, while an image that
never went through JPEG has coefficients spread continuously over many steps, whose cosines average to about 0.

:func:`jpeg_comb_score` takes the steps of the standard (IJG, Annex K) luminance table that libjpeg, and so
Pillow, scales by quality, tries every quality from 30 to 98 (at 99 and 100 every step is 1 or 2, a comb lost in
the rounding noise) and returns the best mean cosine. Only coefficients with ``|c| >= q / 2`` count: a
smooth image that never saw JPEG (a bilinear upsampling, a blurred photo) has many coefficients near 0, which
would otherwise look like the comb's zero tooth. An image too flat to keep enough such coefficients (a sky, or
most flat crops after strong compression, which rounds their coefficients to 0) scores NaN: no evidence either
way, so :func:`looks_uncompressed` does not vouch for it. What it does not see: encoders with their own tables
(many cameras), qualities 99 and 100, and images cropped or resized after compression, which move the
coefficients off the grid.
"""

from __future__ import annotations

import functools
import math

import torch

from genaudit.forensics._inputs import check_batch
from genaudit.forensics.color import rgb_to_luma
from genaudit.forensics.dct import block_dct

# ITU-T T.81 Annex K, table K.1: luminance quantization steps, row u (vertical frequency), column v.
IJG_LUMINANCE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
QUALITIES = range(30, 99)
# Steps below this are within a few rounding-noise widths of their neighbours: no comb to see.
_MIN_STEP = 3
# A score is only reported from this many coefficients off the zero tooth; flatter images score NaN (no evidence).
_MIN_COEFFICIENTS = 32
# Decision threshold on the score: 98 % of uncompressed photo crops score below 0.2 (the few that
# fall on their JPEG source photo's grid keep its comb), most of their copies at quality 30 to 95 above 0.6
# (tests/unit/test_forensics_jpeg_traces.py).
JPEG_SCORE_THRESHOLD = 0.35


def ijg_luminance_steps(quality: int) -> torch.Tensor:
    """(8, 8) float64 luminance steps libjpeg uses at ``quality`` (1..100): the Annex K table scaled by
    ``5000 / quality`` below 50 and ``200 - 2 quality`` from 50 on, in percent, rounded, clamped to [1, 255]."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    table = torch.tensor(IJG_LUMINANCE, dtype=torch.float64)
    return ((table * scale + 50) // 100).clamp(1, 255)


@functools.lru_cache(maxsize=1)
def _candidate_steps() -> torch.Tensor:
    """(len(QUALITIES), 64) steps, frequency index 8 u + v."""
    return torch.stack([ijg_luminance_steps(q).reshape(64) for q in QUALITIES])


def jpeg_comb_score(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B,) in [-1, 1]: the best, over the candidate qualities, mean of
    ``cos(2 pi c / q)`` over the AC luminance coefficients c with step q >= 3 and ``|c| >= q / 2``, on the
    block grid that starts at the top-left pixel (H and W are cut down to multiples of 8). About 0 for images that
    never went through JPEG, near 1 for JPEG'd ones; NaN where fewer than 32 coefficients count."""
    check_batch(x, channels=3)
    h, w = x.shape[2] // 8 * 8, x.shape[3] // 8 * 8
    luma = 255.0 * rgb_to_luma(x[:, :, :h, :w].double())
    coefficients = block_dct(luma[:, None], 8).flatten(2)  # (B, 64, blocks)
    coefficients[:, 0] = 0.0  # the DC term (block brightness) is shifted by JPEG's level shift: left out
    magnitudes = coefficients.abs()
    best = torch.full((len(x),), math.nan, dtype=torch.float64, device=x.device)
    for steps in _candidate_steps().to(coefficients.device)[:, None, :, None]:  # (1, 64, 1) per quality
        counted = (steps >= _MIN_STEP) & (magnitudes >= steps / 2)
        count = counted.sum(dim=(1, 2))
        mean_cosine = (torch.cos(2 * math.pi * coefficients / steps) * counted).sum(dim=(1, 2)) / count.clamp(min=1)
        # fmax skips NaN: a quality with too few coefficients to tell takes no part in the best
        best = torch.fmax(best, torch.where(count >= _MIN_COEFFICIENTS, mean_cosine, math.nan))
    return best.to(x.dtype)


def looks_uncompressed(x: torch.Tensor, threshold: float = JPEG_SCORE_THRESHOLD) -> torch.Tensor:
    """(B,) bool: :func:`jpeg_comb_score` at most ``threshold``, the evidence that an image never went through
    (IJG-table) JPEG; False for JPEG'd images and for those too flat to tell (score NaN)."""
    return jpeg_comb_score(x) <= threshold
