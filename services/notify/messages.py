"""What the notifications say, with no I/O: the citizen's e-mail and SMS text (Indonesian, English optional), the
agency's e-mail, and the JSON bodies of webhooks.

A citizen message is about their own report only: its number, the new status, the note the agency wrote for the
citizen, the agency handling it, the tracking link and the unsubscribe link. Nothing else (no other report, no other
person) is ever rendered in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from jaklapor.vocabulary import (
    DIKERJAKAN,
    DISPOSISI,
    DITOLAK,
    FORWARDING_STATUSES,
    JAKARTA_TZ,
    KOORDINASI,
    SELESAI,
    STATUS_LABELS,
    STATUS_LABELS_EN,
)
from jaklapor.vocabulary import jakarta_time as format_jakarta_time

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CitizenLinks:
    tracking_url: str | None
    unsubscribe_url: str


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str


def status_label(status: str | None) -> str:
    return STATUS_LABELS.get(status or "", status or "")


def jakarta_time(value: str | None) -> str:
    """`2026-11-28T01:02:03Z` as `28-11-2026 08:02 WIB`; the input unchanged if it is not a timestamp."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    return format_jakarta_time(moment)


def _what_happened_id(kind: str, facts: dict[str, Any]) -> str:
    if kind == "merged":
        return (
            f"Laporan Anda digabung ke {facts.get('primary_id')} yang melaporkan masalah yang sama; statusnya kini "
            "mengikuti laporan itu dan Anda tetap menerima kabarnya."
        )
    if kind == "unmerged":
        return f"Penggabungan laporan Anda dengan {facts.get('primary_id')} dibatalkan; laporan Anda ditangani sendiri."
    if kind == "routed":
        return f"Laporan Anda diteruskan ke {facts.get('opd_name') or 'instansi yang berwenang'}."
    if kind == "triage":
        return "Laporan Anda sedang diperiksa petugas untuk menentukan instansi yang berwenang."
    if kind == "escalated":
        return (
            f"Batas waktu respons {facts.get('from_opd_name') or 'instansi sebelumnya'} terlewati; laporan Anda "
            f"dinaikkan ke {facts.get('to_opd_name') or 'tingkat berikutnya'}."
        )
    if kind == "completion_submitted":
        return f"{facts.get('opd_name') or 'Petugas'} melaporkan pekerjaan selesai; menunggu verifikasi."
    if kind == "verification_refused":
        return (
            "Verifikasi penyelesaian ditolak; laporan Anda dikembalikan ke "
            f"{facts.get('opd_name') or 'instansi yang mengerjakan'} untuk dikerjakan lagi."
        )
    status = facts.get("status")
    if status == KOORDINASI and facts.get("target_opd_name"):
        return f"Laporan Anda dikoordinasikan ke {facts['target_opd_name']}."
    if status == DISPOSISI and facts.get("target_opd_name"):
        return f"Laporan Anda didisposisikan ke {facts['target_opd_name']}."
    if status == DIKERJAKAN:
        return "Laporan Anda sedang dikerjakan petugas."
    if status == SELESAI:
        return "Laporan Anda telah selesai ditangani. Terima kasih telah melapor."
    if status == DITOLAK:
        return "Laporan Anda ditolak."
    return f"Status laporan Anda kini {status_label(status)}."


def _what_happened_en(kind: str, facts: dict[str, Any]) -> str:
    if kind == "merged":
        return (
            f"Your report was merged into {facts.get('primary_id')}, about the same problem; its status now follows "
            "that report and you keep receiving its updates."
        )
    if kind == "unmerged":
        return f"Your report is no longer merged into {facts.get('primary_id')}; it is handled on its own again."
    if kind == "routed":
        return f"Your report was sent to {facts.get('opd_name') or 'the responsible agency'}."
    if kind == "triage":
        return "Your report is being reviewed by an officer to find the responsible agency."
    if kind == "escalated":
        return (
            f"{facts.get('from_opd_name') or 'The agency'} did not respond in time; your report was escalated to "
            f"{facts.get('to_opd_name') or 'the next level'}."
        )
    if kind == "completion_submitted":
        return f"{facts.get('opd_name') or 'The agency'} reported the work done; it awaits verification."
    if kind == "verification_refused":
        return (
            "The city's verifier refused the completion; your report went back to "
            f"{facts.get('opd_name') or 'the agency'} to be worked on again."
        )
    status = facts.get("status")
    if status in FORWARDING_STATUSES and facts.get("target_opd_name"):
        return f"Your report was handed to {facts['target_opd_name']}."
    if status == DIKERJAKAN:
        return "Officers are working on your report."
    if status == SELESAI:
        return "Your report has been resolved. Thank you for reporting."
    if status == DITOLAK:
        return "Your report was rejected."
    return f"Your report's status is now: {STATUS_LABELS_EN.get(status or '', status or '')}."


def render_citizen_email(
    report_id: str,
    kind: str,
    facts: dict[str, Any],
    occurred_at: str,
    links: CitizenLinks,
    retention_days: float,
    english: bool = True,
) -> RenderedMessage:
    status = facts.get("status")
    label = status_label(status)
    subject = f"[JakLapor] Laporan {report_id}: {label}" if label else f"[JakLapor] Laporan {report_id}"
    handled_by = facts.get("target_opd_name") or facts.get("to_opd_name") or facts.get("opd_name")
    note = (facts.get("note") or "").strip()
    lines = [
        "Halo,",
        "",
        f"Ada kabar terbaru untuk laporan Anda {report_id}.",
        _what_happened_id(kind, facts),
        "",
        f"Nomor laporan : {report_id}",
        f"Status        : {label}",
    ]
    if note:
        lines.append(f"Catatan       : {note}")
    if handled_by:
        lines.append(f"Ditangani oleh: {handled_by}")
    if occurred_at:
        lines.append(f"Waktu         : {jakarta_time(occurred_at)}")
    lines.append("")
    if links.tracking_url:
        lines += [
            "Lihat perkembangan laporan Anda:",
            links.tracking_url,
            "Jangan bagikan tautan ini: siapa pun yang memilikinya dapat melihat laporan Anda.",
            "",
        ]
    days = f"{retention_days:g}"
    lines += [
        "--",
        "Anda menerima e-mail ini karena mencantumkan alamat ini saat mengirim laporan. Kontak Anda hanya dipakai "
        f"untuk pemberitahuan laporan ini dan dihapus {days} hari setelah laporan selesai atau ditolak.",
        "Berhenti menerima pemberitahuan:",
        links.unsubscribe_url,
    ]
    if english:
        lines += [
            "",
            "-- English --",
            f"Update on your report {report_id}: {_what_happened_en(kind, facts)}",
            f"Status: {STATUS_LABELS_EN.get(status or '', label)}",
        ]
        if note:
            lines.append(f"Note from the agency: {note}")
        if links.tracking_url:
            lines.append(f"Track your report: {links.tracking_url}")
        lines.append(f"Stop these notifications: {links.unsubscribe_url}")
    return RenderedMessage(subject, "\n".join(lines) + "\n")


def render_citizen_sms(report_id: str, kind: str, facts: dict[str, Any], links: CitizenLinks) -> str:
    """The short text a push / SMS relay sends (Indonesian)."""
    parts = [f"JakLapor {report_id}: {status_label(facts.get('status'))}."]
    note = (facts.get("note") or "").strip()
    if kind != "status_changed" or not note:
        parts.append(_what_happened_id(kind, facts))
    if note:
        parts.append(note if len(note) <= 160 else note[:157] + "...")
    if links.tracking_url:
        parts.append(f"Lacak: {links.tracking_url}")
    parts.append(f"Berhenti: {links.unsubscribe_url}")
    return " ".join(parts)


def citizen_webhook_body(
    delivery_id: str,
    report_id: str,
    kind: str,
    facts: dict[str, Any],
    occurred_at: str,
    to: str,
    links: CitizenLinks,
) -> dict[str, Any]:
    """What the push / SMS relay receives for a reporter who left a phone number."""
    status = facts.get("status")
    return {
        "type": "citizen_notification",
        "schema_version": SCHEMA_VERSION,
        "delivery_id": delivery_id,
        "report_id": report_id,
        "kind": kind,
        "occurred_at": occurred_at,
        "to": to,
        "status": status,
        "status_label": status_label(status),
        "note": facts.get("note") or None,
        "text": render_citizen_sms(report_id, kind, facts, links),
        "tracking_url": links.tracking_url,
        "unsubscribe_url": links.unsubscribe_url,
    }


OPD_SUBJECTS = {
    "report_assigned": "Laporan baru",
    "report_forwarded": "Laporan diteruskan kepada Anda",
    "report_escalated": "Laporan dinaikkan kepada Anda (batas waktu terlewati)",
    "report_overdue": "Batas waktu respons terlewati",
    "report_triage": "Laporan perlu diperiksa (triase)",
    "report_reopened": "Laporan dibuka kembali oleh pelapor (belum beres)",
    "report_verification_refused": "Penyelesaian ditolak verifikator; kerjakan ulang",
}


def opd_webhook_body(
    delivery_id: str,
    kind: str,
    opd: str,
    report_id: str,
    event_id: str,
    occurred_at: str,
    facts: dict[str, Any],
    public_url: str,
) -> dict[str, Any]:
    """What an agency's system receives: the event, the report's public facts and where to act on it. Never the
    reporter's identity or contact (notify does not put them in `facts`)."""
    base = public_url.rstrip("/")
    body: dict[str, Any] = {
        "type": kind,
        "schema_version": SCHEMA_VERSION,
        "delivery_id": delivery_id,
        "event_id": event_id,
        "occurred_at": occurred_at,
        "opd": opd,
        "report_id": report_id,
        "summary": OPD_SUBJECTS.get(kind, kind),
    }
    for key in (
        "status",
        "category",
        "area",
        "hop",
        "response_deadline",
        "forward_kind",
        "from_opd",
        "to_opd",
        "note",
        "missed_deadline",
        "reason",
        "detail",
        "work_deadline",
    ):
        if key in facts:
            body[key] = facts[key]
    body["report_url"] = f"{base}/api/v1/opd/reports/{report_id}"
    body["transitions_url"] = f"{base}/api/v1/opd/reports/{report_id}/transitions"
    return body


def render_opd_email(body: dict[str, Any], opd_name: str | None) -> RenderedMessage:
    kind = body["type"]
    report_id = body["report_id"]
    area = body.get("area") or {}
    where = ", ".join(p for p in (area.get("kelurahan"), area.get("kecamatan"), area.get("kota")) if p)
    subject = f"[JakLapor] {OPD_SUBJECTS.get(kind, kind)}: {report_id}"
    if body.get("category"):
        subject += f" ({body['category']})"
    lines = [f"Kepada {opd_name or body['opd']},", "", f"{OPD_SUBJECTS.get(kind, kind)}.", ""]
    lines.append(f"Nomor laporan : {report_id}")
    if body.get("category"):
        lines.append(f"Kategori      : {body['category']}")
    if where:
        lines.append(f"Lokasi        : {where}")
    if body.get("status"):
        lines.append(f"Status        : {status_label(body['status'])}")
    if body.get("from_opd"):
        lines.append(f"Dari          : {body['from_opd']}")
    if body.get("to_opd") and kind == "report_overdue":
        lines.append(f"Dinaikkan ke  : {body['to_opd']}")
    if body.get("note"):
        lines.append(f"Catatan       : {body['note']}")
    if body.get("missed_deadline"):
        lines.append(f"Batas waktu   : {jakarta_time(body['missed_deadline'])} (terlewati)")
    if body.get("response_deadline"):
        lines.append(f"Respons paling lambat: {jakarta_time(body['response_deadline'])}")
    if body.get("work_deadline"):
        lines.append(f"Selesaikan paling lambat: {jakarta_time(body['work_deadline'])}")
    if body.get("detail"):
        lines.append(f"Keterangan    : {body['detail']}")
    lines += [
        "",
        "Buka laporan (API OPD, dengan kunci API instansi Anda):",
        body["report_url"],
        "",
        "--",
        "Pesan otomatis JakLapor. Laporan lengkap juga ada di antrean AMQP instansi Anda.",
    ]
    return RenderedMessage(subject, "\n".join(lines) + "\n")


def build_email(
    sender: str,
    recipients: list[str],
    rendered: RenderedMessage,
    delivery_id: str,
    unsubscribe_url: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(now or datetime.now(JAKARTA_TZ))
    domain = sender.rsplit("@", 1)[-1].strip("> ") or "jaklapor.invalid"
    # stable across attempts of one delivery: a mail system that got it twice can tell
    message["Message-ID"] = f"<{delivery_id}@{domain}>"
    message["X-Jaklapor-Delivery"] = delivery_id
    message["Auto-Submitted"] = "auto-generated"
    if unsubscribe_url:
        # RFC 2369 / RFC 8058: mail clients show an unsubscribe button that POSTs to the link
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(rendered.text, charset="utf-8")
    return message


def canonical_json(body: dict[str, Any]) -> bytes:
    """The exact bytes a webhook sends and signs: the same for every attempt of a delivery."""
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
