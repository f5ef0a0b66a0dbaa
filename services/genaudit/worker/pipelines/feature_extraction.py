"""feature_extraction: embed every image of a dataset in a feature space.

The dataset is embedded by ``embedding.embed_dataset`` (streamed, corrupt or oversize images recorded and
skipped; the job fails only when no image decodes). It does not read the feature cache: this job is the
one that always extracts.

Results go under ``keys.result_prefix(tenant, h)`` where ``h`` hashes the dataset's content (every image's
sha256, see ``dataset_content_hash``), the normalized spec and the extractor's preprocessing id: a rerun of
the same job (a redelivered message) writes the very same objects again.

- ``features.npy``: float32 (N, dim), one row per decoded image, in key order;
- ``index.json``: the image keys in row order, the failures with their reasons, space, dim, preprocessing id.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np

from genaudit.features import get_extractor
from genaudit.jobs import keys
from genaudit.jobs.models import Job
from genaudit.worker.context import JobProgress, WorkerContext
from genaudit.worker.pipelines.dataset_images import list_dataset_images
from genaudit.worker.pipelines.embedding import embed_dataset

FEATURES_FILE = "features.npy"
INDEX_FILE = "index.json"


def result_hash(dataset_hash: str, job: Job, preprocessing_id: str) -> str:
    identity = {"job_type": str(job.job_type), "spec": job.spec, "dataset": dataset_hash,
                "preprocessing_id": preprocessing_id}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _npy_bytes(features: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, features.astype(np.float32, copy=False), allow_pickle=False)
    return buffer.getvalue()


def run(job: Job, ctx: WorkerContext, progress: JobProgress) -> dict[str, str]:
    spec: dict[str, Any] = job.spec
    dataset_id = spec["dataset_id"]
    with progress.stage("list"):
        objects = list_dataset_images(ctx, job.tenant, dataset_id)
    total = len(objects)
    progress.report(0, total, "loading the feature extractor")
    progress.check_cancelled()
    with progress.stage("load_model"):
        extractor = get_extractor(spec["feature_space"], ctx.settings.device, settings=ctx.settings, store=ctx.store)

    embedded = embed_dataset(ctx, progress, extractor, job.tenant, dataset_id, objects, spec["batch_size"],
                             report=lambda done, message: progress.report(done, total, message))
    progress.check_cancelled()  # a cancelled job writes no results

    prefix = keys.result_prefix(job.tenant, result_hash(embedded.content_hash, job, extractor.preprocessing_id))
    index = {
        "dataset_id": dataset_id,
        "feature_space": extractor.name,
        "dim": extractor.dim,
        "preprocessing_id": extractor.preprocessing_id,
        "count": len(embedded.image_keys),
        "images": embedded.image_keys,
        "failures": embedded.failures,
    }
    result_keys = {"features": prefix + FEATURES_FILE, "index": prefix + INDEX_FILE}
    with progress.stage("write"):
        ctx.store.put_bytes(result_keys["features"], _npy_bytes(embedded.features))
        ctx.store.put_bytes(
            result_keys["index"], json.dumps(index, indent=2, sort_keys=True).encode(), content_type="application/json",
        )
    return result_keys
