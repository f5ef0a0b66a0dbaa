"""Generated images of a trained family, as uint8 arrays like the real crops.

Latent generators (GANs, the DDIM-sampled diffusion model) draw ``count`` samples for latents seeded by
``seed`` (``genaudit.generators.sampling.sample_images``). Image-to-image generators (autoencoder,
super-resolution) map real source crops: fake_i = model(model.prepare(source_i)), where ``prepare`` is the
identity for the autoencoder and the x4 bilinear downscale for super-resolution.
"""

from __future__ import annotations

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
