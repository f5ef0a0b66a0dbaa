"""In-process record store for the embedded mode: dicts under one lock, a condition for waiters."""

from __future__ import annotations

import bisect
import copy
import threading
from typing import Any

from genaudit.jobs.base_store import JOB, BaseRecordStore, Mutation


class MemoryRecordStore(BaseRecordStore):
    """Thread-safe; records live as long as the process (the embedded mode's lifetime)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._records: dict[str, dict[str, dict[str, Any]]] = {}  # kind -> id -> record
        # kind -> tenant -> entries sorted ascending by (score, id); read back to front for newest first
        self._indexes: dict[str, dict[str, list[tuple[float, str]]]] = {}
        self._idempotency: dict[tuple[str, str], str] = {}  # (tenant, key) -> job id

    def __repr__(self) -> str:
        return "MemoryRecordStore()"

    def _insert(
        self, kind: str, record: dict[str, Any], idempotency: tuple[str, str] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        with self._lock:
            if idempotency is not None:
                claimed_by = self._idempotency.get(idempotency)
                if claimed_by is not None:
                    return copy.deepcopy(self._records[kind][claimed_by]), False
                self._idempotency[idempotency] = record["id"]
            self._records.setdefault(kind, {})[record["id"]] = copy.deepcopy(record)
            index = self._indexes.setdefault(kind, {}).setdefault(record["tenant"], [])
            bisect.insort(index, (record["created_at"], record["id"]))
            return copy.deepcopy(record), True

    def _get(self, kind: str, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._records.get(kind, {}).get(record_id)
            return copy.deepcopy(record) if record is not None else None

    def _get_many(self, kind: str, record_ids: list[str]) -> list[dict[str, Any] | None]:
        return [self._get(kind, record_id) for record_id in record_ids]

    def _update(self, kind: str, record_id: str, mutation: Mutation) -> dict[str, Any] | None:
        with self._lock:
            record = self._records.get(kind, {}).get(record_id)
            if record is None:
                return None
            changed = mutation(copy.deepcopy(record))
            if changed is None:
                return copy.deepcopy(record)
            self._records[kind][record_id] = copy.deepcopy(changed)
            if kind == JOB:
                self._changed.notify_all()
            return changed

    def _delete(self, kind: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.get(kind, {}).pop(record["id"], None)
            index = self._indexes.get(kind, {}).get(record["tenant"], [])
            entry = (record["created_at"], record["id"])
            position = bisect.bisect_left(index, entry)
            if position < len(index) and index[position] == entry:
                del index[position]

    def _index_range(
        self, kind: str, tenant: str, max_score: float | None, offset: int, count: int,
    ) -> list[tuple[str, float]]:
        with self._lock:
            index = self._indexes.get(kind, {}).get(tenant, [])
            end = len(index) if max_score is None else bisect.bisect_right(index, (max_score, "\U0010ffff"))
            newest_first = index[:end][::-1][offset:offset + count]
            return [(record_id, score) for score, record_id in newest_first]

    def _wait_job(self, job_id: str, after_version: int, timeout_s: float) -> None:
        with self._lock:
            record = self._records.get(JOB, {}).get(job_id)
            if record is not None and record["version"] <= after_version:
                self._changed.wait(timeout_s)

    def check(self) -> None:
        """Always available: the records live in this process."""
