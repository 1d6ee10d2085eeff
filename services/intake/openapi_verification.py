"""The verifier's API and the verification fields in /openapi.json (services/intake/openapi.py includes them)."""

from __future__ import annotations

from typing import Any

from services.intake.evidence import FAR_METRES, NEAR_METRES, SAME_PHOTO_MAX_BITS, VERDICTS

#: what every public view and work item carries of the verification sub-state
VERIFICATION_PROPERTIES: dict[str, Any] = {
    "pending_verification": {
        "type": "boolean",
        "description": "the OPD reported it done; the city's verifier has not decided yet (status stays dikerjakan, "
        "status_label reads 'Menunggu verifikasi')",
    },
    "work_deadline": {
        "type": "string",
        "format": "date-time",
        "nullable": True,
        "description": "when the OPD must have finished a dikerjakan report sent back to it (verifier refused)",
    },
    "verification": {
        "type": "object",
        "nullable": True,
        "description": "the last completion's verification: state pending, approved or refused (with its reason)",
        "properties": {
            "state": {"type": "string", "enum": ["pending", "approved", "refused"]},
            "submitted_at": {"type": "string", "format": "date-time"},
            "decided_at": {"type": "string", "format": "date-time"},
            "reason": {"type": "string"},
        },
    },
}

EVIDENCE_CHECK: dict[str, Any] = {
    "type": "object",
    "description": (
        f"the automatic check of one evidence photo: near <= {NEAR_METRES:g} m from the report, far > {FAR_METRES:g}"
        f" m; taken after the report (10 min tolerance); same as the citizen's photo: <= {SAME_PHOTO_MAX_BITS} of 64"
        " dHash bits differ. Only the verdict is kept, never the photo's coordinates or timestamps"
    ),
    "properties": {
        "verdicts": {"type": "array", "items": {"type": "string", "enum": list(VERDICTS)}},
        "distance_m": {"type": "number", "nullable": True},
        "taken_after_seconds": {"type": "integer", "nullable": True},
        "citizen_photo_distance": {"type": "integer", "nullable": True},
        "matched": {"type": "boolean"},
        "text": {
            "type": "object",
            "description": "the verdict in words (id, en), e.g. 'diambil 35 m dari lokasi laporan, 2 hari setelah "
            "laporan'",
            "properties": {"id": {"type": "string"}, "en": {"type": "string"}},
        },
    },
}


def verification_schemas() -> dict[str, Any]:
    view = {
        "type": "object",
        "description": "A report as the verifier reads it: the public view and the OPD's completion to decide on",
        "required": ["report_id", "status", "completion"],
        "properties": {
            "report_id": {"type": "string"},
            "status": {"type": "string"},
            "completion": {
                "type": "object",
                "properties": {
                    "opd": {"type": "object"},
                    "note": {"type": "string"},
                    "submitted_at": {"type": "string", "format": "date-time", "nullable": True},
                    "round": {"type": "integer", "description": "1 for the first completion, 2 after a refusal..."},
                    "evidence_photos": {"type": "array", "items": {"type": "string"}},
                    "checks": {"type": "array", "items": {"$ref": "#/components/schemas/EvidenceCheck"}},
                },
            },
        },
    }
    queue = {
        "type": "object",
        "required": ["reports", "count"],
        "properties": {
            "reports": {"type": "array", "items": {"$ref": "#/components/schemas/VerificationView"}},
            "count": {"type": "integer"},
        },
    }
    return {"EvidenceCheck": EVIDENCE_CHECK, "VerificationView": view, "VerificationQueue": queue}


def verifier_paths(
    report_param: dict[str, Any], csrf_header: dict[str, Any], errors: Any, refusals: dict[str, Any]
) -> dict[str, Any]:
    """The verifier's endpoints; `errors(*codes)` and `refusals` are openapi.py's shared answers."""
    security: list[dict[str, list[str]]] = [{"opdKey": []}, {"opdSession": []}]
    forbidden = {
        "403": {
            "description": "`not_a_verifier`: an OPD's key or session (only `jaklapor verifier-key` verifies)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    }

    def view(description: str) -> dict[str, Any]:
        schema = {"$ref": "#/components/schemas/VerificationView"}
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    return {
        "/api/v1/verifier/reports": {
            "get": {
                "operationId": "verificationQueue",
                "description": "The reports of every OPD waiting for verification, the longest waiting first",
                "security": security,
                "responses": {
                    "200": {
                        "description": "the queue",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/VerificationQueue"}}},
                    },
                    **forbidden,
                    **refusals,
                },
            }
        },
        "/api/v1/verifier/reports/{report_id}": {
            "get": {
                "operationId": "verificationReport",
                "security": security,
                "parameters": [report_param],
                "responses": {"200": view("the report and its completion"), **errors(404), **forbidden, **refusals},
            }
        },
        "/api/v1/verifier/reports/{report_id}/approve": {
            "post": {
                "operationId": "approveCompletion",
                "description": "Approve: the report closes as selesai (report_status_changed, actor: the OPD that "
                "did the work). Approving an approved report again answers 200 (a retry)",
                "security": security,
                "parameters": [report_param, csrf_header],
                "responses": {
                    "200": view("the closed report"),
                    **errors(404, 409),
                    **forbidden,
                    **refusals,
                },
            }
        },
        "/api/v1/verifier/reports/{report_id}/refuse": {
            "post": {
                "operationId": "refuseCompletion",
                "description": "Refuse with a reason: back to the same OPD as dikerjakan with a new work_deadline. "
                "The same refusal again answers 200 (a retry); 409 not_pending_verification otherwise",
                "security": security,
                "parameters": [report_param, csrf_header],
                "requestBody": {
                    "required": True,
                    "content": {
                        media: {
                            "schema": {
                                "type": "object",
                                "required": ["reason"],
                                "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 1000}},
                            }
                        }
                        for media in ("application/json", "application/x-www-form-urlencoded")
                    },
                },
                "responses": {
                    "200": view("the report, back with its OPD"),
                    **errors(404, 409, 422),
                    **forbidden,
                    **refusals,
                },
            }
        },
    }
