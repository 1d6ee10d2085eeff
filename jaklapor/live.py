"""Live streams' wake-ups within one process: a stream subscribes to a key (a report, an OPD), whoever changes what
the key names wakes its streams, and each stream re-reads its store. Holds no data.

Several replicas of a service each have their own hub; a change made in another replica reaches this one through a
broadcast queue (jaklapor.messaging.broadcast_consumer) whose handler calls `wake`, and streams re-read their store
periodically anyway (a wake-up can be lost).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import eventlet
from eventlet.queue import LightQueue
from nameko.extensions import DependencyProvider


class TooManyStreams(Exception):
    """The key already has as many streams in this process as allowed."""


class LiveHub:
    """Wakes the live streams of this process that follow a key; `max_per_key` (0: no cap) bounds a key's streams."""

    def __init__(self, max_per_key: int = 0) -> None:
        self.max_per_key = max_per_key
        self._subscribers: dict[str, set[LightQueue]] = defaultdict(set)
        self._lock = threading.Lock()

    def subscribe(self, key: str) -> LightQueue:
        """A queue that receives a wake-up whenever `key` is woken; TooManyStreams if the key has its share."""
        queue: LightQueue = LightQueue(maxsize=1)
        with self._lock:
            subscribers = self._subscribers[key]
            if self.max_per_key and len(subscribers) >= self.max_per_key:
                if not subscribers:
                    del self._subscribers[key]
                raise TooManyStreams(key)
            subscribers.add(queue)
        return queue

    def unsubscribe(self, key: str, queue: LightQueue) -> None:
        with self._lock:
            subscribers = self._subscribers.get(key)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[key]

    def streams(self, key: str) -> int:
        with self._lock:
            return len(self._subscribers.get(key, ()))

    def wake(self, key: str) -> None:
        with self._lock:
            subscribers = list(self._subscribers.get(key, ()))
        for queue in subscribers:
            try:
                queue.put_nowait(True)
            except eventlet.queue.Full:
                pass

    def wake_all(self, keys: Iterable[str]) -> None:
        for key in set(keys):
            self.wake(key)

    def wake_later(self, keys: Iterable[str], seconds: float) -> None:
        """Wake `keys` again in a moment: for a change this process heard of before it is stored (another replica
        may still be writing it)."""
        eventlet.spawn_after(seconds, self.wake_all, list(keys))


class LiveStreams(DependencyProvider):
    """The process's hub for a service's streams; `max_per_key` as in LiveHub."""

    def __init__(self, max_per_key: int = 0) -> None:
        self.max_per_key = max_per_key

    def setup(self) -> None:
        self.hub = LiveHub(self.max_per_key)

    def get_dependency(self, worker_ctx: Any) -> LiveHub:
        return self.hub
