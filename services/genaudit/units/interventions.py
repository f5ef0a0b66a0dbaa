"""Interventions on units (channels) of a generator's layers, and images generated under them.

GAN Dissection's intervention (Bau et al., ICLR 2019; DESIGN.md section 4) on a set U of units of a layer
with output x (B, C, h, w):

    out = x * (1 - A) + v * A,    A[c, y, x] = a_c * region(y, x) for c in U, 0 for the other channels

with a strength a_c in [0, 1] and a value v_c per unit, and a region in [0, 1] on the layer's grid (1 everywhere
by default). Special cases:

- ablation (zeroing): v = 0, a = 1;
- scaling by alpha (Tousi et al., CVPR 2021, "scale down" instead of removing): v = 0, a = 1 - alpha, so
  out = alpha * x on U; alpha = 1 changes nothing, alpha = 0 is the ablation;
- insertion: v = a high value of the unit (e.g. its 0.99 quantile, ``UnitStatistics.channel_quantile``), a = 1,
  usually within a region.

A region is given at any resolution (H, W) and brought to the layer's grid (h, w) by area averaging
(``F.interpolate(mode="area")``: the share of each grid cell the region covers when H, W are multiples of
h, w), so one image-space region serves every layer.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genaudit.errors import InvalidArgument
from genaudit.generators.base import Generator
from genaudit.units.batches import CancelCheck, Progress, latent_batches, require_eval_mode
from genaudit.units.hooks import layer_hooks


def _per_unit(name: str, value: float | Sequence[float] | torch.Tensor, n: int) -> tuple[float, ...]:
    values = torch.as_tensor(value, dtype=torch.float64).flatten().tolist()
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise InvalidArgument(f"{name} needs one value or one per unit ({n}), got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise InvalidArgument(f"{name} must be finite, got {values}")
    return tuple(values)


@dataclass(frozen=True, eq=False, init=False)
class UnitIntervention:
    """out = x (1 - A) + v A on ``units`` of ``layer`` (module docstring). ``strength`` and ``value``: one
    number or one per unit; ``region``: None (everywhere) or an (H, W) map in [0, 1] at any resolution."""

    layer: str
    units: tuple[int, ...]
    strength: tuple[float, ...]
    value: tuple[float, ...]
    region: torch.Tensor | None = None

    def __init__(self, layer: str, units: Sequence[int], strength: float | Sequence[float] = 1.0,
                 value: float | Sequence[float] | torch.Tensor = 0.0, region: torch.Tensor | None = None) -> None:
        unit_list = [int(u) for u in units]
        if not unit_list or min(unit_list) < 0 or len(set(unit_list)) != len(unit_list):
            raise InvalidArgument(f"units must be distinct channel indices >= 0, at least one; got {unit_list}")
        strengths = _per_unit("strength", strength, len(unit_list))
        if not all(0.0 <= a <= 1.0 for a in strengths):
            raise InvalidArgument(f"strengths must be in [0, 1], got {strengths}")
        if region is not None:
            region = torch.as_tensor(region).detach().double().cpu()
            if region.ndim != 2 or region.numel() == 0:
                raise InvalidArgument(f"a region is an (H, W) map, got shape {tuple(region.shape)}")
            if not bool(((region >= 0) & (region <= 1)).all()):
                raise InvalidArgument("region values must be in [0, 1]")
        object.__setattr__(self, "layer", layer)
        object.__setattr__(self, "units", tuple(unit_list))
        object.__setattr__(self, "strength", strengths)
        object.__setattr__(self, "value", _per_unit("value", value, len(unit_list)))
        object.__setattr__(self, "region", region)

    @classmethod
    def ablation(cls, layer: str, units: Sequence[int], region: torch.Tensor | None = None) -> UnitIntervention:
        """Zeroes ``units`` (within ``region``)."""
        return cls(layer, units, 1.0, 0.0, region)

    @classmethod
    def scaling(cls, layer: str, units: Sequence[int], alpha: float,
                region: torch.Tensor | None = None) -> UnitIntervention:
        """Multiplies ``units`` by ``alpha`` in [0, 1] (within ``region``)."""
        if not 0.0 <= alpha <= 1.0:
            raise InvalidArgument(f"alpha must be in [0, 1], got {alpha}")
        return cls(layer, units, 1.0 - alpha, 0.0, region)

    @classmethod
    def insertion(cls, layer: str, units: Sequence[int], values: float | Sequence[float] | torch.Tensor,
                  region: torch.Tensor | None = None) -> UnitIntervention:
        """Sets ``units`` to ``values`` (within ``region``)."""
        return cls(layer, units, 1.0, values, region)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The intervened copy of a layer output ``x`` (B, C, h, w), or (B, C) without a region."""
        if x.ndim not in (2, 4) or (x.ndim == 2 and self.region is not None):
            raise InvalidArgument(f"layer {self.layer!r} outputs {tuple(x.shape)}; interventions need (B, C, h, w), "
                                  "or (B, C) without a region")
        if max(self.units) >= x.shape[1]:
            raise InvalidArgument(f"layer {self.layer!r} has {x.shape[1]} channels, units {list(self.units)} "
                                  "name others")
        index = torch.tensor(self.units, device=x.device)
        shape = (1, len(self.units)) + (1,) * (x.ndim - 2)
        strength = torch.tensor(self.strength, dtype=x.dtype, device=x.device).view(shape)
        value = torch.tensor(self.value, dtype=x.dtype, device=x.device).view(shape)
        if self.region is not None:
            grid = F.interpolate(self.region[None, None], size=tuple(x.shape[-2:]), mode="area")
            strength = strength * grid.to(dtype=x.dtype, device=x.device)
        selected = x.index_select(1, index)
        return x.index_copy(1, index, selected * (1 - strength) + value * strength)


@contextlib.contextmanager
def intervened(generator: Generator, interventions: Sequence[UnitIntervention]) -> Iterator[None]:
    """Within the block, the generator's forward passes apply ``interventions``; several on one layer apply in
    the order given, each to the previous one's output. Later layers compute from the intervened outputs.
    Hooks entered inside this block on the same layers see the intervened outputs."""
    by_layer: dict[str, list[UnitIntervention]] = {}
    for intervention in interventions:
        by_layer.setdefault(intervention.layer, []).append(intervention)
    if not by_layer:
        yield
        return

    def edit(name: str, output: torch.Tensor) -> torch.Tensor:
        for intervention in by_layer[name]:
            output = intervention.apply(output)
        return output

    with layer_hooks(generator, list(by_layer), edit):
        yield


@torch.no_grad()
def generate(
    generator: Generator,
    latents: torch.Tensor,
    interventions: Sequence[UnitIntervention] = (),
    *,
    batch_size: int = 64,
    progress: Progress | None = None,
    check_cancelled: CancelCheck | None = None,
) -> torch.Tensor:
    """float32 CPU images (N, C, H, W) in [-1, 1] of ``latents`` under ``interventions`` (none: the plain
    samples)."""
    require_eval_mode(generator)
    if latents.ndim != 2 or latents.shape[0] < 1 or latents.shape[1] != generator.latent_dim:
        raise InvalidArgument(f"latents must be (N >= 1, {generator.latent_dim}), got {tuple(latents.shape)}")
    device = next(generator.parameters()).device
    parts = []
    with intervened(generator, interventions):
        for _, batch in latent_batches(latents, batch_size, progress, check_cancelled):
            parts.append(generator(batch.to(device)).float().cpu())
    return torch.cat(parts)
