"""Surges: reports of one category in one kecamatan, for one OPD, arriving faster than a threshold are grouped into
one incident, so the flooded OPD's queue holds incidents instead of hundreds of report messages.

The rules, without I/O (the store is services/routing/incidents.py, the service calls both):

- The area unit is the **kecamatan** (its Kemendagri code, e.g. 31.74.06), and an incident belongs to **one OPD**:
  key = (OPD, category, kecamatan). A flood over three kecamatan gives three incidents, each in the queue of the OPD
  responsible there (a Suku Dinas is per kota, so an incident spanning kecamatan could span OPDs; and an OPD's routing
  keys already name the kecamatan, so an agency binding one area still receives that area's incidents).
- **Opening**: when a report arrives and at least `min_reports` reports of its key (itself included) arrived within
  `window_seconds`, an incident opens. The reports before it were already delivered on their own (report_assigned):
  they become members too (`delivered_individually`), announced by `routing.report_joined_incident`; the report that
  tripped the threshold is delivered only inside the incident.
- **Joining**: while an incident of the key is active (a member joined within `quiet_seconds`), each new report of
  the key joins it: `routing.report_routed` with `incident_id`, and no report message on the OPD queue.
- **Coalescing**: the OPD gets `incident_opened` at once, then at most one `incident_updated` per `update_seconds`,
  earlier only when `update_members` members are waiting; a timer sends what is left once the interval has passed.
- Only a report's first delivery (hop 0) to an OPD can join: a report handed over by another OPD (koordinasi,
  disposisi, escalation) is a decision about that one report and arrives on its own; triage never groups.

Defaults, from the CRM volumes (docs/crm-taxonomy.md: 137,776 reports in 2020, ~377 a day city-wide over 44
kecamatan and ~40 categories): a kecamatan sees ~8.6 reports a day in all categories together, ~0.36 an hour; one
category there rarely sees more than a few a day. 10 of one category in one kecamatan within 60 minutes is ~28 times
the kecamatan's whole hourly volume, something a normal day does not produce and a flood (hundreds an hour) passes in
minutes. See docs/incidents.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jaklapor.events import AreaRef, IncidentMember, IncidentMessage, OpdRef, ReportSubmitted

DEFAULT_MIN_REPORTS = 10
DEFAULT_WINDOW_SECONDS = 3600.0
DEFAULT_QUIET_SECONDS = 3600.0
DEFAULT_UPDATE_SECONDS = 60.0
DEFAULT_UPDATE_MEMBERS = 100


@dataclass(frozen=True)
class SurgeRule:
    """The thresholds (routing settings SURGE_*); `min_reports` 0 switches grouping off."""

    min_reports: int = DEFAULT_MIN_REPORTS
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    quiet_seconds: float = DEFAULT_QUIET_SECONDS
    update_seconds: float = DEFAULT_UPDATE_SECONDS
    update_members: int = DEFAULT_UPDATE_MEMBERS

    @property
    def enabled(self) -> bool:
        return self.min_reports > 0

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)

    @property
    def quiet(self) -> timedelta:
        return timedelta(seconds=self.quiet_seconds)

    def opens(self, arrivals_in_window: int) -> bool:
        """Whether this many reports of one key within the window (the new one included) open an incident."""
        return self.enabled and arrivals_in_window >= self.min_reports

    def still_active(self, last_member_at: datetime, now: datetime) -> bool:
        """An incident takes new members until `quiet_seconds` passed without one."""
        return now - last_member_at <= self.quiet

    def update_due(self, pending: int, last_sent_at: datetime | None, now: datetime) -> bool:
        """Whether the OPD should hear of `pending` new members now: the first message at once, then at most one
        per `update_seconds`, unless `update_members` are waiting."""
        if pending <= 0:
            return False
        if last_sent_at is None or pending >= max(self.update_members, 1):
            return True
        return (now - last_sent_at).total_seconds() >= self.update_seconds


def kecamatan_code(area: AreaRef) -> str:
    """The kecamatan of a kelurahan code (Kemendagri `31.74.06.1001` → `31.74.06`)."""
    return area.code.rsplit(".", 1)[0]


def surge_key(opd_code: str, category: str, area: AreaRef) -> str:
    """What reports must share to be counted together: OPD, category, kecamatan."""
    return f"{opd_code}|{category}|{kecamatan_code(area)}"


def eligible(hop: int, routed: bool, area: AreaRef | None, rule: SurgeRule) -> bool:
    """Only a new report's first delivery to an OPD, with a known area, is counted and can join an incident."""
    return rule.enabled and routed and hop == 0 and area is not None


def member_record(event: ReportSubmitted, area: AreaRef, public_url: str) -> dict[str, Any]:
    """A report as its incident keeps it (and the OPD reads it): no reporter identity, as any OPD message."""
    return IncidentMember(
        report_id=event.report_id,
        submitted_at=event.submitted_at,
        location=event.location,
        area=area,
        description=event.description,
        photos=event.photos,
        transitions_url=report_transitions_url(public_url, event.report_id),
    ).model_dump(mode="json")


def report_transitions_url(public_url: str, report_id: str) -> str:
    return f"{public_url.rstrip('/')}/api/v1/opd/reports/{report_id}/transitions"


def incident_url(public_url: str, incident_id: str) -> str:
    return f"{public_url.rstrip('/')}/api/v1/opd/incidents/{incident_id}"


def incident_message(
    incident: dict[str, Any],
    members: list[dict[str, Any]],
    member_count: int,
    first: bool,
    now: datetime,
    public_url: str,
) -> IncidentMessage:
    """The message the OPD reads: `incident_opened` with every member so far, or `incident_updated` with the members
    that joined since the previous one."""
    url = incident_url(public_url, incident["_id"])
    return IncidentMessage(
        message_type="incident_opened" if first else "incident_updated",
        message_id=f"incident:{incident['_id']}:{member_count}",
        incident_id=incident["_id"],
        opd=OpdRef.model_validate(incident["opd"]),
        category=incident["category"],
        kecamatan=incident["kecamatan"],
        kota=incident["kota"],
        opened_at=incident["opened_at"],
        updated_at=now,
        member_count=member_count,
        members=[IncidentMember.model_validate(m) for m in members],
        incident_url=url,
        transitions_url=f"{url}/transitions",
    )
