"""Automatic identification and correction of artifact-causing units (Tousi, Jeong, Han, Choi & Choi, CVPR
2021; DESIGN.md section 4).

1. Labels: flawed vs normal generated images from a flaw score (``units.flaws``), no humans.
2. Artifact classifier: a small CNN (``ArtifactClassifier``) trained, seeded, on flawed (1) vs normal (0).
3. Pseudo masks of the flawed region by Grad-CAM (Selvaraju et al., ICCV 2017) on the classifier's last conv
   layer: with A (K, h, w) that layer's activations and y the flaw logit,
       w_k = mean_{y,x} dy / dA_k[y, x],   cam = ReLU(sum_k w_k A_k),
   upsampled bilinearly to the image (half-pixel centres, ``align_corners=False``), normalized per image to
   [0, 1] by (cam - min) / (max - min) (all 0 when constant), and thresholded per image at its ``q`` quantile
   (mask = cam > quantile_q(cam), numpy's linear quantile): the top (1 - q) of the pixels.
4. Defective score of unit (channel) u of a candidate layer: its activation map upsampled bilinearly to the
   mask size, thresholded at the unit's ``unit_quantile`` quantile t_u over all its values (streaming,
   ``units.statistics``), M_u = up(A_u) > t_u; then
       score_u = mean over flawed samples i of |M_iu & P_i| / |M_iu | P_i|
   (P_i the pseudo mask; an empty union counts 0). Units rank by decreasing score.
5. Correction: the top-k units of the first candidate layer are scaled by alpha (0: ablated) for every sample
   and position (``UnitIntervention.scaling``); the next layer's scores, thresholds included, are then computed
   on the corrected generator, and so on in forward order (sequential correction). The flawed samples and
   their pseudo masks stay those of the original images: they say where the artifacts were.

Judge a correction by FID before/after and by how little the normal samples change (``original`` vs
``corrected`` in ``ArtifactCorrection``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.generators.base import Generator
from genaudit.metrics._tensors import ArrayLike
from genaudit.units.batches import CancelCheck, latent_batches, require_eval_mode
from genaudit.units.flaws import DEFAULT_FLAWED_FRACTION, DEFAULT_NORMAL_FRACTION, FlawLabels, label_flaws
from genaudit.units.hooks import layer_hooks, resolve_layers
from genaudit.units.interventions import UnitIntervention, generate, intervened
from genaudit.units.statistics import compute_unit_statistics

DEFAULT_CAM_QUANTILE = 0.9
DEFAULT_UNIT_QUANTILE = 0.99
# Channels whose upsampled maps are held at once when scoring units (memory: batch x block x H x W).
_UNIT_BLOCK = 64


class ArtifactClassifier(nn.Module):
    """Tiny CNN: conv3x3(in, w) ReLU, conv3x3 stride 2 (w, 2w) ReLU, conv3x3(2w, 2w) ReLU (``cam_layer``, the
    last conv layer's activations), global average pool, linear -> one logit (flawed) per image."""

    def __init__(self, in_channels: int, width: int = 8) -> None:
        super().__init__()
        if in_channels < 1 or width < 1:
            raise InvalidArgument(f"in_channels and width must be >= 1, got {in_channels}, {width}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(2 * width, 1)

    @property
    def cam_layer(self) -> nn.Module:
        return self.features[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).mean(dim=(2, 3)))[:, 0]


@dataclass(frozen=True)
class TrainedClassifier:
    """The classifier (eval mode), its per-epoch mean training loss and its accuracy on the training images at
    logit 0."""

    model: ArtifactClassifier
    losses: tuple[float, ...]
    train_accuracy: float


def train_artifact_classifier(
    images: torch.Tensor,
    flawed: ArrayLike,
    *,
    seed: int = 0,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 3e-3,
    width: int = 8,
) -> TrainedClassifier:
    """Trains ``ArtifactClassifier`` on ``images`` (N, C, H, W) with labels ``flawed`` (bool (N,), at least one
    of each): Adam, binary cross-entropy with the positives weighted by #normal / #flawed (balanced classes),
    shuffled each epoch. ``seed`` fixes the initialization and the order: same inputs => same weights. Runs
    on the images' device."""
    labels = torch.as_tensor(np.asarray(flawed, dtype=bool), device=images.device)
    if images.ndim != 4 or labels.shape != (images.shape[0],):
        raise InvalidArgument(f"images must be (N, C, H, W) with one label each, got {tuple(images.shape)} and "
                              f"{tuple(labels.shape)} labels")
    n_flawed = int(labels.sum())
    if n_flawed == 0 or n_flawed == labels.shape[0]:
        raise InvalidArgument("the classifier needs flawed and normal images")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise InvalidArgument(f"epochs and batch_size must be >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ArtifactClassifier(images.shape[1], width).to(images.device)
    order = torch.Generator().manual_seed(seed)
    targets = labels.float()
    pos_weight = torch.tensor((labels.shape[0] - n_flawed) / n_flawed, device=images.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    for _ in range(epochs):
        total = 0.0
        for index in torch.randperm(images.shape[0], generator=order).split(batch_size):
            index = index.to(images.device)
            loss = F.binary_cross_entropy_with_logits(model(images[index]), targets[index], pos_weight=pos_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * index.shape[0]
        losses.append(total / images.shape[0])
    model.eval()
    with torch.no_grad():
        accuracy = float(((model(images) > 0) == labels).float().mean())
    return TrainedClassifier(model=model, losses=tuple(losses), train_accuracy=accuracy)


def grad_cam(model: nn.Module, layer: nn.Module, images: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
    """float32 (N, H, W) Grad-CAM maps in [0, 1] (module docstring, step 3) of ``model``'s (N,) logits at
    ``layer`` (a submodule whose output is (B, K, h, w)), at the images' size. ``model`` must be in eval mode:
    the gradient of the batch's summed logits is then each image's own gradient."""
    if model.training:
        raise FailedPrecondition("Grad-CAM needs the model in eval mode (samples independent within a batch)")
    if images.ndim != 4 or images.shape[0] < 1:
        raise InvalidArgument(f"images must be (N >= 1, C, H, W), got {tuple(images.shape)}")
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, output: captured.append(output))
    maps = []
    try:
        for start in range(0, images.shape[0], batch_size):
            captured.clear()
            batch = images[start:start + batch_size].detach().requires_grad_(True)  # a graph even if frozen
            with torch.enable_grad():
                logits = model(batch)
                if logits.shape != (batch.shape[0],) or len(captured) != 1 or captured[0].ndim != 4:
                    raise InvalidArgument("Grad-CAM needs a model returning one logit per image and a layer run "
                                          "once per forward pass with a (B, K, h, w) output")
                activations = captured[0]
                (gradients,) = torch.autograd.grad(logits.sum(), activations)
            weights = gradients.detach().mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * activations.detach()).sum(dim=1, keepdim=True))
            cam = F.interpolate(cam, size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
            low = cam.amin(dim=(1, 2), keepdim=True)
            span = cam.amax(dim=(1, 2), keepdim=True) - low
            maps.append(torch.where(span > 0, (cam - low) / torch.where(span > 0, span, 1.0), 0.0).float().cpu())
    finally:
        handle.remove()
    return torch.cat(maps)


def cam_masks(cams: torch.Tensor, quantile: float = DEFAULT_CAM_QUANTILE) -> torch.Tensor:
    """bool (N, H, W): cam > its per-image ``quantile`` (linear interpolation, as numpy.quantile)."""
    if not 0.0 <= quantile < 1.0:
        raise InvalidArgument(f"the mask quantile must be in [0, 1), got {quantile}")
    if cams.ndim != 3:
        raise InvalidArgument(f"cams must be (N, H, W), got {tuple(cams.shape)}")
    flat = cams.flatten(1).double()
    return (flat > torch.quantile(flat, quantile, dim=1, keepdim=True)).view(cams.shape)


@torch.no_grad()
def defective_unit_scores(
    generator: Generator,
    layer: str,
    latents: torch.Tensor,
    masks: torch.Tensor,
    thresholds: torch.Tensor,
    *,
    interventions: Sequence[UnitIntervention] = (),
    batch_size: int = 16,
    check_cancelled: CancelCheck | None = None,
) -> torch.Tensor:
    """float64 (C,): each unit's mean IoU with the pseudo masks (module docstring, step 4) over the samples of
    ``latents`` (the flawed ones), ``masks`` bool (N, H, W) aligned with them, ``thresholds`` (C,) the t_u;
    forward passes under ``interventions`` (the corrections of earlier layers)."""
    require_eval_mode(generator)
    if latents.ndim != 2 or masks.ndim != 3 or latents.shape[0] != masks.shape[0] or latents.shape[0] < 1:
        raise InvalidArgument(f"latents (N, D) and masks (N, H, W) must have the same N >= 1, got "
                              f"{tuple(latents.shape)} and {tuple(masks.shape)}")
    device = next(generator.parameters()).device
    captured: list[torch.Tensor] = []
    sums: list[torch.Tensor] = []
    with intervened(generator, interventions), layer_hooks(generator, [layer], lambda _n, out: captured.append(out)):
        for start, batch in latent_batches(latents, batch_size, check_cancelled=check_cancelled):
            captured.clear()
            generator(batch.to(device))
            activations = captured[-1]
            if activations.ndim != 4 or thresholds.shape != (activations.shape[1],):
                raise InvalidArgument(f"layer {layer!r} outputs {tuple(activations.shape[1:])} per sample; unit "
                                      f"scores need (C, h, w) maps and C = {tuple(thresholds.shape)} thresholds")
            pseudo = masks[start:start + batch.shape[0]].to(device=device, dtype=torch.bool)
            iou = _unit_ious(activations, thresholds.to(device), pseudo)
            sums.append(iou.sum(dim=0))
    return (torch.stack(sums).sum(dim=0) / latents.shape[0]).cpu()


def _unit_ious(activations: torch.Tensor, thresholds: torch.Tensor, pseudo: torch.Tensor) -> torch.Tensor:
    """float64 (B, C): per-sample IoU of each unit's thresholded upsampled map with the pseudo mask."""
    size = tuple(pseudo.shape[-2:])
    pseudo_area = pseudo.flatten(1).sum(dim=1, dtype=torch.float64)[:, None]
    parts = []
    for first in range(0, activations.shape[1], _UNIT_BLOCK):
        block = activations[:, first:first + _UNIT_BLOCK]
        up = F.interpolate(block.double(), size=size, mode="bilinear", align_corners=False)
        unit_mask = up > thresholds[first:first + _UNIT_BLOCK].view(1, -1, 1, 1)
        inter = (unit_mask & pseudo[:, None]).flatten(2).sum(dim=2, dtype=torch.float64)
        union = unit_mask.flatten(2).sum(dim=2, dtype=torch.float64) + pseudo_area - inter
        parts.append(torch.where(union > 0, inter / union.clamp(min=1), 0.0))
    return torch.cat(parts, dim=1)


@dataclass(frozen=True)
class LayerDefects:
    """One candidate layer: defective ``scores`` float64 (C,), the ``thresholds`` t_u float64 (C,) they used
    and the ``selected`` units (the top-k, corrected)."""

    layer: str
    scores: torch.Tensor
    thresholds: torch.Tensor
    selected: tuple[int, ...]

    def ranking(self) -> torch.Tensor:
        """Unit indices by decreasing score; ties keep index order."""
        return torch.sort(self.scores, descending=True, stable=True).indices


@dataclass(frozen=True)
class Correction:
    """A sequential correction: per layer in forward order its ``LayerDefects``, and the ``interventions``
    (one scaling by ``alpha`` per layer) that apply it (``units.interventions.generate``)."""

    alpha: float
    defects: Mapping[str, LayerDefects]
    interventions: tuple[UnitIntervention, ...]

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.defects)

    @property
    def units(self) -> dict[str, tuple[int, ...]]:
        """The corrected units of each layer, in forward order."""
        return {name: d.selected for name, d in self.defects.items()}


def sequential_correction(
    generator: Generator,
    layers: Sequence[str],
    latents: torch.Tensor,
    masks: torch.Tensor,
    *,
    top_k: int | Mapping[str, int] = 8,
    alpha: float = 0.0,
    unit_quantile: float = DEFAULT_UNIT_QUANTILE,
    statistics_samples: int = 1000,
    statistics_seed: int = 0,
    statistics_bins: int = 512,
    batch_size: int = 16,
    check_cancelled: CancelCheck | None = None,
) -> Correction:
    """Steps 4-5 of the module docstring on ``layers`` (put in forward order), for the flawed ``latents`` and
    their pseudo ``masks`` bool (N, H, W). Per layer, on the generator corrected so far: the t_u are the
    ``unit_quantile`` quantiles of ``compute_unit_statistics`` over ``statistics_samples`` latents of
    ``statistics_seed``; the ``top_k`` units (one number, or one per layer) by score are scaled by ``alpha``."""
    require_eval_mode(generator)
    names = resolve_layers(generator, layers)
    if not 0.0 <= alpha <= 1.0:
        raise InvalidArgument(f"alpha must be in [0, 1], got {alpha}")
    ks = top_k if isinstance(top_k, Mapping) else dict.fromkeys(names, top_k)
    missing = [name for name in names if name not in ks]
    if missing:
        raise InvalidArgument(f"top_k names no k for layers {missing}")
    interventions: list[UnitIntervention] = []
    defects: dict[str, LayerDefects] = {}
    for name in names:
        with intervened(generator, interventions):
            stats = compute_unit_statistics(generator, statistics_samples, statistics_seed, layers=[name],
                                            batch_size=max(batch_size, 64), quantile_levels=(unit_quantile,),
                                            bins=statistics_bins, check_cancelled=check_cancelled)
        thresholds = stats.channel_quantile(name, unit_quantile)
        k = ks[name]
        if not 1 <= k <= thresholds.shape[0]:
            raise InvalidArgument(f"top_k for layer {name!r} must be in [1, {thresholds.shape[0]}], got {k}")
        scores = defective_unit_scores(generator, name, latents, masks, thresholds, interventions=interventions,
                                       batch_size=batch_size, check_cancelled=check_cancelled)
        selected = tuple(int(u) for u in torch.sort(scores, descending=True, stable=True).indices[:k])
        defects[name] = LayerDefects(layer=name, scores=scores, thresholds=thresholds, selected=selected)
        interventions.append(UnitIntervention.scaling(name, selected, alpha))
    return Correction(alpha=alpha, defects=defects, interventions=tuple(interventions))


@dataclass(frozen=True)
class ArtifactCorrection:
    """The whole pipeline on N latents: ``labels``, the ``classifier``, Grad-CAM ``cams`` float32 and pseudo
    ``masks`` bool (F, H, W) of the F flawed samples (in index order), the ``correction``, and the images
    ``original`` and ``corrected`` float32 (N, C, H, W) of every latent."""

    labels: FlawLabels
    classifier: TrainedClassifier
    cams: torch.Tensor
    masks: torch.Tensor
    correction: Correction
    original: torch.Tensor
    corrected: torch.Tensor


def correct_artifact_units(
    generator: Generator,
    latents: torch.Tensor,
    flaws: ArrayLike | FlawLabels,
    layers: Sequence[str],
    *,
    flawed_fraction: float = DEFAULT_FLAWED_FRACTION,
    normal_fraction: float = DEFAULT_NORMAL_FRACTION,
    top_k: int | Mapping[str, int] = 8,
    alpha: float = 0.0,
    cam_quantile: float = DEFAULT_CAM_QUANTILE,
    unit_quantile: float = DEFAULT_UNIT_QUANTILE,
    seed: int = 0,
    epochs: int = 30,
    classifier_width: int = 8,
    statistics_samples: int = 1000,
    statistics_bins: int = 512,
    batch_size: int = 16,
    check_cancelled: CancelCheck | None = None,
) -> ArtifactCorrection:
    """Tousi et al.'s pipeline (module docstring) on the images of ``latents``: ``flaws`` are their flaw scores
    (labelled by ``label_flaws`` with the fractions) or ready ``FlawLabels``; the classifier trains on the
    flawed and normal images with ``seed``, which also seeds the statistics' latents."""
    images = generate(generator, latents, batch_size=batch_size, check_cancelled=check_cancelled)
    labels = flaws if isinstance(flaws, FlawLabels) else label_flaws(
        flaws, flawed_fraction=flawed_fraction, normal_fraction=normal_fraction)
    if labels.scores.shape != (latents.shape[0],):
        raise InvalidArgument(f"{labels.scores.shape[0]} flaw scores for {latents.shape[0]} latents")
    labelled = labels.flawed | labels.normal
    classifier = train_artifact_classifier(images[labelled], labels.flawed[labelled], seed=seed, epochs=epochs,
                                           width=classifier_width)
    flawed = torch.as_tensor(labels.flawed_indices)
    cams = grad_cam(classifier.model, classifier.model.cam_layer, images[flawed])
    masks = cam_masks(cams, cam_quantile)
    correction = sequential_correction(
        generator, layers, latents[flawed], masks, top_k=top_k, alpha=alpha, unit_quantile=unit_quantile,
        statistics_samples=statistics_samples, statistics_seed=seed, statistics_bins=statistics_bins,
        batch_size=batch_size, check_cancelled=check_cancelled)
    corrected = generate(generator, latents, correction.interventions, batch_size=batch_size,
                         check_cancelled=check_cancelled)
    return ArtifactCorrection(labels=labels, classifier=classifier, cams=cams, masks=masks, correction=correction,
                              original=images, corrected=corrected)
