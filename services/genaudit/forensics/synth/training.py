"""Training one family's generator on real crops (on the GPU when there is one).

GANs train with ``genaudit.generators.recipes.fit_gan``. The other methods minimize one loss per batch with
Adam (batches drawn with replacement, random left-right flips, ``random_batch``):

- autoencoder: mean squared error between ``model(x)`` and x;
- superres: L1 between ``model(model.prepare(x))`` (the x4 downscaled input, super-resolved) and x;
- diffusion: the DDPM simple loss (``DDPMGenerator.training_loss``).

A single-image family (SinGAN) trains one model per crop, each on that crop alone, with
``genaudit.singleimage.singan_training.train_singan`` (``train_single_image_models``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genaudit.forensics.synth.crops import to_model_range
from genaudit.forensics.synth.recipes import FamilyRecipe
from genaudit.generators.recipes import fit_gan, random_batch
from genaudit.generators.registry import build_generator
from genaudit.singleimage.singan_training import SinGANFit, train_singan


@dataclass
class TrainedGenerator:
    model: nn.Module  # in eval mode, on ``device``
    config: dict  # the config it was built with (base_width included)
    seconds: float
    final_losses: dict[str, float]  # mean over the last 100 iterations
    device: torch.device


def _loss(method: str, model: nn.Module, x: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
    if method == "autoencoder":
        return F.mse_loss(model(x), x)
    if method == "superres":
        return F.l1_loss(model(model.prepare(x)), x)
    return model.training_loss(x, noise)  # diffusion


def train_generator(
    recipe: FamilyRecipe, scale_name: str, crops: np.ndarray, *, seed: int, log: Callable[[str], None] = print
) -> TrainedGenerator:
    """Trains ``recipe``'s generator at scale ``scale_name`` on uint8 crops (N, 64, 64, 3)."""
    scale = recipe.scale(scale_name)
    data = to_model_range(crops)
    log_every = max(1, min(100, scale.iterations // 10))
    config = {**recipe.config, "base_width": scale.base_width}
    if recipe.method == "gan":
        fit = fit_gan(recipe.arch, config, scale, data, name=recipe.family, lr=recipe.lr, betas=recipe.betas,
                      seed=seed, log_every=log_every, log=log)
        d_loss, g_loss = np.mean(fit.history[-100:], axis=0)
        return TrainedGenerator(fit.generator, config, fit.seconds,
                                {"discriminator": round(float(d_loss), 4), "generator": round(float(g_loss), 4)},
                                fit.device)

    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_generator(recipe.arch, config).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), recipe.lr, betas=recipe.betas)
    batches = torch.Generator().manual_seed(seed + 1)
    noise = torch.Generator().manual_seed(seed + 2)
    history: list[float] = []
    start = time.perf_counter()
    for step in range(1, scale.iterations + 1):
        loss = _loss(recipe.method, model, random_batch(data, scale.batch_size, batches).to(device), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
        if step % log_every == 0 or step == scale.iterations:
            log(f"{recipe.family} step {step}/{scale.iterations}  loss {np.mean(history[-log_every:]):.4f}  "
                f"{time.perf_counter() - start:.0f} s")
    seconds = time.perf_counter() - start
    return TrainedGenerator(model.eval(), config, seconds, {"loss": round(float(np.mean(history[-100:])), 5)},
                            device)


def train_single_image_models(
    recipe: FamilyRecipe, scale_name: str, crops: np.ndarray, *, seeds: Sequence[int],
    log: Callable[[str], None] = print,
) -> list[SinGANFit]:
    """One SinGAN per uint8 crop (N, 64, 64, 3), model k trained on crops[k] alone with seed seeds[k], at the
    recipe's schedule for ``scale_name`` (``FamilyRecipe.singan_schedule``); on the GPU when there is one."""
    if len(seeds) != len(crops):
        raise ValueError(f"{len(crops)} crops need as many seeds, got {len(seeds)}")
    schedule = recipe.singan_schedule(scale_name)
    config = {**recipe.config, "base_width": recipe.scale(scale_name).base_width}
    fits = []
    for k, (crop, seed) in enumerate(zip(crops, seeds, strict=True)):
        fit = train_singan(to_model_range(crop[None]), config, schedule, seed=seed,
                           log=lambda line, k=k: log(f"{recipe.family} model {k + 1}/{len(crops)}: {line}"))
        log(f"{recipe.family} model {k + 1}/{len(crops)} trained in {fit.seconds:.0f} s")
        fits.append(fit)
    return fits
