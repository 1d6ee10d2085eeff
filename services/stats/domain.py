"""Statistics rules with no I/O: a per-report projection folded from events, and the public summary.

The projection is rebuilt from events alone, idempotently: an event already applied (same event id) changes
nothing, and a status only moves forward in report version, so redeliveries and reordering cannot double count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from jaklapor.events import (
    STATUSES,
    Event,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportUnroutable,
)

UNKNOWN_KOTA = "(di luar Jakarta / belum diketahui)"
STATUS_LABELS = {
    "menunggu": "Menunggu",
    "koordinasi": "Koordinasi",
    "disposisi": "Disposisi",
    "dikerjakan": "Dikerjakan",
    "selesai": "Selesai",
    "ditolak": "Ditolak",
}


def new_projection(report_id: str) -> dict[str, Any]:
    return {
        "_id": report_id,
        "rev": 0,
        "category": None,
        "kota": None,
        "kecamatan": None,
        "kelurahan": None,
        "area_code": None,
        "opd": None,
        "hop": 0,
        "status": None,
        "status_version": 0,
        "submitted_at": None,
        "first_response_at": None,
        "resolved_at": None,
        "koordinasi_count": 0,
        "disposisi_count": 0,
        "unroutable_reason": None,
        "applied": [],
    }


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or _utc(candidate) < _utc(current) else current


def apply_event(projection: Mapping[str, Any] | None, event: Event) -> dict[str, Any] | None:
    """The projection after `event`, or None if the event was already applied (nothing to write)."""
    current = dict(projection) if projection is not None else new_projection(event.report_id)
    if event.event_id in current["applied"]:
        return None
    current["applied"] = [*current["applied"], event.event_id]
    if isinstance(event, ReportSubmitted):
        current["category"] = event.category
        current["submitted_at"] = event.submitted_at
        _set_status(current, "menunggu", event.version)
    elif isinstance(event, ReportRouted):
        current["category"] = current["category"] or event.category
        _set_area(current, event.area)
        if event.hop >= current["hop"]:
            current["opd"] = event.opd.code
            current["hop"] = event.hop
    elif isinstance(event, ReportUnroutable):
        current["category"] = current["category"] or event.category
        _set_area(current, event.area)
        current["unroutable_reason"] = event.reason
        if event.hop >= current["hop"]:
            current["opd"] = "triage"
            current["hop"] = event.hop
    elif isinstance(event, ReportStatusChanged):
        current["category"] = current["category"] or event.category
        current["submitted_at"] = current["submitted_at"] or event.submitted_at
        _set_area(current, event.area)
        current["first_response_at"] = _earliest(current["first_response_at"], event.occurred_at)
        if event.to_status == "koordinasi":
            current["koordinasi_count"] += 1
        elif event.to_status == "disposisi":
            current["disposisi_count"] += 1
        if event.to_status == "selesai":
            current["resolved_at"] = _earliest(current["resolved_at"], event.occurred_at)
        _set_status(current, event.to_status, event.version)
    return current


def _set_status(projection: dict[str, Any], status: str, version: int) -> None:
    if version > projection["status_version"]:
        projection["status"] = status
        projection["status_version"] = version


def _set_area(projection: dict[str, Any], area: Any) -> None:
    if area is not None:
        projection.update(kota=area.kota, kecamatan=area.kecamatan, kelurahan=area.kelurahan, area_code=area.code)


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
    parts = sorted(((n, s) for s, n in counts.items() if n), reverse=True)
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
                selesai_percent=round(100 * counts["selesai"] / group_total, 1) if group_total else 0.0,
            )
            rows.append(row)
        return sorted(rows, key=lambda r: (-r["total"], r[key]))

    return {
        "generated_at": generated_at.isoformat().replace("+00:00", "Z"),
        "total": total,
        "headline": headline(by_status),
        "by_status": _shares(by_status),
        "by_category": breakdown("category", by_category, category_names),
        "by_kota": breakdown("kota", by_kota),
    }
