"""genaudit.units.hooks and units.monitored: named forward hooks (validation, order, replacement, removal on
error) and the default monitored layers of every registered architecture."""

from __future__ import annotations

import pytest
import torch

from genaudit.errors import InvalidArgument
from genaudit.generators import ARCHITECTURES, build_generator
from genaudit.generators.base import Generator
from genaudit.units.hooks import layer_hooks, resolve_layers
from genaudit.units.monitored import architecture_of, default_monitored_layers

DCGAN = {"latent_dim": 8, "base_width": 4, "resolution": 32, "out_channels": 1}
PGGAN = {"latent_dim": 8, "base_width": 4, "max_width": 16, "resolution": 32, "out_channels": 3}


def small(arch: str, config: dict) -> Generator:
    torch.manual_seed(0)
    return build_generator(arch, config).eval()


def no_hooks_left(generator: Generator) -> bool:
    return all(not module._forward_hooks for module in generator.modules())


def test_unknown_repeated_and_empty_layers_are_refused_with_the_valid_names() -> None:
    g = small("dcgan", DCGAN)
    with pytest.raises(InvalidArgument) as info:
        resolve_layers(g, ["block1.act", "block9.act"])
    assert "block9.act" in info.value.message
    assert all(name in info.value.message for name in g.layer_names())
    with pytest.raises(InvalidArgument, match="more than once"):
        resolve_layers(g, ["block1.act", "block1.act"])
    with pytest.raises(InvalidArgument):
        resolve_layers(g, [])
    with pytest.raises(InvalidArgument), layer_hooks(g, ["block1"], lambda name, out: None):
        pass  # "block1" is a container, not a leaf layer
    assert no_hooks_left(g)


def test_callbacks_fire_in_forward_order_whatever_order_the_layers_are_named_in() -> None:
    g = small("pggan", PGGAN)
    names = ["block3.act2", "block1.dense", "to_rgb.act", "block2.norm1"]
    seen: list[tuple[str, tuple[int, ...]]] = []
    with torch.no_grad(), layer_hooks(g, names, lambda name, out: seen.append((name, tuple(out.shape)))) as order:
        g(g.sample_latents(3, torch.Generator().manual_seed(1)))
    expected = [name for name in g.layer_names() if name in names]
    assert order == expected
    assert [name for name, _ in seen] == expected
    assert dict(seen)["block1.dense"] == (3, 16, 4, 4)
    assert dict(seen)["to_rgb.act"] == (3, 3, 32, 32)
    assert no_hooks_left(g)


def test_a_returned_tensor_replaces_the_output_and_later_layers_compute_from_it() -> None:
    g = small("dcgan", DCGAN)
    z = g.sample_latents(4, torch.Generator().manual_seed(2))
    with torch.no_grad():
        with layer_hooks(g, ["block3.act"], lambda name, out: torch.zeros_like(out)):
            replaced = g(z)
        # Independent reference: to_rgb applied by hand to a zero 16x16 map.
        expected = g.to_rgb(torch.zeros(4, g.block3.conv.out_channels, 16, 16))
        assert torch.equal(replaced, expected)
        assert not torch.equal(g(z), replaced)  # hooks gone: the plain output is back
    with pytest.raises(InvalidArgument, match="shape"), torch.no_grad(), \
            layer_hooks(g, ["block2.act"], lambda name, out: out[:, :1]):
        g(z)
    assert no_hooks_left(g)


def test_hooks_are_removed_when_the_block_raises() -> None:
    g = small("dcgan", DCGAN)

    def failing(name: str, out: torch.Tensor) -> None:
        raise RuntimeError(f"callback failed at {name}")

    with pytest.raises(RuntimeError, match=r"block2\.act"), torch.no_grad(), \
            layer_hooks(g, ["block2.act", "block3.act"], failing):
        g(g.sample_latents(2))
    assert no_hooks_left(g)
    with pytest.raises(KeyError), layer_hooks(g, ["block1.act"], lambda name, out: None):
        assert not no_hooks_left(g)
        raise KeyError("the block itself fails")
    assert no_hooks_left(g)


@pytest.mark.parametrize(("arch", "config", "expected"), [
    ("dcgan", {"resolution": 32, "latent_dim": 8, "base_width": 4}, ["block1.act", "block2.act", "block3.act"]),
    ("dcgan", {"resolution": 64, "latent_dim": 8, "base_width": 4},
     ["block1.act", "block2.act", "block3.act", "block4.act"]),
    ("dcgan", {"resolution": 128, "latent_dim": 8, "base_width": 4},
     ["block1.act", "block2.act", "block3.act", "block4.act"]),
    ("dcgan", {"resolution": 8, "latent_dim": 8, "base_width": 4}, ["block1.act"]),
    ("pggan", {"resolution": 64, "latent_dim": 8, "base_width": 4, "max_width": 8},
     ["block1.act2", "block2.act2", "block3.act2", "block4.act2"]),
    ("pggan", {"resolution": 32, "latent_dim": 8, "base_width": 4, "max_width": 8},
     ["block1.act2", "block2.act2", "block3.act2"]),
    ("pggan", {"resolution": 8, "latent_dim": 8, "base_width": 4, "max_width": 8}, ["block1.act2"]),
])
def test_default_monitored_layers_are_the_activations_of_the_blocks_at_4_to_32_px(
        arch: str, config: dict, expected: list[str]) -> None:
    g = small(arch, config)
    assert architecture_of(g) == arch
    layers = default_monitored_layers(g)
    assert layers == expected
    sides: dict[str, int] = {}
    with torch.no_grad(), layer_hooks(g, layers, lambda name, out: sides.__setitem__(name, out.shape[-1])):
        g(g.sample_latents(2))
    # Independent check of the rule: every monitored map is at most 32 px and coarser than the image,
    # and the maps double from 4 px.
    assert list(sides.values()) == [4 * 2**i for i in range(len(layers))]
    assert all(side <= 32 and side < g.resolution for side in sides.values())
    for name in layers:
        assert isinstance(g.get_submodule(name), torch.nn.ReLU | torch.nn.LeakyReLU)


def test_every_registered_architecture_has_a_default_or_a_clear_refusal() -> None:
    class Unregistered(Generator):
        latent_dim, out_channels, resolution = 4, 1, 8

        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 64)

    with pytest.raises(InvalidArgument, match="fc"):
        default_monitored_layers(Unregistered())
    assert architecture_of(Unregistered()) is None
    for arch in ARCHITECTURES:
        try:
            layers = default_monitored_layers(small(arch, {}))
        except InvalidArgument as exc:  # a newly registered family without a rule must say how to proceed
            assert "name the layers" in exc.message
        else:
            assert layers
