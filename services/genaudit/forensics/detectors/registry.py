"""Registered detector architectures and validation of their constructor arguments.

Torch-free on purpose, like ``genaudit.generators.registry`` (whose ``Param`` it uses): the gateway validates a
job's detector ``arch`` and ``config`` with this module alone; each net class is named by "module:Class" and
imported only when a net is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genaudit.errors import InvalidArgument
from genaudit.generators.registry import Param, import_object, validate_params

# Centre-crop sides a fixed-input baseline may take: multiples of 16, at least 32 (the spectral evidence that
# goes with each verdict needs 20 px), at most the 256 px the detector crops test images to.
_INPUT_SIZES = (32, 64, 128, 224, 256)


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    description: str
    net: str  # "module:Class" of the nn.Module
    params: Mapping[str, Param]

    def validate_config(self, config: Mapping[str, Any] | None) -> dict[str, int | bool]:
        """Full constructor kwargs: ``config`` checked name by name against the bounds, defaults filled in."""
        return validate_params(self.params, config, f"detector architecture {self.name!r}")


DETECTOR_ARCHITECTURES: dict[str, DetectorSpec] = {
    spec.name: spec
    for spec in (
        DetectorSpec(
            name="freqnet",
            description="ours: learned-gate block-DCT branch (Xu et al.) + NPR residual branch, fused to one logit",
            net="genaudit.forensics.detectors.freqnet:FreqNet",
            params={
                "dct_width": Param(int, 64, 8, 256, doc="channels of the DCT branch's residual CNN"),
                "spatial_width": Param(int, 32, 4, 128, doc="channels of the spatial (NPR residual) branch"),
                "depth": Param(int, 2, 1, 4, doc="residual blocks per branch"),
                "gate": Param(bool, True, doc="learned DCT channel selection (off: all 192 channels)"),
                "spatial": Param(bool, True, doc="spatial branch on the residual x - up(down(x))"),
                "min_frequency": Param(int, 0, 0, 14, doc="DCT coefficients (u, v) with u + v below this are left "
                                       "out (0: all 192 channels; the detector recipe uses 2)"),
                "distance_dims": Param(int, 0, 0, 256, doc="0: linear head; k > 0: a head scoring the squared "
                                       "distance of k feature projections from the reals' centre (recipe: 16)"),
                "surprise": Param(bool, False, doc="add a prior of the reals: a blind-spot pixel predictor fitted on "
                                  "the training reals and the Mahalanobis distance of its phase statistics"),
                "surprise_steps": Param(int, 3000, 1, 100_000, doc="training steps of the surprise predictor (its "
                                        "learning rate annealed to 0 over them on a cosine)"),
                "prior_weight": Param(int, 2, 0, 8, doc="weight of the surprise prior's standardized distance in "
                                      "the fused logit, next to the head's standardized logit (weight 1)"),
            },
        ),
        DetectorSpec(
            name="resnet50-rgb",
            description="Wang et al.: ResNet-50 on the ImageNet-normalized RGB image, 1-logit head",
            net="genaudit.forensics.detectors.baselines:ResNet50RGB",
            params={},
        ),
        DetectorSpec(
            name="logdct-linear",
            description="Frank et al.: log |2-D DCT| per channel, per-coefficient standardization, linear",
            net="genaudit.forensics.detectors.baselines:LogDCTLinear",
            params={"input_size": Param(int, 64, choices=_INPUT_SIZES, doc="centre-crop side in px")},
        ),
        DetectorSpec(
            name="spectrum-logistic",
            description="Durall et al.: azimuthal average of the grey FFT spectrum in dB, standardized, logistic",
            net="genaudit.forensics.detectors.baselines:SpectrumLogistic",
            params={"input_size": Param(int, 64, choices=_INPUT_SIZES, doc="centre-crop side in px")},
        ),
    )
}


def get_detector_architecture(name: str) -> DetectorSpec:
    try:
        return DETECTOR_ARCHITECTURES[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown detector architecture {name!r}; known: {sorted(DETECTOR_ARCHITECTURES)}"
        ) from None


def detector_net_class(arch: str) -> type:
    """The nn.Module class of ``arch`` (imports torch)."""
    return import_object(get_detector_architecture(arch).net)


def build_detector_net(arch: str, config: Mapping[str, Any] | None = None) -> Any:
    """A freshly initialized detector net (a ``genaudit.forensics.detectors.base.DetectorNet``) of a
    validated config."""
    return detector_net_class(arch)(**get_detector_architecture(arch).validate_config(config))
