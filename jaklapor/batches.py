"""A work-queue consumer that hands a worker every message waiting, not one message per worker.

Each message a service handles costs a nameko worker, a store round trip or two and an ack, whatever its own logic
costs (docs/performance.md, issue 19: notify and stats spent 2.5 ms per message of which their code was 0.2 ms).
`@batch_consumer(queue)` decorates `handler(self, bodies: list[dict]) -> None`; the handler reads and writes the
whole batch in a few store operations (`find` with `$in`, one `bulk_write`) and the batch is acknowledged with one
`basic.ack`.

How batches form: at most `concurrency` batches are handled at once; a message arriving while they run waits, and
the next batch takes every message waiting (up to `max_batch`). Under a backlog the batches grow by themselves.
Below it, when the consumers keep up, each message would be a batch of its own and pay the whole per-message cost;
`linger` (seconds) lets a batch that is not full wait for company until its oldest message has waited that long. It
is latency traded for CPU, chosen per consumer: nothing on the way to an OPD's queue lingers long (routing: 20 ms;
intake's outbox relay before it, OUTBOX_RELAY_LINGER, 50 ms and only while reports keep coming), nor intake's
record of where a report went (an OPD acts on it through intake as soon as its queue has it: no linger); the
timeline and the statistics may (notify, stats: 250 ms; a citizen does not see a quarter of a second). A full
batch never waits.

Guarantees are the work queue's (jaklapor/messaging.py): a message is acknowledged only after the handler returned
for a batch holding it. If the handler raises, each message of the batch is handled again on its own, so one bad
message never sends its neighbours to the dead-letter queue; a message that fails on its own is requeued (and
dead-lettered past the delivery limit) or, on a PermanentFailure, dead-lettered at once. Handlers are idempotent
per message, as for a redelivery: a batch that failed half-way may be partly applied already.

An event pack (jaklapor/messaging.py, "event packs") hands the handler each of its events as a body of its own,
and counts as that many messages in a batch. A pack that fails on its own is taken apart: its events are put back
on the queue one message each (confirmed by the broker before the pack is acknowledged), so each then succeeds, is
retried or is dead-lettered alone, as if it had come alone.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Iterable
from functools import partial
from typing import Any

import eventlet
from kombu import Queue
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import Entrypoint

from jaklapor.messaging import (
    ConfirmedPublisher,
    Outgoing,
    PublishFailed,
    RejectingQueueConsumer,
    broadcast_queue,
    declare_with_dead_letters,
    settle_handled,
    start_consumer_series,
    unpacked,
)
from jaklapor.metrics import consumer_metrics

log = logging.getLogger(__name__)

MAX_BATCH = 100  # messages handed to one worker at most
CONCURRENCY = 2  # batches of one queue handled at once (one waits on the store or broker while another computes)
LINGER = 0.0  # seconds a batch that is not full may wait for more messages (see above)
ON_THE_WAY_TO_OPD = 0.02  # the linger of a consumer every report passes before its OPD's queue (routing)
RECORDING = 0.25  # the linger of consumers that record what happened for people to read (timeline, statistics)


class BatchQueueConsumer(RejectingQueueConsumer):
    """The queue consumer of batch entrypoints: its own channel, with a prefetch that leaves room for full batches
    in flight and a full batch waiting (nameko applies the prefetch per consumer)."""

    @property
    def prefetch_count(self) -> int:
        return MAX_BATCH * (CONCURRENCY + 1)


class BatchConsumer(Entrypoint):
    queue_consumer = BatchQueueConsumer()
    takes_packs_apart = True  # a failed pack's events go back on the queue one by one (a durable work queue)

    def __init__(
        self,
        queue: Queue,
        max_batch: int = MAX_BATCH,
        concurrency: int = CONCURRENCY,
        linger: float = LINGER,
        **kwargs: Any,
    ):
        self.queue = queue
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.linger = linger
        self._waiting: deque[tuple[Any, Any]] = deque()  # (body, message) not handed to a worker yet
        self._arrived: deque[float] = deque()  # when each waiting message arrived (monotonic seconds)
        self._alone: deque[tuple[Any, Any]] = deque()  # messages of a failed batch, to be handled one by one
        self._running = 0
        self._timer: Any = None  # a lingering batch's wake-up
        self._stopped = False
        self._pack_publisher: ConfirmedPublisher | None = None  # puts a failed pack's events back, made when needed
        super().__init__(**kwargs)

    def setup(self) -> None:
        declare_with_dead_letters(self.container.config["AMQP_URI"], self.queue)
        self.queue_consumer.register_provider(self)

    def start(self) -> None:
        start_consumer_series(self.container.service_name, self.queue)

    def stop(self) -> None:
        # messages not handed to a worker stay unacknowledged: the broker delivers them again after the channel closes
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.queue_consumer.unregister_provider(self)
        if self._pack_publisher is not None:
            self._pack_publisher.close()

    def handle_message(self, body: Any, message: Any) -> None:
        """Called by the queue consumer for each delivery (in its own green thread)."""
        self._waiting.append((unpacked(body), message))
        self._arrived.append(time.monotonic())
        self._dispatch()

    def _events_waiting(self) -> int:
        return sum(len(events) for events, _ in self._waiting)

    def _lingering(self) -> bool:
        """Whether the next batch waits for company; if so, a wake-up is set for when its oldest message is due."""
        if not self.linger or self._events_waiting() >= self.max_batch:
            return False
        wait = self._arrived[0] + self.linger - time.monotonic()
        if wait <= 0:
            return False
        if self._timer is None:
            self._timer = eventlet.spawn_after(wait, self._linger_over)
        return True

    def _linger_over(self) -> None:
        self._timer = None
        self._dispatch()

    def _dispatch(self) -> None:
        while not self._stopped and self._running < self.concurrency and (self._alone or self._waiting):
            if self._alone:
                batch = [self._alone.popleft()]
            elif self._lingering():
                return
            else:
                batch, events = [], 0
                while self._waiting and events < self.max_batch:  # at least one message, however big a pack
                    batch.append(self._waiting.popleft())
                    self._arrived.popleft()
                    events += len(batch[-1][0])
            self._running += 1
            bodies = [body for events_of_message, _ in batch for body in events_of_message]
            consumer_metrics(self.container.service_name).batch_size.labels(self.queue.name).observe(len(bodies))
            try:
                self.container.spawn_worker(self, (bodies,), {}, handle_result=partial(self._handle_result, batch))
            except ContainerBeingKilled:
                self._running -= 1
                for _, message in batch:
                    self.queue_consumer.requeue_message(message)
                return

    def _handle_result(
        self, batch: list[tuple[Any, Any]], worker_ctx: Any, result: Any = None, exc_info: Any = None
    ) -> tuple[Any, Any]:
        self._running -= 1
        messages = [message for _, message in batch]
        if exc_info is None:
            consumer_metrics(self.container.service_name).handled.labels(self.queue.name, "ok").inc(len(batch))
            self.queue_consumer.acks.finished_many(messages)
        elif len(batch) == 1 and len(batch[0][0]) > 1 and self.takes_packs_apart:
            self._take_apart(batch[0][0], messages[0], exc_info)
        elif len(batch) > 1:
            log.warning(
                "a batch of %d from %s failed (%s); handling its messages one by one",
                len(batch),
                self.queue.name,
                exc_info[1],
            )
            self._alone.extend(batch)
        else:
            settle_handled(self.queue_consumer, self.container.service_name, self.queue, messages[0], exc_info)
        # the next batch is spawned outside this worker, whose slot is still held until it returns
        eventlet.spawn_n(self._dispatch)
        return result, exc_info

    def _take_apart(self, events: list[Any], message: Any, exc_info: Any) -> None:
        """A pack failed on its own: its events go back on the queue one message each, then the pack is acked.
        If the broker does not confirm them, the pack is retried whole, as a message whose handling failed for a
        passing reason: the broker's failure is, and a poison event must not take its pack's good events to the
        dead letters (past the delivery limit the broker dead-letters it, as any message)."""
        log.warning(
            "a pack of %d events from %s failed (%s); putting them back on the queue one by one",
            len(events),
            self.queue.name,
            exc_info[1],
        )
        singles = [Outgoing(event, "", self.queue.name, str(_event_id(event) or uuid.uuid4())) for event in events]
        try:
            self._publisher().publish_many(singles)
        except PublishFailed as exc:
            log.warning("could not put a pack's events back on %s: %s", self.queue.name, exc)
            put_back_failed = (type(exc), exc, exc.__traceback__)
            settle_handled(self.queue_consumer, self.container.service_name, self.queue, message, put_back_failed)
            return
        consumer_metrics(self.container.service_name).handled.labels(self.queue.name, "taken_apart").inc()
        self.queue_consumer.acks.finished_many([message])

    def _publisher(self) -> ConfirmedPublisher:
        if self._pack_publisher is None:
            self._pack_publisher = ConfirmedPublisher(self.container.config["AMQP_URI"])
        return self._pack_publisher


class BroadcastBatchConsumer(BatchConsumer):
    """A batch consumer of its own exclusive, auto-deleted queue (jaklapor.messaging.broadcast_queue): in-memory
    fan-out, such as waking live streams, for every message waiting at once."""

    takes_packs_apart = False  # what it does is in memory for this process only: a failed pack is retried whole

    def __init__(self, name_prefix: str, bindings: Iterable[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(broadcast_queue(name_prefix, bindings), **kwargs)


batch_consumer = BatchConsumer.decorator
broadcast_batch_consumer = BroadcastBatchConsumer.decorator


def _event_id(event: Any) -> Any:
    return event.get("event_id") if isinstance(event, dict) else None
