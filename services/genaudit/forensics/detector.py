"""The Detector: a trained detector net with its calibration, scoring images (the gateway's ``Screener``).

Test-time preprocessing follows Wang et al. (CVPR 2020): no resizing, which would blur away the traces of
upsampling. Each image is converted to 8-bit RGB (``genaudit.images.to_rgb``) and centre-cropped to a square
of side ``s``: the net's ``input_size`` when it has one, else the largest multiple of 16 not above
``min(W, H, max_side)``, its corner at the centred crop's rounded down to multiples of 8, so that the crop keeps
the 8x8 block grid of a JPEG upload (FreqNet's prior stands aside on images that show JPEG's quantization comb on
that grid, ``genaudit.forensics.jpeg_traces``); an image smaller than the side needed (``input_size``, else
:data:`MIN_SIDE`) is refused with InvalidArgument. Images of different sizes are scored group by group (one
group per ``s``), in batches of at most ``max_batch``, under ``torch.inference_mode()``.

Calibration: ``probability = sigmoid(logit / temperature)`` (temperature scaling fitted on held-out data);
``threshold`` is the operating point on that probability (set by a target false-positive rate). Both come
from the card. Rankings (AP, AUC) use the calibrated log-odds ``logit / temperature``, which keep the order
that probabilities rounded to 1.0 lose.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy.special import expit

from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.forensics._inputs import check_batch, to_image_batch
from genaudit.forensics.detectors.base import center_offsets
from genaudit.forensics.detectors.io import load_detector_net, read_card
from genaudit.forensics.detectors.registry import get_detector_architecture
from genaudit.forensics.evidence import batch_spectral_evidence
from genaudit.gateway.screening import ScreenVerdict
from genaudit.images import to_rgb

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MAX_SIDE = 256
DEFAULT_MAX_BATCH = 32
# Smallest crop a net without a fixed input size is given: a multiple of 16 that the spectral evidence
# (20 px at least) can be computed on.
MIN_SIDE = 32

ImagesInput = Sequence[Image.Image] | torch.Tensor


def grid_aligned_offsets(height: int, width: int, side: int) -> tuple[int, int]:
    """(top, left) of the centred ``side`` x ``side`` window (``center_offsets``), each rounded down to a
    multiple of 8."""
    top, left = center_offsets(height, width, side)
    return top // 8 * 8, left // 8 * 8


class Detector:
    """Scores RGB images with a detector net; see the module docstring for preprocessing and calibration."""

    def __init__(
        self,
        net: torch.nn.Module,
        arch: str,
        config: Mapping[str, Any],
        *,
        temperature: float = 1.0,
        threshold: float = 0.5,
        version: str = "unversioned",
        card: Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
        max_side: int = DEFAULT_MAX_SIDE,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if not (math.isfinite(temperature) and temperature > 0):
            raise InvalidArgument(f"temperature must be a finite number > 0, got {temperature}")
        if not 0.0 <= threshold <= 1.0:
            raise InvalidArgument(f"threshold must be in [0, 1], got {threshold}")
        if max_side < MIN_SIDE or max_batch < 1:
            raise InvalidArgument(f"max_side must be >= {MIN_SIDE} and max_batch >= 1, got {max_side}, {max_batch}")
        self.arch = arch
        self.config = get_detector_architecture(arch).validate_config(config)
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.temperature = float(temperature)
        self.threshold = float(threshold)
        self.version = version
        self.card = dict(card or {})
        self.max_side = max_side
        self.max_batch = max_batch

    @classmethod
    def from_card(cls, card_path: Path | str, device: str | torch.device = "cpu") -> Detector:
        """The detector a card describes; its weights file lies next to the card and must match the card's
        sha256 (IntegrityError otherwise)."""
        path = Path(card_path)
        card = read_card(path)
        net = load_detector_net(card["arch"], path.parent / card["weights_file"], card["config"], device,
                                expected_sha256=card["sha256"])
        return cls(net, card["arch"], card["config"], temperature=float(card["temperature"]),
                   threshold=float(card["threshold"]), version=card["version"], card=card, device=device)

    @classmethod
    def load_default(cls, device: str | torch.device = "cpu") -> Detector:
        """The shipped detector: the one card in ``forensics/weights/``."""
        cards = sorted(WEIGHTS_DIR.glob("*.json"))
        if not cards:
            raise FailedPrecondition(
                f"no default detector is shipped yet: {WEIGHTS_DIR} holds no card (<name>.json next to "
                "<name>.safetensors); train one and load it with Detector.from_card(<card path>)"
            )
        if len(cards) > 1:
            raise FailedPrecondition(f"{WEIGHTS_DIR} holds {len(cards)} detector cards "
                                     f"({', '.join(p.name for p in cards)}); the default must be the only one")
        return cls.from_card(cards[0], device)

    def crop_side(self, height: int, width: int) -> int:
        """Side of the square centre crop an image of ``width`` x ``height`` is scored on."""
        needed = self.net.input_size or MIN_SIDE
        if min(height, width) < needed:
            raise InvalidArgument(f"image {width}x{height} is smaller than {needed}x{needed}, the smallest this "
                                  "detector scores")
        return self.net.input_size or 16 * (min(height, width, self.max_side) // 16)

    def preprocess(self, images: ImagesInput) -> list[torch.Tensor]:
        """One (3, s, s) centre crop per image: uint8 for Pillow images (converted to RGB first), the input's
        dtype for a (B, 3, H, W) tensor batch in [0, 1] (or uint8)."""
        if isinstance(images, torch.Tensor):
            batch = check_batch(to_image_batch(images), channels=3)
            side = self.crop_side(*batch.shape[-2:])
            top, left = grid_aligned_offsets(*batch.shape[-2:], side)
            return list(batch[..., top : top + side, left : left + side].unbind(0))
        crops = []
        for image in images:
            if not isinstance(image, Image.Image):
                raise InvalidArgument(f"expected PIL images or a tensor batch, got {type(image).__name__}")
            rgb = to_rgb(image)
            side = self.crop_side(rgb.height, rgb.width)
            top, left = grid_aligned_offsets(rgb.height, rgb.width, side)
            window = np.array(rgb.crop((left, top, left + side, top + side)))
            crops.append(torch.from_numpy(window).permute(2, 0, 1))
        return crops

    def _batches(self, crops: list[torch.Tensor]) -> Iterator[tuple[list[int], torch.Tensor]]:
        """(indices, float batch on the device) for each group of equal-size crops, ``max_batch`` at a time."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, crop in enumerate(crops):
            groups.setdefault(tuple(crop.shape), []).append(i)
        for indices in groups.values():
            for start in range(0, len(indices), self.max_batch):
                chunk = indices[start : start + self.max_batch]
                yield chunk, to_image_batch(torch.stack([crops[i] for i in chunk]).to(self.device))

    def _score(self, images: ImagesInput, evidence: bool) -> tuple[np.ndarray, list[dict[str, float]]]:
        crops = self.preprocess(images)
        logits = np.zeros(len(crops), dtype=np.float64)
        found: list[dict[str, float]] = [{} for _ in crops]
        with torch.inference_mode():
            for chunk, batch in self._batches(crops):
                logits[chunk] = self.net(batch).double().cpu().numpy()
                if evidence:
                    for i, numbers in zip(chunk, batch_spectral_evidence(batch), strict=True):
                        found[i] = numbers
        return logits, found

    def logits(self, images: ImagesInput) -> np.ndarray:
        """(N,) float64 logits of the net (> 0: generated), in input order."""
        return self._score(images, evidence=False)[0]

    def log_odds(self, images: ImagesInput) -> np.ndarray:
        """(N,) calibrated log-odds ``logit / temperature`` that each image is generated. Rank by these, not by
        the probabilities: sigmoid rounds every log-odds above about 36.7 to exactly 1.0 in float64."""
        return self.logits(images) / self.temperature

    def probabilities(self, images: ImagesInput) -> np.ndarray:
        """(N,) calibrated probabilities ``sigmoid(log-odds)`` that each image is generated."""
        return expit(self.log_odds(images))

    def score_batch(self, images: list[Image.Image]) -> tuple[np.ndarray, list[dict[str, float]]]:
        """The calibrated log-odds of each image, in order, and the spectral evidence
        (``batch_spectral_evidence``) of the same crop the net scored."""
        logits, evidence = self._score(images, evidence=True)
        return logits / self.temperature, evidence

    def screen_batch(self, images: list[Image.Image]) -> list[ScreenVerdict]:
        """One verdict per image, in order: the calibrated probability and the spectral evidence."""
        log_odds, evidence = self.score_batch(images)
        return [ScreenVerdict(probability_generated=float(p), evidence=e)
                for p, e in zip(expit(log_odds), evidence, strict=True)]
