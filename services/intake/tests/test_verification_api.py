"""The verifier's API and the OPD's selesai under verification, through the entrypoints with in-memory fakes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from nameko.testing.services import worker_factory

from jaklapor.live import LiveHub
from jaklapor.opd_keys import VERIFIER_CODE, derive_key
from jaklapor.vocabulary import DIKERJAKAN, SELESAI, utc
from services.intake.photos import sanitize_photo
from services.intake.ratelimit import FailureThrottle, RateLimiter
from services.intake.service import IntakeService
from services.intake.tests.evidence_photos import north_of, photo, resized_copy
from services.intake.tests.fakes import FakePhotoStorage, FakeRelay, FakeReportStore, FakeSessionStore
from services.intake.tests.test_service import (
    DINAS,
    OPD_KEY_SECRET,
    REFERENCE,
    REPORT_FIELDS,
    SETTINGS,
    answer,
    get,
    opd_auth,
    outbox_types,
    post,
    routed_event,
)

VERIFIER_AUTH = {"Authorization": f"Bearer {derive_key(OPD_KEY_SECRET, VERIFIER_CODE)}"}
LOCATION = (float(REPORT_FIELDS["lat"]), float(REPORT_FIELDS["lon"]))


def make_service(**settings: Any) -> Any:
    return worker_factory(
        IntakeService,
        settings=SETTINGS.model_copy(update=settings),
        store=FakeReportStore(),
        photos=FakePhotoStorage(),
        photo_cleaner=sanitize_photo,
        relay=FakeRelay(),
        reference=REFERENCE,
        limiter=RateLimiter(burst=1000, per_minute=1000),
        sessions=FakeSessionStore(),
        key_throttle=FailureThrottle(),
        opd_streams=LiveHub(max_per_key=2),
    )


@pytest.fixture
def service() -> Any:
    return make_service()


def working_report(service: Any, citizen_photo: bytes) -> str:
    """A report with the citizen's photo, routed to the Dinas, which is working on it."""
    status, body, _ = answer(service.submit_report, post("/api/v1/reports", REPORT_FIELDS, [citizen_photo]))
    assert status == 201, body
    report_id = body["report_id"]
    service.apply_routing_results([routed_event(report_id, DINAS)])
    status, body, _ = opd_act(service, report_id, {"status": DIKERJAKAN})
    assert status == 200, body
    return report_id


def opd_act(service: Any, report_id: str, fields: dict[str, str], photos: Any = (), opd: str = DINAS) -> tuple:
    request = post(f"/api/v1/opd/reports/{report_id}/transitions", fields, photos, headers=opd_auth(opd))
    return answer(service.transition, request, report_id)


def finish(service: Any, report_id: str, evidence: bytes) -> tuple:
    return opd_act(service, report_id, {"status": SELESAI, "note": "Lubang sudah ditambal"}, [evidence])


def good_evidence(service: Any, report_id: str, seed: int = 11) -> bytes:
    filed = utc(service.store.reports[report_id]["submitted_at"])
    return photo(seed, north_of(*LOCATION, 35), filed + timedelta(days=2, hours=1))  # EXIF keeps whole seconds


def verifier_post(service: Any, handler: str, report_id: str, fields: dict[str, str], auth: Any = None) -> tuple:
    request = post(f"/api/v1/verifier/reports/{report_id}/{handler}", fields, headers=auth or VERIFIER_AUTH)
    return answer(getattr(service, f"verification_{handler}"), request, report_id)


def test_selesai_waits_for_the_verifier_with_the_automatic_verdict(service: Any) -> None:
    report_id = working_report(service, photo(3))
    status, view, _ = finish(service, report_id, good_evidence(service, report_id))
    assert status == 200
    assert (view["status"], view["status_label"], view["pending_verification"]) == (
        DIKERJAKAN,
        "Menunggu verifikasi",
        True,
    )
    assert view["allowed_transitions"] == []  # the OPD waits for the verifier
    assert outbox_types(service, report_id)[-1] == "report_completion_submitted"
    event = service.store.messages(report_id)[-1]["body"]
    assert event["verification_required"] and event["evidence_matched"]
    assert event["evidence"][0]["verdicts"] == ["near", "taken_after"]
    assert event["evidence"][0]["distance_m"] == pytest.approx(35, abs=1)
    # only the verdict is kept: no coordinate of the photo anywhere in the stored report
    stored = json.dumps(service.store.reports[report_id], default=str)
    assert f"{north_of(*LOCATION, 35)[0]:.5f}" not in stored
    public = view["history"][-1]
    assert (public["kind"], public["status_label"]) == ("completion_submitted", "Menunggu verifikasi")

    status, body, _ = answer(service.verification_queue, get("/api/v1/verifier/reports", VERIFIER_AUTH))
    assert status == 200 and body["count"] == 1
    (item,) = body["reports"]
    assert item["report_id"] == report_id
    assert item["completion"]["opd"]["code"] == DINAS
    assert item["completion"]["checks"][0]["text"]["id"] == "diambil 35 m dari lokasi laporan, 2 hari setelah laporan"
    assert len(item["completion"]["evidence_photos"]) == 1 and len(item["photos"]) == 1


def test_the_opd_cannot_act_while_the_verifier_holds_the_completion(service: Any) -> None:
    report_id = working_report(service, photo(3))
    finish(service, report_id, good_evidence(service, report_id))
    status, body, _ = finish(service, report_id, good_evidence(service, report_id))
    assert (status, body["error"]["code"]) == (409, "pending_verification")


def test_refused_goes_back_to_the_same_opd_with_a_new_deadline_then_approved_closes(service: Any) -> None:
    report_id = working_report(service, photo(3))
    finish(service, report_id, photo(12))  # no GPS, no time
    status, view, _ = verifier_post(service, "refuse", report_id, {"reason": "Foto tidak menunjukkan lokasi"})
    assert status == 200, view
    assert (view["status"], view["pending_verification"], view["responsible_opd"]["code"]) == (DIKERJAKAN, False, DINAS)
    assert view["verification"] == {
        **view["verification"],
        "state": "refused",
        "reason": "Foto tidak menunjukkan lokasi",
    }
    refused_at = utc(service.store.reports[report_id]["updated_at"])
    assert utc(service.store.reports[report_id]["work_deadline"]) == refused_at + timedelta(days=3)
    assert view["work_deadline"] is not None
    entry = view["history"][-1]
    assert entry["kind"] == "verification_refused" and "Foto tidak menunjukkan lokasi" in entry["note"]
    assert outbox_types(service, report_id)[-1] == "report_verification_refused"
    # a retried refusal is answered as done, once
    status, _, _ = verifier_post(service, "refuse", report_id, {"reason": "Foto tidak menunjukkan lokasi"})
    assert status == 200 and outbox_types(service, report_id).count("report_verification_refused") == 1

    # the OPD sees the refusal and finishes again
    status, view, _ = answer(
        service.opd_get_report, get(f"/api/v1/opd/reports/{report_id}", opd_auth(DINAS)), report_id
    )
    assert view["verification"]["reason"] == "Foto tidak menunjukkan lokasi" and SELESAI in view["allowed_transitions"]
    status, view, _ = finish(service, report_id, good_evidence(service, report_id))
    assert view["pending_verification"]
    status, view, _ = verifier_post(service, "approve", report_id, {})
    assert status == 200 and view["status"] == SELESAI and view["work_deadline"] is None
    assert outbox_types(service, report_id)[-2:] == ["report_status_changed", "report_verification_approved"]
    changed, approved = (m["body"] for m in service.store.messages(report_id)[-2:])
    assert (changed["from_status"], changed["to_status"], changed["actor_opd"]) == (DIKERJAKAN, SELESAI, DINAS)
    assert len(changed["evidence_photos"]) == 1 and approved["evidence_matched"] is True
    assert view["history"][-1]["verified_by"] == VERIFIER_CODE
    # approving again is a retry: answered as done, nothing sent twice
    status, _, _ = verifier_post(service, "approve", report_id, {})
    assert status == 200 and outbox_types(service, report_id).count("report_verification_approved") == 1


def test_the_citizens_own_photo_as_evidence_is_flagged(service: Any) -> None:
    citizen = photo(5)
    report_id = working_report(service, citizen)
    finish(service, report_id, resized_copy(citizen))
    check = service.store.reports[report_id]["verification"]["checks"][0]
    assert "same_as_citizen_photo" in check["verdicts"] and not check["matched"]


def test_an_exempt_category_closes_at_once_and_its_evidence_is_still_checked() -> None:
    service = make_service(verification_exceptions="jalan")  # on by default, off for jalan
    report_id = working_report(service, photo(3))
    status, view, _ = finish(service, report_id, good_evidence(service, report_id))
    assert status == 200 and view["status"] == SELESAI and not view["pending_verification"]
    assert outbox_types(service, report_id)[-2:] == ["report_status_changed", "report_completion_submitted"]
    submitted = service.store.messages(report_id)[-1]["body"]
    assert submitted["verification_required"] is False and submitted["evidence_matched"] is True


def test_verification_off_by_default_with_one_category_on() -> None:
    service = make_service(verification_default=False, verification_exceptions="jalan,sampah")
    report_id = working_report(service, photo(3))
    _, view, _ = finish(service, report_id, good_evidence(service, report_id))
    assert view["pending_verification"]


def test_the_verifier_is_no_opd_and_no_opd_verifies(service: Any) -> None:
    report_id = working_report(service, photo(3))
    status, body, _ = opd_act(
        service, report_id, {"status": "koordinasi", "note": "x", "target_opd": "perhubungan"}, opd=VERIFIER_CODE
    )
    assert (status, body["error"]["code"]) == (403, "verifier_not_an_opd")
    finish(service, report_id, good_evidence(service, report_id))
    for handler, fields in (("approve", {}), ("refuse", {"reason": "x"})):
        status, body, _ = verifier_post(service, handler, report_id, fields, opd_auth(DINAS))
        assert (status, body["error"]["code"]) == (403, "not_a_verifier")
    status, body, _ = answer(service.verification_queue, get("/api/v1/verifier/reports", opd_auth(DINAS)))
    assert (status, body["error"]["code"]) == (403, "not_a_verifier")
    # the verifier's own view of the OPD API: who it is, and nothing assigned to it
    status, body, _ = answer(service.whoami, get("/api/v1/opd/me", VERIFIER_AUTH))
    assert body["opd"] == {"code": VERIFIER_CODE, "name": "Biro Pemerintahan (verifikator)", "level": "verifier"}


def test_refusing_needs_a_reason_and_a_pending_completion(service: Any) -> None:
    report_id = working_report(service, photo(3))
    status, body, _ = verifier_post(service, "approve", report_id, {})
    assert (status, body["error"]["code"]) == (404, "report_not_found")
    finish(service, report_id, good_evidence(service, report_id))
    status, body, _ = verifier_post(service, "refuse", report_id, {"reason": "  "})
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "missing_reason", "reason")
    verifier_post(service, "approve", report_id, {})
    status, body, _ = verifier_post(service, "refuse", report_id, {"reason": "terlambat"})
    assert (status, body["error"]["code"]) == (409, "not_pending_verification")


def test_a_replay_of_the_history_announces_the_verification_again(service: Any) -> None:
    from services.intake.replay import replay_report

    report_id = working_report(service, photo(3))
    finish(service, report_id, photo(12))
    verifier_post(service, "refuse", report_id, {"reason": "Foto tidak jelas"})
    finish(service, report_id, good_evidence(service, report_id))
    verifier_post(service, "approve", report_id, {})
    kinds = ("report_completion_submitted", "report_verification_refused", "report_verification_approved")
    live = [m["body"] for m in service.store.messages(report_id) if m["body"]["event_type"].split(".")[1] in kinds]
    replayed = [
        event.to_message()
        for event in replay_report(service.store.reports[report_id], SETTINGS.public_url)
        if event.type_name in kinds
    ]
    compared = ("event_type", "version", "opd", "evidence_matched", "reason", "verification_required")
    assert [{k: e.get(k) for k in compared} for e in replayed] == [{k: e.get(k) for k in compared} for e in live]
    assert [e["evidence"] for e in replayed if "evidence" in e] == [e["evidence"] for e in live if "evidence" in e]


def test_a_replay_of_an_exempt_closure_announces_its_check() -> None:
    from services.intake.replay import replay_report

    service = make_service(verification_exceptions="jalan")
    report_id = working_report(service, photo(3))
    finish(service, report_id, good_evidence(service, report_id))
    (replayed,) = [
        e
        for e in replay_report(service.store.reports[report_id], SETTINGS.public_url)
        if e.type_name == "report_completion_submitted"
    ]
    live = service.store.messages(report_id)[-1]["body"]
    assert (replayed.verification_required, replayed.evidence_matched, replayed.version) == (
        False,
        True,
        live["version"],
    )


def test_a_report_sent_back_then_handed_over_starts_afresh_at_the_new_opd(service: Any) -> None:
    report_id = working_report(service, photo(3))
    finish(service, report_id, photo(12))
    verifier_post(service, "refuse", report_id, {"reason": "Bukan di lokasi"})
    status, view, _ = opd_act(
        service, report_id, {"status": "koordinasi", "note": "Kewenangan Perhubungan", "target_opd": "perhubungan"}
    )
    assert status == 200, view
    assert (view["work_deadline"], view["verification"]) == (None, None)
    assert any(entry["kind"] == "verification_refused" for entry in view["history"])
