"""genaudit.units.dissection (Bau et al., ICLR 2019) against independent references: unit-concept counts and
IoU against a numpy brute force over stored activations (numpy bilinear upsampling, boolean AND / OR over
every sample at once) for several batch sizes, masks from a dataset or a labeller, and the causal effect
against concept shares of hand-written forward passes; on the square-painting generator the painting unit
is the square's unit, ablating it removes the concept and a random unit does next to nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genaudit.errors import InvalidArgument
from genaudit.units import dissection
from genaudit.units.batches import seeded_latents
from genaudit.units.dissection import causal_effect, dissect
from genaudit.units.interventions import UnitIntervention
from genaudit.units.statistics import compute_unit_statistics
from tests.unit.test_units_interventions import ONSET, PAINTING_UNIT, SQUARE, painting_generator, upsample_bilinear
from tests.unit.test_units_statistics import reference_forward

LAYERS = ["block2.act", "block3.act"]


def bright_and_dark(images: torch.Tensor) -> torch.Tensor:
    """Threshold labeller: concept 0 = pixels > 0.9 ("bright square"), concept 1 = pixels < -0.5."""
    return torch.cat([images > 0.9, images < -0.5], dim=1)


def brute_force(acts: np.ndarray, masks: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U, K) intersections and unions over all samples and pixels."""
    units = upsample_bilinear(acts, masks.shape[-2:]) > thresholds[None, :, None, None]  # (N, U, H, W)
    inter = (units[:, :, None] & masks[:, None]).sum(axis=(0, 3, 4))
    union = (units[:, :, None] | masks[:, None]).sum(axis=(0, 3, 4))
    return inter, union


@pytest.fixture(scope="module")
def setup() -> tuple:
    g = painting_generator()
    stats = compute_unit_statistics(g, 400, 0, layers=LAYERS, batch_size=100, bins=256,
                                    quantile_levels=(0.99, 0.999))
    latents = seeded_latents(g, 60, 11)
    images, acts = reference_forward(g, latents, LAYERS, batch_size=60)
    return g, stats, latents, images, acts


def test_streaming_counts_equal_a_brute_force_for_dataset_masks_at_any_batch_size(setup, monkeypatch) -> None:
    g, stats, latents, _, acts = setup
    rng = np.random.default_rng(0)
    masks = np.zeros((60, 3, 16, 16), dtype=bool)  # half the image size: units are upsampled to 16 px
    for i in range(60):
        for c in range(3):
            y, x = rng.integers(0, 12, size=2)
            masks[i, c, y:y + rng.integers(2, 8), x:x + rng.integers(2, 8)] = True
    expected = {name: brute_force(acts[name], masks, stats.channel_quantile(name, 0.99).numpy()) for name in LAYERS}
    runs = [dict(batch_size=b) for b in (1, 7, 60)]
    for kwargs in runs:
        result = dissect(g, LAYERS, latents, masks, stats, concept_names=["a", "b", "c"], **kwargs)
        for name in LAYERS:
            inter, union = expected[name]
            np.testing.assert_array_equal(result[name].intersections.numpy(), inter)
            np.testing.assert_array_equal(result[name].unions.numpy(), union)
            np.testing.assert_allclose(result[name].iou.numpy(), np.where(union > 0, inter / np.maximum(union, 1), 0),
                                       rtol=1e-12)
            assert result[name].concepts == ("a", "b", "c") and result[name].n_samples == 60
    assert (expected["block3.act"][0] > 0).sum() > 10  # the counts are not all trivial
    # Products split over chunks of samples (forced small here) give the same exact counts.
    monkeypatch.setattr(dissection, "_EXACT_FLOAT32", 600)  # 2 samples of 256 pixels per product
    chunked = dissect(g, LAYERS, latents, torch.from_numpy(masks), stats, batch_size=9, unit_block=3)
    for name in LAYERS:
        np.testing.assert_array_equal(chunked[name].intersections.numpy(), expected[name][0])
        np.testing.assert_array_equal(chunked[name].unions.numpy(), expected[name][1])


def test_a_labeller_and_explicit_thresholds_give_the_brute_force_iou_and_find_the_painting_unit(setup) -> None:
    g, stats, latents, images, acts = setup
    masks = bright_and_dark(images).numpy()
    thresholds = {name: torch.full((acts[name].shape[1],), 0.05) for name in LAYERS}
    for batch_size in (4, 25):
        result = dissect(g, LAYERS, latents, bright_and_dark, thresholds, concept_names=["bright", "dark"],
                         batch_size=batch_size)
        for name in LAYERS:
            inter, union = brute_force(acts[name], masks, np.full(acts[name].shape[1], 0.05))
            np.testing.assert_array_equal(result[name].intersections.numpy(), inter)
            np.testing.assert_array_equal(result[name].unions.numpy(), union)
    # With the units' own 0.99 quantiles, block2's painting unit is the bright square's unit, by far.
    by_quantile = dissect(g, ["block2.act"], latents, bright_and_dark, stats, concept_names=["bright", "dark"])
    top = by_quantile["block2.act"].top_units("bright", 2)
    assert top[0][0] == PAINTING_UNIT and top[0][1] > 0.3 and top[1][1] < 0.1
    assert by_quantile["block2.act"].top_units(0, 1) == top[:1]


def test_ablating_the_painting_unit_removes_the_bright_square_and_a_random_unit_does_next_to_nothing(setup) -> None:
    g = setup[0]
    latents = seeded_latents(g, 150, 12)
    plain, _ = reference_forward(g, latents, ["block2.act"], batch_size=150)

    def zeroed(unit: int) -> torch.Tensor:
        def edit(name: str, x: torch.Tensor, _: slice) -> torch.Tensor:
            x = x.clone()
            x[:, unit] = 0.0
            return x
        return reference_forward(g, latents, ["block2.act"], batch_size=150, edit=edit)[0]

    shares = bright_and_dark(plain).flatten(2).double().mean(dim=2)
    random_unit = int(np.random.default_rng(5).choice([u for u in range(16) if u != PAINTING_UNIT]))
    effects = {}
    for unit in (PAINTING_UNIT, random_unit):
        effect = causal_effect(g, [UnitIntervention.ablation("block2.act", [unit])], latents, bright_and_dark,
                               concept_names=["bright", "dark"], batch_size=40)
        reference = bright_and_dark(zeroed(unit)).flatten(2).double().mean(dim=2) - shares
        torch.testing.assert_close(effect.before, shares, rtol=0, atol=1e-12)
        torch.testing.assert_close(effect.per_sample, reference, rtol=0, atol=1e-12)
        torch.testing.assert_close(effect.effect, reference.mean(dim=0), rtol=0, atol=1e-12)
        effects[unit] = effect.effect
    drawn = float((latents[:, 0] > ONSET).double().mean())
    square_share = (SQUARE[0].stop - SQUARE[0].start) ** 2 / 32**2
    assert float(effects[PAINTING_UNIT][0]) < -0.7 * drawn * square_share  # most of the square's pixels go
    assert abs(float(effects[random_unit][0])) < 0.05 * abs(float(effects[PAINTING_UNIT][0]))


def test_inserting_the_painting_unit_in_a_region_draws_the_square_there(setup) -> None:
    g, stats, _, _, _ = setup
    latents = seeded_latents(g, 200, 13)
    latents = latents[latents[:, 0] <= ONSET][:40]  # images without the square
    region = torch.zeros(32, 32)
    region[SQUARE[0], SQUARE[1]] = 1.0
    value = stats.channel_quantile("block2.act", 0.999)[PAINTING_UNIT]
    insertion = UnitIntervention.insertion("block2.act", [PAINTING_UNIT], value, region=region)
    effect = causal_effect(g, [insertion], latents, bright_and_dark, batch_size=16)
    assert effect.concepts == ("concept0", "concept1")
    square_share = 64 / 32**2
    assert float(effect.effect[0]) > 0.7 * square_share
    assert float(effect.before[:, 0].mean()) < 0.01


def test_unit_thresholds_are_numpy_quantiles_within_the_reported_error(setup) -> None:
    g, stats, _, _, _ = setup
    _, acts = reference_forward(g, seeded_latents(g, 400, 0), LAYERS, batch_size=400)
    for name in LAYERS:
        values = np.moveaxis(acts[name], 1, 0).reshape(acts[name].shape[1], -1)
        for level in (0.99, 0.999):
            gap = np.abs(stats.channel_quantile(name, level).numpy() - np.quantile(values, level, axis=1))
            assert (gap <= stats.layers[name].quantile_error.numpy()).all()
    with pytest.raises(InvalidArgument, match="no statistics"):
        stats.channel_quantile("block1.act", 0.99)


def test_refusals(setup) -> None:
    g, stats, latents, _, _ = setup
    masks = np.zeros((60, 1, 8, 8), dtype=bool)
    with pytest.raises(InvalidArgument, match="60 mask sets for 59 latents"):
        dissect(g, LAYERS, latents[:59], masks, stats)
    with pytest.raises(InvalidArgument, match="bool"):
        dissect(g, LAYERS, latents, masks.astype(np.uint8), stats)
    with pytest.raises(InvalidArgument, match="not computed"):
        dissect(g, LAYERS, latents, masks, stats, level=0.5)
    with pytest.raises(InvalidArgument, match=r"\(B=8, K >= 1, h, w\) masks"):
        dissect(g, LAYERS, latents, lambda images: images[:, 0] > 0.9, stats, batch_size=8)  # no concept axis
    with pytest.raises(InvalidArgument, match="distinct names"):
        dissect(g, LAYERS, latents, masks, stats, concept_names=["a", "b"])
    with pytest.raises(InvalidArgument, match="at least one intervention"):
        causal_effect(g, [], latents, bright_and_dark)
