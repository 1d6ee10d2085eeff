"""What routing decides for one hop of a report, as a value: the OPD (or the triage desk) that gets it, the routing
key, the response deadline, the status and citizen note, the event routing announces and the message the OPD reads.

Pure: the reference data, the report's event, the settings that shape the answer and the moment are all given; the
service records the assignment in its ledger and publishes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from jaklapor.events import (
    AreaRef,
    OpdMessage,
    OpdRef,
    ReportForwarded,
    ReportRouted,
    ReportSubmitted,
    ReportUnroutable,
)
from jaklapor.reference import Category, Directory, Opd
from jaklapor.vocabulary import MENUNGGU, note_triage, response_deadline
from services.routing.domain import AreaIndex, Routed, route, routing_key_for

#: the events routing delivers to OPDs: a new report, and one handed to another OPD
RoutableEvent = ReportSubmitted | ReportForwarded


@dataclass(frozen=True)
class Terms:
    """The configuration an assignment depends on."""

    public_url: str
    #: one response deadline in seconds for every category; None (or 0): each category's own target
    deadline_override_seconds: float | None = None


@dataclass(frozen=True)
class Assignment:
    """One hop of a report: `event` (routed or unroutable) announced to the services, `opd_message` put on the OPD's
    queue with `routing_key`."""

    hop: int
    event: ReportRouted | ReportUnroutable
    opd: OpdRef
    area: AreaRef | None
    routing_key: str
    opd_message: OpdMessage
    #: why the report went to triage (one of domain.UNROUTABLE_REASONS); None when routed to an OPD
    reason: str | None = None

    def as_record(self) -> dict[str, Any]:
        """The decision as routing's ledger keeps it (and redeliveries read it back)."""
        record: dict[str, Any] = {
            "event_type": self.event.type_name,
            "event": self.event.to_message(),
            "routing_key": self.routing_key,
            "opd_code": self.opd.code,
            "opd_level": self.opd.level,
            "kota": self.area.kota if self.area else None,
            "opd_message": self.opd_message.model_dump(mode="json"),
        }
        if self.reason is not None:
            record["reason"] = self.reason
        return record


def status_of(event: RoutableEvent) -> str:
    """The report's status while routing delivers it: a new report waits (menunggu); a forwarded one has the status
    its forward set (koordinasi, disposisi; unchanged by an escalation)."""
    return event.status if isinstance(event, ReportForwarded) else MENUNGGU


def hop_of(event: RoutableEvent) -> int:
    """A new report's first delivery is hop 0; each hand-over numbers its own."""
    return event.hop if isinstance(event, ReportForwarded) else 0


def response_deadline_for(
    assigned_at: datetime, category: Category | None, override_seconds: float | None = None
) -> datetime:
    """When the OPD assigned a report of `category` at `assigned_at` must have answered (jaklapor.vocabulary's rule)."""
    return response_deadline(assigned_at, category.response_days if category is not None else None, override_seconds)


def assign(event: RoutableEvent, index: AreaIndex, directory: Directory, terms: Terms, now: datetime) -> Assignment:
    """Where this hop of the report goes: a submitted report to the OPD responsible for its category and place, a
    forwarded one to the OPD it was handed to; either to the triage desk when that OPD cannot be found."""
    if isinstance(event, ReportForwarded):
        return assign_forwarded(event, directory, terms, now)
    return assign_submitted(event, index, directory, terms, now)


def assign_submitted(
    event: ReportSubmitted, index: AreaIndex, directory: Directory, terms: Terms, now: datetime
) -> Assignment:
    decision = route(index, directory, event.location.lat, event.location.lon, event.category)
    area = AreaRef.model_validate(decision.area.as_area_ref()) if decision.area is not None else None
    if isinstance(decision, Routed):
        return _routed(event, decision.opd, area, decision.routing_key, directory, terms, now)
    return _unroutable(
        event, decision.reason, decision.detail, decision.detail_id, area, decision.routing_key, directory, terms, now
    )


def assign_forwarded(event: ReportForwarded, directory: Directory, terms: Terms, now: datetime) -> Assignment:
    target = directory.get(event.target_opd)
    if target is None:
        detail = f"forwarded by {event.from_opd} to unknown OPD {event.target_opd!r}"
        detail_id = f'{event.from_opd} meneruskan laporan ke OPD yang tidak dikenal ("{event.target_opd}")'
        key = "triage.unknown-opd"
        return _unroutable(event, "unknown_opd", detail, detail_id, event.area, key, directory, terms, now)
    kelurahan = directory.areas.kelurahan.get(event.area.code) if event.area else None
    key = routing_key_for(target, kelurahan)
    return _routed(event, target, event.area, key, directory, terms, now)


def _routed(
    event: RoutableEvent,
    opd: Opd,
    area: AreaRef | None,
    key: str,
    directory: Directory,
    terms: Terms,
    now: datetime,
) -> Assignment:
    ref = OpdRef.model_validate(opd.as_ref())
    hop = hop_of(event)
    deadline = response_deadline_for(now, directory.categories.get(event.category), terms.deadline_override_seconds)
    routed = ReportRouted(
        occurred_at=now,
        report_id=event.report_id,
        version=event.version,
        opd=ref,
        area=area,
        routing_key=key,
        hop=hop,
        category=event.category,
        status=status_of(event),
        response_deadline=deadline,
    )
    extra: dict[str, Any] = {"response_deadline": deadline}
    if isinstance(event, ReportForwarded):
        extra.update(forwarded_from=event.from_opd, note=event.note, forward_kind=event.kind)
    message = _opd_message(event, ref, area, terms, now, **extra)
    return Assignment(hop, routed, ref, area, key, message)


def _unroutable(
    event: RoutableEvent,
    reason: str,
    detail: str,
    detail_id: str,
    area: AreaRef | None,
    key: str,
    directory: Directory,
    terms: Terms,
    now: datetime,
) -> Assignment:
    ref = OpdRef.model_validate(directory.triage.as_ref())
    unroutable = ReportUnroutable(
        occurred_at=now,
        report_id=event.report_id,
        version=event.version,
        reason=reason,
        detail=detail,
        citizen_note=note_triage(detail_id),
        area=area,
        routing_key=key,
        hop=hop_of(event),
        category=event.category,
        status=status_of(event),
    )
    message = _opd_message(event, ref, area, terms, now, triage_reason=f"{reason}: {detail}")
    return Assignment(hop_of(event), unroutable, ref, area, key, message, reason)


def _opd_message(
    event: RoutableEvent, opd: OpdRef, area: AreaRef | None, terms: Terms, now: datetime, **extra: Any
) -> OpdMessage:
    hop = hop_of(event)
    return OpdMessage(
        message_id=f"{event.report_id}:{hop}",
        report_id=event.report_id,
        hop=hop,
        assigned_at=now,
        opd=opd,
        category=event.category,
        description=event.description,
        location=event.location,
        area=area,
        photos=event.photos,
        submitted_at=event.submitted_at,
        status=status_of(event),
        transitions_url=f"{terms.public_url.rstrip('/')}/api/v1/opd/reports/{event.report_id}/transitions",
        **extra,
    )


def with_possible_duplicates(assignment: Assignment, report_ids: list[str]) -> Assignment:
    """The assignment with routing's suggested duplicates (services/routing/duplicates.py) on its routed event and
    OPD message; unchanged without any, or for the triage desk (it routes, it does not merge)."""
    if not report_ids or not isinstance(assignment.event, ReportRouted):
        return assignment
    return replace(
        assignment,
        event=assignment.event.model_copy(update={"possible_duplicates": list(report_ids)}),
        opd_message=assignment.opd_message.model_copy(update={"possible_duplicates": list(report_ids)}),
    )
