"""Training of ``genaudit.generators.singan.SinGANGenerator`` on one image (Shaham, Dekel, Michaeli, ICCV 2019).

The real image x is resized (bicubic, antialiased, clipped to [-1, 1]) to every scale of the pyramid
(``real_pyramid``). Scales are trained one after the other, coarsest first, the coarser ones frozen in eval
mode. At scale n, with G = psi_n and its residual (``SinGANScale``) and D_n a ``SinGANDiscriminator``:

- noise amplitude (paper section 2.2): sigma_0 = 1; sigma_n = ``noise_amp_factor`` (0.1) x RMSE(x_n, up(x~_{n-1}))
  where x~_{n-1} is the (frozen) reconstruction of scale n-1;
- each iteration draws z_n; ``d_steps`` (3) discriminator steps, each with a fresh random coarse image
  up(x_{n-1}) from fresh noise at every coarser scale, then ``g_steps`` (3) generator steps on the last of them;
- discriminator loss (WGAN-GP): mean D(fake) - mean D(x_n) + lambda GP with lambda = ``gradient_penalty_weight``
  (0.1). As in the authors' code, GP is taken at one random interpolate t x_n + (1 - t) fake (t ~ U(0, 1)), on the
  gradient of the summed patch scores, as the mean over pixels of (||grad||_2 over channels - 1)**2;
- generator loss: -mean D(fake) + alpha MSE(G(z*), x_n) with alpha = ``reconstruction_weight`` (10); the
  reconstruction input is z* (``reconstruction_noise``) at the coarsest scale and 0 with up(x~_{n-1}) above it;
- Adam(lr 5e-4, betas 0.5/0.999) for both networks, new per scale; lr x0.1 after 80 % of the scale's iterations;
- as in the authors' code, a scale with as many channels as the previous one starts from the previous scale's
  trained generator and discriminator (else from the DCGAN initialization).

Batch norm (the paper trains with batch size 1, so training-mode batch norm normalizes each image by its own
spatial statistics; the shipped model runs in eval mode on running statistics): at ``norm_freeze_at`` (80 %, the
lr drop) of a scale's iterations its running statistics are re-estimated as exact averages over
``norm_statistics_samples`` single-sample batches of fresh noise (per-image means and variances, what the training
normalization used; a large batch would pool the between-image variance in), and the remaining iterations train
the scale in eval mode on those fixed statistics. So the eval-mode network is exactly the network the last,
low-lr iterations optimized, for random samples and for the reconstruction alike; the next scales are trained
on top of this eval-mode network.

Seeded: the initialization (the global RNG, forked and restored) and every noise draw (a CPU generator) follow
``seed``, so the same seed and thread count give the same weights on a CPU.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genaudit.errors import InvalidArgument, JobCancelled
from genaudit.generators.registry import get_architecture
from genaudit.generators.singan import SinGANDiscriminator, SinGANGenerator

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool | None]


@dataclass(frozen=True)
class SinGANSchedule:
    """Hyper-parameters of ``train_singan`` (defaults: the paper's, ``iterations_per_scale`` aside)."""

    iterations_per_scale: int
    lr: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.999)
    d_steps: int = 3
    g_steps: int = 3
    reconstruction_weight: float = 10.0  # alpha
    gradient_penalty_weight: float = 0.1  # lambda
    noise_amp_factor: float = 0.1
    lr_drop_at: float = 0.8  # share of a scale's iterations after which lr is multiplied by lr_drop_factor
    lr_drop_factor: float = 0.1
    norm_freeze_at: float = 0.8  # share of a scale's iterations after which it trains in eval mode (docstring)
    norm_statistics_samples: int = 64

    def __post_init__(self) -> None:
        for name in ("iterations_per_scale", "d_steps", "g_steps", "norm_statistics_samples"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise InvalidArgument(f"SinGAN schedule {name} must be an int >= 1, got {value!r}")
        for name in ("lr", "reconstruction_weight", "gradient_penalty_weight", "noise_amp_factor", "lr_drop_factor"):
            if not getattr(self, name) > 0:
                raise InvalidArgument(f"SinGAN schedule {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("lr_drop_at", "norm_freeze_at"):
            if not 0 <= getattr(self, name) <= 1:
                raise InvalidArgument(f"SinGAN schedule {name} must be in [0, 1], got {getattr(self, name)!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise InvalidArgument(f"SinGAN schedule betas must be two numbers in [0, 1), got {self.betas!r}")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# The paper's schedule (2000 iterations per scale; meant for a GPU).
FULL_SCHEDULE = SinGANSchedule(iterations_per_scale=2000)
# Reduced for a CPU, the per-iteration recipe unchanged. Measured on one core (AMD EPYC, torch 2.14, one thread,
# a shared machine): a 64x64 crop of scikit-learn's china.jpg, singan_config_for(64, 64) (5 scales 25..64 px, 32
# channels, 64 at the finest) trains in 268 CPU s (scales 21, 23, 31, 41, 151 s); reconstruction RMSE 0.076 in
# [-1, 1] units (28 dB PSNR), random samples 0.35-0.45 from the image and from one another.
CPU_SCHEDULE = SinGANSchedule(iterations_per_scale=100)


@dataclass
class SinGANScaleFit:
    """What training one scale gave. Losses: means over the scale's last 10 % of iterations (at least one)."""

    size: tuple[int, int]
    width: int  # channels
    noise_amp: float  # sigma_n
    discriminator_loss: float  # WGAN-GP critic loss, penalty included
    adversarial_loss: float  # -mean D(fake)
    reconstruction_loss: float  # MSE(G(z*), x_n), before the alpha weight
    reconstruction_rmse: float  # of the final (eval-mode) reconstruction at this scale, in [-1, 1] units
    seconds: float


@dataclass
class SinGANFit:
    generator: SinGANGenerator  # in eval mode, on ``device``
    config: dict[str, int]  # the registry config it was built with (for ``save_generator(..., "singan", config)``)
    scales: list[SinGANScaleFit]  # coarsest first
    seconds: float
    device: torch.device
    schedule: SinGANSchedule
    seed: int


def singan_config_for(
    height: int,
    width: int,
    *,
    coarsest_side: int = 25,
    scale_factor: float = 0.75,
    base_width: int = 32,
    max_width: int = 128,
    out_channels: int = 3,
) -> dict[str, int]:
    """The registry config of a SinGAN for an image of ``height`` x ``width``: as the paper's code, the coarsest
    shorter side is ``coarsest_side`` (25 px; at most the image's shorter side) and num_scales =
    ceil(log(coarsest_side / min side) / log(scale_factor)) + 1, so the pyramid's actual factor is about
    ``scale_factor`` (at least it); num_scales and coarsest_side are clamped to the registry's bounds."""
    if not 0 < scale_factor < 1:
        raise InvalidArgument(f"scale_factor must be in (0, 1), got {scale_factor}")
    params = get_architecture("singan").params
    shorter = min(height, width)
    coarsest = max(params["coarsest_side"].minimum, min(coarsest_side, shorter, params["coarsest_side"].maximum))
    steps = math.ceil(math.log(coarsest / shorter) / math.log(scale_factor) - 1e-9) if coarsest < shorter else 0
    num_scales = max(params["num_scales"].minimum, min(steps + 1, params["num_scales"].maximum))
    return get_architecture("singan").validate_config({
        "height": height, "width": width, "num_scales": num_scales, "coarsest_side": coarsest,
        "base_width": base_width, "max_width": max_width, "out_channels": out_channels,
    })


def real_pyramid(image: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """``image`` (1, C, H, W) resized to each (h, w) of ``sizes`` (bicubic, antialiased, clipped to [-1, 1]); a
    size equal to the image's gives the image itself."""
    return [image if tuple(image.shape[-2:]) == size else
            F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)
            for size in sizes]


def train_singan(
    image: torch.Tensor,
    config: Mapping[str, Any] | None = None,
    schedule: SinGANSchedule = CPU_SCHEDULE,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
    check_cancelled: CancelCheck | None = None,
    log: Callable[[str], None] | None = None,
) -> SinGANFit:
    """A SinGAN trained on ``image`` ((1, C, H, W) float in [-1, 1], e.g. ``training_image.training_tensor``) as
    the module docstring says. ``config``: registry config whose height, width and out_channels are the image's
    (None: ``singan_config_for(H, W, out_channels=C)``). ``progress(done, total)`` after each iteration, counted
    over all scales; ``check_cancelled()`` before each (True, or its own exception, aborts: JobCancelled).
    ``device``: default CUDA when available."""
    full = _checked_config(image, config)
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available()
                                                                            else "cpu")
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = SinGANGenerator(**full).to(device)
        rng = torch.Generator().manual_seed(seed + 1)
        reals = real_pyramid(image.to(device, torch.float32), generator.scale_sizes)
        generator.requires_grad_(False).eval()
        total = generator.num_scales * schedule.iterations_per_scale
        reports: list[SinGANScaleFit] = []
        discriminator: SinGANDiscriminator | None = None
        reconstruction: torch.Tensor | None = None
        for n in range(generator.num_scales):
            if n > 0 and generator.scale_widths[n] == generator.scale_widths[n - 1]:
                generator.scales[n].load_state_dict(generator.scales[n - 1].state_dict())
                discriminator = copy.deepcopy(discriminator)
            else:
                discriminator = SinGANDiscriminator(full["out_channels"], generator.scale_widths[n]).to(device)
            trainer = _ScaleTrainer(generator, n, discriminator, reals[n], reconstruction, schedule, rng, device)
            report, reconstruction = trainer.run(
                lambda i, n=n: progress(n * schedule.iterations_per_scale + i, total) if progress else None,
                check_cancelled,
            )
            reports.append(report)
            if log is not None:
                log(f"singan scale {n + 1}/{generator.num_scales} {report.size[0]}x{report.size[1]} "
                    f"width {report.width}: sigma {report.noise_amp:.4f}  D {report.discriminator_loss:.3f}  "
                    f"G adv {report.adversarial_loss:.3f}  rec MSE {report.reconstruction_loss:.5f}  "
                    f"rec RMSE {report.reconstruction_rmse:.4f}  {report.seconds:.1f} s")
    generator.requires_grad_(True).eval()  # as load_generator returns it
    return SinGANFit(generator, full, reports, time.perf_counter() - start, device, schedule, seed)


def _checked_config(image: torch.Tensor, config: Mapping[str, Any] | None) -> dict[str, int]:
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[0] != 1 or image.shape[1] not in (1, 3):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InvalidArgument(f"SinGAN trains on one image of shape (1, C, H, W) with C = 1 or 3, got {shape}")
    if not image.is_floating_point() or not torch.isfinite(image).all() or image.abs().max() > 1:
        raise InvalidArgument("the SinGAN training image must be float values in [-1, 1]")
    _, channels, height, width = image.shape
    if config is None:
        return singan_config_for(height, width, out_channels=channels)
    full = get_architecture("singan").validate_config(config)
    if (full["height"], full["width"], full["out_channels"]) != (height, width, channels):
        raise InvalidArgument(
            f"SinGAN config is for {full['out_channels']} x {full['height']} x {full['width']} images, the training "
            f"image is {channels} x {height} x {width}")
    if full["coarsest_side"] > min(height, width):
        raise InvalidArgument(f"SinGAN config coarsest_side {full['coarsest_side']} exceeds the image's shorter side "
                              f"{min(height, width)}")
    return full


class _ScaleTrainer:
    """Training of scale n of ``generator`` (module docstring); scales < n are trained and frozen."""

    def __init__(
        self,
        generator: SinGANGenerator,
        n: int,
        discriminator: SinGANDiscriminator,
        real: torch.Tensor,
        coarser_reconstruction: torch.Tensor | None,
        schedule: SinGANSchedule,
        rng: torch.Generator,
        device: torch.device,
    ) -> None:
        self.g, self.n, self.d, self.real, self.schedule, self.rng, self.device = (
            generator, n, discriminator, real, schedule, rng, device)
        self.scale = generator.scales[n]
        channels, (h, w) = generator.out_channels, generator.scale_sizes[n]
        if n == 0:
            self.reconstruction_noise = generator.reconstruction_noise
            self.reconstruction_previous = torch.zeros_like(real)
            amp = 1.0
        else:
            self.reconstruction_noise = torch.zeros(1, channels, h, w, device=device)
            self.reconstruction_previous = generator.upsample(coarser_reconstruction, n)
            amp = schedule.noise_amp_factor * F.mse_loss(self.reconstruction_previous, real).sqrt().item()
        generator.noise_amp[n] = amp

    def _noise(self, scale: int) -> torch.Tensor:
        h, w = self.g.scale_sizes[scale]
        return torch.randn(1, self.g.out_channels, h, w, generator=self.rng).to(self.device)

    @torch.no_grad()
    def _random_previous(self) -> torch.Tensor:
        """up(x_{n-1}) of a random sample of the frozen coarser scales (zeros at n = 0)."""
        if self.n == 0:
            return torch.zeros_like(self.real)
        x = None
        for k in range(self.n):
            x = self.g.scale_step(k, self._noise(k), x)
        return self.g.upsample(x, self.n)

    def _fake(self, noise: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return self.scale(self.g.noise_amp[self.n] * noise, previous)

    def _gradient_penalty(self, fake: torch.Tensor) -> torch.Tensor:
        t = torch.rand((), generator=self.rng).item()
        mixed = (t * self.real + (1 - t) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.d(mixed).sum(), mixed, create_graph=True)
        return ((grad.norm(2, dim=1) - 1) ** 2).mean()

    @torch.no_grad()
    def _estimate_norm_statistics(self) -> None:
        """Running statistics of the scale's batch norms = exact averages over single-sample batches."""
        norms = [m for m in self.scale.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        self.scale.train()
        for _ in range(self.schedule.norm_statistics_samples):
            self._fake(self._noise(self.n), self._random_previous())
        for m in norms:
            m.momentum = 0.1
        self.scale.eval()

    def run(self, progress: Callable[[int], None], check_cancelled: CancelCheck | None
            ) -> tuple[SinGANScaleFit, torch.Tensor]:
        s, start = self.schedule, time.perf_counter()
        iterations = s.iterations_per_scale
        lr_drop, norm_freeze = round(s.lr_drop_at * iterations), round(s.norm_freeze_at * iterations)
        params = list(self.scale.parameters())
        self.scale.requires_grad_(True).train()
        self.d.requires_grad_(True).train()
        opt_g = torch.optim.Adam(params, s.lr, betas=s.betas, fused=True)
        opt_d = torch.optim.Adam(self.d.parameters(), s.lr, betas=s.betas, fused=True)
        history: list[tuple[float, float, float]] = []
        for i in range(iterations):
            if check_cancelled is not None and check_cancelled():
                raise JobCancelled("SinGAN training cancelled")
            if i == lr_drop:
                for opt in (opt_g, opt_d):
                    for group in opt.param_groups:
                        group["lr"] *= s.lr_drop_factor
            if i == norm_freeze:
                self._estimate_norm_statistics()
            noise = self._noise(self.n)
            for _ in range(s.d_steps):
                previous = self._random_previous()
                with torch.no_grad():
                    fake = self._fake(noise, previous)
                d_loss = (self.d(fake).mean() - self.d(self.real).mean()
                          + s.gradient_penalty_weight * self._gradient_penalty(fake))
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            self.d.requires_grad_(False)
            for _ in range(s.g_steps):
                adversarial = -self.d(self._fake(noise, previous)).mean()
                reconstruction = F.mse_loss(self._fake(self.reconstruction_noise, self.reconstruction_previous),
                                            self.real)
                opt_g.zero_grad(set_to_none=True)
                (adversarial + s.reconstruction_weight * reconstruction).backward()
                opt_g.step()
            self.d.requires_grad_(True)
            history.append((d_loss.item(), adversarial.item(), reconstruction.item()))
            progress(i + 1)
        if norm_freeze >= iterations:  # no eval-mode phase: statistics for the final weights
            self._estimate_norm_statistics()
        self.scale.requires_grad_(False).eval()
        with torch.no_grad():
            final = self._fake(self.reconstruction_noise, self.reconstruction_previous)
        d_final, adv_final, rec_final = np.mean(history[-max(1, iterations // 10):], axis=0)
        report = SinGANScaleFit(
            size=self.g.scale_sizes[self.n], width=self.g.scale_widths[self.n],
            noise_amp=float(self.g.noise_amp[self.n]), discriminator_loss=float(d_final),
            adversarial_loss=float(adv_final), reconstruction_loss=float(rec_final),
            reconstruction_rmse=F.mse_loss(final, self.real).sqrt().item(), seconds=time.perf_counter() - start,
        )
        return report, final
