"""Feature spaces, verified weight loading, batched extraction and the feature cache.

Importing this package (and ``spaces``, ``cache``) does not import torch: the public names that need it
load on first access, so the gateway can use the registry and the cache without the science stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from genaudit.features.cache import FeatureCache, dataset_content_hash
from genaudit.features.spaces import DEFAULT_SPACE, SPACES, FeatureSpace, get_space

if TYPE_CHECKING:
    from genaudit.features.extraction import extract_features
    from genaudit.features.extractor import FeatureExtractor, get_extractor

_LAZY = {
    "FeatureExtractor": "genaudit.features.extractor",
    "get_extractor": "genaudit.features.extractor",
    "extract_features": "genaudit.features.extraction",
}

__all__ = [
    "DEFAULT_SPACE",
    "SPACES",
    "FeatureCache",
    "FeatureExtractor",
    "FeatureSpace",
    "dataset_content_hash",
    "extract_features",
    "get_extractor",
    "get_space",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
