"""The citizen's word on `selesai` (no I/O): within a window after a report became selesai, the holder of its
tracking token confirms the fix (once; optional rating 1-5 and comment) or reopens it with a reason (and an optional
photo), which sends it back to the OPD holding it as dikerjakan with a rework deadline.

Rules (the errors are `FeedbackRefused`, answered through services/intake/http_errors.py):
- only a report whose status is `selesai` (however it got there: an OPD's transition, or a verifier's approval);
- only within the window (IntakeSettings.citizen_feedback_window_days, default 14 days) from the moment the report
  last became selesai: a report reopened and finished again opens a new window of its own;
- a confirmed report cannot be reopened, nor confirmed again (a retry with the same rating and comment is answered
  as the first one was: naturally idempotent);
- a report is reopened at most MAX_REOPENS times: past that the city handles the dispute outside the app (every
  reopen already counts against the OPD's figures);
- a reopen retried (same Idempotency-Key, or without one the same reason while the report is still as that reopen
  left it) is answered as the first one was; nothing is changed twice.

The changes are `Change`s of services/intake/report.py, stored by the repository in one write with their events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jaklapor.events import AreaRef, OpdRef, ReportConfirmed, ReportReopened
from jaklapor.vocabulary import (
    CITIZEN_ACTOR,
    DIKERJAKAN,
    SELESAI,
    iso,
    note_confirmed,
    note_reopened,
    rework_deadline,
    utc,
)
from services.intake.domain import history_entry
from services.intake.report import Change, Message, Report, photo_refs

#: the reopens a report may have; past that the dispute is the city's to handle (see the module's docstring)
MAX_REOPENS = 3
REASON_MIN_CHARS = 5
REASON_MAX_CHARS = 1000
COMMENT_MAX_CHARS = 500
#: photos a reopen may carry (the same cleaning as a submission's)
MAX_REOPEN_PHOTOS = 1


class FeedbackRefused(Exception):
    """A confirmation or reopen the rules refuse: a stable `code`, a sentence naming the problem, the field at fault."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def selesai_since(history: Sequence[Mapping[str, Any]]) -> datetime | None:
    """When the report last became selesai: the first entry of the history's trailing run of selesai entries (a
    confirmation adds one more selesai entry; it does not move the start). None when it is not selesai now."""
    since = None
    for entry in reversed(history):
        if entry.get("status") != SELESAI:
            break
        since = entry.get("at")
    return utc(since) if since is not None else None


def confirmation_of(document: Mapping[str, Any]) -> dict[str, Any] | None:
    """The confirmation of the report's current selesai, if its citizen gave one."""
    confirmation = document.get("confirmation")
    return dict(confirmation) if confirmation else None


def reopens_of(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in document.get("reopens") or []]


@dataclass(frozen=True)
class FeedbackState:
    """What the citizen may do now with their report."""

    selesai_at: datetime | None
    window_ends_at: datetime | None
    window_open: bool
    confirmed: bool
    reopens: int
    # the report is merged into another (services/intake/duplicates.py): its status is that report's, so the
    # word on "selesai" belongs to that report's own reporter
    merged_into: str | None = None

    @property
    def can_confirm(self) -> bool:
        return self.window_open and not self.confirmed and not self.merged_into

    @property
    def can_reopen(self) -> bool:
        return self.window_open and not self.confirmed and self.reopens < MAX_REOPENS and not self.merged_into


def feedback_state(document: Mapping[str, Any], now: datetime, window: timedelta) -> FeedbackState:
    since = selesai_since(document.get("history") or []) if document.get("status") == SELESAI else None
    ends = since + window if since is not None else None
    return FeedbackState(
        selesai_at=since,
        window_ends_at=ends,
        window_open=ends is not None and utc(now) < ends,
        confirmed=confirmation_of(document) is not None,
        reopens=len(reopens_of(document)),
        merged_into=document.get("merged_into"),
    )


def feedback_view(document: Mapping[str, Any], now: datetime, window: timedelta) -> dict[str, Any]:
    """The part of the tracking view (token holder only) that says what the citizen may do and what they did."""
    state = feedback_state(document, now, window)
    confirmation = confirmation_of(document)
    reopens = reopens_of(document)
    return {
        "selesai_at": iso(state.selesai_at),
        "window_ends_at": iso(state.window_ends_at),
        "window_days": round(window.total_seconds() / 86400, 4),
        "can_confirm": state.can_confirm,
        "can_reopen": state.can_reopen,
        "confirmed": None
        if confirmation is None
        else {
            "at": iso(confirmation["at"]),
            "rating": confirmation.get("rating"),
            "comment": confirmation.get("comment"),
        },
        "reopens": [{"at": iso(r["at"]), "reason": r["reason"]} for r in reopens],
        "max_reopens": MAX_REOPENS,
        "work_deadline": iso(document.get("work_deadline")) if document.get("status") == DIKERJAKAN else None,
    }


def _check_window(state: FeedbackState, status: str, now: datetime) -> None:
    if state.merged_into:
        raise FeedbackRefused(
            "report_merged",
            f"the report is merged into {state.merged_into} and follows its status: that report's reporter confirms "
            "or reopens it",
        )
    if status != SELESAI or state.selesai_at is None:
        raise FeedbackRefused(
            "not_selesai", f"the report is {status}, not selesai: only a finished report can be confirmed or reopened"
        )
    if not state.window_open:
        raise FeedbackRefused(
            "window_closed",
            f"the window to confirm or reopen closed at {iso(state.window_ends_at)}"
            f" (it is open for a while after the report became selesai)",
        )


def check_rating(rating: int | None) -> int | None:
    if rating is not None and not 1 <= rating <= 5:
        raise FeedbackRefused("invalid_rating", "rating must be a whole number from 1 to 5", "rating")
    return rating


def check_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise FeedbackRefused("missing_reason", "say why the report is not fixed (reason)", "reason")
    if len(reason) < REASON_MIN_CHARS or len(reason) > REASON_MAX_CHARS:
        raise FeedbackRefused(
            "invalid_reason", f"reason must be {REASON_MIN_CHARS} to {REASON_MAX_CHARS} characters", "reason"
        )
    return reason


def check_comment(comment: str | None) -> str | None:
    comment = (comment or "").strip() or None
    if comment is not None and len(comment) > COMMENT_MAX_CHARS:
        raise FeedbackRefused("invalid_comment", f"comment must be at most {COMMENT_MAX_CHARS} characters", "comment")
    return comment


# ---- confirm ----------------------------------------------------------------------------------------------------


def confirm_replay(document: Mapping[str, Any], rating: int | None, comment: str | None) -> bool:
    """Whether a confirmation was already given with this very rating and comment (a retry: answer it again)."""
    confirmation = confirmation_of(document)
    return (
        confirmation is not None
        and confirmation.get("rating") == rating
        and (confirmation.get("comment") or None) == comment
    )


def confirm(report: Report, rating: int | None, comment: str | None, window: timedelta, now: datetime) -> Change:
    """The citizen confirms the fix; FeedbackRefused names why not."""
    rating, comment = check_rating(rating), check_comment(comment)
    state = feedback_state(report.document, now, window)
    if state.confirmed:
        raise FeedbackRefused("already_confirmed", "the report was already confirmed as fixed")
    _check_window(state, report.status, now)
    assert state.selesai_at is not None
    document = report.document
    version = report.version + 1
    opd = report.assigned_opd
    note = note_confirmed(rating, comment)
    event = ReportConfirmed(
        report_id=report.id,
        version=version,
        occurred_at=now,
        category=document["category"],
        opd=OpdRef.model_validate(opd) if opd else None,
        rating=rating,
        comment=comment,
        selesai_at=state.selesai_at,
        area=_area(document),
        submitted_at=document["submitted_at"],
    )
    confirmation = {"at": now, "rating": rating, "comment": comment}
    history = history_entry(
        "confirmed",
        now,
        SELESAI,
        actor=CITIZEN_ACTOR,
        note=note,
        opd=opd or None,
        rating=rating,
        comment=comment,
        selesai_at=state.selesai_at,
    )
    return Change({"confirmation": confirmation, "updated_at": now}, history, [event])


# ---- reopen -----------------------------------------------------------------------------------------------------


def idempotency_key_hash(key: str) -> str:
    return hashlib.sha256(b"reopen-idempotency-key\0" + key.encode()).hexdigest()


def reopen_replay(document: Mapping[str, Any], reason: str, key_hash: str | None) -> bool:
    """Whether this reopen was already carried out: the same Idempotency-Key; or, without a key, the same reason
    while the report is still as that reopen left it (nothing happened since)."""
    reopens = reopens_of(document)
    if not reopens:
        return False
    last = reopens[-1]
    if key_hash is not None:
        return any(r.get("idempotency_key_hash") == key_hash for r in reopens)
    return last.get("reason") == reason.strip() and last.get("version") == document.get("version")


def check_reopen(report: Report, reason: str, window: timedelta, now: datetime) -> str:
    """The reason, checked, if the report may be reopened now; FeedbackRefused names why not (before any photo is
    stored)."""
    reason = check_reason(reason)
    state = feedback_state(report.document, now, window)
    if state.confirmed:
        raise FeedbackRefused("already_confirmed", "the report was confirmed as fixed: it can no longer be reopened")
    _check_window(state, report.status, now)
    if state.reopens >= MAX_REOPENS:
        raise FeedbackRefused(
            "reopen_limit",
            f"the report was already reopened {MAX_REOPENS} times; contact the city (JAKI / 112) about it",
        )
    return reason


def reopen(
    report: Report,
    reason: str,
    photo_ids: list[str],
    window: timedelta,
    now: datetime,
    *,
    rework_seconds: float | None = None,
    key_hash: str | None = None,
) -> Change:
    """The citizen says the report is not fixed: back to the OPD holding it as dikerjakan, with a rework deadline."""
    reason = check_reopen(report, reason, window, now)
    state = feedback_state(report.document, now, window)
    assert state.selesai_at is not None
    document = report.document
    version = report.version + 1
    opd = report.assigned_opd or {}
    deadline = rework_deadline(now, rework_seconds)
    note = note_reopened(reason)
    area = _area(document)
    messages: list[Message] = [
        report.status_changed(now, DIKERJAKAN, CITIZEN_ACTOR, note, from_status=SELESAI, assigned_opd=opd.get("code")),
        ReportReopened(
            report_id=report.id,
            version=version,
            occurred_at=now,
            category=document["category"],
            opd=OpdRef.model_validate(opd),
            reason=reason,
            photos=photo_refs(report.photo_base_url, photo_ids),
            selesai_at=state.selesai_at,
            work_deadline=deadline,
            reopen_number=state.reopens + 1,
            area=area,
            submitted_at=document["submitted_at"],
        ),
    ]
    record: dict[str, Any] = {
        "at": now,
        "reason": reason,
        "photos": photo_ids,
        "opd": opd.get("code"),
        "selesai_at": state.selesai_at,
        # the report's version once this reopen is stored: a retry without a key is recognised by it
        "version": version,
    }
    if key_hash is not None:
        record["idempotency_key_hash"] = key_hash
    history = history_entry(
        "reopened",
        now,
        DIKERJAKAN,
        actor=CITIZEN_ACTOR,
        note=note,
        opd=opd or None,
        reopen_reason=reason,
        photos=photo_ids or None,
        work_deadline=deadline,
        selesai_at=state.selesai_at,
    )
    fields = {"status": DIKERJAKAN, "work_deadline": deadline, "response_deadline": None, "updated_at": now}
    return Change(fields, history, messages, {"reopens": {"$each": [record]}})


def _area(document: Mapping[str, Any]) -> AreaRef | None:
    area = document.get("area")
    return AreaRef.model_validate(area) if area else None
