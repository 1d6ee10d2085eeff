"""Verified completion, with no I/O: in Jakarta's CRM 2.0 a city verifier (Biro Pemerintahan) checks an OPD's
follow-up and evidence before a report closes; a failed check sends it back to the same OPD.

- The verifier is a principal of its own (`VERIFIER`, code `verifikator`), with a key derived like the OPDs'
  (`jaklapor verifier-key`). It lists the reports pending verification of every OPD and approves or refuses them;
  it never changes a report's status as an OPD does, and no OPD can verify.
- Pending verification is a sub-state, not a seventh status: the report stays `dikerjakan` with a `verification`
  record in state `pending` (jaklapor.vocabulary.VERIFICATION_*), read by citizens as "Menunggu verifikasi".
- Approve: `selesai`, announced by an ordinary report_status_changed (actor: the OPD that did the work, so every
  existing consumer sees the close as before) plus report_verification_approved.
- Refuse with a reason: still `dikerjakan`, same OPD, a new `work_deadline` (jaklapor.vocabulary.rework_deadline),
  announced by report_verification_refused.
- Which categories are verified is configuration (`VerificationPolicy`, from VERIFICATION_DEFAULT and
  VERIFICATION_EXCEPTIONS); an exempt category's selesai closes at once, its evidence still checked and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jaklapor.events import (
    Event,
    EvidenceCheck,
    ReportCompletionSubmitted,
    ReportVerificationApproved,
    ReportVerificationRefused,
)
from jaklapor.opd_keys import VERIFIER_CODE
from jaklapor.vocabulary import (
    DIKERJAKAN,
    SELESAI,
    VERIFICATION_APPROVED,
    VERIFICATION_PENDING,
    VERIFICATION_REFUSED,
    note_completion_submitted,
    note_verification_refused,
    rework_deadline,
)
from services.intake.domain import TransitionDecision, history_entry
from services.intake.evidence import Capture, all_matched, check_evidence
from services.intake.report import Change, Message, Report, photo_refs

REASON_MAX_CHARS = 1000


@dataclass(frozen=True)
class Verifier:
    """The city's verifier as a principal: shaped like an OPD of the directory (so sessions and keys work the same),
    never found in it."""

    code: str = VERIFIER_CODE
    name: str = "Biro Pemerintahan (verifikator)"
    level: str = "verifier"
    agency: str = "biro-pemerintahan"
    kota: str | None = None
    #: what the duplicate rules read: the verifier may merge and unmerge any report (services/intake/duplicates.py)
    role: str = "verifier"


VERIFIER = Verifier()


def is_verifier(principal: Any) -> bool:
    return getattr(principal, "code", None) == VERIFIER_CODE


class VerificationRefused(Exception):
    """A verification request (or an OPD's action on a report pending verification) the rules refuse: a stable
    `code`, a sentence, the field at fault. HTTP statuses: services/intake/http_errors.py."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True)
class VerificationPolicy:
    """Which categories need the verifier: all but the exceptions (default on), or only the exceptions (off)."""

    default: bool
    exceptions: frozenset[str]

    @classmethod
    def of(cls, default: bool, exceptions: str) -> VerificationPolicy:
        return cls(default, frozenset(code.strip() for code in exceptions.split(",") if code.strip()))

    def required(self, category: str) -> bool:
        return self.default != (category in self.exceptions)


# ---- reading a report --------------------------------------------------------------------------------------------


def verification_of(report: dict[str, Any]) -> dict[str, Any] | None:
    return report.get("verification")


def is_pending(report: dict[str, Any]) -> bool:
    record = verification_of(report) or {}
    return report.get("status") == DIKERJAKAN and record.get("state") == VERIFICATION_PENDING


def refuse_opd_action(report: dict[str, Any]) -> None:
    """An OPD cannot act on a report while the verifier holds its completion."""
    if is_pending(report):
        raise VerificationRefused(
            "pending_verification",
            "the report's completion is waiting for the verifier; it can be changed again once refused",
            "status",
        )


# ---- the OPD reports the work done ---------------------------------------------------------------------------------


def evidence_checks(
    report: dict[str, Any], evidence: list[dict[str, Any]], captures: list[Capture | None]
) -> list[EvidenceCheck]:
    """The automatic check of each evidence photo against the report and the citizen's own photos."""
    citizen_hashes = [photo.get("phash") or "" for photo in report.get("photos", [])]
    return [
        check_evidence(
            captures[index] if index < len(captures) else None,
            photo.get("phash"),
            report["location"],
            report["submitted_at"],
            citizen_hashes,
        )
        for index, photo in enumerate(evidence)
    ]


def complete(
    report: Report,
    decision: TransitionDecision,
    evidence: list[dict[str, Any]],
    checks: list[EvidenceCheck],
    required: bool,
    opd_name: str,
    now: datetime,
) -> Change:
    """The OPD's selesai with its evidence: pending verification when the category needs it, closed at once
    otherwise; either way the evidence check is announced (report_completion_submitted)."""
    evidence_ids = [photo["photo_id"] for photo in evidence]
    document = report.document
    version = report.version + 1
    submitted = ReportCompletionSubmitted(
        report_id=report.id,
        version=version,
        occurred_at=now,
        category=document["category"],
        opd=decision.actor_opd,
        note=decision.note,
        evidence_photos=photo_refs(report.photo_base_url, evidence_ids),
        evidence=checks,
        evidence_matched=all_matched(checks),
        verification_required=required,
        area=report._area(),
        submitted_at=document["submitted_at"],
    )
    if not required:
        closed = report.transition(decision, evidence_ids, now)
        # the verdict (no metadata) with the close, so a replay of the history announces the check again
        history = {
            **closed.history,
            "evidence": [check.model_dump() for check in checks],
            "verification_required": False,
        }
        return Change({**closed.fields, "work_deadline": None}, history, [*closed.messages, submitted], closed.pushes)
    record = {
        "state": VERIFICATION_PENDING,
        "opd": decision.actor_opd,
        "note": decision.note,
        "submitted_at": now,
        "evidence_photos": evidence_ids,
        "checks": [check.model_dump() for check in checks],
        "round": int((document.get("verification") or {}).get("round", 0)) + 1,
    }
    fields = {"verification": record, "updated_at": now, "response_deadline": None}
    history = history_entry(
        "completion_submitted",
        now,
        DIKERJAKAN,
        actor=decision.actor_opd,
        note=note_completion_submitted(opd_name),
        photos=evidence_ids or None,
        verification=VERIFICATION_PENDING,
        opd_note=decision.note,
        evidence=[check.model_dump() for check in checks],
    )
    pushes = {"evidence_photos": {"$each": [{"photo_id": p} for p in evidence_ids]}} if evidence_ids else {}
    return Change(fields, history, [submitted], pushes)


def handed_over(change: Change, report: dict[str, Any]) -> Change:
    """A report sent back and then handed to another OPD (koordinasi, disposisi): the rework deadline and the refusal
    were the previous OPD's, the new one starts afresh (the history keeps them)."""
    if not report.get("work_deadline") and not report.get("verification"):
        return change
    return Change(
        {**change.fields, "work_deadline": None, "verification": None}, change.history, change.messages, change.pushes
    )


# ---- the verifier decides ------------------------------------------------------------------------------------------


def _pending_record(report: Report) -> dict[str, Any]:
    if not is_pending(report.document):
        raise VerificationRefused(
            "not_pending_verification",
            f"report {report.id} is not waiting for verification (status {report.status})",
        )
    return dict(report.document["verification"])


def approve(report: Report, now: datetime) -> Change:
    """The verifier approves: the report closes as selesai, credited to the OPD that did the work."""
    record = _pending_record(report)
    document = report.document
    version = report.version + 1
    opd = record["opd"]
    evidence_ids = list(record.get("evidence_photos") or [])
    matched = all_matched([EvidenceCheck.model_validate(c) for c in record.get("checks") or []])
    changed = report.status_changed(
        now, SELESAI, opd, record.get("note") or "", from_status=DIKERJAKAN, evidence_ids=evidence_ids
    )
    approved = ReportVerificationApproved(
        report_id=report.id,
        version=version,
        occurred_at=now,
        category=document["category"],
        opd=opd,
        verifier=VERIFIER_CODE,
        evidence_matched=matched,
        area=report._area(),
        submitted_at=document["submitted_at"],
    )
    record.update(state=VERIFICATION_APPROVED, decided_at=now, decided_by=VERIFIER_CODE)
    fields = {"status": SELESAI, "verification": record, "updated_at": now, "work_deadline": None}
    # an ordinary transition entry (the close), so the history, the public view and a replay read it as before
    history = history_entry(
        "transition",
        now,
        SELESAI,
        actor=opd,
        note=record.get("note") or "",
        photos=evidence_ids or None,
        verified_by=VERIFIER_CODE,
        evidence_matched=matched,
    )
    messages: list[Message] = [changed, approved]
    return Change(fields, history, messages)


def refuse(report: Report, reason: str, opd_name: str, now: datetime, override_seconds: float | None) -> Change:
    """The verifier refuses with a reason: back to the same OPD as dikerjakan, with a new deadline."""
    reason = reason.strip()
    if not reason:
        raise VerificationRefused("missing_reason", "a refusal needs a reason the OPD and the citizen read", "reason")
    if len(reason) > REASON_MAX_CHARS:
        raise VerificationRefused("invalid_reason", f"reason must be at most {REASON_MAX_CHARS} characters", "reason")
    record = _pending_record(report)
    document = report.document
    deadline = rework_deadline(now, override_seconds)
    refused = ReportVerificationRefused(
        report_id=report.id,
        version=report.version + 1,
        occurred_at=now,
        category=document["category"],
        opd=record["opd"],
        verifier=VERIFIER_CODE,
        reason=reason,
        work_deadline=deadline,
        area=report._area(),
        submitted_at=document["submitted_at"],
    )
    record.update(state=VERIFICATION_REFUSED, decided_at=now, decided_by=VERIFIER_CODE, reason=reason)
    fields = {"verification": record, "work_deadline": deadline, "updated_at": now}
    history = history_entry(
        "verification_refused",
        now,
        DIKERJAKAN,
        actor=VERIFIER_CODE,
        note=note_verification_refused(reason, opd_name),
        refusal_reason=reason,
        work_deadline=deadline,
        refused_opd=record["opd"],
    )
    return Change(fields, history, [refused])


def already_decided(report: dict[str, Any], outcome: str, reason: str | None = None) -> bool:
    """A retried decision that is already in place (approve twice, the same refusal twice): answered as done."""
    record = verification_of(report) or {}
    if outcome == VERIFICATION_APPROVED:
        return record.get("state") == VERIFICATION_APPROVED and report.get("status") == SELESAI
    return (
        record.get("state") == VERIFICATION_REFUSED
        and report.get("status") == DIKERJAKAN
        and (reason or "").strip() == record.get("reason")
    )


# ---- a replay of the history (services/intake/replay.py) -------------------------------------------------------------


def replayed_verification_events(
    entry: dict[str, Any],
    common: dict[str, Any],
    base_url: str,
    event_id: Callable[[type[Event]], str],
) -> list[Event]:
    """The verification events a stored history entry stands for (`common`: report_id, version, occurred_at,
    category, area, submitted_at), with the stable ids `event_id` gives each type; none for other entries."""
    kind = entry.get("kind")
    checks = [EvidenceCheck.model_validate(c) for c in entry.get("evidence") or []]
    photos = photo_refs(base_url, list(entry.get("photos") or []))
    if kind == "completion_submitted" or (kind == "transition" and entry.get("verification_required") is False):
        note = entry.get("opd_note") if kind == "completion_submitted" else entry.get("note")
        return [
            ReportCompletionSubmitted(
                **common,
                event_id=event_id(ReportCompletionSubmitted),
                opd=str(entry.get("actor_opd") or ""),
                note=str(note or ""),
                evidence_photos=photos,
                evidence=checks,
                evidence_matched=all_matched(checks),
                verification_required=kind == "completion_submitted",
            )
        ]
    if kind == "transition" and entry.get("verified_by"):
        return [
            ReportVerificationApproved(
                **common,
                event_id=event_id(ReportVerificationApproved),
                opd=str(entry.get("actor_opd") or ""),
                verifier=str(entry["verified_by"]),
                evidence_matched=bool(entry.get("evidence_matched")),
            )
        ]
    if kind == "verification_refused":
        return [
            ReportVerificationRefused(
                **common,
                event_id=event_id(ReportVerificationRefused),
                opd=str((entry.get("opd") or {}).get("code") or entry.get("refused_opd") or ""),
                verifier=str(entry.get("actor_opd") or VERIFIER_CODE),
                reason=str(entry.get("refusal_reason") or ""),
                work_deadline=entry.get("work_deadline") or common["occurred_at"],
            )
        ]
    return []
