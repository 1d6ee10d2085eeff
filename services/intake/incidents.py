"""Incidents at the gateway (mixed into IntakeService): an OPD lists the incidents routing grouped its reports into
(services/routing/surge.py), reads one with its members, and moves every member it holds with one transition.

Intake learns of membership from routing's events only: `report_routed.incident_id` for the reports routed into an
incident, `report_joined_incident` for the reports that opened it (delivered on their own before). Each report keeps
its `incident_id`; an incident is the set of reports carrying its id, so what an OPD sees of it is what it holds.

Acting on an incident goes through the `Report` aggregate for every member, exactly as a report's own transition
does: each member gets its own history entry, version, events (notify tells its citizen, stats counts it) and is
written atomically on its own; a member the rules refuse (already closed, forwarded away, changed meanwhile) is
reported with its reason and left as it was. Retrying the same transition changes nothing twice: members already in
the asked status are reported `unchanged`.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from jaklapor.events import ReportJoinedIncident, parse_event
from jaklapor.messaging import PermanentFailure, work_consumer, work_queue
from jaklapor.vocabulary import SELESAI, STATUS_LABELS, iso, utcnow
from jaklapor.web import ApiError, api, json_response, read_fields
from services.intake import metrics
from services.intake.dependencies import VersionConflict
from services.intake.domain import TransitionRefused, TransitionRequest, allowed_transitions, work_item
from services.intake.report import Report, opd_ref
from services.intake.schemas import TransitionForm, parse_form
from services.intake.uploads import delete_photos, store_new_photos
from services.intake.verification import VerificationRefused, is_pending, refuse_opd_action
from services.intake.worklist import HELD_STATUSES

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}


# ---- rules (no I/O) ---------------------------------------------------------------------------------------------


def incident_summaries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The incidents an OPD holds reports of, from those reports (`incident_rows`): category, kecamatan, members
    (all, and still open), per status, first and last assignment. Incidents with open members first, newest first."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["incident_id"], []).append(row)
    summaries = [incident_summary(incident_id, members) for incident_id, members in grouped.items()]
    summaries.sort(key=lambda s: s["last_member_at"] or "", reverse=True)
    summaries.sort(key=lambda s: s["open_count"] == 0)  # stable: newest first within each group
    return summaries


def incident_summary(incident_id: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    first = members[0]
    area = first.get("area") or {}
    times = [m.get("assigned_at") or m["submitted_at"] for m in members]
    by_status = Counter(m["status"] for m in members)
    return {
        "incident_id": incident_id,
        "category": first["category"],
        "kecamatan": area.get("kecamatan"),
        "kota": area.get("kota"),
        "member_count": len(members),
        "open_count": sum(count for status, count in by_status.items() if status in HELD_STATUSES),
        "by_status": {status: by_status.get(status, 0) for status in STATUS_LABELS},
        "opened_at": iso(min(times)),
        "last_member_at": iso(max(times)),
    }


def outcome_of(report: Report, wanted: TransitionRequest) -> str | None:
    """`unchanged` for a member already in the asked status, or whose selesai already waits for the verifier (a
    retried incident transition), else None."""
    if wanted.target_opd:
        return None
    already = report.status == wanted.status or (wanted.status == SELESAI and is_pending(report.document))
    return "unchanged" if already else None


#: why one member could not move: a transition rule, or the verifier holding its completion
MemberRefusal = TransitionRefused | VerificationRefused


def refusal_for_all(results: list[dict[str, Any]], refusals: list[MemberRefusal]) -> MemberRefusal | None:
    """When no member moved and every one was refused for the same reason, the request itself is at fault (a missing
    note, no evidence for selesai...): it is answered as a report's transition would be, with its 4xx."""
    if not refusals or any(r["outcome"] != "refused" for r in results):
        return None
    codes = {refusal.code for refusal in refusals}
    return refusals[0] if len(codes) == 1 else None


# ---- entrypoints ------------------------------------------------------------------------------------------------


class IncidentEndpoints:
    """Mixed into IntakeService, whose dependencies (and OpdEndpoints helpers) these use."""

    settings: Any
    store: Any
    photos: Any
    photo_cleaner: Any
    relay: Any
    reference: Any

    @work_consumer(work_queue("intake.incidents", [("routing", "report_joined_incident")]))
    def join_incident(self, body: dict[str, Any]) -> None:
        """A report delivered on its own became a member of an incident (it was one of those that opened it)."""
        try:
            event = parse_event(body)
        except ValueError as exc:
            raise PermanentFailure(str(exc)) from exc
        if not isinstance(event, ReportJoinedIncident):
            raise PermanentFailure(f"intake.incidents does not handle {event.event_type}")
        if not self.store.tag_incident(event.report_id, event.incident_id, event.opd.model_dump(), event.occurred_at):
            raise LookupError(f"incident member {event.report_id} is not stored")  # retried, then dead-lettered
        self._wake_lists([event.opd.code])  # type: ignore[attr-defined]
        log.info("report joined incident", extra={"report_id": event.report_id, "incident_id": event.incident_id})

    @api("GET", "/opd/insiden/<incident_id>")
    def workbench_incident(self, request: Request, incident_id: str) -> Response:
        """The workbench's incident screen (the page; its script reads the API)."""
        return self._workbench(request)  # type: ignore[attr-defined]

    @api("GET", "/api/v1/opd/incidents")
    def opd_incidents(self, request: Request) -> Response:
        """The incidents this OPD holds reports of, those with open members first."""
        opd = self._authenticate(request).opd  # type: ignore[attr-defined]
        incidents = incident_summaries(self.store.incident_rows(opd.code))
        return json_response({"opd": opd_ref(opd), "incidents": incidents}, headers=NO_STORE)

    def _incident_view(self, incident_id: str, opd: Any) -> dict[str, Any]:
        members = self.store.incident_members(incident_id, opd.code)
        if not members:
            raise ApiError(404, "incident_not_found", f"{opd.code} holds no report of incident {incident_id}")
        members.sort(key=lambda m: (m.get("assigned_at") or m["submitted_at"], m["_id"]))
        base_url = self.settings.public_url
        directory = self.reference.directory
        allowed: set[str] = set()
        items = []
        for member in members:
            item = work_item(member, base_url)
            item["allowed_transitions"] = allowed_transitions(Report(member, base_url).state, opd, directory)
            allowed.update(item["allowed_transitions"])
            items.append(item)
        summary = incident_summary(incident_id, members)
        order = list(STATUS_LABELS)
        return {
            **summary,
            "opd": opd_ref(opd),
            # what one incident transition may ask: whatever at least one member allows (the others are refused)
            "allowed_transitions": sorted(allowed, key=order.index),
            "members": items,
        }

    @api("GET", "/api/v1/opd/incidents/<incident_id>")
    def opd_incident(self, request: Request, incident_id: str) -> Response:
        """One incident with the members this OPD holds and what it may do with them."""
        opd = self._authenticate(request).opd  # type: ignore[attr-defined]
        return json_response(self._incident_view(incident_id, opd), headers=NO_STORE)

    @api("POST", "/api/v1/opd/incidents/<incident_id>/transitions")
    def incident_transition(self, request: Request, incident_id: str) -> Response:
        """One transition (the body of a report's) for every member this OPD holds, each through the report's own
        rules and history; the outcome per member."""
        opd = self._authenticate(request).opd  # type: ignore[attr-defined]
        fields, evidence_parts = read_fields(request, "photo", max_files=1)
        form: TransitionForm = parse_form(TransitionForm, fields)
        wanted = TransitionRequest(
            status=form.status.lower(),
            note=form.note,
            target_opd=form.target_opd or None,
            reason=form.reason or None,
            has_evidence=bool(evidence_parts),
        )
        members = self.store.incident_members(incident_id, opd.code)
        if not members:
            raise ApiError(404, "incident_not_found", f"{opd.code} holds no report of incident {incident_id}")
        members.sort(key=lambda m: (m.get("assigned_at") or m["submitted_at"], m["_id"]))
        # one evidence photo stands for every member closed with it (stored once, named in each member's history)
        captures: list[Any] = []  # where and when it was taken: each member's evidence check, never stored
        evidence = store_new_photos(evidence_parts, self.photo_cleaner, self.photos, captures) if evidence_parts else []
        results: list[dict[str, Any]] = []
        refusals: list[MemberRefusal] = []
        targets: set[str] = {opd.code}
        for member in members:
            result, refusal, target = self._move_member(member["_id"], opd, wanted, evidence, captures, utcnow())
            results.append(result)
            if refusal is not None:
                refusals.append(refusal)
            if target:
                targets.add(target)
        if evidence and not any(r["outcome"] == "moved" for r in results):
            delete_photos(self.photos, evidence)  # nothing refers to it
        self._wake_lists(targets)  # type: ignore[attr-defined]
        refused_all = refusal_for_all(results, refusals)
        if refused_all is not None:
            raise refused_all
        counts = Counter(r["outcome"] for r in results)
        log.info(
            "incident transition",
            extra={"incident_id": incident_id, "actor_opd": opd.code, "status": wanted.status, **counts},
        )
        body = {
            "incident_id": incident_id,
            "status": wanted.status,
            "moved": counts.get("moved", 0),
            "unchanged": counts.get("unchanged", 0),
            "refused": counts.get("refused", 0),
            "members": results,
        }
        return json_response(body, headers=NO_STORE)

    def _move_member(
        self,
        report_id: str,
        opd: Any,
        wanted: TransitionRequest,
        evidence: list[dict[str, Any]],
        captures: list[Any],
        now: datetime,
    ) -> tuple[dict[str, Any], MemberRefusal | None, str | None]:
        """One member through the aggregate, as POST /reports/{id}/transitions does it: (its outcome, the refusal,
        the OPD it was handed to)."""
        for _attempt in range(3):
            stored = self.store.by_id(report_id)
            if stored is None:
                break
            report = Report(stored, self.settings.public_url)
            same = outcome_of(report, wanted)
            if same is not None and (report.assigned_opd or {}).get("code") == opd.code:
                return {"report_id": report_id, "outcome": same, "status": report.status}, None, None
            try:
                decision = report.decide_transition(opd, wanted, self.reference.directory)
                refuse_opd_action(stored)  # the verifier holds its completion
            except (TransitionRefused, VerificationRefused) as refusal:
                error = {"code": refusal.code, "message": refusal.message}
                result = {"report_id": report_id, "outcome": "refused", "status": report.status, "error": error}
                return result, refusal, None
            try:
                change = self._opd_change(report, decision, evidence, captures, opd)  # type: ignore[attr-defined]
                self.store.save(report, change)
            except VersionConflict:
                continue
            self.relay.publish_soon(report_id)
            metrics.TRANSITIONS.labels(decision.to_status).inc()
            target = decision.target_opd.code if decision.target_opd is not None else None
            return {"report_id": report_id, "outcome": "moved", "status": decision.to_status}, None, target
        # not the request's fault: the member is reported, the others go on (and a retry moves it)
        error = {"code": "concurrent_update", "message": "the report kept changing while this request was handled"}
        return {"report_id": report_id, "outcome": "refused", "error": error}, None, None
