"""Rate limiting per client, with no I/O (the clock is injected): a token bucket for anonymous submissions, and a
growing delay after repeated wrong OPD keys (`FailureThrottle`).

Each gateway replica limits on its own; the limit a client sees is per replica. Buckets of idle clients are
forgotten once full, and the tables are capped, so a flood of spoofed sources cannot exhaust memory.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # whole seconds until one more request would be allowed (0 if allowed)


class RateLimiter:
    def __init__(
        self,
        burst: int,
        per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.burst > 0 and self.rate > 0

    def take(self, client: str) -> Verdict:
        if not self.enabled:
            return Verdict(True, 0)
        now = self.clock()
        bucket = self._buckets.pop(client, None)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        self._buckets[client] = bucket  # most recently used last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return Verdict(True, 0)
        return Verdict(False, max(1, math.ceil((1.0 - bucket.tokens) / self.rate)))


@dataclass
class _Failures:
    count: int
    last: float


class FailureThrottle:
    """Slows down guessing: a client may fail `free` times; each further failure doubles the wait before it may try
    again (1 s, 2 s, 4 s, ... up to `max_wait`). A success clears the client's record; a record is forgotten
    `forget_after` seconds after its last failure."""

    def __init__(
        self,
        free: int = 5,
        max_wait: float = 900.0,
        forget_after: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        self.free = free
        self.max_wait = max_wait
        self.forget_after = forget_after
        self.clock = clock
        self.max_clients = max_clients
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def _record(self, client: str, now: float) -> _Failures | None:
        record = self._failures.get(client)
        if record is not None and now - record.last > self.forget_after:
            del self._failures[client]
            return None
        return record

    def wait(self, failures: int) -> float:
        """Seconds a client must wait after its `failures`-th failure before trying again."""
        if failures < self.free:
            return 0.0
        return min(float(2 ** min(failures - self.free, 30)), self.max_wait)

    def retry_after(self, client: str) -> int:
        """Whole seconds until `client` may try a key again (0: now)."""
        now = self.clock()
        record = self._record(client, now)
        if record is None:
            return 0
        remaining = record.last + self.wait(record.count) - now
        return math.ceil(remaining) if remaining > 0 else 0

    def failed(self, client: str) -> int:
        """Count a wrong key; returns the seconds until the client may try again."""
        now = self.clock()
        record = self._record(client, now) or _Failures(0, now)
        record.count += 1
        record.last = now
        self._failures.pop(client, None)
        self._failures[client] = record  # most recent last
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)
        return math.ceil(self.wait(record.count))

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


def client_address(remote_addr: str | None, forwarded_for: str | None, trusted_hops: int) -> str:
    """The client's address: the peer, or the entry `trusted_hops` from the right of X-Forwarded-For when that many
    trusted proxies sit in front of the gateway (entries further left are client-supplied and can be forged)."""
    if trusted_hops > 0 and forwarded_for:
        hops = [part.strip() for part in forwarded_for.split(",") if part.strip()]
        if len(hops) >= trusted_hops:
            return hops[-trusted_hops]
    return remote_addr or "unknown"
