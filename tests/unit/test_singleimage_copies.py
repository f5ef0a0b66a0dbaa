"""Copy detection: exact, translated, 8-bit rounded and partial copies are found with their offsets; shuffled blocks
and noise are not copies; the nearest-neighbour search equals a float64 brute force."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from genaudit.errors import InvalidArgument
from genaudit.generators.sampling import to_uint8
from genaudit.reports.single_image_plots import COPY_ROW_SIZE, copy_maps_png
from genaudit.singleimage.copies import DEFAULT_COPY_THRESHOLD, LEVEL, find_copies

pytestmark = pytest.mark.usefixtures("one_torch_thread")




def _texture(h: int, w: int, seed: int, channels: int = 3, quantize: bool = True) -> torch.Tensor:
    """A smooth random colour field in [-1, 1] (every 7 px patch unique), on 8-bit levels unless ``quantize``."""
    noise = np.random.default_rng(seed).standard_normal((channels, h, w))
    field = ndimage.gaussian_filter(noise, (0, 2.0, 2.0))
    field = field / np.abs(field).max()
    if quantize:
        field = np.round((field + 1) * 127.5) / 127.5 - 1
    return torch.from_numpy(field)


def test_nearest_neighbours_equal_a_float64_brute_force():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (3, 12, 14))
    sample = np.clip(image[:, 1:11, 2:13] * 0.5 + rng.normal(0, 0.3, (3, 10, 11)), -1, 1)
    p = 3
    report = find_copies(torch.from_numpy(sample), image, patch_size=p, scales=(1.0,), device="cpu")
    result = report.scales[0]
    h, w, hi, wi = 10 - p + 1, 11 - p + 1, 12 - p + 1, 14 - p + 1
    assert result.nn_distance.shape == (h, w) and result.offsets.shape == (h, w, 2)
    image_patches = np.array([[image[:, y:y + p, x:x + p].ravel() for x in range(wi)] for y in range(hi)])
    for y in range(h):
        for x in range(w):
            squared = ((image_patches - sample[:, y:y + p, x:x + p].ravel()) ** 2).sum(axis=-1)
            best = np.unravel_index(np.argmin(squared), squared.shape)
            assert result.nn_distance[y, x] == pytest.approx(np.sqrt(squared[best] / (3 * p * p)), rel=1e-12)
            assert tuple(result.offsets[y, x]) == (best[0] - y, best[1] - x)


def test_the_pruned_search_finds_the_brute_force_nearest_neighbour_on_smooth_images():
    # Smooth, related images: the search along the principal direction skips most of the image's patches here.
    image = _texture(40, 44, seed=12)
    sample = (image.flip(-1)[:, 3:37, 2:40] + 0.02 * _texture(34, 38, seed=13)).clamp(-1, 1)
    p = 5
    result = find_copies(sample, image, patch_size=p, scales=(1.0,), device="cpu").scales[0]
    queries = torch.nn.functional.unfold(sample[None], p)[0].T
    references = torch.nn.functional.unfold(image[None], p)[0].T
    squared = torch.cdist(queries, references).square().numpy()  # float64 brute force, every pair
    brute = np.sqrt(squared.min(axis=1) / (3 * p * p)).reshape(result.nn_distance.shape)
    np.testing.assert_allclose(result.nn_distance, brute, rtol=1e-5, atol=1e-12)
    found = (result.offsets[..., 0] + np.arange(34 - p + 1)[:, None]) * (44 - p + 1) + (
        result.offsets[..., 1] + np.arange(38 - p + 1)[None, :])
    np.testing.assert_allclose(squared[np.arange(squared.shape[0]), found.ravel()], squared.min(axis=1), rtol=1e-5)


def test_an_exact_copy_is_a_copy_at_offset_zero():
    image = _texture(48, 56, seed=1)
    report = find_copies(image.clone(), image)
    assert report.is_copy and report.near_copy_share == 1.0
    assert report.largest_region_fraction == 1.0
    assert report.largest_region.offset == (0, 0) and report.largest_region.bbox == (0, 0, 48, 56)
    assert [s.scale for s in report.scales] == [1.0, 0.5, 0.25]
    assert report.scales[0].nn_distance.max() == 0.0  # recomputed in float64 from the pixels: exactly 0


def test_a_translated_crop_is_a_copy_with_its_offset():
    image = _texture(72, 80, seed=2)
    report = find_copies(image[:, 5:53, 9:69].clone(), image)
    assert report.is_copy and report.largest_region_fraction == 1.0
    assert report.largest_region.offset == (5, 9) and report.largest_region.scale == 1.0
    assert (report.scales[0].offsets == (5, 9)).all()


def test_an_8bit_rounded_copy_of_a_float_image_is_a_copy():
    image = _texture(48, 48, seed=3, quantize=False)
    rounded = torch.round((image + 1) * 127.5) / 127.5 - 1
    report = find_copies(rounded, image)
    assert report.is_copy and report.near_copy_share == 1.0 and report.largest_region_fraction == 1.0
    assert report.largest_region.offset == (0, 0)
    # rounding moves each value by at most half a level
    assert 0.0 < report.scales[0].nn_distance.max() <= LEVEL / 2 < DEFAULT_COPY_THRESHOLD


def test_a_shifted_copy_covers_the_overlap_only():
    image = _texture(64, 64, seed=4)
    sample = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1  # noise where nothing maps
    sample[:, 6:, :60] = image[:, :58, 4:]  # sample (y, x) = image (y - 6, x + 4)
    report = find_copies(sample, image)
    region = report.largest_region
    assert region.offset == (-6, 4) and region.bbox == (6, 0, 64, 60)
    assert report.largest_region_fraction == pytest.approx(58 * 60 / 64**2)
    assert report.is_copy


def _shuffled_blocks(image: torch.Tensor, block: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    grid = image.shape[1] // block
    rng = np.random.default_rng(seed)
    while True:  # a shuffle where no two neighbouring blocks are still neighbours the same way round
        perm = rng.permutation(grid * grid).reshape(grid, grid)
        right = (perm[:, 1:] == perm[:, :-1] + 1) & (perm[:, :-1] % grid != grid - 1)
        below = perm[1:, :] == perm[:-1, :] + grid
        if not right.any() and not below.any():
            break
    rows = [torch.cat([image[:, (k // grid) * block:(k // grid + 1) * block, (k % grid) * block:(k % grid + 1) * block]
                       for k in row], dim=2) for row in perm]
    return torch.cat(rows, dim=1), perm


def test_shuffled_blocks_are_many_near_copies_but_no_copy():
    image = _texture(64, 64, seed=5)
    sample, perm = _shuffled_blocks(image, 16, seed=0)
    report = find_copies(sample, image)
    # every 7 px patch inside a block is an exact copy: 16 blocks x 10 x 10 of the 58 x 58 positions
    assert report.near_copy_share == pytest.approx(16 * 100 / 58**2)
    assert report.largest_region_fraction == pytest.approx(1 / 16)  # one block
    assert not report.is_copy
    top, left, bottom, right = report.largest_region.bbox
    assert (bottom - top, right - left) == (16, 16)
    k = int(perm[top // 16, left // 16])  # the block there came from block k of the image
    assert report.largest_region.offset == ((k // 4) * 16 - top, (k % 4) * 16 - left)


def test_random_noise_has_no_near_copies():
    image = _texture(64, 64, seed=6)
    noise = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    report = find_copies(noise, image)
    assert all(s.near_copy_share == 0.0 and s.largest_region is None for s in report.scales)
    assert report.largest_region is None and report.largest_region_fraction == 0.0 and not report.is_copy
    assert report.scales[0].nn_distance.min() > 10 * DEFAULT_COPY_THRESHOLD


def test_a_copy_with_a_flat_area_stays_one_region_despite_tied_neighbours():
    image = _texture(40, 64, seed=7)
    image[:, :, :32] = image[:, :, :32].mean()  # flat left half: all its patches tie exactly
    report = find_copies(image.clone(), image, scales=(1.0,))
    offsets = report.scales[0].offsets
    assert (offsets[:, :20] != 0).any()  # the nearest neighbour's offset is arbitrary among the tied flat patches
    assert report.largest_region_fraction == 1.0 and report.largest_region.offset == (0, 0)


def test_grey_images_scales_skipped_and_budget():
    image = _texture(20, 24, seed=8, channels=1)
    report = find_copies(image.clone(), image)
    assert [s.scale for s in report.scales] == [1.0, 0.5]  # 5 x 6 px at 0.25: below a 7 px patch
    assert report.scales[1].size == (10, 12) and report.is_copy
    with pytest.raises(InvalidArgument, match="budget"):
        find_copies(image, image, max_patch_pairs=1000)
    with pytest.raises(InvalidArgument, match="channels"):
        find_copies(image, image.repeat(3, 1, 1))
    with pytest.raises(InvalidArgument, match="smaller than one"):
        find_copies(image[:, :5, :5], image)
    with pytest.raises(InvalidArgument, match="scales"):
        find_copies(image, image, scales=(2.0,))


def _red_pixels(png: bytes) -> int:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int(((pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)).sum())


def test_copy_maps_png_has_one_row_per_sample_and_outlines_regions():
    image = _texture(48, 48, seed=9)
    grey = _texture(48, 48, seed=10, channels=1)
    reports = [find_copies(image[:, 4:, 2:].clone(), image), find_copies(grey, _texture(48, 48, seed=11, channels=1))]
    samples = [to_uint8(image[None, :, 4:, 2:])[0], to_uint8(grey[None])[0]]
    maps = [r.scales[0].nn_distance for r in reports]
    bboxes = [None if r.largest_region is None else r.largest_region.bbox for r in reports]
    assert bboxes[0] == (0, 0, 44, 46) and bboxes[1] is None
    png = copy_maps_png(samples, maps, bboxes, ["copied crop $1", "unrelated grey"], dpi=50)
    decoded = Image.open(io.BytesIO(png))
    assert decoded.format == "PNG"
    assert decoded.size == (round(COPY_ROW_SIZE[0] * 50), round(2 * COPY_ROW_SIZE[1] * 50))
    one = copy_maps_png(samples[:1], maps[:1], bboxes[:1], ["copied crop"], dpi=50)
    assert Image.open(io.BytesIO(one)).size == (round(COPY_ROW_SIZE[0] * 50), round(COPY_ROW_SIZE[1] * 50))
    unmarked = copy_maps_png(samples[:1], maps[:1], [None], ["copied crop"], dpi=50)
    assert _red_pixels(one) > 40 and _red_pixels(unmarked) == 0  # the outline is drawn only where a region is
    with pytest.raises(InvalidArgument, match="one distance map"):
        copy_maps_png(samples, maps[:1], bboxes, ["a", "b"])
