"""Forward hooks on named layers of a generator: observe each layer's output, or replace it (ablation).

Layers are named by the generator's canonical names (``Generator.layer_names()``: leaf modules in the order
the forward pass runs them), so callbacks on several layers fire in forward order, and a replacement made at
one layer is what every later layer computes from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from genaudit.errors import InvalidArgument
from genaudit.generators.base import Generator

# (layer name, its output) -> None to keep the output, or a tensor of the same shape that replaces it.
LayerCallback = Callable[[str, torch.Tensor], torch.Tensor | None]


def resolve_layers(generator: Generator, layers: Sequence[str]) -> list[str]:
    """``layers`` checked against ``generator.layer_names()`` and put in forward order.

    Raises InvalidArgument for an empty list, a repeated name or an unknown name (the message lists the
    valid names)."""
    valid = generator.layer_names()
    names = list(layers)
    if not names:
        raise InvalidArgument("at least one layer is needed")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidArgument(f"layers named more than once: {repeated}")
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise InvalidArgument(f"unknown layers {unknown}; the generator's layers, in forward order: {valid}")
    order = {name: i for i, name in enumerate(valid)}
    return sorted(names, key=order.__getitem__)


@contextlib.contextmanager
def layer_hooks(generator: Generator, layers: Sequence[str], callback: LayerCallback) -> Iterator[list[str]]:
    """Within the block, every forward pass calls ``callback(name, output)`` for each named layer, in forward
    order; a tensor it returns replaces the layer's output. Yields the layers in forward order. The hooks are
    removed on exit, also when the block raises.

    A layer whose output is not a tensor raises InvalidArgument during the forward pass."""
    names = resolve_layers(generator, layers)
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        for name in names:
            handles.append(generator.get_submodule(name).register_forward_hook(_hook(name, callback)))
        yield names
    finally:
        for handle in handles:
            handle.remove()


def _hook(name: str, callback: LayerCallback) -> Callable[[nn.Module, tuple, object], torch.Tensor | None]:
    def hook(_module: nn.Module, _inputs: tuple, output: object) -> torch.Tensor | None:
        if not isinstance(output, torch.Tensor):
            raise InvalidArgument(f"layer {name!r} outputs {type(output).__name__}, not a tensor; hook a leaf "
                                  "layer that returns one tensor")
        replacement = callback(name, output)
        if replacement is not None and replacement.shape != output.shape:
            raise InvalidArgument(f"replacement for layer {name!r} has shape {tuple(replacement.shape)}, "
                                  f"the layer's output {tuple(output.shape)}")
        return replacement

    return hook
