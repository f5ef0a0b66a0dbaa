"""Training an InGAN (``genaudit.generators.ingan``) on one image, as in Shocher et al., ICCV 2019, and its code.

Each iteration draws a random transform T: an output size (s_h H, s_w W) with s_h, s_w independent and uniform in
the schedule's current range, sides rounded to the nearest multiple of 2**downsamplings (the paper's code rounds
up to 8) and kept at least 13 px (the discriminator's patch). With x the training image (1, C, H, W) in [-1, 1]
and y = G(x + u; T) (u: uniform noise one 8-bit level wide, as the paper's code adds to G's and D's inputs so
that they do not fit the 8-bit binning):

    G step:  L_G = mean (D(y) - 1)^2 + lambda mean |G(y; T^-1) - x| + mu mean |G(x + u; id) - x|
    D step:  L_D = (mean (D(x + u') - 1)^2 + mean D(y + u'')^2) / 2                   (y detached)

the LSGAN losses and the paper's cycle (reconstruction) loss, lambda = 0.1; T^-1 maps y back to x's size. The
identity term (weight mu, ``identity_weight``) is not in the paper: 0 in ``FULL_SCHEDULE``, 1 in
``CPU_SCHEDULE``. The paper relies on G(x; id) = x emerging from the GAN and cycle losses over 75k iterations; in
the few hundred of a CPU run G instead settles on an involution (G(G(x)) = x with G(x) colour-shifted or
inverted), because the discriminator, whose batch norm sees one image at a time, cannot see a global colour
shift of a flat region. Measured with ``CPU_SCHEDULE`` but mu = 0 on a nearly flat 64 px photo crop: identity L1
0.141, the crop turned from pink to blue; with mu = 1: 0.006. The term pins G's colours and its identity map,
as SinGAN's reconstruction loss does for its fixed-noise path.

D is the multi-scale patch discriminator: its scales' maps are summed with weights w_n = f^n / sum_k f^k (n = 0
the finest), f = base^((i_even - i) / i_even) at iteration i, so that training starts on the coarse scales
(f = base > 1), weighs them evenly at i_even (f = 1) and ends on the fine ones (f < 1); only the scales whose
downscaled output keeps 13 px a side are used, for the real image too (the paper's code).

Curriculum (the paper's code's): the range of scales grows linearly from {1} at the first iteration to
[min_scale, max_scale] at ``curriculum_iterations``. Adam for both networks; the learning rate decays linearly
from ``lr_decay_start`` to zero at the last iteration.

Left out of the paper's code: random 256 px crops of larger images (the training image is capped below that),
the extra inverse-only G step after 10k iterations, crop swapping (off by default there) and non-rectangular
(homography) transforms. ``FULL_SCHEDULE`` is the paper's code's configuration, meant for a GPU with the paper's
generator (registry config base_width 64, downsamplings 3, residual_blocks 6; the registry defaults are 32, 2, 4);
it has not been run here (no GPU).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from genaudit.errors import InvalidArgument, JobCancelled
from genaudit.generators.ingan import (
    DISCRIMINATOR_MIN_SIDE,
    InGANDiscriminator,
    InGANGenerator,
    discriminator_scales,
)
from genaudit.generators.registry import get_architecture

# Width of the uniform noise added to G's and D's inputs: one 8-bit level of an image in [-1, 1].
DEQUANTIZATION_NOISE = 2.0 / 255.0


@dataclass(frozen=True)
class InGANSchedule:
    iterations: int
    lr: float  # Adam, generator and discriminator alike
    betas: tuple[float, float] = (0.5, 0.999)
    reconstruction_weight: float = 0.1  # lambda of the cycle L1 term
    identity_weight: float = 0.0  # weight of |G(x; identity) - x| (not in the paper: 0 in FULL_SCHEDULE)
    min_scale: float = 0.5  # per-axis output scale range at the end of the curriculum
    max_scale: float = 1.5
    curriculum_iterations: int = 0  # iterations until the full scale range is used; 0: from the start
    lr_decay_start: int = 0  # linear decay to zero from this iteration to the last
    disc_width: int = 64  # channels of each discriminator scale's first conv (x2 after it)
    disc_scale_factor: float = 1.4  # downscaling between the discriminator's scales
    disc_max_scales: int = 99
    scale_weights_base: float = 1.4  # f at iteration 0 (coarse scales first)
    even_scales_iteration: int = 25_000  # iteration where every scale weighs the same

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise InvalidArgument(f"iterations must be at least 1, got {self.iterations}")
        if not 0 < self.min_scale <= 1 <= self.max_scale:
            raise InvalidArgument(f"need 0 < min_scale <= 1 <= max_scale, got {self.min_scale}, {self.max_scale}")
        if self.even_scales_iteration < 1 or self.disc_max_scales < 1:
            raise InvalidArgument("even_scales_iteration and disc_max_scales must be at least 1")


# The paper's code (configs.py): 75k iterations, lr 5e-5, scales 0.15..2.25 reached at 10k iterations, D scale
# factor 1.4, scale weights even at 25k, lr decay from 20k.
FULL_SCHEDULE = InGANSchedule(
    iterations=75_000, lr=5e-5, min_scale=0.15, max_scale=2.25, curriculum_iterations=10_000,
    lr_decay_start=20_000, disc_width=64, even_scales_iteration=25_000,
)
# Reduced for one CPU core: about the full schedule's proportions (curriculum to 2/15, decay from 4/15, even scales
# at 1/3 of the run) over 750 iterations, lr 2e-4, scales 0.5..1.5, a narrower D, the identity term on.
# Measured with the registry's default config on 64 x 64 crops of offline photos (``random_crops(load_photos(), 2,
# 64, seed=0)``), one thread: 234 s of CPU time (236 s wall); crop 0 (a hazy river scene, mean |x - median| 0.141):
# final losses D 0.073, G adversarial 0.641, cycle L1 0.060, identity L1 0.034; crop 1 (nearly flat, 0.040):
# identity L1 0.006. Retargetings keep the scene's layout but lose fine detail (boats) and show vertical streaks
# where the image is stretched vertically.
CPU_SCHEDULE = InGANSchedule(
    iterations=750, lr=2e-4, identity_weight=1.0, min_scale=0.5, max_scale=1.5, curriculum_iterations=100,
    lr_decay_start=200, disc_width=32, even_scales_iteration=250,
)


@dataclass
class InGANFit:
    generator: InGANGenerator  # eval mode, on ``device``, ``source_image`` set
    # Means over the last 100 iterations: discriminator, adversarial, cycle_l1, identity (the term; 0 when off).
    losses: dict[str, float]
    identity_l1: float  # mean |G(x; identity) - x| in [-1, 1] units, eval mode
    seconds: float
    device: torch.device
    schedule: InGANSchedule


def scale_weights(iteration: int, count: int, base: float, even_iteration: int) -> list[float]:
    """The multi-scale D's weights of ``count`` scales (finest first) at ``iteration``: f^n / sum_k f^k with
    f = base^((even_iteration - iteration) / even_iteration)."""
    factor = base ** ((even_iteration - iteration) / even_iteration)
    raw = [factor**n for n in range(count)]
    total = sum(raw)
    return [w / total for w in raw]


def scale_range(iteration: int, schedule: InGANSchedule) -> tuple[float, float]:
    """The curriculum's per-axis scale range at ``iteration``: 1 + (min_scale - 1) t .. 1 + (max_scale - 1) t with
    t = min(1, iteration / curriculum_iterations) (t = 1 without a curriculum)."""
    t = min(1.0, iteration / schedule.curriculum_iterations) if schedule.curriculum_iterations > 0 else 1.0
    return 1 + (schedule.min_scale - 1) * t, 1 + (schedule.max_scale - 1) * t


def _rounded_side(side: float, multiple: int, minimum: int) -> int:
    return max(minimum, multiple * round(side / multiple))


def retarget_sizes(n: int, height: int, width: int, *, seed: int, min_scale: float = 0.5, max_scale: float = 1.5,
                   multiple: int) -> list[tuple[int, int]]:
    """``n`` seeded random output sizes (h, w): h = height * s_h, w = width * s_w with s_h, s_w independent and
    uniform in [min_scale, max_scale] (numpy ``default_rng(seed)``), each rounded to the nearest multiple of
    ``multiple`` (at least ``multiple``)."""
    if n < 1 or height < 1 or width < 1 or multiple < 1:
        raise InvalidArgument(f"n, height, width and multiple must be positive, got {n}, {height}, {width}, {multiple}")
    if not 0 < min_scale <= max_scale:
        raise InvalidArgument(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
    scales = np.random.default_rng(seed).uniform(min_scale, max_scale, size=(n, 2))
    return [(_rounded_side(height * sh, multiple, multiple), _rounded_side(width * sw, multiple, multiple))
            for sh, sw in scales]


def _check_image(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[0] != 1 or image.shape[1] not in (1, 3):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InvalidArgument(f"the training image must be a (1, 1 or 3, H, W) tensor, got {shape}")
    if not image.is_floating_point() or not torch.isfinite(image).all() or image.abs().max() > 1:
        raise InvalidArgument("the training image must be finite floats in [-1, 1]")
    if min(image.shape[-2:]) < DISCRIMINATOR_MIN_SIDE:
        raise InvalidArgument(f"InGAN needs a training image of at least {DISCRIMINATOR_MIN_SIDE} px a side (the "
                              f"discriminator's patch), got {tuple(image.shape[-2:])}")
    return image.detach().float()


def _full_config(image: torch.Tensor, config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The registry config: ``config`` with height, width and out_channels from the image where absent; present
    ones must match it."""
    from_image = {"height": image.shape[2], "width": image.shape[3], "out_channels": image.shape[1]}
    config = dict(config or {})
    wrong = {k: config[k] for k, v in from_image.items() if k in config and config[k] != v}
    if wrong:
        raise InvalidArgument(f"config {wrong} does not match the training image ({from_image})")
    return get_architecture("ingan").validate_config({**from_image, **config})


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def train_ingan(
    image: torch.Tensor,
    config: Mapping[str, Any] | None = None,
    schedule: InGANSchedule = CPU_SCHEDULE,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    check_cancelled: Callable[[], bool | None] | None = None,
    log: Callable[[str], None] | None = None,
) -> InGANFit:
    """Trains an InGAN on ``image`` ((1, C, H, W) in [-1, 1], sides >= 13 px) with ``schedule`` (module
    docstring). ``config``: registry config of "ingan" (None: the defaults at the image's size; height, width and
    out_channels must match the image). Seeded: the networks' initialization (the global RNG is left as it was),
    the transforms and the noise; bit-reproducible on a CPU for a fixed thread count (CUDA's interpolation
    backward is not deterministic). ``device``: CUDA when available by default. ``progress(done, total)`` after
    each iteration; ``check_cancelled()`` before each (JobCancelled when it returns True); ``log`` every tenth
    of the run."""
    image = _check_image(image)
    full = _full_config(image, config)
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    height, width = image.shape[-2:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = InGANGenerator(**full)
        discriminator = InGANDiscriminator(
            full["out_channels"], schedule.disc_width,
            discriminator_scales(height, width, schedule.disc_scale_factor, schedule.disc_max_scales),
            schedule.disc_scale_factor)
    generator.source_image.copy_(image)
    generator.to(device).train()
    discriminator.to(device).train()
    x = image.to(device)
    opt_g = torch.optim.Adam(generator.parameters(), schedule.lr, betas=schedule.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), schedule.lr, betas=schedule.betas)
    sizes = np.random.default_rng(seed + 1)
    noise_rng = torch.Generator().manual_seed(seed + 2)

    def noisy(t: torch.Tensor) -> torch.Tensor:
        u = torch.rand(t.shape, generator=noise_rng).sub_(0.5).mul_(DEQUANTIZATION_NOISE)
        return t + u.to(t.device)

    min_side = generator.multiple * math.ceil(DISCRIMINATOR_MIN_SIDE / generator.multiple)
    history: list[tuple[float, float, float, float]] = []
    log_every = max(1, schedule.iterations // 10)
    start = time.perf_counter()
    for i in range(schedule.iterations):
        if check_cancelled is not None and check_cancelled():
            raise JobCancelled(f"InGAN training cancelled after {i} of {schedule.iterations} iterations")
        decay = 1.0
        if i > schedule.lr_decay_start and schedule.iterations > schedule.lr_decay_start:
            decay = 1 - (i - schedule.lr_decay_start) / (schedule.iterations - schedule.lr_decay_start)
        for group in (*opt_g.param_groups, *opt_d.param_groups):
            group["lr"] = schedule.lr * decay
        lo, hi = scale_range(i, schedule)
        s_h, s_w = sizes.uniform(lo, hi, size=2)
        size = (_rounded_side(height * s_h, generator.multiple, min_side),
                _rounded_side(width * s_w, generator.multiple, min_side))
        count = min(discriminator.num_scales, discriminator_scales(*size, schedule.disc_scale_factor))
        weights = scale_weights(i, count, schedule.scale_weights_base, schedule.even_scales_iteration)

        _set_requires_grad(discriminator, False)
        fake = generator(noisy(x), size)
        adversarial = (discriminator(fake, weights) - 1).pow(2).mean()
        cycle = (generator(fake, (height, width)) - x).abs().mean()
        g_loss = adversarial + schedule.reconstruction_weight * cycle
        identity = torch.zeros((), device=device)
        if schedule.identity_weight:
            identity = (generator(noisy(x)) - x).abs().mean()
            g_loss = g_loss + schedule.identity_weight * identity
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()

        _set_requires_grad(discriminator, True)
        real_scores = discriminator(noisy(x), weights)
        fake_scores = discriminator(noisy(fake.detach()), weights)
        d_loss = 0.5 * ((real_scores - 1).pow(2).mean() + fake_scores.pow(2).mean())
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        history.append((d_loss.item(), adversarial.item(), cycle.item(), identity.item()))
        if progress is not None:
            progress(i + 1, schedule.iterations)
        if log is not None and ((i + 1) % log_every == 0 or i + 1 == schedule.iterations):
            d, a, c, e = np.mean(history[-log_every:], axis=0)
            log(f"ingan {i + 1}/{schedule.iterations}  D {d:.4f}  G adv {a:.4f}  cycle L1 {c:.4f}  "
                f"identity L1 {e:.4f}  {time.perf_counter() - start:.0f} s")
    seconds = time.perf_counter() - start
    generator.eval()
    with torch.no_grad():
        identity_l1 = (generator(x) - x).abs().mean().item()
    means = (float(v) for v in np.mean(history[-100:], axis=0))
    losses = dict(zip(("discriminator", "adversarial", "cycle_l1", "identity"), means, strict=True))
    return InGANFit(generator, losses, identity_l1, seconds, device, schedule)
