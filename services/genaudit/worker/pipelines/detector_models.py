"""The detector a detect job names: "default" (the shipped one) or a model card a train_detector job wrote.

A card is read only from the job's own tenant's results (``keys.is_result_key_of``): any other key, or a
card that does not exist, is the same NotFound, so a tenant cannot probe another's keys. The card and the
weights file next to it are fetched into a temporary folder and loaded by ``Detector.from_card``: the card
is checked (``detectors.io.check_card``) and the weights must match the sha256 it pins (IntegrityError
otherwise), safetensors only.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genaudit.devices import resolve_device
from genaudit.errors import InvalidArgument, NotFound
from genaudit.forensics.detector import Detector
from genaudit.forensics.detectors.io import check_card
from genaudit.jobs import keys
from genaudit.jobs.specs import DEFAULT_MODEL
from genaudit.worker.context import WorkerContext


@dataclass(frozen=True)
class LoadedDetector:
    detector: Detector
    model: str  # "default" or the card's key

    def describe(self) -> dict[str, Any]:
        """What the results depend on: the model, its version, weights sha256 and calibration."""
        d = self.detector
        return {"model": self.model, "arch": d.arch, "config": dict(d.config), "version": d.version,
                "threshold": d.threshold, "temperature": d.temperature, "sha256": d.card.get("sha256")}


def unknown_model(model: str) -> NotFound:
    return NotFound(f"unknown model {model!r}: give \"default\" or the model_card key of a train_detector job "
                    "of this tenant that succeeded")


def load_detector(ctx: WorkerContext, tenant: str, model: str) -> LoadedDetector:
    """The detector ``model`` names, on the worker's device (see the module docstring)."""
    device = resolve_device(ctx.settings.device)
    if model == DEFAULT_MODEL:
        detector = Detector.load_default(device)
    else:
        if not keys.is_result_key_of(tenant, model):
            raise unknown_model(model)
        try:
            card_bytes = ctx.store.get_bytes(model)
        except NotFound:
            raise unknown_model(model) from None
        try:
            card = check_card(json.loads(card_bytes), where=f"model card {model!r}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidArgument(f"model card {model!r} is not valid JSON: {exc}") from None
        folder_key = model.rsplit("/", 1)[0] + "/"
        with tempfile.TemporaryDirectory(prefix="genaudit-detector-") as tmp:
            card_path = Path(tmp) / "card.json"
            card_path.write_bytes(card_bytes)
            try:
                ctx.store.get_file(folder_key + card["weights_file"], Path(tmp) / card["weights_file"])
            except NotFound:
                raise NotFound(f"model card {model!r} names the weights file {card['weights_file']!r}, "
                               "which is not next to it") from None
            detector = Detector.from_card(card_path, device)
    return LoadedDetector(detector, model)
