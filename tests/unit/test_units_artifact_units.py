"""genaudit.units.artifact_units (Tousi et al., CVPR 2021) against independent references: Grad-CAM against a
per-image hand computation with torch.autograd.grad and a numpy bilinear upsampling, the mask quantiles
against numpy.quantile, defective scores against a brute-force numpy IoU over stored activations, the
thresholds of a sequentially corrected layer against numpy.quantile of a hand-edited forward pass, and the
whole pipeline on a generator whose channel 3 of block2 paints a known bright square."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.generators import load_shipped
from genaudit.units.artifact_units import (
    ArtifactClassifier,
    cam_masks,
    correct_artifact_units,
    defective_unit_scores,
    grad_cam,
    sequential_correction,
    train_artifact_classifier,
)
from genaudit.units.batches import seeded_latents
from genaudit.units.flaws import rare_neuron_scores
from genaudit.units.interventions import UnitIntervention, generate, intervened
from genaudit.units.monitored import default_monitored_layers
from genaudit.units.rare import rare_neurons
from genaudit.units.statistics import compute_unit_statistics
from tests.unit.test_units_interventions import (
    ONSET,
    PAINTING_UNIT,
    SQUARE,
    painting_generator,
    upsample_bilinear,
)
from tests.unit.test_units_statistics import reference_forward


def square_masks(n: int) -> torch.Tensor:
    masks = torch.zeros(n, 32, 32, dtype=torch.bool)
    masks[:, SQUARE[0], SQUARE[1]] = True
    return masks


def zero_unit(unit: int):
    def edit(name: str, x: torch.Tensor, _: slice) -> torch.Tensor:
        x = x.clone()
        x[:, unit] = 0.0
        return x
    return edit


def test_grad_cam_equals_a_hand_computation_with_autograd_grad() -> None:
    torch.manual_seed(4)
    model = ArtifactClassifier(2, width=3).eval()
    images = torch.randn(7, 2, 16, 12)  # not square: the upsampling is checked per axis
    cams = grad_cam(model, model.cam_layer, images, batch_size=3)
    assert cams.shape == (7, 16, 12) and cams.dtype == torch.float32
    non_constant = 0
    for i in range(7):
        x = images[i:i + 1].clone().requires_grad_(True)
        activations = model.features(x)
        logit = model.head(activations.mean(dim=(2, 3)))[0, 0]
        (gradient,) = torch.autograd.grad(logit, activations)
        a, g = activations.detach()[0].double().numpy(), gradient[0].double().numpy()
        cam = np.maximum((g.mean(axis=(1, 2))[:, None, None] * a).sum(axis=0), 0.0)
        up = upsample_bilinear(cam, (16, 12))
        span = up.max() - up.min()
        expected = (up - up.min()) / span if span > 0 else np.zeros_like(up)
        np.testing.assert_allclose(cams[i].numpy(), expected, rtol=0, atol=1e-5)
        non_constant += span > 0
    assert non_constant >= 4
    assert float(cams.min()) >= 0.0 and float(cams.max()) <= 1.0
    with pytest.raises(FailedPrecondition):
        grad_cam(model.train(), model.cam_layer, images)


def test_cam_masks_keep_the_pixels_above_each_images_numpy_quantile() -> None:
    cams = torch.rand(5, 9, 7, generator=torch.Generator().manual_seed(0))
    masks = cam_masks(cams, 0.8)
    for i in range(5):
        np.testing.assert_array_equal(masks[i].numpy(), cams[i].numpy() > np.quantile(cams[i].double().numpy(), 0.8))
    assert not cam_masks(torch.zeros(2, 4, 4), 0.9).any()  # a constant map marks nothing
    with pytest.raises(InvalidArgument):
        cam_masks(cams, 1.0)


def brute_force_scores(acts: np.ndarray, masks: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    up = upsample_bilinear(acts, masks.shape[-2:])  # (N, C, H, W)
    unit = up > thresholds[None, :, None, None]
    inter = (unit & masks[:, None]).sum(axis=(2, 3))
    union = (unit | masks[:, None]).sum(axis=(2, 3))
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return iou.mean(axis=0)


def test_defective_scores_equal_a_brute_force_iou_over_stored_maps() -> None:
    g = painting_generator()
    latents = seeded_latents(g, 20, 8)
    rng = np.random.default_rng(1)
    masks = np.zeros((20, 32, 32), dtype=bool)
    for i in range(20):
        y, x, h, w = rng.integers(0, 20), rng.integers(0, 20), rng.integers(3, 12), rng.integers(3, 12)
        masks[i, y:y + h, x:x + w] = True
    masks[3] = False  # an empty mask: IoU 0 with empty unit masks, a share of the mean all the same
    _, acts = reference_forward(g, latents, ["block3.act"], batch_size=20)
    thresholds = np.quantile(acts["block3.act"].transpose(1, 0, 2, 3).reshape(8, -1), 0.9, axis=1)
    expected = brute_force_scores(acts["block3.act"], masks, thresholds)
    assert (expected > 0).sum() >= 4
    for batch_size in (1, 7, 20):
        scores = defective_unit_scores(g, "block3.act", latents, torch.from_numpy(masks),
                                       torch.from_numpy(thresholds), batch_size=batch_size)
        np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-12, atol=1e-12)
    # Under an intervention on an earlier layer, the scores are those of the hand-edited forward pass.
    _, edited = reference_forward(g, latents, ["block2.act", "block3.act"], batch_size=20,
                                  edit=lambda name, x, sl: zero_unit(5)(name, x, sl) if name == "block2.act" else x)
    scores = defective_unit_scores(g, "block3.act", latents, torch.from_numpy(masks), torch.from_numpy(thresholds),
                                   interventions=[UnitIntervention.ablation("block2.act", [5])], batch_size=6)
    np.testing.assert_allclose(scores.numpy(), brute_force_scores(edited["block3.act"], masks, thresholds),
                               rtol=1e-12, atol=1e-12)
    assert not np.allclose(scores.numpy(), expected)


def test_the_classifier_is_seeded_and_learns_a_separable_set() -> None:
    rng = torch.Generator().manual_seed(2)
    images = torch.rand(24, 1, 8, 8, generator=rng) * 0.5 - 0.5
    flawed = np.arange(24) % 2 == 0
    images[flawed, :, 2:5, 2:5] = 1.0
    first = train_artifact_classifier(images, flawed, seed=3, epochs=12, batch_size=8)
    again = train_artifact_classifier(images, flawed, seed=3, epochs=12, batch_size=8)
    other = train_artifact_classifier(images, flawed, seed=4, epochs=2, batch_size=8)
    for a, b in zip(first.model.parameters(), again.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(not torch.equal(a, b) for a, b in zip(first.model.parameters(), other.model.parameters(), strict=True))
    assert first.train_accuracy == 1.0 and first.losses[-1] < 0.5 * first.losses[0]
    assert not first.model.training
    with pytest.raises(InvalidArgument):
        train_artifact_classifier(images, np.ones(24, dtype=bool))


@pytest.fixture(scope="module")
def pipeline() -> tuple:
    torch.manual_seed(0)  # nothing below may depend on the global generator: checked by the seeded rerun
    g = painting_generator()
    latents = seeded_latents(g, 200, 5)
    rare = rare_neurons(compute_unit_statistics(g, 500, 0, batch_size=100, bins=256), 0.3)
    scores = rare_neuron_scores(g, rare, latents, batch_size=100)
    result = correct_artifact_units(g, latents, scores, ["block2.act"], top_k=1, statistics_samples=500,
                                    statistics_bins=256, epochs=30, batch_size=50, seed=0)
    return g, latents, result


def test_the_pipeline_ranks_the_painting_unit_first_and_ablating_it_removes_the_square(pipeline) -> None:
    g, latents, result = pipeline
    drawn = (latents[:, 0] > ONSET).numpy()
    labels = result.labels
    assert labels.flawed.sum() == 40 and labels.normal.sum() == 40
    assert drawn[labels.flawed].mean() > 0.6 and not drawn[labels.normal].any()  # noisy, but informative labels
    defects = result.correction.defects["block2.act"]
    ranking = defects.ranking()
    assert int(ranking[0]) == PAINTING_UNIT
    assert float(defects.scores[PAINTING_UNIT]) > 0.2 and float(defects.scores[ranking[1]]) < 0.05
    assert result.correction.units == {"block2.act": (PAINTING_UNIT,)}
    # The Grad-CAM masks of the flawed images that show the square cover most of it.
    flawed_drawn = drawn[labels.flawed_indices]
    inside = result.masks[:, SQUARE[0], SQUARE[1]].float().mean(dim=(1, 2))
    assert float(inside[torch.from_numpy(flawed_drawn)].mean()) > 0.5
    # The corrected images are those of a hand-written forward pass with the unit zeroed.
    zeroed, _ = reference_forward(g, latents, ["block2.act"], batch_size=200, edit=zero_unit(PAINTING_UNIT))
    torch.testing.assert_close(result.corrected, zeroed, rtol=0, atol=0)
    before = result.original[:, 0][:, SQUARE[0], SQUARE[1]].mean(dim=(1, 2))
    after = result.corrected[:, 0][:, SQUARE[0], SQUARE[1]].mean(dim=(1, 2))
    assert float(before[drawn].mean()) > 0.8 and float(after[drawn].mean()) < 0.3
    change = (result.corrected - result.original).abs().flatten(1).amax(dim=1)
    assert float(change[~drawn].max()) < 1e-6  # the other samples stay as they were
    outside = (result.corrected - result.original).abs()
    outside[:, :, SQUARE[0], SQUARE[1]] = 0
    assert float(outside.max()) < 1e-6


def test_sequential_correction_scores_later_layers_on_the_corrected_generator() -> None:
    g = painting_generator()
    latents = seeded_latents(g, 300, 9)
    flawed = latents[latents[:, 0] > ONSET]
    masks = square_masks(flawed.shape[0])
    kwargs = {"top_k": 1, "statistics_samples": 400, "statistics_bins": 256, "batch_size": 32}
    alone = sequential_correction(g, ["block3.act"], flawed, masks, **kwargs)
    assert alone.units == {"block3.act": (0,)} and float(alone.defects["block3.act"].scores[0]) > 0.3
    both = sequential_correction(g, ["block3.act", "block2.act"], flawed, masks, **kwargs)
    assert both.layers == ("block2.act", "block3.act")  # forward order
    assert both.units["block2.act"] == (PAINTING_UNIT,)
    later = both.defects["block3.act"]
    # Nothing left to paint: the channel is 0 everywhere (its threshold within the histogram error of 0).
    assert float(later.scores[0]) == 0.0 and 0.0 <= float(later.thresholds[0]) < 1e-6
    # block3's thresholds are quantiles of the corrected generator's activations.
    statistics_latents = seeded_latents(g, 400, 0)
    _, edited = reference_forward(g, statistics_latents, ["block2.act", "block3.act"], batch_size=400,
                                  edit=lambda name, x, sl: zero_unit(PAINTING_UNIT)(name, x, sl)
                                  if name == "block2.act" else x)
    values = edited["block3.act"].transpose(1, 0, 2, 3).reshape(8, -1)
    # ChannelHistogram: width <= 2 span / (bins - 5); a channel constant at 0 starts at 2^-20 / bins.
    bound = np.maximum(2 * (values.max(axis=1) - values.min(axis=1)) / (256 - 5), 2.0**-20)
    assert (np.abs(later.thresholds.numpy() - np.quantile(values, 0.99, axis=1)) <= bound).all()
    # alpha = 1 leaves the generator as it was; alpha = 0.5 halves the painting.
    kept = sequential_correction(g, ["block2.act"], flawed, masks, alpha=1.0, **kwargs)
    torch.testing.assert_close(generate(g, latents, kept.interventions), generate(g, latents), rtol=0, atol=0)
    halved = sequential_correction(g, ["block2.act"], flawed, masks, alpha=0.5, **kwargs)
    half, _ = reference_forward(g, latents, ["block2.act"], batch_size=300,
                                edit=lambda name, x, sl: x * torch.where(torch.arange(16) == PAINTING_UNIT, 0.5,
                                                                         1.0).view(1, -1, 1, 1))
    torch.testing.assert_close(generate(g, latents, halved.interventions), half, rtol=1e-6, atol=1e-6)
    with pytest.raises(InvalidArgument):
        sequential_correction(g, ["block2.act"], flawed, masks, top_k=17)
    with pytest.raises(InvalidArgument):
        sequential_correction(g, ["block2.act", "block3.act"], flawed, masks, top_k={"block2.act": 1})


def test_end_to_end_on_the_shipped_dcgan_fashion_changes_flawed_samples_more_than_normal_ones() -> None:
    g = load_shipped("dcgan-fashion").eval()
    layers = default_monitored_layers(g)
    rare = rare_neurons(compute_unit_statistics(g, 600, 0, batch_size=100, bins=256))
    latents = seeded_latents(g, 300, 1)
    scores = rare_neuron_scores(g, rare, latents, batch_size=100)
    result = correct_artifact_units(g, latents, scores, layers, top_k=4, statistics_samples=600,
                                    statistics_bins=256, epochs=20, batch_size=100)
    assert result.correction.layers == tuple(layers)
    for name in layers:
        defects = result.correction.defects[name]
        assert len(defects.selected) == 4
        # The selected units stand out: each scores above the layer's median unit.
        assert float(defects.scores[list(defects.selected)].min()) > float(defects.scores.median())
    assert result.corrected.shape == result.original.shape == (300, 1, 32, 32)
    change = (result.corrected - result.original).abs().mean(dim=(1, 2, 3)).numpy()
    assert change[result.labels.flawed].mean() > 1.5 * change[result.labels.normal].mean()
    with intervened(g, result.correction.interventions):  # the flawed images lose rare activations
        after = rare_neuron_scores(g, rare, latents, batch_size=100)
    assert after[result.labels.flawed].mean() < scores[result.labels.flawed].mean()
