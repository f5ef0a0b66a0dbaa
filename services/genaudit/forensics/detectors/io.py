"""Detector weights files and their JSON cards.

Weights are float32 safetensors with the arch and full config in the metadata (``save_detector``), loaded
by ``load_detector_net`` with the same checks, in the same order, as generator weights
(``genaudit.generators.weights_io``: registry, sha256, header caps and dtypes, names and shapes on a
meta-device build, then the tensors). A trained detector is ``<name>.safetensors`` next to its card
``<name>.json``; the card must hold at least :data:`CARD_FIELDS` (the rest, e.g. metrics, data, recipe, is
free-form JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from genaudit.errors import InvalidArgument
from genaudit.features.weights import normalize_expected_sha256, sha256_file
from genaudit.forensics.detectors.registry import build_detector_net, detector_net_class, get_detector_architecture
from genaudit.generators.weights_io import DEFAULT_MAX_WEIGHTS_BYTES, WeightsSource, load_checked, save_weights
from genaudit.settings import Settings
from genaudit.storage.base import ObjectStore

# Card fields a Detector needs to load and score, with their JSON types.
CARD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "arch": str,
    "config": dict,
    "version": str,
    "weights_file": str,
    "sha256": str,
    "temperature": (int, float),
    "threshold": (int, float),
}


def save_detector(net: torch.nn.Module, path: Path | str, arch: str, config: Mapping[str, Any] | None) -> str:
    """Writes ``net``'s weights to ``path`` (float32 safetensors, arch and full config in the metadata) and
    returns the file's sha256 (hex), the value its card pins."""
    full_config = get_detector_architecture(arch).validate_config(config)
    net_class = detector_net_class(arch)
    if not isinstance(net, net_class):
        raise InvalidArgument(f"a {type(net).__name__} cannot be saved as detector architecture {arch!r} "
                              f"({net_class.__name__})")
    save_weights(net, path, arch, full_config)
    return sha256_file(Path(path))


def load_detector_net(
    arch: str,
    source: WeightsSource,
    config: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    *,
    expected_sha256: str | None = None,
    max_bytes: int = DEFAULT_MAX_WEIGHTS_BYTES,
    settings: Settings | None = None,
    store: ObjectStore | None = None,
) -> torch.nn.Module:
    """A detector net of ``arch`` with the weights of a safetensors file, in eval mode on ``device``.

    ``source``: local path, ``s3://bucket/key`` or the file's bytes; ``config`` None takes it from the file's
    metadata. Raises InvalidArgument for any refused file or config, IntegrityError when the file does not
    match ``expected_sha256``.
    """
    spec = get_detector_architecture(arch)
    return load_checked(arch, source, config, device, validate=spec.validate_config,
                        build=lambda full: build_detector_net(arch, full), kind="detector",
                        expected_sha256=expected_sha256, max_bytes=max_bytes, settings=settings, store=store)


def check_card(card: Any, where: str = "detector card") -> dict[str, Any]:
    """``card`` itself when it is a JSON object holding :data:`CARD_FIELDS` with valid values: a registered
    arch and a config within its bounds, a plain file name for the weights, a full hex sha256, a finite
    temperature > 0, a threshold in [0, 1]. InvalidArgument names the first problem."""
    if not isinstance(card, dict):
        raise InvalidArgument(f"{where} must be a JSON object, got {type(card).__name__}")
    missing = sorted(set(CARD_FIELDS) - set(card))
    if missing:
        raise InvalidArgument(f"{where} lacks the fields {missing}")
    for name, kind in CARD_FIELDS.items():
        if not isinstance(card[name], kind) or isinstance(card[name], bool):
            raise InvalidArgument(f"{where}: {name!r} has the wrong type ({type(card[name]).__name__})")
    get_detector_architecture(card["arch"]).validate_config(card["config"])
    weights_file = card["weights_file"]
    if Path(weights_file).name != weights_file or weights_file in ("", ".", ".."):
        raise InvalidArgument(f"{where}: weights_file must be a file name next to the card, got {weights_file!r}")
    if len(normalize_expected_sha256(card["sha256"])) != 64:
        raise InvalidArgument(f"{where}: sha256 must be the full 64 hex digits, got {card['sha256']!r}")
    if not (math.isfinite(card["temperature"]) and card["temperature"] > 0):
        raise InvalidArgument(f"{where}: temperature must be a finite number > 0, got {card['temperature']}")
    if not 0.0 <= card["threshold"] <= 1.0:
        raise InvalidArgument(f"{where}: threshold must be in [0, 1], got {card['threshold']}")
    return card


def write_card(path: Path | str, card: Mapping[str, Any]) -> None:
    """Writes ``card`` (checked by :func:`check_card`) as indented JSON with sorted keys."""
    checked = check_card(dict(card))
    try:
        text = json.dumps(checked, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:  # a non-JSON value, NaN or infinity
        raise InvalidArgument(f"detector card is not plain JSON: {exc}") from None
    Path(path).write_text(text + "\n", encoding="utf-8")


def read_card(path: Path | str) -> dict[str, Any]:
    """The checked card at ``path`` (InvalidArgument when it is missing, not JSON or malformed)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidArgument(f"detector card {str(path)!r} does not exist")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"detector card {str(path)!r} is not valid JSON: {exc}") from None
    return check_card(card, where=f"detector card {str(path)!r}")
