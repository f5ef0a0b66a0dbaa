"""The shipped SinGAN (``singan-chelsea``, trained at the CPU scale by scripts/train_single_image.py): its card
pins its weights and its training image, and the audit tells its deterministic reconstruction (a copy of the
image) from its random samples (not copies, and farther from the image in SIFID)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from genaudit.data.offline_photos import load_photos
from genaudit.features import get_extractor
from genaudit.generators import load_shipped, shipped_generators
from genaudit.generators.shipped import WEIGHTS_DIR
from genaudit.singleimage.audit import audit_single_image
from genaudit.singleimage.local_features import get_local_extractor
from genaudit.singleimage.training_image import training_tensor

NAME = "singan-chelsea"


@pytest.fixture(scope="module")
def card() -> dict:
    return shipped_generators()[NAME]


def test_card_pins_the_weights_and_the_training_image(card: dict) -> None:
    assert card["arch"] == "singan" and card["scale"] == "cpu"
    assert hashlib.sha256((WEIGHTS_DIR / card["weights_file"]).read_bytes()).hexdigest() == card["sha256"]
    png = (WEIGHTS_DIR / card["image"]["file"]).read_bytes()
    assert hashlib.sha256(png).hexdigest() == card["image"]["png_sha256"]
    # the shipped PNG is the photo shrunk as the recipe says: the audit can start from either
    rebuilt = training_tensor(dict(load_photos())[card["image"]["photo"]], card["image"]["max_side"])
    shipped = np.asarray(Image.open(WEIGHTS_DIR / card["image"]["file"]))
    np.testing.assert_array_equal(((rebuilt[0].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy(),
                                  shipped)
    assert (card["config"]["height"], card["config"]["width"]) == shipped.shape[:2]


def test_audit_separates_the_reconstruction_from_the_samples(card: dict) -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = load_shipped(NAME)
        image = training_tensor(Image.open(WEIGHTS_DIR / card["image"]["file"]), card["image"]["max_side"])
        audit = audit_single_image(generator, image, local_extractor=get_local_extractor(device="cpu"),
                                   global_extractor=get_extractor("efficientnet-lite0", "cpu"), n_samples=8, seed=3)
    finally:
        torch.set_num_threads(previous)
    assert audit.reconstruction_rmse == pytest.approx(card["reconstruction_rmse"], abs=1e-6)
    assert audit.reconstruction_copies.is_copy
    assert not any(c.is_copy for c in audit.copies)
    assert audit.reconstruction_sifid < audit.sifid.min()
    assert min(r for r in audit.sample_rmse() if r is not None) > 3 * audit.reconstruction_rmse
    assert audit.pixel_diversity > 0.2  # samples vary; the paper reports about 0.5 for its random samples
