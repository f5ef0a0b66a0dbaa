"""What a pipeline's summary says about its input datasets: display names and per-dataset records."""

from __future__ import annotations

from typing import Any

from genaudit.worker.context import WorkerContext
from genaudit.worker.pipelines.embedding import EmbeddedDataset


def display_names(ctx: WorkerContext, tenant: str, dataset_ids: list[str]) -> dict[str, str]:
    """Dataset id -> its record's name, made unique with the id where two datasets share a name."""
    names = {dataset_id: ctx.records.get_dataset(tenant, dataset_id).name for dataset_id in dataset_ids}
    taken = list(names.values())
    return {d: name if taken.count(name) == 1 else f"{name} ({d})" for d, name in names.items()}


def dataset_record(name: str, embedded: EmbeddedDataset) -> dict[str, Any]:
    """The summary's entry of one embedded dataset: counts, skipped images with their reasons, content hash and
    feature-cache use."""
    return {
        "dataset_id": embedded.dataset_id,
        "name": name,
        "n_listed": embedded.listed,
        "n_images": len(embedded.image_keys),
        "n_failed": len(embedded.failures),
        "failures": embedded.failures,
        "content_hash": embedded.content_hash,
        "feature_cache": {"key": embedded.cache_key, "hit": embedded.cache_hit},
    }
