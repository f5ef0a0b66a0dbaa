"""A process-wide cache of built networks that survives a fork correctly (the feature extractors use it).

Building a network means reading and verifying its weights file: once per process and key is enough. Prefork
workers fork after the parent may have built CPU networks; at the fork, a lock another thread held would stay
locked forever in the child, and CUDA state does not survive at all. So the child gets a fresh lock and keeps only
the CPU entries (copy-on-write memory); CUDA ones are rebuilt on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

import torch


class OnDevice(Protocol):
    device: torch.device


T = TypeVar("T", bound=OnDevice)


class ForkSafeModelCache(Generic[T]):
    def __init__(self) -> None:
        self._entries: dict[Hashable, T] = {}
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._after_fork_in_child)

    def get_or_build(self, key: Hashable, build: Callable[[], T]) -> T:
        """The entry of ``key``, built by ``build()`` (under the lock: one build per key) when missing."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = build()
            return entry

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        for key in [k for k, e in self._entries.items() if e.device.type != "cpu"]:
            del self._entries[key]
