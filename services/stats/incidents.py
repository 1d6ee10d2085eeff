"""Active incidents for the public dashboard (no I/O): surges of one category in one kecamatan that routing grouped
(services/routing/surge.py), summed from the per-report projections, which learn their incident from
`routing.report_routed.incident_id` and `routing.report_joined_incident` (and so rebuild from intake's replay too).

An incident is active while at least one member is still open (not selesai, not ditolak). Only counts, the
category, the kecamatan and times are public; never which reports are members (their descriptions are public one by
one, but a list of a flood's reports is not what a dashboard needs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jaklapor.vocabulary import FINAL_STATUSES, iso, utc

INCIDENT_FIELDS = ("incident_id", "incident_at", "status", "category", "kecamatan", "kota", "opd")


def active_incidents(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The incidents with open members, newest first: category, area, OPD, members (all, open), opened at."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("incident_id"):
            grouped.setdefault(row["incident_id"], []).append(row)
    incidents = []
    for incident_id, members in grouped.items():
        open_count = sum(1 for m in members if m.get("status") not in FINAL_STATUSES)
        if open_count == 0:
            continue
        first = min(members, key=lambda m: utc(m["incident_at"]))
        incidents.append(
            {
                "incident_id": incident_id,
                "category": first.get("category"),
                "kecamatan": first.get("kecamatan"),
                "kota": first.get("kota"),
                "opd": first.get("opd"),
                "member_count": len(members),
                "open_count": open_count,
                "opened_at": iso(first["incident_at"]),
            }
        )
    incidents.sort(key=lambda i: str(i["opened_at"]), reverse=True)
    return incidents
