"""A small denoising diffusion model (DDPM, Ho et al. 2020) sampled with DDIM (Song et al. 2021).

Forward process with the linear schedule beta_1 .. beta_T from 1e-4 to 0.02 (T = ``timesteps``, index t = 0
is step 1): alpha_t = 1 - beta_t, alpha_bar_t = prod_{s <= t} alpha_s, and in closed form

    q(x_t | x_0) = N(sqrt(ab_t) x_0, (1 - ab_t) I),  i.e.  x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps  (ab = alpha_bar).

Training (Ho et al.'s simple loss): t ~ U{0..T-1}, eps ~ N(0, I), minimize |eps - eps_theta(x_t, t)|^2.

DDIM sampling over a descending subsequence tau_1 > ... > tau_S of the steps (``ddim_timesteps``): with
x0_hat = (x - sqrt(1 - a_t) eps_theta) / sqrt(a_t) (clipped to [-1, 1], eps then recomputed from it, as the
improved-diffusion code does) and a_t = alpha_bar at tau_i, a_p = alpha_bar at tau_{i+1} (1 after the last),

    sigma = eta sqrt((1 - a_p) / (1 - a_t)) sqrt(1 - a_t / a_p)
    x <- sqrt(a_p) x0_hat + sqrt(1 - a_p - sigma^2) eps + sigma z,   z ~ N(0, I).

eta = 0 is the deterministic sampler (a latent x_T always gives the same image); eta = 1 is DDPM-like.

``DDPMGenerator`` is a ``Generator``: its latent is x_T (flattened), its forward pass is the whole DDIM
sampler (``sample_steps`` evaluations of the UNet, eta = 0), so hooks on its layers fire once per step, in
the listed order each time. The UNet (``TinyUNet``): sinusoidal time embedding + MLP; encoder of residual
blocks (GroupNorm, SiLU, 3x3 conv, time embedding added) with stride-2 conv downsampling; decoder that
upsamples by nearest-neighbour x2 + 3x3 conv and concatenates the encoder's skip features.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from genaudit.errors import InvalidArgument
from genaudit.generators.base import Generator

BETA_START, BETA_END = 1e-4, 0.02

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t as (N,) int64) -> predicted eps


def linear_betas(timesteps: int) -> torch.Tensor:
    """Ho et al.'s linear schedule: beta_t evenly spaced from 1e-4 to 0.02 over ``timesteps`` steps (float64, on the
    CPU even while a model is built on the meta device)."""
    return torch.linspace(BETA_START, BETA_END, timesteps, dtype=torch.float64, device="cpu")


def alpha_bars(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s)."""
    return torch.cumprod(1.0 - betas, dim=0)


def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped (N, 1, 1, 1) in ``like``'s dtype and device."""
    return values.to(like.device)[t.to(like.device)].to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, for per-sample step indices ``t`` (N,)."""
    a = _at(alpha_bar, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def ddim_timesteps(timesteps: int, steps: int) -> list[int]:
    """``steps`` step indices evenly spread over 0..timesteps-1, descending (first T-1, last 0)."""
    if not 1 <= steps <= timesteps:
        raise InvalidArgument(f"DDIM steps must be in 1..{timesteps}, got {steps}")
    if steps == 1:
        return [timesteps - 1]
    return sorted({round(i * (timesteps - 1) / (steps - 1)) for i in range(steps)}, reverse=True)


@torch.no_grad()
def ddim_sample(
    eps_model: EpsModel,
    x_T: torch.Tensor,
    alpha_bar: torch.Tensor,
    steps: int,
    *,
    eta: float = 0.0,
    clip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """x_0 from x_T by the DDIM update (module docstring); ``generator`` seeds the noise z when eta > 0 (drawn on
    the CPU, so that a seed gives the same images on every device)."""
    x = x_T
    sequence = ddim_timesteps(len(alpha_bar), steps)
    ab = alpha_bar.to(torch.float64)
    for i, t in enumerate(sequence):
        a_t = ab[t].item()
        a_p = ab[sequence[i + 1]].item() if i + 1 < len(sequence) else 1.0
        eps = eps_model(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device))
        x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        if clip:
            x0 = x0.clamp(-1, 1)
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        sigma = eta * math.sqrt((1 - a_p) / (1 - a_t)) * math.sqrt(1 - a_t / a_p)
        x = math.sqrt(a_p) * x0 + math.sqrt(max(1 - a_p - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    return x


class SinusoidalEmbedding(nn.Module):
    """Transformer position encoding of the step index: [sin(t w_k), cos(t w_k)], w_k = 10000^(-k / (dim/2))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = t.float()[:, None] * freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResBlock(nn.Module):
    """h = conv1(SiLU(norm1(x))) + dense(SiLU(emb)); out = conv2(SiLU(norm2(h))) + skip(x)."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1, self.act1 = _norm(in_channels), nn.SiLU()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_act, self.emb = nn.SiLU(), nn.Linear(emb_dim, out_channels)
        self.norm2, self.act2 = _norm(out_channels), nn.SiLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act1(self.norm1(x))) + self.emb(self.emb_act(emb))[:, :, None, None]
        return self.conv2(self.act2(self.norm2(h))) + self.skip(x)


class TinyUNet(nn.Module):
    """eps_theta(x_t, t): ``levels`` resolutions, channels base_width * min(2**i, 4) at level i."""

    def __init__(self, base_width: int, levels: int, channels: int) -> None:
        super().__init__()
        widths = [base_width * min(2**i, 4) for i in range(levels)]
        emb_dim = 4 * base_width
        # At least 16 frequencies: with fewer, steps 0..999 alias and a narrow UNet can barely tell them apart.
        freq_dim = max(32, base_width)
        self.time = nn.Sequential(OrderedDict(embed=SinusoidalEmbedding(freq_dim), fc1=nn.Linear(freq_dim, emb_dim),
                                              act=nn.SiLU(), fc2=nn.Linear(emb_dim, emb_dim)))
        self.stem = nn.Conv2d(channels, base_width, 3, padding=1)
        previous = base_width
        for i, width in enumerate(widths):  # registered in forward order: enc1, down1, enc2, ..., enc{levels}
            self.add_module(f"enc{i + 1}", ResBlock(previous, width, emb_dim))
            if i + 1 < levels:
                self.add_module(f"down{i + 1}", nn.Conv2d(width, width, 3, stride=2, padding=1))
            previous = width
        self.mid = ResBlock(previous, previous, emb_dim)
        for i in reversed(range(levels)):  # dec{levels}, up{levels-1}, dec{levels-1}, ..., dec1
            self.add_module(f"dec{i + 1}", ResBlock(previous + widths[i], widths[i], emb_dim))
            previous = widths[i]
            if i > 0:
                self.add_module(f"up{i}", nn.Sequential(OrderedDict(
                    upsample=nn.Upsample(scale_factor=2, mode="nearest"),
                    conv=nn.Conv2d(widths[i], widths[i - 1], 3, padding=1))))
                previous = widths[i - 1]
        self.out = nn.Sequential(OrderedDict(norm=_norm(widths[0]), act=nn.SiLU(),
                                             conv=nn.Conv2d(widths[0], channels, 3, padding=1)))
        nn.init.zeros_(self.out.conv.weight)  # starts as eps_theta = 0, as in the DDPM code
        nn.init.zeros_(self.out.conv.bias)
        self.levels = levels

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time(t)
        h = self.stem(x)
        skips = []
        for i in range(self.levels):
            h = getattr(self, f"enc{i + 1}")(h, emb)
            skips.append(h)
            if i + 1 < self.levels:
                h = getattr(self, f"down{i + 1}")(h)
        h = self.mid(h, emb)
        for i in reversed(range(self.levels)):
            h = getattr(self, f"dec{i + 1}")(torch.cat([h, skips[i]], dim=1), emb)
            if i > 0:
                h = getattr(self, f"up{i}")(h)
        return self.out(h)


class DDPMGenerator(Generator):
    def __init__(
        self,
        base_width: int = 16,
        levels: int = 3,
        resolution: int = 64,
        out_channels: int = 3,
        timesteps: int = 1000,
        sample_steps: int = 25,
    ) -> None:
        super().__init__()
        if resolution % 2 ** (levels - 1):
            raise InvalidArgument(f"resolution {resolution} is not divisible by 2**(levels - 1) = {2 ** (levels - 1)}")
        if sample_steps > timesteps:
            raise InvalidArgument(f"sample_steps ({sample_steps}) must be <= timesteps ({timesteps})")
        self.out_channels, self.resolution = out_channels, resolution
        self.latent_dim = out_channels * resolution * resolution
        self.sample_steps = sample_steps
        self.unet = TinyUNet(base_width, levels, out_channels)
        # Derived from the config, so not part of the weights file.
        self.register_buffer("alpha_bar", alpha_bars(linear_betas(timesteps)).float(), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images for latents x_T (N, latent_dim): deterministic DDIM (eta = 0) with ``sample_steps`` steps."""
        x_T = z.view(-1, self.out_channels, self.resolution, self.resolution)
        return ddim_sample(self.unet, x_T, self.alpha_bar, self.sample_steps).clamp(-1, 1)

    def training_loss(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ho et al.'s simple loss for a batch of images in [-1, 1] (t and eps drawn on the CPU from
        ``generator``)."""
        t = torch.randint(len(self.alpha_bar), (x0.shape[0],), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        return F.mse_loss(self.unet(q_sample(x0, t, noise, self.alpha_bar), t), noise)
