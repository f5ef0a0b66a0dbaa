"""genaudit.units.rare and units.figures against hand-written references: rare sets and artifact scores by
brute force over activations held in memory, sequential ablation by a hand-written layer-by-layer loop
(and not the same as ablating every layer with masks from the unablated pass), and an end-to-end run on
the shipped dcgan-fashion generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.generators import load_shipped
from genaudit.generators.sampling import to_uint8
from genaudit.units.batches import seeded_latents
from genaudit.units.figures import before_after_grid, mask_overlay_grid, save_ablation
from genaudit.units.rare import RareNeurons, artifact_scores, rare_neurons, sequential_ablation
from genaudit.units.statistics import compute_unit_statistics
from tests.unit.test_units_statistics import DCGAN, PGGAN, reference_forward, skewed_generator

LAYERS = ["block1.act", "block2.act", "block3.act"]


@pytest.fixture(scope="module")
def setup() -> tuple:
    g = skewed_generator("dcgan", DCGAN)
    stats = compute_unit_statistics(g, 256, 1, batch_size=64, bins=32)
    _, acts = reference_forward(g, seeded_latents(g, 256, 1), LAYERS, batch_size=256)
    return g, stats, acts


def brute_rare(acts: dict[str, np.ndarray], rate: float) -> dict[str, np.ndarray]:
    out = {}
    for name, a in acts.items():
        freq = (a > 0).mean(axis=0)
        out[name] = (freq > 0) & (freq <= rate)
    return out


def sequential_edit(masks: dict[str, torch.Tensor]):
    def edit(name: str, x: torch.Tensor, _: slice) -> torch.Tensor:
        return torch.where((x > 0) & masks[name], torch.zeros_like(x), x)
    return edit


def test_rare_sets_equal_a_brute_force_selection(setup) -> None:
    _, stats, acts = setup
    for rate in (0.05, 0.3, 0.75, 1.0):
        rare = rare_neurons(stats, rate)
        expected = brute_rare(acts, rate)
        assert rare.layers == tuple(LAYERS) and rare.rate == rate and rare.arch == "dcgan"
        for name in LAYERS:
            np.testing.assert_array_equal(rare.masks[name].numpy(), expected[name])
        assert rare.counts() == {name: int(expected[name].sum()) for name in LAYERS}
    assert sum(rare_neurons(stats, 0.3).counts().values()) > 0
    only = rare_neurons(stats, 0.3, layers=["block3.act", "block2.act"])
    assert only.layers == ("block2.act", "block3.act")  # forward order
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(InvalidArgument):
            rare_neurons(stats, bad)
    with pytest.raises(InvalidArgument, match=r"block1\.act"):
        rare_neurons(stats, 0.3, layers=["to_rgb.act"])


def test_artifact_scores_equal_a_brute_force_count_and_rank_highest_first(setup) -> None:
    g, stats, _ = setup
    rare = rare_neurons(stats)
    latents = seeded_latents(g, 70, 2)  # new samples, not those of the statistics
    scores = artifact_scores(g, rare, latents, batch_size=16)
    _, acts = reference_forward(g, latents, LAYERS, batch_size=70)
    per_layer = np.stack([((acts[name] > 0) & rare.masks[name].numpy()).reshape(70, -1).sum(axis=1)
                          for name in LAYERS], axis=1)
    np.testing.assert_array_equal(scores.per_layer.numpy(), per_layer)
    np.testing.assert_array_equal(scores.total.numpy(), per_layer.sum(axis=1))
    np.testing.assert_array_equal(scores.ranking().numpy(), np.argsort(-per_layer.sum(axis=1), kind="stable"))
    assert len(np.unique(per_layer.sum(axis=1))) > 10  # the ranking is not a trivial one


def test_sequential_ablation_equals_a_hand_written_layer_by_layer_loop(setup) -> None:
    g, stats, _ = setup
    rare = rare_neurons(stats)
    latents = seeded_latents(g, 24, 3)
    result = sequential_ablation(g, rare, latents, batch_size=10)
    plain, _ = reference_forward(g, latents, LAYERS, batch_size=10)
    corrected, seen = reference_forward(g, latents, LAYERS, batch_size=10, edit=sequential_edit(rare.masks))
    torch.testing.assert_close(result.original, plain, rtol=0, atol=0)
    torch.testing.assert_close(result.corrected, corrected, rtol=0, atol=0)
    assert result.layers == tuple(LAYERS)
    for i, name in enumerate(LAYERS):
        hit = (seen[name] > 0) & rare.masks[name].numpy()  # tested on the activations after earlier corrections
        np.testing.assert_array_equal(result.ablated[:, i].numpy(), hit.reshape(24, -1).sum(axis=1))
        share = hit.mean(axis=1)  # (N, h, w): share of the channels ablated at each position
        factor = g.resolution // share.shape[-1]
        upsampled = np.kron(share, np.ones((factor, factor)))  # nearest upsampling by an integer factor
        np.testing.assert_allclose(result.masks[name].numpy(), upsampled, rtol=1e-6, atol=1e-7)
        assert result.masks[name].shape == (24, 32, 32)
    assert result.ablated[:, 1:].sum() > 0


def test_the_order_matters_ablating_with_unablated_masks_gives_other_images(setup) -> None:
    g, stats, _ = setup
    rare = rare_neurons(stats)
    latents = seeded_latents(g, 24, 3)
    result = sequential_ablation(g, rare, latents, batch_size=24)
    _, unablated = reference_forward(g, latents, LAYERS, batch_size=24)
    hits = {name: torch.from_numpy((unablated[name] > 0) & rare.masks[name].numpy()) for name in LAYERS}
    parallel, _ = reference_forward(g, latents, LAYERS, batch_size=24,
                                    edit=lambda name, x, sl: torch.where(hits[name][sl], torch.zeros_like(x), x))
    per_image = (parallel - result.corrected).flatten(1).abs().amax(dim=1)
    assert (per_image > 1e-3).float().mean() > 0.5
    # The hit sets themselves differ from the second monitored layer on (the first is the same by definition).
    assert torch.equal(result.ablated[:, 0], hits["block1.act"].flatten(1).sum(dim=1))
    assert not torch.equal(result.ablated[:, 2], hits["block3.act"].flatten(1).sum(dim=1))


def test_images_with_a_zero_score_are_left_exactly_as_they_were(setup) -> None:
    g, stats, _ = setup
    full = rare_neurons(stats)
    # Keep a few rare neurons per layer, so that some images have score 0 and some do not.
    sparse = {}
    for name, mask in full.masks.items():
        keep = torch.zeros(mask.numel(), dtype=torch.bool)
        keep[torch.nonzero(mask.flatten())[:2, 0]] = True
        sparse[name] = keep.view(mask.shape)
    rare = RareNeurons(arch=full.arch, rate=full.rate, masks=sparse)
    latents = seeded_latents(g, 64, 4)
    scores = artifact_scores(g, rare, latents).total
    zero, positive = scores == 0, scores > 0
    assert zero.sum() >= 3 and positive.sum() >= 3
    result = sequential_ablation(g, rare, latents, batch_size=64)
    with torch.no_grad():
        plain = g(latents)
    assert torch.equal(result.original, plain)
    assert torch.equal(result.corrected[zero], plain[zero])
    assert torch.equal(result.ablated[zero], torch.zeros_like(result.ablated[zero]))
    assert all(float(result.masks[n][zero].abs().max()) == 0.0 for n in result.layers)
    changed = (result.corrected[positive] - plain[positive]).flatten(1).abs().amax(dim=1) > 0
    assert bool(changed.all())


def test_refusals_for_another_generator_or_bad_latents(setup) -> None:
    g, stats, _ = setup
    rare = rare_neurons(stats)
    with pytest.raises(InvalidArgument, match="pggan"):
        artifact_scores(skewed_generator("pggan", PGGAN), rare, torch.zeros(2, PGGAN["latent_dim"]))
    wider = skewed_generator("dcgan", {**DCGAN, "base_width": 8})
    with pytest.raises(InvalidArgument, match="another generator"):
        sequential_ablation(wider, rare, torch.zeros(2, DCGAN["latent_dim"]))
    for latents in (torch.zeros(0, DCGAN["latent_dim"]), torch.zeros(3, DCGAN["latent_dim"] + 1), torch.zeros(3)):
        with pytest.raises(InvalidArgument):
            artifact_scores(g, rare, latents)
    assert all(not m._forward_hooks for m in wider.modules())
    try:
        with pytest.raises(FailedPrecondition, match="eval"):
            sequential_ablation(g.train(), rare, torch.zeros(2, DCGAN["latent_dim"]))
    finally:
        g.eval()


def test_before_after_grid_and_overlay_layout() -> None:
    rng = torch.Generator().manual_seed(0)
    original = torch.rand(5, 3, 8, 8, generator=rng) * 2 - 1
    corrected = torch.rand(5, 3, 8, 8, generator=rng) * 2 - 1
    grid = before_after_grid(original, corrected, columns=3)
    # Two bands of (originals row, corrected row), 3 columns, 1 px gutters; the last band has one blank slot.
    assert grid.shape == (4 * 9 + 1, 3 * 9 + 1, 3)
    before, after = to_uint8(original), to_uint8(corrected)
    cell = lambda row, col: grid[1 + row * 9: 1 + row * 9 + 8, 1 + col * 9: 1 + col * 9 + 8]  # noqa: E731
    for i in range(5):
        band, col = divmod(i, 3)
        np.testing.assert_array_equal(cell(2 * band, col), before[i])
        np.testing.assert_array_equal(cell(2 * band + 1, col), after[i])
    assert np.all(cell(2, 2) == cell(3, 2)) and len(np.unique(cell(2, 2))) == 1  # blank slot
    # Overlay: where the mask is 0 the colour is the map's low end, where it is the maximum its high end.
    images = -torch.ones(2, 1, 8, 8)  # black
    masks = torch.zeros(2, 8, 8)
    masks[1, :4] = 0.25
    overlay = mask_overlay_grid(images, masks, columns=2)
    from matplotlib import colormaps

    low, high = (np.rint(0.5 * 255 * np.array(colormaps["RdBu_r"](v)[:3])) for v in (0.0, 1.0))
    np.testing.assert_array_equal(overlay[1, 1], low)
    np.testing.assert_array_equal(overlay[1, 10], high)
    np.testing.assert_array_equal(overlay[8, 10], low)


def test_end_to_end_on_the_shipped_dcgan_fashion(tmp_path) -> None:
    g = load_shipped("dcgan-fashion")
    n = 512
    stats = compute_unit_statistics(g, n, seed=0, batch_size=128)
    assert list(stats.layers) == LAYERS
    _, acts = reference_forward(g, seeded_latents(g, n, 0), LAYERS, batch_size=128)
    for name in LAYERS:
        np.testing.assert_array_equal(stats.layers[name].positive_counts.numpy(), (acts[name] > 0).sum(axis=0))
    rare = rare_neurons(stats, 0.3)
    expected = brute_rare(acts, 0.3)
    assert rare.counts() == {name: int(expected[name].sum()) for name in LAYERS}
    assert sum(rare.counts().values()) > 100  # a trained DCGAN has rarely activated neurons
    latents = seeded_latents(g, 128, 1)
    scores = artifact_scores(g, rare, latents, batch_size=64)
    _, fresh = reference_forward(g, latents, LAYERS, batch_size=64)
    brute = sum(((fresh[name] > 0) & expected[name]).reshape(128, -1).sum(axis=1) for name in LAYERS)
    np.testing.assert_array_equal(scores.total.numpy(), brute)
    top = scores.ranking()[:8]
    result = sequential_ablation(g, rare, latents[top])
    corrected, _ = reference_forward(g, latents[top], LAYERS, batch_size=64, edit=sequential_edit(rare.masks))
    torch.testing.assert_close(result.corrected, corrected, rtol=0, atol=0)
    paths = save_ablation(result, tmp_path / "out", columns=4)
    names = {p.name for p in paths}
    assert {"before_after.png", "ablation.safetensors", *(f"overlay_{n}.png" for n in LAYERS)} <= names
    assert all(p.is_file() for p in paths)
    with Image.open(tmp_path / "out" / "before_after.png") as im:
        assert im.size == (4 * 33 + 1, 4 * 33 + 1) and im.mode == "L"
    with Image.open(tmp_path / "out" / "overlay_block2.act.png") as im:
        assert im.size == (4 * 33 + 1, 2 * 33 + 1) and im.mode == "RGB"
    saved = np.stack([np.asarray(Image.open(tmp_path / "out" / f"corrected_{i}.png")) for i in range(8)])
    np.testing.assert_array_equal(saved, to_uint8(result.corrected)[..., 0])
