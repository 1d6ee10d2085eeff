"""Rate limiting of anonymous submissions: a token bucket per client, with no I/O (the clock is injected).

Each gateway replica limits on its own; the limit a client sees is per replica. Buckets of idle clients are
forgotten once full, and the table is capped, so a flood of spoofed sources cannot exhaust memory.
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


def client_address(remote_addr: str | None, forwarded_for: str | None, trusted_hops: int) -> str:
    """The client's address: the peer, or the entry `trusted_hops` from the right of X-Forwarded-For when that many
    trusted proxies sit in front of the gateway (entries further left are client-supplied and can be forged)."""
    if trusted_hops > 0 and forwarded_for:
        hops = [part.strip() for part in forwarded_for.split(",") if part.strip()]
        if len(hops) >= trusted_hops:
            return hops[-trusted_hops]
    return remote_addr or "unknown"
