"""Statistics computed from per-report projections (no I/O): breakdowns, reports per day, durations and deadlines.

Every function takes the projections' derived fields (see `domain.derive`) as plain mappings ("rows"); a row whose
status is still unknown (no event seen yet but a routing decision) is not counted.

Durations: overall and per category they run from submission (the citizen's wait); per OPD they run from the moment
that OPD received the report (its own hop), so an agency is not blamed for the time others took before it.
Percentiles interpolate linearly between the closest ranks (numpy's default): the median of 1, 2, 3, 10 is 2.5.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from jaklapor.vocabulary import FINAL_STATUSES, SELESAI, STATUSES, jakarta_day, utc
from services.stats.domain import UNKNOWN_KOTA, DeadlineRule

NO_CATEGORY = "(tanpa kategori)"
UNKNOWN_AREA = "(belum diketahui)"
DIMENSIONS = ("status", "category", "kota", "kecamatan", "kelurahan", "opd")
MAX_DAYS = 366


def counted(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows counted: a known status, and not merged into another report (one problem with N reports counts
    once, as its primary, so an agency's figures are neither inflated nor deflated by merging)."""
    return [row for row in rows if row.get("status") in STATUSES and not row.get("merged_into")]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def duration_stats(seconds: Sequence[float]) -> dict[str, Any]:
    """Count, median and p90 of durations, in seconds and hours."""
    median, p90 = percentile(seconds, 50), percentile(seconds, 90)
    return {
        "count": len(seconds),
        "median_seconds": None if median is None else round(median, 1),
        "p90_seconds": None if p90 is None else round(p90, 1),
        "median_hours": None if median is None else round(median / 3600, 2),
        "p90_hours": None if p90 is None else round(p90 / 3600, 2),
    }


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((utc(end) - utc(start)).total_seconds(), 0.0)


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# ---- per hop: what one OPD did with one report ----------------------------------------------------------------------


@dataclass(frozen=True)
class HopOutcome:
    """One report at one OPD (a hop), judged at `now`."""

    report_id: str
    category: str | None
    opd: str
    assigned_at: datetime | None
    deadline: datetime | None
    response_seconds: float | None  # from receiving the report to its first status change
    resolution_seconds: float | None  # from receiving it to selesai, when it was completed here
    on_time: bool | None  # answered by the deadline; None while the deadline has not passed yet
    ended: str | None  # koordinasi / disposisi / escalation: how the report left this OPD
    rejected: bool
    completed: bool  # the report is selesai, finished by this OPD
    selesai_set: bool  # this OPD set selesai at least once
    reopened: bool  # a selesai of this OPD was taken back
    open: bool  # still with this OPD, not finished
    due: bool  # its response deadline has passed
    closures: int = 0  # how often this OPD set selesai here
    reopens: int = 0  # how many of those closures were taken back (reopened by the citizen)
    confirmed: bool = False  # the citizen confirmed this OPD's selesai
    rating: int | None = None  # the citizen's 1-5 rating of it, if they gave one


def hop_deadline(hop: Mapping[str, Any], category: str | None, deadline_of: DeadlineRule) -> datetime | None:
    """The hop's response deadline as routing set it; for a hop without one (the triage desk, older events) the
    same rule routing uses."""
    if hop.get("deadline") is not None:
        return utc(hop["deadline"])
    if hop.get("assigned_at") is None:
        return None
    deadline = deadline_of(category or "", utc(hop["assigned_at"]))
    return None if deadline is None else utc(deadline)


def hop_outcomes(row: Mapping[str, Any], now: datetime, deadline_of: DeadlineRule) -> list[HopOutcome]:
    hops = [h for h in row.get("hops") or [] if h.get("opd")]
    outcomes = []
    for index, hop in enumerate(hops):
        last = index == len(hops) - 1
        deadline = hop_deadline(hop, row.get("category"), deadline_of)
        due = deadline is not None and utc(now) > deadline
        first = hop.get("first_response_at")
        if first is not None and deadline is not None:
            on_time: bool | None = utc(first) <= deadline
        elif hop.get("ended") == "escalation":
            on_time = False
        else:
            on_time = False if due else None
        completed = last and row.get("status") == SELESAI and hop.get("selesai_at") is not None
        outcomes.append(
            HopOutcome(
                report_id=str(row.get("_id")),
                category=row.get("category"),
                opd=hop["opd"],
                assigned_at=hop.get("assigned_at"),
                deadline=deadline,
                response_seconds=_seconds(hop.get("assigned_at"), first),
                resolution_seconds=_seconds(hop.get("assigned_at"), hop.get("selesai_at")) if completed else None,
                on_time=on_time,
                ended=hop.get("ended"),
                rejected=bool(hop.get("rejected")),
                completed=completed,
                selesai_set=bool(hop.get("selesai_count")),
                reopened=bool(hop.get("reopened")),
                open=last and row.get("status") not in FINAL_STATUSES,
                due=due,
                closures=int(hop.get("selesai_count") or 0),
                reopens=int(hop.get("reopened") or 0),
                confirmed=hop.get("confirmed_at") is not None,
                rating=hop.get("rating"),
            )
        )
    return outcomes


def deadline_share(outcomes: Iterable[HopOutcome]) -> dict[str, Any]:
    """Of the hops whose outcome is known (answered, or deadline passed), how many were answered in time."""
    decided = [o.on_time for o in outcomes if o.on_time is not None]
    within = sum(1 for o in decided if o)
    return {"decided": len(decided), "within": within, "share": ratio(within, len(decided))}


# ---- breakdowns ---------------------------------------------------------------------------------------------------


def _group_key(row: Mapping[str, Any], dimension: str) -> tuple[str, dict[str, Any]]:
    if dimension == "status":
        return row["status"], {"status": row["status"]}
    if dimension == "category":
        category = row.get("category") or NO_CATEGORY
        return category, {"category": category}
    if dimension == "kota":
        kota = row.get("kota") or UNKNOWN_KOTA
        return kota, {"kota": kota}
    code = row.get("area_code")
    if dimension == "kecamatan":
        if not code:
            return "", {"code": None, "kecamatan": UNKNOWN_AREA, "kota": UNKNOWN_KOTA}
        return code[:8], {"code": code[:8], "kecamatan": row.get("kecamatan"), "kota": row.get("kota")}
    if dimension == "kelurahan":
        if not code:
            return "", {"code": None, "kelurahan": UNKNOWN_AREA, "kecamatan": UNKNOWN_AREA, "kota": UNKNOWN_KOTA}
        return code, {
            "code": code,
            "kelurahan": row.get("kelurahan"),
            "kecamatan": row.get("kecamatan"),
            "kota": row.get("kota"),
        }
    if dimension == "opd":
        opd = row.get("opd") or ""
        return opd, {"opd": opd or None}
    raise ValueError(f"unknown dimension {dimension!r}")


def breakdown(
    rows: Iterable[Mapping[str, Any]], dimension: str, names: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Totals and shares per status of each group; `names` adds fields to a group's row (a category's name...)."""
    rows = counted(rows)
    total = len(rows)
    groups: dict[str, tuple[dict[str, Any], dict[str, int]]] = {}
    for row in rows:
        key, fields = _group_key(row, dimension)
        _, counts = groups.setdefault(key, (fields, dict.fromkeys(STATUSES, 0)))
        counts[row["status"]] += 1
    result = []
    for key, (fields, counts) in groups.items():
        group_total = sum(counts.values())
        result.append(
            {
                **fields,
                **(names or {}).get(key, {}),
                "total": group_total,
                "share_of_all": round(group_total / total, 4) if total else 0.0,
                "percent_of_all": round(100 * group_total / total, 1) if total else 0.0,
                "by_status": counts,
                "selesai_percent": round(100 * counts[SELESAI] / group_total, 1) if group_total else 0.0,
            }
        )
    result.sort(key=lambda r: (-r["total"], str(_group_key_sort(r, dimension))))
    return {"dimension": dimension, "total": total, "rows": result}


def _group_key_sort(row: Mapping[str, Any], dimension: str) -> Any:
    return row.get("code") if dimension in ("kecamatan", "kelurahan") else row.get(dimension)


def status_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for row in counted(rows):
        counts[row["status"]] += 1
    return counts


# ---- per day ------------------------------------------------------------------------------------------------------


def day_range(first: date, last: date) -> list[str]:
    if last < first:
        return []
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def per_day(rows: Iterable[Mapping[str, Any]], first: date, last: date) -> dict[str, Any]:
    """Reports submitted each Jakarta day (with their current status) and reports that reached selesai that day."""
    days = day_range(first, last)
    submitted = {day: dict.fromkeys(STATUSES, 0) for day in days}
    resolved = dict.fromkeys(days, 0)
    for row in counted(rows):
        day = row.get("day") or (jakarta_day(row["submitted_at"]) if row.get("submitted_at") else None)
        if day in submitted:
            submitted[day][row["status"]] += 1
        if row.get("resolved_at") is not None:
            done = jakarta_day(row["resolved_at"])
            if done in resolved:
                resolved[done] += 1
    return {
        "first_day": days[0] if days else None,
        "last_day": days[-1] if days else None,
        "days": [
            {
                "day": day,
                "submitted": sum(submitted[day].values()),
                "selesai_that_day": resolved[day],
                "by_status": submitted[day],
            }
            for day in days
        ],
    }


# ---- durations ----------------------------------------------------------------------------------------------------


def durations(
    rows: Iterable[Mapping[str, Any]],
    now: datetime,
    deadline_of: DeadlineRule,
    opd_names: Mapping[str, Mapping[str, Any]] | None = None,
    category_names: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Time to first response and to selesai (median, p90) overall, per OPD and per category, and the share of
    responses given within the deadline."""
    rows = counted(rows)
    outcomes = [o for row in rows for o in hop_outcomes(row, now, deadline_of)]

    def report_level(subset: list[Mapping[str, Any]]) -> dict[str, Any]:
        first = [_seconds(r.get("submitted_at"), r.get("first_response_at")) for r in subset]
        done = [_seconds(r.get("submitted_at"), r.get("resolved_at")) for r in subset]
        return {
            "reports": len(subset),
            "first_response": duration_stats([s for s in first if s is not None]),
            "selesai": duration_stats([s for s in done if s is not None]),
        }

    by_category: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_category.setdefault(row.get("category") or NO_CATEGORY, []).append(row)
    hops_by_category: dict[str, list[HopOutcome]] = {}
    hops_by_opd: dict[str, list[HopOutcome]] = {}
    for outcome in outcomes:
        hops_by_category.setdefault(outcome.category or NO_CATEGORY, []).append(outcome)
        hops_by_opd.setdefault(outcome.opd, []).append(outcome)

    per_category = [
        {
            "category": category,
            **(category_names or {}).get(category, {}),
            **report_level(subset),
            "within_deadline": deadline_share(hops_by_category.get(category, [])),
        }
        for category, subset in by_category.items()
    ]
    per_category.sort(key=lambda r: (-r["reports"], r["category"]))
    per_opd = [
        {
            "opd": opd,
            **(opd_names or {}).get(opd, {}),
            "received": len(subset),
            "first_response": duration_stats([o.response_seconds for o in subset if o.response_seconds is not None]),
            "selesai": duration_stats([o.resolution_seconds for o in subset if o.resolution_seconds is not None]),
            "within_deadline": deadline_share(subset),
        }
        for opd, subset in hops_by_opd.items()
    ]
    per_opd.sort(key=lambda r: (-r["received"], r["opd"]))
    return {
        "overall": {**report_level(rows), "within_deadline": deadline_share(outcomes)},
        "by_opd": per_opd,
        "by_category": per_category,
    }
