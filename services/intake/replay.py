"""The events of a stored report, replayed from its fields and history (no I/O): what intake and routing published
about it, in version order, so another service can rebuild what it derived from them without reading intake's store
(`IntakeService.replay_events`, a page of `jaklapor.events.ReportEventsPage`).

Intake writes one history entry per change and bumps the report version with it, so entry `i` is version `i + 1`:
submitted (version 1), routed / triage (routing's answer to the submission or to the last hand-over, which it
carries as its version), transition (a status change; koordinasi / disposisi also forward the report to the next
hop), escalated (a missed deadline moves the report up: escalated and forwarded), overdue (no event), confirmed (the
citizen confirms the fix: report_confirmed), reopened (the citizen reopens it: report_status_changed selesai →
dikerjakan by "warga" and report_reopened). The history
keeps what the statistics read; what it does not keep is left empty: routing keys, routing's English triage detail,
whether the reporter left a contact.

Event ids: a routing result keeps the id routing gave it (intake records each one it applied, in history order);
the others get an id derived from the report, version and event type, so a replay is the same every time.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from jaklapor.events import (
    AreaRef,
    Event,
    Location,
    OpdRef,
    ReportConfirmed,
    ReportEscalated,
    ReportEvents,
    ReportEventsPage,
    ReportForwarded,
    ReportJoinedIncident,
    ReportMerged,
    ReportReopened,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportUnmerged,
    ReportUnroutable,
)
from jaklapor.vocabulary import FORWARDING_STATUSES, MENUNGGU
from services.intake.domain import versioned_history
from services.intake.report import HandOver, forwarded_event, photo_refs
from services.intake.verification import replayed_verification_events

#: reports per page of `replay_events`, at most
MAX_PAGE_SIZE = 500
ROUTING_KINDS = ("routed", "triage")


def page_size(requested: int) -> int:
    """The number of reports a page holds for a requested `limit`: between 1 and MAX_PAGE_SIZE."""
    return min(max(int(requested), 1), MAX_PAGE_SIZE)


def replayed_event_id(report_id: str, version: int, event: type[Event]) -> str:
    return f"replay:{report_id}:{version}:{event.type_name}"


def replay_report(report: Mapping[str, Any], base_url: str) -> list[Event]:
    """The events a stored report's history stands for, in version order (photo links under `base_url`)."""
    report_id = str(report["_id"])
    category = str(report.get("category") or "")
    description = str(report.get("description") or "")
    location = Location.model_validate(report.get("location") or {"lat": 0.0, "lon": 0.0})
    photos = photo_refs(base_url, [p["photo_id"] for p in report.get("photos") or []])
    submitted_at = report["submitted_at"]
    final_area = AreaRef.model_validate(report["area"]) if report.get("area") else None
    history = list(report.get("history") or [])
    routing_ids = _routing_event_ids(report, history)

    events: list[Event] = []
    status = MENUNGGU
    hop = 0
    trigger_version = 1  # the version of the event routing answers: the submission, then each hand-over
    assigned: str | None = None
    area: AreaRef | None = None  # known from the first routing result on
    for version, entry in versioned_history(history):
        kind = entry.get("kind")
        at = entry["at"]
        opd = entry.get("opd") or {}
        common = {"report_id": report_id, "category": category}

        if kind == "submitted":
            events.append(
                ReportSubmitted(
                    **common,
                    event_id=replayed_event_id(report_id, version, ReportSubmitted),
                    version=version,
                    occurred_at=at,
                    description=description,
                    location=location,
                    photos=photos,
                    submitted_at=submitted_at,
                    tracking_token_hash=str(report.get("tracking_token_hash") or ""),
                )
            )
        elif kind in ROUTING_KINDS:
            area = final_area
            routing_id = next(routing_ids, None)
            if kind == "routed" and opd:
                assigned = opd["code"]
                events.append(
                    ReportRouted(
                        **common,
                        event_id=routing_id or replayed_event_id(report_id, trigger_version, ReportRouted),
                        version=trigger_version,
                        occurred_at=at,
                        opd=OpdRef.model_validate(opd),
                        area=area,
                        routing_key="",
                        hop=int(entry.get("hop", hop)),
                        response_deadline=entry.get("response_deadline"),
                        status=entry.get("status"),
                        incident_id=entry.get("incident_id"),
                    )
                )
            elif kind == "triage":
                assigned = opd.get("code") or assigned
                events.append(
                    ReportUnroutable(
                        **common,
                        event_id=routing_id or replayed_event_id(report_id, trigger_version, ReportUnroutable),
                        version=trigger_version,
                        occurred_at=at,
                        reason=str(entry.get("reason") or report.get("triage_reason") or "unknown"),
                        detail="",
                        area=area,
                        routing_key="",
                        hop=int(entry.get("hop", hop)),
                        status=entry.get("status"),
                        citizen_note=str(entry.get("note") or ""),
                    )
                )
        elif kind == "transition":
            to_status = entry["status"]
            actor = str(entry.get("actor_opd") or "")
            note = str(entry.get("note") or "")
            forwards = to_status in FORWARDING_STATUSES and bool(opd)
            events.append(
                ReportStatusChanged(
                    **common,
                    event_id=replayed_event_id(report_id, version, ReportStatusChanged),
                    version=version,
                    occurred_at=at,
                    from_status=status,
                    to_status=to_status,
                    actor_opd=actor,
                    note=note,
                    assigned_opd=opd.get("code") if forwards else assigned,
                    target_opd=opd.get("code") if forwards else None,
                    reason=entry.get("reason"),
                    area=area,
                    submitted_at=submitted_at,
                    evidence_photos=photo_refs(base_url, list(entry.get("photos") or [])),
                    merged_into=entry.get("merged_into"),
                )
            )
            if forwards:
                hop = int(entry.get("hop", hop + 1))
                trigger_version = version
                events.append(
                    forwarded_event(
                        report,
                        base_url,
                        area=area,
                        version=version,
                        at=at,
                        hop=hop,
                        hand_over=HandOver(actor or assigned or "", opd["code"], to_status, note, to_status),
                        event_id=replayed_event_id(report_id, version, ReportForwarded),
                    )
                )
                assigned = opd["code"]
            status = to_status
        elif kind == "escalated" and opd:
            hop = int(entry.get("hop", hop + 1))
            trigger_version = version
            from_opd = str(entry.get("from_opd") or assigned or "")
            entry_status = entry.get("status") or status
            events.append(
                ReportEscalated(
                    **common,
                    event_id=replayed_event_id(report_id, version, ReportEscalated),
                    version=version,
                    occurred_at=at,
                    status=entry_status,
                    from_opd=from_opd,
                    to_opd=opd["code"],
                    deadline=entry.get("deadline") or at,
                    hop=hop,
                    area=area,
                    submitted_at=submitted_at,
                )
            )
            hand_over = HandOver(from_opd, opd["code"], entry_status, str(entry.get("note") or ""), "escalation")
            events.append(
                forwarded_event(
                    report,
                    base_url,
                    area=area,
                    version=version,
                    at=at,
                    hop=hop,
                    hand_over=hand_over,
                    event_id=replayed_event_id(report_id, version, ReportForwarded),
                )
            )
            assigned = opd["code"]
        elif kind in CITIZEN_KINDS:
            events.extend(citizen_events(report, entry, version, status, assigned, area, base_url))
            status = entry.get("status") or status
        elif kind in ("merged", "unmerged"):
            events.append(_merge_event(report_id, category, version, entry, status, assigned, area, submitted_at))
            status = entry["status"]
        events.extend(
            replayed_verification_events(
                entry,
                {**common, "version": version, "occurred_at": at, "area": area, "submitted_at": submitted_at},
                base_url,
                functools.partial(replayed_event_id, report_id, version),
            )
        )
    events.extend(_joined_incident(report, events))
    return events


#: the citizen's word on selesai (services/intake/citizen_feedback.py)
CITIZEN_KINDS = ("confirmed", "reopened")


def citizen_events(
    report: Mapping[str, Any],
    entry: Mapping[str, Any],
    version: int,
    status: str,
    assigned: str | None,
    area: AreaRef | None,
    base_url: str,
) -> list[Event]:
    """The events of a citizen's confirmation (report_confirmed) or reopen (report_status_changed selesai →
    dikerjakan and report_reopened, one version)."""
    report_id = str(report["_id"])
    common: dict[str, Any] = {
        "report_id": report_id,
        "category": str(report.get("category") or ""),
        "version": version,
        "occurred_at": entry["at"],
        "area": area,
        "submitted_at": report["submitted_at"],
    }
    opd = entry.get("opd") or None
    selesai_at = entry.get("selesai_at") or entry["at"]
    if entry["kind"] == "confirmed":
        return [
            ReportConfirmed(
                **common,
                event_id=replayed_event_id(report_id, version, ReportConfirmed),
                opd=OpdRef.model_validate(opd) if opd else None,
                rating=entry.get("rating"),
                comment=entry.get("comment"),
                selesai_at=selesai_at,
            )
        ]
    reopens = [e for e in report.get("history") or [] if e.get("kind") == "reopened"]
    number = next((i for i, e in enumerate(reopens, start=1) if e is entry), len(reopens))
    return [
        ReportStatusChanged(
            **common,
            event_id=replayed_event_id(report_id, version, ReportStatusChanged),
            from_status=status,
            to_status=entry["status"],
            actor_opd=str(entry.get("actor_opd") or ""),
            note=str(entry.get("note") or ""),
            assigned_opd=(opd or {}).get("code") or assigned,
        ),
        ReportReopened(
            **common,
            event_id=replayed_event_id(report_id, version, ReportReopened),
            opd=OpdRef.model_validate(opd or {"code": assigned or "", "name": "", "level": ""}),
            reason=str(entry.get("reopen_reason") or ""),
            photos=photo_refs(base_url, list(entry.get("photos") or [])),
            selesai_at=selesai_at,
            work_deadline=entry.get("work_deadline") or entry["at"],
            reopen_number=number,
        ),
    ]


def _merge_event(
    report_id: str,
    category: str,
    version: int,
    entry: Mapping[str, Any],
    status: str,
    assigned: str | None,
    area: AreaRef | None,
    submitted_at: Any,
) -> Event:
    """A merge or unmerge (services/intake/duplicates.py) as it was announced."""
    model: type[ReportMerged] | type[ReportUnmerged] = ReportMerged if entry["kind"] == "merged" else ReportUnmerged
    fields: dict[str, Any] = {
        "report_id": report_id,
        "event_id": replayed_event_id(report_id, version, model),
        "version": version,
        "occurred_at": entry["at"],
        "primary_id": str(entry.get("primary_id") or ""),
        "actor_opd": str(entry.get("actor_opd") or ""),
        "from_status": status,
        "status": entry["status"],
        "note": str(entry.get("note") or ""),
        "category": category,
        "area": area,
        "submitted_at": submitted_at,
    }
    if model is ReportUnmerged:
        fields["assigned_opd"] = assigned
    return model(**fields)


def _joined_incident(report: Mapping[str, Any], events: list[Event]) -> list[Event]:
    """A report that opened an incident joined it after its routing (routing's report_joined_incident): intake keeps
    that as the report's `incident_id` with who and when, not as a history entry; replayed after its events."""
    incident_id = report.get("incident_id")
    joined = report.get("incident_joined")
    routed_into = any(isinstance(e, ReportRouted) and e.incident_id == incident_id for e in events)
    if not incident_id or not joined or routed_into:
        return []
    report_id = str(report["_id"])
    area = report.get("area")
    return [
        ReportJoinedIncident(
            event_id=replayed_event_id(report_id, 0, ReportJoinedIncident),
            report_id=report_id,
            version=1,
            occurred_at=joined["at"],
            incident_id=incident_id,
            opd=OpdRef.model_validate(joined["opd"]),
            category=report["category"],
            area=AreaRef.model_validate({k: area[k] for k in ("code", "kelurahan", "kecamatan", "kota")})
            if area
            else None,
        )
    ]


def _routing_event_ids(report: Mapping[str, Any], history: list[Mapping[str, Any]]) -> Any:
    """The ids of the routing results, one per routed / triage entry (intake records both in one write); none when
    the record does not match the history (a report stored before intake kept them)."""
    applied = [str(event_id) for event_id in report.get("applied_events") or []]
    answered = sum(1 for entry in history if entry.get("kind") in ROUTING_KINDS)
    return iter(applied if len(applied) == answered else [])


def replay_page(reports: Iterable[Mapping[str, Any]], limit: int, base_url: str) -> ReportEventsPage:
    """A page of replayed reports (given in id order, at most `limit`); a report whose history cannot be read is
    listed with the reason instead of its events, so one bad document does not stop a rebuild."""
    replayed: list[ReportEvents] = []
    for report in reports:
        report_id = str(report.get("_id"))
        try:
            events = [event.to_message() for event in replay_report(report, base_url)]
        except (KeyError, TypeError, ValueError) as exc:
            replayed.append(ReportEvents(report_id=report_id, events=[], error=f"{type(exc).__name__}: {exc}"))
            continue
        replayed.append(ReportEvents(report_id=report_id, events=events))
    full = len(replayed) >= limit
    return ReportEventsPage(reports=replayed, next_after=replayed[-1].report_id if full and replayed else None)
