"""The Report aggregate on its own: each command's fields, history entry and messages, with no store at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jaklapor.events import (
    AreaRef,
    ContactRegistered,
    Location,
    OpdRef,
    ReportEscalated,
    ReportForwarded,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportUnroutable,
)
from jaklapor.reference import Directory, load_directory
from jaklapor.vocabulary import DIKERJAKAN, KOORDINASI, MENUNGGU, SELESAI
from services.intake.dependencies import outbox_entry
from services.intake.domain import SubmissionRetry, TransitionRequest
from services.intake.report import Report

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
BASE = "https://lapor.example"
DINAS = "bina-marga"
OTHER_OPD = "perhubungan"
KELURAHAN = "kelurahan-melawai"
AREA = {"code": "31.74.06.1006", "kelurahan": "Melawai", "kecamatan": "Kebayoran Baru", "kota": "Jakarta Selatan"}


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory()


def submitted(contact: str | None = None, retry: SubmissionRetry | None = None) -> Any:
    return Report.submit(
        report_id="JK-20261127-000001",
        tracking_token_hash="f" * 64,
        category="jalan",
        description="Jalan berlubang",
        location=Location(lat=-6.2441, lon=106.8013),
        photos=[{"photo_id": "p1", "width": 8, "height": 6, "content_type": "image/jpeg"}],
        contact_ciphertext=contact,
        now=NOW,
        photo_base_url=BASE,
        retry=retry,
    )


def assigned(directory: Directory, opd_code: str = DINAS, status: str = MENUNGGU, **fields: Any) -> Report:
    """A submitted report, routed to `opd_code`, as the store hands it back."""
    opd = directory.get(opd_code)
    document = {
        **submitted().document,
        "status": status,
        "version": 2,
        "assigned_opd": {"code": opd.code, "name": opd.name, "level": opd.level},
        "area": {**AREA, "kota_slug": "jakarta-selatan"},
        **fields,
    }
    return Report(document, BASE)


def test_a_submission_is_a_waiting_report_announced_once() -> None:
    new = submitted()
    document = new.document
    assert (document["status"], document["version"], document["hop"], document["assigned_opd"]) == (
        MENUNGGU,
        1,
        0,
        None,
    )
    assert [(h["kind"], h["note"]) for h in document["history"]] == [("submitted", "Laporan diterima")]
    assert "idempotency_key_hash" not in document and "outbox" not in document
    (event,) = new.messages
    assert isinstance(event, ReportSubmitted)
    assert (event.version, event.has_contact, event.submitted_at) == (1, False, NOW)
    assert event.photos[0].url == "https://lapor.example/api/v1/photos/p1"


def test_a_contact_goes_to_notify_beside_the_event_and_a_retry_key_is_kept() -> None:
    new = submitted("gAAAA-ciphertext", SubmissionRetry(key_hash="k" * 64, fingerprint="fp", token="t"))
    event, contact = new.messages
    assert isinstance(event, ReportSubmitted) and event.has_contact
    assert contact == ContactRegistered(
        report_id="JK-20261127-000001", tracking_token_hash="f" * 64, contact_ciphertext="gAAAA-ciphertext"
    )
    assert (new.document["idempotency_key_hash"], new.document["idempotency_fingerprint"]) == ("k" * 64, "fp")
    entries = [outbox_entry(message) for message in new.messages]
    assert [(e["exchange"], e["routing_key"]) for e in entries] == [
        ("intake.events", "report_submitted"),
        ("", "notify.contacts"),
    ]
    assert entries[0]["message_id"] == event.event_id
    assert entries[1]["body"] == {
        "message_type": "contact_registered",
        "schema_version": 1,
        "report_id": "JK-20261127-000001",
        "tracking_token_hash": "f" * 64,
        "contact_ciphertext": "gAAAA-ciphertext",
    }


def test_routing_assigns_and_starts_the_response_clock_only_while_waiting(directory: Directory) -> None:
    report = Report(submitted().document, BASE)
    deadline = NOW + timedelta(days=3)
    event = ReportRouted(
        report_id=report.id,
        version=2,
        opd=OpdRef(code=DINAS, name="Dinas Bina Marga", level="dinas"),
        area=AreaRef(**AREA),
        routing_key="bina-marga.jakarta-selatan",
        category="jalan",
        response_deadline=deadline,
    )
    change = report.apply_routing(event, directory.triage, NOW)
    assert change.fields["assigned_opd"]["code"] == DINAS
    assert change.fields["area"]["kota_slug"] == "jakarta-selatan"
    assert change.fields["response_deadline"] == deadline
    assert (change.history["kind"], change.history["hop"], change.messages) == ("routed", 0, [])

    working = assigned(directory, status=DIKERJAKAN)
    assert working.apply_routing(event, directory.triage, NOW).fields["response_deadline"] is None


def test_an_unroutable_report_goes_to_triage_keeping_its_area(directory: Directory) -> None:
    report = assigned(directory)
    event = ReportUnroutable(
        report_id=report.id, version=3, reason="no_opd", detail="-", routing_key="triage", category="jalan"
    )
    change = report.apply_routing(event, directory.triage, NOW)
    assert change.fields["assigned_opd"]["code"] == "triage"
    assert change.fields["area"] == report.document["area"]
    assert (change.history["kind"], change.history["reason"]) == ("triage", "no_opd")


def test_a_transition_stops_the_clock_and_announces_the_new_status(directory: Directory) -> None:
    report = assigned(directory, response_deadline=NOW)
    decision = report.decide_transition(directory.get(DINAS), TransitionRequest(DIKERJAKAN, ""), directory)
    change = report.transition(decision, [], NOW)
    assert change.fields == {"status": DIKERJAKAN, "updated_at": NOW, "response_deadline": None}
    assert change.pushes == {}
    (event,) = change.messages
    assert isinstance(event, ReportStatusChanged)
    assert (event.version, event.from_status, event.to_status, event.assigned_opd) == (3, MENUNGGU, DIKERJAKAN, DINAS)
    assert event.area is not None and event.area.kota == "Jakarta Selatan"


def test_a_hand_over_forwards_the_report_to_the_next_opd(directory: Directory) -> None:
    report = assigned(directory)
    request = TransitionRequest(KOORDINASI, "Bukan kewenangan kami", target_opd=OTHER_OPD)
    change = report.transition(report.decide_transition(directory.get(DINAS), request, directory), [], NOW)
    assert (change.fields["assigned_opd"]["code"], change.fields["hop"]) == (OTHER_OPD, 1)
    assert change.history["opd"]["code"] == OTHER_OPD
    status_changed, forwarded = change.messages
    assert isinstance(status_changed, ReportStatusChanged) and status_changed.target_opd == OTHER_OPD
    assert isinstance(forwarded, ReportForwarded)
    assert (forwarded.from_opd, forwarded.target_opd, forwarded.kind, forwarded.hop) == (
        DINAS,
        OTHER_OPD,
        KOORDINASI,
        1,
    )
    assert forwarded.photos[0].url == "https://lapor.example/api/v1/photos/p1"


def test_evidence_photos_are_recorded_with_the_transition(directory: Directory) -> None:
    report = assigned(directory, status=DIKERJAKAN)
    request = TransitionRequest(SELESAI, "Sudah diperbaiki", has_evidence=True)
    change = report.transition(report.decide_transition(directory.get(DINAS), request, directory), ["e1"], NOW)
    assert change.history["photos"] == ["e1"]
    assert change.pushes == {"evidence_photos": {"$each": [{"photo_id": "e1"}]}}
    (event,) = change.messages
    assert [photo.url for photo in event.evidence_photos] == ["https://lapor.example/api/v1/photos/e1"]


def test_escalation_moves_the_report_up_one_step(directory: Directory) -> None:
    deadline = NOW - timedelta(hours=1)
    report = assigned(directory, KELURAHAN, response_deadline=deadline)
    target = report.escalation_target(directory)
    assert target is not None and target.level == "kecamatan"
    change = report.escalate(target, NOW)
    assert change.fields == {
        "assigned_opd": {"code": target.code, "name": target.name, "level": target.level},
        "hop": 1,
        "response_deadline": None,
        "escalation_exhausted": False,
        "updated_at": NOW,
    }
    assert (change.history["kind"], change.history["from_opd"], change.history["deadline"]) == (
        "escalated",
        KELURAHAN,
        deadline,
    )
    escalated, forwarded = change.messages
    assert isinstance(escalated, ReportEscalated) and isinstance(forwarded, ReportForwarded)
    assert (escalated.from_opd, escalated.to_opd, escalated.hop, escalated.version) == (KELURAHAN, target.code, 1, 3)
    assert (forwarded.kind, forwarded.status, forwarded.hop) == ("escalation", MENUNGGU, 1)


def test_escalation_at_the_top_marks_the_report_overdue(directory: Directory) -> None:
    report = assigned(directory, DINAS, response_deadline=NOW)
    assert report.escalation_target(directory) is None
    change = report.escalate(None, NOW)
    assert change.fields == {"response_deadline": None, "escalation_exhausted": True, "updated_at": NOW}
    assert change.history["kind"] == "overdue" and change.messages == []
