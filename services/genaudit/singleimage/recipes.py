"""What trains a single-image generator at each scale: the image cap, the schedule and the training loop per arch.

``full`` is the paper's recipe, meant for a GPU (SinGAN's 250 px cap and 2000 iterations per scale; InGAN's own
schedule); ``cpu`` is reduced so that a 64 px image trains in minutes on one core. ``train_single_image`` is what
the CLI (``genaudit single-image train``) and the ``train_single_image`` job run; the card it returns says which
scale was used, and any override of the schedule's iterations.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from genaudit.errors import InvalidArgument
from genaudit.generators.loading import save_generator
from genaudit.generators.registry import get_architecture
from genaudit.singleimage.training_image import training_tensor

SCALES = ("cpu", "full")
# Longest side of the training image per scale (SinGAN's code resizes to 250 px).
MAX_SIDE = {"cpu": 64, "full": 250}
# The schedule field that ``iterations`` overrides, per architecture.
_ITERATIONS_FIELD = {"singan": "iterations_per_scale", "ingan": "iterations"}

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool | None]


@dataclass
class SingleImageTraining:
    """A trained single-image generator (eval mode) and what its card records."""

    arch: str
    generator: torch.nn.Module
    config: dict[str, Any]  # full registry config
    image: torch.Tensor  # (1, C, H, W) in [-1, 1]: what it trained on
    scale: str
    schedule: dict[str, Any]
    seconds: float
    losses: dict[str, Any]
    device: str


def _schedules(arch: str) -> tuple[Any, Any, Callable[..., Any]]:
    """(CPU schedule, full schedule, train function) of ``arch``; imported on use (they need torch)."""
    if arch == "singan":
        from genaudit.singleimage import singan_training as module

        return module.CPU_SCHEDULE, module.FULL_SCHEDULE, module.train_singan
    if arch == "ingan":
        from genaudit.singleimage import ingan_training as module

        return module.CPU_SCHEDULE, module.FULL_SCHEDULE, module.train_ingan
    raise InvalidArgument(f"{arch!r} is not a single-image architecture; known: singan, ingan")


def config_for(arch: str, height: int, width: int) -> dict[str, Any]:
    """The full registry config of ``arch`` for a training image of ``height`` x ``width`` px: SinGAN's pyramid of
    factor ~0.75 down to a 25 px shorter side (``singan_config_for``), InGAN's defaults at that size."""
    if arch == "singan":
        from genaudit.singleimage.singan_training import singan_config_for

        config = singan_config_for(height, width)
    else:
        config = {"height": height, "width": width}
    return get_architecture(arch).validate_config(config)


def schedule_for(arch: str, scale: str, iterations: int | None = None) -> Any:
    """The schedule of ``arch`` at ``scale`` ("cpu" or "full"), its iterations replaced when given."""
    if scale not in SCALES:
        raise InvalidArgument(f"unknown scale {scale!r}; known: {list(SCALES)}")
    cpu, full, _ = _schedules(arch)
    schedule = cpu if scale == "cpu" else full
    if iterations:
        schedule = dataclasses.replace(schedule, **{_ITERATIONS_FIELD[arch]: iterations})
    return schedule


def _losses(fit: Any) -> dict[str, Any]:
    """The JSON-ready training figures of a SinGANFit (per scale) or an InGANFit."""
    if hasattr(fit, "scales"):
        return {"scales": [dataclasses.asdict(scale) for scale in fit.scales]}
    return {"final": dict(fit.losses), "identity_l1": float(fit.identity_l1)}


def train_single_image(
    arch: str,
    image: Image.Image,
    *,
    scale: str = "cpu",
    max_side: int | None = None,
    iterations: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
    check_cancelled: CancelCheck | None = None,
    log: Callable[[str], None] | None = None,
) -> SingleImageTraining:
    """Trains ``arch`` ("singan" or "ingan") on ``image`` (any PIL mode, shrunk so that its longest side is at most
    ``max_side``, default ``MAX_SIDE[scale]``) with the scale's schedule (``iterations`` overrides its count)."""
    schedule = schedule_for(arch, scale, iterations)
    tensor = training_tensor(image, max_side or MAX_SIDE[scale])
    config = config_for(arch, tensor.shape[2], tensor.shape[3])
    _, _, train = _schedules(arch)
    start = time.perf_counter()
    fit = train(tensor, config, schedule, seed=seed, device=device, progress=progress,
                check_cancelled=check_cancelled, log=log)
    seconds = time.perf_counter() - start
    return SingleImageTraining(arch, fit.generator, config, tensor, scale, dataclasses.asdict(schedule), seconds,
                               _losses(fit), str(fit.device))


def weights_bytes(trained: SingleImageTraining) -> bytes:
    """The trained generator as a safetensors file (``generators.save_generator``: arch and config in the
    metadata)."""
    with tempfile.TemporaryDirectory(prefix="genaudit-single-image-") as folder:
        path = Path(folder) / "model.safetensors"
        save_generator(trained.generator, path, trained.arch, trained.config)
        return path.read_bytes()


def model_card(trained: SingleImageTraining, weights: bytes, reconstruction: torch.Tensor, *, name: str,
               weights_file: str, image: dict[str, Any], seed: int, iterations_override: int | None,
               command: str) -> dict[str, Any]:
    """The JSON card of a trained single-image generator: what it is, what it learnt, how, and how well its
    ``reconstruction`` (``audit.reconstruct``: the 8-bit reconstruction path) matches its image. ``image``: where
    the training image came from (dataset and name, or photo)."""
    model = trained.generator
    height, width = trained.image.shape[2:]
    scale_note = ("full recipe (the paper's schedule)" if trained.scale == "full" else
                  "CPU reduced scale: fewer iterations and a smaller image than the paper's; the full scale is for "
                  "a GPU")
    if iterations_override:
        scale_note += f"; iterations overridden to {iterations_override}"
    return {
        "name": name,
        "arch": trained.arch,
        "description": get_architecture(trained.arch).description,
        "config": trained.config,
        "sha256": hashlib.sha256(weights).hexdigest(),
        "weights_file": weights_file,
        "parameters": sum(p.numel() for p in model.parameters()),
        "image": {**image, "height": int(height), "width": int(width)},
        "scale": trained.scale,
        "scale_note": scale_note,
        "schedule": trained.schedule,
        "seed": seed,
        "device": trained.device,
        "threads": torch.get_num_threads(),
        "training_seconds": round(trained.seconds, 1),
        "losses": trained.losses,
        "reconstruction_rmse": float((reconstruction.cpu() - trained.image.cpu()).pow(2).mean().sqrt()),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
    }
