"""The citizen's word on selesai: the rules (services/intake/citizen_feedback.py) and the entrypoints
(services/intake/citizen_api.py) through worker_factory with the in-memory fakes, and the replay of what they store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jaklapor.events import ReportConfirmed, ReportReopened, ReportStatusChanged, parse_event
from jaklapor.vocabulary import CITIZEN_ACTOR, DIKERJAKAN, SELESAI, rework_deadline
from services.intake.citizen_feedback import (
    MAX_REOPENS,
    FeedbackRefused,
    confirm,
    feedback_state,
    reopen,
    selesai_since,
)
from services.intake.replay import replay_report
from services.intake.report import Report
from services.intake.tests.test_service import (
    DINAS,
    answer,
    get,
    post,
    routed_event,
    submit,
    transition,
)
from services.intake.tests.test_verification_api import make_service, verifier_post
from tests import photo_fixtures as fx

WINDOW = timedelta(days=14)


@pytest.fixture
def service() -> Any:
    """Intake with the OPD's selesai closing the report at once (the verifier's step is tested with it below)."""
    return make_service(verification_default=False)


T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def selesai_document(at: datetime = T0, **extra: Any) -> dict[str, Any]:
    return {
        "_id": "JK-20261201-000001",
        "category": "jalan",
        "status": SELESAI,
        "version": 4,
        "submitted_at": at - timedelta(days=2),
        "assigned_opd": {"code": DINAS, "name": "Dinas Bina Marga", "level": "dinas"},
        "area": None,
        "history": [
            {"kind": "submitted", "at": at - timedelta(days=2), "status": "menunggu"},
            {"kind": "routed", "at": at - timedelta(days=2), "status": "menunggu"},
            {"kind": "transition", "at": at - timedelta(days=1), "status": DIKERJAKAN},
            {"kind": "transition", "at": at, "status": SELESAI},
        ],
        **extra,
    }


# ---- rules ----------------------------------------------------------------------------------------------------------


def test_the_window_runs_from_the_moment_the_report_last_became_selesai() -> None:
    document = selesai_document()
    assert selesai_since(document["history"]) == T0
    assert feedback_state(document, T0 + WINDOW - timedelta(seconds=1), WINDOW).window_open
    closed = feedback_state(document, T0 + WINDOW, WINDOW)
    assert not closed.window_open and not closed.can_confirm and not closed.can_reopen
    # a confirmation is one more selesai entry: the window does not move
    document["history"].append({"kind": "confirmed", "at": T0 + timedelta(days=3), "status": SELESAI})
    assert selesai_since(document["history"]) == T0
    assert selesai_since([{"status": DIKERJAKAN, "at": T0}]) is None


def test_a_merged_report_is_confirmed_or_reopened_through_its_primary_only() -> None:
    # it follows its primary's status: reopening it alone would split the one problem in two
    document = selesai_document(merged_into="JK-20261130-000009")
    assert not feedback_state(document, T0, WINDOW).can_confirm
    assert not feedback_state(document, T0, WINDOW).can_reopen
    report = Report(document, "https://lapor.example")
    for act in (lambda: confirm(report, 5, None, WINDOW, T0), lambda: reopen(report, "Masih rusak", [], WINDOW, T0)):
        with pytest.raises(FeedbackRefused) as refused:
            act()
        assert refused.value.code == "report_merged" and "JK-20261130-000009" in refused.value.message


def test_only_a_selesai_report_is_confirmed_or_reopened() -> None:
    report = Report(selesai_document(status=DIKERJAKAN), "https://lapor.example")
    with pytest.raises(FeedbackRefused) as refused:
        confirm(report, 5, None, WINDOW, T0)
    assert refused.value.code == "not_selesai"
    with pytest.raises(FeedbackRefused) as refused:
        reopen(report, "Masih berlubang", [], WINDOW, T0)
    assert refused.value.code == "not_selesai"


def test_after_the_window_neither_is_possible() -> None:
    report = Report(selesai_document(), "https://lapor.example")
    for act in (
        lambda: confirm(report, 4, None, WINDOW, T0 + WINDOW),
        lambda: reopen(report, "Belum", [], WINDOW, T0 + WINDOW),
    ):
        with pytest.raises(FeedbackRefused) as refused:
            act()
        assert refused.value.code == "window_closed"


@pytest.mark.parametrize("rating", [0, 6, -1, 10])
def test_a_rating_is_one_to_five(rating: int) -> None:
    report = Report(selesai_document(), "https://lapor.example")
    with pytest.raises(FeedbackRefused) as refused:
        confirm(report, rating, None, WINDOW, T0)
    assert (refused.value.code, refused.value.field) == ("invalid_rating", "rating")


def test_confirming_records_the_rating_and_announces_it_once() -> None:
    report = Report(selesai_document(), "https://lapor.example")
    change = confirm(report, 4, "Terima kasih", WINDOW, T0 + timedelta(hours=1))
    assert change.fields["confirmation"]["rating"] == 4
    assert change.history["kind"] == "confirmed" and change.history["status"] == SELESAI
    assert change.history["actor_opd"] == CITIZEN_ACTOR and "Terima kasih" in change.history["note"]
    (event,) = change.messages
    assert isinstance(event, ReportConfirmed)
    assert (event.rating, event.version, event.opd and event.opd.code, event.selesai_at) == (4, 5, DINAS, T0)
    confirmed = Report(selesai_document(confirmation=change.fields["confirmation"]), "https://lapor.example")
    with pytest.raises(FeedbackRefused) as refused:
        confirm(confirmed, 4, None, WINDOW, T0)
    assert refused.value.code == "already_confirmed"
    with pytest.raises(FeedbackRefused) as refused:
        reopen(confirmed, "Ternyata belum", [], WINDOW, T0)
    assert refused.value.code == "already_confirmed"


def test_reopening_sends_the_report_back_to_its_opd_as_dikerjakan_with_the_rework_deadline() -> None:
    report = Report(selesai_document(), "https://lapor.example")
    now = T0 + timedelta(days=2)
    change = reopen(report, "  Lubang masih ada  ", ["photo-1"], WINDOW, now, rework_seconds=None)
    assert change.fields["status"] == DIKERJAKAN
    assert change.fields["work_deadline"] == rework_deadline(now) == now + timedelta(days=3)
    assert change.history["kind"] == "reopened" and change.history["opd"]["code"] == DINAS
    assert change.history["reopen_reason"] == "Lubang masih ada"
    status_changed, reopened = change.messages
    assert isinstance(status_changed, ReportStatusChanged) and isinstance(reopened, ReportReopened)
    assert (status_changed.from_status, status_changed.to_status) == (SELESAI, DIKERJAKAN)
    assert (status_changed.actor_opd, status_changed.assigned_opd) == (CITIZEN_ACTOR, DINAS)
    assert (reopened.reason, reopened.opd.code, reopened.reopen_number) == ("Lubang masih ada", DINAS, 1)
    assert reopened.photos[0].url == "https://lapor.example/api/v1/photos/photo-1"
    assert status_changed.version == reopened.version == 5
    quick = reopen(report, "Masih ada", [], WINDOW, now, rework_seconds=60)
    assert quick.fields["work_deadline"] == now + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("reason", "code"), [("", "missing_reason"), ("ab", "invalid_reason"), ("x" * 1001, "invalid_reason")]
)
def test_a_reopen_needs_a_reason_of_bounded_length(reason: str, code: str) -> None:
    report = Report(selesai_document(), "https://lapor.example")
    with pytest.raises(FeedbackRefused) as refused:
        reopen(report, reason, [], WINDOW, T0)
    assert (refused.value.code, refused.value.field) == (code, "reason")


def test_a_report_is_reopened_at_most_max_reopens_times() -> None:
    earlier = [{"at": T0, "reason": "Belum"} for _ in range(MAX_REOPENS)]
    report = Report(selesai_document(reopens=earlier), "https://lapor.example")
    with pytest.raises(FeedbackRefused) as refused:
        reopen(report, "Masih belum", [], WINDOW, T0)
    assert refused.value.code == "reopen_limit"
    assert not feedback_state(report.document, T0, WINDOW).can_reopen


# ---- entrypoints ----------------------------------------------------------------------------------------------------


def finished_report(svc: Any) -> tuple[str, str]:
    """A report the OPD took and finished with an evidence photo: (report id, tracking token)."""
    receipt = submit(svc)
    report_id, token = receipt["report_id"], receipt["tracking_token"]
    svc.apply_routing_results([routed_event(report_id, DINAS)])
    assert transition(svc, report_id, DINAS, {"status": DIKERJAKAN})[0] == 200
    assert transition(svc, report_id, DINAS, {"status": SELESAI, "note": "Sudah ditambal"}, [fx.jpeg_bytes()])[0] == 200
    return report_id, token


def confirm_call(svc: Any, token: str, fields: dict[str, str]) -> tuple:
    return answer(svc.confirm_report, post(f"/api/v1/reports/{token}/confirm", fields), token)


def reopen_call(svc: Any, token: str, fields: dict[str, str], photos: Any = (), key: str | None = None) -> tuple:
    headers = {"Idempotency-Key": key} if key else None
    return answer(svc.reopen_report, post(f"/api/v1/reports/{token}/reopen", fields, photos, headers), token)


def message_types(svc: Any, report_id: str) -> list[str]:
    return [m["routing_key"] for m in svc.store.messages(report_id)]


def test_the_tracking_view_offers_the_choice_while_selesai(service: Any) -> None:
    _report_id, token = finished_report(service)
    status, view, _ = answer(service.track_report, get("/"), token)
    feedback = view["citizen_feedback"]
    assert status == 200 and feedback["can_confirm"] and feedback["can_reopen"]
    assert feedback["window_days"] == 14 and feedback["window_ends_at"] > feedback["selesai_at"]
    assert feedback["confirmed"] is None and feedback["reopens"] == []


def test_confirming_with_a_rating_is_stored_once_and_a_retry_is_answered_the_same(service: Any) -> None:
    report_id, token = finished_report(service)
    status, view, _ = confirm_call(service, token, {"rating": "5", "comment": "Mantap"})
    assert status == 200, view
    assert view["status"] == SELESAI and view["citizen_feedback"]["confirmed"]["rating"] == 5
    assert not view["citizen_feedback"]["can_reopen"] and view["history"][-1]["kind"] == "confirmed"
    again, replay, headers = confirm_call(service, token, {"rating": "5", "comment": "Mantap"})
    assert (again, headers["Idempotent-Replayed"]) == (200, "true") and replay["version"] == view["version"]
    assert message_types(service, report_id).count("report_confirmed") == 1
    status, body, _ = confirm_call(service, token, {"rating": "2"})
    assert (status, body["error"]["code"]) == (409, "already_confirmed")
    status, body, _ = reopen_call(service, token, {"reason": "Ternyata belum"})
    assert (status, body["error"]["code"]) == (409, "already_confirmed")


def test_a_bad_rating_is_named(service: Any) -> None:
    report_id, token = finished_report(service)
    for rating in ("6", "0"):
        status, body, _ = confirm_call(service, token, {"rating": rating})
        assert (status, body["error"]["code"], body["error"]["field"]) == (422, "invalid_rating", "rating")
    status, body, _ = confirm_call(service, token, {"rating": "lima"})
    assert (status, body["error"]["field"]) == (422, "rating")
    assert service.store.by_id(report_id)["status"] == SELESAI and "confirmation" not in service.store.by_id(report_id)


def test_reopening_with_a_photo_goes_back_to_the_opd_and_a_retry_changes_nothing(service: Any) -> None:
    report_id, token = finished_report(service)
    key = "reopen-key-0123456789abcdef"
    status, view, _ = reopen_call(service, token, {"reason": "Lubang masih ada"}, [fx.jpeg_bytes()], key)
    assert status == 200, view
    assert view["status"] == DIKERJAKAN and view["responsible_opd"]["code"] == DINAS
    assert view["citizen_feedback"]["work_deadline"] is not None
    assert view["citizen_feedback"]["reopens"][0]["reason"] == "Lubang masih ada"
    entry = view["history"][-1]
    assert entry["kind"] == "reopened" and entry["actor_opd"] == CITIZEN_ACTOR and "Lubang masih ada" in entry["note"]
    assert len(entry["photos"]) == 1
    photos_stored = len(service.photos.objects)
    again, replay, headers = reopen_call(service, token, {"reason": "Lubang masih ada"}, [fx.jpeg_bytes()], key)
    assert (again, headers["Idempotent-Replayed"]) == (200, "true") and replay["version"] == view["version"]
    assert len(service.photos.objects) == photos_stored  # the retry stored no second photo
    # without a key, the same reason right after is the same reopen too
    again, _, headers = reopen_call(service, token, {"reason": "Lubang masih ada"})
    assert (again, headers["Idempotent-Replayed"]) == (200, "true")
    assert message_types(service, report_id).count("report_reopened") == 1
    # the OPD sees it in its list and may finish it again, which opens a new window
    stored = service.store.by_id(report_id)
    assert stored["assigned_opd"]["code"] == DINAS and stored["status"] == DIKERJAKAN
    assert (
        transition(service, report_id, DINAS, {"status": SELESAI, "note": "Ditambal ulang"}, [fx.jpeg_bytes()])[0]
        == 200
    )
    status, view, _ = answer(service.track_report, get("/"), token)
    assert view["citizen_feedback"]["can_reopen"] and len(view["citizen_feedback"]["reopens"]) == 1


def test_a_refused_reopen_stores_no_photo(service: Any) -> None:
    receipt = submit(service)
    before = len(service.photos.objects)
    status, body, _ = reopen_call(service, receipt["tracking_token"], {"reason": "Belum beres"}, [fx.jpeg_bytes()])
    assert (status, body["error"]["code"]) == (409, "not_selesai")
    assert len(service.photos.objects) == before
    assert service.store.by_id(receipt["report_id"])["version"] == 1


def test_the_window_closes(service: Any) -> None:
    report_id, token = finished_report(service)
    for entry in service.store.reports[report_id]["history"]:
        entry["at"] -= timedelta(days=15)
    status, body, _ = reopen_call(service, token, {"reason": "Belum beres"})
    assert (status, body["error"]["code"]) == (409, "window_closed")
    status, body, _ = confirm_call(service, token, {"rating": "3"})
    assert (status, body["error"]["code"]) == (409, "window_closed")
    status, view, _ = answer(service.track_report, get("/"), token)
    assert not view["citizen_feedback"]["can_confirm"] and not view["citizen_feedback"]["can_reopen"]


def test_an_unknown_token_is_404(service: Any) -> None:
    status, body, _ = confirm_call(service, "no-such-token", {})
    assert (status, body["error"]["code"]) == (404, "report_not_found")


# ---- replay ---------------------------------------------------------------------------------------------------------


def test_the_replay_gives_the_events_that_were_published(service: Any) -> None:
    report_id, token = finished_report(service)
    reopen_call(service, token, {"reason": "Lubang masih ada"}, [fx.jpeg_bytes()])
    transition(service, report_id, DINAS, {"status": SELESAI, "note": "Ditambal ulang"}, [fx.jpeg_bytes()])
    confirm_call(service, token, {"rating": "4"})
    published = [parse_event(m["body"]) for m in service.store.messages(report_id)]
    replayed = replay_report(service.store.by_id(report_id), "https://lapor.example/")

    def facts(events: list[Any]) -> list[tuple]:
        out = []
        for e in events:
            if isinstance(e, ReportReopened):
                out.append(
                    (e.event_type, e.version, e.reason, e.opd.code, e.reopen_number, e.work_deadline, len(e.photos))
                )
            elif isinstance(e, ReportConfirmed):
                out.append((e.event_type, e.version, e.rating, e.opd and e.opd.code, e.selesai_at))
            elif isinstance(e, ReportStatusChanged):
                out.append((e.event_type, e.version, e.from_status, e.to_status, e.actor_opd, e.assigned_opd))
        return out

    assert facts(replayed) == facts(published)
    assert [e.event_type for e in replayed if e.event_type.endswith(("reopened", "confirmed"))] == [
        "intake.report_reopened",
        "intake.report_confirmed",
    ]


def test_an_empty_body_confirms_without_a_rating(service: Any) -> None:
    _report_id, token = finished_report(service)
    request = post(f"/api/v1/reports/{token}/confirm", {}, headers={"Content-Type": "text/plain"})
    status, view, _ = answer(service.confirm_report, request, token)
    assert status == 200, view
    assert view["citizen_feedback"]["confirmed"]["rating"] is None


def test_a_report_the_verifier_approved_may_be_reopened_by_its_citizen() -> None:
    verified = make_service()  # the default: the OPD's selesai waits for the city's verifier
    report_id, token = finished_report(verified)
    assert answer(verified.track_report, get("/"), token)[1]["citizen_feedback"]["can_reopen"] is False
    assert verifier_post(verified, "approve", report_id, {})[0] == 200
    assert answer(verified.track_report, get("/"), token)[1]["citizen_feedback"]["can_reopen"] is True
    status, view, _ = reopen_call(verified, token, {"reason": "Lubang masih ada"})
    assert status == 200 and view["status"] == DIKERJAKAN
