"""A trained family's files: ``<family>.safetensors`` (``save_generator``), its JSON card, a sample grid PNG.

The card has the fields of the shipped generators' cards (``genaudit.generators.recipes``: name, arch,
config, recipe, data, scale, scale_used, device, threads, seed, training_seconds, final losses, weights_file,
sha256, parameters, date, command) and the family's method, upsampling and what its fakes are.

A single-image family (one SinGAN per training crop) has one ``<family>-NN.safetensors`` and card per model
(``save_single_image_models``; the card adds the training crop's digest, the schedule and per-scale figures)
and one grid ``<family>-samples.png`` with a row of samples of every model.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genaudit.features.weights import sha256_file
from genaudit.forensics.synth.fakes import generate
from genaudit.forensics.synth.recipes import FamilyRecipe
from genaudit.forensics.synth.training import TrainedGenerator
from genaudit.generators.base import ImageToImage
from genaudit.generators.loading import save_generator
from genaudit.generators.recipes import describe_scale, save_sample_grid
from genaudit.generators.registry import get_architecture
from genaudit.reports.grids import image_grid, png_bytes
from genaudit.singleimage.singan_training import SinGANFit

GRID_SEED = 1234
GRID_ROWS = {"full": 6, "cpu": 6, "tiny": 2}  # tiny: a small grid keeps test builds fast


def model_name(family: str, index: int) -> str:
    """File stem of model ``index`` of a single-image family: ``<family>-00``, ``<family>-01``, ..."""
    return f"{family}-{index:02d}"


def save_trained(
    folder: Path,
    recipe: FamilyRecipe,
    scale_name: str,
    trained: TrainedGenerator,
    *,
    seed: int,
    data: str,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Writes the three files into ``folder`` and returns the card. ``pairs`` (sources, fakes) fill the grid of an
    image-to-image family: each real source beside its generated counterpart, 3 pairs per row."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = folder / f"{recipe.family}-samples.png"
    rows = GRID_ROWS[scale_name]
    if isinstance(trained.model, ImageToImage):
        if pairs is None:
            raise ValueError("an image-to-image family's grid needs (sources, fakes) pairs")
        sources, fakes = (a[: rows * rows // 2] for a in pairs)
        interleaved = np.stack([sources, fakes], axis=1).reshape(-1, *sources.shape[1:])
        samples.write_bytes(png_bytes(image_grid(interleaved, rows)))
        grid = f"pairs (held-out real crop, its generated counterpart) from the test split, {rows // 2} per row"
    else:
        save_sample_grid(trained.model, samples, torch.Generator().manual_seed(GRID_SEED), rows=rows)
        grid = f"{rows}x{rows} samples for latents seeded {GRID_SEED}"
    scale = recipe.scale(scale_name)
    training = {
        "device": str(trained.device),
        "threads": torch.get_num_threads(),
        "seed": seed,
        "training_seconds": round(trained.seconds, 1),
        "final_losses_last_100": trained.final_losses,
    }
    return _save_model(folder, recipe.family, recipe, scale_name, trained.model, trained.config, data=data,
                       scale_line=describe_scale(scale_name, scale, recipe.full, adversarial=recipe.method == "gan"),
                       training=training, samples_file=samples.name, samples=grid)


def save_single_image_models(
    folder: Path,
    recipe: FamilyRecipe,
    scale_name: str,
    fits: Sequence[SinGANFit],
    crops: np.ndarray,
    *,
    seeds: Sequence[int],
    data: Sequence[str],
) -> list[dict[str, Any]]:
    """Writes model k of a single-image family (trained on crops[k], uint8 (64, 64, 3), with seed seeds[k],
    described by data[k]) as
    ``model_name(family, k)`` .safetensors + .json, then the grid of every model, and returns the cards.

    Grid: row k holds model k's first GRID_ROWS[scale] samples for latents seeded GRID_SEED (``generate``)."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = GRID_ROWS[scale_name]
    samples = folder / f"{recipe.family}-samples.png"
    rows = [generate(fit.generator, columns, seed=GRID_SEED) for fit in fits]
    samples.write_bytes(png_bytes(image_grid(np.concatenate(rows), columns)))
    scale_line = _single_image_scale_line(recipe, scale_name)
    cards = []
    for k, (fit, crop, seed, about) in enumerate(zip(fits, crops, seeds, data, strict=True)):
        finest = fit.scales[-1]
        training = {
            "model": k,
            "models": len(fits),
            "training_crop_sha256": hashlib.sha256(np.ascontiguousarray(crop).tobytes()).hexdigest(),
            "schedule": {**fit.schedule.as_dict(), "betas": list(fit.schedule.betas)},
            "device": str(fit.device),
            "threads": torch.get_num_threads(),
            "seed": seed,
            "training_seconds": round(fit.seconds, 1),
            # Means over the last 10 % of the finest scale's iterations (``SinGANScaleFit``).
            "final_losses": {"discriminator": round(finest.discriminator_loss, 4),
                             "adversarial": round(finest.adversarial_loss, 4),
                             "reconstruction_mse": round(finest.reconstruction_loss, 6)},
            "pyramid": [{**asdict(s), "size": list(s.size), "seconds": round(s.seconds, 1)} for s in fit.scales],
        }
        grid = (f"one row per model ({len(fits)} rows; this model's is row {k + 1}), {columns} samples each for "
                f"latents seeded {GRID_SEED}")
        cards.append(_save_model(folder, model_name(recipe.family, k), recipe, scale_name, fit.generator, fit.config,
                                 data=about, scale_line=scale_line, training=training,
                                 samples_file=samples.name, samples=grid))
    return cards


def _single_image_scale_line(recipe: FamilyRecipe, scale_name: str) -> str:
    """The card's line on the scale, as ``describe_scale``'s but in a single-image family's terms."""
    def terms(name: str) -> str:
        scale = recipe.scale(name)
        return (f"{recipe.training_crops[name]} models, one per training crop, {scale.iterations} iterations per "
                f"pyramid scale, one image per batch, width {scale.base_width}")

    if scale_name == "full":
        return f"full recipe: {terms('full')}"
    label = {"cpu": "CPU reduced scale", "tiny": "tiny scale (tests only)"}[scale_name]
    return f"{label}: {terms(scale_name)}; the full recipe ({terms('full')}) is for a GPU"


def _save_model(
    folder: Path, name: str, recipe: FamilyRecipe, scale_name: str, model: nn.Module, config: dict, *, data: str,
    scale_line: str, training: dict[str, Any], samples_file: str, samples: str,
) -> dict[str, Any]:
    """``name``.safetensors and the card ``name``.json (``training``: the fields on how it was trained)."""
    weights = folder / f"{name}.safetensors"
    save_generator(model, weights, recipe.arch, config)
    card = {
        "name": name,
        "family": recipe.family,
        "arch": recipe.arch,
        "config": get_architecture(recipe.arch).validate_config(config),
        "method": recipe.method,
        "upsampling": recipe.upsampling,
        "fakes": recipe.fakes,
        "recipe": recipe.describe(),
        "data": data,
        "scale": scale_line,
        "scale_name": scale_name,
        "scale_used": asdict(recipe.scale(scale_name)),
        **training,
        "weights_file": weights.name,
        "sha256": sha256_file(weights),
        "parameters": sum(p.numel() for p in model.parameters()),
        "samples_file": samples_file,
        "samples": samples,
        "notes": recipe.notes,
        "date": datetime.date.today().isoformat(),
        "command": f"genaudit forensics build --out <dir> --scale {scale_name} --families {recipe.family}",
    }
    (folder / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
