"""What every generator exposes, whatever its architecture (the units code hooks layers by these names)."""

from __future__ import annotations

import math

import torch
from torch import nn

from genaudit.errors import InvalidArgument


def doublings_from_4px(resolution: int) -> int:
    """Number of 2x upsamplings from the 4x4 start to ``resolution`` (a power of two, at least 8)."""
    steps = int(math.log2(resolution)) - 2 if resolution > 0 else -1
    if steps < 1 or 4 * 2**steps != resolution:
        raise InvalidArgument(f"resolution must be a power of two >= 8, got {resolution}")
    return steps


class LayeredNetwork(nn.Module):
    """A network whose hookable layers are named: the dotted module names of its leaf modules
    (``model.get_submodule(name)``), registered in the order the forward pass runs them, so that a forward
    hook on each fires in that order."""

    def layer_names(self) -> list[str]:
        return [name for name, module in self.named_modules() if name and next(module.children(), None) is None]


class Generator(LayeredNetwork):
    """Base of the registered latent generators: latent (N, latent_dim) -> images (N, out_channels, res, res) in
    [-1, 1]; the units code hooks its layers by ``layer_names``."""

    latent_dim: int
    out_channels: int
    resolution: int

    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` standard normal latents on the model's device; reproducible for a seeded ``generator``
        (drawn on the CPU so that a seed gives the same latents on every device)."""
        z = torch.randn(n, self.latent_dim, generator=generator)
        return z.to(next(self.parameters()).device)


class ImageToImage(LayeredNetwork):
    """Base of the registered image-to-image generators (autoencoders, super-resolution nets): images
    (N, in_channels, input_resolution, input_resolution) in [-1, 1] -> (N, out_channels, resolution, resolution)
    in [-1, 1]; ``prepare`` maps a batch of full-size real images to the network's input (identity for an
    autoencoder, the downscaled image for super-resolution), so that ``model(model.prepare(x))`` is the
    generated counterpart of ``x``."""

    in_channels: int
    out_channels: int
    input_resolution: int
    resolution: int

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def check_input(self, x: torch.Tensor) -> None:
        expected = (self.in_channels, self.input_resolution, self.input_resolution)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise InvalidArgument(f"{type(self).__name__} takes (N, {', '.join(map(str, expected))}) images, "
                                  f"got {tuple(x.shape)}")
