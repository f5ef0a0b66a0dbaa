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


class Generator(nn.Module):
    """Base of the registered generators: latent (N, latent_dim) -> images (N, out_channels, res, res) in [-1, 1].

    Canonical layer names are the dotted module names of the leaf modules (``model.get_submodule(name)``),
    registered in the order the forward pass runs them, so a forward hook on each fires in that order.
    """

    latent_dim: int
    out_channels: int
    resolution: int

    def layer_names(self) -> list[str]:
        return [name for name, module in self.named_modules() if name and next(module.children(), None) is None]

    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` standard normal latents on the model's device; reproducible for a seeded ``generator``
        (drawn on the CPU so that a seed gives the same latents on every device)."""
        z = torch.randn(n, self.latent_dim, generator=generator)
        return z.to(next(self.parameters()).device)
