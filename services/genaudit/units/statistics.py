"""Streaming statistics of the units of a generator's layers over N seeded samples.

For a layer with output (B, C, *spatial) -- a neuron is one element (channel, y, x), a channel's values are
all its neurons over all samples -- the run accumulates, batch by batch:

- per neuron, ``positive_counts`` = #{samples with activation > 0}; frequency = positive_counts / N
  (Choi, Chang & Choi, IJCAI 2022; DESIGN.md section 4);
- per channel, mean and population variance (ddof 0) over samples and positions, in float64, merging each
  batch's two-pass (count, mean, M2) into the running one with Chan et al.'s parallel update:
  n = n_a + n_b, d = mean_b - mean_a, mean = mean_a + d n_b / n, M2 = M2_a + M2_b + d^2 n_a n_b / n;
- per channel, quantiles at the requested levels from ``ChannelHistogram`` (a fixed number of bins per
  channel): each estimate is within the channel's final bin width of ``numpy.quantile``'s default (linear)
  quantile of all its values, and that bound is reported per channel (``quantile_error``).

The state is O(neurons + channels x bins) whatever N; only the latents (N x latent_dim, drawn at once as
``sample_images`` draws them) grow with N, and each batch's float64 copy of the monitored outputs. The same
generator, N and seed give identical statistics. Across batch sizes, counts are integers and means and
variances agree to float64 rounding as long as the generator's float32 kernels give a sample the same
activations in any batch (so on CPU for DCGAN; PGGAN's convolutions are not bitwise batch-size invariant, and
an activation within rounding of 0 may then change sign); quantile estimates depend on the first batch, which
fixes the bins, but stay within their bound.

The generator must be in eval mode (batch norm on running statistics), so that a sample's activations do
not depend on the other samples of its batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.generators.base import Generator
from genaudit.units.batches import CancelCheck, Progress, latent_batches, require_eval_mode, seeded_latents
from genaudit.units.hooks import layer_hooks, resolve_layers
from genaudit.units.monitored import architecture_of, default_monitored_layers

DEFAULT_QUANTILES = (0.9, 0.99, 0.995)
DEFAULT_BINS = 2048
MIN_BINS, MAX_BINS = 8, 1 << 16
# The one safetensors metadata key: JSON (one key, so that files are byte-reproducible).
METADATA_KEY = "genaudit_units"
FORMAT_VERSION = 1
_FIELDS = ("positive_counts", "mean", "variance", "quantiles", "quantile_error")


def _checked_bins(bins: int) -> int:
    if not MIN_BINS <= bins <= MAX_BINS:
        raise InvalidArgument(f"bins must be in [{MIN_BINS}, {MAX_BINS}], got {bins}")
    return bins


class ChannelHistogram:
    """Per-channel histogram of ``bins`` equal bins on [low_c, low_c + bins * width_c], for quantiles.

    The first batch fixes the range (its min and max per channel). A later value outside the range widens
    it: the width is multiplied by 2^k and the low edge moved by a whole number j of new bins (new low =
    low - j 2^k width), with the smallest k that covers the occupied old bins and the new values; every new
    bin is then a union of 2^k old ones, so the counts move over exactly (old bin i -> new bin
    j + floor(i / 2^k)). Memory: channels x bins counts, independent of the number of values.

    Error bound: each order statistic x_(r) is estimated by a point of the bin that holds it (spread evenly
    within the bin), so |estimate - x_(r)| <= width_c; numpy's linear quantile interpolates between two
    order statistics and so does the estimate, hence |q_hat - numpy.quantile| <= width_c (``error_bound``).
    The width stays at most 2 (max - min) / (bins - 5) of the channel's values so far: the first batch gives
    span / bins; a widening to cover a span S (the values and the occupied old bins, S < max - min + 2 width)
    picks the smallest fitting k, and the k with (bins - 1) 2^k width >= S always fits, so the new width is
    below 2 S / (bins - 1); induction gives the bound. (A channel constant in its first batch starts from a
    tiny positive width instead of span / bins.)
    """

    def __init__(self, channels: int, bins: int, device: torch.device) -> None:
        self.bins = _checked_bins(bins)
        self.counts = torch.zeros(channels, bins, dtype=torch.int64, device=device)
        self.low = torch.zeros(channels, dtype=torch.float64, device=device)
        self.width = torch.zeros(channels, dtype=torch.float64, device=device)
        self.total = 0

    def update(self, values: torch.Tensor) -> None:
        """Adds ``values`` (C, M), float64."""
        vmin, vmax = values.amin(dim=1), values.amax(dim=1)
        if self.total == 0:
            span = vmax - vmin
            # A constant channel still needs a non-empty range; later values widen it as needed.
            span = torch.where(span > 0, span, torch.clamp(vmin.abs(), min=1.0) * 2.0**-20)
            self.low, self.width = vmin.clone(), span / self.bins
        self._widen(vmin, vmax)
        index = ((values - self.low[:, None]) / self.width[:, None]).floor().clamp_(0, self.bins - 1).long()
        index += torch.arange(values.shape[0], device=values.device)[:, None] * self.bins
        self.counts += torch.bincount(index.ravel(), minlength=self.counts.numel()).view_as(self.counts)
        self.total += values.shape[1]

    def _widen(self, vmin: torch.Tensor, vmax: torch.Tensor) -> None:
        high = self.low + self.bins * self.width
        needs = (vmin < self.low) | (vmax > high)
        if not bool(needs.any()):
            return
        low, width, counts = self.low[needs], self.width[needs], self.counts[needs]
        # The new range must cover the occupied old bins (empty ones may fall outside) and the new values.
        occupied = counts > 0
        first = occupied.int().argmax(dim=1).double()
        last = (self.bins - 1 - occupied.flip(1).int().argmax(dim=1)).double()
        seen = occupied.any(dim=1)
        cover_low = torch.where(seen, torch.minimum(low + first * width, vmin[needs]), vmin[needs])
        cover_high = torch.where(seen, torch.maximum(low + (last + 1) * width, vmax[needs]), vmax[needs])
        # Smallest k with bins * 2^k * width >= the span, then +1 until the aligned range also fits.
        k = torch.ceil(torch.log2((cover_high - cover_low) / (self.bins * width))).clamp(min=0).long()
        while True:
            new_width = width * torch.pow(2.0, k.double())
            shift = torch.ceil((low - cover_low) / new_width)  # new low = low - shift bins: on the old lattice
            fits = low - shift * new_width + self.bins * new_width >= cover_high
            if bool(fits.all()):
                break
            k = torch.where(fits, k, k + 1)
        old_bins = torch.arange(self.bins, device=counts.device)
        # floor(i / 2^k) in int64 for k < 62; beyond, every old bin index (< 2^16) maps to 0. Empty old bins
        # outside the new range are clamped in; they add nothing.
        coarse = torch.where(k[:, None] < 62, old_bins >> k.clamp(max=62)[:, None], 0)
        moved = (shift.long()[:, None] + coarse).clamp_(0, self.bins - 1)
        self.counts[needs] = torch.zeros_like(counts).scatter_add_(1, moved, counts)
        self.low[needs] = low - shift * new_width
        self.width[needs] = new_width

    @property
    def error_bound(self) -> torch.Tensor:
        return self.width.clone()

    def quantiles(self, levels: Sequence[float]) -> torch.Tensor:
        """(Q, C) float64 estimates of numpy.quantile(values_c, q) (linear), within ``error_bound``."""
        if self.total == 0:
            raise FailedPrecondition("no values were added to the histogram")
        cumulative = self.counts.cumsum(dim=1)
        rows = []
        for q in levels:
            rank = q * (self.total - 1)
            lower = math.floor(rank)
            fraction = rank - lower
            upper = min(lower + 1, self.total - 1)
            rows.append((1 - fraction) * self._order_statistic(cumulative, lower)
                        + fraction * self._order_statistic(cumulative, upper))
        return torch.stack(rows)

    def _order_statistic(self, cumulative: torch.Tensor, rank: int) -> torch.Tensor:
        """Estimate of the 0-based ``rank``-th smallest value of each channel."""
        target = torch.full((cumulative.shape[0], 1), rank, dtype=torch.int64, device=cumulative.device)
        bin_index = torch.searchsorted(cumulative, target, right=True)  # first bin with cumulative > rank
        before = torch.where(bin_index > 0, cumulative.gather(1, (bin_index - 1).clamp(min=0)), 0)
        in_bin = self.counts.gather(1, bin_index)
        position = ((rank - before).double() + 0.5) / in_bin.double()
        return (self.low + (bin_index.squeeze(1).double() + position.squeeze(1)) * self.width)


class LayerAccumulator:
    """Running statistics of one layer's outputs (module docstring); ``update`` with each batch's output."""

    def __init__(self, name: str, bins: int) -> None:
        self.name, self.bins = name, _checked_bins(bins)
        self.positive: torch.Tensor | None = None
        self.histogram: ChannelHistogram | None = None
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def update(self, output: torch.Tensor) -> None:
        if output.ndim < 2:
            raise InvalidArgument(f"layer {self.name!r} outputs shape {tuple(output.shape)}; unit statistics need "
                                  "(batch, channels, ...)")
        batch = output.detach()
        if self.positive is None:
            channels = batch.shape[1]
            self.positive = torch.zeros(batch.shape[1:], dtype=torch.int64, device=batch.device)
            self.histogram = ChannelHistogram(channels, self.bins, batch.device)
            self.mean = torch.zeros(channels, dtype=torch.float64, device=batch.device)
            self.m2 = torch.zeros(channels, dtype=torch.float64, device=batch.device)
        positive, histogram, mean, m2 = self._started()
        if batch.shape[1:] != positive.shape:
            raise InvalidArgument(f"layer {self.name!r} changed its output from {tuple(positive.shape)} to "
                                  f"{tuple(batch.shape[1:])} per sample")
        positive += (batch > 0).sum(dim=0)
        values = batch.double().movedim(1, 0).reshape(batch.shape[1], -1)  # (C, batch x positions)
        n_b = values.shape[1]
        mean_b = values.mean(dim=1)
        if not bool(torch.isfinite(mean_b).all()):  # a float64 mean of float32 values is finite iff they all are
            raise FailedPrecondition(f"layer {self.name!r} produced non-finite activations")
        m2_b = (values - mean_b[:, None]).square().sum(dim=1)
        # Chan et al.; with nothing seen yet (count 0) it gives the batch's own mean and M2 exactly.
        n = self.count + n_b
        delta = mean_b - mean
        self.mean = mean + delta * (n_b / n)
        self.m2 = m2 + m2_b + delta.square() * (self.count * n_b / n)
        self.count = n
        histogram.update(values)

    def _started(self) -> tuple[torch.Tensor, ChannelHistogram, torch.Tensor, torch.Tensor]:
        if self.positive is None or self.histogram is None or self.mean is None or self.m2 is None:
            raise FailedPrecondition(f"layer {self.name!r} produced no output: the forward pass does not run it")
        return self.positive, self.histogram, self.mean, self.m2

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything the accumulator holds: per neuron, per channel and per (channel, bin), whatever the
        number of samples seen."""
        positive, histogram, mean, m2 = self._started()
        return {"positive": positive, "mean": mean, "m2": m2, "counts": histogram.counts, "low": histogram.low,
                "width": histogram.width}

    def finish(self, n_samples: int, levels: Sequence[float]) -> LayerStatistics:
        positive, histogram, mean, m2 = self._started()
        return LayerStatistics(
            name=self.name,
            n_samples=n_samples,
            positive_counts=positive.cpu(),
            mean=mean.cpu(),
            variance=(m2 / self.count).cpu(),
            quantiles=histogram.quantiles(levels).cpu(),
            quantile_error=histogram.error_bound.cpu(),
        )


@dataclass(frozen=True)
class LayerStatistics:
    """Statistics of one layer over ``n_samples`` samples (CPU tensors):

    - ``positive_counts``: int64 (C, *spatial), samples with activation > 0 per neuron;
    - ``mean``, ``variance``: float64 (C,), over samples and positions (variance with ddof 0);
    - ``quantiles``: float64 (Q, C) at ``UnitStatistics.quantile_levels``; ``quantile_error``: float64 (C,),
      the bound on |quantile - numpy.quantile| of each channel (``ChannelHistogram``).
    """

    name: str
    n_samples: int
    positive_counts: torch.Tensor
    mean: torch.Tensor
    variance: torch.Tensor
    quantiles: torch.Tensor
    quantile_error: torch.Tensor

    @property
    def frequency(self) -> torch.Tensor:
        """float64 (C, *spatial): share of the samples with activation > 0, per neuron."""
        return self.positive_counts.double() / self.n_samples

    @property
    def neuron_shape(self) -> tuple[int, ...]:
        return tuple(self.positive_counts.shape)


@dataclass(frozen=True)
class UnitStatistics:
    """Statistics of the monitored layers of one generator, by layer name in forward order."""

    arch: str | None
    seed: int
    n_samples: int
    batch_size: int
    bins: int
    quantile_levels: tuple[float, ...]
    layers: Mapping[str, LayerStatistics]

    def metadata(self) -> dict[str, Any]:
        """JSON-able description of the run: format, arch, seed, n_samples, batch_size, bins,
        quantile_levels, and each layer's neuron shape (C, *spatial) in forward order."""
        return {
            "format": FORMAT_VERSION, "arch": self.arch, "seed": self.seed, "n_samples": self.n_samples,
            "batch_size": self.batch_size, "bins": self.bins, "quantile_levels": list(self.quantile_levels),
            "layers": {name: list(layer.neuron_shape) for name, layer in self.layers.items()},
        }

    def channel_quantile(self, layer: str, level: float) -> torch.Tensor:
        """float64 (C,): the per-channel quantile of ``layer`` at ``level``, one of ``quantile_levels``
        (InvalidArgument for another level or a layer without statistics)."""
        if layer not in self.layers:
            raise InvalidArgument(f"layer {layer!r} has no statistics; layers with statistics: {list(self.layers)}")
        matches = [i for i, q in enumerate(self.quantile_levels) if math.isclose(q, level, abs_tol=1e-12)]
        if not matches:
            raise InvalidArgument(f"quantile level {level} was not computed; levels: {list(self.quantile_levels)}")
        return self.layers[layer].quantiles[matches[0]]

    def save(self, path: str | Path) -> None:
        """One safetensors file: tensors ``<layer>/<field>``, and ``metadata()`` as JSON under the metadata
        key ``genaudit_units``."""
        tensors = {f"{name}/{field}": getattr(layer, field).contiguous()
                   for name, layer in self.layers.items() for field in _FIELDS}
        save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(self.metadata(), sort_keys=True)})

    @classmethod
    def load(cls, path: str | Path) -> UnitStatistics:
        """Reads a file ``save`` wrote; InvalidArgument when it is not one (missing metadata or tensors,
        wrong dtypes or shapes)."""
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {})[METADATA_KEY])
            tensors = load_file(str(path))
            if meta["format"] != FORMAT_VERSION:
                raise ValueError(f"format {meta['format']}, expected {FORMAT_VERSION}")
            shapes = {str(name): tuple(int(d) for d in shape) for name, shape in meta["layers"].items()}
            levels = tuple(float(q) for q in meta["quantile_levels"])
            n_samples = int(meta["n_samples"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as exc:
            raise InvalidArgument(f"{path} is not a unit statistics file: {exc!r}") from None
        result = {}
        for name, shape in shapes.items():
            fields = {field: tensors.get(f"{name}/{field}") for field in _FIELDS}
            missing = [field for field, t in fields.items() if t is None]
            if missing:
                raise InvalidArgument(f"{path}: layer {name!r} lacks tensors {missing}")
            layer = LayerStatistics(name=name, n_samples=n_samples, **fields)  # type: ignore[arg-type]
            _check_layer(layer, shape, len(levels), path)
            result[name] = layer
        return cls(arch=meta["arch"], seed=int(meta["seed"]), n_samples=n_samples,
                   batch_size=int(meta["batch_size"]), bins=int(meta["bins"]), quantile_levels=levels,
                   layers=result)


def _check_layer(layer: LayerStatistics, shape: tuple[int, ...], n_levels: int, path: str | Path) -> None:
    channels = shape[0] if shape else 0
    expected = {
        "positive_counts": (torch.int64, shape),
        "mean": (torch.float64, (channels,)),
        "variance": (torch.float64, (channels,)),
        "quantiles": (torch.float64, (n_levels, channels)),
        "quantile_error": (torch.float64, (channels,)),
    }
    for field, (dtype, want) in expected.items():
        tensor = getattr(layer, field)
        if tensor.dtype != dtype or tuple(tensor.shape) != want or not channels:
            raise InvalidArgument(f"{path}: {layer.name}/{field} is {tensor.dtype} {tuple(tensor.shape)}, "
                                  f"expected {dtype} {want}")


@torch.no_grad()
def compute_unit_statistics(
    generator: Generator,
    n_samples: int,
    seed: int = 0,
    *,
    layers: Sequence[str] | None = None,
    batch_size: int = 64,
    quantile_levels: Sequence[float] = DEFAULT_QUANTILES,
    bins: int = DEFAULT_BINS,
    progress: Progress | None = None,
    check_cancelled: CancelCheck | None = None,
) -> UnitStatistics:
    """Statistics (module docstring) of ``layers`` (default: ``default_monitored_layers``) over the
    ``n_samples`` latents of ``seed``, ``batch_size`` at a time on the generator's device.

    ``progress(done, total)`` runs after each batch, ``check_cancelled()`` before each one (it aborts the
    run by raising, or by returning True: JobCancelled). Same generator, N and seed => identical
    frequencies, and means, variances and quantiles equal to float64 rounding at any batch size."""
    require_eval_mode(generator)
    levels = tuple(float(q) for q in quantile_levels)
    if not levels or any(not 0.0 <= q <= 1.0 for q in levels):
        raise InvalidArgument(f"quantile levels must be in [0, 1], got {list(levels)}")
    names = resolve_layers(generator, default_monitored_layers(generator) if layers is None else layers)
    accumulators = {name: LayerAccumulator(name, bins) for name in names}
    latents = seeded_latents(generator, n_samples, seed)

    def observe(name: str, output: torch.Tensor) -> None:
        accumulators[name].update(output)

    with layer_hooks(generator, names, observe):
        for _, batch in latent_batches(latents, batch_size, progress, check_cancelled):
            generator(batch)
    return UnitStatistics(
        arch=architecture_of(generator), seed=seed, n_samples=n_samples, batch_size=batch_size, bins=bins,
        quantile_levels=levels, layers={name: acc.finish(n_samples, levels) for name, acc in accumulators.items()},
    )

