"""What a running job gets: the per-process WorkerContext and a JobProgress for its own record."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from genaudit.errors import JobCancelled
from genaudit.jobs import RecordStore, open_record_store
from genaudit.jobs.models import Job
from genaudit.settings import Settings
from genaudit.storage import ObjectStore, open_store


@dataclass(frozen=True)
class WorkerContext:
    """Per worker process (or, embedded, shared with the gateway): settings and the two stores.

    Models are not part of it: pipelines load them lazily (and cache them per process), so building a
    context never touches CUDA.
    """

    settings: Settings
    records: RecordStore
    store: ObjectStore

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerContext:
        return cls(settings=settings, records=open_record_store(settings), store=open_store(settings))


class JobProgress:
    """Progress reports, cancellation checks and stage timings of one running job."""

    def __init__(self, records: RecordStore, job: Job, min_interval_s: float = 0.25) -> None:
        self._records = records
        self.job = job
        self._min_interval_s = min_interval_s
        self._last_report = float("-inf")
        self.timings: dict[str, float] = {}  # stage -> seconds, summed over the stage's spans

    def report(self, done: int, total: int, message: str = "") -> None:
        """Record ``done`` of ``total``; throttled to a few writes per second, the last one always kept."""
        now = time.monotonic()
        if done < total and now - self._last_report < self._min_interval_s:
            return
        self._last_report = now
        self._records.update_progress(self.job.id, done / total if total else 0.0, message)

    def check_cancelled(self) -> None:
        if self._records.cancel_requested(self.job.id):
            raise JobCancelled(f"job {self.job.id} was cancelled")

    def throttled_cancel_check(self, interval_s: float = 0.5) -> Callable[[], bool]:
        """A cancellation check for loops that call it every iteration (training steps): it reads the job record
        at most every ``interval_s`` (the first call always does) and raises JobCancelled like
        ``check_cancelled``; it returns False otherwise, as the science modules' ``check_cancelled`` expects."""
        last = float("-inf")

        def check() -> bool:
            nonlocal last
            now = time.monotonic()
            if now - last >= interval_s:
                last = now
                self.check_cancelled()
            return False

        return check

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a block as part of stage ``name`` (a bounded label such as "decode" or "extract")."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started
