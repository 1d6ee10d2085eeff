"""RabbitMQ plumbing shared by the services: the topology, a confirmed publisher and a work-queue consumer.

Rules (docs/architecture.md, "Rules"): every publish waits for the broker's confirm and is `mandatory`; messages are
persistent; work and OPD queues are quorum queues with a delivery limit and a dead-letter queue; a consumer acks only
after its handler returned, and a failing message is requeued until the broker dead-letters it (never acked and
dropped).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from amqp.exceptions import AMQPError, ChannelError
from amqp.method_framing import frame_writer
from kombu import Connection, Exchange, Queue, binding
from kombu.exceptions import KombuError
from kombu.serialization import dumps
from nameko.extensions import DependencyProvider
from nameko.messaging import Consumer, QueueConsumer

from jaklapor.acks import AckBatcher
from jaklapor.events import Event, parse_event
from jaklapor.metrics import consumer_metrics

log = logging.getLogger(__name__)

EventKind = TypeVar("EventKind", bound=Event)

# A message that failed this many deliveries goes to the dead-letter queue with x-death headers saying why.
DELIVERY_LIMIT = 5
# OPD queues are read by agencies' own clients, which may look at a message and hand it back a few times
OPD_DELIVERY_LIMIT = 20

DEAD_LETTER_EXCHANGE = Exchange("jaklapor.dead-letter", type="topic", durable=True)
OPD_EXCHANGE = Exchange("jaklapor.opd", type="topic", durable=True)
OPD_QUEUE_PREFIX = "jaklapor.opd."
OPD_DEAD_LETTER_QUEUE = Queue(
    "jaklapor.opd.dead-letter",
    exchange=DEAD_LETTER_EXCHANGE,
    routing_key="opd.#",
    durable=True,
    queue_arguments={"x-queue-type": "quorum"},
)


def event_exchange(service: str) -> Exchange:
    """The topic exchange a service publishes its events to, `<service>.events` (nameko's naming)."""
    return Exchange(f"{service}.events", type="topic", durable=True)


def _quorum_arguments(dead_letter_key: str, delivery_limit: int = DELIVERY_LIMIT) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
        "x-dead-letter-routing-key": dead_letter_key,
    }


def work_queue(name: str, bindings: Iterable[tuple[str, str]]) -> Queue:
    """A durable quorum queue bound to `(service, routing key)` sources; dead letters go to `<name>.dead-letter`."""
    return Queue(
        name,
        bindings=[binding(event_exchange(service), routing_key=key) for service, key in bindings],
        durable=True,
        queue_arguments=_quorum_arguments(f"work.{name}"),
    )


def direct_work_queue(name: str) -> Queue:
    """A durable quorum queue fed through the default exchange (routing key = queue name): point to point."""
    return Queue(name, durable=True, queue_arguments=_quorum_arguments(f"work.{name}"))


def dead_letter_queue(name: str) -> Queue:
    return Queue(
        f"{name}.dead-letter",
        exchange=DEAD_LETTER_EXCHANGE,
        routing_key=f"work.{name}",
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )


def opd_queue_name(opd_code: str) -> str:
    return OPD_QUEUE_PREFIX + opd_code


def opd_queue(opd_code: str) -> Queue:
    """One durable quorum queue per OPD, bound to every routing key that starts with its code."""
    return Queue(
        opd_queue_name(opd_code),
        exchange=OPD_EXCHANGE,
        routing_key=f"{opd_code}.#",
        durable=True,
        queue_arguments=_quorum_arguments(f"opd.{opd_code}", OPD_DELIVERY_LIMIT),
    )


def broker_reachable(amqp_uri: str, timeout: float = 3.0) -> bool:
    """True if the broker accepts a fresh connection now (health checks; a pooled one may be silently dead)."""
    try:
        with Connection(amqp_uri, connect_timeout=timeout) as connection:
            connection.connect()
    except (AMQPError, KombuError, OSError):
        return False
    return True


class PublishFailed(RuntimeError):
    """The broker could not be reached or did not confirm the message: it may not have been stored.

    `confirmed` lists the message ids of a batch the broker did confirm before the failure (they are stored)."""

    def __init__(self, message: str, confirmed: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.confirmed = list(confirmed)


class Unroutable(PublishFailed):
    """The broker confirmed it but no queue was bound for the routing key (mandatory publish returned it)."""


@dataclass(frozen=True)
class Outgoing:
    """One message for `ConfirmedPublisher.publish_many`."""

    body: dict[str, Any]
    exchange: str
    routing_key: str
    message_id: str
    headers: dict[str, Any] = field(default_factory=dict)


# ---- event packs ----------------------------------------------------------------------------------------------
#
# A batch handler publishes many events of one kind at once (routing a batch announces each report's routing, the
# outbox relay publishes a batch of submissions). Each would be delivered to every queue bound to it: four queues
# for a routing, three for a submission, and the broker's and the consumers' cost is per delivery. Such events
# travel as one *pack*: one message whose body is `{"pack": 1, "events": [event, ...]}`, with the events' exchange
# and routing key, in the position of the first of them. Batch consumers (jaklapor/batches.py) unpack it: each event
# is handled as if it had come alone, and one that fails is never dead-lettered with its neighbours (the failed
# pack's events are put back on the queue one message each). The version is the value of "pack": a consumer must
# know it before a publisher sends it (deploy consumers first, docs/architecture.md "Event packs").

PACK_VERSION = 1
PACK_HEADER = "x-jaklapor-pack"  # the number of events in a pack, for people reading a queue


def is_pack(body: Any) -> bool:
    return isinstance(body, dict) and body.get("pack") == PACK_VERSION and isinstance(body.get("events"), list)


def unpacked(body: Any) -> list[Any]:
    """The events a message carries: a pack's, or the message's body itself."""
    return list(body["events"]) if is_pack(body) else [body]


def pack_messages(
    messages: Sequence[Outgoing], routing_keys: Iterable[str]
) -> tuple[list[Outgoing], dict[str, list[str]]]:
    """The messages to send, with those of each of `routing_keys` (per exchange, without headers of their own) as
    one pack where the first of them was; and the ids of each pack's events, by the pack's id."""
    keys = set(routing_keys)
    groups: dict[tuple[str, str], list[Outgoing]] = {}
    for message in messages:
        if message.routing_key in keys and not message.headers:
            groups.setdefault((message.exchange, message.routing_key), []).append(message)
    wire: list[Outgoing] = []
    members: dict[str, list[str]] = {}
    for message in messages:
        group = groups.get((message.exchange, message.routing_key))
        if group is None or len(group) == 1 or message.headers:
            wire.append(message)
        elif message is group[0]:
            pack_id = f"pack-{message.message_id}-{len(group)}"
            body = {"pack": PACK_VERSION, "events": [member.body for member in group]}
            wire.append(Outgoing(body, message.exchange, message.routing_key, pack_id, {PACK_HEADER: len(group)}))
            members[pack_id] = [member.message_id for member in group]
    return wire, members


class _CollectedFrames:
    """A transport stand-in that keeps the frames written to it, so a batch goes to the socket in one write."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: Any) -> None:
        self.chunks.append(bytes(data))  # a copy: py-amqp reuses its frame buffer for the next frame

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


class ConfirmedPublisher:
    """Publishes persistent JSON messages, `mandatory`, and waits for the broker's confirms.

    A batch is written in one go and its confirms are awaited together (the broker confirms several messages with
    one `basic.ack` when it can): a confirm round trip per batch instead of per message. Messages of one batch are
    stored in order; `publish_many` says which of them the broker confirmed before any failure.

    Fails fast instead of retrying for long: callers that must not lose a message keep it (outbox, unacked input)
    and try again later. One connection per publisher; safe to share between green threads.
    """

    def __init__(self, amqp_uri: str, *, connect_timeout: float = 3.0, confirm_timeout: float = 10.0) -> None:
        self.amqp_uri = amqp_uri
        self.connect_timeout = connect_timeout
        self.confirm_timeout = confirm_timeout
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._channel: Any = None
        self._declared: set[str] = set()
        self._published = 0  # delivery tags: the broker numbers a channel's publishes from 1 after confirm.select
        self._unconfirmed: dict[int, str] = {}
        self._nacked: list[str] = []
        self._returned: dict[str, str] = {}
        self._frames = _CollectedFrames()
        self._collecting_writer: Any = None

    def _ensure_connected(self) -> Any:
        if self._channel is None:
            connection = Connection(self.amqp_uri, connect_timeout=self.connect_timeout)
            connection.connect()
            channel = connection.channel()
            channel.events["basic_return"].add(self._on_return)
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            channel.confirm_select()
            # py-amqp writes each message to the socket on its own (a system call each, through eventlet's green
            # socket): a batch's frames are collected and written together instead
            self._frames = _CollectedFrames()
            self._collecting_writer = frame_writer(channel.connection, self._frames)
            self._connection, self._channel = connection, channel
            self._published = 0
            self._declared.clear()
        return self._channel

    def _settled(self, delivery_tag: int, multiple: bool) -> list[str]:
        tags = [tag for tag in self._unconfirmed if tag <= delivery_tag] if multiple else [delivery_tag]
        return [self._unconfirmed.pop(tag) for tag in tags if tag in self._unconfirmed]

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settled(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked.extend(self._settled(delivery_tag, multiple))

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        # the broker sends basic.return before the confirm of an unroutable mandatory message
        message_id = (message.properties or {}).get("message_id", "")
        self._returned[message_id] = f"{exchange or '(default)'}/{routing_key}: {exc}"

    def _reset(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._unconfirmed.clear()
        if connection is not None:
            try:
                connection.close()
            except Exception:  # the connection is already broken; closing is best effort
                pass

    def declare(self, *entities: Exchange | Queue) -> None:
        """Declare exchanges and queues once per connection (idempotent on the broker)."""
        with self._lock:
            self._declare_locked(entities)

    def _declare_locked(self, entities: Iterable[Exchange | Queue]) -> None:
        channel = self._ensure_connected()
        for entity in entities:
            key = f"{type(entity).__name__}:{entity.name}"
            if key in self._declared:
                continue
            try:
                entity.declare(channel=channel)
            except (AMQPError, KombuError, OSError) as exc:
                self._reset()
                raise PublishFailed(f"could not declare {key}: {exc}") from exc
            self._declared.add(key)

    def publish(
        self,
        body: dict[str, Any],
        *,
        exchange: Exchange | str,
        routing_key: str,
        message_id: str,
        declare: Iterable[Exchange | Queue] = (),
        headers: dict[str, Any] | None = None,
    ) -> None:
        exchange_name = exchange.name if isinstance(exchange, Exchange) else exchange
        self.publish_many([Outgoing(body, exchange_name, routing_key, message_id, headers or {})], declare=declare)

    def publish_many(
        self, messages: Sequence[Outgoing], *, declare: Iterable[Exchange | Queue] = (), pack: Iterable[str] = ()
    ) -> None:
        """Publish messages in order and return once the broker confirmed all of them; those of the routing keys
        in `pack` travel as event packs (`pack_messages`).

        Raises Unroutable if one had no queue bound (the others were stored), PublishFailed if the broker failed
        us; both carry the ids the broker confirmed as stored (a confirmed pack's: its events')."""
        if not messages:
            return
        wire, members = pack_messages(messages, pack)
        try:
            self._publish_wire(wire, declare)
        except PublishFailed as exc:
            exc.confirmed = [
                event_id for message_id in exc.confirmed for event_id in members.get(message_id, [message_id])
            ]
            raise

    def _publish_wire(self, messages: Sequence[Outgoing], declare: Iterable[Exchange | Queue]) -> None:
        with self._lock:
            self._nacked.clear()
            self._returned.clear()
            sent: list[str] = []
            try:
                channel = self._ensure_connected()
                self._declare_locked(declare)
                self._frames.take()  # nothing left over from a batch that failed half-way
                amqp_connection = channel.connection
                direct_writer, amqp_connection.frame_writer = amqp_connection.frame_writer, self._collecting_writer
                try:
                    self._publish_frames(channel, messages, sent)
                finally:
                    amqp_connection.frame_writer = direct_writer
                amqp_connection.transport.write(self._frames.take())
                self._await_confirms()
            except (TimeoutError, ChannelError, AMQPError, KombuError, OSError) as exc:
                unconfirmed = set(self._unconfirmed.values())
                self._reset()
                confirmed = [m for m in sent if m not in unconfirmed and m not in self._nacked]
                raise PublishFailed(
                    f"publish to {messages[len(confirmed)].exchange or '(default)'}/"
                    f"{messages[len(confirmed)].routing_key} failed: {exc!r}",
                    confirmed,
                ) from exc
            failed = set(self._nacked) | set(self._returned)
            if failed:
                confirmed = [m for m in sent if m not in failed]
                if self._nacked:
                    raise PublishFailed(f"the broker refused (nack) {len(self._nacked)} message(s)", confirmed)
                raise Unroutable(f"no queue bound for {next(iter(self._returned.values()))}", confirmed)

    def _publish_frames(self, channel: Any, messages: Sequence[Outgoing], sent: list[str]) -> None:
        for message in messages:
            content_type, encoding, data = dumps(message.body, serializer="json")
            amqp_message = channel.prepare_message(
                data,
                content_type=content_type,
                content_encoding=encoding,
                headers=message.headers,
                properties={"delivery_mode": 2, "message_id": message.message_id},
            )
            self._published += 1
            self._unconfirmed[self._published] = message.message_id
            sent.append(message.message_id)
            channel.basic_publish(
                amqp_message, exchange=message.exchange, routing_key=message.routing_key, mandatory=True
            )

    def _await_confirms(self) -> None:
        assert self._connection is not None, "confirms are awaited on the connection that published"
        deadline = time.monotonic() + self.confirm_timeout
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._unconfirmed)} message(s) not confirmed in {self.confirm_timeout} s")
            self._connection.drain_events(timeout=remaining)

    def close(self) -> None:
        with self._lock:
            self._reset()


class Publisher(DependencyProvider):
    """nameko dependency: a ConfirmedPublisher opened in `setup` and closed in `stop`."""

    def __init__(self, declare: Iterable[Exchange | Queue] = ()) -> None:
        self._to_declare = list(declare)

    def setup(self) -> None:
        self.publisher = ConfirmedPublisher(self.container.config["AMQP_URI"])
        self.declare_on_start()

    def declare_on_start(self) -> None:
        try:
            self.publisher.declare(*self._to_declare)
        except PublishFailed as exc:
            # not fatal: publishing declares again and callers keep unconfirmed messages for later
            log.error("could not declare topology at start: %s", exc)

    def stop(self) -> None:
        self.publisher.close()

    def kill(self) -> None:
        self.publisher.close()

    def get_dependency(self, worker_ctx: Any) -> ConfirmedPublisher:
        return self.publisher


class PermanentFailure(Exception):
    """A message that can never be handled (malformed, unknown type): dead-letter it now instead of retrying."""


def expect_event(body: dict[str, Any], kinds: tuple[type[EventKind], ...], queue: str) -> EventKind:
    """The event a message of `queue` carries, if it is of one of the `kinds` the queue is for; otherwise a
    PermanentFailure naming why, so the message is dead-lettered instead of retried."""
    try:
        event = parse_event(body)
    except ValueError as exc:
        raise PermanentFailure(str(exc)) from exc
    if not isinstance(event, kinds):
        raise PermanentFailure(f"{queue} does not handle {event.event_type}")
    return event


class RejectingQueueConsumer(QueueConsumer):
    """nameko's queue consumer, but a body that cannot be decoded is dead-lettered instead of crashing the loop,
    and handled messages are acknowledged in batches (see jaklapor/acks.py)."""

    def setup(self) -> None:
        super().setup()
        self.acks = AckBatcher()

    @property
    def prefetch_count(self) -> int:
        # finished deliveries waiting (briefly) for their ack still count against the prefetch: room for a batch
        return self.container.max_workers + self.acks.max_batch

    def stop(self) -> None:
        self.acks.flush()
        super().stop()

    def get_consumers(self, consumer_cls: Any, channel: Any) -> Any:
        consumers = super().get_consumers(consumer_cls, channel)
        for consumer in consumers:
            consumer.on_decode_error = partial(self._reject_undecodable, consumer.queues[0].name)
        return consumers

    # Acking or requeueing on a connection the broker just dropped must not kill the service: the broker already
    # took the unacked message back and will deliver it again.
    def ack_message(self, message: Any) -> None:
        self.acks.finished(message)

    # settled only once sent: until then no batched ack may reach past this message
    def requeue_message(self, message: Any) -> None:
        self._settle(message.requeue, message)
        self.acks.settled(message)

    def reject_message(self, message: Any) -> None:
        self._settle(lambda: message.reject(requeue=False), message)
        self.acks.settled(message)

    @staticmethod
    def _settle(action: Any, message: Any) -> None:
        if not message.channel.connection:
            return
        try:
            action()
        except (AMQPError, KombuError, OSError) as exc:
            log.warning("could not settle a message (the broker will redeliver it): %r", exc)

    def _reject_undecodable(self, queue: str, message: Any, exc: Exception) -> None:
        log.error("dead-lettering a message that cannot be decoded from %s: %s", queue, exc)
        consumer_metrics(self.container.service_name).dead_lettered.labels(queue, "undecodable").inc()
        self.reject_message(message)


class WorkConsumer(Consumer):
    """Consumes a durable quorum queue: ack after the handler returns; any failure is requeued, so the broker
    redelivers it and dead-letters it after DELIVERY_LIMIT tries; a PermanentFailure is dead-lettered at once."""

    queue_consumer = RejectingQueueConsumer()

    def __init__(self, queue: Queue, **kwargs: Any) -> None:
        super().__init__(queue=queue, requeue_on_error=True, **kwargs)

    def setup(self) -> None:
        declare_with_dead_letters(self.container.config["AMQP_URI"], self.queue)
        super().setup()

    def start(self) -> None:
        start_consumer_series(self.container.service_name, self.queue)
        super().start()

    def handle_message_processed(self, message: Any, result: Any = None, exc_info: Any = None) -> None:
        settle_handled(self.queue_consumer, self.container.service_name, self.queue, message, exc_info)


def settle_handled(
    queue_consumer: RejectingQueueConsumer, service: str, queue: Queue, message: Any, exc_info: Any
) -> None:
    """Ack a message its handler finished, dead-letter it on a PermanentFailure, requeue it on any other failure
    (the broker dead-letters it past the queue's delivery limit); counted by outcome."""
    metrics = consumer_metrics(service)
    name = queue.name
    if exc_info is None:
        metrics.handled.labels(name, "ok").inc()
        queue_consumer.ack_message(message)
    elif issubclass(exc_info[0], PermanentFailure):
        metrics.handled.labels(name, "dead_letter").inc()
        metrics.dead_lettered.labels(name, "rejected").inc()
        queue_consumer.reject_message(message)
    else:
        # quorum queues count failed deliveries in x-delivery-count; one more past the limit is dead-lettered
        failed_before = int((message.headers or {}).get("x-delivery-count", 0))
        if failed_before >= delivery_limit_of(queue):
            metrics.handled.labels(name, "dead_letter").inc()
            metrics.dead_lettered.labels(name, "delivery_limit").inc()
        else:
            metrics.handled.labels(name, "retry").inc()
        queue_consumer.requeue_message(message)


def _arguments_of(queue: Queue) -> dict[str, Any]:
    return getattr(queue, "queue_arguments", None) or {}  # kombu sets it in __init__ from its attrs table


def delivery_limit_of(queue: Queue) -> int:
    return int(_arguments_of(queue).get("x-delivery-limit", DELIVERY_LIMIT))


def declare_with_dead_letters(amqp_uri: str, queue: Queue) -> None:
    """Declare a work queue, its bindings and its dead-letter queue now, so events published before the first
    consume are kept."""
    if "x-dead-letter-routing-key" in _arguments_of(queue):
        with Connection(amqp_uri, connect_timeout=5) as connection:
            channel = connection.channel()
            dead_letter_queue(queue.name).declare(channel=channel)
            queue.declare(channel=channel)


def start_consumer_series(service: str, queue: Queue) -> None:
    """Every series exists from the start at 0, so rate() and increase() see the first failure."""
    metrics = consumer_metrics(service)
    for outcome in ("ok", "retry", "dead_letter"):
        metrics.handled.labels(queue.name, outcome)
    for reason in ("rejected", "delivery_limit", "undecodable"):
        metrics.dead_lettered.labels(queue.name, reason)


class BroadcastConsumer(Consumer):
    """Every instance gets its own exclusive, auto-deleted queue: for in-memory fan-out such as live streams."""

    queue_consumer = RejectingQueueConsumer()

    def __init__(self, name_prefix: str, bindings: Iterable[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(queue=broadcast_queue(name_prefix, bindings), requeue_on_error=False, **kwargs)


def broadcast_queue(name_prefix: str, bindings: Iterable[tuple[str, str]]) -> Queue:
    """An exclusive, auto-deleted queue of one consumer instance (a new name each call: nameko binds an entrypoint
    to each container by constructing it again)."""
    return Queue(
        f"{name_prefix}.{uuid.uuid4().hex[:12]}",
        bindings=[binding(event_exchange(service), routing_key=key) for service, key in bindings],
        exclusive=True,
        auto_delete=True,
        durable=False,
    )


work_consumer = WorkConsumer.decorator
broadcast_consumer = BroadcastConsumer.decorator
