"""Statistics rules with no I/O: the per-report projection folded from events (live, or replayed by intake for a
rebuild), and the public summary.

A projection keeps the facts of one report, one per change, keyed by what makes the change unique (the report
version of a status change, the hop of a routing decision), and derives everything else from those facts. So an
event delivered twice (same event id, or a rebuilt copy of it) adds nothing, the order of delivery does not matter
(a status only moves forward in report version), and the events intake replays from a report's history give the same
projection as the events that announced them.

Per hop (the report at one OPD) the projection records: the OPD, when it got the report and its response deadline,
its first response, how the hop ended (koordinasi / disposisi hand-over, escalation), rejection, selesai, a
selesai that was reopened afterwards (by its citizen: selesai → dikerjakan), and the citizen's confirmation of its
selesai with the optional 1-5 rating (intake.report_confirmed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from jaklapor.events import (
    Event,
    ReportConfirmed,
    ReportEscalated,
    ReportForwarded,
    ReportJoinedIncident,
    ReportMerged,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportUnmerged,
    ReportUnroutable,
)
from jaklapor.vocabulary import (
    DISPOSISI,
    DITOLAK,
    FORWARDING_STATUSES,
    KOORDINASI,
    MENUNGGU,
    SELESAI,
    STATUS_LABELS,
    STATUSES,
    iso,
    jakarta_day,
    response_deadline,
    utc,
)
from services.stats.verification import verification_fact, verification_fields

# when the OPD that got a report (category, at that moment) must answer
DeadlineRule = Callable[[str, datetime], "datetime | None"]
UNKNOWN_KOTA = "(di luar Jakarta / belum diketahui)"
TRIAGE_OPD = "triage"
# the derived fields compared between the live projection and a rebuild (facts carry event ids, which differ)
COMPARED_FIELDS = (
    "status",
    "category",
    "kota",
    "kecamatan",
    "kelurahan",
    "area_code",
    "opd",
    "hop",
    "submitted_at",
    "day",
    "first_response_at",
    "resolved_at",
    "resolved_by",
    "koordinasi_count",
    "disposisi_count",
    "escalation_count",
    "reopened_count",
    "rejection_reason",
    "unroutable_reason",
    "hops",
    "confirmed_at",
    "rating",
    "merged_into",
    "incident_id",
)


def deadline_rule(response_days: Mapping[str, int], override_seconds: float | None = None) -> DeadlineRule:
    """Routing's rule for a hop's response deadline: a configured number of seconds for every category, else the
    category's own target in days (the city's 3 days when it has none)."""

    def deadline_of(category: str, assigned_at: datetime) -> datetime:
        return response_deadline(assigned_at, response_days.get(category), override_seconds)

    return deadline_of


# ---- facts ----------------------------------------------------------------------------------------------------------


def fact_of(event: Event) -> tuple[str, dict[str, Any]] | None:
    """The key and body of the fact an event records; None for an event stats does not use."""
    base: dict[str, Any] = {"event_id": event.event_id}
    if isinstance(event, ReportSubmitted):
        return "submitted", {**base, "kind": "submitted", "version": event.version, "at": event.submitted_at}
    if isinstance(event, ReportRouted):
        return f"route:{event.hop}", {
            **base,
            "kind": "routed",
            "hop": event.hop,
            "at": event.occurred_at,
            "opd": event.opd.code,
            "deadline": event.response_deadline,
            **({"incident_id": event.incident_id} if event.incident_id else {}),
        }
    if isinstance(event, ReportUnroutable):
        return f"route:{event.hop}", {
            **base,
            "kind": "unroutable",
            "hop": event.hop,
            "at": event.occurred_at,
            "opd": TRIAGE_OPD,
            "deadline": None,
            "reason": event.reason,
        }
    if isinstance(event, ReportStatusChanged):
        return f"status:{event.version}", {
            **base,
            "kind": "status",
            "version": event.version,
            "at": event.occurred_at,
            "from": event.from_status,
            "to": event.to_status,
            "actor": event.actor_opd,
            "target": event.target_opd,
            "reason": event.reason,
            # a merged report following its primary: the status is the primary's, not this report's own work
            **({"followed": event.merged_into} if event.merged_into else {}),
        }
    if isinstance(event, ReportForwarded):
        return f"forwarded:{event.version}", {
            **base,
            "kind": "forwarded",
            "version": event.version,
            "hop": event.hop,
            "at": event.occurred_at,
            "from": event.from_opd,
            "to": event.target_opd,
            "forward_kind": event.kind,
        }
    if isinstance(event, ReportEscalated):
        return f"escalated:{event.version}", {
            **base,
            "kind": "escalated",
            "version": event.version,
            "hop": event.hop,
            "at": event.occurred_at,
            "from": event.from_opd,
            "to": event.to_opd,
            "deadline": event.deadline,
        }
    if isinstance(event, ReportConfirmed):
        # once per report (a confirmed report is never reopened); the rating judges the OPD whose selesai it was
        return "confirmed", {
            **base,
            "kind": "confirmed",
            "version": event.version,
            "at": event.occurred_at,
            "rating": event.rating,
            "opd": event.opd.code if event.opd else None,
        }
    if isinstance(event, ReportMerged | ReportUnmerged):
        return f"{event.type_name}:{event.version}", {
            **base,
            "kind": "merged" if isinstance(event, ReportMerged) else "unmerged",
            "version": event.version,
            "at": event.occurred_at,
            "primary": event.primary_id,
            "to": event.status,
        }
    if isinstance(event, ReportJoinedIncident):
        # one membership per incident: routing's live event and intake's replay of it count once
        return f"incident:{event.incident_id}", {
            **base,
            "kind": "incident",
            "incident_id": event.incident_id,
            "at": event.occurred_at,
        }
    return verification_fact(event)


def new_projection(report_id: str) -> dict[str, Any]:
    projection: dict[str, Any] = {
        "_id": report_id,
        "rev": 0,
        "category": None,
        "kota": None,
        "kecamatan": None,
        "kelurahan": None,
        "area_code": None,
        "submitted_at": None,
        "facts": {},
    }
    projection.update(derive(projection))
    return projection


def apply_event(projection: Mapping[str, Any] | None, event: Event) -> dict[str, Any] | None:
    """The projection after `event`, or None if it records nothing new (a duplicate: nothing to write)."""
    current = dict(projection) if projection is not None else new_projection(event.report_id)
    fact = fact_of(event)
    facts = dict(current.get("facts") or {})
    if fact is None or fact[0] in facts:
        return None
    key, body = fact
    facts[key] = body
    current["facts"] = facts
    current["category"] = current.get("category") or getattr(event, "category", None)
    submitted_at = getattr(event, "submitted_at", None)
    if current.get("submitted_at") is None and submitted_at is not None:
        current["submitted_at"] = submitted_at
    area = getattr(event, "area", None)
    if area is not None:
        current.update(kota=area.kota, kecamatan=area.kecamatan, kelurahan=area.kelurahan, area_code=area.code)
    current.update(derive(current))
    return current


# ---- what the facts say -------------------------------------------------------------------------------------------


def _earliest(moments: Iterable[datetime | None]) -> datetime | None:
    present = [m for m in moments if m is not None]
    return min(present, key=utc) if present else None


def _new_hop(hop: int) -> dict[str, Any]:
    return {
        "hop": hop,
        "opd": None,
        "assigned_at": None,
        "deadline": None,
        "first_response_at": None,
        "first_response": None,
        "ended": None,  # koordinasi | disposisi | escalation: the report left this OPD that way
        "ended_at": None,
        "rejected": False,
        "rejection_reason": None,
        "selesai_at": None,  # the latest selesai set during this hop
        "selesai_count": 0,
        "reopened": 0,  # a selesai of this hop was taken back out of selesai
    }


def derive(projection: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the statistics read, computed from the projection's facts alone (order of arrival irrelevant)."""
    facts = list((projection.get("facts") or {}).values())
    # a merged report's status follows its primary's: those changes are the primary's work, counted there only
    every_status = sorted((f for f in facts if f["kind"] == "status"), key=lambda f: f["version"])
    statuses = [f for f in every_status if not f.get("followed")]
    merges = sorted((f for f in facts if f["kind"] in ("merged", "unmerged")), key=lambda f: f["version"])
    submitted = next((f for f in facts if f["kind"] == "submitted"), None)

    # hand-overs: each starts a new hop at its report version; a status change and the forward it caused share one
    boundaries: dict[int, dict[str, Any]] = {}
    for fact in facts:
        if fact["kind"] == "status" and fact["to"] in FORWARDING_STATUSES and not fact.get("followed"):
            entry = boundaries.setdefault(fact["version"], {})
            entry.setdefault("kind", fact["to"])
            entry.setdefault("at", fact["at"])
            entry.setdefault("to", fact["target"])
        elif fact["kind"] in ("forwarded", "escalated"):
            entry = boundaries.setdefault(fact["version"], {})
            entry["hop"] = fact["hop"]
            kind = "escalation" if fact["kind"] == "escalated" else fact["forward_kind"]
            if kind == "escalation" or "kind" not in entry:
                entry["kind"] = kind
            entry["at"] = fact["at"] if "at" not in entry else _earliest([entry["at"], fact["at"]])
            entry["to"] = fact["to"]
            if fact["kind"] == "escalated":
                entry["deadline"] = fact["deadline"]
    ordered = sorted(boundaries.items())
    hop_number = 0
    for _version, entry in ordered:
        hop_number = entry.get("hop") or hop_number + 1
        entry["hop"] = hop_number

    def hop_at(version: int) -> int:
        """The hop a change at `version` belongs to: the last hand-over before it."""
        hop = 0
        for boundary_version, entry in ordered:
            if boundary_version >= version:
                break
            hop = entry["hop"]
        return hop

    hops: dict[int, dict[str, Any]] = {}
    for boundary_version, entry in ordered:
        ended = hops.setdefault(hop_at(boundary_version), _new_hop(hop_at(boundary_version)))
        ended["ended"], ended["ended_at"] = entry["kind"], entry["at"]
        started = hops.setdefault(entry["hop"], _new_hop(entry["hop"]))
        started["opd"] = started["opd"] or entry["to"]
        started["assigned_at"] = started["assigned_at"] or entry["at"]
    for fact in facts:
        if fact["kind"] in ("routed", "unroutable"):
            hop = hops.setdefault(fact["hop"], _new_hop(fact["hop"]))
            # a hand-over lets its target act at once (intake records it before routing delivers it): the hop's clock
            # starts at whichever came first, so a quick answer is never counted before its start
            assigned = fact["at"] if hop["assigned_at"] is None else _earliest([hop["assigned_at"], fact["at"]])
            hop["opd"], hop["assigned_at"], hop["deadline"] = fact["opd"], assigned, fact["deadline"]
    for boundary_version, entry in ordered:
        # an escalation names the deadline the previous OPD missed, even if its routing did not carry one
        ended = hops[hop_at(boundary_version)]
        ended["deadline"] = ended["deadline"] or entry.get("deadline")
    for fact in statuses:
        hop = hops.setdefault(hop_at(fact["version"]), _new_hop(hop_at(fact["version"])))
        if hop["first_response_at"] is None or utc(fact["at"]) < utc(hop["first_response_at"]):
            hop["first_response_at"], hop["first_response"] = fact["at"], fact["to"]
        if fact["to"] == DITOLAK:
            hop["rejected"], hop["rejection_reason"] = True, fact["reason"]
        if fact["to"] == SELESAI:
            hop["selesai_at"] = fact["at"]
            hop["selesai_count"] += 1
    reopened = 0
    for fact in statuses:
        if fact["from"] == SELESAI and fact["to"] != SELESAI:
            reopened += 1
            earlier = [s for s in statuses if s["to"] == SELESAI and s["version"] < fact["version"]]
            if earlier:
                hops[hop_at(earlier[-1]["version"])]["reopened"] += 1

    confirmed = next((f for f in facts if f["kind"] == "confirmed"), None)
    if confirmed is not None:
        # the citizen's confirmation (and rating) belongs to the hop that set the selesai it confirms; only the
        # confirmed hop gets these keys, so projections without a confirmation keep their shape
        rated = hops.setdefault(hop_at(confirmed["version"]), _new_hop(hop_at(confirmed["version"])))
        rated["confirmed_at"], rated["rating"] = confirmed["at"], confirmed["rating"]

    # the status is set by the latest status change, merge or unmerge (in report version)
    setting = sorted(every_status + merges, key=lambda f: f["version"])
    if setting:
        status, status_version = setting[-1]["to"], setting[-1]["version"]
    elif submitted is not None:
        status, status_version = MENUNGGU, submitted["version"]
    else:
        status, status_version = None, 0
    last = statuses[-1] if statuses and setting and setting[-1] is statuses[-1] else None
    current_hop = hops[max(hops)] if hops else None
    routes = sorted((f for f in facts if f["kind"] in ("routed", "unroutable")), key=lambda f: f["hop"])
    unroutable = [f for f in routes if f["kind"] == "unroutable"]
    submitted_at = projection.get("submitted_at") or (submitted["at"] if submitted else None)
    return {
        "status": status,
        "status_version": status_version,
        "submitted_at": submitted_at,
        "day": jakarta_day(submitted_at) if submitted_at is not None else None,
        "opd": current_hop["opd"] if current_hop else None,
        "hop": current_hop["hop"] if current_hop else 0,
        "first_response_at": _earliest(f["at"] for f in statuses),
        "resolved_at": last["at"] if last and status == SELESAI else None,
        "resolved_by": last["actor"] if last and status == SELESAI else None,
        "rejection_reason": last["reason"] if last and status == DITOLAK else None,
        "koordinasi_count": sum(1 for e in boundaries.values() if e["kind"] == KOORDINASI),
        "disposisi_count": sum(1 for e in boundaries.values() if e["kind"] == DISPOSISI),
        "escalation_count": sum(1 for e in boundaries.values() if e["kind"] == "escalation"),
        "reopened_count": reopened,
        "confirmed_at": confirmed["at"] if confirmed is not None else None,
        "rating": confirmed["rating"] if confirmed is not None else None,
        "unroutable_reason": unroutable[-1]["reason"] if unroutable else None,
        "hops": [hops[n] for n in sorted(hops)],
        # the primary this report is merged into: counted as part of that problem, not as one of its own
        "merged_into": merges[-1]["primary"] if merges and merges[-1]["kind"] == "merged" else None,
        **verification_fields(facts, status, status_version),
        **incident_of(facts),
    }


def incident_of(facts: list[dict[str, Any]]) -> dict[str, Any]:
    """The incident the report is a member of (services/routing/surge.py), and when it became one: routed into it,
    or joined it as one of the reports that opened it. The latest membership wins (a report is in one at a time)."""
    memberships = [f for f in facts if f["kind"] == "incident" or (f["kind"] == "routed" and f.get("incident_id"))]
    if not memberships:
        return {"incident_id": None, "incident_at": None}
    latest = max(memberships, key=lambda f: utc(f["at"]))
    return {"incident_id": latest["incident_id"], "incident_at": latest["at"]}


def comparable(projection: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The part of a projection a rebuild must reproduce, with times in UTC to the millisecond (as Mongo keeps them)."""
    if projection is None:
        return None
    return {name: _normalise(projection.get(name)) for name in COMPARED_FIELDS}


def _normalise(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = utc(value)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if isinstance(value, Mapping):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def differences(live: Mapping[str, Any] | None, rebuilt: Mapping[str, Any] | None) -> list[str]:
    """Human-readable differences between a live projection and its rebuild (empty when they agree)."""
    if live is None and rebuilt is None:
        return []
    if live is None:
        return ["missing from the live projections"]
    if rebuilt is None:
        return ["live projection has no report in the report store"]
    a, b = comparable(live), comparable(rebuilt)
    assert a is not None and b is not None
    return [f"{name}: live {a[name]!r} != rebuilt {b[name]!r}" for name in COMPARED_FIELDS if a[name] != b[name]]


def fold(events: Iterable[Event]) -> dict[str, Any] | None:
    """The projection of one report folded from its events, in any order (None if stats uses none of them)."""
    projection: dict[str, Any] | None = None
    for event in events:
        projection = apply_event(projection, event) or projection
    return projection


# ---- the public summary (counts grouped by status, category and kota) -----------------------------------------------


def _shares(counts: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    total = sum(counts.values())
    return {
        status: {
            "label": STATUS_LABELS[status],
            "count": counts.get(status, 0),
            "share": round(counts.get(status, 0) / total, 4) if total else 0.0,
            "percent": round(100 * counts.get(status, 0) / total, 1) if total else 0.0,
        }
        for status in STATUSES
    }


def headline(counts: Mapping[str, int]) -> str:
    """The sentence the city publishes: "96% selesai, 2% koordinasi, ..." (largest first, zeros left out)."""
    total = sum(counts.values())
    if not total:
        return "Belum ada laporan"
    parts = sorted(((n, s) for s, n in counts.items() if n), key=lambda p: (-p[0], STATUSES.index(p[1])))
    return ", ".join(f"{round(100 * n / total, 1):g}% {s}" for n, s in parts)


def summarize(
    grouped: Iterable[tuple[str | None, str | None, str | None, int]],
    category_names: Mapping[str, str],
    generated_at: datetime,
) -> dict[str, Any]:
    """Summary from counts grouped by (status, category, kota); reports not yet counted have no status."""
    by_status: dict[str, int] = dict.fromkeys(STATUSES, 0)
    by_category: dict[str, dict[str, int]] = {}
    by_kota: dict[str, dict[str, int]] = {}
    for status, category, kota, count in grouped:
        if status not in by_status:
            continue
        by_status[status] += count
        cat_counts = by_category.setdefault(category or "(tanpa kategori)", dict.fromkeys(STATUSES, 0))
        cat_counts[status] += count
        kota_counts = by_kota.setdefault(kota or UNKNOWN_KOTA, dict.fromkeys(STATUSES, 0))
        kota_counts[status] += count
    total = sum(by_status.values())

    def breakdown(key: str, groups: dict[str, dict[str, int]], names: Mapping[str, str] | None = None) -> list:
        rows = []
        for name, counts in groups.items():
            group_total = sum(counts.values())
            row: dict[str, Any] = {key: name}
            if names is not None:
                row["name"] = names.get(name, name)
            row.update(
                total=group_total,
                share_of_all=round(group_total / total, 4) if total else 0.0,
                by_status={s: counts[s] for s in STATUSES},
                selesai_percent=round(100 * counts[SELESAI] / group_total, 1) if group_total else 0.0,
            )
            rows.append(row)
        return sorted(rows, key=lambda r: (-r["total"], r[key]))

    return {
        "generated_at": iso(generated_at),
        "total": total,
        "headline": headline(by_status),
        "by_status": _shares(by_status),
        "by_category": breakdown("category", by_category, category_names),
        "by_kota": breakdown("kota", by_kota),
    }
