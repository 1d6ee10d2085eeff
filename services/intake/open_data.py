"""The open-data exports of reports (no I/O): one row per public report, as CSV or as GeoJSON features, written a
row at a time from an iterator so an export of any size holds one batch of reports in memory.

What a row holds is the public record (services/intake/visibility.py): no private category's report, the location
as published, no token, idempotency key or anything about the reporter. EXPORT_COLUMNS is the schema, documented in
/openapi.json and the README; LICENCE travels in the GeoJSON document and in each answer's `Link` header.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jaklapor.reference import Category
from jaklapor.vocabulary import JAKARTA_TZ, STATUS_LABELS, STATUSES, iso
from jaklapor.web import ApiError
from services.intake.domain import photo_url
from services.intake.open311 import OPEN311_STATUSES
from services.intake.public_reports import PublicFilter
from services.intake.visibility import for_public

LICENCE = {
    "name": "Creative Commons Attribution 4.0 International (CC BY 4.0)",
    "url": "https://creativecommons.org/licenses/by/4.0/",
    "attribution": "Pemprov DKI Jakarta, jaklapor",
}
#: the columns of the CSV and the properties of each GeoJSON feature, in order, with what each holds
EXPORT_COLUMNS: dict[str, str] = {
    "report_id": "the report number (JK-YYYYMMDD-NNNNNN)",
    "submitted_at": "when it was filed, ISO 8601 UTC",
    "updated_at": "when it last changed, ISO 8601 UTC",
    "category": "category code (GET /api/v1/categories)",
    "category_name": "category name (Indonesian)",
    "status": f"one of {', '.join(STATUSES)}",
    "status_label": "the status as JAKI writes it",
    "description": "the citizen's description",
    "lat": "latitude, WGS 84, as precise as the category allows",
    "lon": "longitude, WGS 84, as precise as the category allows",
    "location_precision": "exact, or 3 (coordinates rounded to 3 decimals, about 110 m)",
    "kelurahan_code": "the kelurahan's code (Kemendagri), empty before routing",
    "kelurahan": "kelurahan name",
    "kecamatan": "kecamatan name",
    "kota": "kota / kabupaten name",
    "agency_code": "the OPD holding the report",
    "agency_name": "its name",
    "photo_url": "the first (sanitised) photo, empty if none",
}
#: how many rows are written before a chunk is handed to the server
ROWS_PER_CHUNK = 200


def export_row(report: Mapping[str, Any], categories: Mapping[str, Category], base_url: str) -> dict[str, Any]:
    """One public report (as visibility.for_public returns it) as an export row."""
    category = categories.get(report["category"])
    area = report.get("area") or {}
    opd = report.get("assigned_opd") or {}
    photos = report.get("photos") or []
    decimals = category.public_decimals if category is not None else 3
    return {
        "report_id": report["_id"],
        "submitted_at": iso(report["submitted_at"]),
        "updated_at": iso(report.get("updated_at")),
        "category": report["category"],
        "category_name": category.name if category is not None else "",
        "status": report["status"],
        "status_label": STATUS_LABELS[report["status"]],
        "description": report["description"],
        "lat": report["location"]["lat"],
        "lon": report["location"]["lon"],
        "location_precision": "exact" if decimals is None else str(decimals),
        "kelurahan_code": area.get("code", ""),
        "kelurahan": area.get("kelurahan", ""),
        "kecamatan": area.get("kecamatan", ""),
        "kota": area.get("kota", ""),
        "agency_code": opd.get("code", ""),
        "agency_name": opd.get("name", ""),
        "photo_url": photo_url(base_url, photos[0]["photo_id"]) if photos else "",
    }


def public_rows(
    reports: Iterable[dict[str, Any]], categories: Mapping[str, Category], base_url: str
) -> Iterator[dict[str, Any]]:
    """The rows of the public ones among `reports` (the query already left private ones out: checked again)."""
    for report in reports:
        shown = for_public(report, categories)
        if shown is not None:
            yield export_row(shown, categories, base_url)


def csv_chunks(rows: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    """The CSV (RFC 4180, UTF-8, header row first) in chunks of ROWS_PER_CHUNK rows."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(EXPORT_COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    for count, row in enumerate(rows, 1):
        # a spreadsheet runs a cell starting with = + - @ as a formula: citizen text is prefixed with a quote
        writer.writerow({**row, "description": _no_formula(row["description"])})
        if count % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _no_formula(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def geojson_chunks(rows: Iterable[Mapping[str, Any]], generated_at: datetime) -> Iterator[bytes]:
    """A GeoJSON FeatureCollection (RFC 7946: [lon, lat]) with the licence and the properties' schema, written a
    chunk of ROWS_PER_CHUNK features at a time."""
    head = {
        "type": "FeatureCollection",
        "generated_at": iso(generated_at),
        "licence": LICENCE,
        "schema": EXPORT_COLUMNS,
    }
    opening = json.dumps(head, ensure_ascii=False)[:-1] + ',"features":['
    parts: list[str] = [opening]
    first = True
    for count, row in enumerate(rows, 1):
        feature = {
            "type": "Feature",
            "id": row["report_id"],
            "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
            "properties": dict(row),
        }
        parts.append(("" if first else ",") + json.dumps(feature, ensure_ascii=False, separators=(",", ":")))
        first = False
        if count % ROWS_PER_CHUNK == 0:
            yield "".join(parts).encode("utf-8")
            parts = []
    parts.append("]}")
    yield "".join(parts).encode("utf-8")


class ExportQuery(BaseModel):
    """The query of `GET /api/v1/open-data/reports.{csv,geojson}`: every filter optional."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    start_date: date | None = Field(default=None, description="first Jakarta day included (YYYY-MM-DD)")
    end_date: date | None = Field(default=None, description="last Jakarta day included (YYYY-MM-DD)")
    category: str | None = Field(default=None, max_length=5000)
    status: str | None = Field(default=None, max_length=200)
    kota: str | None = Field(default=None, max_length=100)
    kecamatan: str | None = Field(default=None, max_length=100)
    kelurahan: str | None = Field(default=None, max_length=100)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_absent(cls, value: Any) -> Any:
        return None if value == "" else value


#: the dates a filter may name (reports are no older than the Unix epoch; the last day's end must still exist in UTC)
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(9999, 12, 30)


def export_filter(args: Mapping[str, list[str]], categories: Mapping[str, Category]) -> PublicFilter:
    """The filter of an export's query; a 400 naming the parameter for anything wrong."""
    values: dict[str, str] = {}
    for name, given in args.items():
        if len(given) != 1:
            raise ApiError(400, "invalid_query", f"{name} was given more than once; give one comma list", field=name)
        values[name] = given[0]
    try:
        query = ExportQuery.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        message = "unknown parameter" if first["type"] == "extra_forbidden" else str(first["msg"])
        raise ApiError(400, "invalid_query", f"{field}: {message}", field=field) from None
    codes = None
    if query.category is not None:
        codes = [code.strip() for code in query.category.split(",") if code.strip()]
        unknown = [code for code in codes if code not in categories]
        if unknown:
            raise ApiError(400, "invalid_query", f"unknown category {', '.join(unknown)}", field="category")
    statuses = None
    if query.status is not None:
        statuses = []
        for word in (word.strip() for word in query.status.split(",") if word.strip()):
            if word in STATUSES:
                statuses.append(word)
            elif word in OPEN311_STATUSES:
                statuses.extend(OPEN311_STATUSES[word])
            else:
                raise ApiError(
                    400,
                    "invalid_query",
                    f"unknown status {word!r}: one of {', '.join(STATUSES)}, open or closed",
                    field="status",
                )
    for name, day in (("start_date", query.start_date), ("end_date", query.end_date)):
        # a day's bounds in Jakarta, then in UTC, must exist: beyond these the conversion overflows
        if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
            raise ApiError(400, "invalid_query", f"{name} must be between {EARLIEST_DAY} and {LATEST_DAY}", field=name)
    if query.start_date and query.end_date and query.end_date < query.start_date:
        raise ApiError(400, "invalid_query", "end_date is before start_date", field="end_date")
    start = datetime.combine(query.start_date, time(), JAKARTA_TZ) if query.start_date else None
    # the end day is included: up to the start of the next Jakarta day
    end = (
        datetime.combine(query.end_date + timedelta(days=1), time(), JAKARTA_TZ) - timedelta(microseconds=1)
        if query.end_date
        else None
    )
    return PublicFilter(
        categories=codes,
        statuses=statuses,
        submitted_from=start,
        submitted_until=end,
        kota=query.kota,
        kecamatan=query.kecamatan,
        kelurahan=query.kelurahan,
    )
