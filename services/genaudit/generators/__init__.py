"""Generator architectures with canonical layer names, safe loading of user weights, reference generators.

- ``registry``: ``ARCHITECTURES`` (name -> ``ArchitectureSpec`` with bounded constructor params),
  ``build_generator``, ``build_discriminator``; torch-free, so the gateway can validate configs.
- ``loading``: ``load_generator(arch, weights, config, device)`` (safetensors only, checked before
  allocation), ``save_generator``.
- ``shipped``: ``shipped_generators()``, ``load_shipped(name)`` for the weights in ``weights/``.
- ``sampling``: ``sample_images`` (seeded samples as PIL images), ``to_uint8``.
- ``recipes``: the training recipes of the shipped weights (``scripts/train_generator.py``).
- ``base``: ``Generator`` (latents -> images) and ``ImageToImage`` (images -> images); architectures in
  ``dcgan``, ``pggan``, ``autoencoder`` (pixel shuffle), ``superres`` (bilinear x4), ``diffusion`` (DDPM/DDIM),
  ``singan`` (SinGAN's pyramid of per-scale generators, trained by ``genaudit.singleimage.singan_training``).

Importing this package does not import torch: the names that need it load on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from genaudit.generators.registry import (
    ARCHITECTURES,
    ArchitectureSpec,
    Param,
    build_discriminator,
    build_generator,
    get_architecture,
)

if TYPE_CHECKING:
    from genaudit.generators.base import Generator, ImageToImage
    from genaudit.generators.loading import load_generator, save_generator
    from genaudit.generators.sampling import sample_images, to_uint8
    from genaudit.generators.shipped import load_shipped, shipped_generators

_LAZY = {
    "Generator": "genaudit.generators.base",
    "ImageToImage": "genaudit.generators.base",
    "load_generator": "genaudit.generators.loading",
    "save_generator": "genaudit.generators.loading",
    "load_shipped": "genaudit.generators.shipped",
    "shipped_generators": "genaudit.generators.shipped",
    "sample_images": "genaudit.generators.sampling",
    "to_uint8": "genaudit.generators.sampling",
}

__all__ = [
    "ARCHITECTURES",
    "ArchitectureSpec",
    "Generator",
    "ImageToImage",
    "Param",
    "build_discriminator",
    "build_generator",
    "get_architecture",
    "load_generator",
    "load_shipped",
    "sample_images",
    "save_generator",
    "shipped_generators",
    "to_uint8",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
