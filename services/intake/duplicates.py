"""Duplicates, with no I/O: who may merge a report into another (and undo it), the rules a merge must meet, what a
merged report takes from each change of its primary, and how a supporter is told apart without being identified.

The rules (README, "Duplicates"):
- Merge: the OPD holding a report (the duplicate) merges it into another report (the primary) of the same category;
  both are open (not selesai / ditolak), neither is merged already, the duplicate is nobody's primary (no chains:
  a report others follow cannot itself follow; unmerge them first), and a report is never merged into itself. The
  primary may be held by any OPD: the duplicate follows it wherever it goes.
- From the merge on, the duplicate has the primary's status and takes each later status change of the primary as its
  own change (its own history entry, its own report_status_changed with `merged_into`, its own notifications); it
  leaves every work list and stops its response clock, and its citizen reads "digabung ke JK-...".
- Unmerge (a mistake): the OPD holding the merged report, or the one holding its primary. The report goes back to
  the status it had when it was merged (whatever the primary did since is the primary's work, not this report's),
  still held by the OPD that held it; a waiting status gets a fresh response deadline.
- Who may merge or unmerge is decided by `may_act_on_duplicates` alone, so another role (a city verifier) is one
  line there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jaklapor.vocabulary import FINAL_STATUSES
from services.intake.domain import NOTE_MAX_CHARS, OpdLike, TransitionRefused, versioned_history

#: roles (besides the OPD holding the report) allowed to merge and unmerge any report: a verifier role, when it
#: exists, is added here (the attribute `role` of the actor)
MERGE_ROLES: frozenset[str] = frozenset({"verifier"})


def may_act_on_duplicates(actor: OpdLike, holder_codes: tuple[str | None, ...]) -> bool:
    """THE permission check of merge and unmerge: the actor holds one of the reports concerned, or has a role that
    may act on any report (MERGE_ROLES)."""
    if getattr(actor, "role", None) in MERGE_ROLES:
        return True
    return actor.code in {code for code in holder_codes if code}


def _holder(report: Mapping[str, Any]) -> str | None:
    return (report.get("assigned_opd") or {}).get("code")


def _note(text: str) -> str:
    note = (text or "").strip()
    if len(note) > NOTE_MAX_CHARS:
        raise TransitionRefused("invalid_note", f"note must be at most {NOTE_MAX_CHARS} characters", "note")
    return note


def refuse_if_merged(report: Mapping[str, Any], actor_code: str) -> None:
    """A merged report takes no status change of its own: it moves with its primary (unmerge it first). Its holder
    learns why; anybody else gets the answer to a report that is not theirs."""
    primary = report.get("merged_into")
    if not primary:
        return
    if _holder(report) != actor_code:
        raise TransitionRefused("report_not_found", f"no report {report['_id']} is assigned to {actor_code}")
    raise TransitionRefused(
        "report_merged", f"{report['_id']} is merged into {primary} and follows its status; unmerge it to act on it"
    )


@dataclass(frozen=True)
class MergeDecision:
    duplicate_id: str
    primary_id: str
    actor_opd: str
    note: str
    from_status: str
    #: the duplicate's status from now on: the primary's
    status: str
    #: the primary's version the duplicate has caught up with
    primary_version: int
    primary_evidence: list[str] = field(default_factory=list)


def decide_merge(
    duplicate: Mapping[str, Any],
    primary: Mapping[str, Any] | None,
    actor: OpdLike,
    note: str,
    duplicate_has_followers: bool,
) -> MergeDecision:
    """Check a merge of `duplicate` into `primary` (None: no such report); TransitionRefused names the problem."""
    duplicate_id = str(duplicate["_id"])
    if not may_act_on_duplicates(actor, (_holder(duplicate),)):
        # the answer to a report that does not exist: an OPD learns nothing about others' reports
        raise TransitionRefused("report_not_found", f"no report {duplicate_id} is assigned to {actor.code}")
    if primary is None:
        raise TransitionRefused("primary_not_found", "no report has this number", "primary_id")
    primary_id = str(primary["_id"])
    if primary_id == duplicate_id:
        raise TransitionRefused("merge_into_itself", "a report cannot be merged into itself", "primary_id")
    if duplicate.get("merged_into"):
        raise TransitionRefused(
            "already_merged", f"{duplicate_id} is already merged into {duplicate['merged_into']}; unmerge it first"
        )
    if duplicate["status"] in FINAL_STATUSES:
        raise TransitionRefused("report_closed", f"{duplicate_id} is {duplicate['status']}: a closed report stays")
    if duplicate_has_followers:
        raise TransitionRefused(
            "has_merged_reports", f"other reports are merged into {duplicate_id}; merge those into the new primary"
        )
    if primary.get("merged_into"):
        raise TransitionRefused(
            "primary_is_merged",
            f"{primary_id} is itself merged into {primary['merged_into']}; merge into that one",
            "primary_id",
        )
    if primary["status"] in FINAL_STATUSES:
        raise TransitionRefused(
            "primary_closed", f"{primary_id} is {primary['status']}: choose an open report", "primary_id"
        )
    if primary["category"] != duplicate["category"]:
        raise TransitionRefused(
            "category_mismatch",
            f"{primary_id} is a {primary['category']} report, {duplicate_id} a {duplicate['category']} one",
            "primary_id",
        )
    return MergeDecision(
        duplicate_id=duplicate_id,
        primary_id=primary_id,
        actor_opd=actor.code,
        note=_note(note),
        from_status=duplicate["status"],
        status=primary["status"],
        primary_version=int(primary["version"]),
        primary_evidence=[p["photo_id"] for p in primary.get("evidence_photos") or []],
    )


@dataclass(frozen=True)
class UnmergeDecision:
    report_id: str
    primary_id: str
    actor_opd: str
    note: str
    from_status: str
    #: the status the report goes back to: the one it had when it was merged
    status: str


def decide_unmerge(
    report: Mapping[str, Any], primary: Mapping[str, Any] | None, actor: OpdLike, note: str
) -> UnmergeDecision:
    """Check the unmerge of a merged `report` (its primary as stored, None if gone)."""
    report_id = str(report["_id"])
    primary_holder = _holder(primary) if primary is not None else None
    if not may_act_on_duplicates(actor, (_holder(report), primary_holder)):
        raise TransitionRefused("report_not_found", f"no report {report_id} is assigned to {actor.code}")
    primary_id = report.get("merged_into")
    if not primary_id:
        raise TransitionRefused("not_merged", f"{report_id} is not merged into another report")
    return UnmergeDecision(
        report_id=report_id,
        primary_id=str(primary_id),
        actor_opd=actor.code,
        note=_note(note),
        from_status=report["status"],
        status=str(report.get("status_before_merge") or report["status"]),
    )


@dataclass(frozen=True)
class PrimaryChange:
    """One status change of a primary, as each report merged into it takes it."""

    primary_id: str
    version: int
    at: datetime
    status: str
    actor_opd: str
    note: str
    reason: str | None = None
    evidence_ids: list[str] = field(default_factory=list)


def primary_change_of_event(event: Any) -> PrimaryChange:
    """A primary's report_status_changed as its followers take it."""
    return PrimaryChange(
        primary_id=event.report_id,
        version=event.version,
        at=event.occurred_at,
        status=event.to_status,
        actor_opd=event.actor_opd,
        note=event.note,
        reason=event.reason,
        evidence_ids=[photo.photo_id for photo in event.evidence_photos],
    )


#: the history entries of a report that a report_status_changed announced: an OPD's (or the verifier's) transition,
#: a citizen's reopen
STATUS_STEP_KINDS = frozenset({"transition", "reopened"})


def primary_change_of_entry(primary_id: str, version: int, entry: Mapping[str, Any]) -> PrimaryChange:
    """One status step of a primary's history (the entry that made `version`) as its followers take it."""
    return PrimaryChange(
        primary_id=primary_id,
        version=version,
        at=entry["at"],
        status=str(entry["status"]),
        actor_opd=str(entry.get("actor_opd") or ""),
        note=str(entry.get("note") or ""),
        reason=entry.get("reason"),
        # a citizen's reopen photos are their own report's, not evidence of work
        evidence_ids=list(entry.get("photos") or []) if entry.get("kind") == "transition" else [],
    )


def status_steps(
    primary: Mapping[str, Any], after_version: int, before_version: float = float("inf")
) -> list[PrimaryChange]:
    """The primary's status steps that made a version between `after_version` and `before_version` (both excluded),
    in order, as its followers take them."""
    return [
        primary_change_of_entry(str(primary["_id"]), version, entry)
        for version, entry in versioned_history(primary.get("history") or [])
        if after_version < version < before_version and entry.get("kind") in STATUS_STEP_KINDS
    ]


def changes_to_follow(
    follower: Mapping[str, Any], change: PrimaryChange, primary: Mapping[str, Any] | None
) -> list[PrimaryChange]:
    """What `follower` takes, in order, to catch up with `change`: the primary's status steps it missed before it (read
    from the `primary` as stored), then `change` itself; nothing if it has taken `change` already.

    A primary's changes are handled concurrently, so a later one can come first: taken alone it would make the
    follower skip the earlier step, and its citizen would never see that step or its note."""
    if not follows(follower, change):
        return []
    followed = int(follower.get("followed_version") or 0)
    missed = status_steps(primary, followed, change.version) if primary is not None else []
    return [*missed, change]


def follows(report: Mapping[str, Any], change: PrimaryChange) -> bool:
    """Whether `report` still has to take `change`: merged into its primary and not caught up with it yet."""
    return report.get("merged_into") == change.primary_id and int(report.get("followed_version") or 0) < change.version


# ---- supporters ----------------------------------------------------------------------------------------------------


def supporter_hash(report_id: str, supporter_key: str) -> str:
    """Who supports a report, as intake keeps it: a hash of the client's own key (a random value its device keeps,
    sent as Idempotency-Key) bound to the report, so one device counts once per report, and the same device's support
    of two reports cannot be linked. Nothing in it identifies the person."""
    return hashlib.sha256(f"supporter\0{report_id}\0{supporter_key}".encode()).hexdigest()
