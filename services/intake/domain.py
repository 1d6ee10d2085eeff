"""Intake rules with no I/O: report numbers, tracking tokens, the official status machine and the public view.

Statuses (JAKI): menunggu → koordinasi (handed to another OPD) / disposisi (Dinas to its Suku Dinas) → dikerjakan →
selesai; ditolak with a reason. Every transition is recorded with actor OPD, time and note.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from jaklapor.tokens import tracking_token_for_retry
from jaklapor.vocabulary import (
    ALLOWED_TRANSITIONS,
    DIKERJAKAN,
    DISPOSISI,
    DITOLAK,
    JAKARTA_TZ,
    KOORDINASI,
    PENDING_VERIFICATION_LABEL,
    SELESAI,
    STATUS_LABELS,
    TARGET_STATUSES,
    VERIFICATION_PENDING,
    VERIFICATION_REFUSED_LABEL,
    WAITING_STATUSES,
    iso,
)

AREA_HANDLERS = ("kelurahan", "kecamatan", "kota")

REJECTION_REASONS = {
    "spam": "Spam atau bukan laporan",
    "duplikat": "Duplikat dari laporan lain",
    "di-luar-jakarta": "Lokasi di luar wilayah DKI Jakarta",
    "tidak-lengkap": "Informasi tidak lengkap atau foto tidak jelas",
    "bukan-kewenangan-pemprov": "Bukan kewenangan Pemprov DKI Jakarta",
}

NOTE_MAX_CHARS = 2000
#: photos a citizen may attach to one report (FixMyStreet takes 3); each goes through the same sanitising
MAX_PHOTOS_PER_REPORT = 3
REPORT_NUMBER_PREFIX = "JK"
REPORT_NUMBER_RE = re.compile(rf"{REPORT_NUMBER_PREFIX}-\d{{8}}-\d{{6}}")


def report_day(moment: datetime) -> str:
    """The Jakarta calendar day of a moment, as used in report numbers."""
    return moment.astimezone(JAKARTA_TZ).strftime("%Y%m%d")


def format_report_number(day: str, sequence: int) -> str:
    """CRM-style human-readable number: `JK-20261127-000042`."""
    return f"{REPORT_NUMBER_PREFIX}-{day}-{sequence:06d}"


def new_photo_id() -> str:
    return secrets.token_urlsafe(18)


class TransitionRefused(Exception):
    """A requested status change the rules refuse: a stable `code`, a sentence for the OPD's developer, the request
    field at fault. The HTTP status answering each code is the gateway's (services/intake/http_errors.py)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class OpdLike(Protocol):
    """What the rules read of an OPD (the directory's entries are frozen: read-only members)."""

    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def agency(self) -> str: ...
    @property
    def kota(self) -> str | None: ...


class DirectoryLike(Protocol):
    def get(self, code: str) -> Any: ...

    def sudin_of(self, dinas_code: str, kota_slug: str) -> Any: ...


@dataclass(frozen=True)
class TransitionRequest:
    status: str
    note: str
    target_opd: str | None = None
    reason: str | None = None
    has_evidence: bool = False


@dataclass(frozen=True)
class ReportState:
    report_id: str
    status: str
    assigned_opd: str | None
    kota_slug: str | None


@dataclass(frozen=True)
class TransitionDecision:
    from_status: str
    to_status: str
    actor_opd: str
    note: str
    # set when the report leaves the actor for another OPD (koordinasi / disposisi)
    target_opd: OpdLike | None = None
    reason: str | None = None

    @property
    def forwards(self) -> bool:
        return self.target_opd is not None


def decide_transition(
    state: ReportState, actor: OpdLike, request: TransitionRequest, directory: DirectoryLike
) -> TransitionDecision:
    """Check one OPD's requested status change against the rules; raise TransitionRefused naming the problem."""
    status = request.status
    if status not in TARGET_STATUSES:
        raise TransitionRefused(
            "invalid_status",
            f"status must be one of {', '.join(sorted(TARGET_STATUSES))}",
            "status",
        )
    if state.assigned_opd is None:
        raise TransitionRefused("not_routed_yet", "the report is still being routed; try again shortly")
    if state.assigned_opd != actor.code:
        # same answer as for a report that does not exist: an OPD learns nothing about others' reports
        raise TransitionRefused("report_not_found", f"no report {state.report_id} is assigned to {actor.code}")
    if status not in ALLOWED_TRANSITIONS[state.status]:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[state.status])) or "none (final status)"
        raise TransitionRefused(
            "illegal_transition",
            f"a report in status {state.status} cannot move to {status}; allowed: {allowed}",
            "status",
        )
    note = request.note.strip()
    if len(note) > NOTE_MAX_CHARS:
        raise TransitionRefused("invalid_note", f"note must be at most {NOTE_MAX_CHARS} characters", "note")
    if not note and status != DIKERJAKAN:
        raise TransitionRefused("missing_note", f"a note for the citizen is required to set {status}", "note")

    target = None
    reason = None
    if status == KOORDINASI:
        target = _koordinasi_target(actor, request, directory)
    elif status == DISPOSISI:
        target = _disposisi_target(state, actor, request, directory)
    elif status == DITOLAK:
        reason = request.reason
        if reason not in REJECTION_REASONS:
            raise TransitionRefused(
                "invalid_reason",
                f"reason must be one of {', '.join(REJECTION_REASONS)}",
                "reason",
            )
    if request.target_opd and status not in (KOORDINASI, DISPOSISI):
        raise TransitionRefused(
            "unexpected_target",
            "target_opd only applies to koordinasi and disposisi",
            "target_opd",
        )
    if status == SELESAI and not request.has_evidence:
        raise TransitionRefused("missing_evidence", "selesai requires an evidence photo of the work done", "photo")
    return TransitionDecision(state.status, status, actor.code, note, target, reason)


def _koordinasi_target(actor: OpdLike, request: TransitionRequest, directory: DirectoryLike) -> Any:
    if not request.target_opd:
        raise TransitionRefused(
            "missing_target",
            "koordinasi needs target_opd, the OPD to hand over to",
            "target_opd",
        )
    target = directory.get(request.target_opd)
    if target is None:
        raise TransitionRefused("unknown_opd", f"unknown OPD {request.target_opd!r}", "target_opd")
    if target.code == actor.code:
        raise TransitionRefused("same_opd", "an OPD cannot hand a report to itself", "target_opd")
    return target


def disposisi_target(kota_slug: str | None, actor: OpdLike, directory: DirectoryLike) -> Any | None:
    """The Suku Dinas (kota unit) `actor` may instruct for a report in `kota_slug`: only the provincial body (no kota
    of its own) instructs its unit of the report's kota; None for anyone else, or a report outside any kota."""
    if kota_slug is None:
        return None
    is_provincial = actor.level in ("dinas", "satpol-pp") and actor.kota is None
    sudin = directory.sudin_of(actor.agency, kota_slug) if is_provincial else None
    return None if sudin is None or sudin.code == actor.code else sudin


def allowed_transitions(state: ReportState, actor: OpdLike, directory: DirectoryLike) -> list[str]:
    """The statuses `actor` may set on the report now (in the vocabulary's order): none unless it holds the report;
    disposisi only when it has a Suku Dinas to instruct there. The fields each needs are `decide_transition`'s."""
    if state.assigned_opd is None or state.assigned_opd != actor.code:
        return []
    allowed = ALLOWED_TRANSITIONS[state.status]
    return [
        status
        for status in STATUS_LABELS
        if status in allowed and (status != DISPOSISI or disposisi_target(state.kota_slug, actor, directory))
    ]


def _disposisi_target(state: ReportState, actor: OpdLike, request: TransitionRequest, directory: DirectoryLike) -> Any:
    if state.kota_slug is None:
        raise TransitionRefused("no_area", "disposisi needs a report inside a kota; use koordinasi", "status")
    # only the provincial body (no kota of its own) instructs a unit; a kota unit cannot dispose sideways
    sudin = disposisi_target(state.kota_slug, actor, directory)
    if sudin is None:
        raise TransitionRefused(
            "disposisi_not_allowed",
            "only a Dinas can instruct its Suku Dinas (disposisi); use koordinasi to hand over",
            "status",
        )
    if request.target_opd and request.target_opd != sudin.code:
        raise TransitionRefused(
            "invalid_target",
            f"disposisi goes to the Suku Dinas of the report's kota: {sudin.code}",
            "target_opd",
        )
    return sudin


HistoryEntry = TypeVar("HistoryEntry", bound=Mapping[str, Any])


def versioned_history(history: Sequence[HistoryEntry]) -> Iterator[tuple[int, HistoryEntry]]:
    """Each history entry of a report with the version it made: every stored change pushes one entry and raises the
    version by one, so the n-th entry made version n (an entry may also say so itself)."""
    for index, entry in enumerate(history):
        yield int(entry.get("version") or index + 1), entry


def history_entry(
    kind: str,
    at: datetime,
    status: str,
    *,
    actor: str | None = None,
    note: str = "",
    opd: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": kind,
        "at": at,
        "status": status,
        "actor_opd": actor,
        "note": note,
    }
    if opd is not None:
        entry["opd"] = opd
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry


def photo_url(base_url: str, photo_id: str) -> str:
    return f"{base_url.rstrip('/')}/api/v1/photos/{photo_id}"


def tracking_url(base_url: str, token: str) -> str:
    """Where a citizen reads their report: the gateway's tracking view."""
    return f"{base_url.rstrip('/')}/api/v1/reports/{token}"


def stream_url(stream_base_url: str, token: str) -> str:
    """Where a citizen follows their report live: notify's stream."""
    return f"{stream_base_url.rstrip('/')}/api/v1/reports/{token}/stream"


def is_report_number(text: str) -> bool:
    """Whether `text` is written like a report number (`JK-20261127-000042`)."""
    return REPORT_NUMBER_RE.fullmatch(text) is not None


#: the stored fields `report_summary` reads: what a query for summaries fetches
PUBLIC_SUMMARY_FIELDS = (
    *("_id", "category", "status", "description", "location", "area", "submitted_at", "photos"),
    # duplicates (services/intake/duplicates.py)
    *("supporters", "merged_into"),
    "verification",
)


def report_summary(report: dict[str, Any], base_url: str) -> dict[str, Any]:
    """What anyone may see of a report (the nearby list, the start of every view): what, where, since when, its
    status and photos; never the tracking token's hash, the Idempotency-Key's or anything about the reporter."""
    return {
        "report_id": report["_id"],
        "category": report["category"],
        "status": report["status"],
        "status_label": status_label_of(report),
        "description": report["description"],
        "location": report["location"],
        "area": report.get("area"),
        "submitted_at": iso(report["submitted_at"]),
        "photos": [photo_url(base_url, p["photo_id"]) for p in report["photos"]],
        # people who follow this report instead of filing it again, and the report it is merged into (if any)
        "supporters": int(report.get("supporters") or 0),
        "merged_into": report.get("merged_into"),
    }


def deadline_state(report: dict[str, Any]) -> dict[str, Any]:
    """The OPD's response deadline while it has not answered; `overdue` once it passed with nobody higher to take
    it; how often the report moved up the chain (`history` may hold only the entries' `kind`)."""
    deadline = report.get("response_deadline")
    waiting = report["status"] in WAITING_STATUSES
    return {
        "response_deadline": iso(deadline) if waiting and deadline is not None else None,
        "overdue": bool(report.get("escalation_exhausted")) and waiting,
        "escalations": sum(1 for entry in report.get("history", ()) if entry.get("kind") == "escalated"),
    }


#: the stored fields `work_item` reads (of the history only each entry's kind)
WORK_ITEM_FIELDS = (
    *PUBLIC_SUMMARY_FIELDS,
    "updated_at",
    "response_deadline",
    "escalation_exhausted",
    "hop",
    "version",
    "history.kind",
    "work_deadline",
)


def work_item(report: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A report in an OPD's work list: its public summary, when it last changed, its deadline and escalation state,
    and how often it was handed over (`hop`)."""
    return {
        **report_summary(report, base_url),
        "updated_at": iso(report["updated_at"]),
        **deadline_state(report),
        "hop": report.get("hop", 0),
        "version": report["version"],
        **verification_fields(report),
    }


def public_view(
    report: dict[str, Any], base_url: str, stream_base_url: str = "", token: str | None = None
) -> dict[str, Any]:
    """A report with its public history, as anyone following it by number sees it; with the `token` (its
    citizen, who holds it) also the link to its live stream. Never contact or identity (intake does not even
    store them)."""
    history = [
        {
            "kind": entry["kind"],
            "status": entry["status"],
            "status_label": STATUS_LABELS[entry["status"]],
            "at": iso(entry["at"]),
            "actor_opd": entry.get("actor_opd"),
            "opd": entry.get("opd"),
            "note": entry.get("note", ""),
            **({"reason": entry["reason"]} if entry.get("reason") else {}),
            **({"photos": [photo_url(base_url, p) for p in entry["photos"]]} if entry.get("photos") else {}),
            **({"from_opd": entry["from_opd"]} if entry.get("from_opd") else {}),
            **({"missed_deadline": iso(entry["deadline"])} if entry.get("deadline") else {}),
            **({"primary_id": entry["primary_id"]} if entry.get("primary_id") else {}),
            **({"merged_into": entry["merged_into"]} if entry.get("merged_into") else {}),
            **history_verification(entry),
        }
        for entry in report["history"]
    ]
    view = {
        **report_summary(report, base_url),
        "responsible_opd": report.get("assigned_opd"),
        "updated_at": iso(report["updated_at"]),
        "evidence_photos": [photo_url(base_url, p["photo_id"]) for p in report.get("evidence_photos", [])],
        "history": history,
        "version": report["version"],
    }
    if report.get("triage_reason"):
        view["triage_reason"] = report["triage_reason"]
    view.update(verification_fields(report))
    view.update(deadline_state(report))
    if token is not None:
        view["stream_url"] = stream_url(stream_base_url, token)
    return view


def receipt(report: dict[str, Any], token: str, tracking_url: str, stream_url: str) -> dict[str, Any]:
    """What a citizen gets back for a submission: the report's number and the token (shown this once) with its links."""
    return {
        "report_id": report["_id"],
        "tracking_token": token,
        "status": report["status"],
        "status_label": STATUS_LABELS[report["status"]],
        "category": report["category"],
        "submitted_at": iso(report["submitted_at"]),
        "tracking_url": tracking_url,
        "stream_url": stream_url,
    }


@dataclass(frozen=True)
class SubmissionRetry:
    """What identifies a submission sent with an Idempotency-Key: the key (hashed), the content, the token."""

    key_hash: str
    fingerprint: str
    token: str

    @classmethod
    def of(
        cls, idempotency_key: str, token_secret: str, form: Any, category: str, photo_digests: Sequence[bytes]
    ) -> SubmissionRetry:
        return cls(
            key_hash=hashlib.sha256(b"idempotency-key\0" + idempotency_key.encode()).hexdigest(),
            fingerprint=submission_fingerprint(form, category, photo_digests),
            token=tracking_token_for_retry(token_secret, idempotency_key),
        )


def submission_fingerprint(form: Any, category: str, photo_digests: Sequence[bytes]) -> str:
    """Hash of everything a citizen sent (the photos as their SHA-256 digests, in order), so a reused
    Idempotency-Key with other content is told apart."""
    digest = hashlib.sha256()
    for part in (category, form.description, repr(form.lat), repr(form.lon), form.contact or ""):
        digest.update(part.encode("utf-8") + b"\0")
    # a report without photos hashes as one empty photo did before several were accepted: stored fingerprints hold
    for photo_digest in photo_digests or [hashlib.sha256(b"").digest()]:
        digest.update(photo_digest)
    return digest.hexdigest()


def escalation_target(directory: Any, opd_code: str, category: str) -> Any | None:
    """The OPD a report goes to when `opd_code` misses its deadline: kelurahan -> kecamatan -> kota office ->
    the provincial Dinas of the category; a Suku Dinas or kota unit -> its Dinas. None at the top of the chain."""
    parent = directory.escalation_parent(opd_code)
    if parent is not None:
        return parent
    opd = directory.get(opd_code)
    rule = directory.rules.get(category)
    if opd is None or opd.level != "kota" or rule is None:
        return None
    for agency in (rule.handler, *rule.secondary):
        if agency not in AREA_HANDLERS and (dinas := directory.get(agency)) is not None:
            return dinas
    return None


# ---- verified completion (services/intake/verification.py has the rules) ---------------------------------------------


def is_pending_verification(report: dict[str, Any]) -> bool:
    return (
        report.get("status") == DIKERJAKAN and (report.get("verification") or {}).get("state") == VERIFICATION_PENDING
    )


def status_label_of(report: dict[str, Any]) -> str:
    """The status as people read it: a dikerjakan report whose completion waits for the verifier reads "Menunggu
    verifikasi" (its `status` stays dikerjakan: the six official statuses stay six)."""
    if is_pending_verification(report):
        return PENDING_VERIFICATION_LABEL
    return STATUS_LABELS[report["status"]]


def verification_fields(report: dict[str, Any]) -> dict[str, Any]:
    """The verification sub-state and the rework deadline of a report sent back to its OPD (none for others)."""
    record = report.get("verification") or {}
    fields: dict[str, Any] = {
        "pending_verification": is_pending_verification(report),
        "work_deadline": iso(report.get("work_deadline")) if report.get("status") == DIKERJAKAN else None,
        "verification": None,
    }
    if record.get("state"):
        fields["verification"] = {
            "state": record["state"],
            **({"submitted_at": iso(record["submitted_at"])} if record.get("submitted_at") else {}),
            **({"decided_at": iso(record["decided_at"])} if record.get("decided_at") else {}),
            **({"reason": record["reason"]} if record.get("reason") else {}),
        }
    return fields


def history_verification(entry: dict[str, Any]) -> dict[str, Any]:
    """What a history entry of the verification adds to the public history."""
    extra: dict[str, Any] = {}
    if entry.get("kind") == "completion_submitted":
        extra["status_label"] = PENDING_VERIFICATION_LABEL
        extra["pending_verification"] = True
    if entry.get("kind") == "verification_refused":
        extra["status_label"] = VERIFICATION_REFUSED_LABEL
    if entry.get("verified_by"):
        extra["verified_by"] = entry["verified_by"]
    if entry.get("refusal_reason"):
        extra["refusal_reason"] = entry["refusal_reason"]
    if entry.get("work_deadline"):
        extra["work_deadline"] = iso(entry["work_deadline"])
    return extra
