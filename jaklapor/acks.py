"""Acknowledging a consumer channel's finished deliveries together instead of one `basic.ack` each.

Each ack costs the broker a quorum-queue log entry and the consumer a system call; one `basic.ack` with
`multiple=True` settles every delivery up to its tag at once (bench/bench_broker_floor.py measures the difference).
Still, a delivery is acknowledged only after its handler finished, never before:

- a multiple ack goes up to the newest finished delivery below the oldest delivery not yet settled (still being
  handled, or never seen here), so it cannot cover a message that was not handled;
- its tag is one not yet acknowledged (the broker refuses a multiple ack naming a settled tag and closes the channel);
- finished deliveries above that point are acked one by one, so no ack waits longer than `max_delay`.

An ack lost with a crash in between means a redelivery, which every handler already treats as a duplicate.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import eventlet
from amqp.exceptions import AMQPError
from kombu.exceptions import KombuError

log = logging.getLogger(__name__)

ACK_BATCH = 10  # finished deliveries that trigger an ack at once
ACK_DELAY = 0.02  # seconds a finished delivery waits at most for others to share its ack
# settled tags remembered above a gap (a delivery that never reached a handler, e.g. rejected by the client
# library after its consumer was cancelled); past this, the channel's acks simply go one by one
MAX_REMEMBERED = 5000


class AckBatcher:
    """The acks of one consumer connection's channel (nameko's QueueConsumer uses one channel for all its queues).

    `finished` queues an ack for a handled message; `settled` records a message requeued or rejected on its own.
    Delivery tags count up from 1 per channel; a new channel (after a reconnect) starts afresh, and the old one's
    unacknowledged deliveries are back in their queues already."""

    def __init__(self, max_batch: int = ACK_BATCH, max_delay: float = ACK_DELAY) -> None:
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._lock = threading.Lock()  # flushes go out in order: a multiple ack must not follow a later one
        self._channel: Any = None
        self._through = 0  # every delivery up to this tag is settled
        self._settled: set[int] = set()  # settled (or about to be acked) above `_through`
        self._to_ack: set[int] = set()  # finished, not acknowledged yet
        self._one_by_one = False
        self._timer: Any = None

    def finished(self, message: Any) -> bool:
        """Queue the ack of a handled message; False if it came on a channel that is closed now (nothing to ack:
        the broker took it back)."""
        if not self._current(message):
            return False
        tag = message.delivery_tag
        self._settled.add(tag)
        self._to_ack.add(tag)
        if len(self._to_ack) >= self.max_batch:
            self.flush()
        elif self._timer is None:
            self._timer = eventlet.spawn_after(self.max_delay, self._flush_due)
        return True

    def finished_many(self, messages: list[Any]) -> None:
        """Acknowledge a handled batch now: one `basic.ack` with `multiple` where the tags allow it."""
        for message in messages:
            if self._current(message):
                self._settled.add(message.delivery_tag)
                self._to_ack.add(message.delivery_tag)
        self.flush()

    def settled(self, message: Any) -> None:
        if self._current(message):
            self._settled.add(message.delivery_tag)

    def _current(self, message: Any) -> bool:
        if message.channel is self._channel:
            return True
        if not message.channel.connection:
            return False
        # the consumer reconnected: what the old channel has finished is acked on it (a no-op if it is closed)
        with self._lock:
            old = self._take()
            self._channel = message.channel
            self._through, self._one_by_one = 0, False
            self._settled.clear()
            self._to_ack.clear()
            self._send(*old)
        return True

    def _flush_due(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Acknowledge every finished delivery now (at shutdown, and when a batch is full or due)."""
        with self._lock:
            self._send(*self._take())

    def _take(self) -> tuple[Any, list[int], list[int]]:
        """The acks to send now: up to which tag one multiple ack covers, and the tags to ack one by one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        to_ack, self._to_ack = self._to_ack, set()
        through = self._through
        while through + 1 in self._settled:
            through += 1
        self._settled = {tag for tag in self._settled if tag > through}
        self._through = through
        if len(self._settled) > MAX_REMEMBERED:
            self._one_by_one = True
        covered = [] if self._one_by_one else [tag for tag in to_ack if tag <= through]
        singles = sorted(set(to_ack) - set(covered))
        return self._channel, covered, singles

    @staticmethod
    def _send(channel: Any, covered: list[int], singles: list[int]) -> None:
        if channel is None or not channel.connection or not (covered or singles):
            return  # a closed channel's deliveries went back to their queues with it: they come again
        try:
            if covered:
                channel.basic_ack(max(covered), multiple=True)
            for tag in singles:
                channel.basic_ack(tag)
        except (AMQPError, KombuError, OSError) as exc:
            log.warning("could not acknowledge deliveries (the broker will redeliver them): %r", exc)
