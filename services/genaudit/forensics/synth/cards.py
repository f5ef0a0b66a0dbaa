"""A trained family's files: ``<family>.safetensors`` (``save_generator``), its JSON card, a sample grid PNG.

The card has the fields of the shipped generators' cards (``genaudit.generators.recipes``: name, arch,
config, recipe, data, scale, scale_used, device, threads, seed, training_seconds, final losses, weights_file,
sha256, parameters, date, command) and the family's method, upsampling and what its fakes are.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genaudit.features.weights import sha256_file
from genaudit.forensics.synth.recipes import FamilyRecipe
from genaudit.forensics.synth.training import TrainedGenerator
from genaudit.generators.base import ImageToImage
from genaudit.generators.loading import save_generator
from genaudit.generators.recipes import describe_scale, save_sample_grid
from genaudit.generators.registry import get_architecture
from genaudit.reports.grids import image_grid, png_bytes

GRID_SEED = 1234
GRID_ROWS = {"full": 6, "cpu": 6, "tiny": 2}  # tiny: a small grid keeps test builds fast


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
    weights = folder / f"{recipe.family}.safetensors"
    save_generator(trained.model, weights, recipe.arch, trained.config)
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
    card = {
        "name": recipe.family,
        "family": recipe.family,
        "arch": recipe.arch,
        "config": get_architecture(recipe.arch).validate_config(trained.config),
        "method": recipe.method,
        "upsampling": recipe.upsampling,
        "fakes": recipe.fakes,
        "recipe": recipe.describe(),
        "data": data,
        "scale": describe_scale(scale_name, scale, recipe.full, adversarial=recipe.method == "gan"),
        "scale_name": scale_name,
        "scale_used": asdict(scale),
        "device": str(trained.device),
        "threads": torch.get_num_threads(),
        "seed": seed,
        "training_seconds": round(trained.seconds, 1),
        "final_losses_last_100": trained.final_losses,
        "weights_file": weights.name,
        "sha256": sha256_file(weights),
        "parameters": sum(p.numel() for p in trained.model.parameters()),
        "samples_file": samples.name,
        "samples": grid,
        "notes": recipe.notes,
        "date": datetime.date.today().isoformat(),
        "command": f"genaudit forensics build --out <dir> --scale {scale_name} --families {recipe.family}",
    }
    (folder / f"{recipe.family}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
