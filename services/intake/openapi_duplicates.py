"""The duplicates' part of the gateway's OpenAPI document (services/intake/duplicates_api.py): supporting a report,
merging and unmerging, and the fields duplicates add to the report views."""

from __future__ import annotations

from typing import Any

from services.intake.schemas import CONTACT_MAX_CHARS

#: fields every report summary carries (services/intake/domain.py report_summary)
SUMMARY_FIELDS: dict[str, Any] = {
    "supporters": {"type": "integer", "description": "people following this report instead of filing it again"},
    "merged_into": {
        "type": "string",
        "nullable": True,
        "description": "the report this one is merged into (it follows that one's status); null if none",
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def duplicate_paths(
    report_param: dict[str, Any],
    token_param: dict[str, Any],
    opd_security: list[dict[str, list[str]]],
    csrf_header: dict[str, Any],
    opd_refusals: dict[str, Any],
) -> dict[str, Any]:
    contact = {"type": "string", "maxLength": CONTACT_MAX_CHARS, "description": "e-mail or phone, for notifications"}
    support_body = {"type": "object", "properties": {"contact": contact}}
    merge_body = {
        "type": "object",
        "required": ["primary_id"],
        "properties": {
            "primary_id": {"type": "string", "description": "the report to merge into, like JK-20261127-000042"},
            "note": {"type": "string", "maxLength": 2000, "description": "for the citizen; a default note if empty"},
        },
    }
    unmerge_body = {"type": "object", "properties": {"note": {"type": "string", "maxLength": 2000}}}

    def bodies(schema: dict[str, Any], required: bool) -> dict[str, Any]:
        return {
            "required": required,
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
            },
        }

    refused = "`{}`".format
    return {
        "/api/v1/reports/public/{report_id}/supporters": {
            "post": {
                "operationId": "supportReport",
                "description": (
                    "Follow and support an open report instead of filing it again: each device counts once per"
                    " report (its own random key in Idempotency-Key, kept only as a hash bound to the report), an"
                    " optional contact receives the report's notifications (handed to notify encrypted; never"
                    " shown). A merged report's support goes to the report it is merged into. Rate limited like"
                    " submissions"
                ),
                "parameters": [
                    {**report_param, "description": "the report number, like JK-20261127-000042"},
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "minLength": 16, "maxLength": 128},
                        "description": "a random value the device keeps and sends with every support",
                    },
                ],
                "requestBody": bodies(support_body, False),
                "responses": {
                    "201": _json("SupportAnswer", "Counted"),
                    "200": _json("SupportAnswer", "This device had supported the report already: counted once"),
                    "400": _error(
                        "`invalid_idempotency_key` (missing or malformed), `invalid_report_number`, or a body that"
                        " cannot be read"
                    ),
                    "404": _error("`report_not_found`"),
                    "409": _error("`report_closed`: selesai or ditolak reports take no supporters"),
                    "415": _error("Unsupported media type"),
                    "422": _error("`invalid_field`: the contact is not an e-mail address or phone number"),
                    "429": _error("Too many requests from this client; see Retry-After"),
                },
            }
        },
        "/api/v1/reports/{tracking_token}/supporters": {
            "post": {
                "operationId": "supportReportByToken",
                "description": "The same support, for a client that has the report's tracking link, not its number",
                "parameters": [
                    token_param,
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "minLength": 16, "maxLength": 128},
                        "description": "a random value the device keeps and sends with every support",
                    },
                ],
                "requestBody": bodies(support_body, False),
                "responses": {
                    "201": _json("SupportAnswer", "Counted"),
                    "200": _json("SupportAnswer", "This device had supported the report already: counted once"),
                    "400": _error("`invalid_idempotency_key`, or a body that cannot be read"),
                    "404": _error("`report_not_found`"),
                    "409": _error("`report_closed`"),
                    "415": _error("Unsupported media type"),
                    "422": _error("`invalid_field`: the contact is not an e-mail address or phone number"),
                    "429": _error("Too many requests from this client; see Retry-After"),
                },
            }
        },
        "/api/v1/opd/reports/{report_id}/merge": {
            "post": {
                "operationId": "mergeReport",
                "description": (
                    "Merge a report this OPD holds (a duplicate) into another open report of its category (the"
                    " primary). From then on it has the primary's status, takes each of its status changes as its own"
                    " (its citizen is told), and leaves the work list. Refusals: "
                    + ", ".join(
                        refused(code)
                        for code in (
                            "primary_not_found",
                            "merge_into_itself",
                            "category_mismatch",
                            "already_merged",
                            "report_closed",
                            "has_merged_reports",
                            "primary_is_merged",
                            "primary_closed",
                        )
                    )
                ),
                "security": opd_security,
                "parameters": [report_param, csrf_header],
                "requestBody": bodies(merge_body, True),
                "responses": {
                    "200": _json("OpdReportView", "The merged report"),
                    "400": _error("The body cannot be read"),
                    "404": _error("`report_not_found` (or not held by this OPD)"),
                    "409": _error("The rules refuse the merge (see the description), or a concurrent change"),
                    "415": _error("Unsupported media type"),
                    "422": _error("A field is invalid (`error.field` names it)"),
                    **opd_refusals,
                },
            }
        },
        "/api/v1/opd/reports/{report_id}/unmerge": {
            "post": {
                "operationId": "unmergeReport",
                "description": (
                    "Undo a merge (a mistake): by the OPD holding the merged report or the one holding its primary."
                    " The report goes back to the status it had when it was merged, in its OPD's work list (a waiting"
                    " status with a new response deadline)"
                ),
                "security": opd_security,
                "parameters": [report_param, csrf_header],
                "requestBody": bodies(unmerge_body, False),
                "responses": {
                    "200": _json("OpdReportView", "The report on its own course again"),
                    "400": _error("The body cannot be read"),
                    "404": _error("`report_not_found` (or neither it nor its primary is held by this OPD)"),
                    "409": _error("`not_merged`, or a concurrent change"),
                    "415": _error("Unsupported media type"),
                    "422": _error("A field is invalid"),
                    **opd_refusals,
                },
            }
        },
    }


def duplicate_schemas() -> dict[str, Any]:
    return {
        "SupportAnswer": {
            "type": "object",
            "required": ["report_id", "supporters", "counted"],
            "properties": {
                "report_id": {"type": "string", "description": "the report supported (a merged one's primary)"},
                "supporters": {"type": "integer"},
                "counted": {"type": "boolean", "description": "false: this device was counted before"},
            },
        }
    }


#: what the OPD's view of a report adds (services/intake/duplicates_api.py)
OPD_VIEW_FIELDS: dict[str, Any] = {
    "merged_reports": {
        "type": "array",
        "description": "reports merged into this one (they follow its status)",
        "items": {"type": "object"},
    },
    "possible_duplicates": {
        "type": "array",
        "description": "routing's suggestions still open: same category, close by, submitted shortly before",
        "items": {"type": "object"},
    },
    "may_merge": {"type": "boolean"},
    "may_unmerge": {"type": "boolean"},
}
