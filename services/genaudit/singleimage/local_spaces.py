"""The registry of per-location feature spaces: convolutional feature maps (D, h, w) of an image, one D-vector per
location, for SIFID (``genaudit.singleimage.sifid``).

Torch-free on purpose, so that the gateway can validate a space name without the science stack.

A local space truncates the network of a whole-image space (``genaudit.features.spaces``) and uses that space's
weights file (same file, same pinned sha256, same lookup: ``genaudit.features.weights``). Unlike the whole-image
spaces, nothing is resized: SIFID compares the internal patch statistics of an image at its own resolution. Inputs
are float images in [-1, 1] (generator outputs); each space maps them to what its network was trained on with
``x * input_scale + input_offset``.

- ``inception-v3-conv4a`` is SIFID as the SinGAN paper defines it (Rott Shaham, Dekel, Michaeli, ICCV 2019, §4:
  "the output of the convolutional layer just before the second pooling layer"): the FID Inception-v3 up to
  Conv2d_4a_3x3 after its BatchNorm and ReLU, 192 channels, input in [-1, 1], receptive field 23 px, stride 4.
  Its weights file (pytorch-fid's ``pt_inception-2015-12-05``) is not bundled. What the published code does
  differs: SinGAN's ``SIFID/sifid_score.py`` (tamarott/SinGAN) calls its ``calculate_sifid_given_paths`` with
  ``dims=64``, and its ``SIFID/inception.py`` ends the 64-d block 0 at Conv2d_2b_3x3, without the first max
  pool: the published code reads the layer *before the first* pooling layer (issue tamarott/SinGAN#155, pull
  requests #156-#158, open since 2021). One stored version of that script passes 192 instead, which reads
  Conv2d_4a_3x3 like the paper. The published code also loads torchvision's ImageNet Inception-v3, not the FID
  Inception used here, so its SIFID values are not numerically comparable with these. We follow the paper and
  DESIGN.md §4.
- ``efficientnet-lite0-stage2`` (the default: its weights ship with the package, so it works offline):
  EfficientNet-Lite0 up to the end of its second MBConv stage (blocks 1-2, 24 channels, stride 4, linear
  bottleneck output: no activation after the projection). Its receptive field is 19 px at stride 4, the closest
  match in this network to Conv2d_4a_3x3's 23 px at stride 4 (the 40-channel stage 3 sees 67 px at stride 8: a
  coarser, larger-scale statistic, and 8x8 px per location leaves few locations on a small image). Input: the
  Lite0 preprocessing of ``efficientnet-lite0`` ((v - 127) / 128 on 0..255 values, i.e. (127.5 x + 0.5) / 128 of
  x in [-1, 1]); TF 'SAME' padding computed for each input size.

Fréchet distances in different spaces are not comparable: always name the space with a result.
"""

from __future__ import annotations

from dataclasses import dataclass

from genaudit.errors import InvalidArgument
from genaudit.features.spaces import EFFICIENTNET_LITE0, INCEPTION_V3_POOL3, FeatureSpace


@dataclass(frozen=True)
class LocalFeatureSpace:
    name: str
    dim: int  # channels D of the feature map
    layer: str  # the last layer kept, as the network names it
    stride: int  # input pixels per feature-map location, along each axis
    receptive_field: int  # input pixels seen by one location, along each axis
    min_side: int  # the smallest input side with one output location
    base: FeatureSpace  # the whole-image space whose network and weights file this truncates
    description: str

    @property
    def input_scale(self) -> float:
        """Multiplier of an input x in [-1, 1]: the base space's (v - mean) / std of v = 127.5 (x + 1)."""
        return 127.5 / self.base.preprocessing.std[0]

    @property
    def input_offset(self) -> float:
        return (127.5 - self.base.preprocessing.mean[0]) / self.base.preprocessing.std[0]

    @property
    def id(self) -> str:
        """Stable text naming what decides the features besides the weights: part of cache and result keys."""
        return f"{self.name}:layer={self.layer}:input=x*{self.input_scale:g}+{self.input_offset:g}:no-resize"


def _uniform_channels(space: FeatureSpace) -> FeatureSpace:
    # input_scale / input_offset are one number for all channels: true of both base spaces (checked at import).
    if len(set(space.preprocessing.mean)) != 1 or len(set(space.preprocessing.std)) != 1:
        raise ValueError(f"{space.name} normalizes channels differently; a local space needs one scale")
    return space


INCEPTION_V3_CONV4A = LocalFeatureSpace(
    name="inception-v3-conv4a",
    dim=192,
    layer="Conv2d_4a_3x3",
    stride=4,
    receptive_field=23,
    min_side=19,
    base=_uniform_channels(INCEPTION_V3_POOL3),
    description="FID Inception-v3 up to Conv2d_4a_3x3 (after BN + ReLU), 192-d per location: SIFID as defined "
                "in the SinGAN paper",
)

EFFICIENTNET_LITE0_STAGE2 = LocalFeatureSpace(
    name="efficientnet-lite0-stage2",
    dim=24,
    layer="_blocks.2",
    stride=4,
    receptive_field=19,
    min_side=4,
    base=_uniform_channels(EFFICIENTNET_LITE0),
    description="EfficientNet-Lite0 (ImageNet) up to the end of stage 2 (24-d per location, stride 4), bundled "
                "weights: the offline default",
)

LOCAL_SPACES: dict[str, LocalFeatureSpace] = {s.name: s for s in (EFFICIENTNET_LITE0_STAGE2, INCEPTION_V3_CONV4A)}
DEFAULT_LOCAL_SPACE = EFFICIENTNET_LITE0_STAGE2.name


def get_local_space(name: str) -> LocalFeatureSpace:
    """The registered local space called ``name``; InvalidArgument listing the known ones otherwise."""
    try:
        return LOCAL_SPACES[name]
    except (KeyError, TypeError):
        raise InvalidArgument(
            f"unknown local feature space {name!r}; known local spaces: {', '.join(sorted(LOCAL_SPACES))}"
        ) from None
