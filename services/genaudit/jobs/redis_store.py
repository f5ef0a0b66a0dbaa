"""Redis record store for the distributed mode.

Layout (every key starts with ``genaudit:``):

- ``genaudit:<kind>:<id>``: the record as a JSON string (kind: job, dataset, schedule);
- ``genaudit:idx:<kind>:<tenant>``: sorted set of the tenant's ids scored by created_at (listing, paging);
- ``genaudit:idem:<tenant>:<sha256 of key>``: the job id that claimed an idempotency key;
- ``genaudit:changed:job:<id>``: pub/sub channel announcing a job's new version.

Creation is one Lua script (claim the idempotency key with SET NX, write the record, index it), so two
concurrent submissions with the same key create exactly one job and the loser always finds the winner's
record. Updates are optimistic WATCH/MULTI transactions that publish the new version in the same MULTI.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import redis

from genaudit.errors import Unavailable
from genaudit.jobs.base_store import JOB, BaseRecordStore, Mutation

PREFIX = "genaudit:"
_CONNECT_TIMEOUT_S = 2.0
_SOCKET_TIMEOUT_S = 5.0

# KEYS: idempotency key ("" when none), record key, index key. ARGV: id, record JSON, score.
# Returns {1, record} when created, {0, id of the job that holds the key} otherwise.
_INSERT_SCRIPT = """
if KEYS[1] ~= '' then
  if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then
    return {0, redis.call('GET', KEYS[1])}
  end
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return {1, ARGV[2]}
"""

P = ParamSpec("P")
R = TypeVar("R")


def _unavailable_on_connection_error(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise Unavailable(f"record store (Redis) unavailable: {exc}") from exc

    return wrapper


def _record_key(kind: str, record_id: str) -> str:
    return f"{PREFIX}{kind}:{record_id}"


def _index_key(kind: str, tenant: str) -> str:
    return f"{PREFIX}idx:{kind}:{tenant}"


def _idempotency_key(tenant: str, key: str) -> str:
    return f"{PREFIX}idem:{tenant}:{hashlib.sha256(key.encode()).hexdigest()}"


def job_channel(job_id: str) -> str:
    return f"{PREFIX}changed:job:{job_id}"


class RedisRecordStore(BaseRecordStore):
    def __init__(self, url: str) -> None:
        self._url = url
        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=_CONNECT_TIMEOUT_S, socket_timeout=_SOCKET_TIMEOUT_S,
            health_check_interval=30, decode_responses=True,
        )
        self._insert_script = self._redis.register_script(_INSERT_SCRIPT)

    def __repr__(self) -> str:
        return f"RedisRecordStore({self._redis.connection_pool.connection_kwargs.get('host')!r})"

    @_unavailable_on_connection_error
    def _insert(
        self, kind: str, record: dict[str, Any], idempotency: tuple[str, str] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        claim = _idempotency_key(*idempotency) if idempotency else ""
        created, value = self._insert_script(
            keys=[claim, _record_key(kind, record["id"]), _index_key(kind, record["tenant"])],
            args=[record["id"], json.dumps(record), repr(float(record["created_at"]))],
        )
        if created:
            return json.loads(value), True
        existing = self._get(kind, value)
        if existing is None:  # the claim outlived its record (e.g. a partial restore of Redis)
            raise Unavailable(f"idempotency key points at missing {kind} {value!r}")
        return existing, False

    @_unavailable_on_connection_error
    def _get(self, kind: str, record_id: str) -> dict[str, Any] | None:
        raw = self._redis.get(_record_key(kind, record_id))
        return json.loads(raw) if raw is not None else None

    @_unavailable_on_connection_error
    def _get_many(self, kind: str, record_ids: list[str]) -> list[dict[str, Any] | None]:
        if not record_ids:
            return []
        raws = self._redis.mget([_record_key(kind, i) for i in record_ids])
        return [json.loads(raw) if raw is not None else None for raw in raws]

    @_unavailable_on_connection_error
    def _update(self, kind: str, record_id: str, mutation: Mutation) -> dict[str, Any] | None:
        key = _record_key(kind, record_id)
        outcome: dict[str, dict[str, Any] | None] = {}

        def transaction(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(key)
            if raw is None:
                outcome["record"] = None
                return
            record = json.loads(raw)
            changed = mutation(record)
            outcome["record"] = changed if changed is not None else record
            if changed is None:
                return
            pipe.multi()
            pipe.set(key, json.dumps(changed))
            if kind == JOB:
                pipe.publish(job_channel(record_id), str(changed["version"]))

        self._redis.transaction(transaction, key)
        return outcome["record"]

    @_unavailable_on_connection_error
    def _delete(self, kind: str, record: dict[str, Any]) -> None:
        with self._redis.pipeline() as pipe:
            pipe.delete(_record_key(kind, record["id"]))
            pipe.zrem(_index_key(kind, record["tenant"]), record["id"])
            pipe.execute()

    @_unavailable_on_connection_error
    def _index_range(
        self, kind: str, tenant: str, max_score: float | None, offset: int, count: int,
    ) -> list[tuple[str, float]]:
        entries = self._redis.zrevrangebyscore(
            _index_key(kind, tenant), "+inf" if max_score is None else repr(max_score), "-inf",
            start=offset, num=count, withscores=True,
        )
        return [(record_id, float(score)) for record_id, score in entries]

    @_unavailable_on_connection_error
    def _wait_job(self, job_id: str, after_version: int, timeout_s: float) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(job_channel(job_id))
            # A change between the caller's read and our subscription would be missed: re-read first.
            current = self._get(JOB, job_id)
            if current is None or current["version"] > after_version:
                return
            deadline = time.monotonic() + timeout_s
            while (remaining := deadline - time.monotonic()) > 0:
                if pubsub.get_message(timeout=remaining) is not None:  # None: subscribe ack or timeout
                    return
        finally:
            pubsub.close()

    @_unavailable_on_connection_error
    def check(self) -> None:
        self._redis.ping()
