"""What only the Redis record store (and the broker helpers) can show: several clients on one Redis,
key layout, pub/sub wake-ups across connections, queue depths, and Unavailable when Redis is down."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from genaudit.errors import Unavailable
from genaudit.jobs import RedisRecordStore
from genaudit.jobs.models import Job, JobState, JobType
from genaudit.settings import Settings
from genaudit.worker.celery_app import create_celery_app
from genaudit.worker.dispatch import CeleryDispatcher
from genaudit.worker.queues import queue_depths
from tests.fixtures.redis import free_port

pytestmark = pytest.mark.integration

FE = JobType.FEATURE_EXTRACTION
SPEC = {"dataset_id": "ds_1", "feature_space": "efficientnet-lite0", "batch_size": 64}


def test_idempotent_submissions_from_many_clients_create_one_job(redis_url: str) -> None:
    clients = [RedisRecordStore(redis_url) for _ in range(6)]  # as several gateway replicas would
    results: list[tuple[Job, bool]] = []
    barrier = threading.Barrier(len(clients) * 2)

    def submit(store: RedisRecordStore) -> None:
        barrier.wait()
        results.append(store.create_job("acme", FE, SPEC, idempotency_key="retry-42"))

    threads = [threading.Thread(target=submit, args=(c,)) for c in clients for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({job.id for job, _ in results}) == 1 and sum(created for _, created in results) == 1
    assert len(clients[0].list_jobs("acme")[0]) == 1


def test_concurrent_transitions_are_atomic(redis_url: str) -> None:
    """Many clients race to finish one job in different states: exactly one wins, the record is whole."""
    store = RedisRecordStore(redis_url)
    job, _ = store.create_job("acme", FE, SPEC)
    store.start_job(job.id)
    outcomes = [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED] * 3
    barrier = threading.Barrier(len(outcomes))

    def finish(state: JobState) -> None:
        barrier.wait()
        RedisRecordStore(redis_url).finish_job(job.id, state, error=str(state))

    threads = [threading.Thread(target=finish, args=(s,)) for s in outcomes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.load_job(job.id)
    assert final.state.terminal and final.error == str(final.state)
    assert final.version == job.version + 2  # started once, finished once


def test_every_key_is_prefixed(redis_url: str) -> None:
    store = RedisRecordStore(redis_url)
    job, _ = store.create_job("acme", FE, SPEC, idempotency_key="k")
    store.create_dataset("acme", "d")
    store.create_schedule("acme", "s", "* * * * *", FE, SPEC)
    store.start_job(job.id)
    all_keys = redis.Redis.from_url(redis_url, decode_responses=True).keys("*")
    assert len(all_keys) >= 7 and all(k.startswith("genaudit:") for k in all_keys)


def test_wait_for_change_is_woken_by_another_client(redis_url: str) -> None:
    watcher, worker = RedisRecordStore(redis_url), RedisRecordStore(redis_url)
    job, _ = watcher.create_job("acme", FE, SPEC)
    worker.start_job(job.id)
    running = watcher.get_job("acme", job.id)

    def report() -> None:
        time.sleep(0.4)
        worker.update_progress(job.id, 0.25, "a quarter")

    threading.Thread(target=report).start()
    started = time.monotonic()
    changed = watcher.wait_for_change("acme", job.id, running.version, timeout_s=20)
    assert changed.progress == 0.25 and changed.message == "a quarter"
    assert 0.3 < time.monotonic() - started < 3


def test_queue_depths_count_waiting_messages(redis_url: str) -> None:
    app = create_celery_app(Settings(redis_url=redis_url))
    dispatcher = CeleryDispatcher(app)  # no worker consumes this database
    client = redis.Redis.from_url(redis_url)
    assert queue_depths(client) == {"gpu": 0, "cpu": 0}
    store = RedisRecordStore(redis_url)
    for _ in range(3):
        dispatcher.submit(store.create_job("acme", FE, SPEC)[0])
    app.send_task("genaudit.run_schedule", args=["sch_x"], queue="cpu", priority=6)  # a non-default priority list
    assert queue_depths(client) == {"gpu": 3, "cpu": 1}
    assert client.llen("gpu") == 3  # the plain list is what kombu's Redis transport uses
    dispatcher.close()


def test_redis_down_is_unavailable() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    store = RedisRecordStore(dead)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        store.check()
    with pytest.raises(Unavailable):
        store.create_job("acme", FE, SPEC)
    with pytest.raises(Unavailable):
        store.wait_for_change("acme", "job_x", 0, 1)
    with pytest.raises(Unavailable):
        queue_depths(redis.Redis.from_url(dead, socket_connect_timeout=1))
    app = create_celery_app(Settings(redis_url=dead))
    job = Job(id="job_x", tenant="acme", job_type=FE, spec=SPEC)
    with pytest.raises(Unavailable):
        CeleryDispatcher(app).submit(job)
    assert time.monotonic() - started < 20
