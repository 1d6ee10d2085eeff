"""The outbox lease: a report claimed by a relay that then died is published by another relay once the lease runs
out, never while it holds; a batch whose messages were all confirmed is cleared in one write, except for what a
change queued meanwhile."""

from __future__ import annotations

from datetime import timedelta

import mongomock

from jaklapor.vocabulary import utcnow
from services.intake.dependencies import OUTBOX_LEASE, ReportRepository


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
