"""The JSON manifest written next to a job's results, so that results outlive the record store."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import time
from dataclasses import replace
from typing import Any

from genaudit.jobs import keys
from genaudit.jobs.models import Job, JobState
from genaudit.storage.base import ObjectStore

MANIFEST_VERSION = 1
_VERSIONED_PACKAGES = ("genaudit", "numpy", "pillow", "torch", "torchvision", "celery")


def software_versions() -> dict[str, str]:
    """Versions of the packages that decide results (read from metadata: nothing is imported)."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def build_manifest(job: Job, result_keys: dict[str, str], timings_s: dict[str, float]) -> dict[str, Any]:
    """The manifest of a job that succeeded with ``result_keys``; its record is shown in that final form."""
    final = replace(job, state=JobState.SUCCEEDED, progress=1.0, result_keys=dict(result_keys),
                    finished_at=time.time())
    return {
        "manifest_version": MANIFEST_VERSION,
        "job": final.to_dict(),
        "result_keys": dict(result_keys),
        "timings_s": {stage: round(seconds, 6) for stage, seconds in timings_s.items()},
        "versions": software_versions(),
    }


def write_manifest(
    store: ObjectStore, job: Job, result_keys: dict[str, str], timings_s: dict[str, float],
) -> dict[str, str]:
    """Write the manifest at ``keys.job_manifest_key``; returns ``result_keys`` plus "manifest" (its key)."""
    key = keys.job_manifest_key(job.tenant, job.id)
    all_keys = {**result_keys, "manifest": key}
    body = json.dumps(build_manifest(job, all_keys, timings_s), indent=2, sort_keys=True)
    store.put_bytes(key, body.encode(), content_type="application/json")
    return all_keys


def read_manifest(store: ObjectStore, tenant: str, job_id: str) -> dict[str, Any]:
    """The manifest of a finished job; NotFound when the job has none (not finished, or not successful)."""
    return json.loads(store.get_bytes(keys.job_manifest_key(tenant, job_id)))
