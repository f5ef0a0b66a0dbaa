"""Generated images of a trained family, as uint8 arrays like the real crops.

Latent generators (GANs, the DDIM-sampled diffusion model) draw ``count`` samples for latents seeded by
``seed`` (``genaudit.generators.sampling.sample_images``). Image-to-image generators (autoencoder,
super-resolution) map real source crops: fake_i = model(model.prepare(source_i)), where ``prepare`` is the
identity for the autoencoder and the x4 bilinear downscale for super-resolution. A family of several latent
models (one SinGAN per training crop) draws round-robin over them (``generate_round_robin``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from genaudit.errors import InvalidArgument
from genaudit.forensics.synth.crops import to_model_range
from genaudit.generators.base import Generator, ImageToImage
from genaudit.generators.sampling import sample_images, to_uint8


@torch.no_grad()
def generate(
    model: Generator | ImageToImage, count: int, *, seed: int, sources: np.ndarray | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """``count`` (>= 1) generated images, uint8 (count, H, W, C). ``sources`` (uint8 (count, H, W, C) real crops) are
    required by an ImageToImage model and refused by a latent one."""
    if isinstance(model, ImageToImage):
        if sources is None or len(sources) != count:
            raise InvalidArgument(f"an image-to-image generator needs {count} source images")
        device = next(model.parameters()).device
        return np.concatenate([to_uint8(model(model.prepare(to_model_range(sources[i:i + batch_size]).to(device))))
                               for i in range(0, count, batch_size)])
    if sources is not None:
        raise InvalidArgument("a latent generator takes no source images")
    return np.stack([np.asarray(im) for im in sample_images(model, count, seed, batch_size)])


def generate_round_robin(models: Sequence[Generator], count: int, *, seeds: Sequence[int],
                         batch_size: int = 64) -> np.ndarray:
    """``count`` (>= 1) samples, uint8 (count, H, W, C), fake i drawn by models[i mod K]: for each k, fakes[k::K]
    is ``generate(models[k], len(range(k, count, K)), seed=seeds[k])``, so every model's share can be drawn
    again from its own seed. A model gets no fake when count <= k."""
    if not models or len(seeds) != len(models):
        raise InvalidArgument(f"round-robin sampling needs one seed per model, got {len(models)} models and "
                              f"{len(seeds)} seeds")
    if count < 1:
        raise InvalidArgument(f"count must be at least 1, got {count}")
    shares = [generate(model, len(range(k, count, len(models))), seed=seed, batch_size=batch_size)
              for k, (model, seed) in enumerate(zip(models, seeds, strict=True)) if k < count]
    fakes = np.empty((count, *shares[0].shape[1:]), dtype=np.uint8)
    for k, share in enumerate(shares):
        fakes[k::len(models)] = share
    return fakes
