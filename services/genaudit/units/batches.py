"""Seeded latents and the batch loop every unit analysis runs (progress and cancellation between batches)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from genaudit.errors import FailedPrecondition, InvalidArgument, JobCancelled
from genaudit.generators.base import Generator

# Called with (samples done, samples in all) after each batch.
Progress = Callable[[int, int], None]
# Called before each batch; aborts the run by raising (e.g. a job context's ``check_cancelled`` raises
# JobCancelled) or by returning True.
CancelCheck = Callable[[], bool | None]


def require_eval_mode(generator: Generator) -> None:
    """Unit analyses need eval mode: batch norm on its running statistics, so that a sample's activations do
    not depend on the other samples of its batch."""
    if generator.training:
        raise FailedPrecondition("the generator is in training mode; call .eval() so that batch norm uses its "
                                 "running statistics and samples do not depend on their batch")


def seeded_latents(generator: Generator, n: int, seed: int) -> torch.Tensor:
    """The ``n`` latents of ``seed``, drawn at once as ``generators.sampling.sample_images`` draws them, so that
    sample i of an analysis is image i of ``sample_images(generator, n, seed)``."""
    if n < 1:
        raise InvalidArgument(f"the number of samples must be at least 1, got {n}")
    return generator.sample_latents(n, torch.Generator().manual_seed(seed))


def latent_batches(
    latents: torch.Tensor,
    batch_size: int,
    progress: Progress | None = None,
    check_cancelled: CancelCheck | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """(start index, latents[start:start + batch_size]) in order; ``check_cancelled`` runs before each batch,
    ``progress`` after the caller has processed it."""
    if batch_size < 1:
        raise InvalidArgument(f"batch_size must be at least 1, got {batch_size}")
    total = latents.shape[0]
    for start in range(0, total, batch_size):
        if check_cancelled is not None and check_cancelled():
            raise JobCancelled("unit analysis cancelled")
        yield start, latents[start:start + batch_size]
        if progress is not None:
            progress(min(start + batch_size, total), total)
