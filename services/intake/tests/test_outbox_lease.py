"""The outbox lease: a report claimed by a relay that then died is published by another relay once the lease runs
out, never while it holds; a claim that published everything clears the outbox in one write."""

from __future__ import annotations

from datetime import timedelta

import mongomock

from jaklapor.events import utcnow
from services.intake.dependencies import OUTBOX_LEASE, ReportRepository


def repository_with_pending_report() -> tuple[ReportRepository, str]:
    repository = ReportRepository(mongomock.MongoClient(tz_aware=True)["intake"])
    message = {"message_id": "m1", "exchange": "jaklapor.events", "routing_key": "intake.report_submitted", "body": {}}
    repository.reports.insert_one({"_id": "JK-1", "outbox": [message], "outbox_due": utcnow()})
    return repository, "JK-1"


def test_a_claim_held_by_a_dead_relay_is_taken_over_only_after_the_lease() -> None:
    repository, report_id = repository_with_pending_report()
    now = utcnow()
    assert repository.claim_report_outbox(report_id, now) is not None  # this relay dies now, holding the lease
    assert repository.claim_outbox(now + timedelta(seconds=1)) is None
    assert repository.claim_outbox(now + OUTBOX_LEASE - timedelta(seconds=1)) is None
    taken_over = repository.claim_outbox(now + OUTBOX_LEASE + timedelta(seconds=1))
    assert taken_over is not None and [m["message_id"] for m in taken_over["outbox"]] == ["m1"]


def test_publishing_the_whole_claim_clears_the_outbox() -> None:
    repository, report_id = repository_with_pending_report()
    claim = repository.claim_report_outbox(report_id, utcnow())
    assert claim is not None
    repository.outbox_published(report_id, ["m1"], claim["lease"])
    stored = repository.reports.find_one({"_id": report_id})
    assert stored["outbox"] == [] and "outbox_due" not in stored
    assert repository.claim_outbox(utcnow() + 2 * OUTBOX_LEASE) is None
