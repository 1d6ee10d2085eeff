"""What a citizen's live timeline shows for each event, and the Server-Sent Events framing of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from jaklapor.events import (
    AreaRef,
    Location,
    OpdRef,
    PhotoRef,
    ReportEscalated,
    ReportForwarded,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportUnroutable,
    parse_event,
)
from jaklapor.web import web_origin
from services.notify.domain import parse_last_event_id, sse_frame, timeline_entry

REPORT = "JK-20261127-000001"
AT = datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)
AREA = AreaRef(code="31.74.06.1006", kelurahan="Melawai", kecamatan="Kebayoran Baru", kota="Jakarta Selatan")
OPD = OpdRef(code="bina-marga", name="Dinas Bina Marga", level="dinas")
TOKEN_HASH = "a" * 64


def submitted() -> ReportSubmitted:
    return ReportSubmitted(
        report_id=REPORT,
        version=1,
        occurred_at=AT,
        category="jalan-rusak",
        description="Jalan berlubang",
        location=Location(lat=-6.2441, lon=106.8013),
        photos=[PhotoRef(photo_id="p1", url="http://x/api/v1/photos/p1")],
        submitted_at=AT,
        tracking_token_hash=TOKEN_HASH,
        has_contact=True,
    )


def status_changed(**kw: Any) -> ReportStatusChanged:
    fields: dict[str, Any] = {
        "report_id": REPORT,
        "version": 2,
        "occurred_at": AT,
        "from_status": "menunggu",
        "to_status": "dikerjakan",
        "actor_opd": "bina-marga",
        "note": "Petugas menuju lokasi",
        "category": "jalan-rusak",
        "submitted_at": AT,
    }
    return ReportStatusChanged(**{**fields, **kw})


def test_submitted_entry() -> None:
    event = submitted()
    entry = timeline_entry(event)
    assert entry == {
        "report_id": REPORT,
        "at": "2026-11-27T01:02:03Z",
        "event_id": event.event_id,
        "kind": "submitted",
        "status": "menunggu",
        "note": "Laporan diterima",
    }


def test_submitted_entry_leaks_nothing_of_the_report_internals() -> None:
    text = json.dumps(timeline_entry(submitted()))
    assert TOKEN_HASH not in text and "has_contact" not in text


def routed(**kw: Any) -> ReportRouted:
    fields: dict[str, Any] = {
        "report_id": REPORT,
        "version": 1,
        "occurred_at": AT,
        "opd": OPD,
        "area": AREA,
        "routing_key": "bina-marga.jakarta-selatan.kebayoran-baru.melawai",
        "category": "jalan-rusak",
        "status": "menunggu",
    }
    return ReportRouted(**{**fields, **kw})


def test_routed_entry_names_the_opd_and_area() -> None:
    entry = timeline_entry(routed())
    assert entry is not None
    assert (entry["kind"], entry["status"]) == ("routed", "menunggu")
    assert entry["opd"] == {"code": "bina-marga", "name": "Dinas Bina Marga", "level": "dinas"}
    assert entry["area"]["kelurahan"] == "Melawai"
    assert entry["note"] == "Diteruskan ke Dinas Bina Marga"
    assert "routing_key" not in entry


def test_routed_entry_carries_the_status_the_report_has_then() -> None:
    frame = sse_frame(2, timeline_entry(routed()))
    data = json.loads(frame.split("data: ", 1)[1])
    assert (data["status"], data["status_label"]) == ("menunggu", "Menunggu")
    handed_over = timeline_entry(routed(hop=1, status="koordinasi"))
    assert handed_over is not None and handed_over["status"] == "koordinasi"
    # events published before routing recorded the status: a new report (hop 0) is known to wait
    assert timeline_entry(routed(status=None))["status"] == "menunggu"
    assert timeline_entry(routed(hop=2, status=None))["status"] is None


def test_unroutable_entry_is_triage_with_reason_and_an_indonesian_note() -> None:
    event = ReportUnroutable(
        report_id=REPORT,
        version=1,
        occurred_at=AT,
        reason="outside_jakarta",
        detail="570 m from the nearest kelurahan (Cipedak, Jakarta Selatan), beyond the 500 m snapping cap",
        citizen_note="Perlu diperiksa petugas: lokasi 570 m dari kelurahan terdekat (Cipedak, Jakarta Selatan)",
        routing_key="triage.outside-jakarta",
        category="jalan-rusak",
        status="menunggu",
    )
    entry = timeline_entry(event)
    assert entry is not None
    assert (entry["kind"], entry["status"], entry["reason"], entry["note"]) == (
        "triage",
        "menunggu",
        "outside_jakarta",
        "Perlu diperiksa petugas: lokasi 570 m dari kelurahan terdekat (Cipedak, Jakarta Selatan)",
    )
    assert "from the nearest" not in json.dumps(entry)
    # an event published before routing wrote the note and status: the Indonesian opening, never the English detail
    older = parse_event({k: v for k, v in event.to_message().items() if k not in ("citizen_note", "status")})
    assert (timeline_entry(older)["note"], timeline_entry(older)["status"]) == ("Perlu diperiksa petugas", "menunggu")


def test_escalated_entry_keeps_the_status_the_report_has() -> None:
    event = ReportEscalated(
        report_id=REPORT,
        version=3,
        occurred_at=AT,
        category="jalan-rusak",
        status="koordinasi",
        from_opd="kelurahan-melawai",
        to_opd="kecamatan-kebayoran-baru",
        deadline=AT,
        hop=2,
        submitted_at=AT,
    )
    entry = timeline_entry(event)
    assert entry is not None and (entry["kind"], entry["status"]) == ("escalated", "koordinasi")


def test_status_changed_entry() -> None:
    entry = timeline_entry(status_changed())
    assert entry is not None
    assert (entry["kind"], entry["status"], entry["from_status"], entry["actor_opd"], entry["note"]) == (
        "status_changed",
        "dikerjakan",
        "menunggu",
        "bina-marga",
        "Petugas menuju lokasi",
    )
    assert "target_opd" not in entry and "evidence_photos" not in entry


def test_status_changed_entry_with_handover_and_evidence() -> None:
    handover = timeline_entry(status_changed(to_status="koordinasi", target_opd="perhubungan"))
    assert handover is not None and handover["target_opd"] == "perhubungan"

    evidence = [PhotoRef(photo_id="e1", url="https://lapor.example/api/v1/photos/e1")]
    done = timeline_entry(status_changed(from_status="dikerjakan", to_status="selesai", evidence_photos=evidence))
    assert done is not None
    assert done["evidence_photos"] == ["https://lapor.example/api/v1/photos/e1"]


def test_forwarded_events_are_not_on_the_citizen_timeline() -> None:
    event = ReportForwarded(
        report_id=REPORT,
        version=2,
        category="jalan-rusak",
        description="Jalan berlubang",
        location=Location(lat=-6.2441, lon=106.8013),
        photos=[],
        submitted_at=AT,
        from_opd="bina-marga",
        target_opd="perhubungan",
        status="koordinasi",
        note="bukan kami",
        hop=1,
    )
    assert timeline_entry(event) is None


def test_timeline_of_a_received_message_matches_the_original() -> None:
    event = status_changed()
    assert timeline_entry(parse_event(event.to_message())) == timeline_entry(event)


# ---- SSE ------------------------------------------------------------------------------------------------------------


def parse_frame(frame: str) -> dict[str, str]:
    assert frame.endswith("\n\n") and frame.count("\n\n") == 1
    lines = frame[:-2].split("\n")
    fields = dict(line.split(": ", 1) for line in lines)
    assert [line.split(": ", 1)[0] for line in lines] == ["id", "event", "data"]
    return fields


def test_sse_frame_format() -> None:
    entry = timeline_entry(status_changed())
    assert entry is not None
    frame = sse_frame(7, entry)
    fields = parse_frame(frame)
    assert (fields["id"], fields["event"]) == ("7", "status_changed")
    data = json.loads(fields["data"])
    assert "event_id" not in data
    assert data["status_label"] == "Dikerjakan"
    assert {k: v for k, v in data.items() if k != "status_label"} == {k: v for k, v in entry.items() if k != "event_id"}
    assert "event_id" in entry  # the caller's entry is left as it was


def test_sse_frame_without_status_has_no_label() -> None:
    entry = {"report_id": REPORT, "at": "2026-11-27T01:02:03Z", "event_id": "x", "kind": "routed", "status": None}
    data = json.loads(parse_frame(sse_frame(1, entry))["data"])
    assert "status_label" not in data and data["status"] is None


def test_sse_frame_keeps_a_multiline_note_on_one_data_line() -> None:
    note = "Baris satu\nBaris dua\r\n\nid: 999\nevent: fake"
    entry = timeline_entry(status_changed(note=note))
    assert entry is not None
    fields = parse_frame(sse_frame(3, entry))
    assert fields["id"] == "3"
    assert json.loads(fields["data"])["note"] == note


def test_sse_frame_keeps_unicode_readable() -> None:
    entry = timeline_entry(status_changed(note="Sudah diperbaiki — terima kasih 🙏"))
    assert entry is not None
    frame = sse_frame(1, entry)
    assert "terima kasih 🙏" in frame


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 0), ("", 0), ("0", 0), ("42", 42), (" 42 ", 42), ("-5", 0), ("abc", 0), ("4.2", 0)],
)
def test_parse_last_event_id(value: str | None, expected: int) -> None:
    assert parse_last_event_id(value) == expected


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://Lapor.Example/", "https://lapor.example"),
        ("https://lapor.example:443/jaklapor/", "https://lapor.example"),
        ("http://lapor.example:80", "http://lapor.example"),
        ("https://lapor.example:8443", "https://lapor.example:8443"),
        ("http://[::1]:8000/", "http://[::1]:8000"),
    ],
)
def test_the_web_origin_is_written_as_a_browser_sends_it(url: str, origin: str) -> None:
    assert web_origin(url) == origin


@pytest.mark.parametrize("url", ["lapor.example", "ftp://lapor.example", "https://", ""])
def test_a_url_without_a_web_origin_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        web_origin(url)


def test_verified_completion_in_the_citizens_timeline_and_notifications() -> None:
    from datetime import UTC, datetime

    from jaklapor.events import ReportCompletionSubmitted, ReportVerificationApproved, ReportVerificationRefused
    from services.notify.domain import notifications_for, sse_frame, timeline_entry

    at = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    common = {"report_id": "JK-20261127-000001", "category": "trotoar", "submitted_at": at, "opd": "bina-marga"}
    pending = ReportCompletionSubmitted(version=5, note="Sudah diperbaiki", **common)
    entry = timeline_entry(pending)
    assert entry is not None and (entry["kind"], entry["status"]) == ("completion_submitted", "dikerjakan")
    assert '"status_label": "Menunggu verifikasi"' in sse_frame(1, entry)
    refused = ReportVerificationRefused(
        version=6, verifier="verifikator", reason="Foto lama", work_deadline=at, **common
    )
    entry = timeline_entry(refused)
    assert entry is not None and entry["kind"] == "verification_refused" and "Foto lama" in entry["note"]
    told = notifications_for(refused, lambda code: "Dinas Bina Marga")
    assert [(n.audience, n.kind, n.opd) for n in told] == [
        ("citizen", "verification_refused", None),
        ("opd", "report_verification_refused", "bina-marga"),
    ]
    # an exempt category's completion is told by its status change; an approval by its status change to selesai
    assert timeline_entry(ReportCompletionSubmitted(version=5, note="x", verification_required=False, **common)) is None
    approved = ReportVerificationApproved(version=7, verifier="verifikator", **common)
    assert timeline_entry(approved) is None and notifications_for(approved, lambda code: None) == []
