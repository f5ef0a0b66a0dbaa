"""The networks behind each feature space, built from a verified state dict, cut at the feature layer.

Architectures are built on the meta device (no memory, no random init) and the state dict is assigned
with ``strict=True``: every parameter must come from the file, so a network can never run on random
weights.

``inception-v3-pool3`` is the FID Inception: the TF graph "inception-2015-12-05" that FID is defined with,
whose PyTorch port (pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``, also shipped by torch-fidelity
under another name) differs from torchvision's Inception-v3 in three ways, reproduced here on top of the
torchvision blocks: 1008 classes; the pool branch of Mixed_5b-d, Mixed_6b-e and Mixed_7b averages over
valid pixels only (TF 'SAME' average pooling excludes the padding); Mixed_7c's pool branch is a 3x3 max
pool instead of an average. torchvision's own Inception weights are not supported (a different network:
its features would not give comparable FIDs).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.inception import InceptionA, InceptionC, InceptionE

from genaudit.errors import InvalidArgument


def tf_avg_pool3x3(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def max_pool3x3(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


# The three FID blocks keep torchvision's layers (so the parameter names match the published file) and
# replace only the input of the pool branch. torchvision's ``forward`` concatenates what ``_forward`` returns.
class FIDInceptionA(InceptionA):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(tf_avg_pool3x3(x)),
        ]


class FIDInceptionC(InceptionC):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7dbl = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                     self.branch7x7dbl_5):
            b7dbl = conv(b7dbl)
        return [self.branch1x1(x), b7, b7dbl, self.branch_pool(tf_avg_pool3x3(x))]


class FIDInceptionE(InceptionE):
    def __init__(self, in_channels: int, pool: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__(in_channels)
        self.pool = pool

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3dbl = torch.cat([self.branch3x3dbl_3a(b3dbl), self.branch3x3dbl_3b(b3dbl)], 1)
        return [self.branch1x1(x), b3, b3dbl, self.branch_pool(self.pool(x))]


def fid_inception_v3() -> torchvision.models.Inception3:
    """The FID Inception-v3 architecture (parameters uninitialized; load the official state dict)."""
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        setattr(net, name, FIDInceptionC(768, channels_7x7=c7))
    net.Mixed_7b = FIDInceptionE(1280, pool=tf_avg_pool3x3)
    net.Mixed_7c = FIDInceptionE(2048, pool=max_pool3x3)
    return net


class InceptionPool3(nn.Module):
    """Input in [-1, 1] at 299 px -> 2048-d global average pool (FID's pool3)."""

    def __init__(self, net: torchvision.models.Inception3) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1,
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, net.maxpool2,
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,
            net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e,
            net.Mixed_7a, net.Mixed_7b, net.Mixed_7c,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x).mean(dim=(2, 3))


class VGG16FC2(nn.Module):
    """ImageNet-normalized 224 px -> fc2 after ReLU (4096-d), the Rarity Score paper's space."""

    def __init__(self, net: torchvision.models.VGG) -> None:
        super().__init__()
        self.features = net.features
        self.avgpool = net.avgpool
        self.fc = net.classifier[:5]  # fc1, ReLU, Dropout (identity in eval), fc2, ReLU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


class EfficientNetLite0Pool(nn.Module):
    """TF-scaled 224 px -> 1280-d global average of the head (what the classifier's fc reads)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


def _efficientnet_lite0() -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0")


_ARCHITECTURES: dict[str, tuple[Callable[[], nn.Module], Callable[[nn.Module], nn.Module]]] = {
    "efficientnet-lite0": (_efficientnet_lite0, EfficientNetLite0Pool),
    "vgg16-fc2": (lambda: torchvision.models.vgg16(weights=None), VGG16FC2),
    "inception-v3-pool3": (fid_inception_v3, InceptionPool3),
}


def full_architecture(space_name: str) -> nn.Module:
    """The whole network of a space, as its weights file describes it, on the meta device."""
    build, _ = _ARCHITECTURES[space_name]
    with torch.device("meta"):
        return build()


def build_feature_network(space_name: str, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Feature network of ``space_name`` in eval mode on the CPU, every tensor taken from ``state_dict``."""
    _, cut = _ARCHITECTURES[space_name]
    net = full_architecture(space_name)
    try:
        net.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as exc:  # missing/unexpected keys or shape mismatches
        raise InvalidArgument(f"weights do not fit the {space_name!r} architecture: {exc}") from exc
    if any(t.is_meta for t in (*net.parameters(), *net.buffers())):
        raise InvalidArgument(f"weights leave part of the {space_name!r} network uninitialized")
    features = cut(net).eval()
    features.requires_grad_(False)
    return features


# Per-location networks of ``genaudit.singleimage.local_spaces``: the same weights files cut after an early layer,
# no pooling, any input size (no resize). EfficientNet-Lite0 is built with TF 'SAME' padding computed from each
# input's size; the pooled space's network pads for 224 px, which is TF's padding only on sides divisible by 32.
def _efficientnet_lite0_any_size() -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0", image_size=None)


_ARCHITECTURES.update({
    "inception-v3-conv4a": (fid_inception_v3, lambda net: nn.Sequential(
        net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1, net.Conv2d_3b_1x1, net.Conv2d_4a_3x3)),
    "efficientnet-lite0-stage2": (_efficientnet_lite0_any_size, lambda net: nn.Sequential(
        net._conv_stem, net._bn0, net._swish, *net._blocks[:3])),
})
