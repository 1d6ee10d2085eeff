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
    # set when this change only follows the primary report this one was merged into (a fan-out): the status is the
    # primary's, the acting OPD worked on the primary; statistics do not credit it to this report's own hops
    merged_into: str | None = None


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
    # open reports of the same category near this one, recently submitted: likely duplicates routing suggests to
    # the OPD (report numbers, nearest first; empty when none, or for a hand-over)
    possible_duplicates: list[str] = Field(default_factory=list)
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


class ReportMerged(Event):
    """An OPD merged this report (a duplicate) into `primary_id`: from now on it follows the primary's status (each
    change of the primary reaches it as its own report_status_changed with `merged_into`), and it leaves the OPD's
    work list. `status` is the report's status after the merge (the primary's), `from_status` the one it had."""

    source = "intake"
    type_name = "report_merged"

    primary_id: str
    actor_opd: str
    from_status: Status
    status: Status
    note: str = ""
    category: str
    area: AreaRef | None = None
    submitted_at: datetime


class ReportUnmerged(Event):
    """A merge undone (a mistake): the report follows its own course again from `status` (the status it had when it
    was merged), held by `assigned_opd`."""

    source = "intake"
    type_name = "report_unmerged"

    primary_id: str
    actor_opd: str
    from_status: Status
    status: Status
    assigned_opd: str | None = None
    note: str = ""
    category: str
    area: AreaRef | None = None
    submitted_at: datetime


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
# duplicates (services/intake/duplicates.py): added after the core events, so other additions merge cleanly
EVENT_TYPES.update({cls.source + "." + cls.type_name: cls for cls in (ReportMerged, ReportUnmerged)})


class ReportReopened(Event):
    """The holder of the tracking token says a `selesai` report is not fixed (within the feedback window): it went
    back to the OPD holding it (`opd`) as dikerjakan, with `work_deadline`. Published with the report_status_changed
    (selesai → dikerjakan, actor_opd "warga") of the same version, which existing consumers already understand;
    this event adds the citizen's reason and photos. `reopen_number` counts the report's reopens (1 for the first)."""

    source = "intake"
    type_name = "report_reopened"

    category: str
    opd: OpdRef
    reason: str
    photos: list[PhotoRef] = Field(default_factory=list)
    selesai_at: datetime
    work_deadline: datetime
    reopen_number: int = 1
    area: AreaRef | None = None
    submitted_at: datetime


class ReportConfirmed(Event):
    """The holder of the tracking token confirms a `selesai` report is fixed (within the feedback window; once:
    it can no longer be reopened), with an optional rating of the OPD's work (1-5) and comment. Status unchanged."""

    source = "intake"
    type_name = "report_confirmed"

    category: str
    opd: OpdRef | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    comment: str | None = None
    selesai_at: datetime
    area: AreaRef | None = None
    submitted_at: datetime


EVENT_TYPES.update({cls.source + "." + cls.type_name: cls for cls in (ReportReopened, ReportConfirmed)})


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
    # set for a supporter (someone who follows the report instead of filing it again): an opaque hash, unique per
    # supporter of this report, that keys their own subscription; None for the reporter
    supporter_hash: str | None = None

    def to_message(self) -> dict[str, Any]:
        # a reporter's hand-over is written as before supporters existed
        return self.model_dump(mode="json", exclude={"supporter_hash"} if self.supporter_hash is None else None)


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
    # open reports of the same category close by, submitted shortly before: likely duplicates to merge (report
    # numbers, nearest first); an older consumer ignores the field
    possible_duplicates: list[str] = Field(default_factory=list)


# ---- verified completion (services/intake/verification.py); new facts, new event types: existing consumers unchanged


class EvidenceCheck(BaseModel):
    """What the automatic check found in one evidence photo, read before its metadata was stripped: verdict codes
    (services/intake/evidence.py), a distance and a time difference; never the photo's coordinates or timestamps."""

    verdicts: list[str]
    #: metres from the report's location to where the photo was taken; None without GPS
    distance_m: float | None = None
    #: seconds from the report's submission to when the photo was taken (negative: before); None without a time
    taken_after_seconds: int | None = None
    #: the perceptual-hash distance to the closest of the citizen's own photos; None when none could be compared
    citizen_photo_distance: int | None = None
    #: the photo passes every check: taken near the report, after it, and not the citizen's own photo
    matched: bool = False


class ReportCompletionSubmitted(Event):
    """The assigned OPD reported the work done with evidence (`selesai`): with `verification_required` the report
    stays dikerjakan, pending the verifier's decision; without it, a report_status_changed to selesai of the same
    version closes it."""

    source = "intake"
    type_name = "report_completion_submitted"

    category: str
    opd: str
    note: str
    evidence_photos: list[PhotoRef] = Field(default_factory=list)
    evidence: list[EvidenceCheck] = Field(default_factory=list)
    #: every evidence photo matched (False when there is none to check)
    evidence_matched: bool = False
    verification_required: bool = True
    area: AreaRef | None = None
    submitted_at: datetime


class ReportVerificationApproved(Event):
    """The verifier approved the OPD's completion: sent with the report_status_changed to selesai of the same
    version (whose actor is the OPD that did the work)."""

    source = "intake"
    type_name = "report_verification_approved"

    category: str
    opd: str
    verifier: str
    evidence_matched: bool = False
    area: AreaRef | None = None
    submitted_at: datetime


class ReportVerificationRefused(Event):
    """The verifier refused the OPD's completion: the report stays dikerjakan with the same OPD, which must finish
    it again by `work_deadline` (jaklapor.vocabulary.rework_deadline)."""

    source = "intake"
    type_name = "report_verification_refused"

    category: str
    opd: str
    verifier: str
    reason: str
    work_deadline: datetime
    area: AreaRef | None = None
    submitted_at: datetime


EVENT_TYPES.update(
    {
        cls.source + "." + cls.type_name: cls
        for cls in (ReportCompletionSubmitted, ReportVerificationApproved, ReportVerificationRefused)
    }
)


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
