"""The JPEG comb detector against Pillow's encoder: its tables, and its scores on photo crops before and after."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from genaudit.data.offline_photos import load_photos, random_crops
from genaudit.forensics.augment import blur, jpeg
from genaudit.forensics.jpeg_traces import (
    JPEG_SCORE_THRESHOLD,
    ijg_luminance_steps,
    jpeg_comb_score,
    looks_uncompressed,
)


@pytest.fixture(scope="module")
def photo_crops() -> np.ndarray:
    """200 uint8 (64, 64, 3) crops of the offline photos."""
    return np.stack([np.asarray(c.convert("RGB")) for _, c in random_crops(load_photos(), 200, 64, seed=3)])


def _batch(arrays: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arrays)).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("quality", [30, 49, 50, 60, 75, 92, 100])
def test_steps_are_the_tables_pillow_writes(quality: int) -> None:
    image = Image.fromarray(np.random.default_rng(quality).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    written = Image.open(io.BytesIO(buffer.getvalue())).quantization[0]  # luminance, natural order
    assert ijg_luminance_steps(quality).reshape(-1).tolist() == [float(step) for step in written]


@pytest.mark.parametrize(("quality", "detected", "vouched"), [(30, 0.9, 0.0), (60, 0.9, 0.0), (90, 0.9, 0.0),
                                                          (95, 0.75, 0.15)])
def test_jpeg_copies_score_high_and_their_sources_low(
    photo_crops: np.ndarray, quality: int, detected: float, vouched: float,
) -> None:
    clean = jpeg_comb_score(_batch(photo_crops))
    compressed_batch = _batch(np.stack([jpeg(c, quality) for c in photo_crops]))
    compressed = jpeg_comb_score(compressed_batch)
    # A few crops of the (JPEG) source photos fall on its 8x8 grid and keep its comb; almost all do not.
    assert (clean > JPEG_SCORE_THRESHOLD).float().mean() < 0.03
    assert torch.equal(looks_uncompressed(_batch(photo_crops)), clean <= JPEG_SCORE_THRESHOLD)
    # Flat crops keep too few coefficients off the zero tooth to show a comb (and at quality 95 only the highest
    # frequencies have steps of 3 and more); the rest must.
    assert (compressed > JPEG_SCORE_THRESHOLD).float().mean() > detected
    # The flat ones score NaN, so that looks_uncompressed does not vouch for them; only at quality 95 do some
    # copies show too weak a comb and pass for uncompressed.
    assert looks_uncompressed(compressed_batch).float().mean() <= vouched


def test_blurred_photos_are_not_taken_for_jpeg(photo_crops: np.ndarray) -> None:
    # blur leaves many coefficients near 0: the zero tooth of a comb that is not there
    blurred = jpeg_comb_score(_batch(np.stack([blur(c, 1.5) for c in photo_crops])))
    assert (blurred > JPEG_SCORE_THRESHOLD).float().mean() < 0.03


def test_noise_scores_near_zero_and_a_flat_image_gives_no_evidence() -> None:
    noise = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert jpeg_comb_score(noise).abs().max() < 0.1
    assert bool(looks_uncompressed(noise).all())
    flat = torch.full((2, 3, 64, 64), 0.5)
    assert bool(jpeg_comb_score(flat).isnan().all())
    assert not bool(looks_uncompressed(flat).any())


def test_sizes_that_are_not_multiples_of_8_are_cut_to_the_grid() -> None:
    noise = torch.rand(2, 3, 70, 67, generator=torch.Generator().manual_seed(1))
    assert torch.equal(jpeg_comb_score(noise), jpeg_comb_score(noise[:, :, :64, :64]))
