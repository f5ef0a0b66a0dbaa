"""FreqNet: our frequency-aware detector, a learned selection of block-DCT channels plus the NPR residual.

Two branches, each globally average-pooled, fused by one linear layer into the logit:

- **DCT branch** (Xu et al., CVPR 2020): ``ycbcr_block_dct`` gives 192 channels at 1/8 resolution (8x8 DCT
  coefficient (u, v) of Y, Cb, Cr as channel ``64 c + 8 u + v``), standardized per channel with fitted buffers
  ``(d - mean_c) / std_c`` (``DCTChannelNorm``, :meth:`FreqNet.fit_normalization`). The coefficients with
  ``u + v < min_frequency`` are left out in every colour channel (:func:`allowed_dct_channels`); a learned
  gate (:class:`ChannelGate`) keeps or drops each remaining channel per image; a 1x1 convolution then
  ``depth`` residual blocks (torchvision's ``BasicBlock``) follow. Xu et al. select statically low
  frequencies, which suits recognition; generator artifacts sit in high frequencies, so the selection here is
  learned, and the lowest frequencies, which carry the block's brightness, colour and coarse content, are not
  offered at all: a net trained on one generator learns that generator's colours and content from them,
  which no other generator shares.
- **Spatial branch** (NPR, Tan et al., CVPR 2024): the residual ``r = x - up(down(x))`` with nearest
  down- and upsampling by 2 (``down`` keeps the top-left pixel of each 2x2 cell), which is exactly 0 on an
  image nearest-upsampled on that grid and carries the local pixel correlations upsampling layers leave; a 3x3
  convolution then ``depth`` residual blocks of stride 2.

Head: one linear layer on the pooled features of both branches, or (``distance_dims`` k > 0) a
:class:`DistanceHead`, whose logit grows with the distance of the features from a learned centre of the reals.

Optionally (``surprise``), a prior of the reals that no training fake shaped is added after training
(``genaudit.forensics.surprise``): a blind-spot pixel predictor fitted on the training reals alone
(:meth:`FreqNet.fit_reals`, before the detector trains) and a Gaussian of the reals' phase statistics under it.
Once :meth:`FreqNet.fit_fusion` has seen held-out reals, the eval-mode logit is the head's logit plus
``prior_weight`` times the squared Mahalanobis distance, each standardized by its mean and std over those reals:
both in units of the reals' spread, so neither scale decides alone. The prior models the pixels of images that
never went through JPEG; JPEG rewrites exactly the neighbourhood statistics it measures, so on a JPEG'd image its
distance measures the compression, not a generator. It is kept only where the image shows evidence of never
having been compressed (``genaudit.forensics.jpeg_traces.looks_uncompressed``: enough texture to see, and no
quantization comb); elsewhere, JPEG'd images and those too flat to tell, the logit is the head's alone. Training
(and validation before the fusion is fitted) sees the head's logit only.

The default config has 274,817 parameters, the detector recipe's (``min_frequency`` 2, ``distance_dims`` 16)
276,274 (a 1.1 MB float32 safetensors file); the surprise prior adds 4,742 (its predictor) and 2,356 fitted
buffer values. Inputs: (B, 3, H, W) in [0, 1]
with H, W multiples of 8 (16 and up recommended: the DCT branch then sees at least 2x2 blocks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.forensics.dct import ycbcr_block_dct
from genaudit.forensics.detectors.base import DetectorNet
from genaudit.forensics.jpeg_traces import looks_uncompressed
from genaudit.forensics.standardize import DCTChannelNorm
from genaudit.forensics.surprise import (
    STATISTICS,
    BlindSpotPredictor,
    fit_gaussian,
    mahalanobis_squared,
    phase_statistics,
    train_predictor,
)

DCT_CHANNELS = 192
# Weight of the gate's sparsity penalty: regularization() = GATE_PENALTY x mean share of channels kept.
# Small next to the BCE loss (0.69 at chance), so a channel is dropped only when it does not help.
GATE_PENALTY = 0.01
# Initial bias of the "keep" logit over "drop": training starts with (nearly) every channel on, so that the
# penalty and the data, not the initialization, decide what is dropped.
_KEEP_BIAS = 2.0


class ChannelGate(nn.Module):
    """Xu et al.'s dynamic channel selection: global average pool -> 1x1 convolution -> 2 logits (drop, keep)
    per channel -> hard Gumbel-softmax.

    The pool is of ``|d|`` (each standardized coefficient's mean magnitude over the image): AC coefficients
    are signed and average to about 0, so their plain mean would tell the gate nothing. Training: a hard 0/1
    sample per channel from ``gumbel_softmax(hard=True)``, whose straight-through gradient is that of the soft
    sample. Eval: the deterministic argmax (ties drop).
    """

    def __init__(self, channels: int = DCT_CHANNELS) -> None:
        super().__init__()
        self.channels = channels
        self.proj = nn.Conv2d(channels, 2 * channels, kernel_size=1)
        with torch.no_grad():
            self.proj.bias.view(channels, 2)[:, 1] += _KEEP_BIAS

    def logits(self, d: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, 2) logits of (drop, keep) per channel."""
        pooled = d.abs().mean(dim=(2, 3), keepdim=True)
        return self.proj(pooled).reshape(d.shape[0], self.channels, 2)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        """(B, C) mask of 0.0 / 1.0, 1 = keep."""
        logits = self.logits(d)
        if self.training:
            return F.gumbel_softmax(logits, tau=1.0, hard=True, dim=-1)[..., 1]
        return logits.argmax(dim=-1).to(d.dtype)


def _downsampling_block(in_channels: int, out_channels: int) -> BasicBlock:
    skip = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False), nn.BatchNorm2d(out_channels))
    return BasicBlock(in_channels, out_channels, stride=2, downsample=skip)


class DistanceHead(nn.Module):
    """``logit = exp(log_scale) * mean_k(z_k^2) - offset`` with ``z = W f + c`` (k projections of the features
    f): the squared distance of f from the centre where ``z = 0``, which training pulls the reals towards.

    A linear head scores one direction: a net trained on fakes that are smoother than the reals (a
    super-resolution family) then scores fakes sharper than the reals (a GAN's checkerboards) as more real
    than the reals. The distance grows either way from the reals. Initial values: scale 1, offset 1.
    """

    def __init__(self, in_features: int, dims: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_features, dims)
        self.log_scale = nn.Parameter(torch.zeros(1))
        self.offset = nn.Parameter(torch.ones(1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, in_features) -> (B, 1) logits."""
        return self.log_scale.exp() * self.proj(features).pow(2).mean(dim=1, keepdim=True) - self.offset


def allowed_dct_channels(min_frequency: int) -> torch.Tensor:
    """(192,) bool: True for channel ``64 c + 8 u + v`` when ``u + v >= min_frequency`` (0: every channel;
    1: all but the DC terms; 2: also without the two lowest AC terms (0, 1) and (1, 0))."""
    u, v = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    return (u + v >= min_frequency).reshape(-1).repeat(3)


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """``x - up(down(x))``, nearest by 2 both ways (NPR), for even H and W: each pixel minus the top-left
    pixel of its 2x2 cell."""
    return x - x[..., ::2, ::2].repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


class FreqNet(DetectorNet):
    """See the module docstring. ``selected_channels`` is the (B, 192) bool mask of the last forward pass
    (the allowed channels without a gate); ``gate_penalty`` the weight of :meth:`regularization`."""

    input_size = None

    def __init__(self, dct_width: int = 64, spatial_width: int = 32, depth: int = 2, gate: bool = True,
                 spatial: bool = True, min_frequency: int = 0, distance_dims: int = 0,
                 surprise: bool = False, surprise_steps: int = 3000, prior_weight: int = 2,
                 gate_penalty: float = GATE_PENALTY) -> None:
        super().__init__()
        self.gate_penalty = gate_penalty
        self.surprise_steps = surprise_steps
        self.prior_weight = prior_weight
        # Derived from the config, not learned: not in the state dict, so weights files keep their tensors.
        self.register_buffer("allowed", allowed_dct_channels(min_frequency), persistent=False)
        self.register_buffer("dct_mean", torch.zeros(DCT_CHANNELS, 1, 1))
        self.register_buffer("dct_std", torch.ones(DCT_CHANNELS, 1, 1))
        self.gate = ChannelGate(DCT_CHANNELS) if gate else None
        self.dct_branch = nn.Sequential(
            nn.Conv2d(DCT_CHANNELS, dct_width, 1, bias=False), nn.BatchNorm2d(dct_width), nn.ReLU(inplace=True),
            *(BasicBlock(dct_width, dct_width) for _ in range(depth)),
        )
        self.spatial_branch = nn.Sequential(
            nn.Conv2d(3, spatial_width, 3, padding=1, bias=False), nn.BatchNorm2d(spatial_width),
            nn.ReLU(inplace=True), *(_downsampling_block(spatial_width, spatial_width) for _ in range(depth)),
        ) if spatial else None
        features = dct_width + (spatial_width if spatial else 0)
        self.head = DistanceHead(features, distance_dims) if distance_dims else nn.Linear(features, 1)
        self.surprise = BlindSpotPredictor() if surprise else None
        if surprise:
            self.register_buffer("surprise_mean", torch.zeros(STATISTICS))
            self.register_buffer("surprise_precision", torch.zeros(STATISTICS, STATISTICS))
            # (head mean, head std, distance mean, distance std) over held-out reals; std 0 = not fitted yet
            self.register_buffer("fusion", torch.zeros(4))
        self.selected_channels: torch.Tensor | None = None
        self._selection_rate: torch.Tensor | None = None

    def dct_input(self, x: torch.Tensor) -> torch.Tensor:
        """The standardized block-DCT channels (B, 192, H / 8, W / 8) the gate and the DCT branch see."""
        return (ycbcr_block_dct(x) - self.dct_mean) / self.dct_std

    @torch.no_grad()
    def fit_normalization(self, batches: Iterable[torch.Tensor]) -> None:
        """Per-channel mean and std of ``ycbcr_block_dct`` over the training batches (B, 3, H, W) in [0, 1]."""
        norm = DCTChannelNorm().fit(ycbcr_block_dct(self.check_input(b).to(self.dct_mean.device)) for b in batches)
        self.dct_mean.copy_(norm.mean.to(self.dct_mean))
        self.dct_std.copy_(norm.std.to(self.dct_std))

    @torch.no_grad()
    def surprise_distance(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) squared Mahalanobis distance of the images' phase statistics from the reals' Gaussian."""
        if self.surprise is None:
            raise FailedPrecondition("this FreqNet has no surprise prior (config surprise=false)")
        return mahalanobis_squared(phase_statistics(self.surprise, x), self.surprise_mean, self.surprise_precision)

    def fit_reals(self, reals: torch.Tensor, log: Callable[[str], None] | None = None) -> None:
        """With ``surprise``: train the predictor on ``reals`` (N, 3, H, W) in [0, 1], the training reals only,
        then fit the reals' Gaussian of its phase statistics; the predictor is frozen afterwards, so the
        detector's own training leaves it alone. Without ``surprise``: nothing."""
        if self.surprise is None:
            return
        reals = self.check_input(reals)
        train_predictor(self.surprise, reals, steps=self.surprise_steps, log=log)
        self.surprise.requires_grad_(False)
        statistics = torch.cat([phase_statistics(self.surprise, batch) for batch in reals.split(256)])
        mean, precision = fit_gaussian(statistics.double().cpu().numpy())
        self.surprise_mean.copy_(torch.from_numpy(mean))
        self.surprise_precision.copy_(torch.from_numpy(precision))

    @torch.no_grad()
    def fit_fusion(self, reals: torch.Tensor) -> None:
        """With ``surprise``: the mean and std of the head's logit and of the distance over held-out ``reals``
        (N >= 2), which turn on the fused eval-mode logit. Without ``surprise``: nothing."""
        if self.surprise is None:
            return
        reals = self.check_input(reals)
        if len(reals) < 2:
            raise InvalidArgument("fit_fusion needs at least 2 real images")
        was_training = self.training
        self.eval()
        head = torch.cat([self.head_logit(batch) for batch in reals.split(256)])
        distance = torch.cat([self.surprise_distance(batch) for batch in reals.split(256)])
        self.train(was_training)
        stats = torch.stack([head.mean(), head.std(), distance.mean(), distance.std()])
        if not (stats[1] > 0 and stats[3] > 0):
            raise FailedPrecondition("the head's logit or the surprise distance is constant over these reals")
        self.fusion.copy_(stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = self.head_logit(x)
        if self.surprise is None or self.training or not self.fusion[1] > 0:
            return logit
        head_mean, head_std, distance_mean, distance_std = self.fusion
        # the distance only of the images the gate keeps: a JPEG'd upload costs the head alone
        kept = looks_uncompressed(x)
        prior = torch.zeros_like(logit)
        if kept.any():
            prior[kept] = (self.surprise_distance(x[kept]) - distance_mean) / distance_std
        return (logit - head_mean) / head_std + self.prior_weight * prior

    def head_logit(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) the head's logit on both branches' pooled features, without the surprise prior."""
        allowed = self.allowed.to(x.dtype).expand(x.shape[0], -1)
        # left-out channels are zeroed before the gate too, so that its choices cannot depend on them
        d = self.dct_input(self.check_input(x)) * allowed[:, :, None, None]
        if self.gate is not None:
            mask = self.gate(d) * allowed
            # the share kept among the channels offered to the gate
            self._selection_rate = mask.sum() / allowed.sum()
        else:
            mask = allowed
        d = d * mask[:, :, None, None]
        self.selected_channels = mask.detach() > 0.5
        features = [self.dct_branch(d).mean(dim=(2, 3))]
        if self.spatial_branch is not None:
            features.append(self.spatial_branch(npr_residual(x)).mean(dim=(2, 3)))
        return self.head(torch.cat(features, dim=1))[:, 0]

    def regularization(self) -> torch.Tensor:
        """``gate_penalty`` x the share of the allowed channels the gate kept in the last forward pass (over
        images and channels; differentiable through the straight-through mask in training mode); 0 without a
        gate or before any forward pass."""
        if self._selection_rate is None:
            return super().regularization()
        return self.gate_penalty * self._selection_rate
