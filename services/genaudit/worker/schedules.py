"""Scheduled audits: a cron schedule creates a job of a fixed type and spec.

Distributed mode: each schedule is a RedBeat entry in Redis (task ``genaudit.run_schedule``, args
``[schedule_id]``); celery beat with the Redis-locked RedBeat scheduler fires it, so several beat
replicas never run at once. Embedded mode: a thread of this process checks the schedules every few
seconds. Either way a firing goes through ``submit_scheduled_job``, whose idempotency key (schedule id
and scheduled minute) makes a double firing create one job.

Cron expressions have five fields ("m h dom mon dow") in UTC, with celery's crontab semantics (a day
must match both day-of-month and day-of-week).
"""

from __future__ import annotations

import builtins
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from celery.schedules import crontab
from redbeat import RedBeatSchedulerEntry

from genaudit.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from genaudit.jobs.models import Job, JobState, JobType, Schedule
from genaudit.jobs.specs import validate_spec
from genaudit.jobs.store import RecordStore
from genaudit.settings import Settings
from genaudit.telemetry.metrics import JOBS_SUBMITTED
from genaudit.worker.celery_app import RUN_SCHEDULE, create_celery_app
from genaudit.worker.dispatch import Dispatcher
from genaudit.worker.queues import Queue

logger = logging.getLogger(__name__)

EMBEDDED_POLL_INTERVAL_S = 15.0
_MAX_CATCH_UP = timedelta(hours=1)  # after a long pause, the embedded scheduler fires once, not per minute


def parse_cron(cron: str) -> crontab:
    """A five-field cron expression as a celery crontab; InvalidArgument when malformed."""
    fields = cron.split() if isinstance(cron, str) else []
    if len(fields) != 5:
        raise InvalidArgument(f"cron {cron!r} must have five fields: minute hour day-of-month month day-of-week")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                       day_of_week=day_of_week)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"invalid cron {cron!r}: {exc}") from exc


def cron_matches(schedule: crontab, minute: datetime) -> bool:
    """Whether ``schedule`` fires in the UTC minute ``minute``."""
    return (minute.minute in schedule.minute and minute.hour in schedule.hour
            and minute.day in schedule.day_of_month and minute.month in schedule.month_of_year
            and minute.isoweekday() % 7 in schedule.day_of_week)


def _minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def submit_scheduled_job(
    records: RecordStore, dispatcher: Dispatcher, schedule_id: str, scheduled_for: datetime | None = None,
) -> Job | None:
    """Create and dispatch the job of one firing of a schedule (once per scheduled minute).

    Returns the job (the existing one when this minute already fired), None for a deleted schedule.
    """
    try:
        schedule = records.load_schedule(schedule_id)
    except NotFound:
        logger.warning("schedule %s fired but no longer exists", schedule_id)
        return None
    minute = _minute_of(scheduled_for or datetime.now(UTC))
    job, created = records.create_job(
        schedule.tenant, schedule.job_type, schedule.spec,
        idempotency_key=f"schedule:{schedule.id}:{minute:%Y%m%dT%H%MZ}", schedule_id=schedule.id,
    )
    if not created:
        logger.info("schedule %s already fired for %s: job %s", schedule_id, minute, job.id)
        return job
    JOBS_SUBMITTED.labels(job_type=str(job.job_type)).inc()
    try:
        dispatcher.submit(job)
    except Unavailable as exc:
        records.finish_job(job.id, JobState.FAILED, error=f"could not be queued: {exc.message}")
        raise
    logger.info("schedule %s fired for %s: job %s", schedule_id, minute, job.id, extra={"job_id": job.id})
    return job


class _EmbeddedScheduler:
    """Checks the schedules created in this process every ``interval_s`` seconds, in a daemon thread."""

    def __init__(self, records: RecordStore, dispatcher: Dispatcher, interval_s: float) -> None:
        self._records = records
        self._dispatcher = dispatcher
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._last_checked: dict[str, datetime] = {}  # schedule id -> last minute already considered
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="genaudit-schedules", daemon=True)
        self._thread.start()

    def add(self, schedule_id: str) -> None:
        with self._lock:
            self._last_checked[schedule_id] = _minute_of(datetime.now(UTC))

    def remove(self, schedule_id: str) -> None:
        with self._lock:
            self._last_checked.pop(schedule_id, None)

    def run_due(self, now: datetime) -> list[Job]:
        """Fire every schedule with a matching minute after its last check, up to ``now``."""
        current = _minute_of(now)
        with self._lock:
            pending = dict(self._last_checked)
        fired = []
        for schedule_id, last in pending.items():
            try:
                cron = parse_cron(self._records.load_schedule(schedule_id).cron)
            except NotFound:
                self.remove(schedule_id)
                continue
            minute, due = max(last, current - _MAX_CATCH_UP), None
            while minute < current:
                minute += timedelta(minutes=1)
                if cron_matches(cron, minute):
                    due = minute
            with self._lock:
                if schedule_id in self._last_checked:
                    self._last_checked[schedule_id] = current
            if due is not None:
                job = submit_scheduled_job(self._records, self._dispatcher, schedule_id, due)
                fired.extend([job] if job else [])
        return fired

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.run_due(datetime.now(UTC))
            except Exception:
                logger.exception("embedded scheduler tick failed")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class ScheduleService:
    """Create, list and delete schedules of a tenant, and have them fired.

    Distributed mode: schedules are RedBeat entries fired by ``genaudit beat``. Embedded mode needs the
    ``dispatcher`` that runs jobs in this process; without one, ``create`` raises FailedPrecondition.
    """

    def __init__(
        self, settings: Settings, records: RecordStore, dispatcher: Dispatcher | None = None,
        poll_interval_s: float = EMBEDDED_POLL_INTERVAL_S,
    ) -> None:
        self._settings = settings
        self._records = records
        self._app = None if settings.embedded else create_celery_app(settings)
        self.embedded_scheduler = (
            _EmbeddedScheduler(records, dispatcher, poll_interval_s)
            if settings.embedded and dispatcher is not None else None
        )

    def _entry(self, schedule: Schedule) -> RedBeatSchedulerEntry:
        return RedBeatSchedulerEntry(
            name=schedule.id, task=RUN_SCHEDULE, schedule=parse_cron(schedule.cron), args=[schedule.id],
            options={"queue": Queue.CPU.value}, app=self._app,
        )

    def create(self, tenant: str, name: str, cron: str, job_type: JobType, spec: dict[str, Any]) -> Schedule:
        parse_cron(cron)
        spec = validate_spec(job_type, spec)
        if self._app is None and self.embedded_scheduler is None:
            raise FailedPrecondition("schedules need a running worker: start the gateway with an in-process "
                                     "worker (genaudit serve --embedded) or use Redis and celery beat")
        schedule = self._records.create_schedule(tenant, name, " ".join(cron.split()), job_type, spec)
        if self.embedded_scheduler is not None:
            self.embedded_scheduler.add(schedule.id)
            return schedule
        try:
            self._entry(schedule).save()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._records.delete_schedule(tenant, schedule.id)
            raise Unavailable(f"cannot save the schedule in Redis: {exc}") from exc
        return schedule

    def list(self, tenant: str) -> builtins.list[Schedule]:
        return self._records.list_schedules(tenant)

    def delete(self, tenant: str, schedule_id: str) -> None:
        schedule = self._records.get_schedule(tenant, schedule_id)  # NotFound for another tenant's id
        if self.embedded_scheduler is not None:
            self.embedded_scheduler.remove(schedule.id)
        if self._app is not None:
            try:
                self._entry(schedule).delete()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                raise Unavailable(f"cannot delete the schedule in Redis: {exc}") from exc
        self._records.delete_schedule(tenant, schedule.id)

    def close(self) -> None:
        if self.embedded_scheduler is not None:
            self.embedded_scheduler.close()
        if self._app is not None:
            self._app.close()
