"""Supporters' subscriptions (services/intake/duplicates.py): someone who follows a report instead of filing it again
gets its citizen notifications beside its reporter, each on their own subscription, unsubscribed on their own."""

from __future__ import annotations

import json
from typing import Any

from jaklapor.contacts import encrypt_contact
from services.notify.dependencies import NotifyRepository
from services.notify.tests import test_dispatcher as base
from services.notify.tests.test_dispatcher import (
    KEY,
    REPORT,
    make,
    notification,
    register,
    states,
    submitted,
    wait_until,
)

# the dispatcher tests' fixtures, shared (pytest finds a fixture by its name in the module)
repository = base.repository
running = base.running


def support(repository: NotifyRepository, contact: str, supporter: str, token: str) -> None:
    bundle = json.dumps({"contact": contact, "tracking_url": f"https://lapor.example/api/v1/reports/public/{REPORT}"})
    repository.store_contact(
        REPORT,
        "h" * 64,
        encrypt_contact(KEY, bundle),
        kind="email",
        unsubscribe_hash="x" + token,
        unsubscribe_ciphertext=encrypt_contact(KEY, token),
        supporter_hash=supporter,
    )


def test_supporters_get_the_citizen_messages_beside_the_reporter(repository: NotifyRepository, running: Any) -> None:
    dispatcher, smtp, _hooks = make(repository)
    register(repository, "pelapor@example.org")
    support(repository, "pendukung@example.org", "a" * 64, "A" * 43)
    support(repository, "pendukung@example.org", "a" * 64, "B" * 43)  # the same supporter again: kept once
    support(repository, "tetangga@example.org", "b" * 64, "C" * 43)
    assert dispatcher.enqueue([notification()]) == 3
    assert dispatcher.enqueue([notification()]) == 0  # idempotent per event and subscription
    running(dispatcher)
    wait_until(lambda: len(smtp.sent) == 3)
    to = sorted(message["To"] for message in smtp.sent)
    assert to == ["pelapor@example.org", "pendukung@example.org", "tetangga@example.org"]
    supporter_mail = next(m for m in smtp.sent if m["To"] == "pendukung@example.org").get_content()
    assert f"/api/v1/reports/public/{REPORT}" in supporter_mail and "A" * 43 in supporter_mail
    documents = list(repository.deliveries.find())
    assert "pendukung" not in json.dumps(documents, default=str), "a delivery never holds the contact"


def test_a_report_without_the_reporters_contact_still_tells_its_supporters(repository: NotifyRepository) -> None:
    dispatcher, _smtp, _hooks = make(repository)
    submitted(repository, has_contact=False)
    assert dispatcher.enqueue([notification()], has_contact=False) == 0
    support(repository, "pendukung@example.org", "a" * 64, "A" * 43)
    assert dispatcher.enqueue([notification(event_id="e2")], has_contact=False) == 1


def test_a_supporter_unsubscribed_gets_nothing_more_and_the_reporter_still_does(
    repository: NotifyRepository, running: Any
) -> None:
    dispatcher, smtp, _hooks = make(repository)
    register(repository, "pelapor@example.org")
    support(repository, "pendukung@example.org", "a" * 64, "A" * 43)
    dispatcher.enqueue([notification()])
    (supporter,) = repository.supporter_contacts(REPORT)
    assert repository.remove_contact(supporter["_id"], "unsubscribed")
    assert repository.cancel_citizen_deliveries(supporter["_id"], "unsubscribed") == 1
    running(dispatcher)
    wait_until(lambda: smtp.sent)
    wait_until(lambda: "pending" not in states(repository).values())
    assert [message["To"] for message in smtp.sent] == ["pelapor@example.org"]
    assert repository.supporter_contacts(REPORT) == []


def test_a_merge_is_on_the_citizens_timeline_and_told_in_their_message() -> None:
    from datetime import UTC, datetime

    from jaklapor.events import ReportMerged
    from services.notify.domain import notifications_for, timeline_entry
    from services.notify.messages import CitizenLinks, render_citizen_email

    event = ReportMerged(
        report_id=REPORT,
        version=4,
        primary_id="JK-20261128-000009",
        actor_opd="bina-marga",
        from_status="menunggu",
        status="dikerjakan",
        note="Laporan ini digabung ke JK-20261128-000009",
        category="jalan",
        submitted_at=datetime(2026, 11, 28, tzinfo=UTC),
    )
    entry = timeline_entry(event)
    assert entry is not None
    assert (entry["kind"], entry["status"], entry["primary_id"]) == ("merged", "dikerjakan", "JK-20261128-000009")
    (told,) = notifications_for(event, lambda code: None)
    assert (told.audience, told.kind) == ("citizen", "merged")
    links = CitizenLinks("https://lapor.example/lacak", "https://notify.example/u/x")
    rendered = render_citizen_email(REPORT, told.kind, told.facts, told.occurred_at, links, 30)
    assert "digabung ke JK-20261128-000009" in rendered.text and "merged into JK-20261128-000009" in rendered.text


def test_the_timeline_write_tells_whether_supporters_left_a_contact_so_most_reports_skip_the_lookup(
    repository: NotifyRepository, monkeypatch: Any
) -> None:
    dispatcher, _smtp, _hooks = make(repository)
    appended = repository.append(REPORT, {"event_id": "a1", "kind": "submitted"})
    assert appended is not None and appended.supporter_contacts is False
    lookups: list[str] = []
    monkeypatch.setattr(repository, "report", lambda report_id: lookups.append(report_id))
    assert dispatcher.enqueue([notification()], has_contact=False, supporter_contacts=False) == 0
    assert lookups == []
    monkeypatch.undo()
    support(repository, "pendukung@example.org", "a" * 64, "A" * 43)
    appended = repository.append(REPORT, {"event_id": "a2", "kind": "status_changed"})
    assert appended is not None and appended.supporter_contacts is True
