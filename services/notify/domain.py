"""Notify rules with no I/O: what a citizen's live timeline shows for each event, and how it is framed as SSE; who
is notified of which event, how a failed delivery is retried, and when a reporter's contact must be deleted."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from jaklapor.events import (
    Event,
    ReportCompletionSubmitted,
    ReportConfirmed,
    ReportEscalated,
    ReportForwarded,
    ReportMerged,
    ReportReopened,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportUnmerged,
    ReportUnroutable,
    ReportVerificationRefused,
)
from jaklapor.vocabulary import (
    FORWARDING_STATUSES,
    MENUNGGU,
    NOTE_ESCALATED_PUBLIC,
    NOTE_SUBMITTED,
    PENDING_VERIFICATION_LABEL,
    SELESAI,
    STATUS_LABELS,
    iso,
    note_completion_submitted,
    note_confirmed,
    note_routed,
    note_verification_refused,
)


def status_when_routed(event: ReportRouted | ReportUnroutable) -> str | None:
    """The report's status when routing decided, as the event carries it; events published before routing recorded
    it are known only for a new report (hop 0), which waits (menunggu) until its first OPD answers."""
    if event.status is not None:
        return event.status
    return MENUNGGU if event.hop == 0 else None


def timeline_entry(event: Event) -> dict[str, Any] | None:
    """The public part of an event as one timeline entry; None for events a citizen does not follow."""
    at = iso(event.occurred_at)
    base: dict[str, Any] = {"report_id": event.report_id, "at": at, "event_id": event.event_id}
    if isinstance(event, ReportSubmitted):
        return {**base, "kind": "submitted", "status": MENUNGGU, "note": NOTE_SUBMITTED}
    if isinstance(event, ReportRouted):
        return {
            **base,
            "kind": "routed",
            "status": status_when_routed(event),
            "opd": event.opd.model_dump(),
            "area": event.area.model_dump() if event.area else None,
            "response_deadline": iso(event.response_deadline),
            "note": note_routed(event.opd.name),
        }
    if isinstance(event, ReportEscalated):
        return {
            **base,
            "kind": "escalated",
            "status": event.status,
            "from_opd": event.from_opd,
            "to_opd": event.to_opd,
            "missed_deadline": iso(event.deadline),
            "note": NOTE_ESCALATED_PUBLIC,
        }
    if isinstance(event, ReportUnroutable):
        return {
            **base,
            "kind": "triage",
            "status": status_when_routed(event),
            "reason": event.reason,
            "note": event.citizen_note,
        }
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
    if isinstance(event, ReportConfirmed):
        # the citizen's own confirmation (their reopen is told by its status change, selesai → dikerjakan)
        return {
            **base,
            "kind": "confirmed",
            "status": SELESAI,
            "rating": event.rating,
            "note": note_confirmed(event.rating, event.comment),
        }
    if isinstance(event, ReportMerged | ReportUnmerged):
        # a duplicate merged into another report (it follows that one's status), or the merge undone
        kind = "merged" if isinstance(event, ReportMerged) else "unmerged"
        return {**base, "kind": kind, "status": event.status, "primary_id": event.primary_id, "note": event.note}
    return verification_entry(event, base)


def verification_entry(event: Event, base: dict[str, Any]) -> dict[str, Any] | None:
    """Verified completion in the citizen's timeline: the OPD's completion waiting for the verifier, a refusal
    sending the report back (an approval is told by its report_status_changed to selesai)."""
    if isinstance(event, ReportCompletionSubmitted) and event.verification_required:
        return {
            **base,
            "kind": "completion_submitted",
            "status": "dikerjakan",
            "pending_verification": True,
            "actor_opd": event.opd,
            "note": note_completion_submitted(),
            "opd_note": event.note,
            "evidence_photos": [p.url for p in event.evidence_photos],
        }
    if isinstance(event, ReportVerificationRefused):
        return {
            **base,
            "kind": "verification_refused",
            "status": "dikerjakan",
            "actor_opd": event.verifier,
            "refusal_reason": event.reason,
            "work_deadline": iso(event.work_deadline),
            "note": note_verification_refused(event.reason),
        }
    return None


def sse_frame(seq: int, entry: dict[str, Any]) -> str:
    """One Server-Sent Events message; `id` lets a reconnecting client resume with Last-Event-ID."""
    payload = dict(entry)
    payload.pop("event_id", None)
    if payload.get("status"):
        payload["status_label"] = STATUS_LABELS.get(payload["status"], payload["status"])
    if payload.get("pending_verification"):
        payload["status_label"] = PENDING_VERIFICATION_LABEL
    data = json.dumps(payload, ensure_ascii=False)
    return f"id: {seq}\nevent: {entry['kind']}\ndata: {data}\n\n"


def stream_cors_headers(citizen_app_origin: str) -> dict[str, str]:
    """What lets the citizen app, served by the gateway at another origin, read a report's live stream: that
    origin only (not `*`: the stream is one citizen's), and a cache keeps answers per Origin apart."""
    return {"Access-Control-Allow-Origin": citizen_app_origin, "Vary": "Origin"}


def parse_last_event_id(value: str | None) -> int:
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0


# ---- who hears about what -------------------------------------------------------------------------------------------

Audience = Literal["citizen", "opd"]
CITIZEN: Audience = "citizen"
OPD: Audience = "opd"


@dataclass(frozen=True)
class Notification:
    """One thing to tell one audience about one event. `facts` are the public facts of the event (no contact): they
    are stored with the delivery and rendered into the message when it is sent."""

    audience: Audience
    kind: str
    report_id: str
    event_id: str
    occurred_at: str
    opd: str | None = None  # the OPD to notify (audience opd)
    facts: dict[str, Any] = field(default_factory=dict)


def _area(event: Any) -> dict[str, Any] | None:
    area = getattr(event, "area", None)
    return area.model_dump() if area is not None else None


def notifications_for(
    event: Event, opd_name: Callable[[str], str | None], triage_code: str = "triage"
) -> list[Notification]:
    """Everyone to notify of `event`.

    The citizen (if they left a contact): the first routing (or triage), every status change, every escalation. A
    hand-over is told once, by its status change (koordinasi / disposisi) or its escalation, not again when routing
    delivers it to the new OPD.
    OPDs: a new report routed to them (hop 0), a koordinasi / disposisi to them, an overdue report (the OPD that
    missed its deadline and the one that receives the report), and a report reaching the triage desk.
    """

    def name(code: str | None) -> str | None:
        return (opd_name(code) or code) if code else None

    at = iso(event.occurred_at) or ""
    common = {"report_id": event.report_id, "event_id": event.event_id, "occurred_at": at}
    out: list[Notification] = []
    if isinstance(event, ReportRouted):
        if event.hop == 0:
            facts = {
                "status": status_when_routed(event),
                "category": event.category,
                "area": _area(event),
                "hop": 0,
                "opd_name": event.opd.name,
                "response_deadline": iso(event.response_deadline),
            }
            out.append(Notification(CITIZEN, "routed", **common, facts=facts))
            out.append(Notification(OPD, "report_assigned", **common, opd=event.opd.code, facts=facts))
    elif isinstance(event, ReportUnroutable):
        facts = {
            "status": status_when_routed(event),
            "category": event.category,
            "area": _area(event),
            "hop": event.hop,
        }
        if event.hop == 0:
            out.append(Notification(CITIZEN, "triage", **common, facts=facts))
        opd_facts = {**facts, "reason": event.reason, "detail": event.detail}
        out.append(Notification(OPD, "report_triage", **common, opd=triage_code, facts=opd_facts))
    elif isinstance(event, ReportStatusChanged):
        facts = {
            "status": event.to_status,
            "from_status": event.from_status,
            "note": event.note,
            "category": event.category,
            "area": _area(event),
            "opd_name": name(event.actor_opd),
            "target_opd_name": name(event.target_opd),
        }
        out.append(Notification(CITIZEN, "status_changed", **common, facts=facts))
    elif isinstance(event, ReportMerged | ReportUnmerged):
        facts = {
            "status": event.status,
            "primary_id": event.primary_id,
            "note": event.note,
            "category": event.category,
            "area": _area(event),
        }
        kind = "merged" if isinstance(event, ReportMerged) else "unmerged"
        out.append(Notification(CITIZEN, kind, **common, facts=facts))
    elif isinstance(event, ReportEscalated):
        facts = {
            "status": event.status,
            "category": event.category,
            "area": _area(event),
            "hop": event.hop,
            "from_opd": event.from_opd,
            "from_opd_name": name(event.from_opd),
            "to_opd": event.to_opd,
            "to_opd_name": name(event.to_opd),
            "missed_deadline": iso(event.deadline),
        }
        out.append(Notification(CITIZEN, "escalated", **common, facts=facts))
        out.append(Notification(OPD, "report_overdue", **common, opd=event.from_opd, facts=facts))
        out.append(Notification(OPD, "report_escalated", **common, opd=event.to_opd, facts=facts))
    elif isinstance(event, ReportForwarded) and event.kind in FORWARDING_STATUSES:
        # escalations are told by ReportEscalated, which names both OPDs
        facts = {
            "status": event.status,
            "category": event.category,
            "area": _area(event),
            "hop": event.hop,
            "forward_kind": event.kind,
            "from_opd": event.from_opd,
            "from_opd_name": name(event.from_opd),
            "note": event.note,
        }
        out.append(Notification(OPD, "report_forwarded", **common, opd=event.target_opd, facts=facts))
    elif isinstance(event, ReportReopened):
        # the citizen (who hears of it by the status change) sent the report back to the OPD that closed it
        facts = {
            "status": "dikerjakan",
            "category": event.category,
            "area": _area(event),
            "note": event.reason,
            "work_deadline": iso(event.work_deadline),
        }
        out.append(Notification(OPD, "report_reopened", **common, opd=event.opd.code, facts=facts))
    elif isinstance(event, ReportCompletionSubmitted) and event.verification_required:
        facts = {"status": "dikerjakan", "category": event.category, "area": _area(event), "opd_name": name(event.opd)}
        out.append(Notification(CITIZEN, "completion_submitted", **common, facts=facts))
    elif isinstance(event, ReportVerificationRefused):
        facts = {
            "status": "dikerjakan",
            "category": event.category,
            "area": _area(event),
            "opd_name": name(event.opd),
            "note": event.reason,
            "work_deadline": iso(event.work_deadline),
        }
        out.append(Notification(CITIZEN, "verification_refused", **common, facts=facts))
        # the OPD learns its completion was refused, why, and by when to finish again
        out.append(Notification(OPD, "report_verification_refused", **common, opd=event.opd, facts=facts))
    return out


def delivery_id(notification: Notification, channel: str) -> str:
    """Stable per (event, recipient, channel): a redelivered event enqueues nothing twice; receivers deduplicate."""
    key = f"{notification.event_id}\0{notification.audience}\0{notification.opd or ''}\0{channel}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


# ---- contacts -------------------------------------------------------------------------------------------------------

ContactKind = Literal["email", "phone"]


@dataclass(frozen=True)
class ContactBundle:
    """What intake hands over encrypted: the contact and the citizen's tracking link (which holds their token)."""

    contact: str
    tracking_url: str | None = None

    @property
    def kind(self) -> ContactKind:
        return "email" if "@" in self.contact else "phone"


def unsubscribe_token_hash(token: str) -> str:
    """What notify stores of an unsubscribe token (to find the subscription; the token itself opens it)."""
    return hashlib.sha256(b"unsubscribe\0" + token.encode("utf-8")).hexdigest()


def parse_contact_plaintext(plaintext: str) -> ContactBundle | None:
    """The decrypted hand-over: `{"contact": ..., "tracking_url": ...}`, or (older intake) the bare contact. A bare
    contact never parses as a JSON object: an e-mail address ends with its domain, a phone number with a digit."""
    text = plaintext.strip()
    if text.startswith("{") and text.endswith("}"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            contact = data.get("contact")
            url = data.get("tracking_url")
            if not isinstance(contact, str) or not contact.strip():
                return None
            return ContactBundle(contact.strip(), url if isinstance(url, str) and url else None)
    return ContactBundle(text) if text else None


# ---- retries --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: after the n-th failed attempt wait base·2^(n-1), capped, of which the upper
    half is random ("equal jitter": never sooner than half the step, so a flapping receiver is not hammered, and
    deliveries that failed together spread out). After `max_attempts` attempts the delivery is dead-lettered."""

    base_seconds: float = 30.0
    max_seconds: float = 3600.0
    max_attempts: int = 10

    def step(self, failures: int) -> float:
        return min(self.max_seconds, self.base_seconds * 2 ** max(failures - 1, 0))

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        step = self.step(failures)
        return step / 2 + rand() * step / 2

    def outcome(self, attempts: int, retryable: bool) -> Literal["retry", "dead"]:
        return "retry" if retryable and attempts < self.max_attempts else "dead"


# ---- retention ------------------------------------------------------------------------------------------------------


def contact_purge_due(final_at: datetime | None, now: datetime, retention_days: float, pending_deliveries: int) -> bool:
    """A contact is deleted `retention_days` after its report reached selesai or ditolak, once nothing is still
    waiting to be sent to it (the message telling the citizen their report is done goes out first)."""
    if final_at is None or pending_deliveries > 0:
        return False
    return now >= final_at + timedelta(days=max(float(retention_days), 0.0))
