"""What notifications say: the citizen's e-mail and SMS, the agency's webhook body and e-mail."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime
from typing import Any

from services.notify.messages import (
    CitizenLinks,
    build_email,
    canonical_json,
    citizen_webhook_body,
    jakarta_time,
    opd_webhook_body,
    render_citizen_email,
    render_citizen_sms,
    render_opd_email,
)

REPORT = "JK-20261128-000042"
LINKS = CitizenLinks(
    tracking_url="https://lapor.example/api/v1/reports/TOKEN-abc",
    unsubscribe_url="https://notify.example/api/v1/unsubscribe/UNSUB-xyz",
)
AREA = {"code": "31.74.07.1001", "kelurahan": "Melawai", "kecamatan": "Kebayoran Baru", "kota": "Jakarta Selatan"}


def facts(**kw: Any) -> dict[str, Any]:
    return {"status": "dikerjakan", "note": "Petugas menuju lokasi", "opd_name": "Suku Dinas Perhubungan", **kw}


def test_citizen_email_has_number_status_note_and_both_links() -> None:
    rendered = render_citizen_email(REPORT, "status_changed", facts(), "2026-11-28T01:02:03Z", LINKS, 30)
    assert rendered.subject == f"[JakLapor] Laporan {REPORT}: Dikerjakan"
    text = rendered.text
    for expected in (
        f"laporan Anda {REPORT}",
        "Status        : Dikerjakan",
        "Catatan       : Petugas menuju lokasi",
        "Ditangani oleh: Suku Dinas Perhubungan",
        "Waktu         : 28-11-2026 08:02 WIB",
        LINKS.tracking_url,
        LINKS.unsubscribe_url,
        "dihapus 30 hari setelah laporan selesai atau ditolak",
        "Status: In progress",
        "Note from the agency: Petugas menuju lokasi",
    ):
        assert expected in text, expected
    assert text.index("Halo") < text.index("-- English --")


def test_english_is_optional() -> None:
    rendered = render_citizen_email(REPORT, "status_changed", facts(), "", LINKS, 30, english=False)
    assert "English" not in rendered.text and "In progress" not in rendered.text
    assert LINKS.unsubscribe_url in rendered.text


def test_what_happened_in_each_kind_of_step() -> None:
    def text(kind: str, **kw: Any) -> str:
        return render_citizen_email(REPORT, kind, facts(**kw), "", LINKS, 30).text

    assert "diteruskan ke Kelurahan Melawai" in text("routed", status="menunggu", opd_name="Kelurahan Melawai")
    assert "diperiksa petugas" in text("triage", status="menunggu")
    escalated = text("escalated", status="menunggu", from_opd_name="Kelurahan X", to_opd_name="Kecamatan Y")
    assert "Batas waktu respons Kelurahan X terlewati" in escalated and "Ditangani oleh: Kecamatan Y" in escalated
    handed = text("status_changed", status="koordinasi", target_opd_name="Dinas Bina Marga")
    assert "dikoordinasikan ke Dinas Bina Marga" in handed and "Ditangani oleh: Dinas Bina Marga" in handed
    assert "telah selesai ditangani" in text("status_changed", status="selesai")
    assert "ditolak" in text("status_changed", status="ditolak", note="Duplikat dari laporan lain")


def test_old_hand_over_without_tracking_link_still_renders() -> None:
    rendered = render_citizen_email(REPORT, "routed", facts(), "", CitizenLinks(None, LINKS.unsubscribe_url), 30)
    assert "Lihat perkembangan" not in rendered.text and LINKS.unsubscribe_url in rendered.text


def test_note_is_rendered_as_text_in_a_plain_text_mail() -> None:
    rendered = render_citizen_email(REPORT, "status_changed", facts(note="<b>ok</b> 🙏"), "", LINKS, 30)
    assert "Catatan       : <b>ok</b> 🙏" in rendered.text


def test_email_headers_unsubscribe_and_stable_message_id() -> None:
    rendered = render_citizen_email(REPORT, "status_changed", facts(), "", LINKS, 30)
    when = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)
    message = build_email(
        "JakLapor <noreply@jakarta.example>", ["warga@example.org"], rendered, "d" * 32, LINKS.unsubscribe_url, when
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["To"] == "warga@example.org" and parsed["Subject"] == rendered.subject
    assert parsed["Message-ID"] == f"<{'d' * 32}@jakarta.example>"
    assert parsed["List-Unsubscribe"] == f"<{LINKS.unsubscribe_url}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content().strip() == rendered.text.strip()


def test_sms_is_short_and_has_both_links() -> None:
    text = render_citizen_sms(REPORT, "status_changed", facts(note="x" * 500), LINKS)
    assert text.startswith(f"JakLapor {REPORT}: Dikerjakan.")
    assert LINKS.tracking_url in text and LINKS.unsubscribe_url in text
    assert "x" * 157 + "..." in text and "x" * 158 not in text
    routed = render_citizen_sms(REPORT, "routed", facts(status="menunggu", note=None), LINKS)
    assert "diteruskan ke Suku Dinas Perhubungan" in routed


def test_relay_body() -> None:
    body = citizen_webhook_body("d1", REPORT, "status_changed", facts(), "2026-11-28T01:02:03Z", "+628123", LINKS)
    assert body["to"] == "+628123" and body["status_label"] == "Dikerjakan" and body["delivery_id"] == "d1"
    assert body["tracking_url"] == LINKS.tracking_url and body["unsubscribe_url"] == LINKS.unsubscribe_url
    assert body["text"] == render_citizen_sms(REPORT, "status_changed", facts(), LINKS)


def test_opd_webhook_body_has_the_facts_and_where_to_act() -> None:
    body = opd_webhook_body(
        "d2",
        "report_assigned",
        "kelurahan-melawai",
        REPORT,
        "e1",
        "2026-11-28T01:02:03Z",
        {"status": "menunggu", "category": "sampah", "area": AREA, "hop": 0, "opd_name": "Kelurahan Melawai"},
        "https://lapor.example/",
    )
    assert body == {
        "type": "report_assigned",
        "schema_version": 1,
        "delivery_id": "d2",
        "event_id": "e1",
        "occurred_at": "2026-11-28T01:02:03Z",
        "opd": "kelurahan-melawai",
        "report_id": REPORT,
        "summary": "Laporan baru",
        "status": "menunggu",
        "category": "sampah",
        "area": AREA,
        "hop": 0,
        "report_url": f"https://lapor.example/api/v1/opd/reports/{REPORT}",
        "transitions_url": f"https://lapor.example/api/v1/opd/reports/{REPORT}/transitions",
    }


def test_opd_email() -> None:
    facts_ = {"status": "menunggu", "category": "sampah", "area": AREA, "from_opd": "kelurahan-melawai"}
    facts_ |= {"to_opd": "kecamatan-kebayoran-baru", "missed_deadline": "2026-11-28T01:02:03Z"}
    body = opd_webhook_body("d3", "report_overdue", "kelurahan-melawai", REPORT, "e", "", facts_, "https://x")
    rendered = render_opd_email(body, "Kelurahan Melawai")
    assert rendered.subject == f"[JakLapor] Batas waktu respons terlewati: {REPORT} (sampah)"
    assert "Kepada Kelurahan Melawai" in rendered.text and "Melawai, Kebayoran Baru, Jakarta Selatan" in rendered.text
    assert "Dinaikkan ke  : kecamatan-kebayoran-baru" in rendered.text
    assert "28-11-2026 08:02 WIB (terlewati)" in rendered.text and body["report_url"] in rendered.text


def test_canonical_json_is_stable_and_utf8() -> None:
    one = canonical_json({"b": 1, "a": "Jalan rusak — parah"})
    assert one == canonical_json({"a": "Jalan rusak — parah", "b": 1})
    assert json.loads(one) == {"a": "Jalan rusak — parah", "b": 1} and "—".encode() in one


def test_jakarta_time() -> None:
    assert jakarta_time("2026-11-28T17:30:00Z") == "29-11-2026 00:30 WIB"
    assert jakarta_time("") == "" and jakarta_time("kemarin") == "kemarin"


def test_an_opd_is_told_its_completion_was_refused_and_by_when_to_finish() -> None:
    from services.notify.messages import opd_webhook_body, render_opd_email

    facts = {
        "status": "dikerjakan",
        "category": "trotoar",
        "note": "Foto lama",
        "work_deadline": "2026-12-06T01:00:00Z",
    }
    body = opd_webhook_body(
        "d1", "report_verification_refused", "bina-marga", "JK-20261203-000001", "e1", "2026-12-03T01:00:00Z", facts,
        "https://lapor.example",
    )  # fmt: skip
    assert body["summary"] == "Penyelesaian ditolak verifikator; kerjakan ulang"
    assert (body["note"], body["work_deadline"]) == ("Foto lama", "2026-12-06T01:00:00Z")
    text = render_opd_email(body, "Dinas Bina Marga").text
    assert "Catatan       : Foto lama" in text and "Selesaikan paling lambat: 06-12-2026 08:00 WIB" in text
