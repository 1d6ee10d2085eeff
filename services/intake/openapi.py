"""The gateway's OpenAPI 3 document, served at `/openapi.json` (and used by the fuzz tests)."""

from __future__ import annotations

from typing import Any

from jaklapor.vocabulary import STATUS_LABELS, TARGET_STATUSES
from jaklapor.web import JSON_MAX_DEPTH, TEXT_BODY_MAX_BYTES
from services.intake.domain import MAX_PHOTOS_PER_REPORT, REJECTION_REASONS
from services.intake.nearby import DEFAULT_RADIUS_M, MAX_RADIUS_M, NEARBY_LIMIT
from services.intake.openapi_citizen import citizen_feedback_paths, citizen_feedback_schema
from services.intake.openapi_duplicates import OPD_VIEW_FIELDS, SUMMARY_FIELDS, duplicate_paths, duplicate_schemas
from services.intake.openapi_open import open_paths, open_schemas
from services.intake.openapi_verification import VERIFICATION_PROPERTIES, verification_schemas, verifier_paths
from services.intake.schemas import CONTACT_MAX_CHARS, DESCRIPTION_MAX_CHARS
from services.intake.sessions import CSRF_HEADER, SESSION_COOKIE
from services.intake.worklist import DEFAULT_LIMIT, DIRECTORY_DEFAULT_LIMIT, DIRECTORY_MAX_LIMIT, MAX_LIMIT

ERROR = {"$ref": "#/components/schemas/Error"}


def _error_responses(*codes: int) -> dict[str, Any]:
    reasons = {
        400: (
            "The body cannot be read: `invalid_multipart` (truncated, missing or wrong boundary), `invalid_urlencoded`"
            f" (not UTF-8), `invalid_json` (not JSON, not an object, or nested deeper than {JSON_MAX_DEPTH} levels)"
        ),
        401: "Missing or invalid OPD key",
        404: "Not found (or not assigned to this OPD)",
        409: "Illegal transition or concurrent change",
        413: (
            "Request body too large: above MAX_REQUEST_BYTES (default 32 MiB), or above "
            f"{TEXT_BODY_MAX_BYTES} bytes for a body without files (JSON, urlencoded)"
        ),
        415: "Unsupported media type",
        422: (
            "A field is invalid; `error.field` names it. Also `repeated_field` (a field sent twice), `too_many_files`,"
            " `unexpected_file` (a file under another name), and a photo sent in JSON instead of as a file part"
        ),
        429: "Too many submissions from this client; see Retry-After",
        503: (
            "A backing store is unavailable (`store_unavailable`), or, for a submission, the gateway's backlog is over"
            " its bound (`overloaded`, with Retry-After); nothing was stored: retry later with the same Idempotency-Key"
        ),
    }
    return {
        str(code): {"description": reasons[code], "content": {"application/json": {"schema": ERROR}}} for code in codes
    }


def openapi_document(public_url: str, category_codes: list[str]) -> dict[str, Any]:
    report_fields = {
        "category": {"type": "string", "enum": category_codes, "description": "a code from GET /api/v1/categories"},
        "description": {"type": "string", "minLength": 1, "maxLength": DESCRIPTION_MAX_CHARS},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
        "contact": {
            "type": "string",
            "maxLength": CONTACT_MAX_CHARS,
            "description": "e-mail or phone, for notifications only",
        },
        "photo": {
            "type": "array",
            "maxItems": MAX_PHOTOS_PER_REPORT,
            "items": {"type": "string", "format": "binary"},
            "description": (
                f"up to {MAX_PHOTOS_PER_REPORT} photos, one `photo` file part each (repeat the part), kept in order:"
                " JPEG, PNG or WebP, each at most 10 MiB and 40 MP (channels without a camera may send none)"
            ),
        },
    }
    transition_fields = {
        "status": {"type": "string", "enum": sorted(TARGET_STATUSES)},
        "note": {"type": "string", "maxLength": 2000},
        "target_opd": {"type": "string", "description": "koordinasi: the OPD to hand over to; disposisi: optional"},
        "reason": {"type": "string", "enum": list(REJECTION_REASONS), "description": "ditolak only"},
    }
    token_param = {
        "name": "tracking_token",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "the token returned at submission",
    }
    if_none_match = {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "the ETag of the copy the client holds",
    }
    report_param = {"name": "report_id", "in": "path", "required": True, "schema": {"type": "string"}}
    opd_security: list[dict[str, list[str]]] = [{"opdKey": []}, {"opdSession": []}]
    session_only: list[dict[str, list[str]]] = [{"opdSession": []}]
    csrf_header = {
        "name": CSRF_HEADER,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "with the session cookie: its csrf_token (required to change anything); not with a key",
    }
    opd_refusals = {
        "401": _error(
            "`unauthenticated` (no key, no session), `invalid_key`, or `session_expired` (the cookie's session ended)"
        ),
        "403": _error(
            f"`csrf_failed`: a session's request that changes something without its {CSRF_HEADER}, with another, or"
            " from another Origin"
        ),
        "429": _error("`too_many_failures`: too many wrong keys from this client; see Retry-After"),
    }
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "jaklapor gateway",
            "version": "1",
            "description": "Citizen reports for Jakarta: anonymous submission and tracking, and the OPD API.",
        },
        "servers": [{"url": public_url}],
        "paths": {
            "/api/v1/categories": {
                "get": {
                    "operationId": "listCategories",
                    "responses": {"200": _json("CategoryList", "The report categories")},
                }
            },
            "/api/v1/app-config": {
                "get": {
                    "operationId": "appConfig",
                    "description": (
                        "What a client checks before sending a report (the server checks it all the same): the"
                        " description's length, the photos' number, size and types, the contact's form; the nearby"
                        " search's radius; the map's tiles (MAP_TILE_URL; null: none, draw the boundaries only)"
                    ),
                    "responses": {"200": _json("AppConfig", "The limits and the map's settings")},
                }
            },
            "/api/v1/areas": {
                "get": {
                    "operationId": "listAreas",
                    "description": (
                        "Jakarta's kota, kecamatan and kelurahan (by name at each level), each kelurahan with its"
                        " Kemendagri code and a point inside it: for a kelurahan picker. Cacheable for a day; gzip"
                        " when accepted; ETag / If-None-Match"
                    ),
                    "parameters": [if_none_match],
                    "responses": {
                        "200": _json("AreaTree", "The areas"),
                        "304": {"description": "The client's copy (If-None-Match) is current"},
                    },
                }
            },
            "/api/v1/areas/kelurahan.geojson": {
                "get": {
                    "operationId": "kelurahanBoundaries",
                    "description": (
                        "The 267 kelurahan boundaries simplified for a browser's map (about 50 m; properties: code,"
                        " kelurahan, kecamatan, kota). Cacheable for a day; gzip when accepted; ETag / If-None-Match"
                    ),
                    "parameters": [if_none_match],
                    "responses": {
                        "200": {
                            "description": "A GeoJSON FeatureCollection",
                            "content": {
                                "application/geo+json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["type", "features"],
                                        "properties": {
                                            "type": {"type": "string", "enum": ["FeatureCollection"]},
                                            "features": {"type": "array", "items": {"type": "object"}},
                                        },
                                    }
                                }
                            },
                        },
                        "304": {"description": "The client's copy (If-None-Match) is current"},
                    },
                }
            },
            "/api/v1/reports": {
                "post": {
                    "operationId": "submitReport",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "minLength": 16, "maxLength": 128},
                            "description": "retry with the same key to get the same report back",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "description": (
                            "multipart/form-data with the photos; application/x-www-form-urlencoded or"
                            " application/json (the text fields only) for channels without a camera. Each field once."
                        ),
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["category", "description", "lat", "lon"],
                                    "properties": report_fields,
                                },
                                "encoding": {"photo": {"contentType": "image/jpeg, image/png, image/webp"}},
                            }
                        },
                    },
                    "responses": {
                        "201": _json("Receipt", "Stored; keep the tracking token"),
                        **_error_responses(400, 413, 415, 422, 429, 503),
                    },
                }
            },
            "/api/v1/reports/{tracking_token}": {
                "get": {
                    "operationId": "trackReport",
                    "parameters": [token_param],
                    "responses": {
                        "200": _json("TrackingView", "The report as its citizen sees it"),
                        **_error_responses(404),
                    },
                }
            },
            **citizen_feedback_paths(),
            "/api/v1/reports/nearby": {
                "get": {
                    "operationId": "nearbyReports",
                    "description": (
                        "Open reports (not selesai or ditolak) near a point, nearest first, at most"
                        f" {NEARBY_LIMIT}: public fields only, so a citizen can follow a known problem instead of"
                        " filing it again"
                    ),
                    "parameters": [
                        _query("lat", {"type": "number", "minimum": -90, "maximum": 90}, required=True),
                        _query("lon", {"type": "number", "minimum": -180, "maximum": 180}, required=True),
                        _query(
                            "radius_m",
                            {"type": "integer", "minimum": 1, "maximum": MAX_RADIUS_M, "default": DEFAULT_RADIUS_M},
                            description="metres around the point",
                        ),
                        _query(
                            "category",
                            {"type": "string", "enum": category_codes},
                            description="only reports of this category (a code from GET /api/v1/categories)",
                        ),
                    ],
                    "responses": {
                        "200": _json("NearbyReports", "The open reports within the radius, nearest first"),
                        "400": _error("A query parameter is missing, malformed, out of range or repeated"),
                        "422": _error("`unknown_category`: the category is not a code from GET /api/v1/categories"),
                    },
                }
            },
            "/api/v1/reports/public/{report_id}": {
                "get": {
                    "operationId": "publicReport",
                    "description": "A report and its public history by its number, for anyone following it",
                    "parameters": [
                        {
                            **report_param,
                            "description": "the report number, like JK-20261127-000042",
                        }
                    ],
                    "responses": {
                        "200": _json("PublicReport", "The report as anyone following it sees it"),
                        "400": _error("`invalid_report_number`: not written like JK-20261127-000042"),
                        **_error_responses(404),
                    },
                }
            },
            "/api/v1/photos/{photo_id}": {
                "get": {
                    "operationId": "getPhoto",
                    "parameters": [{"name": "photo_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {
                            "description": "The photo, re-encoded without metadata",
                            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                        },
                        **_error_responses(404, 503),
                    },
                }
            },
            "/api/v1/opd/session": {
                "post": {
                    "operationId": "signIn",
                    "security": [],
                    "description": (
                        "Exchange the agency's key for a workbench session: the answer sets the cookie"
                        f" `{SESSION_COOKIE}` (HttpOnly, SameSite=Strict, Path=/, Secure when PUBLIC_URL is https) and"
                        f" gives the CSRF token every request of the session that changes something sends as"
                        f" `{CSRF_HEADER}`. Wrong keys from one client are counted: past a few, each doubles the wait"
                        " (429 with Retry-After). A browser's Origin, when sent, must be the gateway's own"
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": _sign_in_body()},
                            "application/x-www-form-urlencoded": {"schema": _sign_in_body()},
                        },
                    },
                    "responses": {
                        "201": _json("OpdSession", "Signed in; the cookie is set"),
                        "400": _error("The body cannot be read"),
                        "401": _error("`invalid_key`"),
                        "403": _error("`csrf_failed`: the browser's Origin is another site"),
                        "415": _error("Unsupported media type"),
                        "422": _error("`invalid_field`: `key` is missing or too long"),
                        "429": _error("`too_many_failures`: too many wrong keys from this client; see Retry-After"),
                    },
                },
                "get": {
                    "operationId": "currentSession",
                    "security": session_only,
                    "description": "The cookie's session: its OPD, CSRF token and expiry (moved on by each request)",
                    "responses": {
                        "200": _json("OpdSession", "The session"),
                        "401": _error("`unauthenticated` (no cookie) or `session_expired`"),
                    },
                },
                "delete": {
                    "operationId": "signOut",
                    "security": session_only,
                    "description": "Sign out: the session ends on the server and the cookie is cleared (idempotent)",
                    "parameters": [csrf_header],
                    "responses": {
                        "204": {"description": "Signed out (or no session was open)"},
                        "403": opd_refusals["403"],
                    },
                },
            },
            "/api/v1/opd/me": {
                "get": {
                    "operationId": "whoAmI",
                    "security": opd_security,
                    "responses": {
                        "200": _json("OpdIdentity", "The OPD this key belongs to"),
                        "401": opd_refusals["401"],
                        "429": opd_refusals["429"],
                    },
                }
            },
            "/api/v1/opd/reports": {
                "get": {
                    "operationId": "workList",
                    "security": opd_security,
                    "description": (
                        "The reports this OPD holds now: overdue first (nobody higher to take them), then by response"
                        " deadline (soonest first; none last), then the oldest; a page at a time (`next_cursor`), with"
                        " this OPD's counts per status"
                    ),
                    "parameters": [
                        _query(
                            "status",
                            {"type": "string"},
                            description=(
                                "comma-separated statuses (final ones allowed); default: those not final"
                                f" ({', '.join(s for s in STATUS_LABELS if s not in ('selesai', 'ditolak'))})"
                            ),
                        ),
                        _query("category", {"type": "string", "enum": category_codes}, description="a category code"),
                        _query("kecamatan", {"type": "string"}, description="a kecamatan name, slug or code"),
                        _query("kelurahan", {"type": "string"}, description="a kelurahan name, slug or code"),
                        _query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                            description="reports per page",
                        ),
                        _query("cursor", {"type": "string"}, description="`next_cursor` of the previous page"),
                    ],
                    "responses": {
                        "200": _json("WorkList", "A page of the work list"),
                        "400": _error("`invalid_query`: a parameter is malformed, repeated or names nothing"),
                        **opd_refusals,
                    },
                }
            },
            "/api/v1/opd/reports/counts": {
                "get": {
                    "operationId": "workCounts",
                    "security": opd_security,
                    "responses": {
                        "200": _json("WorkCounts", "This OPD's reports per status, and those overdue"),
                        "401": opd_refusals["401"],
                        "429": opd_refusals["429"],
                    },
                }
            },
            "/api/v1/opd/stream": {
                "get": {
                    "operationId": "workListStream",
                    "security": opd_security,
                    "description": (
                        "Server-Sent Events of this OPD's list. First `ready` {opd, held, counts} (load the list then,"
                        " and again after each reconnect); then `report` {report_id, change: added | updated |"
                        " removed, status, report (a WorkItem; not for removed)} as a report arrives, changes or"
                        " leaves the list (handed over, escalated away, final), each batch followed by `counts`"
                        " (a WorkCounts without opd); `signed_out` before it ends with the session; comments keep it"
                        " open. It ends after OPD_STREAM_MAX_SECONDS (the client reconnects)"
                    ),
                    "responses": {
                        "200": {"description": "The event stream", "content": {"text/event-stream": {}}},
                        "401": opd_refusals["401"],
                        "429": _error(
                            "`too_many_streams` (this OPD has OPD_STREAMS_PER_OPD streams open) or `too_many_failures`"
                        ),
                    },
                }
            },
            "/api/v1/opd/directory": {
                "get": {
                    "operationId": "opdDirectory",
                    "security": opd_security,
                    "description": (
                        "OPDs whose name or code holds every word of `q` (any case, with or without accents): an"
                        " exact code first, then names starting with it, then by name. For a koordinasi's target_opd"
                    ),
                    "parameters": [
                        _query("q", {"type": "string", "maxLength": 100}, description="words of a name or a code"),
                        _query(
                            "level", {"type": "string"}, description="only OPDs of this level (dinas, suku-dinas, …)"
                        ),
                        _query(
                            "limit",
                            {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": DIRECTORY_MAX_LIMIT,
                                "default": DIRECTORY_DEFAULT_LIMIT,
                            },
                        ),
                    ],
                    "responses": {
                        "200": _json("OpdDirectory", "The OPDs found"),
                        "400": _error("`invalid_query`: a parameter is malformed, repeated or an unknown level"),
                        "401": opd_refusals["401"],
                        "429": opd_refusals["429"],
                    },
                }
            },
            "/api/v1/opd/reports/{report_id}": {
                "get": {
                    "operationId": "getAssignedReport",
                    "security": opd_security,
                    "parameters": [report_param],
                    "responses": {
                        "200": _json("OpdReportView", "The report, what this OPD may do with it, reports nearby"),
                        "401": opd_refusals["401"],
                        "429": opd_refusals["429"],
                        **_error_responses(404),
                    },
                }
            },
            "/api/v1/opd/reports/{report_id}/transitions": {
                "post": {
                    "operationId": "transitionReport",
                    "security": opd_security,
                    "parameters": [report_param, csrf_header],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "required": ["status"], "properties": transition_fields}
                            },
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["status"],
                                    "properties": {
                                        **transition_fields,
                                        "photo": {
                                            "type": "string",
                                            "format": "binary",
                                            "description": "the evidence photo (one); required for selesai",
                                        },
                                    },
                                }
                            },
                        },
                    },
                    "responses": {
                        "200": _json("OpdReportView", "The report after the change"),
                        **_error_responses(400, 404, 409, 413, 415, 422, 503),
                        **opd_refusals,
                    },
                }
            },
            **verifier_paths(report_param, csrf_header, _error_responses, opd_refusals),
            "/health": {
                "get": {
                    "operationId": "health",
                    "responses": {"200": {"description": "ok"}, "503": {"description": "a dependency is down"}},
                }
            },
            "/metrics": {
                "get": {"operationId": "metrics", "responses": {"200": {"description": "Prometheus text format"}}}
            },
            # Open311 GeoReport v2 and the open-data exports (services/intake/openapi_open.py)
            **open_paths(),
        },
        "components": {
            "securitySchemes": {
                "opdKey": {"type": "http", "scheme": "bearer", "description": "jaklapor opd-key CODE"},
                "opdSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": f"a workbench session (POST /api/v1/opd/session); changes send {CSRF_HEADER}",
                },
            },
            "schemas": {**_schemas(), **open_schemas()},
        },
    }
    # duplicates (services/intake/openapi_duplicates.py)
    document["paths"].update(duplicate_paths(report_param, token_param, opd_security, csrf_header, opd_refusals))
    document["components"]["schemas"].update(duplicate_schemas())
    return document


def _sign_in_body() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["key"],
        "properties": {"key": {"type": "string", "minLength": 1, "maxLength": 300, "description": "the OPD's key"}},
    }


def _query(name: str, schema: dict[str, Any], required: bool = False, description: str = "") -> dict[str, Any]:
    parameter = {"name": name, "in": "query", "required": required, "schema": schema}
    return {**parameter, "description": description} if description else parameter


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    """An object schema whose every property is present."""
    return {"type": "object", "required": list(properties), "properties": properties}


def _area_level(children: str, child: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["code", "name", children],
        "properties": {
            "code": {"type": "string"},
            "name": {"type": "string"},
            children: {"type": "array", "items": child},
        },
    }


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _schemas() -> dict[str, Any]:
    status = {"type": "string", "enum": list(STATUS_LABELS)}
    opd = {
        "type": "object",
        "properties": {"code": {"type": "string"}, "name": {"type": "string"}, "level": {"type": "string"}},
        "required": ["code", "name", "level"],
    }
    integer = {"type": "integer"}
    summary: dict[str, Any] = {
        "report_id": {"type": "string", "example": "JK-20261128-000042"},
        "category": {"type": "string"},
        "status": status,
        "status_label": {"type": "string"},
        **SUMMARY_FIELDS,
        "description": {"type": "string"},
        "location": {
            "type": "object",
            "required": ["lat", "lon"],
            "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
        },
        "area": {
            "type": "object",
            "nullable": True,
            "description": "the kelurahan once routed (null before, or outside Jakarta)",
            "properties": {name: {"type": "string"} for name in ("code", "kelurahan", "kecamatan", "kota")},
        },
        "submitted_at": {"type": "string", "format": "date-time"},
        "photos": {"type": "array", "items": {"type": "string"}, "description": "photo URLs"},
    }
    view_properties = {
        **summary,
        "responsible_opd": {**opd, "nullable": True},
        "updated_at": {"type": "string", "format": "date-time"},
        "evidence_photos": {"type": "array", "items": {"type": "string"}},
        "history": {"type": "array", "items": {"type": "object"}},
        "response_deadline": {"type": "string", "format": "date-time", "nullable": True},
        "overdue": {"type": "boolean"},
        "escalations": {"type": "integer"},
        "triage_reason": {"type": "string"},
        "version": {"type": "integer"},
        **VERIFICATION_PROPERTIES,
    }
    work_item: dict[str, Any] = {
        **summary,
        "updated_at": {"type": "string", "format": "date-time"},
        "response_deadline": {"type": "string", "format": "date-time", "nullable": True},
        "overdue": {"type": "boolean"},
        "escalations": integer,
        "hop": integer,
        "version": integer,
        **VERIFICATION_PROPERTIES,
    }
    counts: dict[str, Any] = _object(
        by_status={
            "type": "object",
            "required": list(STATUS_LABELS),
            "properties": dict.fromkeys(STATUS_LABELS, integer),
        },
        overdue=integer,
    )
    nearby_item = {
        "type": "object",
        "required": [*summary, "distance_m"],
        "properties": {
            **summary,
            "distance_m": {"type": "integer", "description": "metres from the point asked about"},
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": "string"},
                    },
                }
            },
        },
        "CategoryList": {
            "type": "object",
            "required": ["categories", "groups"],
            "properties": {
                "categories": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["code", "name", "name_en", "description", "group", "response_days"],
                        "properties": {
                            "code": {"type": "string"},
                            "name": {"type": "string"},
                            "name_en": {"type": "string"},
                            "description": {"type": "string"},
                            "group": {"type": "string", "description": "the name of its group in `groups`"},
                            "response_days": {
                                "type": "integer",
                                "description": "days the responsible OPD has to respond",
                            },
                            "visibility": {
                                "type": "string",
                                "enum": ["public", "private"],
                                "description": "private: its reports are never published (see the README)",
                            },
                            "location_precision": {
                                "description": "exact, or 3: public outputs round its reports to 3 decimals",
                            },
                        },
                    },
                },
                "groups": {
                    "type": "array",
                    "description": "the groups a picker shows the categories in, in order",
                    "items": {
                        "type": "object",
                        "required": ["name", "name_en", "categories"],
                        "properties": {
                            "name": {"type": "string", "example": "Jalan & Transportasi"},
                            "name_en": {"type": "string"},
                            "categories": {"type": "array", "items": {"type": "string"}, "description": "codes"},
                        },
                    },
                },
            },
        },
        "Receipt": {
            "type": "object",
            "required": ["report_id", "tracking_token", "status", "tracking_url", "stream_url"],
            "properties": {
                "report_id": {"type": "string", "example": "JK-20261128-000042"},
                "tracking_token": {"type": "string"},
                "status": status,
                "status_label": {"type": "string"},
                "category": {"type": "string"},
                "submitted_at": {"type": "string", "format": "date-time"},
                "tracking_url": {"type": "string"},
                "stream_url": {"type": "string"},
            },
        },
        "OpdIdentity": {"type": "object", "required": ["opd"], "properties": {"opd": opd}},
        "AppConfig": {
            "type": "object",
            "required": ["report", "contact", "nearby", "map"],
            "properties": {
                "report": _object(
                    description_max_chars=integer,
                    max_photos=integer,
                    max_photo_bytes=integer,
                    max_photo_pixels=integer,
                    photo_types={"type": "array", "items": {"type": "string", "example": "image/jpeg"}},
                    stored_photo_max_side=integer,
                    max_request_bytes=integer,
                ),
                "contact": _object(
                    optional={"type": "boolean"},
                    max_chars=integer,
                    kinds={"type": "array", "items": {"type": "string", "enum": ["email", "phone"]}},
                    phone_pattern={"type": "string", "description": "a regular expression, after removing separators"},
                    phone_example={"type": "string"},
                    phone_note={"type": "string"},
                ),
                "nearby": _object(default_radius_m=integer, max_radius_m=integer, limit=integer),
                "map": _object(
                    tile_url={
                        "type": "string",
                        "nullable": True,
                        "description": "an XYZ template ({z}/{x}/{y}); null: no tiles",
                    },
                    tile_attribution={"type": "string", "nullable": True},
                    center=_object(lat={"type": "number"}, lon={"type": "number"}),
                    zoom=integer,
                    areas_url={"type": "string"},
                    boundaries_url={"type": "string"},
                ),
                "stats": _object(
                    url={"type": "string", "nullable": True, "description": "the statistics service's base URL"}
                ),
                "rejection_reasons": {
                    "type": "array",
                    "description": "the reasons an OPD may give for ditolak (the transition's `reason`)",
                    "items": _object(code={"type": "string", "example": "duplikat"}, label={"type": "string"}),
                },
            },
        },
        "AreaTree": {
            "type": "object",
            "required": ["kota"],
            "properties": {
                "kota": {
                    "type": "array",
                    "items": _area_level(
                        "kecamatan",
                        _area_level(
                            "kelurahan",
                            {
                                "type": "object",
                                "required": ["code", "name", "point"],
                                "properties": {
                                    "code": {"type": "string", "example": "31.74.07.1001"},
                                    "name": {"type": "string", "example": "Melawai"},
                                    "point": {
                                        "type": "object",
                                        "description": "a point inside the kelurahan, where a map puts the pin",
                                        "required": ["lat", "lon"],
                                        "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                                    },
                                },
                            },
                        ),
                    ),
                }
            },
        },
        "ReportSummary": {
            "type": "object",
            "description": "What anyone may see of a report",
            "required": list(summary),
            "properties": summary,
        },
        "NearbyReports": {
            "type": "object",
            "required": ["radius_m", "reports"],
            "properties": {
                "radius_m": {"type": "integer"},
                "reports": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": [*summary, "distance_m"],
                        "properties": {
                            **summary,
                            "distance_m": {"type": "integer", "description": "metres from the point asked about"},
                        },
                    },
                },
            },
        },
        "PublicReport": {
            "type": "object",
            "required": ["report_id", "status", "category", "history"],
            "properties": view_properties,
        },
        "OpdSession": _object(
            opd=opd,
            csrf_token={"type": "string", "description": f"send it as {CSRF_HEADER} with every change"},
            expires_at={
                "type": "string",
                "format": "date-time",
                "description": "without a request until then, it ends",
            },
            absolute_expires_at={"type": "string", "format": "date-time", "description": "it ends then at the latest"},
        ),
        "WorkItem": {
            "type": "object",
            "description": "A report in an OPD's work list",
            "required": [*work_item],
            "properties": work_item,
        },
        "WorkList": _object(
            opd=opd,
            reports={"type": "array", "items": {"$ref": "#/components/schemas/WorkItem"}},
            next_cursor={"type": "string", "nullable": True, "description": "the next page's cursor; null: the last"},
            counts=counts,
            filters={"type": "object", "description": "the filters as applied"},
        ),
        "WorkCounts": {
            "type": "object",
            "required": ["opd", "by_status", "overdue"],
            "properties": {"opd": opd, **counts["properties"]},
        },
        "OpdDirectory": _object(
            opds={
                "type": "array",
                "items": _object(
                    code={"type": "string"},
                    name={"type": "string"},
                    level={"type": "string"},
                    kota={"type": "string", "nullable": True, "description": "kota slug; null for city-wide"},
                ),
            }
        ),
        "OpdReportView": {
            "type": "object",
            "description": "The report as the OPD holding it sees it",
            "required": [
                "report_id",
                "status",
                "category",
                "history",
                "hop",
                "allowed_transitions",
                "disposisi_target",
                "nearby",
            ],
            "properties": {
                **view_properties,
                "hop": integer,
                "allowed_transitions": {
                    "type": "array",
                    "items": status,
                    "description": "the statuses this OPD may set now (each with the fields the transition needs)",
                },
                "disposisi_target": {
                    **opd,
                    "nullable": True,
                    "description": "the Suku Dinas a disposisi goes to, when this OPD may dispose the report",
                },
                "nearby": {
                    "type": "array",
                    "description": f"open reports of its category within {DEFAULT_RADIUS_M} m (possible duplicates)",
                    "items": nearby_item,
                },
                **OPD_VIEW_FIELDS,
            },
        },
        **verification_schemas(),
        "TrackingView": {
            "type": "object",
            "description": "The public report, and for its citizen (who holds the token) the live stream's link",
            "required": ["report_id", "status", "category", "history"],
            "properties": {
                **view_properties,
                "stream_url": {"type": "string"},
                "citizen_feedback": citizen_feedback_schema(),
            },
        },
    }


def with_incidents(document: dict[str, Any]) -> dict[str, Any]:
    """The incident endpoints (services/intake/incidents.py) added to the document: surges routing grouped into one
    incident per category and kecamatan; one transition (a report transition's body) moves every member held."""
    paths, schemas = document["paths"], document["components"]["schemas"]
    report_transition = paths["/api/v1/opd/reports/{report_id}/transitions"]["post"]
    refusals = {code: report_transition["responses"][code] for code in ("401", "403", "429")}
    incident_param = {"name": "incident_id", "in": "path", "required": True, "schema": {"type": "string"}}
    not_found = _error("`incident_not_found`: this OPD holds no report of that incident")
    paths["/api/v1/opd/incidents"] = {
        "get": {
            "operationId": "listIncidents",
            "security": report_transition["security"],
            "responses": {
                "200": _json("OpdIncidentList", "The incidents this OPD holds reports of, open ones first"),
                "401": refusals["401"],
                "429": refusals["429"],
            },
        }
    }
    paths["/api/v1/opd/incidents/{incident_id}"] = {
        "get": {
            "operationId": "getIncident",
            "security": report_transition["security"],
            "parameters": [incident_param],
            "responses": {
                "200": _json("OpdIncident", "The incident with the members this OPD holds"),
                "401": refusals["401"],
                "404": not_found,
                "429": refusals["429"],
            },
        }
    }
    paths["/api/v1/opd/incidents/{incident_id}/transitions"] = {
        "post": {
            "operationId": "transitionIncident",
            "security": report_transition["security"],
            "parameters": [incident_param, report_transition["parameters"][1]],
            "requestBody": report_transition["requestBody"],
            "description": (
                "The body of a report's transition, applied to every member this OPD holds, each through its own rules"
                " and history (its citizen is told, statistics count it); one evidence photo stands for all members"
                " closed with it. The outcome per member: `moved`, `unchanged` (already in that status: a retry"
                " changes nothing twice) or `refused` with the error a report's transition would give. When no member"
                " moves and all are refused for one reason, the request is answered with that error instead."
            ),
            "responses": {
                "200": _json("IncidentTransitionResult", "What happened to each member"),
                **_error_responses(400, 409, 413, 415, 422, 503),
                "404": not_found,
                **refusals,
            },
        }
    }
    status = {"type": "string", "enum": list(STATUS_LABELS)}
    integer = {"type": "integer"}
    moment = {"type": "string", "format": "date-time"}
    summary: dict[str, Any] = {
        "incident_id": {"type": "string"},
        "category": {"type": "string"},
        "kecamatan": {"type": "string", "nullable": True},
        "kota": {"type": "string", "nullable": True},
        "member_count": integer,
        "open_count": {**integer, "description": "members not selesai or ditolak"},
        "by_status": {
            "type": "object",
            "required": list(STATUS_LABELS),
            "properties": dict.fromkeys(STATUS_LABELS, integer),
        },
        "opened_at": {**moment, "description": "when the first member held was assigned"},
        "last_member_at": moment,
    }
    work_item = {"$ref": "#/components/schemas/WorkItem"}
    opd = schemas["WorkList"]["properties"]["opd"]
    schemas["OpdIncidentList"] = _object(opd=opd, incidents={"type": "array", "items": _object(**summary)})
    schemas["OpdIncident"] = _object(
        **summary,
        opd=opd,
        allowed_transitions={"type": "array", "items": status, "description": "what at least one member allows"},
        members={
            "type": "array",
            "items": {
                "allOf": [
                    work_item,
                    {"type": "object", "properties": {"allowed_transitions": {"type": "array", "items": status}}},
                ]
            },
        },
    )
    member_outcome = {
        "type": "object",
        "required": ["report_id", "outcome"],
        "properties": {
            "report_id": {"type": "string"},
            "outcome": {"type": "string", "enum": ["moved", "unchanged", "refused"]},
            "status": status,
            "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
        },
    }
    schemas["IncidentTransitionResult"] = _object(
        incident_id={"type": "string"},
        status={"type": "string"},
        moved=integer,
        unchanged=integer,
        refused=integer,
        members={"type": "array", "items": member_outcome},
    )
    return document
