"""Verified completion in the statistics: folded from intake's events, the share of closures whose evidence matched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jaklapor.events import (
    Event,
    Location,
    ReportCompletionSubmitted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportVerificationApproved,
    ReportVerificationRefused,
)
from services.stats.domain import fold
from services.stats.verification import evidence_share

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
COMMON: dict[str, Any] = {"category": "trotoar", "submitted_at": T0}


def submitted(report_id: str) -> ReportSubmitted:
    return ReportSubmitted(
        report_id=report_id,
        version=1,
        occurred_at=T0,
        category="trotoar",
        description="Trotoar rusak",
        location=Location(lat=-6.2, lon=106.8),
        photos=[],
        submitted_at=T0,
        tracking_token_hash="h",
    )


def changed(report_id: str, version: int, to: str, frm: str) -> ReportStatusChanged:
    at = T0 + timedelta(hours=version)
    return ReportStatusChanged(
        report_id=report_id,
        version=version,
        occurred_at=at,
        from_status=frm,
        to_status=to,
        actor_opd="x",
        note="n",
        **COMMON,
    )


def completion(report_id: str, version: int, matched: bool, required: bool = True) -> ReportCompletionSubmitted:
    return ReportCompletionSubmitted(
        report_id=report_id,
        version=version,
        opd="x",
        note="n",
        evidence_matched=matched,
        verification_required=required,
        **COMMON,
    )


def story_refused_then_approved(report_id: str) -> list[Event]:
    return [
        submitted(report_id),
        changed(report_id, 2, "dikerjakan", "menunggu"),
        completion(report_id, 3, matched=False),
        ReportVerificationRefused(
            report_id=report_id,
            version=4,
            opd="x",
            verifier="verifikator",
            reason="foto lama",
            work_deadline=T0 + timedelta(days=3),
            **COMMON,
        ),
        completion(report_id, 5, matched=True),
        changed(report_id, 6, "selesai", "dikerjakan"),
        ReportVerificationApproved(
            report_id=report_id, version=6, opd="x", verifier="verifikator", evidence_matched=True, **COMMON
        ),
    ]


def test_a_closure_counts_the_evidence_of_the_completion_that_closed_it_in_any_order() -> None:
    events = story_refused_then_approved("JK-1")
    for ordering in (events, list(reversed(events))):
        projection = fold(ordering)
        assert projection is not None
        assert (projection["status"], projection["evidence"]) == ("selesai", "matched")
        assert (projection["verification_refusals"], projection["pending_verification"]) == (1, False)


def test_pending_and_exempt_closures() -> None:
    pending = fold([submitted("JK-2"), changed("JK-2", 2, "dikerjakan", "menunggu"), completion("JK-2", 3, True)])
    assert pending is not None and pending["pending_verification"] and pending["evidence"] is None
    exempt = fold(
        [
            submitted("JK-3"),
            changed("JK-3", 2, "dikerjakan", "menunggu"),
            changed("JK-3", 3, "selesai", "dikerjakan"),
            completion("JK-3", 3, matched=False, required=False),
        ]
    )
    assert exempt is not None and (exempt["evidence"], exempt["pending_verification"]) == ("unmatched", False)
    old = fold(
        [submitted("JK-4"), changed("JK-4", 2, "dikerjakan", "menunggu"), changed("JK-4", 3, "selesai", "dikerjakan")]
    )
    assert old is not None and old["evidence"] is None  # closed before the checks existed: not counted

    share = evidence_share([fold(story_refused_then_approved("JK-1")), pending, exempt, old])  # type: ignore[list-item]
    assert share == {
        "closures_checked": 2,
        "evidence_matched": 1,
        "share": 0.5,
        "percent": 50.0,
        "pending_verification": 1,
        "verification_refusals": 1,
    }
