"""The batch consumer (jaklapor/batches.py) against a recording container and queue consumer: how batches form,
that a batch is acknowledged only once handled, and that a failed batch never takes its good messages down with it.
The real broker path is exercised by every end-to-end test (notify, stats, routing and intake consume this way)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import eventlet
from nameko.exceptions import ContainerBeingKilled

from jaklapor.batches import BatchConsumer
from jaklapor.messaging import Outgoing, PermanentFailure, PublishFailed, work_queue


@dataclass
class Message:
    tag: int
    headers: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecordingAcks:
    acked: list[int] = field(default_factory=list)

    def finished_many(self, messages: list[Message]) -> None:
        self.acked.extend(message.tag for message in messages)


@dataclass
class RecordingQueueConsumer:
    acks: RecordingAcks = field(default_factory=RecordingAcks)
    requeued: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)

    def ack_message(self, message: Message) -> None:
        self.acks.acked.append(message.tag)

    def requeue_message(self, message: Message) -> None:
        self.requeued.append(message.tag)

    def reject_message(self, message: Message) -> None:
        self.rejected.append(message.tag)


class ManualContainer:
    """Spawns nothing by itself: the test finishes each worker with the outcome it chooses."""

    service_name = "batch-test"
    config: dict[str, Any] = {}

    def __init__(self) -> None:
        self.workers: list[tuple[list[Any], Any]] = []
        self.killed = False

    def spawn_worker(self, entrypoint: Any, args: tuple[Any, ...], kwargs: dict[str, Any], **options: Any) -> None:
        if self.killed:
            raise ContainerBeingKilled()
        self.workers.append((args[0], options["handle_result"]))

    def finish(self, index: int = 0, exc: BaseException | None = None) -> list[Any]:
        bodies, handle_result = self.workers.pop(index)
        exc_info = (type(exc), exc, None) if exc is not None else None
        handle_result(None, None, exc_info)
        eventlet.sleep(0)  # the next batch is dispatched from its own green thread
        return bodies


def consumer(
    max_batch: int = 3, concurrency: int = 1, linger: float = 0.0
) -> tuple[BatchConsumer, ManualContainer, Any]:
    entrypoint = BatchConsumer(
        work_queue("batch-test", []), max_batch=max_batch, concurrency=concurrency, linger=linger
    )
    container = ManualContainer()
    queue_consumer = RecordingQueueConsumer()
    entrypoint.container = container  # type: ignore[assignment]
    entrypoint.queue_consumer = queue_consumer  # type: ignore[assignment]
    return entrypoint, container, queue_consumer


def deliver(entrypoint: BatchConsumer, *tags: int, headers: dict[str, Any] | None = None) -> None:
    for tag in tags:
        entrypoint.handle_message({"n": tag}, Message(tag, dict(headers or {})))


def test_a_lone_message_is_handled_at_once_and_the_backlog_forms_the_next_batch() -> None:
    entrypoint, container, queue_consumer = consumer(max_batch=3)
    deliver(entrypoint, 1)
    assert [bodies for bodies, _ in container.workers] == [[{"n": 1}]]  # no waiting for company

    deliver(entrypoint, 2, 3, 4, 5)  # arrive while the first batch runs
    assert len(container.workers) == 1
    assert queue_consumer.acks.acked == []  # nothing acked before its handler returned

    container.finish()
    assert queue_consumer.acks.acked == [1]
    assert [bodies for bodies, _ in container.workers] == [[{"n": 2}, {"n": 3}, {"n": 4}]]  # at most max_batch
    container.finish()
    assert container.finish() == [{"n": 5}]
    assert queue_consumer.acks.acked == [1, 2, 3, 4, 5]


def test_batches_run_at_most_concurrency_at_once() -> None:
    entrypoint, container, _ = consumer(max_batch=10, concurrency=2)
    deliver(entrypoint, 1, 2, 3, 4)
    assert [bodies for bodies, _ in container.workers] == [[{"n": 1}], [{"n": 2}]]
    container.finish(1)
    assert [bodies for bodies, _ in container.workers] == [[{"n": 1}], [{"n": 3}, {"n": 4}]]


def test_a_failed_batch_is_handled_again_one_message_at_a_time() -> None:
    entrypoint, container, queue_consumer = consumer(max_batch=5)
    deliver(entrypoint, 1, 2, 3, 4)
    container.finish()
    container.finish(exc=PermanentFailure("body 3 is malformed"))  # the batch 2-4
    assert queue_consumer.rejected == [] and queue_consumer.acks.acked == [1]

    assert container.finish() == [{"n": 2}]
    assert container.finish(exc=PermanentFailure("body 3 is malformed")) == [{"n": 3}]
    assert container.finish() == [{"n": 4}]
    assert queue_consumer.acks.acked == [1, 2, 4]
    assert queue_consumer.rejected == [3]  # dead-lettered at once, alone
    assert queue_consumer.requeued == []


def test_a_message_failing_alone_is_requeued_until_the_delivery_limit() -> None:
    entrypoint, container, queue_consumer = consumer()
    deliver(entrypoint, 7)
    container.finish(exc=LookupError("report not stored yet"))
    assert queue_consumer.requeued == [7]  # the broker counts it and dead-letters it past the limit

    deliver(entrypoint, 8, headers={"x-delivery-count": 5})
    container.finish(exc=LookupError("still not stored"))
    assert queue_consumer.requeued == [7, 8]  # requeued once more: the quorum queue dead-letters it


def test_a_container_being_killed_gives_the_batch_back() -> None:
    entrypoint, container, queue_consumer = consumer()
    container.killed = True
    deliver(entrypoint, 1)
    assert queue_consumer.requeued == [1]
    assert entrypoint._running == 0


def test_a_lingering_batch_waits_for_company_until_its_oldest_message_is_due() -> None:
    entrypoint, container, queue_consumer = consumer(max_batch=3, linger=0.05)
    deliver(entrypoint, 1)
    assert container.workers == []  # waits for more
    deliver(entrypoint, 2, 3)
    assert [bodies for bodies, _ in container.workers] == [[{"n": 1}, {"n": 2}, {"n": 3}]]  # full: at once
    container.finish()

    deliver(entrypoint, 4)
    assert container.workers == []
    waited = 0.0
    while not container.workers:
        assert waited < 2, "the lingering batch was never handed over"
        eventlet.sleep(0.01)
        waited += 0.01
    assert waited >= 0.04  # not before its oldest message was due
    assert container.finish() == [{"n": 4}]
    assert queue_consumer.acks.acked == [1, 2, 3, 4]


def test_a_stopped_consumer_hands_nothing_more_to_workers() -> None:
    entrypoint, container, queue_consumer = consumer(linger=0.02)
    entrypoint.queue_consumer.unregister_provider = lambda provider: None  # type: ignore[attr-defined]
    deliver(entrypoint, 1)
    entrypoint.stop()
    eventlet.sleep(0.05)
    assert container.workers == []  # left unacknowledged: the broker delivers it again
    assert queue_consumer.acks.acked == [] and queue_consumer.requeued == []


# ---- event packs (jaklapor/messaging.py) ----------------------------------------------------------------------------


class RecordingPublisher:
    def __init__(self, failure: PublishFailed | None = None) -> None:
        self.published: list[Outgoing] = []
        self.failure = failure

    def publish_many(self, messages: list[Outgoing]) -> None:
        if self.failure is not None:
            raise self.failure
        self.published.extend(messages)

    def close(self) -> None:
        pass


def deliver_pack(entrypoint: BatchConsumer, tag: int, *events: Any) -> None:
    entrypoint.handle_message({"pack": 1, "events": list(events)}, Message(tag))


def test_a_pack_hands_over_each_of_its_events_and_counts_as_that_many() -> None:
    entrypoint, container, queue_consumer = consumer(max_batch=3)
    deliver(entrypoint, 1)
    deliver_pack(entrypoint, 2, {"n": "2a"}, {"n": "2b"})
    deliver(entrypoint, 3, 4)
    container.finish()
    assert container.finish() == [{"n": "2a"}, {"n": "2b"}, {"n": 3}]  # three events: the batch is full
    assert container.finish() == [{"n": 4}]
    assert queue_consumer.acks.acked == [1, 2, 3, 4]


def test_a_pack_failing_on_its_own_goes_back_on_the_queue_one_event_each_then_is_acked() -> None:
    entrypoint, container, queue_consumer = consumer(max_batch=5)
    entrypoint._pack_publisher = publisher = RecordingPublisher()  # type: ignore[assignment]
    deliver_pack(entrypoint, 5, {"event_id": "e1"}, {"event_id": "bad"}, {"event_id": "e3"})
    assert container.finish(exc=PermanentFailure("event bad is malformed")) == [
        {"event_id": "e1"},
        {"event_id": "bad"},
        {"event_id": "e3"},
    ]
    assert [(m.exchange, m.routing_key, m.message_id, m.body) for m in publisher.published] == [
        ("", "batch-test", "e1", {"event_id": "e1"}),
        ("", "batch-test", "bad", {"event_id": "bad"}),
        ("", "batch-test", "e3", {"event_id": "e3"}),
    ]
    assert queue_consumer.acks.acked == [5] and queue_consumer.rejected == []  # each event is judged alone, later


def test_a_pack_whose_events_cannot_be_put_back_is_settled_as_a_failed_message() -> None:
    entrypoint, container, queue_consumer = consumer()
    entrypoint._pack_publisher = RecordingPublisher(PublishFailed("the broker is away"))  # type: ignore[assignment]
    deliver_pack(entrypoint, 6, {"event_id": "e1"}, {"event_id": "e2"})
    container.finish(exc=LookupError("the store is away"))
    assert queue_consumer.requeued == [6] and queue_consumer.acks.acked == []  # retried whole, nothing lost


def test_a_pack_with_a_poison_event_that_cannot_be_put_back_is_retried_not_dead_lettered() -> None:
    # seen in a fresh clone's make test: the put-back's connection was closed by an earlier broker restart, and the
    # pack went the poison's way (dead-lettered with its good event) instead of being taken apart on its next delivery
    entrypoint, container, queue_consumer = consumer()
    entrypoint._pack_publisher = RecordingPublisher(PublishFailed("connection forced: shutdown"))  # type: ignore[assignment]
    deliver_pack(entrypoint, 7, {"event_id": "good"}, {"event_id": "poison"})
    container.finish(exc=PermanentFailure("event poison is malformed"))
    assert queue_consumer.requeued == [7] and queue_consumer.rejected == [] and queue_consumer.acks.acked == []
