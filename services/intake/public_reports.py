"""Queries for the public listings of reports (Open311's request list, the open-data exports): which reports, in
which order, read how (no HTTP here).

Only public categories' reports are ever asked for (services/intake/visibility.py); only the fields a public output
shows are read; the exports read through a cursor in batches, so memory stays bounded however many reports match.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING

from jaklapor.reference import Category
from services.intake.nearby import BoundingBox
from services.intake.visibility import public_category_codes

#: the stored fields a public listing reads (history for the status notes and Open311's notes[])
LISTING_FIELDS = (
    "_id",
    "category",
    "status",
    "description",
    "location",
    "area",
    "submitted_at",
    "updated_at",
    "photos",
    "evidence_photos",
    "assigned_opd",
    "response_deadline",
    "work_deadline",
    "history",
)
#: the fields an export reads (no history: a row is the report as it stands)
EXPORT_FIELDS = tuple(name for name in LISTING_FIELDS if name not in ("history", "evidence_photos"))
#: reports read from the store per round trip while streaming
EXPORT_BATCH = 500


@dataclass(frozen=True)
class PublicFilter:
    """What a public listing may be narrowed by; None is no filter."""

    report_ids: Sequence[str] | None = None
    categories: Sequence[str] | None = None
    statuses: Sequence[str] | None = None
    submitted_from: datetime | None = None
    submitted_until: datetime | None = None
    kota: str | None = None
    kecamatan: str | None = None
    kelurahan: str | None = None
    box: BoundingBox | None = None


def mongo_filter(wanted: PublicFilter, categories: Mapping[str, Category]) -> dict[str, Any]:
    """The store query of `wanted`, never wider than the public categories."""
    public = public_category_codes(categories)
    allowed = [code for code in wanted.categories if code in public] if wanted.categories is not None else public
    query: dict[str, Any] = {"category": {"$in": allowed}}
    if wanted.report_ids is not None:
        query["_id"] = {"$in": list(wanted.report_ids)}
    if wanted.statuses is not None:
        query["status"] = {"$in": list(wanted.statuses)}
    submitted: dict[str, Any] = {}
    if wanted.submitted_from is not None:
        submitted["$gte"] = wanted.submitted_from
    if wanted.submitted_until is not None:
        submitted["$lte"] = wanted.submitted_until
    if submitted:
        query["submitted_at"] = submitted
    for level in ("kota", "kecamatan", "kelurahan"):
        name = getattr(wanted, level)
        if name is not None:
            query[f"area.{level}"] = name
    if wanted.box is not None:
        # a little wider than the box: a published point (rounded) may lie just outside the stored one's box
        margin = 0.001
        query["location.lat"] = {"$gte": wanted.box.min_lat - margin, "$lte": wanted.box.max_lat + margin}
        query["location.lon"] = {"$gte": wanted.box.min_lon - margin, "$lte": wanted.box.max_lon + margin}
    return query


def newest_first(
    reports: Any, query: dict[str, Any], skip: int, limit: int, fields: Sequence[str] = LISTING_FIELDS
) -> list[dict[str, Any]]:
    """One page of the matching reports, the newest first (`reports`: the store's collection)."""
    cursor = reports.find(query, dict.fromkeys(fields, 1)).sort([("submitted_at", DESCENDING), ("_id", DESCENDING)])
    return list(cursor.skip(skip).limit(limit))


def stream_in_id_order(
    reports: Any, query: dict[str, Any], fields: Sequence[str] = EXPORT_FIELDS, batch: int = EXPORT_BATCH
) -> Iterator[dict[str, Any]]:
    """Every matching report in report-number order (which is submission order), read in batches: the caller holds
    one batch at a time."""
    cursor = reports.find(query, dict.fromkeys(fields, 1)).sort("_id", ASCENDING).batch_size(batch)
    try:
        yield from cursor
    finally:
        cursor.close()
