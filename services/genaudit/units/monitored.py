"""Which layers the rare-neuron analysis watches by default, per registered architecture.

Choi, Chang & Choi (IJCAI 2022) monitor the early, coarse layers: in their code the activation outputs of the
second convolution at 4, 8, 16 and 32 px of PGGAN (genforce ``layer1, 3, 5, 7``: pixel norm -> conv ->
LeakyReLU, hooked after the LeakyReLU) and StyleGAN2's layers up to 32 px. Those layers decide the layout
and the object's shape, where artifacts (broken or melted objects) arise; the layers at the final
resolution paint texture and colour, and zeroing their units dims the image instead of repairing it.

The same choice here, for an image of side R: the activation outputs of the blocks at 4 to 32 px, never the
block that makes the final resolution, i.e. blocks 1..min(s, 4) with s = log2(R) - 2 doublings from 4 px:

- ``dcgan``: ``block{i}.act`` (the ReLU after batch norm); block i outputs 4 * 2**(i-1) px and ``to_rgb``
  makes the final doubling. The shipped 32 px ``dcgan-fashion``: ``block1.act .. block3.act`` (4, 8, 16 px).
- ``pggan``: ``block{i}.act2`` (the LeakyReLU of the block's second 3x3 conv, before its pixel norm, as in
  the paper's code); block i works at 4 * 2**(i-1) px and block s+1 is the final resolution. The shipped
  64 px ``pggan-photos``: ``block1.act2 .. block4.act2`` (4, 8, 16, 32 px).
- ``singan``: ``scales.{n}.block4.act`` (the LeakyReLU of the last hidden conv of psi_n, before the conv to
  colours) of every scale n whose longest side is at most 32 px, never the finest scale (it makes the final
  resolution); always the coarsest scale (a one-scale pyramid has nothing coarser). SinGAN's coarse scales
  decide the layout (the paper's "effect of scales at test time": generation started at a coarse scale varies
  the global structure, started at a fine one only textures); one layer per scale, as one per resolution for
  PGGAN. The registry's default 64x64, 5 scales from 16 px (16, 23, 32, 45, 64 px): ``scales.0.block4.act ..
  scales.2.block4.act``.

Pixel norm only rescales each position by a positive factor, so "activation > 0" is the same before and after
it; the ablation, though, acts before it, as in the paper's code (the next block's pixel norm follows).
"""

from __future__ import annotations

from collections.abc import Callable

from genaudit.errors import InvalidArgument
from genaudit.generators.base import Generator, doublings_from_4px
from genaudit.generators.registry import ARCHITECTURES

# Largest side (px) of a monitored layer: the paper's 4..32 px.
MAX_MONITORED_SIDE = 32


def architecture_of(generator: Generator) -> str | None:
    """Registry name of the generator's class (``ARCHITECTURES[name].generator`` is its import path), or None
    for a class the registry does not name."""
    path = f"{type(generator).__module__}:{type(generator).__qualname__}"
    return next((name for name, spec in ARCHITECTURES.items() if spec.generator == path), None)


def _early_blocks(generator: Generator) -> range:
    doublings = doublings_from_4px(generator.resolution)
    last = min(doublings, doublings_from_4px(MAX_MONITORED_SIDE) + 1)
    return range(1, last + 1)


def _coarse_scales(generator: Generator) -> list[int]:
    sizes = generator.scale_sizes  # a SinGANGenerator's (h, w) per scale, coarsest first
    early = [n for n, size in enumerate(sizes[:-1]) if max(size) <= MAX_MONITORED_SIDE]
    return early or [0]


_RULES: dict[str, Callable[[Generator], list[str]]] = {
    "dcgan": lambda g: [f"block{i}.act" for i in _early_blocks(g)],
    "pggan": lambda g: [f"block{i}.act2" for i in _early_blocks(g)],
    "singan": lambda g: [f"scales.{n}.block4.act" for n in _coarse_scales(g)],
}


def default_monitored_layers(generator: Generator) -> list[str]:
    """The default monitored layers of the generator's architecture (module docstring), in forward order.

    Raises InvalidArgument for an architecture without a rule: pass the layers explicitly (any of
    ``generator.layer_names()``)."""
    arch = architecture_of(generator)
    if arch not in _RULES:
        raise InvalidArgument(
            f"no default monitored layers for architecture {arch or type(generator).__name__!r} (defaults exist for "
            f"{sorted(_RULES)}); name the layers, any of {generator.layer_names()}"
        )
    return _RULES[arch](generator)
