"""The confirmed publisher against the real broker: batches are confirmed as a whole, in order, and a failure says
exactly which messages the broker stored; events of a packed kind travel as one message."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection, Exchange, Queue

from jaklapor.messaging import (
    PACK_HEADER,
    ConfirmedPublisher,
    Outgoing,
    PublishFailed,
    Unroutable,
    is_pack,
    pack_messages,
    unpacked,
)
from tests.broker_admin import _api, _api_json
from tests.system import Vhost, wait_for


@pytest.fixture(scope="module")
def vhost() -> Iterator[Vhost]:
    """A vhost of this module's own: one test closes every connection in it."""
    created = Vhost.create()
    yield created
    created.delete()


@pytest.fixture
def target(vhost: Vhost) -> Iterator[tuple[ConfirmedPublisher, Queue]]:
    exchange = Exchange(f"publisher-test-{uuid.uuid4().hex[:8]}", type="topic", durable=True)
    queue = Queue(
        f"publisher-test-{uuid.uuid4().hex[:8]}",
        exchange=exchange,
        routing_key="bound.#",
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )
    publisher = ConfirmedPublisher(vhost.amqp_uri)
    publisher.declare(exchange, queue)
    yield publisher, queue
    publisher.close()
    with Connection(vhost.amqp_uri) as connection:
        queue(connection.channel()).delete()
        exchange(connection.channel()).delete()


def read_all(amqp_uri: str, queue: Queue) -> list[tuple[str, dict]]:
    with Connection(amqp_uri) as connection:
        bound = queue(connection.channel())
        taken = []
        while (message := bound.get(no_ack=True)) is not None:
            taken.append((message.properties["message_id"], message.decode()))
        return taken


def outgoing(exchange: str, n: int, key: str = "bound.x") -> list[Outgoing]:
    return [Outgoing({"n": n, "text": "é" * 10}, exchange, key, f"m{n}") for n in range(n)]


def test_a_batch_is_stored_whole_and_in_order(vhost: Vhost, target: tuple[ConfirmedPublisher, Queue]) -> None:
    publisher, queue = target
    publisher.publish_many(outgoing(queue.exchange.name, 300))
    publisher.publish({"n": 300}, exchange=queue.exchange, routing_key="bound.y", message_id="m300")

    stored = read_all(vhost.amqp_uri, queue)
    assert [message_id for message_id, _ in stored] == [f"m{n}" for n in range(301)]
    assert stored[1][1] == {"n": 1, "text": "é" * 10}


def test_a_batch_goes_to_the_socket_in_one_write(vhost: Vhost, target: tuple[ConfirmedPublisher, Queue]) -> None:
    publisher, queue = target
    publisher.publish_many(outgoing(queue.exchange.name, 1))  # connected
    transport = publisher._channel.connection.transport
    writes: list[int] = []
    direct = transport.write
    transport.write = lambda data: (writes.append(len(data)), direct(data))[1]
    try:
        publisher.publish_many(
            [
                *outgoing(queue.exchange.name, 50),
                Outgoing({"big": "x" * 300_000}, queue.exchange.name, "bound.big", "big"),
            ]
        )
    finally:
        transport.write = direct
    assert len(writes) == 1 and writes[0] > 300_000  # 51 messages, one larger than a frame, in one write
    stored = read_all(vhost.amqp_uri, queue)
    assert [message_id for message_id, _ in stored] == ["m0", *(f"m{n}" for n in range(50)), "big"]
    assert stored[-1][1] == {"big": "x" * 300_000}


def test_an_unroutable_message_is_named_and_the_others_are_stored(
    vhost: Vhost, target: tuple[ConfirmedPublisher, Queue]
) -> None:
    publisher, queue = target
    batch = outgoing(queue.exchange.name, 3)
    batch.insert(1, Outgoing({"n": "lost"}, queue.exchange.name, "nobody.listens", "orphan"))

    with pytest.raises(Unroutable, match=r"nobody\.listens") as refused:
        publisher.publish_many(batch)

    assert refused.value.confirmed == ["m0", "m1", "m2"]
    assert [message_id for message_id, _ in read_all(vhost.amqp_uri, queue)] == ["m0", "m1", "m2"]
    publisher.publish_many(outgoing(queue.exchange.name, 1))  # the publisher is still usable
    assert [message_id for message_id, _ in read_all(vhost.amqp_uri, queue)] == ["m0"]


def test_a_missing_exchange_fails_the_batch_and_the_next_batch_goes_through(
    vhost: Vhost, target: tuple[ConfirmedPublisher, Queue]
) -> None:
    publisher, queue = target
    with pytest.raises(PublishFailed, match="no-such-exchange") as failed:
        publisher.publish_many([Outgoing({"n": 0}, "no-such-exchange", "bound.x", "m0")])
    assert failed.value.confirmed == []

    publisher.publish_many(outgoing(queue.exchange.name, 2))
    assert [message_id for message_id, _ in read_all(vhost.amqp_uri, queue)] == ["m0", "m1"]


def test_a_connection_closed_by_the_broker_fails_once_then_reconnects(
    vhost: Vhost, target: tuple[ConfirmedPublisher, Queue]
) -> None:
    publisher, queue = target
    publisher.publish_many(outgoing(queue.exchange.name, 1))
    path = f"/vhosts/{urllib.parse.quote(vhost.name, safe='')}/connections"
    connections = wait_for(lambda: _api_json(path), message="the publisher's connection is listed")
    for connection in connections:
        _api("DELETE", f"/connections/{urllib.parse.quote(connection['name'], safe='')}")

    # the publisher learns of the closed connection on its next publish: it fails, naming nothing as stored...
    with pytest.raises(PublishFailed) as failed:
        publisher.publish_many(outgoing(queue.exchange.name, 2))
    assert failed.value.confirmed == []
    # ...and the next one reconnects
    publisher.publish_many(outgoing(queue.exchange.name, 2))
    assert [message_id for message_id, _ in read_all(vhost.amqp_uri, queue)] == ["m0", "m0", "m1"]


# ---- event packs ----------------------------------------------------------------------------------------------------


def keyed(exchange: str, *keys_and_ids: tuple[str, str]) -> list[Outgoing]:
    """Messages to `exchange` with these routing keys and ids; the n-th one's body is {"n": n}."""
    return [Outgoing({"n": n}, exchange, key, message_id) for n, (key, message_id) in enumerate(keys_and_ids)]


def test_events_of_a_packed_kind_travel_as_one_message_where_the_first_was_and_the_rest_as_they_are(
    vhost: Vhost, target: tuple[ConfirmedPublisher, Queue]
) -> None:
    publisher, queue = target
    exchange = queue.exchange.name
    other, routed = "bound.other", "bound.routed"
    batch = keyed(exchange, (other, "o0"), (routed, "r1"), (other, "o2"), (routed, "r3"))
    publisher.publish_many(batch, pack=["bound.routed", "bound.single"])
    publisher.publish_many([Outgoing({"n": 4}, exchange, "bound.single", "s4")], pack=["bound.single"])

    stored = read_all(vhost.amqp_uri, queue)
    assert [message_id for message_id, _ in stored] == ["o0", "pack-r1-2", "o2", "s4"]  # one alone is no pack
    assert stored[1][1] == {"pack": 1, "events": [{"n": 1}, {"n": 3}]}
    assert is_pack(stored[1][1]) and unpacked(stored[1][1]) == [{"n": 1}, {"n": 3}]
    assert unpacked(stored[3][1]) == [{"n": 4}]


def test_a_failure_names_the_events_of_the_packs_the_broker_stored(
    vhost: Vhost, target: tuple[ConfirmedPublisher, Queue]
) -> None:
    publisher, queue = target
    batch = keyed(queue.exchange.name, ("bound.routed", "r1"), ("nobody.listens", "orphan"), ("bound.routed", "r3"))
    with pytest.raises(Unroutable) as refused:
        publisher.publish_many(batch, pack=["bound.routed"])
    assert refused.value.confirmed == ["r1", "r3"]  # stored, inside their pack
    assert [message_id for message_id, _ in read_all(vhost.amqp_uri, queue)] == ["pack-r1-2"]


def test_messages_with_headers_of_their_own_are_never_packed() -> None:
    batch = [
        Outgoing({"n": 1}, "x", "k", "a"),
        Outgoing({"n": 2}, "x", "k", "b", {"x-trace": "1"}),
        Outgoing({"n": 3}, "y", "k", "c"),
        Outgoing({"n": 4}, "x", "k", "d"),
    ]
    wire, members = pack_messages(batch, ["k"])
    assert [message.message_id for message in wire] == ["pack-a-2", "b", "c"]  # per exchange: y's one stays alone
    assert members == {"pack-a-2": ["a", "d"]}
    assert wire[0].headers == {PACK_HEADER: 2}
