"""GAN Dissection (Bau et al., ICLR 2019; DESIGN.md section 4): which units of a layer draw which concept, and
what an intervention on units does to a concept.

Unit-concept IoU of unit u and concept c over N samples (one dataset-level ratio, not a mean of per-image ones):

    IoU(u, c) = sum_i |(r_iu > t_u) & s_ic| / sum_i |(r_iu > t_u) | s_ic|

r_iu: unit u's map of sample i upsampled bilinearly (half-pixel centres, ``align_corners=False``) to the mask
size; t_u: the unit's threshold, by default its 0.99 quantile over all its values (``units.statistics``:
the top 1 % of its activations); s_ic: concept c's bool mask of sample i, from a user labeller on the images
or from a dataset of masks aligned with the latents (mask i belongs to latent i). A union of 0 gives IoU 0.
The paper picks a threshold per (unit, concept) pair by an information-quality ratio; here t_u is one
per-unit quantile, as the brief of this module asks.

Streaming: per batch, the intersections I(u, c) (exact integer counts: float32 products of 0/1 values summed
over at most 2^24 pixels at a time), the unit areas |M_u| and the concept areas |S_c| are added, and
union = |M_u| + |S_c| - I. State: O(units x concepts), whatever N; memory per step: one batch of masks and
``unit_block`` upsampled unit maps.

Average causal effect of an intervention (``units.interventions``: out = x (1 - a) + v a on a unit set) on
concept c:

    ACE(c) = mean_i [ share_c(G'(z_i)) - share_c(G(z_i)) ],    share_c(x) = |s_c(x)| / (H W)

G' the generator under the intervention, s_c from a labeller applied to both outputs. Ablating the units
that draw c gives a strongly negative ACE; inserting them (v high, in a region) a positive one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.generators.base import Generator
from genaudit.units.batches import CancelCheck, Progress, latent_batches, require_eval_mode
from genaudit.units.hooks import layer_hooks, resolve_layers
from genaudit.units.interventions import UnitIntervention, intervened
from genaudit.units.statistics import UnitStatistics

DEFAULT_LEVEL = 0.99
# Images (B, C, H, W) in [-1, 1] -> bool concept masks (B, K, h, w).
ConceptLabeller = Callable[[torch.Tensor], torch.Tensor | np.ndarray]
# Largest pixel count summed in one float32 matrix product: sums of 0/1 products stay exact below 2^24.
_EXACT_FLOAT32 = 1 << 24


@dataclass(frozen=True)
class Dissection:
    """Counts of one layer over ``n_samples`` samples: ``intersections`` int64 (U, K), ``unit_areas`` int64 (U,)
    = sum_i |r_iu > t_u|, ``concept_areas`` int64 (K,) = sum_i |s_ic|, with the ``thresholds`` float64 (U,)."""

    layer: str
    concepts: tuple[str, ...]
    thresholds: torch.Tensor
    intersections: torch.Tensor
    unit_areas: torch.Tensor
    concept_areas: torch.Tensor
    n_samples: int

    @property
    def unions(self) -> torch.Tensor:
        """int64 (U, K): |M_u| + |S_c| - I(u, c)."""
        return self.unit_areas[:, None] + self.concept_areas[None, :] - self.intersections

    @property
    def iou(self) -> torch.Tensor:
        """float64 (U, K); 0 where the union is empty."""
        unions = self.unions
        return torch.where(unions > 0, self.intersections.double() / unions.clamp(min=1).double(), 0.0)

    def top_units(self, concept: str | int, k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` (unit, IoU) pairs of highest IoU with ``concept`` (a name or an index); ties in unit order."""
        index = self.concepts.index(concept) if isinstance(concept, str) else int(concept)
        if not 0 <= index < len(self.concepts):
            raise InvalidArgument(f"no concept {concept!r}; concepts: {list(self.concepts)}")
        column = self.iou[:, index]
        order = torch.sort(column, descending=True, stable=True).indices[:k]
        return [(int(u), float(column[u])) for u in order]


def _concept_names(names: Sequence[str] | None, k: int) -> tuple[str, ...]:
    result = tuple(names) if names is not None else tuple(f"concept{c}" for c in range(k))
    if len(result) != k or len(set(result)) != k:
        raise InvalidArgument(f"{k} concepts need {k} distinct names, got {list(result)}")
    return result


def _as_masks(masks: torch.Tensor | np.ndarray, batch: int, device: torch.device, what: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks)
    if tensor.ndim != 4 or tensor.shape[0] != batch or tensor.shape[1] < 1:
        raise InvalidArgument(f"{what} must be (B={batch}, K >= 1, h, w) masks, got {tuple(tensor.shape)}")
    if tensor.dtype != torch.bool:
        raise InvalidArgument(f"{what} must be bool masks, got {tensor.dtype}")
    return tensor.to(device)


def _intersections(units: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
    """int64 (U, K) = sum over samples and pixels of units (B, U, P) & concepts (B, K, P), exactly."""
    pixels = units.shape[-1]
    dtype = torch.float32 if pixels <= _EXACT_FLOAT32 else torch.float64
    step = max(1, _EXACT_FLOAT32 // pixels)
    total = torch.zeros(units.shape[1], concepts.shape[1], dtype=torch.int64, device=units.device)
    for first in range(0, units.shape[0], step):
        a = units[first:first + step].transpose(0, 1).reshape(units.shape[1], -1).to(dtype)
        b = concepts[first:first + step].transpose(0, 1).reshape(concepts.shape[1], -1).to(dtype)
        total += (a @ b.T).round().long()
    return total


class _LayerCounts:
    def __init__(self, thresholds: torch.Tensor, unit_block: int) -> None:
        self.thresholds, self.unit_block = thresholds, unit_block
        self.intersections: torch.Tensor | None = None
        self.unit_areas: torch.Tensor | None = None
        self.concept_areas: torch.Tensor | None = None

    def update(self, name: str, activations: torch.Tensor, masks: torch.Tensor) -> None:
        if activations.ndim != 4 or activations.shape[1] != self.thresholds.shape[0]:
            raise InvalidArgument(f"layer {name!r} outputs {tuple(activations.shape[1:])} per sample; dissection "
                                  f"needs (C, h, w) maps with C = {self.thresholds.shape[0]} thresholds")
        size = tuple(masks.shape[-2:])
        concepts = masks.flatten(2)
        thresholds = self.thresholds.to(activations.device)
        inter, areas = [], []
        for first in range(0, activations.shape[1], self.unit_block):
            block = activations[:, first:first + self.unit_block]
            up = F.interpolate(block.double(), size=size, mode="bilinear", align_corners=False)
            unit_masks = (up > thresholds[first:first + self.unit_block].view(1, -1, 1, 1)).flatten(2)
            inter.append(_intersections(unit_masks, concepts))
            areas.append(unit_masks.sum(dim=(0, 2)))
        batch = (torch.cat(inter), torch.cat(areas), concepts.sum(dim=(0, 2)))
        if self.intersections is None or self.unit_areas is None or self.concept_areas is None:
            self.intersections, self.unit_areas, self.concept_areas = batch
        else:
            self.intersections += batch[0]
            self.unit_areas += batch[1]
            self.concept_areas += batch[2]

    def finish(self, name: str, concepts: tuple[str, ...], n_samples: int) -> Dissection:
        if self.intersections is None or self.unit_areas is None or self.concept_areas is None:
            raise FailedPrecondition(f"layer {name!r} produced no output: the forward pass does not run it")
        return Dissection(layer=name, concepts=concepts, thresholds=self.thresholds, n_samples=n_samples,
                          intersections=self.intersections.cpu(), unit_areas=self.unit_areas.cpu(),
                          concept_areas=self.concept_areas.cpu())


def _thresholds(source: UnitStatistics | Mapping[str, torch.Tensor], name: str, level: float) -> torch.Tensor:
    if isinstance(source, UnitStatistics):
        return source.channel_quantile(name, level)
    if name not in source:
        raise InvalidArgument(f"no thresholds for layer {name!r}")
    values = torch.as_tensor(source[name], dtype=torch.float64).cpu()
    if values.ndim != 1:
        raise InvalidArgument(f"thresholds of layer {name!r} must be one per unit (C,), got {tuple(values.shape)}")
    return values


@torch.no_grad()
def dissect(
    generator: Generator,
    layers: Sequence[str],
    latents: torch.Tensor,
    concepts: ConceptLabeller | np.ndarray | torch.Tensor,
    thresholds: UnitStatistics | Mapping[str, torch.Tensor],
    *,
    level: float = DEFAULT_LEVEL,
    concept_names: Sequence[str] | None = None,
    batch_size: int = 16,
    unit_block: int = 64,
    progress: Progress | None = None,
    check_cancelled: CancelCheck | None = None,
) -> dict[str, Dissection]:
    """Unit-concept counts (module docstring) of ``layers`` over the images of ``latents``, in forward order.

    ``concepts``: a labeller (images -> bool (B, K, h, w)) or bool masks (N, K, h, w) aligned with the latents
    (any array sliceable by rows, e.g. a numpy memmap). ``thresholds``: ``UnitStatistics`` (t_u = the
    quantile at ``level``, which it must hold) or explicit float (C,) tensors per layer."""
    require_eval_mode(generator)
    names = resolve_layers(generator, layers)
    if latents.ndim != 2 or latents.shape[0] < 1:
        raise InvalidArgument(f"latents must be (N >= 1, D), got {tuple(latents.shape)}")
    if unit_block < 1:
        raise InvalidArgument(f"unit_block must be at least 1, got {unit_block}")
    labeller = concepts if callable(concepts) else None
    if labeller is None and len(concepts) != latents.shape[0]:
        raise InvalidArgument(f"{len(concepts)} mask sets for {latents.shape[0]} latents")
    counts = {name: _LayerCounts(_thresholds(thresholds, name, level), unit_block) for name in names}
    device = next(generator.parameters()).device
    captured: dict[str, torch.Tensor] = {}
    n_concepts = 0

    def keep(name: str, output: torch.Tensor) -> None:
        captured[name] = output

    with layer_hooks(generator, names, keep):
        for start, batch in latent_batches(latents, batch_size, progress, check_cancelled):
            images = generator(batch.to(device))
            raw = labeller(images) if labeller is not None else concepts[start:start + batch.shape[0]]
            masks = _as_masks(raw, batch.shape[0], device, "the concept labeller's output" if labeller else
                              "the concept masks")
            if n_concepts and masks.shape[1] != n_concepts:
                raise InvalidArgument(f"concept masks changed from {n_concepts} to {masks.shape[1]} concepts")
            n_concepts = masks.shape[1]
            for name in names:
                counts[name].update(name, captured[name], masks)
    labels = _concept_names(concept_names, n_concepts)
    return {name: layer_counts.finish(name, labels, latents.shape[0]) for name, layer_counts in counts.items()}


@dataclass(frozen=True)
class CausalEffect:
    """Concept pixel shares float64 (N, K) ``before`` and ``after`` an intervention, per sample."""

    concepts: tuple[str, ...]
    before: torch.Tensor
    after: torch.Tensor

    @property
    def per_sample(self) -> torch.Tensor:
        return self.after - self.before

    @property
    def effect(self) -> torch.Tensor:
        """float64 (K,): the average causal effect on each concept."""
        return self.per_sample.mean(dim=0)


def _shares(labeller: ConceptLabeller, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    masks = _as_masks(labeller(images), images.shape[0], device, "the concept labeller's output")
    return masks.flatten(2).double().mean(dim=2).cpu()


@torch.no_grad()
def causal_effect(
    generator: Generator,
    interventions: Sequence[UnitIntervention],
    latents: torch.Tensor,
    labeller: ConceptLabeller,
    *,
    concept_names: Sequence[str] | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
    check_cancelled: CancelCheck | None = None,
) -> CausalEffect:
    """Concept shares of the images of ``latents`` without and with ``interventions`` (module docstring)."""
    require_eval_mode(generator)
    if not interventions:
        raise InvalidArgument("a causal effect needs at least one intervention")
    if latents.ndim != 2 or latents.shape[0] < 1:
        raise InvalidArgument(f"latents must be (N >= 1, D), got {tuple(latents.shape)}")
    device = next(generator.parameters()).device
    before, after = [], []
    for _, batch in latent_batches(latents, batch_size, progress, check_cancelled):
        batch = batch.to(device)
        plain = _shares(labeller, generator(batch), device)
        with intervened(generator, interventions):
            changed = _shares(labeller, generator(batch), device)
        if plain.shape[1] != changed.shape[1] or (before and plain.shape[1] != before[0].shape[1]):
            raise InvalidArgument("the labeller returned different numbers of concepts")
        before.append(plain)
        after.append(changed)
    shares = torch.cat(before)
    return CausalEffect(concepts=_concept_names(concept_names, shares.shape[1]), before=shares,
                        after=torch.cat(after))
