"""genaudit.units.interventions against hand computations: the formula x (1 - A) + v A in numpy (per-unit
strengths and values, a region averaged over blocks by hand), images under interventions against a hand-written
layer-by-layer forward pass, alpha = 1 a no-op and alpha = 0 the zeroing. Also home of the painting generator
the units tests share: a DCGAN-shaped net whose channel 3 of block2 paints a bright square."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genaudit.errors import InvalidArgument
from genaudit.generators.dcgan import DCGANGenerator
from genaudit.units.batches import seeded_latents
from genaudit.units.hooks import layer_hooks
from genaudit.units.interventions import UnitIntervention, generate, intervened
from tests.unit.test_units_statistics import reference_forward

PAINTER = {"latent_dim": 8, "base_width": 8, "resolution": 32, "out_channels": 1}
PAINTING_UNIT = 3  # of block2.act
SQUARE = (slice(8, 16), slice(8, 16))  # the pixels it paints
ONSET = 0.84  # the square is drawn iff z[0] > ONSET: about 20 % of the samples


def painting_generator(seed: int = 0) -> DCGANGenerator:
    """32 px grey DCGAN (block1 4 px, block2 8 px, block3 16 px, to_rgb 32 px) with random weights for the
    background, and one path, disconnected from the rest, that draws an 8 x 8 bright square at rows/columns
    8..15 when z[0] > ONSET: block1 channel 0 = ReLU(z[0] - ONSET) at position (1, 1); block2 channel 3 copies
    it onto its 2 x 2 cells (2..3, 2..3); block3 channel 0 onto (4..7, 4..7); to_rgb adds it, x 3 per layer,
    onto (8..15, 8..15) before the tanh. Batch norm: running statistics of the background channels from a
    train-mode pass (pre-activations ~ N(0, 1)), identity on the painting channels."""
    torch.manual_seed(seed)
    g = DCGANGenerator(**PAINTER)
    b1, b2, b3, rgb = g.block1, g.block2, g.block3, g.to_rgb
    with torch.no_grad():
        rgb.conv.weight.normal_(0, 0.15)
        rgb.conv.bias.zero_()
        for conv, channel_in, channel_out in ((b1.conv, None, 0), (b2.conv, 0, PAINTING_UNIT),
                                              (b3.conv, PAINTING_UNIT, 0), (rgb.conv, 0, None)):
            if channel_in is not None:
                conv.weight[channel_in].zero_()
            if channel_out is not None:
                conv.weight[:, channel_out].zero_()
        norms = [b1.norm, b2.norm, b3.norm]
        for m in norms:
            m.momentum = None  # cumulative average: the running statistics of this one batch
        g.train()(g.sample_latents(512, torch.Generator().manual_seed(seed + 1)))
        b1.conv.weight[0, 0, 1, 1] = 1.0
        b2.conv.weight[0, PAINTING_UNIT, 1:3, 1:3] = 3.0
        b3.conv.weight[PAINTING_UNIT, 0, 1:3, 1:3] = 3.0
        rgb.conv.weight[0, 0, 1:3, 1:3] = 3.0
        for m, channel, bias in ((b1.norm, 0, -ONSET), (b2.norm, PAINTING_UNIT, 0.0), (b3.norm, 0, 0.0)):
            m.running_mean[channel], m.running_var[channel] = 0.0, 1.0 - m.eps
            m.weight[channel], m.bias[channel] = 1.0, bias
    return g.eval()


def upsample_bilinear(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(..., h, w) -> (..., H, W) bilinear with half-pixel centres (source = (o + 0.5) h / H - 0.5, clamped at
    0, edge-replicated), as a separable matrix product in float64."""
    def matrix(n_in: int, n_out: int) -> np.ndarray:
        m = np.zeros((n_out, n_in))
        for o in range(n_out):
            src = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
            i0 = int(np.floor(src))
            i1 = min(i0 + 1, n_in - 1)
            m[o, i0] += 1 - (src - i0)
            m[o, i1] += src - i0
        return m
    rows, cols = matrix(maps.shape[-2], size[0]), matrix(maps.shape[-1], size[1])
    return np.einsum("Hh,...hw,Ww->...HW", rows, maps.astype(np.float64), cols)


def test_the_painting_generator_paints_the_square_exactly_when_z0_exceeds_the_onset() -> None:
    g = painting_generator()
    latents = seeded_latents(g, 200, 5)
    images = generate(g, latents, batch_size=64)
    drawn = latents[:, 0] > ONSET
    square = images[:, 0][:, SQUARE[0], SQUARE[1]].mean(dim=(1, 2))
    assert 0.1 < float(drawn.float().mean()) < 0.3
    assert float(square[drawn].mean()) > 0.8 and float(square[~drawn].abs().mean()) < 0.4
    assert float(images[~drawn].std()) > 0.2  # a textured background, not a flat one
    _, acts = reference_forward(g, latents, ["block2.act"], batch_size=200)
    active = (acts["block2.act"][:, PAINTING_UNIT] > 0).any(axis=(1, 2))
    np.testing.assert_array_equal(active, drawn.numpy())


def test_apply_equals_the_formula_in_numpy_with_strengths_values_and_a_region() -> None:
    x = torch.randn(3, 6, 4, 4, generator=torch.Generator().manual_seed(0))
    region = torch.zeros(16, 16)
    region[0:8, 4:16] = 1.0
    region[8:12, 0:2] = 0.5
    edit = UnitIntervention("layer", [4, 1], strength=[0.25, 1.0], value=[2.0, -1.0], region=region)
    out = edit.apply(x).numpy()
    area = region.numpy().reshape(4, 4, 4, 4).mean(axis=(1, 3))  # 16 -> 4 by 4 x 4 block means
    expected = x.numpy().astype(np.float64).copy()
    for unit, a, v in ((4, 0.25, 2.0), (1, 1.0, -1.0)):
        weight = a * area
        expected[:, unit] = expected[:, unit] * (1 - weight) + v * weight
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    untouched = [0, 2, 3, 5]
    np.testing.assert_array_equal(out[:, untouched], x.numpy()[:, untouched])
    # Without a region, everywhere; (B, C) outputs too.
    flat = torch.randn(5, 3)
    np.testing.assert_allclose(UnitIntervention.insertion("fc", [2], 7.0).apply(flat).numpy()[:, 2], 7.0)
    np.testing.assert_allclose(UnitIntervention.scaling("fc", [0], 0.3).apply(flat).numpy()[:, 0],
                               0.3 * flat.numpy()[:, 0], rtol=1e-6)


def test_alpha_one_is_a_no_op_and_alpha_zero_equals_zeroing_in_a_hand_written_forward_pass() -> None:
    g = painting_generator()
    latents = seeded_latents(g, 40, 6)
    units = [PAINTING_UNIT, 7]
    plain, _ = reference_forward(g, latents, ["block2.act"], batch_size=40)
    index = torch.tensor(units)

    def zeroing(name: str, x: torch.Tensor, _: slice) -> torch.Tensor:
        x = x.clone()
        x[:, index] = 0.0
        return x

    zeroed, _ = reference_forward(g, latents, ["block2.act"], batch_size=40, edit=zeroing)
    kept = generate(g, latents, [UnitIntervention.scaling("block2.act", units, 1.0)], batch_size=16)
    ablated = generate(g, latents, [UnitIntervention.scaling("block2.act", units, 0.0)], batch_size=16)
    torch.testing.assert_close(kept, plain, rtol=0, atol=0)
    torch.testing.assert_close(ablated, zeroed, rtol=0, atol=0)
    torch.testing.assert_close(generate(g, latents, [UnitIntervention.ablation("block2.act", units)]), zeroed,
                               rtol=0, atol=0)
    assert float((ablated - plain).abs().max()) > 0.5
    torch.testing.assert_close(generate(g, latents), plain, rtol=0, atol=0)  # hooks removed afterwards


def test_interventions_on_one_layer_compose_in_order_and_later_layers_see_them() -> None:
    g = painting_generator()
    latents = seeded_latents(g, 12, 7)
    first, second = UnitIntervention.insertion("block3.act", [1], 2.0), UnitIntervention.scaling("block3.act", [1], 0.5)

    def by_hand(name: str, x: torch.Tensor, _: slice) -> torch.Tensor:
        x = x.clone()
        x[:, 1] = 2.0 * 0.5
        return x

    expected, _ = reference_forward(g, latents, ["block3.act"], batch_size=12, edit=by_hand)
    torch.testing.assert_close(generate(g, latents, [first, second]), expected, rtol=0, atol=0)
    seen = []
    with intervened(g, [first]), layer_hooks(g, ["block3.act"], lambda _n, out: seen.append(out[:, 1].clone())):
        g(latents)
    assert bool((seen[0] == 2.0).all())


def test_invalid_interventions_are_refused() -> None:
    for kwargs in ({"units": []}, {"units": [1, 1]}, {"units": [-1]}, {"units": [0], "strength": 1.5},
                   {"units": [0, 1], "strength": [0.5, 0.5, 0.5]}, {"units": [0], "value": float("nan")},
                   {"units": [0], "region": torch.ones(2, 2, 2)}, {"units": [0], "region": torch.full((2, 2), 2.0)}):
        with pytest.raises(InvalidArgument):
            UnitIntervention("block2.act", **kwargs)
    with pytest.raises(InvalidArgument):
        UnitIntervention.scaling("block2.act", [0], 1.5)
    g = painting_generator()
    with pytest.raises(InvalidArgument, match="16 channels"):
        generate(g, seeded_latents(g, 2, 0), [UnitIntervention.ablation("block2.act", [16])])
    with pytest.raises(InvalidArgument, match="unknown layers"):
        generate(g, seeded_latents(g, 2, 0), [UnitIntervention.ablation("block9.act", [0])])
    with pytest.raises(InvalidArgument):
        UnitIntervention("fc", [0], region=torch.ones(2, 2)).apply(torch.zeros(3, 2))
