"""Notify rules with no I/O: what a citizen's live timeline shows for each event, and how it is framed as SSE."""

from __future__ import annotations

import json
from typing import Any

from jaklapor.events import (
    Event,
    ReportEscalated,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportUnroutable,
)

STATUS_LABELS = {
    "menunggu": "Menunggu",
    "koordinasi": "Koordinasi",
    "disposisi": "Disposisi",
    "dikerjakan": "Dikerjakan",
    "selesai": "Selesai",
    "ditolak": "Ditolak",
}
FINAL_STATUSES = frozenset({"selesai", "ditolak"})


def timeline_entry(event: Event) -> dict[str, Any] | None:
    """The public part of an event as one timeline entry; None for events a citizen does not follow."""
    at = event.occurred_at.isoformat().replace("+00:00", "Z")
    base: dict[str, Any] = {"report_id": event.report_id, "at": at, "event_id": event.event_id}
    if isinstance(event, ReportSubmitted):
        return {**base, "kind": "submitted", "status": "menunggu", "note": "Laporan diterima"}
    if isinstance(event, ReportRouted):
        return {
            **base,
            "kind": "routed",
            "status": None,
            "opd": event.opd.model_dump(),
            "area": event.area.model_dump() if event.area else None,
            "response_deadline": event.response_deadline.isoformat().replace("+00:00", "Z")
            if event.response_deadline
            else None,
            "note": f"Diteruskan ke {event.opd.name}",
        }
    if isinstance(event, ReportEscalated):
        return {
            **base,
            "kind": "escalated",
            "status": None,
            "from_opd": event.from_opd,
            "to_opd": event.to_opd,
            "missed_deadline": event.deadline.isoformat().replace("+00:00", "Z"),
            "note": "Batas waktu respons terlewati; laporan dinaikkan ke tingkat berikutnya",
        }
    if isinstance(event, ReportUnroutable):
        return {**base, "kind": "triage", "status": None, "reason": event.reason, "note": event.detail}
    if isinstance(event, ReportStatusChanged):
        entry = {
            **base,
            "kind": "status_changed",
            "status": event.to_status,
            "from_status": event.from_status,
            "actor_opd": event.actor_opd,
            "note": event.note,
        }
        if event.target_opd:
            entry["target_opd"] = event.target_opd
        if event.reason:
            entry["reason"] = event.reason
        if event.evidence_photos:
            entry["evidence_photos"] = [p.url for p in event.evidence_photos]
        return entry
    return None


def sse_frame(seq: int, entry: dict[str, Any]) -> str:
    """One Server-Sent Events message; `id` lets a reconnecting client resume with Last-Event-ID."""
    payload = dict(entry)
    payload.pop("event_id", None)
    if payload.get("status"):
        payload["status_label"] = STATUS_LABELS.get(payload["status"], payload["status"])
    data = json.dumps(payload, ensure_ascii=False)
    return f"id: {seq}\nevent: {entry['kind']}\ndata: {data}\n\n"


def parse_last_event_id(value: str | None) -> int:
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0
