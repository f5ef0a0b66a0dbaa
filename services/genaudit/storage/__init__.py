"""Object stores: S3/MinIO for the distributed mode, a local folder for the embedded one."""

from __future__ import annotations

from genaudit.settings import Settings
from genaudit.storage.base import ObjectInfo, ObjectStore
from genaudit.storage.local import LocalStore
from genaudit.storage.s3 import S3Store

__all__ = ["LocalStore", "ObjectInfo", "ObjectStore", "S3Store", "open_store"]


def open_store(settings: Settings) -> ObjectStore:
    """The S3 store when ``settings.s3_endpoint`` is set, else the local folder ``settings.store_dir``.

    Neither backend does I/O here; call ``check()`` to find out whether the store is usable.
    """
    if settings.s3_endpoint:
        return S3Store(settings)
    return LocalStore(settings.store_dir)
