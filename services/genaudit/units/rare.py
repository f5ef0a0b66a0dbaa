"""Rarely activated neurons, artifact scores and sequential ablation (Choi, Chang & Choi, IJCAI 2022;
code ``hichoe95/Artifact-Detection-and-Sequential-Ablation``; DESIGN.md section 4).

- Rare set of a monitored layer at rate R (default 0.3): the neurons with 0 < freq <= R, freq from the
  unablated ``UnitStatistics`` (share of samples with activation > 0).
- Artifact score of an image: sum over the monitored layers of #{rare neurons with activation > 0}; the
  highest scores are the images most likely flawed (the paper's "artifact" end of the ranking).
- Sequential ablation: forward hooks on the monitored layers, run in forward order, set each rare neuron
  with activation > 0 to 0; a later layer sees the activations computed from the earlier corrections (its
  rare neurons are tested on those, not on the unablated pass). An image with score 0 is left exactly as it
  was: nothing changes at its first monitored layer, hence at none after it.

Default monitored layers: ``genaudit.units.monitored`` (the activations of the blocks at 4..32 px).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genaudit.errors import InvalidArgument
from genaudit.generators.base import Generator
from genaudit.units.batches import CancelCheck, Progress, latent_batches, require_eval_mode
from genaudit.units.hooks import layer_hooks, resolve_layers
from genaudit.units.monitored import architecture_of
from genaudit.units.statistics import UnitStatistics

DEFAULT_RATE = 0.3


@dataclass(frozen=True)
class RareNeurons:
    """Boolean masks (C, *spatial) of the rare neurons of each monitored layer, in forward order (CPU)."""

    arch: str | None
    rate: float
    masks: Mapping[str, torch.Tensor]

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.masks)

    def counts(self) -> dict[str, int]:
        return {name: int(mask.sum()) for name, mask in self.masks.items()}


def rare_neurons(statistics: UnitStatistics, rate: float = DEFAULT_RATE,
                 layers: Sequence[str] | None = None) -> RareNeurons:
    """Neurons with 0 < freq <= ``rate`` in ``layers`` (default: every layer of ``statistics``)."""
    if not 0.0 < rate <= 1.0:
        raise InvalidArgument(f"the rate must be in (0, 1], got {rate}")
    names = list(statistics.layers) if layers is None else list(layers)
    unknown = [name for name in names if name not in statistics.layers]
    if unknown or not names:
        raise InvalidArgument(f"layers {unknown or names} have no statistics; layers with statistics: "
                              f"{list(statistics.layers)}")
    masks = {}
    for name in statistics.layers:  # forward order, as computed
        if name in names:
            frequency = statistics.layers[name].frequency
            masks[name] = (frequency > 0) & (frequency <= rate)
    return RareNeurons(arch=statistics.arch, rate=rate, masks=masks)


@dataclass(frozen=True)
class ArtifactScores:
    """``per_layer``: int64 (N, L), rare neurons with activation > 0 per image and monitored layer."""

    layers: tuple[str, ...]
    per_layer: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """int64 (N,): the artifact score of each image."""
        return self.per_layer.sum(dim=1)

    def ranking(self) -> torch.Tensor:
        """Image indices by decreasing score (most likely flawed first); ties keep index order."""
        return torch.sort(self.total, descending=True, stable=True).indices


def _checked(generator: Generator, rare: RareNeurons, latents: torch.Tensor) -> list[str]:
    if latents.ndim != 2 or latents.shape[0] < 1 or latents.shape[1] != generator.latent_dim:
        raise InvalidArgument(f"latents must be (N >= 1, {generator.latent_dim}), got {tuple(latents.shape)}")
    require_eval_mode(generator)
    arch = architecture_of(generator)
    if rare.arch is not None and arch != rare.arch:
        raise InvalidArgument(f"the rare neurons come from architecture {rare.arch!r}, the generator is {arch!r}")
    return resolve_layers(generator, rare.layers)


class _Masks:
    """The rare masks on the device of the activations, checked against their shape."""

    def __init__(self, rare: RareNeurons) -> None:
        self._cpu = rare.masks
        self._on: dict[tuple[str, torch.device], torch.Tensor] = {}

    def __call__(self, name: str, output: torch.Tensor) -> torch.Tensor:
        mask = self._cpu[name]
        if tuple(output.shape[1:]) != tuple(mask.shape):
            raise InvalidArgument(f"layer {name!r} outputs {tuple(output.shape[1:])} per sample, its rare set was "
                                  f"computed for {tuple(mask.shape)}: statistics of another generator?")
        key = (name, output.device)
        if key not in self._on:
            self._on[key] = mask.to(output.device)
        return self._on[key]


@torch.no_grad()
def artifact_scores(
    generator: Generator,
    rare: RareNeurons,
    latents: torch.Tensor,
    *,
    batch_size: int = 64,
    progress: Progress | None = None,
    check_cancelled: CancelCheck | None = None,
) -> ArtifactScores:
    """Artifact scores of the images of ``latents`` (unablated forward passes)."""
    names = _checked(generator, rare, latents)
    masks = _Masks(rare)
    device = next(generator.parameters()).device
    chunks: list[torch.Tensor] = []
    current: dict[str, torch.Tensor] = {}

    def count(name: str, output: torch.Tensor) -> None:
        active = (output > 0) & masks(name, output)
        current[name] = active.flatten(1).sum(dim=1).cpu()

    with layer_hooks(generator, names, count):
        for _, batch in latent_batches(latents, batch_size, progress, check_cancelled):
            current.clear()
            generator(batch.to(device))
            chunks.append(torch.stack([current[name] for name in names], dim=1))
    return ArtifactScores(layers=tuple(names), per_layer=torch.cat(chunks))


@dataclass(frozen=True)
class AblationResult:
    """Sequential ablation of N images (CPU tensors):

    - ``original``, ``corrected``: float32 (N, C, H, W) in [-1, 1], without and with the ablation;
    - ``ablated``: int64 (N, L), neurons set to 0 per monitored layer;
    - ``masks``: per layer, float32 (N, H, W): the share of the layer's C neurons at each position that were
      set to 0, upsampled (nearest) from the layer's grid to the image size.
    """

    layers: tuple[str, ...]
    original: torch.Tensor
    corrected: torch.Tensor
    ablated: torch.Tensor
    masks: Mapping[str, torch.Tensor]


@torch.no_grad()
def sequential_ablation(
    generator: Generator,
    rare: RareNeurons,
    latents: torch.Tensor,
    *,
    batch_size: int = 64,
    progress: Progress | None = None,
    check_cancelled: CancelCheck | None = None,
) -> AblationResult:
    """The images of ``latents`` before and after sequential ablation of ``rare`` (module docstring)."""
    names = _checked(generator, rare, latents)
    masks = _Masks(rare)
    device = next(generator.parameters()).device
    shares: dict[str, torch.Tensor] = {}
    counts: dict[str, torch.Tensor] = {}

    def ablate(name: str, output: torch.Tensor) -> torch.Tensor:
        if output.ndim not in (2, 4):
            raise InvalidArgument(f"layer {name!r} outputs {output.ndim}-d tensors; ablation masks need (B, C) or "
                                  "(B, C, H, W)")
        hit = (output > 0) & masks(name, output)
        counts[name] = hit.flatten(1).sum(dim=1).cpu()
        share = hit.float().mean(dim=1)
        shares[name] = share if share.ndim == 3 else share.view(-1, 1, 1)
        return output.masked_fill(hit, 0.0)

    originals, corrected, ablated = [], [], []
    upsampled: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    for _, batch in latent_batches(latents, batch_size, progress, check_cancelled):
        batch = batch.to(device)
        originals.append(generator(batch).float().cpu())
        with layer_hooks(generator, names, ablate):
            images = generator(batch).float().cpu()
        corrected.append(images)
        ablated.append(torch.stack([counts[name] for name in names], dim=1))
        for name in names:
            grid = F.interpolate(shares[name][:, None], size=images.shape[-2:], mode="nearest")
            upsampled[name].append(grid[:, 0].cpu())
    return AblationResult(
        layers=tuple(names), original=torch.cat(originals), corrected=torch.cat(corrected),
        ablated=torch.cat(ablated), masks={name: torch.cat(parts) for name, parts in upsampled.items()},
    )
