"""Batched acknowledgements (jaklapor/acks.py) against a recording channel: a multiple ack never covers a delivery
that was not handled, never names a settled tag, and nothing waits past the delay."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import eventlet

from jaklapor.acks import AckBatcher


@dataclass
class RecordingChannel:
    connection: Any = True
    acks: list[tuple[int, bool]] = field(default_factory=list)

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.acks.append((delivery_tag, multiple))


@dataclass
class Delivery:
    channel: RecordingChannel
    delivery_tag: int


def acked_tags(channel: RecordingChannel, delivered: int) -> set[int]:
    """What the broker would consider acknowledged after these acks."""
    tags: set[int] = set()
    for tag, multiple in channel.acks:
        tags |= set(range(1, tag + 1)) if multiple else {tag}
    return tags & set(range(1, delivered + 1))


def test_finished_deliveries_in_order_share_one_multiple_ack() -> None:
    channel = RecordingChannel()
    acks = AckBatcher(max_batch=4)
    for tag in range(1, 9):
        acks.finished(Delivery(channel, tag))
    assert channel.acks == [(4, True), (8, True)]


def test_a_delivery_still_being_handled_is_never_covered() -> None:
    channel = RecordingChannel()
    acks = AckBatcher(max_batch=4)
    for tag in (1, 2, 4, 5):  # 3 is still in a handler
        acks.finished(Delivery(channel, tag))
    assert channel.acks == [(2, True), (4, False), (5, False)]
    assert 3 not in acked_tags(channel, 5)

    for tag in (3, 6, 7, 8):
        acks.finished(Delivery(channel, tag))
    assert channel.acks[3:] == [(8, True)]  # 4 and 5 were acked already: 8 is the tag named
    assert acked_tags(channel, 8) == set(range(1, 9))


def test_requeued_and_rejected_deliveries_let_the_batch_pass_but_are_never_named() -> None:
    channel = RecordingChannel()
    acks = AckBatcher(max_batch=3)
    acks.finished(Delivery(channel, 1))
    acks.settled(Delivery(channel, 2))  # requeued by a failed handler
    acks.finished(Delivery(channel, 3))
    acks.settled(Delivery(channel, 4))
    acks.finished(Delivery(channel, 5))
    assert channel.acks == [(5, True)]


def test_a_lone_finished_delivery_is_acked_after_the_delay() -> None:
    channel = RecordingChannel()
    acks = AckBatcher(max_batch=10, max_delay=0.01)
    acks.finished(Delivery(channel, 1))
    assert channel.acks == []
    eventlet.sleep(0.05)
    assert channel.acks == [(1, True)]


def test_a_new_channel_starts_afresh_and_the_old_ones_acks_go_out_on_it() -> None:
    old, new = RecordingChannel(), RecordingChannel()
    acks = AckBatcher(max_batch=10)
    acks.finished(Delivery(old, 1))
    acks.finished(Delivery(new, 1))  # the consumer reconnected: tags count from 1 again
    assert old.acks == [(1, True)]
    acks.flush()
    assert new.acks == [(1, True)]


def test_a_delivery_of_a_closed_channel_is_not_acked() -> None:
    closed, current = RecordingChannel(connection=None), RecordingChannel()
    acks = AckBatcher(max_batch=10)
    acks.finished(Delivery(current, 1))
    assert acks.finished(Delivery(closed, 7)) is False
    acks.flush()
    assert closed.acks == [] and current.acks == [(1, True)]
