"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2) over jaklapor's reports (no I/O): what each resource
answers, how its query is read, and its errors.

- Categories are services: `service_code` the category code, `service_name` its Indonesian name, `group` its group,
  `keywords` its English name and aliases; no service has attributes (`metadata` false).
- Reports are service requests: `service_request_id` the report number; `status` open or closed (selesai and
  ditolak are closed), `status_notes` the latest public note, `agency_responsible` the OPD holding it,
  `expected_datetime` its deadline, `address` kelurahan, kecamatan and kota, `media_url` its first (sanitised)
  photo; the coordinates as published (services/intake/visibility.py). Date-times are W3C with Jakarta's offset.
- Extensions (as FixMyStreet's and other servers'): `page` / `page_size`; `extensions=true` adds jaklapor's own
  status and every public history entry as `notes`; `lat` / `long` / `radius` (metres) narrow the list to a circle.
- One jurisdiction (JURISDICTION_ID): a request naming another gets the spec's 404; leaving it out is fine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jaklapor.reference import Category
from jaklapor.vocabulary import (
    DIKERJAKAN,
    FINAL_STATUSES,
    JAKARTA_TZ,
    STATUS_LABELS,
    STATUS_LABELS_EN,
    STATUSES,
    WAITING_STATUSES,
    utc,
    utcnow,
)
from services.intake.domain import is_report_number, photo_url
from services.intake.nearby import MAX_RADIUS_M, bounding_box, distance_m
from services.intake.public_reports import PublicFilter
from services.intake.schemas import DESCRIPTION_MAX_CHARS, Latitude, Longitude, _check_text, normalize_contact
from services.intake.visibility import published_location

FORMATS = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
JURISDICTION_ID = "jakarta.go.id"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
#: when this endpoint's behaviour last changed (discovery's changeset)
CHANGESET = "2026-12-03T00:00:00Z"
#: the spec: a date range "may not span more than 90 days", and without one the most recent 90 days are listed
MAX_RANGE = timedelta(days=90)
#: the moments a date filter may name (no report is older than the Unix epoch)
EARLIEST_MOMENT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_MOMENT = datetime(9999, 9, 1, tzinfo=UTC)
DEFAULT_PAGE_SIZE = 100
#: the spec lets a server cap a list at 1000 requests
MAX_PAGE_SIZE = 1000
#: Open311's two statuses and the jaklapor statuses each covers
OPEN311_STATUSES: dict[str, tuple[str, ...]] = {
    "open": tuple(status for status in STATUSES if status not in FINAL_STATUSES),
    "closed": tuple(status for status in STATUSES if status in FINAL_STATUSES),
}


class Open311Error(Exception):
    """An answer in the spec's error format, `[{code, description}]`, with `code` the HTTP status."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description

    def body(self) -> list[dict[str, Any]]:
        return [{"code": self.status, "description": self.description}]


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(400, f"unknown format {fmt!r}: ask for .xml or .json")
    return fmt


def check_jurisdiction(jurisdiction_id: str | None) -> None:
    if jurisdiction_id not in (None, "", JURISDICTION_ID):
        raise Open311Error(
            404,
            f"jurisdiction_id {jurisdiction_id!r} was not found; this server serves only "
            f"{JURISDICTION_ID!r} (it may be left out)",
        )


def w3c(moment: datetime | None) -> str | None:
    """A moment as the spec writes it: W3C date-time with its offset, in Jakarta time (`2026-12-03T08:15:30+07:00`)."""
    if moment is None:
        return None
    return utc(moment).astimezone(JAKARTA_TZ).isoformat(timespec="seconds")


# ---- discovery and services -----------------------------------------------------------------------------------------


def discovery(base_url: str, contact: str) -> dict[str, Any]:
    return {
        "changeset": CHANGESET,
        "contact": contact,
        "key_service": "API keys are not needed to read; see the README for submitting",
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": f"{base_url.rstrip('/')}/open311/v2",
                "changeset": CHANGESET,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }


def service(category: Category) -> dict[str, Any]:
    keywords = [category.name_en, *category.aliases]
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": category.description,
        "metadata": False,
        "type": "realtime",
        "keywords": ", ".join(keywords),
        "group": category.group.name,
    }


def service_list(categories: Mapping[str, Category]) -> list[dict[str, Any]]:
    """Every category a report can be filed in, private ones included (a citizen may file them; their reports are
    not published)."""
    return [service(category) for category in categories.values()]


def service_definition(category: Category) -> dict[str, Any]:
    return {"service_code": category.code, "attributes": []}


# ---- service requests -----------------------------------------------------------------------------------------------


def open311_status(status: str) -> str:
    return "closed" if status in FINAL_STATUSES else "open"


def address_of(area: Mapping[str, Any] | None) -> str | None:
    if not area:
        return None
    return f"Kelurahan {area['kelurahan']}, Kecamatan {area['kecamatan']}, {area['kota']}"


def expected_datetime(report: Mapping[str, Any]) -> datetime | None:
    """When the OPD holding it must act: its response deadline while it waits, its work deadline once sent back."""
    if report["status"] in WAITING_STATUSES:
        deadline: datetime | None = report.get("response_deadline")
        return deadline
    if report["status"] == DIKERJAKAN:
        return report.get("work_deadline")
    return None


def service_request(
    report: Mapping[str, Any], categories: Mapping[str, Category], base_url: str, extensions: bool = False
) -> dict[str, Any]:
    """One report (already known to be public) as a service request."""
    category = categories.get(report["category"])
    location = published_location(report["location"], category)
    history = report.get("history") or []
    opd = report.get("assigned_opd")
    photos = report.get("photos") or []
    request: dict[str, Any] = {
        "service_request_id": report["_id"],
        "status": open311_status(report["status"]),
        "status_notes": history[-1].get("note") or None if history else None,
        "service_name": category.name if category else report["category"],
        "service_code": report["category"],
        "description": report["description"],
        "agency_responsible": opd["name"] if opd else None,
        "service_notice": None,
        "requested_datetime": w3c(report["submitted_at"]),
        "updated_datetime": w3c(report.get("updated_at")),
        "expected_datetime": w3c(expected_datetime(report)),
        "address": address_of(report.get("area")),
        "address_id": None,
        "zipcode": None,
        "lat": location["lat"],
        "long": location["lon"],
        "media_url": photo_url(base_url, photos[0]["photo_id"]) if photos else None,
    }
    if extensions:
        area = report.get("area") or {}
        request["extended_attributes"] = {
            "jaklapor_status": report["status"],
            "jaklapor_status_label": STATUS_LABELS[report["status"]],
            "jaklapor_status_label_en": STATUS_LABELS_EN[report["status"]],
            "agency_code": opd["code"] if opd else None,
            "kelurahan": area.get("kelurahan"),
            "kecamatan": area.get("kecamatan"),
            "kota": area.get("kota"),
            "kelurahan_code": area.get("code"),
            "photos": [photo_url(base_url, photo["photo_id"]) for photo in photos],
            "evidence_photos": [photo_url(base_url, p["photo_id"]) for p in report.get("evidence_photos") or []],
            "public_url": f"{base_url.rstrip('/')}/api/v1/reports/public/{report['_id']}",
        }
        request["notes"] = [
            {
                "type": entry["kind"],
                "datetime": w3c(entry["at"]),
                "status": open311_status(entry["status"]),
                "jaklapor_status": entry["status"],
                "summary": entry.get("note", ""),
                "agency": (entry.get("opd") or {}).get("name") or entry.get("actor_opd"),
            }
            for entry in history
        ]
    return request


def within_circle(report: Mapping[str, Any], lat: float, lon: float, radius_m: float) -> bool:
    """Whether the report's published point (`report` as visibility.for_public returns it) is inside the circle."""
    location = report["location"]
    return distance_m(lat, lon, location["lat"], location["lon"]) <= radius_m


# ---- POST requests ---------------------------------------------------------------------------------------------------


class Open311Submission(BaseModel):
    """The fields of `POST /open311/v2/requests.{format}` jaklapor reads (others, such as device_id, are ignored)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    service_code: str = Field(min_length=1, max_length=100)
    lat: Latitude
    long: Longitude
    description: str = Field(min_length=1, max_length=DESCRIPTION_MAX_CHARS)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=40)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    api_key: str | None = Field(default=None, max_length=300)
    jurisdiction_id: str | None = Field(default=None, max_length=100)
    media_url: str | None = Field(default=None, max_length=2000)

    @field_validator("service_code", "description", "first_name", "last_name")
    @classmethod
    def _text(cls, value: str | None, info: Any) -> str | None:
        return None if value is None else _check_text(value, info.field_name)

    @field_validator("email", "phone")
    @classmethod
    def _contact(cls, value: str | None, info: Any) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return normalize_contact(_check_text(value, info.field_name))
        except ValueError as exc:
            raise ValueError(str(exc).replace("contact", info.field_name, 1)) from None

    @property
    def contact(self) -> str | None:
        """The one contact notify keeps: the e-mail address if given, else the phone number."""
        return self.email or self.phone

    @property
    def name(self) -> str | None:
        return " ".join(part for part in (self.first_name, self.last_name) if part) or None


def parse_submission(fields: Mapping[str, str]) -> Open311Submission:
    if not fields.get("service_code", "").strip():
        raise Open311Error(400, "service_code was not provided")
    if not (fields.get("lat", "").strip() and fields.get("long", "").strip()):
        where = " (address_string and address_id are not enough: jaklapor routes a report by its point)"
        raise Open311Error(
            400,
            "lat and long are required" + (where if fields.get("address_string") or fields.get("address_id") else ""),
        )
    try:
        return Open311Submission.model_validate(fields)
    except ValidationError as exc:
        raise Open311Error(400, _problem(exc)) from None


#: why media_url is refused (docs and the 400 say the same)
MEDIA_URL_REFUSED = (
    "media_url is not accepted: jaklapor does not fetch photos from addresses a client gives (a server-side fetch of "
    "any URL would let a client make the city's servers call internal addresses); send the photo itself as the "
    "multipart/form-data part `media`"
)


# ---- GET requests: the query ---------------------------------------------------------------------------------------


class RequestsQuery(BaseModel):
    """The query of `GET /open311/v2/requests.{format}`."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    service_request_id: str | None = Field(default=None, max_length=10_000)
    service_code: str | None = Field(default=None, max_length=5_000)
    status: str | None = Field(default=None, max_length=200)
    start_date: datetime | None = None
    end_date: datetime | None = None
    jurisdiction_id: str | None = Field(default=None, max_length=100)
    page: int = Field(default=1, ge=1, le=100_000)
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    extensions: bool = False
    lat: Latitude | None = None
    long: Longitude | None = None
    radius: float = Field(default=500, gt=0, le=MAX_RADIUS_M)

    @field_validator("start_date", "end_date")
    @classmethod
    def _zoned(cls, value: datetime | None, info: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{info.field_name} needs a time zone (Z or an offset such as +07:00)")
        # the default range reaches 90 days either side of a given date: it must stay a date in UTC
        if value is not None and not EARLIEST_MOMENT <= value <= LATEST_MOMENT:
            raise ValueError(f"{info.field_name} must be between {EARLIEST_MOMENT.date()} and {LATEST_MOMENT.date()}")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_absent(cls, value: Any) -> Any:
        return None if value == "" else value


@dataclass(frozen=True)
class RequestsPlan:
    """A parsed request-list query: the store filter and the page."""

    filter: PublicFilter
    skip: int
    limit: int
    extensions: bool
    circle: tuple[float, float, float] | None


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def plan_requests(
    args: Mapping[str, list[str]], categories: Mapping[str, Category], now: datetime | None = None
) -> RequestsPlan:
    """Read the request list's query as the spec says: `service_request_id` (comma list) overrides every other filter;
    `service_code` and `status` are comma lists; `start_date` / `end_date` span at most 90 days, the last 90 by
    default."""
    values: dict[str, str] = {}
    for name, given in args.items():
        if len(given) != 1:
            raise Open311Error(400, f"{name} was given more than once; give one comma-separated list")
        values[name] = given[0]
    try:
        query = RequestsQuery.model_validate(values)
    except ValidationError as exc:
        raise Open311Error(400, _problem(exc)) from None
    check_jurisdiction(query.jurisdiction_id)
    skip, limit = (query.page - 1) * query.page_size, query.page_size
    circle = None
    if (query.lat is None) != (query.long is None):
        raise Open311Error(400, "lat and long go together: give both, or neither")
    if query.lat is not None and query.long is not None:
        circle = (query.lat, query.long, query.radius)
    box = bounding_box(*circle) if circle else None

    if query.service_request_id is not None:
        ids = _comma_list(query.service_request_id)
        bad = [rid for rid in ids if not is_report_number(rid)]
        if bad or not ids:
            raise Open311Error(
                400,
                f"service_request_id {', '.join(bad) or '(empty)'}: a report number is written like JK-20261127-000042",
            )
        if len(ids) > MAX_PAGE_SIZE:
            raise Open311Error(400, f"at most {MAX_PAGE_SIZE} service_request_id at once")
        return RequestsPlan(PublicFilter(report_ids=ids), 0, len(ids), query.extensions, None)

    codes: list[str] | None = None
    if query.service_code is not None:
        codes = _comma_list(query.service_code)
        unknown = [code for code in codes if code not in categories]
        if unknown:
            raise Open311Error(400, f"unknown service_code {', '.join(unknown)}; GET services.xml lists them")
    statuses: list[str] | None = None
    if query.status is not None:
        statuses = []
        for word in _comma_list(query.status):
            if word in OPEN311_STATUSES:
                statuses.extend(OPEN311_STATUSES[word])
            elif word in STATUSES:  # jaklapor's own statuses, an extension
                statuses.append(word)
            else:
                raise Open311Error(400, f"unknown status {word!r}: open, closed (or one of {', '.join(STATUSES)})")
    start, end = query.start_date, query.end_date
    if start is not None and end is not None and end < start:
        raise Open311Error(400, "end_date is before start_date")
    if start is not None and end is not None and end - start > MAX_RANGE:
        raise Open311Error(400, "start_date and end_date may not span more than 90 days")
    if start is None and end is None:
        end = now or utcnow()
    if start is None:
        assert end is not None
        start = end - MAX_RANGE
    elif end is None:
        end = start + MAX_RANGE
    return RequestsPlan(
        PublicFilter(categories=codes, statuses=statuses, submitted_from=start, submitted_until=end, box=box),
        skip,
        limit,
        query.extensions,
        circle,
    )


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "request"
    if first["type"] == "missing":
        return f"{field} was not provided"
    message = str(first["msg"]).removeprefix("Value error, ")
    return message if message.startswith(field) else f"{field}: {message}"
