"""RabbitMQ plumbing shared by the services: the topology, a confirmed publisher and a work-queue consumer.

Rules (ARCHITECTURE.md): every publish waits for the broker's confirm and is `mandatory`; messages are persistent;
work and OPD queues are quorum queues with a delivery limit and a dead-letter queue; a consumer acks only after its
handler returned, and a failing message is requeued until the broker dead-letters it (never acked and dropped).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from functools import partial
from typing import Any

from amqp.exceptions import AMQPError, ChannelError, MessageNacked
from kombu import Connection, Exchange, Producer, Queue, binding
from kombu.exceptions import KombuError
from nameko.extensions import DependencyProvider
from nameko.messaging import Consumer, QueueConsumer

from jaklapor.metrics import consumer_metrics

log = logging.getLogger(__name__)

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
    """The broker could not be reached or did not confirm the message: it may not have been stored."""


class Unroutable(PublishFailed):
    """The broker confirmed it but no queue was bound for the routing key (mandatory publish returned it)."""


class ConfirmedPublisher:
    """Publishes persistent JSON messages, `mandatory`, and waits for the broker's confirm.

    Fails fast instead of retrying for long: callers that must not lose a message keep it (outbox, unacked input)
    and try again later. One connection per publisher; safe to share between green threads.
    """

    def __init__(self, amqp_uri: str, *, connect_timeout: float = 3.0, confirm_timeout: float = 10.0) -> None:
        self.amqp_uri = amqp_uri
        self.connect_timeout = connect_timeout
        self.confirm_timeout = confirm_timeout
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._declared: set[str] = set()
        self._returned: list[str] = []

    def _ensure_connected(self) -> Producer:
        if self._producer is None:
            connection = Connection(
                self.amqp_uri,
                connect_timeout=self.connect_timeout,
                transport_options={"confirm_publish": True},
            )
            connection.connect()
            channel = connection.channel()
            channel.events["basic_return"].add(self._on_return)
            self._connection = connection
            self._producer = Producer(channel)
            self._declared.clear()
        return self._producer

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        # the broker sends basic.return before the confirm of an unroutable mandatory message
        self._returned.append(f"{exchange or '(default)'}/{routing_key}: {exc}")

    def _reset(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
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
        producer = self._ensure_connected()
        for entity in entities:
            key = f"{type(entity).__name__}:{entity.name}"
            if key in self._declared:
                continue
            try:
                entity.declare(channel=producer.channel)
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
        with self._lock:
            try:
                producer = self._ensure_connected()
                self._declare_locked(declare)
                self._returned.clear()
                producer.publish(
                    body,
                    exchange=exchange_name,
                    routing_key=routing_key,
                    mandatory=True,
                    delivery_mode=2,
                    serializer="json",
                    message_id=message_id,
                    headers=headers or {},
                    retry=False,
                    timeout=self.confirm_timeout,
                )
            except (TimeoutError, MessageNacked, ChannelError, AMQPError, KombuError, OSError) as exc:
                self._reset()
                raise PublishFailed(f"publish to {exchange_name}/{routing_key} failed: {exc!r}") from exc
            if self._returned:
                raise Unroutable(f"no queue bound for {self._returned[0]}")

    def ping(self) -> bool:
        return broker_reachable(self.amqp_uri, self.connect_timeout)

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


class RejectingQueueConsumer(QueueConsumer):
    """nameko's queue consumer, but a body that cannot be decoded is dead-lettered instead of crashing the loop."""

    def get_consumers(self, consumer_cls: Any, channel: Any) -> Any:
        consumers = super().get_consumers(consumer_cls, channel)
        for consumer in consumers:
            consumer.on_decode_error = partial(self._reject_undecodable, consumer.queues[0].name)
        return consumers

    # Acking or requeueing on a connection the broker just dropped must not kill the service: the broker already
    # took the unacked message back and will deliver it again.
    def ack_message(self, message: Any) -> None:
        self._settle(message.ack, message)

    def requeue_message(self, message: Any) -> None:
        self._settle(message.requeue, message)

    def reject_message(self, message: Any) -> None:
        self._settle(lambda: message.reject(requeue=False), message)

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
        if self.queue.queue_arguments and "x-dead-letter-routing-key" in self.queue.queue_arguments:
            dead_letters = dead_letter_queue(self.queue.name)
            with Connection(self.container.config["AMQP_URI"], connect_timeout=5) as connection:
                channel = connection.channel()
                dead_letters.declare(channel=channel)
                # declare the queue and its bindings now, so events published before the first consume are kept
                self.queue.declare(channel=channel)
        super().setup()

    def start(self) -> None:
        # every series exists from the start at 0, so rate() and increase() see the first failure
        metrics = consumer_metrics(self.container.service_name)
        for outcome in ("ok", "retry", "dead_letter"):
            metrics.handled.labels(self.queue.name, outcome)
        for reason in ("rejected", "delivery_limit", "undecodable"):
            metrics.dead_lettered.labels(self.queue.name, reason)
        super().start()

    def handle_message_processed(self, message: Any, result: Any = None, exc_info: Any = None) -> None:
        metrics = consumer_metrics(self.container.service_name)
        queue = self.queue.name
        if exc_info is None:
            metrics.handled.labels(queue, "ok").inc()
            self.queue_consumer.ack_message(message)
        elif issubclass(exc_info[0], PermanentFailure):
            metrics.handled.labels(queue, "dead_letter").inc()
            metrics.dead_lettered.labels(queue, "rejected").inc()
            self.queue_consumer.reject_message(message)
        else:
            # quorum queues count failed deliveries in x-delivery-count; one more past the limit is dead-lettered
            failed_before = int((message.headers or {}).get("x-delivery-count", 0))
            if failed_before >= self.delivery_limit:
                metrics.handled.labels(queue, "dead_letter").inc()
                metrics.dead_lettered.labels(queue, "delivery_limit").inc()
            else:
                metrics.handled.labels(queue, "retry").inc()
            self.queue_consumer.requeue_message(message)

    @property
    def delivery_limit(self) -> int:
        return int((self.queue.queue_arguments or {}).get("x-delivery-limit", DELIVERY_LIMIT))


class BroadcastConsumer(Consumer):
    """Every instance gets its own exclusive, auto-deleted queue: for in-memory fan-out such as live streams."""

    queue_consumer = RejectingQueueConsumer()

    def __init__(self, name_prefix: str, bindings: Iterable[tuple[str, str]], **kwargs: Any) -> None:
        import uuid

        queue = Queue(
            f"{name_prefix}.{uuid.uuid4().hex[:12]}",
            bindings=[binding(event_exchange(service), routing_key=key) for service, key in bindings],
            exclusive=True,
            auto_delete=True,
            durable=False,
        )
        super().__init__(queue=queue, requeue_on_error=False, **kwargs)


work_consumer = WorkConsumer.decorator
broadcast_consumer = BroadcastConsumer.decorator
