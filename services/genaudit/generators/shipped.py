"""Reference generators we trained ourselves (``recipes``), shipped as small safetensors files with JSON cards.

Each ``weights/<name>.safetensors`` has a card ``weights/<name>.json`` (arch, config, recipe, scale used,
seed, sha256, parameter count, date). Loading goes through ``load_generator`` like any user file, pinned
to the card's sha256.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genaudit.errors import InvalidArgument

if TYPE_CHECKING:  # torch only to load: the gateway lists the shipped generators without it
    import torch

    from genaudit.generators.base import Generator

WEIGHTS_DIR = Path(__file__).parent / "weights"


def shipped_generators() -> dict[str, dict[str, Any]]:
    """Card of every shipped generator, by name."""
    cards = (json.loads(p.read_text()) for p in sorted(WEIGHTS_DIR.glob("*.json")))
    return {card["name"]: card for card in cards}


def load_shipped(name: str, device: str | torch.device = "cpu") -> Generator:
    from genaudit.generators.loading import load_generator

    cards = shipped_generators()
    if name not in cards:
        raise InvalidArgument(f"no shipped generator {name!r}; shipped: {sorted(cards)}")
    card = cards[name]
    return load_generator(card["arch"], WEIGHTS_DIR / card["weights_file"], card["config"], device,
                          expected_sha256=card["sha256"])
