"""Active incidents in the statistics: membership folded from routing's events (report_routed.incident_id,
report_joined_incident) in any order and once, and the dashboard's list of incidents with open members."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jaklapor.events import (
    AreaRef,
    Event,
    Location,
    OpdRef,
    ReportJoinedIncident,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
)
from services.stats.domain import apply_event, comparable
from services.stats.incidents import INCIDENT_FIELDS, active_incidents

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
AREA = AreaRef(code="31.75.03.1001", kelurahan="Bali Mester", kecamatan="Jatinegara", kota="Jakarta Timur")
OPD = OpdRef(code="sudin-sumber-daya-air-jakarta-timur", name="Sudin SDA Jakarta Timur", level="sudin")
CATEGORY = "penanganan-banjir"


def submitted(report_id: str, minutes: int) -> ReportSubmitted:
    at = T0 + timedelta(minutes=minutes)
    return ReportSubmitted(
        report_id=report_id,
        version=1,
        occurred_at=at,
        category=CATEGORY,
        description="Banjir",
        location=Location(lat=-6.22, lon=106.86),
        photos=[],
        submitted_at=at,
        tracking_token_hash="a" * 64,
    )


def routed(report_id: str, minutes: int, incident_id: str | None = None) -> ReportRouted:
    return ReportRouted(
        report_id=report_id,
        version=1,
        occurred_at=T0 + timedelta(minutes=minutes),
        opd=OPD,
        area=AREA,
        routing_key="k",
        category=CATEGORY,
        incident_id=incident_id,
    )


def joined(report_id: str, minutes: int, incident_id: str) -> ReportJoinedIncident:
    return ReportJoinedIncident(
        report_id=report_id,
        version=1,
        occurred_at=T0 + timedelta(minutes=minutes),
        incident_id=incident_id,
        opd=OPD,
        category=CATEGORY,
        area=AREA,
    )


def closed(report_id: str, minutes: int) -> ReportStatusChanged:
    return ReportStatusChanged(
        report_id=report_id,
        version=2,
        occurred_at=T0 + timedelta(minutes=minutes),
        from_status="menunggu",
        to_status="ditolak",
        actor_opd=OPD.code,
        note="duplikat",
        category=CATEGORY,
        reason="duplikat",
        submitted_at=T0,
    )


def fold(*events: Event) -> dict[str, Any]:
    projection: dict[str, Any] | None = None
    for event in events:
        projection = apply_event(projection, event) or projection
    assert projection is not None
    return projection


def test_membership_comes_from_either_event_in_any_order_and_counts_once() -> None:
    early = fold(submitted("r1", 0), routed("r1", 0), joined("r1", 5, "inc"))
    later = fold(joined("r1", 5, "inc"), routed("r1", 0), submitted("r1", 0))
    assert comparable(early) == comparable(later)
    assert (early["incident_id"], early["incident_at"]) == ("inc", T0 + timedelta(minutes=5))
    assert apply_event(early, joined("r1", 5, "inc")) is None  # again (or replayed): nothing new
    member = fold(submitted("r2", 6), routed("r2", 6, "inc"))
    assert member["incident_id"] == "inc"
    alone = fold(submitted("r3", 6), routed("r3", 6))
    assert alone["incident_id"] is None and alone["incident_at"] is None


def test_active_incidents_list_those_with_open_members_with_category_area_and_opening() -> None:
    projections = [
        fold(submitted("r1", 0), routed("r1", 0), joined("r1", 5, "inc")),
        fold(submitted("r2", 5), routed("r2", 5, "inc")),
        fold(submitted("r3", 6), routed("r3", 6, "inc"), closed("r3", 7)),
        fold(submitted("d1", 0), routed("d1", 0, "done"), closed("d1", 9)),  # every member closed: not active
        fold(submitted("x", 0), routed("x", 0)),
    ]
    rows = [{name: p.get(name) for name in INCIDENT_FIELDS} for p in projections]
    [incident] = active_incidents(rows)
    assert incident == {
        "incident_id": "inc",
        "category": CATEGORY,
        "kecamatan": "Jatinegara",
        "kota": "Jakarta Timur",
        "opd": OPD.code,
        "member_count": 3,
        "open_count": 2,
        "opened_at": "2026-12-03T08:05:00Z",
    }
