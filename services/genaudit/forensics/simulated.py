"""Simulated upsampling artifacts: fakes made from real images, for training detectors that generalize.

After AutoGAN (Zhang, Karaman and Chang, WIFS 2019): a detector trained on one generator learns that generator's
traces; giving it, beside that generator's fakes, real images passed through *random* upsampling layers teaches
it the trace that every upsampling layer leaves instead, without any other generator's images.

``simulate_upsampling(img, rng)``: the image (H, W divisible by ``2 ** stages``) is averaged down by 2 per stage
(``stages`` 1 or 2), then brought back up one stage at a time by a random 2x upsampling layer. A 2x layer writes
output pixel ``(2m + i, 2n + j)`` as a 3x3 filter of the low-resolution image around ``(m, n)``, one filter per
output phase ``(i, j)``: that covers nearest + conv, bilinear + conv, transposed convolution (each phase is a
sub-kernel of the transposed kernel) and pixel shuffle (each phase its own filter). Here the phase filters are a
base interpolation (nearest or bilinear, ``align_corners=False``) plus independent Gaussian perturbations, and
each phase gets its own small gain error: the phases differ, which is the periodic artifact. A random 3x3
convolution near identity follows (the generator's next conv) and a random colour mixing near identity. Finally
``detail`` in [0, 0.8] of the image's own lost high frequencies (``x - bilinear_up(down(x))``) is added back,
so that the simulations are not simply blurrier than the reals.

Every draw comes from ``rng`` in a fixed order, so a seed fixes the simulation.
"""

from __future__ import annotations

import numpy as np

from genaudit.errors import InvalidArgument
from genaudit.forensics.augment import ImageInput, as_rgb_array

# Ranges of the random layer parameters (uniform): perturbation sd of the phase filters' 9 taps, sd of the
# per-phase gain error, perturbation sd of the post convolution's taps, of the colour mixing's entries, and the
# share of lost detail added back. Subtle on purpose: with about three times these perturbations (and detail up
# to 0.5) the simulations show plain checkerboards, and a detector trained on them got no better on unseen
# families (leave one family out at the CPU caps, seed 0: 77.2 vs 77.0); with these, 79.4 vs 78.1 over 3 seeds.
PHASE_NOISE = (0.0, 0.05)
PHASE_GAIN = (0.0, 0.015)
POST_NOISE = (0.0, 0.05)
COLOUR_NOISE = (0.0, 0.05)
DETAIL = (0.0, 0.8)
TWO_STAGE_PROB = 0.3
BASES = ("nearest", "bilinear")

# 1-D bilinear weights of taps (m-1, m, m+1) for output phase 0 and 1 (x2, align_corners=False).
_BILINEAR_1D = np.array([[0.25, 0.75, 0.0], [0.0, 0.75, 0.25]])
_NEAREST_1D = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])


def _down2(x: np.ndarray) -> np.ndarray:
    """Mean over each 2x2 cell, (H, W, C) -> (H/2, W/2, C)."""
    h, w = x.shape[0] // 2, x.shape[1] // 2
    return x.reshape(h, 2, w, 2, -1).mean(axis=(1, 3))


def _filter3x3(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """3x3 correlation of every channel of (H, W, C) with ``kernel``, borders replicated."""
    pad = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = x.shape[:2]
    return sum(kernel[a, b] * pad[a : a + h, b : b + w] for a in range(3) for b in range(3))


def _phase_kernels(base: str) -> np.ndarray:
    """(2, 2, 3, 3) base filters of the four output phases of a 2x interpolation."""
    weights = _BILINEAR_1D if base == "bilinear" else _NEAREST_1D
    return np.einsum("ia,jb->ijab", weights, weights)


def _upsample_by_phases(low: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """(h, w, C) -> (2h, 2w, C): output pixel (2m + i, 2n + j) is ``kernels[i, j]`` (3x3) around (m, n)."""
    h, w, c = low.shape
    out = np.empty((2 * h, 2 * w, c))
    for i in range(2):
        for j in range(2):
            out[i::2, j::2] = _filter3x3(low, kernels[i, j])
    return out


def _random_up2(low: np.ndarray, base: str, rng: np.random.Generator) -> np.ndarray:
    """A random 2x upsampling layer, see the module docstring: (h, w, C) -> (2h, 2w, C)."""
    kernels = _phase_kernels(base) + rng.normal(0.0, rng.uniform(*PHASE_NOISE), size=(2, 2, 3, 3))
    gains = 1.0 + rng.normal(0.0, rng.uniform(*PHASE_GAIN), size=(2, 2))
    # each phase's filter sums to its gain: the perturbation changes its shape, the gain its brightness
    kernels *= (gains / kernels.sum(axis=(2, 3)))[:, :, None, None]
    post = np.zeros((3, 3))
    post[1, 1] = 1.0
    post += rng.normal(0.0, rng.uniform(*POST_NOISE), size=(3, 3))
    return _filter3x3(_upsample_by_phases(low, kernels), post / post.sum())


def simulate_upsampling(img: ImageInput, rng: np.random.Generator) -> np.ndarray:
    """A simulated fake of ``img`` (uint8 (H, W, 3), H and W divisible by 4), uint8 of the same shape."""
    array = as_rgb_array(img)
    if array.shape[0] % 4 or array.shape[1] % 4:
        raise InvalidArgument(f"simulated upsampling needs sides divisible by 4, got {array.shape[:2]}")
    x = array.astype(np.float64) / 255.0
    stages = 2 if rng.random() < TWO_STAGE_PROB else 1
    base = BASES[int(rng.integers(len(BASES)))]
    half = _down2(x)
    low = _down2(half) if stages == 2 else half
    for _ in range(stages):
        low = _random_up2(low, base, rng)
    mixing = np.eye(3) + rng.normal(0.0, rng.uniform(*COLOUR_NOISE), size=(3, 3))
    y = low @ (mixing / mixing.sum(axis=0, keepdims=True))
    lost_detail = x - _upsample_by_phases(half, _phase_kernels("bilinear"))
    y = y + rng.uniform(*DETAIL) * lost_detail
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)
