"""genaudit.units.statistics against independent references: a float64 numpy brute force over every
activation of small generators held in memory (computed by a hand-written forward pass, no hooks),
numpy.quantile for the streaming quantiles, and the sampling module for the seeded latents."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from genaudit.errors import FailedPrecondition, InvalidArgument, JobCancelled
from genaudit.generators import build_generator, sample_images
from genaudit.generators.base import Generator
from genaudit.generators.dcgan import DCGANGenerator
from genaudit.generators.sampling import to_uint8
from genaudit.units.batches import seeded_latents
from genaudit.units.statistics import ChannelHistogram, LayerAccumulator, UnitStatistics, compute_unit_statistics

DCGAN = {"latent_dim": 8, "base_width": 4, "resolution": 32, "out_channels": 1}
PGGAN = {"latent_dim": 8, "base_width": 4, "max_width": 16, "resolution": 32, "out_channels": 3}
LEVELS = (0.0, 0.1, 0.5, 0.9, 0.99, 0.995, 1.0)


def skewed_generator(arch: str, config: dict, seed: int = 0) -> Generator:
    """A small eval-mode generator whose biases are shifted at random, so that frequencies spread over (0, 1)
    and rare (0 < freq <= 0.3) and dead neurons exist, as in trained generators."""
    torch.manual_seed(seed)
    g = build_generator(arch, config)
    norms = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in norms:  # running statistics of the generator's own pre-activations, so that they are ~N(0, 1)
            m.momentum = None
        g.train()(g.sample_latents(256, torch.Generator().manual_seed(seed)))
        for name, p in g.named_parameters():
            if name.endswith("bias"):
                p.normal_(-0.6, 0.8)
    return g.eval()


# (layer name, its output, the batch's slice of the latents) -> the tensor the next layer gets.
Edit = Callable[[str, torch.Tensor, slice], torch.Tensor]


def reference_forward(generator: Generator, latents: torch.Tensor, layers: list[str], batch_size: int,
                      edit: Edit | None = None) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """Images and the float64 outputs of ``layers``, by running the generator's leaf modules one by one in
    ``layer_names()`` order (both registered architectures are chains of their leaves), ``batch_size``
    latents at a time. ``edit`` changes a listed layer's output (after it is recorded) before the next
    layer runs: the hand-written ablations."""
    images, acts = [], {name: [] for name in layers}
    with torch.no_grad():
        for start in range(0, len(latents), batch_size):
            z = latents[start:start + batch_size]
            x = z.view(len(z), -1, 1, 1) if isinstance(generator, DCGANGenerator) else z
            for name in generator.layer_names():
                x = generator.get_submodule(name)(x)
                if name in acts:
                    acts[name].append(x.double().numpy())
                    if edit is not None:
                        x = edit(name, x, slice(start, start + len(z)))
            images.append(x)
    return torch.cat(images), {name: np.concatenate(parts) for name, parts in acts.items()}


def brute_force(acts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-neuron positive counts, per-channel mean / variance (ddof 0) / values, in float64."""
    per_channel = np.moveaxis(acts, 1, 0).reshape(acts.shape[1], -1)
    return {"positive": (acts > 0).sum(axis=0), "mean": per_channel.mean(axis=1),
            "variance": per_channel.var(axis=1), "values": per_channel}


def check_against_brute_force(stats: UnitStatistics, acts: dict[str, np.ndarray]) -> None:
    assert list(stats.layers) == list(acts)
    for name, layer in stats.layers.items():
        ref = brute_force(acts[name])
        np.testing.assert_array_equal(layer.positive_counts.numpy(), ref["positive"])
        np.testing.assert_array_equal(layer.frequency.numpy(), ref["positive"] / len(acts[name]))
        np.testing.assert_allclose(layer.mean.numpy(), ref["mean"], rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(layer.variance.numpy(), ref["variance"], rtol=1e-10, atol=1e-13)
        exact = np.quantile(ref["values"], stats.quantile_levels, axis=1)
        bound = layer.quantile_error.numpy()
        assert np.all(np.abs(layer.quantiles.numpy() - exact) <= bound * (1 + 1e-9) + 1e-12)
        span = ref["values"].max(axis=1) - ref["values"].min(axis=1)
        live = span > 0
        assert np.all(bound[live] <= 2 * span[live] / (stats.bins - 5) * (1 + 1e-9))


def test_dcgan_statistics_equal_a_float64_brute_force_at_every_batch_size() -> None:
    g = skewed_generator("dcgan", DCGAN)
    layers = ["block1.act", "block2.act", "block3.act"]
    n, seed = 240, 11
    _, acts = reference_forward(g, seeded_latents(g, n, seed), layers, batch_size=n)
    freq = brute_force(acts["block3.act"])["positive"] / n
    assert ((freq > 0) & (freq <= 0.3)).mean() > 0.05 and (freq == 0).any()  # the test data has rare units
    results = []
    for batch_size in (8, 48, 240):
        stats = compute_unit_statistics(g, n, seed, batch_size=batch_size, quantile_levels=LEVELS, bins=256)
        assert (stats.arch, stats.n_samples, stats.seed, stats.batch_size) == ("dcgan", n, seed, batch_size)
        check_against_brute_force(stats, acts)
        results.append(stats)
    for other in results[1:]:
        for name in layers:
            assert torch.equal(other.layers[name].positive_counts, results[0].layers[name].positive_counts)
            torch.testing.assert_close(other.layers[name].mean, results[0].layers[name].mean, rtol=1e-12, atol=0)


def test_pggan_statistics_equal_the_brute_force_of_the_same_batches() -> None:
    # PGGAN's float32 convolutions are not bitwise batch-size invariant on CPU (an activation within rounding
    # of 0 may change sign), so the reference runs the same batches.
    g = skewed_generator("pggan", PGGAN, seed=1)
    layers = ["block1.dense", "block2.act2", "block3.norm1"]
    latents = seeded_latents(g, 96, 5)
    _, acts = reference_forward(g, latents, layers, batch_size=32)
    stats = compute_unit_statistics(g, 96, 5, layers=list(reversed(layers)), batch_size=32, quantile_levels=LEVELS,
                                    bins=128)
    check_against_brute_force(stats, acts)  # also: layers come back in forward order
    assert stats.layers["block1.dense"].neuron_shape == (16, 4, 4)


@pytest.mark.parametrize("stream", ["narrow-then-wide", "constant-then-spread", "growing", "relu-ties"])
def test_channel_histogram_quantiles_stay_within_the_bound_of_numpy_quantile(stream: str) -> None:
    rng = np.random.default_rng(3)
    channels, bins = 5, 64
    if stream == "narrow-then-wide":
        batches = [rng.uniform(0, 1e-3, (channels, 50)), rng.uniform(-50, 100, (channels, 400)),
                   rng.normal(0, 1, (channels, 300))]
    elif stream == "constant-then-spread":
        batches = [np.zeros((channels, 40)), rng.normal(2, 3, (channels, 500)), np.full((channels, 10), -7.0)]
    elif stream == "growing":
        batches = [rng.normal(0, 1, (channels, 30)) * 3.0**i + i for i in range(12)]
    else:
        batches = [np.maximum(rng.normal(-0.5, 1, (channels, 200)), 0) for _ in range(6)]
    histogram = ChannelHistogram(channels, bins, torch.device("cpu"))
    for batch in batches:
        histogram.update(torch.from_numpy(batch))
    values = np.concatenate(batches, axis=1)
    assert histogram.counts.sum(dim=1).tolist() == [values.shape[1]] * channels
    levels = np.linspace(0, 1, 41)
    estimate = histogram.quantiles(levels).numpy()
    bound = histogram.error_bound.numpy()
    exact = np.quantile(values, levels, axis=1)
    assert np.all(np.abs(estimate - exact) <= bound * (1 + 1e-9) + 1e-12)
    if stream != "constant-then-spread":  # a constant first batch starts from a tiny width (docstring)
        span = values.max(axis=1) - values.min(axis=1)
        assert np.all(bound <= 2 * span / (bins - 5) * (1 + 1e-9))
    assert histogram.counts.shape == (channels, bins)


def test_the_state_does_not_grow_with_the_number_of_samples() -> None:
    rng = torch.Generator().manual_seed(0)
    shapes = []
    for n_batches in (1, 40):
        acc = LayerAccumulator("layer", bins=128)
        for _ in range(n_batches):
            acc.update(torch.relu(torch.randn(16, 6, 4, 4, generator=rng)))
        shapes.append({key: tuple(t.shape) for key, t in acc.state_tensors().items()})
    assert shapes[0] == shapes[1]
    assert shapes[0] == {"positive": (6, 4, 4), "mean": (6,), "m2": (6,), "counts": (6, 128), "low": (6,),
                         "width": (6,)}
    broken = torch.ones(4, 6, 4, 4)
    broken[2, 3, 1, 1] = float("nan")
    with pytest.raises(FailedPrecondition, match="non-finite"):
        LayerAccumulator("layer", bins=16).update(broken)
    with pytest.raises(FailedPrecondition, match="no output"):
        LayerAccumulator("layer", bins=16).finish(10, (0.5,))
    g = skewed_generator("dcgan", DCGAN)
    small, large = (compute_unit_statistics(g, n, 0, bins=64) for n in (32, 320))
    for name in small.layers:
        for field in ("positive_counts", "mean", "variance", "quantiles", "quantile_error"):
            assert getattr(small.layers[name], field).shape == getattr(large.layers[name], field).shape


def test_same_seed_same_statistics_and_the_latents_are_those_of_sample_images() -> None:
    g = skewed_generator("dcgan", DCGAN)
    a, b = (compute_unit_statistics(g, 64, 9, batch_size=16, bins=64) for _ in range(2))
    c = compute_unit_statistics(g, 64, 10, batch_size=16, bins=64)
    for name in a.layers:
        for field in ("positive_counts", "mean", "variance", "quantiles", "quantile_error"):
            assert torch.equal(getattr(a.layers[name], field), getattr(b.layers[name], field))
    assert any(not torch.equal(a.layers[n].positive_counts, c.layers[n].positive_counts) for n in a.layers)
    with torch.no_grad():
        ours = to_uint8(g(seeded_latents(g, 5, 9)))
    theirs = np.stack([np.asarray(im) for im in sample_images(g, 5, seed=9)])
    np.testing.assert_array_equal(ours[..., 0], theirs)


def test_save_and_load_round_trip_with_json_metadata(tmp_path) -> None:
    g = skewed_generator("dcgan", DCGAN)
    stats = compute_unit_statistics(g, 48, 4, batch_size=16, bins=32)
    path = tmp_path / "units.safetensors"
    stats.save(path)
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["genaudit_units"])
    assert (meta["arch"], meta["n_samples"], meta["seed"], meta["bins"]) == ("dcgan", 48, 4, 32)
    assert meta["layers"] == {"block1.act": [16, 4, 4], "block2.act": [8, 8, 8], "block3.act": [4, 16, 16]}
    loaded = UnitStatistics.load(path)
    assert (loaded.arch, loaded.seed, loaded.n_samples, loaded.quantile_levels) == \
        (stats.arch, stats.seed, stats.n_samples, stats.quantile_levels)
    for name, layer in stats.layers.items():
        for field in ("positive_counts", "mean", "variance", "quantiles", "quantile_error"):
            assert torch.equal(getattr(loaded.layers[name], field), getattr(layer, field))
        assert torch.equal(loaded.layers[name].frequency, layer.frequency)
    stats.save(tmp_path / "again.safetensors")
    assert (tmp_path / "again.safetensors").read_bytes() == path.read_bytes()


def test_load_refuses_files_that_are_not_unit_statistics(tmp_path) -> None:
    other = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    g = skewed_generator("dcgan", DCGAN)
    stats = compute_unit_statistics(g, 16, 0, bins=16)
    stats.save(tmp_path / "good.safetensors")
    with safe_open(str(tmp_path / "good.safetensors"), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(tmp_path / "good.safetensors"))
    tensors["block2.act/mean"] = torch.zeros(3, dtype=torch.float64)
    wrong_shape = tmp_path / "wrong.safetensors"
    save_file(tensors, str(wrong_shape), metadata=meta)
    for path in (other, garbage, wrong_shape, tmp_path / "missing.safetensors"):
        with pytest.raises(InvalidArgument):
            UnitStatistics.load(path)


def test_progress_cancellation_and_refusals() -> None:
    g = skewed_generator("dcgan", DCGAN)
    calls: list[tuple[int, int]] = []
    compute_unit_statistics(g, 50, 0, batch_size=16, bins=16, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(16, 50), (32, 50), (48, 50), (50, 50)]
    checks = []

    def cancel_on_third() -> bool:
        checks.append(1)
        return len(checks) == 3

    with pytest.raises(JobCancelled):
        compute_unit_statistics(g, 100, 0, batch_size=10, bins=16, check_cancelled=cancel_on_third)
    assert len(checks) == 3  # called before each batch, and the run stopped there
    assert all(not m._forward_hooks for m in g.modules())

    def raising() -> None:
        raise JobCancelled("job was cancelled")

    with pytest.raises(JobCancelled, match="job was cancelled"):
        compute_unit_statistics(g, 100, 0, batch_size=10, bins=16, check_cancelled=raising)
    assert all(not m._forward_hooks for m in g.modules())
    with pytest.raises(FailedPrecondition, match="eval"):
        compute_unit_statistics(g.train(), 10, 0)
    g.eval()
    for kwargs in ({"quantile_levels": (0.5, 1.5)}, {"bins": 4}, {"batch_size": 0}, {"layers": ["nope"]}):
        with pytest.raises(InvalidArgument):
            compute_unit_statistics(g, 10, 0, **kwargs)
    with pytest.raises(InvalidArgument):
        compute_unit_statistics(g, 0, 0)
