"""The OpenAPI description of the open interfaces: Open311 GeoReport v2 at /open311/v2 and the open-data exports
(merged into services/intake/openapi.py's document)."""

from __future__ import annotations

from typing import Any

from jaklapor.vocabulary import STATUSES
from services.intake.domain import MAX_PHOTOS_PER_REPORT
from services.intake.nearby import MAX_RADIUS_M
from services.intake.open311 import DEFAULT_PAGE_SIZE, JURISDICTION_ID, MAX_PAGE_SIZE, MEDIA_URL_REFUSED
from services.intake.open_data import EXPORT_COLUMNS, LICENCE
from services.intake.schemas import DESCRIPTION_MAX_CHARS

OPEN311_FORMAT = {
    "name": "format",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "enum": ["xml", "json"]},
    "description": "xml (the spec's required format) or json (its JSON mapping: bare arrays)",
}
JURISDICTION = {
    "name": "jurisdiction_id",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": f"optional: this server serves only {JURISDICTION_ID!r}; another gets 404",
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _open311_answer(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}},
            "text/xml": {"schema": {"type": "string"}},
        },
    }


def _open311_errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "A parameter or field is missing or wrong (the description names it), or media_url was sent",
        403: "api_key missing or not valid (only when OPEN311_API_KEYS is set)",
        404: "Not found: service_code, service_request_id, token, or another jurisdiction_id",
        413: "Request body too large",
        415: "Unsupported media type",
        429: "Too many submissions from this client; see Retry-After",
        503: "A backing store is unavailable; retry later",
    }
    return {str(code): _open311_answer("Open311Errors", reasons[code]) for code in codes}


def open_paths() -> dict[str, Any]:
    requests_params = [
        _query("service_request_id", {"type": "string"}, "comma list of report numbers; overrides every other filter"),
        _query("service_code", {"type": "string"}, "comma list of category codes"),
        _query("status", {"type": "string"}, "comma list: open, closed (or jaklapor's own statuses)"),
        _query("start_date", {"type": "string", "format": "date-time"}, "W3C date-time with a time zone"),
        _query("end_date", {"type": "string", "format": "date-time"}, "at most 90 days after start_date"),
        _query("page", {"type": "integer", "minimum": 1}, "extension: the page, from 1"),
        _query(
            "page_size",
            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
            f"extension: requests per page (default {DEFAULT_PAGE_SIZE})",
        ),
        _query("extensions", {"type": "boolean"}, "extension: jaklapor's status, area and history as notes[]"),
        _query("lat", {"type": "number", "minimum": -90, "maximum": 90}, "extension: centre of a circle"),
        _query("long", {"type": "number", "minimum": -180, "maximum": 180}, "extension: centre of a circle"),
        _query(
            "radius",
            {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_RADIUS_M},
            "metres (default 500)",
        ),
        JURISDICTION,
    ]
    post_fields = {
        "service_code": {"type": "string", "description": "a category code (GET services)"},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "long": {"type": "number", "minimum": -180, "maximum": 180},
        "description": {"type": "string", "minLength": 1, "maxLength": DESCRIPTION_MAX_CHARS},
        "email": {"type": "string", "description": "for notifications only: handed to notify encrypted, never shown"},
        "phone": {"type": "string", "description": "used when no email is given; never shown"},
        "first_name": {"type": "string", "description": "handed to notify with the contact; never shown"},
        "last_name": {"type": "string"},
        "api_key": {"type": "string", "description": "needed only when OPEN311_API_KEYS is set"},
        "jurisdiction_id": {"type": "string"},
        "media_url": {"type": "string", "description": MEDIA_URL_REFUSED},
        "media": {
            "type": "array",
            "maxItems": MAX_PHOTOS_PER_REPORT,
            "items": {"type": "string", "format": "binary"},
            "description": "the photo(s), multipart file parts (GeoReport v2.1 draft), sanitised as the native API's",
        },
    }
    post_body = {
        "type": "object",
        "required": ["service_code", "lat", "long", "description"],
        "properties": post_fields,
    }
    text_fields = {k: v for k, v in post_fields.items() if k != "media"}
    text_body = {"type": "object", "required": post_body["required"], "properties": text_fields}
    export_params = [
        _query("start_date", {"type": "string", "format": "date"}, "first Jakarta day included"),
        _query("end_date", {"type": "string", "format": "date"}, "last Jakarta day included"),
        _query("category", {"type": "string"}, "comma list of category codes"),
        _query("status", {"type": "string"}, f"comma list of {', '.join(STATUSES)}, or open / closed"),
        _query("kota", {"type": "string"}, "kota name as in GET /api/v1/areas"),
        _query("kecamatan", {"type": "string"}, "kecamatan name"),
        _query("kelurahan", {"type": "string"}, "kelurahan name"),
    ]
    return {
        "/open311/discovery.{format}": {
            "get": {
                "operationId": "open311Discovery",
                "tags": ["Open311"],
                "parameters": [OPEN311_FORMAT],
                "responses": {"200": _open311_answer("Open311Discovery", "Where the GeoReport v2 endpoint is")},
            }
        },
        "/open311/v2/services.{format}": {
            "get": {
                "operationId": "open311Services",
                "tags": ["Open311"],
                "description": "The categories as services (private ones too: their reports are never listed)",
                "parameters": [OPEN311_FORMAT, JURISDICTION],
                "responses": {"200": _open311_answer("Open311Services", "The services"), **_open311_errors(400, 404)},
            }
        },
        "/open311/v2/services/{service_code}.{format}": {
            "get": {
                "operationId": "open311ServiceDefinition",
                "tags": ["Open311"],
                "parameters": [
                    {"name": "service_code", "in": "path", "required": True, "schema": {"type": "string"}},
                    OPEN311_FORMAT,
                    JURISDICTION,
                ],
                "responses": {
                    "200": _open311_answer("Open311ServiceDefinition", "No service has attributes"),
                    **_open311_errors(400, 404),
                },
            }
        },
        "/open311/v2/requests.{format}": {
            "get": {
                "operationId": "open311Requests",
                "tags": ["Open311"],
                "description": (
                    "Public reports, newest first; the last 90 days by default. Private categories' reports never;"
                    " locations as published (see the README's visibility rule)"
                ),
                "parameters": [OPEN311_FORMAT, *requests_params],
                "responses": {
                    "200": _open311_answer("Open311Requests", "The service requests"),
                    **_open311_errors(400, 404),
                },
            },
            "post": {
                "operationId": "open311CreateRequest",
                "tags": ["Open311"],
                "description": (
                    "File a report: the native submission (same validation, rate limit, Idempotency-Key header,"
                    " privacy). The answer has service_request_id and token (the tracking token, shown this once)"
                ),
                "parameters": [OPEN311_FORMAT],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": text_body},
                        "multipart/form-data": {"schema": post_body},
                    },
                },
                "responses": {
                    "201": _open311_answer("Open311PostAnswer", "Filed"),
                    **_open311_errors(400, 403, 404, 413, 415, 429, 503),
                },
            },
        },
        "/open311/v2/requests/{service_request_id}.{format}": {
            "get": {
                "operationId": "open311Request",
                "tags": ["Open311"],
                "parameters": [
                    {"name": "service_request_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    OPEN311_FORMAT,
                    _query("extensions", {"type": "boolean"}, "jaklapor's status and history as notes[]"),
                    JURISDICTION,
                ],
                "responses": {
                    "200": _open311_answer("Open311Requests", "The request (a list of one)"),
                    **_open311_errors(400, 404),
                },
            }
        },
        "/open311/v2/tokens/{token}.{format}": {
            "get": {
                "operationId": "open311Token",
                "tags": ["Open311"],
                "parameters": [
                    {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}},
                    OPEN311_FORMAT,
                    JURISDICTION,
                ],
                "responses": {
                    "200": _open311_answer("Open311Tokens", "The report number of a token"),
                    **_open311_errors(400, 404),
                },
            }
        },
        "/api/v1/open-data/reports.{format}": {
            "get": {
                "operationId": "openDataReports",
                "tags": ["Open data"],
                "description": (
                    "Every public report matching the filters, in report-number order, streamed (chunked) as CSV or"
                    f" GeoJSON; licence: {LICENCE['name']} ({LICENCE['url']}, also in the Link header and the GeoJSON"
                    " document). Columns / properties: OpenDataRow. Private categories' reports are never exported;"
                    " locations as published. A CSV description starting with = + - @ gets a leading ' (no formula)"
                ),
                "parameters": [
                    {
                        "name": "format",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": ["csv", "geojson"]},
                    },
                    *export_params,
                ],
                "responses": {
                    "200": {
                        "description": "The export",
                        "content": {
                            "text/csv": {"schema": {"type": "string"}},
                            "application/geo+json": {"schema": {"$ref": "#/components/schemas/OpenDataGeoJson"}},
                        },
                    },
                    "400": {
                        "description": "A filter is wrong; error.field names it",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                },
            }
        },
    }


def open_schemas() -> dict[str, Any]:
    text = {"type": "string", "nullable": True}
    request = {
        "type": "object",
        "required": ["service_request_id", "status", "service_code", "requested_datetime", "lat", "long"],
        "properties": {
            "service_request_id": {"type": "string"},
            "status": {"type": "string", "enum": ["open", "closed"]},
            "status_notes": text,
            "service_name": {"type": "string"},
            "service_code": {"type": "string"},
            "description": {"type": "string"},
            "agency_responsible": text,
            "service_notice": text,
            "requested_datetime": {"type": "string", "format": "date-time"},
            "updated_datetime": {"type": "string", "format": "date-time", "nullable": True},
            "expected_datetime": {"type": "string", "format": "date-time", "nullable": True},
            "address": text,
            "address_id": text,
            "zipcode": text,
            "lat": {"type": "number"},
            "long": {"type": "number"},
            "media_url": text,
            "extended_attributes": {"type": "object", "description": "with extensions=true"},
            "notes": {"type": "array", "items": {"type": "object"}, "description": "with extensions=true"},
        },
    }
    row_types = {"lat": {"type": "number"}, "lon": {"type": "number"}}
    return {
        "Open311Errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "description"],
                "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
            },
        },
        "Open311Discovery": {"type": "object", "required": ["endpoints"]},
        "Open311Services": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["service_code", "service_name", "metadata", "type"],
                "properties": {
                    "service_code": {"type": "string"},
                    "service_name": {"type": "string"},
                    "description": {"type": "string"},
                    "metadata": {"type": "boolean"},
                    "type": {"type": "string", "enum": ["realtime", "batch", "blackbox"]},
                    "keywords": {"type": "string"},
                    "group": {"type": "string"},
                },
            },
        },
        "Open311ServiceDefinition": {
            "type": "object",
            "required": ["service_code", "attributes"],
            "properties": {"service_code": {"type": "string"}, "attributes": {"type": "array", "items": {}}},
        },
        "Open311Requests": {"type": "array", "items": request},
        "Open311PostAnswer": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["service_request_id", "token"],
                "properties": {
                    "service_request_id": {"type": "string"},
                    "token": {"type": "string"},
                    "service_notice": text,
                    "account_id": text,
                },
            },
        },
        "Open311Tokens": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["service_request_id", "token"],
                "properties": {"service_request_id": {"type": "string"}, "token": {"type": "string"}},
            },
        },
        "OpenDataRow": {
            "type": "object",
            "properties": {
                name: {**row_types.get(name, {"type": "string"}), "description": meaning}
                for name, meaning in EXPORT_COLUMNS.items()
            },
        },
        "OpenDataGeoJson": {
            "type": "object",
            "required": ["type", "licence", "features"],
            "properties": {
                "type": {"type": "string", "enum": ["FeatureCollection"]},
                "licence": {"type": "object"},
                "schema": {"type": "object"},
                "features": {"type": "array", "items": {"type": "object"}},
            },
        },
    }
