"""Intake's replay: the events a stored report's history stands for equal the events intake and routing published
about it, except for what the history does not keep; a page of replayed reports, and the RPC entrypoint serving it."""

from __future__ import annotations

from typing import Any

import mongomock
from nameko.testing.services import worker_factory

from jaklapor.events import Event, ReportEventsPage, ReportRouted, ReportStatusChanged
from services.intake.dependencies import ReportRepository
from services.intake.replay import MAX_PAGE_SIZE, page_size, replay_page, replay_report
from services.intake.service import IntakeService
from services.intake.settings import IntakeSettings
from services.intake.tests.report_story import BASE_URL, T0, ReportStory, report_stories

# what a report's history does not keep: routing's key and English detail, whether the reporter left a contact
NOT_KEPT = {"routing_key", "detail", "has_contact"}


def kept(event: Event, *, with_id: bool) -> dict[str, Any]:
    body = event.to_message()
    return {k: v for k, v in body.items() if k not in NOT_KEPT and (with_id or k != "event_id")}


def test_replayed_events_are_the_published_ones_for_every_kind_of_history_entry() -> None:
    for story in report_stories():
        replayed = replay_report(story.report, BASE_URL)
        assert [kept(e, with_id=False) for e in replayed] == [kept(e, with_id=False) for e in story.events], (
            story.report_id
        )


def test_routing_results_keep_their_ids_and_the_others_get_stable_ones() -> None:
    story = next(s for s in report_stories() if s.report_id == "JK-2")
    replayed = replay_report(story.report, BASE_URL)
    routed = [e.event_id for e in replayed if isinstance(e, ReportRouted)]
    assert routed == [e.event_id for e in story.events if isinstance(e, ReportRouted)] == story.report["applied_events"]
    assert [e.event_id for e in replay_report(story.report, BASE_URL)] == [e.event_id for e in replayed]
    assert len({e.event_id for e in replayed}) == len(replayed)
    koordinasi = next(e for e in replayed if isinstance(e, ReportStatusChanged))
    assert (koordinasi.version, koordinasi.from_status, koordinasi.to_status) == (3, "menunggu", "koordinasi")
    assert koordinasi.target_opd == "sudin-perhubungan-jakarta-selatan"


def test_a_report_stored_before_intake_kept_routing_ids_and_deadlines_still_replays() -> None:
    story = ReportStory("JK-OLD").routed("sudin-bina-marga-jakarta-selatan").transition("dikerjakan")
    report = {**story.report, "applied_events": []}
    for entry in report["history"]:
        entry.pop("response_deadline", None)
        entry.pop("hop", None)
    routed = next(e for e in replay_report(report, BASE_URL) if isinstance(e, ReportRouted))
    assert (routed.hop, routed.version, routed.response_deadline) == (0, 1, None)
    assert routed.event_id == "replay:JK-OLD:1:report_routed"


def test_history_kinds_without_an_event_are_skipped() -> None:
    story = report_stories()[0]
    report = {**story.report, "history": [*story.report["history"], {"kind": "commented", "at": T0, "status": "x"}]}
    assert [kept(e, with_id=True) for e in replay_report(report, BASE_URL)] == [
        kept(e, with_id=True) for e in replay_report(story.report, BASE_URL)
    ]


def test_a_page_lists_an_unreadable_report_with_the_reason_and_points_to_the_next() -> None:
    broken = {"_id": "JK-0", "category": "jalan", "history": [{"kind": "submitted"}]}  # no time, no submitted_at
    reports = [broken, report_stories()[0].report]
    page = replay_page(reports, 2, BASE_URL)
    assert [(r.report_id, bool(r.events), r.error) for r in page.reports] == [
        ("JK-0", False, "KeyError: 'submitted_at'"),
        ("JK-1", True, None),
    ]
    assert page.next_after == "JK-1"
    assert replay_page(reports, 3, BASE_URL).next_after is None  # fewer than asked: the last page
    assert page.reports[1].parsed()[0].event_type == "intake.report_submitted"
    assert (page_size(0), page_size(50), page_size(10**6)) == (1, 50, MAX_PAGE_SIZE)


def test_the_replay_entrypoint_pages_through_the_store_in_id_order() -> None:
    repository = ReportRepository(mongomock.MongoClient(tz_aware=True)["intake"])
    stories = report_stories()
    for story in reversed(stories):
        repository.insert({**story.report, "outbox": [{"body": "never replayed"}]})
    settings = IntakeSettings(public_url=BASE_URL, opd_key_secret="-", token_secret="-", contact_key="-")
    service = worker_factory(IntakeService, store=repository, settings=settings)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = ReportEventsPage.model_validate(service.replay_events(after, 3))
        pages += 1
        seen += [r.report_id for r in page.reports]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == sorted(s.report_id for s in stories) and pages == 3
    first = ReportEventsPage.model_validate(service.replay_events(None, 1)).reports[0]
    assert [kept(e, with_id=True) for e in first.parsed()] == [
        kept(e, with_id=True) for e in replay_report(stories[0].report, BASE_URL)
    ]
    assert first.parsed()[0].occurred_at == T0  # times come back as the store keeps them
