"""Streaming mean/std standardization of transformed inputs, fit on training batches.

Statistics are merged batch by batch in float64 with Chan et al.'s parallel update (no sum-of-squares
cancellation, so large DC coefficients with small spread stay exact). The state is a plain dict of
tensors (``count``, ``mean``, ``m2``), ready for ``safetensors.torch.save_file``; a restored
standardizer can keep fitting. ``std`` is the population std, floored at ``min_std`` so that a constant
coefficient maps to 0 instead of dividing by zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import ClassVar, Self

import torch

from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.forensics._inputs import check_batch


class _Standardizer:
    # Axes of a (B, C, H, W) batch the statistics are pooled over; the others index the statistics.
    pooled_dims: ClassVar[tuple[int, ...]]

    def __init__(self, min_std: float = 1e-6) -> None:
        self.min_std = min_std
        self.count = torch.zeros((), dtype=torch.float64)
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def update(self, batch: torch.Tensor) -> Self:
        """Merge the statistics of one (B, C, H, W) batch."""
        values = check_batch(batch).detach().to(dtype=torch.float64)
        n_batch = float(math.prod(values.shape[dim] for dim in self.pooled_dims))
        batch_mean = values.mean(dim=self.pooled_dims, keepdim=True)[0]
        batch_m2 = ((values - batch_mean) ** 2).sum(dim=self.pooled_dims, keepdim=True)[0]
        batch_mean, batch_m2 = batch_mean.cpu(), batch_m2.cpu()
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = torch.tensor(n_batch, dtype=torch.float64), batch_mean, batch_m2
            return self
        if batch_mean.shape != self.mean.shape:
            raise InvalidArgument(f"batch statistics shape {tuple(batch_mean.shape)} != {tuple(self.mean.shape)}")
        total = self.count + n_batch
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n_batch / total)
        self.m2 = self.m2 + batch_m2 + delta**2 * (self.count * n_batch / total)
        self.count = total
        return self

    def fit(self, batches: Iterable[torch.Tensor]) -> Self:
        """Merge every batch of ``batches`` (on top of anything already fitted)."""
        for batch in batches:
            self.update(batch)
        if self.mean is None:
            raise InvalidArgument("cannot fit a standardizer on no data")
        return self

    def _fitted(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None or self.m2 is None:
            raise FailedPrecondition(f"{type(self).__name__} is not fitted")
        return self.mean, self.m2

    @property
    def std(self) -> torch.Tensor:
        """Population std per statistic, floored at ``min_std`` (float64)."""
        _, m2 = self._fitted()
        return (m2 / self.count).sqrt().clamp_min(self.min_std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std``, in x's dtype and on x's device."""
        mean, _ = self._fitted()
        check_batch(x)
        return (x - mean.to(x.device, x.dtype)) / self.std.to(x.device, x.dtype)

    def state_dict(self) -> dict[str, torch.Tensor]:
        mean, m2 = self._fitted()
        return {
            "count": self.count.reshape(1).clone(),
            "mean": mean.clone(),
            "m2": m2.clone(),
            "min_std": torch.tensor([self.min_std], dtype=torch.float64),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> Self:
        missing = {"count", "mean", "m2", "min_std"} - state.keys()
        if missing:
            raise InvalidArgument(f"standardizer state lacks {sorted(missing)}")
        restored = cls(min_std=float(state["min_std"].reshape(()).item()))
        restored.count = state["count"].to(torch.float64).reshape(())
        restored.mean = state["mean"].to(torch.float64)
        restored.m2 = state["m2"].to(torch.float64)
        return restored


class DCTChannelNorm(_Standardizer):
    """Per-channel normalization of block-DCT inputs (Xu et al.): one mean/std per channel, pooled over
    samples and positions; statistics have shape (C, 1, 1)."""

    pooled_dims = (0, 2, 3)


class CoefficientStandardizer(_Standardizer):
    """Per-coefficient standardization of full-image log-DCT spectra (Frank et al.): one mean/std per
    (channel, u, v), pooled over samples; statistics have shape (C, H, W)."""

    pooled_dims = (0,)
