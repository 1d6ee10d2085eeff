"""The OpenAPI paths and schemas of the citizen's word on selesai (services/intake/citizen_api.py), merged into the
gateway's document by services/intake/openapi.py."""

from __future__ import annotations

from typing import Any

from services.intake.citizen_feedback import COMMENT_MAX_CHARS, MAX_REOPENS, REASON_MAX_CHARS, REASON_MIN_CHARS

ERROR = {"$ref": "#/components/schemas/Error"}
TOKEN = {"name": "tracking_token", "in": "path", "required": True, "schema": {"type": "string"}}
REFUSALS = (
    "`not_selesai` (the report is not selesai now), `window_closed` (the window after selesai has passed),"
    " `already_confirmed` (confirmed once: no second confirmation, no reopen), `reopen_limit` (reopened"
    f" {MAX_REOPENS} times already), `concurrent_update` (retry)"
)


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _answer(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TrackingView"}}},
    }


def citizen_feedback_paths() -> dict[str, Any]:
    confirm_fields = {
        "rating": {"type": "integer", "minimum": 1, "maximum": 5, "description": "optional: the work, 1 to 5 stars"},
        "comment": {"type": "string", "maxLength": COMMENT_MAX_CHARS, "description": "optional, shown as text"},
    }
    reason = {
        "type": "string",
        "minLength": REASON_MIN_CHARS,
        "maxLength": REASON_MAX_CHARS,
        "description": "why the report is not fixed (shown to the OPD and in the history, as text)",
    }
    return {
        "/api/v1/reports/{tracking_token}/confirm": {
            "post": {
                "operationId": "confirmReport",
                "description": (
                    "The holder of the tracking token confirms a selesai report is fixed, within the window after it"
                    " became selesai (CITIZEN_FEEDBACK_WINDOW_DAYS, default 14 days); once: afterwards it can no"
                    " longer be reopened. A retry with the same rating and comment is answered again"
                    " (Idempotent-Replayed: true). Publishes intake.report_confirmed."
                ),
                "parameters": [TOKEN],
                "requestBody": {
                    "required": False,
                    "description": "JSON or a form; an empty body confirms without a rating",
                    "content": {
                        media: {"schema": {"type": "object", "properties": confirm_fields}}
                        for media in ("application/json", "application/x-www-form-urlencoded")
                    },
                },
                "responses": {
                    "200": _answer("The tracking view, with `citizen_feedback.confirmed`"),
                    "404": _error("No report has this tracking token"),
                    "409": _error(REFUSALS),
                    "415": _error("Unsupported media type"),
                    "422": _error(
                        "`invalid_rating` (not 1 to 5), `invalid_comment`, or another field; `field` names it"
                    ),
                },
            }
        },
        "/api/v1/reports/{tracking_token}/reopen": {
            "post": {
                "operationId": "reopenReport",
                "description": (
                    "The holder of the tracking token says a selesai report is not fixed, within the window after it"
                    " became selesai: it goes back to the OPD holding it as dikerjakan with a rework deadline"
                    f" (`citizen_feedback.work_deadline`, 3 days). At most {MAX_REOPENS} reopens; each selesai opens"
                    " a new window. A retry with the same Idempotency-Key (or, without one, the same reason right"
                    " after) is answered again (Idempotent-Replayed: true). Publishes intake.report_status_changed"
                    " (selesai → dikerjakan, actor_opd `warga`) and intake.report_reopened."
                ),
                "parameters": [
                    TOKEN,
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 16, "maxLength": 128},
                        "description": "retry with the same key to get the same answer, nothing done twice",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "description": "multipart/form-data with the optional photo; or JSON / a form without it",
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["reason"],
                                "properties": {
                                    "reason": reason,
                                    "photo": {
                                        "type": "string",
                                        "format": "binary",
                                        "description": "optional: one photo, cleaned as a submission's",
                                    },
                                },
                            },
                            "encoding": {"photo": {"contentType": "image/jpeg, image/png, image/webp"}},
                        },
                        "application/json": {
                            "schema": {"type": "object", "required": ["reason"], "properties": {"reason": reason}}
                        },
                    },
                },
                "responses": {
                    "200": _answer("The tracking view: status dikerjakan, the reopen in `citizen_feedback.reopens`"),
                    "400": _error("Invalid Idempotency-Key or an unreadable body"),
                    "404": _error("No report has this tracking token"),
                    "409": _error(REFUSALS),
                    "413": _error("Request body too large"),
                    "415": _error("Unsupported media type, or a photo of a type not accepted"),
                    "422": _error("`missing_reason`, `invalid_reason` (length), or a photo refused; `field` names it"),
                    "503": _error("A backing store is unavailable; retry later"),
                },
            }
        },
    }


def citizen_feedback_schema() -> dict[str, Any]:
    """`citizen_feedback` of the tracking view."""
    moment = {"type": "string", "format": "date-time", "nullable": True}
    return {
        "type": "object",
        "description": "What the token's holder may do with a selesai report now, and what they did",
        "properties": {
            "selesai_at": moment,
            "window_ends_at": moment,
            "window_days": {"type": "number"},
            "can_confirm": {"type": "boolean"},
            "can_reopen": {"type": "boolean"},
            "confirmed": {
                "type": "object",
                "nullable": True,
                "properties": {
                    "at": {"type": "string", "format": "date-time"},
                    "rating": {"type": "integer", "nullable": True},
                    "comment": {"type": "string", "nullable": True},
                },
            },
            "reopens": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"at": {"type": "string", "format": "date-time"}, "reason": {"type": "string"}},
                },
            },
            "max_reopens": {"type": "integer"},
            "work_deadline": {**moment, "description": "while dikerjakan after a reopen: when the OPD must finish"},
        },
    }
