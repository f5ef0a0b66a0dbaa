"""Jobs, datasets and schedules: records, their stores, specs and manifests."""

from __future__ import annotations

from genaudit.jobs.memory_store import MemoryRecordStore
from genaudit.jobs.redis_store import RedisRecordStore
from genaudit.jobs.store import RecordStore
from genaudit.settings import Settings

__all__ = ["MemoryRecordStore", "RecordStore", "RedisRecordStore", "open_record_store"]


def open_record_store(settings: Settings) -> RecordStore:
    """Redis when ``settings.redis_url`` is set (distributed mode), else in-process (embedded mode).

    No I/O here; call ``check()`` to find out whether the store is reachable.
    """
    if settings.redis_url:
        return RedisRecordStore(settings.redis_url)
    return MemoryRecordStore()
