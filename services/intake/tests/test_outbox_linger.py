"""The outbox relay's linger: while reports come closer together than `linger`, a round waits for company (one
store write, one confirm and one event pack for several reports); a report after a quiet spell goes out at once."""

from __future__ import annotations

from typing import Any

import mongomock
import pytest

from jaklapor.messaging import Outgoing
from services.intake import dependencies
from services.intake.dependencies import OutboxRelay, ReportRepository

LINGER = 0.05


class Clock:
    """Monotonic time that moves only when the relay sleeps or the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


class RoundRecorder:
    """A broker that confirms everything, recording each round's message ids."""

    def __init__(self) -> None:
        self.rounds: list[list[str]] = []

    def publish_many(self, messages: list[Outgoing], pack: list[str] | None = None) -> None:
        self.rounds.append([message.message_id for message in messages])

    def close(self) -> None:
        pass


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(dependencies, "time", clock)
    monkeypatch.setattr(dependencies.eventlet, "sleep", clock.sleep)
    return clock


@pytest.fixture
def relay() -> tuple[OutboxRelay, RoundRecorder]:
    repository = ReportRepository(mongomock.MongoClient(tz_aware=True)["intake"])
    publisher = RoundRecorder()
    relay = OutboxRelay()
    relay.configure(repository, [publisher], batch_size=100, linger=LINGER)
    relay._running = True  # as `start` leaves it, without the relay threads: the test drains by hand
    return relay, publisher


def submit(relay: OutboxRelay, report_id: str) -> None:
    """A submission as intake stores it and hands it over, leased to this relay."""
    lease = relay.new_lease()
    report: dict[str, Any] = {
        "_id": report_id,
        "version": 1,
        "outbox": [{"message_id": f"{report_id}:m1", "exchange": "intake.events", "routing_key": "x", "body": {}}],
        "outbox_due": lease.until,
        "outbox_claim": lease.claim,
    }
    relay.repository.insert(dict(report))
    relay.publish_leased(lease.claim_of(report))


def submit_spaced(relay: OutboxRelay, clock: Clock, gap: float, *report_ids: str) -> None:
    """Submissions `gap` seconds apart; the clock stays at the last one."""
    for n, report_id in enumerate(report_ids):
        if n:
            clock.now += gap
        submit(relay, report_id)


def test_the_first_report_goes_out_at_once(clock: Clock, relay: tuple[OutboxRelay, RoundRecorder]) -> None:
    relay_, publisher = relay
    submit(relay_, "JK-1")

    assert relay_.drain(publisher)

    assert clock.sleeps == []
    assert publisher.rounds == [["JK-1:m1"]]


def test_reports_closer_together_than_the_linger_share_a_round(
    clock: Clock, relay: tuple[OutboxRelay, RoundRecorder]
) -> None:
    relay_, publisher = relay
    submit_spaced(relay_, clock, 0.005, "JK-1", "JK-2", "JK-3")

    assert relay_.drain(publisher)

    assert clock.sleeps == [pytest.approx(LINGER - 0.01)], "the round waits until its oldest report waited LINGER"
    assert publisher.rounds == [["JK-1:m1", "JK-2:m1", "JK-3:m1"]]


def test_a_report_after_a_quiet_spell_does_not_wait_for_company(
    clock: Clock, relay: tuple[OutboxRelay, RoundRecorder]
) -> None:
    relay_, publisher = relay
    submit_spaced(relay_, clock, 0.002, "JK-1", "JK-2")
    assert relay_.drain(publisher)
    clock.sleeps.clear()

    clock.now += 2 * LINGER  # nobody submits for a while
    submit(relay_, "JK-3")
    assert relay_.drain(publisher)

    assert clock.sleeps == []
    assert publisher.rounds[-1] == ["JK-3:m1"]


def test_a_full_round_never_waits(clock: Clock, relay: tuple[OutboxRelay, RoundRecorder]) -> None:
    relay_, publisher = relay
    relay_.batch_size = 3
    submit_spaced(relay_, clock, 0.001, "JK-1", "JK-2", "JK-3", "JK-4")

    assert relay_.drain(publisher)

    # the full round went out at once; the last report then waited for company until it had waited LINGER
    assert publisher.rounds == [["JK-1:m1", "JK-2:m1", "JK-3:m1"], ["JK-4:m1"]]
    assert clock.sleeps == [pytest.approx(LINGER)]
