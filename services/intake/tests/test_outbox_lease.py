"""The outbox lease: a report claimed by a relay that then died is published by another relay once the lease runs
out, never while it holds; a batch whose messages were all confirmed is cleared in one write, except for what a
change queued meanwhile. A new report is stored already leased to the relay of the process that accepted it."""

from __future__ import annotations

from datetime import timedelta

import mongomock

from jaklapor.messaging import Outgoing
from jaklapor.vocabulary import utcnow
from services.intake.dependencies import (
    OUTBOX_LEASE,
    PRECLAIM_LEASE,
    PRECLAIM_MARGIN,
    OutboxLease,
    OutboxRelay,
    ReportRepository,
)


def message(message_id: str) -> dict:
    return {"message_id": message_id, "exchange": "intake.events", "routing_key": "report_submitted", "body": {}}


def repository_with_pending_reports(*report_ids: str) -> ReportRepository:
    repository = ReportRepository(mongomock.MongoClient(tz_aware=True)["intake"])
    for report_id in report_ids:
        repository.reports.insert_one(
            {"_id": report_id, "version": 1, "outbox": [message(f"{report_id}:m1")], "outbox_due": utcnow()}
        )
    return repository


def outbox_ids(claims: list[dict]) -> list[list[str]]:
    return [[m["message_id"] for m in claim["outbox"]] for claim in claims]


def test_a_claim_held_by_a_dead_relay_is_taken_over_only_after_the_lease() -> None:
    repository = repository_with_pending_reports("JK-1")
    now = utcnow()
    assert repository.claim_outboxes(["JK-1"], now)  # this relay dies now, holding the lease
    assert repository.claim_due_outboxes(now + timedelta(seconds=1), 10) == []
    assert repository.claim_outboxes(["JK-1"], now + timedelta(seconds=1)) == []
    assert repository.claim_due_outboxes(now + OUTBOX_LEASE - timedelta(seconds=1), 10) == []
    taken_over = repository.claim_due_outboxes(now + OUTBOX_LEASE + timedelta(seconds=1), 10)
    assert outbox_ids(taken_over) == [["JK-1:m1"]]


def test_concurrent_claims_share_nothing_and_keep_the_hand_over_order() -> None:
    repository = repository_with_pending_reports("JK-1", "JK-2", "JK-3")
    now = utcnow()
    first = repository.claim_outboxes(["JK-3", "JK-1"], now)
    second = repository.claim_outboxes(["JK-1", "JK-2", "JK-3"], now)
    assert [claim["_id"] for claim in first] == ["JK-3", "JK-1"]
    assert [claim["_id"] for claim in second] == ["JK-2"]


def test_publishing_a_whole_batch_clears_every_outbox() -> None:
    repository = repository_with_pending_reports("JK-1", "JK-2")
    claims = repository.claim_outboxes(["JK-1", "JK-2"], utcnow())
    repository.outboxes_published(claims)
    for stored in repository.reports.find():
        assert stored["outbox"] == [] and "outbox_due" not in stored and "outbox_claim" not in stored
    assert repository.claim_due_outboxes(utcnow() + 2 * OUTBOX_LEASE, 10) == []


def test_messages_queued_after_the_claim_stay_due() -> None:
    repository = repository_with_pending_reports("JK-1", "JK-2")
    claims = repository.claim_outboxes(["JK-1", "JK-2"], utcnow())
    # a status change of JK-2 stores its event while the batch is being published
    repository.update_versioned("JK-2", 1, {"status": "dikerjakan"}, {"event": "x"}, [message("JK-2:m2")])
    repository.outboxes_published(claims)

    assert repository.reports.find_one({"_id": "JK-1"})["outbox"] == []
    due = repository.claim_due_outboxes(utcnow(), 10)
    assert [claim["_id"] for claim in due] == ["JK-2"] and outbox_ids(due) == [["JK-2:m2"]]


# ---- new reports, stored already leased to the relay of the process that accepted them ---------------------------


class RecordingPublisher:
    """A broker that confirms everything: the message ids it was given, in order."""

    def __init__(self) -> None:
        self.published: list[str] = []

    def publish_many(self, messages: list[Outgoing], pack: list[str] | None = None) -> None:
        self.published.extend(message.message_id for message in messages)

    def close(self) -> None:
        pass


def relay_over(repository: ReportRepository) -> tuple[OutboxRelay, RecordingPublisher]:
    publisher = RecordingPublisher()
    relay = OutboxRelay()
    relay.configure(repository, [publisher], batch_size=100, linger=0.0)
    relay._running = True  # as `start` leaves it, without the relay threads: the test drains by hand
    return relay, publisher


def store_new_report(repository: ReportRepository, report_id: str, lease: OutboxLease) -> dict:
    """A submission as intake stores it: its messages leased to the relay that will publish them."""
    report = {
        "_id": report_id,
        "version": 1,
        "outbox": [message(f"{report_id}:m1")],
        "outbox_due": lease.until,
        "outbox_claim": lease.claim,
    }
    repository.insert(dict(report))
    return lease.claim_of(report)


def test_a_new_report_is_published_under_the_lease_it_was_stored_with_and_cleared() -> None:
    repository = repository_with_pending_reports()
    relay, publisher = relay_over(repository)
    relay.publish_leased(store_new_report(repository, "JK-1", relay.new_lease()))
    relay.publish_leased(store_new_report(repository, "JK-2", relay.new_lease()))

    assert relay.drain(publisher)

    assert publisher.published == ["JK-1:m1", "JK-2:m1"]
    for stored in repository.reports.find():
        assert stored["outbox"] == [] and "outbox_due" not in stored and "outbox_claim" not in stored


def test_a_new_report_of_a_killed_process_is_taken_over_once_its_short_lease_runs_out() -> None:
    repository = repository_with_pending_reports()
    now = utcnow()
    store_new_report(repository, "JK-1", OutboxLease.taken_at(now, PRECLAIM_LEASE))  # then the process dies

    assert repository.claim_due_outboxes(now + timedelta(seconds=1), 10) == []
    taken_over = repository.claim_due_outboxes(now + PRECLAIM_LEASE + timedelta(seconds=1), 10)
    assert outbox_ids(taken_over) == [["JK-1:m1"]]
    assert PRECLAIM_LEASE < OUTBOX_LEASE


def test_a_stopping_relay_makes_the_new_reports_it_did_not_publish_due_at_once() -> None:
    repository = repository_with_pending_reports()
    relay, _ = relay_over(repository)
    relay.publish_leased(store_new_report(repository, "JK-1", relay.new_lease()))

    relay.stop()

    assert outbox_ids(repository.claim_due_outboxes(utcnow(), 10)) == [["JK-1:m1"]]


def test_a_new_report_whose_lease_is_nearly_over_is_left_to_the_scan_not_published_late() -> None:
    repository = repository_with_pending_reports()
    relay, publisher = relay_over(repository)
    old = OutboxLease.taken_at(utcnow() - (PRECLAIM_LEASE - PRECLAIM_MARGIN) - timedelta(seconds=1), PRECLAIM_LEASE)
    relay.publish_leased(store_new_report(repository, "JK-1", old))

    assert relay.drain(publisher)

    assert publisher.published == [], "a publish could outlast the lease, and another relay publish it too"
    assert outbox_ids(repository.claim_due_outboxes(old.until + timedelta(seconds=1), 10)) == [["JK-1:m1"]]


def test_a_new_report_changed_before_its_publish_goes_out_once_with_all_its_messages() -> None:
    repository = repository_with_pending_reports("JK-2")
    relay, publisher = relay_over(repository)
    relay.publish_leased(store_new_report(repository, "JK-1", relay.new_lease()))
    repository.update_versioned("JK-1", 1, {"status": "ditolak"}, {"event": "x"}, [message("JK-1:m2")])
    relay.publish_soon("JK-1")
    relay.publish_soon("JK-2")

    assert relay.drain(publisher)

    assert sorted(publisher.published) == ["JK-1:m1", "JK-1:m2", "JK-2:m1"]
    assert publisher.published.index("JK-1:m1") < publisher.published.index("JK-1:m2")
    assert repository.claim_due_outboxes(utcnow() + 2 * OUTBOX_LEASE, 10) == []


def test_new_reports_and_claimed_ones_are_cleared_together_except_what_a_change_queued_meanwhile() -> None:
    repository = repository_with_pending_reports("JK-2", "JK-3")
    relay, _ = relay_over(repository)
    claims = [store_new_report(repository, "JK-1", relay.new_lease())]
    claims += repository.claim_outboxes(["JK-2", "JK-3"], utcnow())
    repository.update_versioned("JK-1", 1, {"status": "ditolak"}, {"event": "x"}, [message("JK-1:m2")])

    repository.outboxes_published(claims)

    assert [repository.reports.find_one({"_id": r})["outbox"] for r in ("JK-2", "JK-3")] == [[], []]
    assert outbox_ids(repository.claim_due_outboxes(utcnow(), 10)) == [["JK-1:m2"]]
