"""Verified completion in the statistics, with no I/O: the facts stats keeps of intake's verification events, and
what they say of a report (whether its closure's evidence matched, refusals, pending); the public share of closures
whose evidence matched (services/intake/evidence.py decides a match: near the report, taken after it, not the
citizen's own photo). Stats learns it from events only, never from intake's store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jaklapor.events import (
    Event,
    ReportCompletionSubmitted,
    ReportVerificationApproved,
    ReportVerificationRefused,
)
from jaklapor.vocabulary import SELESAI

#: the derived fields of a projection this module adds
EVIDENCE_FIELDS = ("evidence", "verification_refusals", "pending_verification")


def verification_fact(event: Event) -> tuple[str, dict[str, Any]] | None:
    """The key and body of the fact a verification event records; None for other events."""
    base: dict[str, Any] = {"event_id": event.event_id, "version": event.version, "at": event.occurred_at}
    if isinstance(event, ReportCompletionSubmitted):
        return f"completion:{event.version}", {
            **base,
            "kind": "completion",
            "required": event.verification_required,
            "matched": event.evidence_matched,
        }
    if isinstance(event, ReportVerificationApproved):
        return f"approved:{event.version}", {**base, "kind": "verification_approved", "matched": event.evidence_matched}
    if isinstance(event, ReportVerificationRefused):
        return f"refused:{event.version}", {**base, "kind": "verification_refused"}
    return None


def verification_fields(facts: Iterable[Mapping[str, Any]], status: str | None, status_version: int) -> dict[str, Any]:
    """`evidence`: "matched" / "unmatched" for a report closed with checked evidence (the completion that closed it:
    the last one at or before the selesai), None otherwise; how often the verifier refused; whether a completion
    waits for the verifier now."""
    facts = list(facts)
    completions = sorted((f for f in facts if f["kind"] == "completion"), key=lambda f: f["version"])
    refusals = [f for f in facts if f["kind"] == "verification_refused"]
    evidence = None
    if status == SELESAI:
        closing = [f for f in completions if f["version"] <= status_version]
        if closing:
            evidence = "matched" if closing[-1]["matched"] else "unmatched"
    last = completions[-1] if completions else None
    pending = bool(
        last is not None
        and last["required"]
        and last["version"] > status_version
        and not any(f["version"] > last["version"] for f in refusals)
    )
    return {"evidence": evidence, "verification_refusals": len(refusals), "pending_verification": pending}


def evidence_share(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The share of closures whose evidence matched, of the closures with checked evidence (reports closed before
    the checks existed have none and are not counted); refusals and reports pending verification."""
    rows = list(rows)
    checked = [row for row in rows if row.get("evidence") in ("matched", "unmatched")]
    matched = sum(1 for row in checked if row["evidence"] == "matched")
    return {
        "closures_checked": len(checked),
        "evidence_matched": matched,
        "share": round(matched / len(checked), 4) if checked else None,
        "percent": round(100 * matched / len(checked), 1) if checked else None,
        "pending_verification": sum(1 for row in rows if row.get("pending_verification")),
        "verification_refusals": sum(int(row.get("verification_refusals") or 0) for row in rows),
    }
