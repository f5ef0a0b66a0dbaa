"""Celery queues (one enum, like the rest of the worker configuration) and their depths on the broker."""

from __future__ import annotations

import enum

import redis

from genaudit.errors import Unavailable

# kombu's Redis transport keeps a message of priority p in the list "<queue>" (p = 0) or
# "<queue>\x06\x16<p>" for the other priority steps; a queue's depth is the sum of its lists.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)


class Queue(enum.StrEnum):
    GPU = "gpu"  # model inference (runs on CPU where a worker has no GPU)
    CPU = "cpu"  # light work: schedules, statistics on stored features, reports


def _broker_lists(queue: Queue) -> list[str]:
    return [queue.value if p == 0 else f"{queue.value}{_PRIORITY_SEPARATOR}{p}" for p in _PRIORITY_STEPS]


def queue_depths(redis_client: redis.Redis) -> dict[str, int]:
    """Messages waiting in each queue (reserved, unacknowledged messages are not counted)."""
    try:
        with redis_client.pipeline(transaction=False) as pipe:
            for queue in Queue:
                for name in _broker_lists(queue):
                    pipe.llen(name)
            lengths = iter(pipe.execute())
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Unavailable(f"broker (Redis) unavailable: {exc}") from exc
    return {queue.value: sum(next(lengths) for _ in _PRIORITY_STEPS) for queue in Queue}
