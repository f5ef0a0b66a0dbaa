"""How surprising an image's pixels are to a predictor of real images: a prior of the reals that no generator
family taught (after ZED, Cozzolino et al., ECCV 2024, who score images by the coding cost of a lossless coder
trained on reals only).

A :class:`BlindSpotPredictor`, trained on real images only (:func:`train_predictor`, Gaussian negative
log-likelihood), gives every pixel of every colour channel a Gaussian ``N(mu, sigma^2)`` predicted from its
5x5 neighbourhood in all three channels without the pixel itself, and so ``z = (x - mu) / sigma``.

:func:`phase_statistics` summarizes an image by ``log mean(z^2)`` at each of the 4x4 grid phases (pixels with
the same ``(i mod 4, j mod 4)``) of each colour: 48 numbers. Upsampling by 2 or 4 leaves some phases more
predictable from their neighbours than others (interpolated pixels are nearly exact), and a generator's noise
is more or less predictable than a camera's, while in real photos every phase looks alike. A Gaussian of these
statistics over real images (:func:`fit_gaussian`, Ledoit-Wolf shrinkage, as 48 dimensions are estimated from
about a thousand images) scores an image by its squared Mahalanobis distance (:func:`mahalanobis_squared`): it
grows with any departure from the reals, whichever generator made it, so it scores families a detector's
training never showed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.covariance import LedoitWolf
from torch import nn

from genaudit.errors import InvalidArgument

PHASES = 4  # grid period of the phase statistics: covers upsampling by 2 and by 4
STATISTICS = 3 * PHASES * PHASES
# log sigma is clamped to [e^-7, e^2] (pixels in [0, 1]): a flat region's predicted sigma would otherwise go to
# 0 and its z^2 to infinity.
_LOG_SIGMA_RANGE = (-7.0, 2.0)


class BlindSpotPredictor(nn.Module):
    """``(B, 3, H, W)`` in [0, 1] -> ``(mu, log_sigma)``, each ``(B, 3, H, W)``.

    The first layer is a ``kernel x kernel`` convolution whose centre tap is masked out (in every channel), and
    every later layer is 1x1, so a pixel's prediction depends on its neighbours only, never on the pixel itself.
    Borders are reflect-padded.
    """

    def __init__(self, width: int = 32, kernel: int = 5) -> None:
        super().__init__()
        if kernel < 3 or kernel % 2 == 0:
            raise InvalidArgument(f"kernel must be odd and >= 3, got {kernel}")
        self.kernel = kernel
        self.neighbours = nn.Conv2d(3, width, kernel)
        mask = torch.ones(1, 1, kernel, kernel)
        mask[..., kernel // 2, kernel // 2] = 0
        # derived from the kernel size, not learned: kept out of the state dict
        self.register_buffer("mask", mask, persistent=False)
        self.pointwise = nn.Sequential(
            nn.GELU(), nn.Conv2d(width, width, 1), nn.GELU(), nn.Conv2d(width, width, 1), nn.GELU(),
            nn.Conv2d(width, 6, 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padded = F.pad(x, [self.kernel // 2] * 4, mode="reflect")
        hidden = F.conv2d(padded, self.neighbours.weight * self.mask, self.neighbours.bias)
        out = self.pointwise(hidden)
        return out[:, :3], out[:, 3:].clamp(*_LOG_SIGMA_RANGE)


def gaussian_nll(x: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood per pixel, without the constant: ``mean(z^2 / 2 + log sigma)``."""
    return (0.5 * ((x - mu) / log_sigma.exp()).pow(2) + log_sigma).mean()


def train_predictor(
    predictor: BlindSpotPredictor,
    reals: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    crop: int = 32,
    lr: float = 2e-3,
    log: Callable[[str], None] | None = None,
) -> list[float]:
    """Fit ``predictor`` in place on ``reals`` (N, 3, H, W) in [0, 1] with Adam on :func:`gaussian_nll`, its learning
    rate annealed from ``lr`` to 0 over the ``steps`` on a cosine, each step on ``crop`` x ``crop`` windows (one
    random offset per step) of ``batch_size`` images drawn with replacement (``torch``'s global generator: seed it
    for a reproducible fit). The predictor sees 5x5 neighbourhoods, so small windows teach it as well as whole
    images, for a fraction of the compute. Returns the loss of every step; the predictor is left in eval mode.

    The fit decides what the prior sees: with the predictor of dcgan's 1000 training reals of build fs-cpu6, the
    distance's AP on unseen sr-bilinear was 0.61 after 600 steps at a constant rate and 0.83 after 3000 annealed
    (docs/examples/surprise_prior_annealed_cpu.md)."""
    if reals.ndim != 4 or reals.shape[1] != 3 or len(reals) == 0:
        raise InvalidArgument(f"reals must be a non-empty (N, 3, H, W) batch, got {tuple(reals.shape)}")
    if steps < 1:
        raise InvalidArgument(f"steps must be >= 1, got {steps}")
    crop = min(crop, reals.shape[2], reals.shape[3])
    device = next(predictor.parameters()).device
    optimizer = torch.optim.Adam(predictor.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    predictor.train()
    losses = []
    for step in range(steps):
        top, left = (int(torch.randint(size - crop + 1, ())) for size in reals.shape[2:])
        x = reals[torch.randint(len(reals), (batch_size,)), :, top : top + crop, left : left + crop].to(device)
        loss = gaussian_nll(x, *predictor(x))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if log is not None and (step + 1) % 100 == 0:
            log(f"surprise predictor step {step + 1}/{steps}: loss {np.mean(losses[-100:]):.4f}")
    predictor.eval()
    return losses


@torch.no_grad()
def phase_statistics(predictor: BlindSpotPredictor, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1], H and W multiples of ``PHASES`` -> (B, 48): ``log mean(z^2)`` over the pixels of
    each grid phase, index ``16 c + 4 (i mod 4) + (j mod 4)`` for colour c."""
    b, c, h, w = x.shape
    if c != 3 or h % PHASES or w % PHASES:
        raise InvalidArgument(f"expected (B, 3, H, W) with H and W multiples of {PHASES}, got {tuple(x.shape)}")
    mu, log_sigma = predictor(x)
    z2 = ((x - mu) / log_sigma.exp()).pow(2)
    per_phase = z2.reshape(b, c, h // PHASES, PHASES, w // PHASES, PHASES).mean(dim=(2, 4))
    return per_phase.reshape(b, STATISTICS).log()


def fit_gaussian(statistics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and precision (D, D) of (N, D) statistics, the covariance shrunk towards a scaled identity by
    Ledoit and Wolf's closed-form weight (sklearn's ``LedoitWolf``); float64."""
    values = np.asarray(statistics, dtype=np.float64)
    if values.ndim != 2 or len(values) < 2:
        raise InvalidArgument(f"need (N, D) statistics with N >= 2, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise InvalidArgument("statistics must be finite")
    estimate = LedoitWolf().fit(values)
    return estimate.location_, estimate.precision_


def mahalanobis_squared(statistics: torch.Tensor, mean: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B,): ``(s - mean)^T precision (s - mean)`` per row."""
    centred = statistics - mean
    return ((centred @ precision) * centred).sum(dim=1)
