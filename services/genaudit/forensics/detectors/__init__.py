"""Detector nets for CNN-generated images: architectures, registry, weights files.

- ``registry``: ``DETECTOR_ARCHITECTURES`` (name -> ``DetectorSpec`` with bounded constructor params),
  ``build_detector_net(arch, config)``; torch-free, so the gateway can validate configs.
- ``base``: ``DetectorNet`` (``forward(x) -> (B,) logits``, ``input_size``, ``fit_normalization``,
  ``regularization``), ``center_crop``.
- ``freqnet``: ``FreqNet`` (ours: learned-gate block DCT + NPR residual); ``baselines``: ``ResNet50RGB``,
  ``LogDCTLinear``, ``SpectrumLogistic``.
- ``io``: ``save_detector``, ``load_detector_net`` (safetensors only, checked before allocation),
  ``write_card``, ``read_card``.

Importing this package does not import torch: the names that need it load on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from genaudit.forensics.detectors.registry import (
    DETECTOR_ARCHITECTURES,
    DetectorSpec,
    build_detector_net,
    get_detector_architecture,
)

if TYPE_CHECKING:
    from genaudit.forensics.detectors.base import DetectorNet, center_crop
    from genaudit.forensics.detectors.baselines import LogDCTLinear, ResNet50RGB, SpectrumLogistic
    from genaudit.forensics.detectors.freqnet import ChannelGate, FreqNet
    from genaudit.forensics.detectors.io import load_detector_net, read_card, save_detector, write_card

_LAZY = {
    "ChannelGate": "genaudit.forensics.detectors.freqnet",
    "DetectorNet": "genaudit.forensics.detectors.base",
    "FreqNet": "genaudit.forensics.detectors.freqnet",
    "LogDCTLinear": "genaudit.forensics.detectors.baselines",
    "ResNet50RGB": "genaudit.forensics.detectors.baselines",
    "SpectrumLogistic": "genaudit.forensics.detectors.baselines",
    "center_crop": "genaudit.forensics.detectors.base",
    "load_detector_net": "genaudit.forensics.detectors.io",
    "read_card": "genaudit.forensics.detectors.io",
    "save_detector": "genaudit.forensics.detectors.io",
    "write_card": "genaudit.forensics.detectors.io",
}

__all__ = [
    "DETECTOR_ARCHITECTURES",
    "ChannelGate",
    "DetectorNet",
    "DetectorSpec",
    "FreqNet",
    "LogDCTLinear",
    "ResNet50RGB",
    "SpectrumLogistic",
    "build_detector_net",
    "center_crop",
    "get_detector_architecture",
    "load_detector_net",
    "read_card",
    "save_detector",
    "write_card",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
