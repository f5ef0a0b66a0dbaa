"""Training recipes of the reference generators we ship (seeded, reproducible on one machine and thread count).

``train(recipe, out_dir, ...)`` trains one recipe and writes ``<name>.safetensors``, its JSON card and a sample
grid PNG into ``out_dir``; ``scripts/train_generator.py`` is the command line. Every recipe names its full
scale (what it is meant for on a GPU) and the scale it may be reduced to on a CPU; the card records the one
used. Loss: non-saturating GAN loss (softplus form), Adam(2e-4, betas 0.5/0.999) for both networks, one D step
per G step. After training, DCGAN's batch-norm running statistics are re-estimated as exact averages over
fresh batches, because the exponential averages of the last steps describe a moving generator and the
shipped model is used in eval mode (hooks see per-sample activations).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genaudit.features.weights import sha256_file
from genaudit.generators.loading import save_generator
from genaudit.generators.registry import build_discriminator, build_generator, get_architecture
from genaudit.generators.sampling import from_uint8, to_uint8
from genaudit.reports.grids import image_grid, png_bytes


@dataclass(frozen=True)
class Scale:
    iterations: int
    batch_size: int
    base_width: int  # generator; the discriminator uses the same unless disc_width is set
    disc_width: int | None = None


@dataclass(frozen=True)
class Recipe:
    name: str
    arch: str
    data: str  # human-readable description of the training data, for the card
    config: dict  # generator config, base_width aside (it comes from the scale)
    full: Scale
    cpu: Scale
    load_images: Callable[[Path, int], torch.Tensor] = field(repr=False)  # (cache_dir, seed) -> float in [-1, 1]
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    seed: int = 0


def fashion_mnist_32px(cache_dir: Path, seed: int) -> torch.Tensor:
    """All 70,000 Fashion-MNIST images, zero-padded to 32x32 (background stays black), in [-1, 1]."""
    from genaudit.data.fashion_mnist import load

    images, _ = load(cache_dir)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return from_uint8(padded[..., None])


def photo_crops_64px(cache_dir: Path, seed: int, count: int = 8192) -> torch.Tensor:
    """``count`` random 64 px crops of the offline photos (uint8 storage would be smaller; 400 MB of float
    is fine for a training run)."""
    from genaudit.data.offline_photos import load_photos, random_crops

    crops = [np.asarray(im) for _, im in random_crops(load_photos(), count, 64, seed)]
    return from_uint8(np.stack(crops))


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="dcgan-fashion",
            arch="dcgan",
            data="Fashion-MNIST train+test (70,000 images, Debian dataset-fashion-mnist), zero-padded to 32x32",
            config={"latent_dim": 64, "resolution": 32, "out_channels": 1},
            full=Scale(iterations=20_000, batch_size=128, base_width=64),
            cpu=Scale(iterations=3000, batch_size=64, base_width=32),
            load_images=fashion_mnist_32px,
        ),
        Recipe(
            name="pggan-photos",
            arch="pggan",
            data="8,192 random 64x64 crops (seeded) of the offline photos bundled in scikit-image, scikit-learn, "
                 "matplotlib; horizontal flips",
            config={"latent_dim": 128, "max_width": 128, "resolution": 64, "out_channels": 3, "equalized_lr": True},
            full=Scale(iterations=50_000, batch_size=64, base_width=32),
            cpu=Scale(iterations=1200, batch_size=32, base_width=8),
            load_images=photo_crops_64px,
        ),
    )
}


@dataclass
class TrainingResult:
    weights: Path
    card: Path
    samples: Path
    seconds: float
    iterations: int
    final_d_loss: float  # mean over the last 100 iterations
    final_g_loss: float


@dataclass
class GANFit:
    generator: nn.Module  # in eval mode, on ``device``
    history: list[tuple[float, float]]  # (D loss, G loss) per iteration
    seconds: float
    device: torch.device


def fit_gan(
    arch: str,
    config: dict,
    scale: Scale,
    data: torch.Tensor,
    *,
    name: str,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    seed: int = 0,
    log_every: int = 100,
    log: Callable[[str], None] = print,
) -> GANFit:
    """Trains a generator of ``arch``/``config`` (base_width from ``scale``) against its discriminator on
    ``data`` (float images in [-1, 1]) with the module's GAN loss, on the GPU when there is one."""
    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = {**config, "base_width": scale.base_width}
    generator = build_generator(arch, config).to(device)
    discriminator = build_discriminator(arch, config, base_width=scale.disc_width).to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr, betas=betas)
    batches = torch.Generator().manual_seed(seed + 1)
    latents = torch.Generator().manual_seed(seed + 2)
    history: list[tuple[float, float]] = []
    start = time.perf_counter()
    for step in range(1, scale.iterations + 1):
        real = random_batch(data, scale.batch_size, batches).to(device)
        fake = generator(generator.sample_latents(scale.batch_size, latents))
        # Non-saturating loss: D minimizes softplus(-D(real)) + softplus(D(fake)); G minimizes softplus(-D(fake)).
        d_loss = F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-discriminator(fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        history.append((d_loss.item(), g_loss.item()))
        if step % log_every == 0 or step == scale.iterations:
            d_mean, g_mean = np.mean(history[-log_every:], axis=0)
            log(f"{name} step {step}/{scale.iterations}  D {d_mean:.3f}  G {g_mean:.3f}  "
                f"{time.perf_counter() - start:.0f} s")
    seconds = time.perf_counter() - start
    _recalibrate_batch_norm(generator, scale.batch_size, latents)
    return GANFit(generator.eval(), history, seconds, device)


def describe_scale(used: str, scale: Scale, full: Scale, *, adversarial: bool = True) -> str:
    """The card's line on the scale that trained the weights (``used``: "full", "cpu" or "tiny")."""
    if used == "full":
        return "full recipe"
    label = {"cpu": "CPU reduced scale", "tiny": "tiny scale (tests only)"}[used]
    disc = f" (discriminator {scale.disc_width or scale.base_width})" if adversarial else ""
    return (f"{label}: {scale.iterations} iterations, batch {scale.batch_size}, width {scale.base_width}{disc}; "
            f"the full recipe ({full.iterations} iterations, batch {full.batch_size}, width {full.base_width}) is for "
            "a GPU")


def train(
    recipe_name: str,
    out_dir: Path,
    cache_dir: Path,
    *,
    cpu_scale: bool = True,
    iterations: int | None = None,
    log_every: int = 100,
    log: Callable[[str], None] = print,
) -> TrainingResult:
    recipe = RECIPES[recipe_name]
    scale = recipe.cpu if cpu_scale else recipe.full
    if iterations is not None:
        scale = Scale(iterations, scale.batch_size, scale.base_width, scale.disc_width)
    data = recipe.load_images(cache_dir, recipe.seed)
    config = {**recipe.config, "base_width": scale.base_width}
    fit = fit_gan(recipe.arch, config, scale, data, name=recipe.name, lr=recipe.lr, betas=recipe.betas,
                  seed=recipe.seed, log_every=log_every, log=log)
    generator, history, seconds = fit.generator, fit.history, fit.seconds

    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{recipe.name}.safetensors"
    save_generator(generator, weights, recipe.arch, config)
    samples = out_dir / f"{recipe.name}-samples.png"
    save_sample_grid(generator, samples, torch.Generator().manual_seed(1234))
    d_final, g_final = (float(v) for v in np.mean(history[-100:], axis=0))
    card = out_dir / f"{recipe.name}.json"
    card.write_text(json.dumps({
        "name": recipe.name,
        "arch": recipe.arch,
        "config": get_architecture(recipe.arch).validate_config(config),
        "recipe": {"loss": "non-saturating GAN", "optimizer": f"Adam(lr={recipe.lr}, betas={list(recipe.betas)})",
                   "full_scale": asdict(recipe.full), "cpu_scale": asdict(recipe.cpu)},
        "data": recipe.data,
        "scale": describe_scale("cpu" if cpu_scale else "full", scale, recipe.full),
        "scale_used": asdict(scale),
        "device": str(fit.device),
        "threads": torch.get_num_threads(),
        "seed": recipe.seed,
        "training_seconds": round(seconds, 1),
        "final_losses_last_100": {"discriminator": round(d_final, 4), "generator": round(g_final, 4)},
        "weights_file": weights.name,
        "sha256": sha256_file(weights),
        "parameters": sum(p.numel() for p in generator.parameters()),
        "date": datetime.date.today().isoformat(),
        "command": f"python scripts/train_generator.py --recipe {recipe.name} --out <dir>"
                   + ("" if cpu_scale else " --full"),
    }, indent=2) + "\n")
    return TrainingResult(weights, card, samples, seconds, scale.iterations, d_final, g_final)


def random_batch(data: torch.Tensor, batch_size: int, rng: torch.Generator) -> torch.Tensor:
    """``batch_size`` images drawn with replacement from ``data``; RGB ones are flipped left-right at random."""
    batch = data[torch.randint(len(data), (batch_size,), generator=rng)]
    if batch.shape[1] == 3:  # photos: random horizontal flips; Fashion-MNIST items have a canonical side
        flip = torch.rand(batch_size, generator=rng) < 0.5
        batch[flip] = batch[flip].flip(-1)
    return batch


@torch.no_grad()
def _recalibrate_batch_norm(generator: nn.Module, batch_size: int, rng: torch.Generator, batches: int = 50) -> None:
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    generator.train()
    for _ in range(batches):
        generator(generator.sample_latents(batch_size, rng))
    for m in norms:
        m.momentum = 0.1


@torch.no_grad()
def save_sample_grid(generator: nn.Module, path: Path, rng: torch.Generator, rows: int = 6) -> None:
    """A rows x rows PNG grid of samples for fixed latents (``reports.grids.image_grid``)."""
    path.write_bytes(png_bytes(image_grid(to_uint8(generator(generator.sample_latents(rows * rows, rng))), rows)))
