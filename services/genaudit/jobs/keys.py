"""Object-store key layout. Every key of a tenant lives under ``tenants/<tenant>/``."""

from __future__ import annotations

import re

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def tenant_prefix(tenant: str) -> str:
    return f"tenants/{tenant}/"


def dataset_images_prefix(tenant: str, dataset_id: str) -> str:
    return f"tenants/{tenant}/datasets/{dataset_id}/images/"


def dataset_image_key(tenant: str, dataset_id: str, filename: str) -> str:
    return dataset_images_prefix(tenant, dataset_id) + filename


def job_prefix(tenant: str, job_id: str) -> str:
    return f"tenants/{tenant}/jobs/{job_id}/"


def job_manifest_key(tenant: str, job_id: str) -> str:
    return job_prefix(tenant, job_id) + "manifest.json"


def result_prefix(tenant: str, content_hash: str) -> str:
    """Results are content-addressed: a redelivered job writes the very same keys again."""
    return f"tenants/{tenant}/results/{content_hash}/"


def is_result_key_of(tenant: str, key: str) -> bool:
    """Whether ``key`` names an object under the tenant's results (a model card a detect job may load): a
    key of another tenant, or with ``..`` or empty segments, is not."""
    prefix = tenant_prefix(tenant) + "results/"
    segments = key.split("/")
    return key.startswith(prefix) and all(s and s not in {".", ".."} for s in segments)


def feature_cache_prefix(tenant: str) -> str:
    """Cached feature arrays of a tenant's datasets (``genaudit.features.FeatureCache``), keyed by content:
    a reference set embedded once serves every later job of the tenant."""
    return f"tenants/{tenant}/feature-cache/"


def is_safe_filename(name: str) -> bool:
    """One path segment of letters, digits, '.', '_' and '-', not starting with a dot."""
    return bool(_SAFE_NAME.match(name)) and ".." not in name
