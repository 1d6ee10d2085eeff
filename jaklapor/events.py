"""Message contracts between services and towards OPD systems.

Every event is a JSON object carrying `event_id`, `event_type`, `schema_version` and `occurred_at`, so a consumer can
deduplicate and dispatch on the body alone. Events never carry reporter identity or contact: the tracking token only
travels as a SHA-256 hash, which opens nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from jaklapor.vocabulary import TRIAGE_NOTE, Status, utcnow

SCHEMA_VERSION = 1


def new_event_id() -> str:
    return uuid.uuid4().hex


class Location(BaseModel):
    lat: float
    lon: float


class AreaRef(BaseModel):
    """The administrative area of a report, from the kelurahan boundaries."""

    code: str
    kelurahan: str
    kecamatan: str
    kota: str


class OpdRef(BaseModel):
    code: str
    name: str
    level: str


class PhotoRef(BaseModel):
    photo_id: str
    url: str


class Event(BaseModel):
    """Envelope shared by every inter-service event."""

    model_config = ConfigDict(extra="ignore")

    source: ClassVar[str]
    type_name: ClassVar[str]

    event_id: str = Field(default_factory=new_event_id)
    event_type: str = ""
    schema_version: int = SCHEMA_VERSION
    occurred_at: datetime = Field(default_factory=utcnow)
    report_id: str
    # the report's version after the change this event describes; orders events of one report
    version: int

    def model_post_init(self, __context: Any) -> None:
        if not self.event_type:
            self.event_type = f"{self.source}.{self.type_name}"

    def to_message(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ReportSubmitted(Event):
    source = "intake"
    type_name = "report_submitted"

    category: str
    description: str
    location: Location
    photos: list[PhotoRef]
    submitted_at: datetime
    tracking_token_hash: str
    has_contact: bool = False


class ReportForwarded(Event):
    """The report leaves one OPD for another: koordinasi (an OPD hands it over), disposisi (a Dinas instructs its
    Suku Dinas) or escalation (its response deadline passed; it goes up the chain)."""

    source = "intake"
    type_name = "report_forwarded"

    category: str
    description: str
    location: Location
    photos: list[PhotoRef]
    submitted_at: datetime
    area: AreaRef | None = None
    from_opd: str
    target_opd: str
    status: Status
    note: str
    hop: int
    kind: Literal["koordinasi", "disposisi", "escalation"] = "koordinasi"


class ReportEscalated(Event):
    """Nobody answered in time: the report moved from `from_opd` up to `to_opd` (status unchanged)."""

    source = "intake"
    type_name = "report_escalated"

    category: str
    status: Status
    from_opd: str
    to_opd: str
    deadline: datetime
    hop: int
    area: AreaRef | None = None
    submitted_at: datetime


class ReportStatusChanged(Event):
    source = "intake"
    type_name = "report_status_changed"

    from_status: Status
    to_status: Status
    actor_opd: str
    note: str
    category: str
    assigned_opd: str | None = None
    target_opd: str | None = None
    reason: str | None = None
    area: AreaRef | None = None
    submitted_at: datetime
    evidence_photos: list[PhotoRef] = Field(default_factory=list)


class ReportRouted(Event):
    source = "routing"
    type_name = "report_routed"

    opd: OpdRef
    area: AreaRef | None = None
    routing_key: str
    hop: int = 0
    category: str
    # when the OPD must have answered (taken, forwarded or rejected the report) before it escalates
    response_deadline: datetime | None = None
    # the report's status when it was routed (see ReportUnroutable.status)
    status: Status | None = None
    # the incident (a surge of one category in one kecamatan, services/routing/surge.py) the report joined as it was
    # routed: its OPD got the incident's message instead of one of its own; None for a report delivered on its own
    incident_id: str | None = None


class ReportUnroutable(Event):
    source = "routing"
    type_name = "report_unroutable"

    reason: str
    detail: str  # English, for the triage desk and operators
    area: AreaRef | None = None
    routing_key: str
    hop: int = 0
    category: str
    # the report's status when routing decided: menunggu for a new report, the forward's status for a forwarded one;
    # None only in events published before routing recorded it
    status: Status | None = None
    # what the citizen reads in their timeline, in Indonesian (the default: events published before it was recorded)
    citizen_note: str = TRIAGE_NOTE


class ReportJoinedIncident(Event):
    """A report already delivered on its own became a member of an incident afterwards: it was one of the reports
    whose number opened the incident (services/routing/surge.py). Reports routed into an open incident say so in
    `ReportRouted.incident_id` instead. `version` is the report's version routing saw (it orders nothing)."""

    source = "routing"
    type_name = "report_joined_incident"

    incident_id: str
    opd: OpdRef
    category: str
    area: AreaRef | None = None
    hop: int = 0


EVENT_TYPES: dict[str, type[Event]] = {
    cls.source + "." + cls.type_name: cls
    for cls in (
        ReportSubmitted,
        ReportForwarded,
        ReportEscalated,
        ReportStatusChanged,
        ReportRouted,
        ReportUnroutable,
        ReportJoinedIncident,
    )
}


def parse_event(body: dict[str, Any]) -> Event:
    """Parse a received event body into its model; raises ValueError for an unknown or malformed event."""
    event_type = body.get("event_type") if isinstance(body, dict) else None
    model = EVENT_TYPES.get(event_type or "")
    if model is None:
        raise ValueError(f"unknown event_type {event_type!r}")
    return model.model_validate(body)


class ContactRegistered(BaseModel):
    """intake → notify, on the point-to-point queue `jaklapor.contacts.CONTACTS_QUEUE`, never as an event: a reporter
    wants notifications. The contact travels only as `contact_ciphertext` (jaklapor.contacts, with the tracking link
    notify puts in its messages); the tracking token only as its hash."""

    model_config = ConfigDict(extra="ignore")

    message_type: Literal["contact_registered"] = "contact_registered"
    schema_version: int = SCHEMA_VERSION
    report_id: str
    tracking_token_hash: str
    contact_ciphertext: str

    def to_message(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ReportEvents(BaseModel):
    """One report's events as intake replays them (`event.to_message()` bodies, in version order)."""

    report_id: str
    events: list[dict[str, Any]]
    # why the report's history could not be replayed (its events are then empty)
    error: str | None = None

    def parsed(self) -> list[Event]:
        """The events as models; ValueError for one that is unknown or malformed."""
        return [parse_event(body) for body in self.events]


class ReportEventsPage(BaseModel):
    """A page of intake's `replay_events` RPC (reports in id order): how another service rebuilds what it derived
    from intake's events without reading intake's store. `next_after` is the `after_report_id` of the next page,
    None after the last one."""

    schema_version: int = SCHEMA_VERSION
    reports: list[ReportEvents]
    next_after: str | None = None


class OpdMessage(BaseModel):
    """What an OPD reads from its queue: plain JSON, documented in the README, no reporter identity."""

    message_type: Literal["report_assigned"] = "report_assigned"
    schema_version: int = SCHEMA_VERSION
    message_id: str
    report_id: str
    hop: int
    assigned_at: datetime
    opd: OpdRef
    category: str
    description: str
    location: Location
    area: AreaRef | None
    photos: list[PhotoRef]
    submitted_at: datetime
    status: Status
    forwarded_from: str | None = None
    # why it was forwarded: koordinasi, disposisi or escalation (a missed response deadline)
    forward_kind: str | None = None
    note: str | None = None
    triage_reason: str | None = None
    response_deadline: datetime | None = None
    transitions_url: str


class IncidentMember(BaseModel):
    """One report of an incident as the OPD reads it in the incident's message."""

    report_id: str
    submitted_at: datetime
    location: Location
    area: AreaRef | None
    description: str
    photos: list[PhotoRef]
    # True for the reports that opened the incident: each was already delivered on its own (a report_assigned
    # message); the reports that joined later were not
    delivered_individually: bool = False
    transitions_url: str


class IncidentMessage(BaseModel):
    """What an OPD reads from its queue for a surge (services/routing/surge.py): reports of one category in one
    kecamatan arriving faster than the threshold are grouped into one incident. `incident_opened` lists the members
    so far; each `incident_updated` (coalesced) lists the members that joined since the previous message of the
    incident and the new total. A consumer that does not know incidents can tell them by `message_type` (OpdMessage
    keeps "report_assigned")."""

    message_type: Literal["incident_opened", "incident_updated"]
    schema_version: int = SCHEMA_VERSION
    # `incident:<incident_id>:<member_count>`: one id per state of the incident, so redeliveries deduplicate
    message_id: str
    incident_id: str
    opd: OpdRef
    category: str
    kecamatan: str
    kota: str
    opened_at: datetime
    updated_at: datetime
    member_count: int
    members: list[IncidentMember]
    # the incident's members as the OPD holds them (GET) and one transition for all of them (POST .../transitions)
    incident_url: str
    transitions_url: str
