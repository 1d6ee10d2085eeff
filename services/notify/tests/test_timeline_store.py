"""The timeline store: each event's entry once, numbered in order, the report registered in the same write."""

from __future__ import annotations

import mongomock

from services.notify.dependencies import NotifyRepository, report_fields


def repository() -> NotifyRepository:
    return NotifyRepository(mongomock.MongoClient(tz_aware=True)["notify"])


def test_a_submitted_report_is_registered_with_its_first_entry() -> None:
    store = repository()
    assert store.append("r1", {"event_id": "e1", "kind": "status"}, report_fields("h" * 64, True)) == (
        1,
        False,
        True,
        False,
    )
    assert store.report_for_token("h" * 64) == "r1"
    assert store.report("r1")["has_contact"] is True
    assert store.entries_after("r1", 0) == [(1, {"event_id": "e1", "kind": "status"})]


def test_a_redelivered_event_adds_nothing_and_later_entries_still_follow() -> None:
    store = repository()
    store.append("r1", {"event_id": "e1"})
    assert store.append("r1", {"event_id": "e1"}) is None
    second = store.append("r1", {"event_id": "e2"})
    assert second is not None
    seq = second.seq
    assert [entry["event_id"] for _, entry in store.entries_after("r1", 0)] == ["e1", "e2"]
    assert [entry["event_id"] for _, entry in store.entries_after("r1", 1)] == ["e2"]
    assert seq > 1


def test_an_entry_reports_whether_someone_follows_the_report_live() -> None:
    store = repository()
    store.append("r1", {"event_id": "e1"})
    store.stream_opened("r1")
    assert store.append("r1", {"event_id": "e2"}).watched is True
    store.stream_closed("r1")
    assert store.append("r1", {"event_id": "e3"}).watched is False


def test_an_entry_tells_whether_the_reporter_left_a_contact_once_the_submission_is_known() -> None:
    store = repository()
    assert store.append("r1", {"event_id": "routed-first"}).has_contact is None  # the submission is not here yet
    assert store.append("r1", {"event_id": "submitted"}, report_fields("h" * 64, False)).has_contact is False
    assert store.append("r1", {"event_id": "later"}).has_contact is False
