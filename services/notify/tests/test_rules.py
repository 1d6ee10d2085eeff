"""Who is notified of which event, the contact hand-over format, the retry schedule and the retention rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jaklapor.events import (
    Location,
    ReportEscalated,
    ReportForwarded,
    ReportUnroutable,
    parse_event,
)
from services.notify.domain import (
    ContactBundle,
    RetryPolicy,
    contact_purge_due,
    delivery_id,
    notifications_for,
    parse_contact_plaintext,
)
from services.notify.tests.reports import AREA, AT, REPORT, routed, status_changed

NAMES = {
    "kelurahan-melawai": "Kelurahan Melawai",
    "kecamatan-kebayoran-baru": "Kecamatan Kebayoran Baru",
    "sudin-bina-marga-jakarta-selatan": "Suku Dinas Bina Marga Jakarta Selatan",
}


def plan(event: Any) -> list[tuple[str, str, str | None]]:
    return [(n.audience, n.kind, n.opd) for n in notifications_for(event, NAMES.get)]


def forwarded(kind: str) -> ReportForwarded:
    return ReportForwarded(
        report_id=REPORT,
        version=4,
        occurred_at=AT,
        category="sampah",
        description="Sampah menumpuk",
        location=Location(lat=-6.2443, lon=106.8003),
        photos=[],
        submitted_at=AT,
        area=AREA,
        from_opd="kelurahan-melawai",
        target_opd="sudin-bina-marga-jakarta-selatan",
        status="koordinasi",
        note="Perlu alat berat",
        hop=1,
        kind=kind,
    )


def escalated() -> ReportEscalated:
    return ReportEscalated(
        report_id=REPORT,
        version=5,
        occurred_at=AT,
        category="sampah",
        status="menunggu",
        from_opd="kelurahan-melawai",
        to_opd="kecamatan-kebayoran-baru",
        deadline=AT - timedelta(minutes=1),
        hop=1,
        area=AREA,
        submitted_at=AT,
    )


def test_a_new_report_tells_the_citizen_and_the_opd() -> None:
    assert plan(routed()) == [("citizen", "routed", None), ("opd", "report_assigned", "kelurahan-melawai")]
    citizen, opd = notifications_for(routed(), NAMES.get)
    assert citizen.facts["status"] == "menunggu" and citizen.facts["opd_name"] == "Kelurahan Melawai"
    assert opd.facts["response_deadline"] == "2026-11-30T01:02:03Z"
    assert opd.occurred_at == "2026-11-27T01:02:03Z"


def test_a_hand_over_is_told_once_not_again_when_routing_delivers_it() -> None:
    assert plan(routed(hop=1)) == []
    assert plan(forwarded("koordinasi")) == [("opd", "report_forwarded", "sudin-bina-marga-jakarta-selatan")]
    assert plan(forwarded("disposisi")) == [("opd", "report_forwarded", "sudin-bina-marga-jakarta-selatan")]
    # an escalation's forward is told by the escalated event, which names both OPDs
    assert plan(forwarded("escalation")) == []
    (notification,) = notifications_for(forwarded("koordinasi"), NAMES.get)
    assert notification.facts["from_opd"] == "kelurahan-melawai" and notification.facts["note"] == "Perlu alat berat"


def test_every_status_change_tells_the_citizen_only() -> None:
    for status in ("koordinasi", "disposisi", "dikerjakan", "selesai", "ditolak"):
        assert plan(status_changed(status)) == [("citizen", "status_changed", None)]
    (handover,) = notifications_for(status_changed("koordinasi", target_opd="kecamatan-kebayoran-baru"), NAMES.get)
    assert handover.facts["target_opd_name"] == "Kecamatan Kebayoran Baru"
    assert handover.facts["opd_name"] == "Kelurahan Melawai" and handover.facts["note"] == "Petugas menuju lokasi"


def test_an_overdue_report_tells_the_citizen_the_opd_that_missed_it_and_the_one_receiving_it() -> None:
    assert plan(escalated()) == [
        ("citizen", "escalated", None),
        ("opd", "report_overdue", "kelurahan-melawai"),
        ("opd", "report_escalated", "kecamatan-kebayoran-baru"),
    ]
    facts = notifications_for(escalated(), NAMES.get)[0].facts
    assert facts["missed_deadline"] == "2026-11-27T01:01:03Z" and facts["to_opd_name"] == "Kecamatan Kebayoran Baru"


def test_triage_tells_the_citizen_once_and_the_triage_desk_each_time() -> None:
    def unroutable(hop: int) -> ReportUnroutable:
        return ReportUnroutable(
            report_id=REPORT,
            version=2,
            occurred_at=AT,
            reason="outside_jakarta",
            detail="Lokasi di luar DKI Jakarta",
            routing_key="triage.outside_jakarta",
            hop=hop,
            category="sampah",
        )

    assert plan(unroutable(0)) == [("citizen", "triage", None), ("opd", "report_triage", "triage")]
    assert plan(unroutable(1)) == [("opd", "report_triage", "triage")]


def test_unknown_opd_codes_fall_back_to_the_code() -> None:
    (notification,) = notifications_for(status_changed("koordinasi", target_opd="dinas-baru"), {}.get)
    assert notification.facts["target_opd_name"] == "dinas-baru"


def test_facts_are_public_and_json() -> None:
    for event in (routed(), status_changed(), forwarded("koordinasi"), escalated()):
        for notification in notifications_for(parse_event(event.to_message()), NAMES.get):
            text = json.dumps(notification.facts)  # stored as is in the delivery
            assert "description" not in notification.facts and "Sampah menumpuk" not in text


def test_delivery_ids_are_stable_per_event_recipient_and_channel() -> None:
    citizen, opd = notifications_for(routed(), NAMES.get)
    again = notifications_for(parse_event(routed().to_message()), NAMES.get)  # a new event id
    assert delivery_id(citizen, "citizen") == delivery_id(citizen, "citizen")
    assert len({delivery_id(citizen, "citizen"), delivery_id(opd, "webhook"), delivery_id(opd, "email")}) == 3
    assert delivery_id(again[0], "citizen") != delivery_id(citizen, "citizen")
    assert len(delivery_id(opd, "webhook")) == 32


# ---- the contact hand-over ---------------------------------------------------------------------------------------


def test_the_hand_over_carries_the_contact_and_the_tracking_link() -> None:
    plaintext = json.dumps({"contact": "warga@example.org", "tracking_url": "https://lapor.example/api/v1/reports/t"})
    assert parse_contact_plaintext(plaintext) == ContactBundle(
        "warga@example.org", "https://lapor.example/api/v1/reports/t"
    )
    assert parse_contact_plaintext(plaintext).kind == "email"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("plaintext", "expected"),
    [
        ("warga@example.org", ContactBundle("warga@example.org")),  # what intake sent before
        ("+6281234567890", ContactBundle("+6281234567890")),
        ("{weird}@example.org", ContactBundle("{weird}@example.org")),  # a legal address, not JSON
        ('{"contact": "+6281234567890"}', ContactBundle("+6281234567890")),
        ('{"contact": ""}', None),
        ('{"tracking_url": "x"}', None),
        ("", None),
    ],
)
def test_older_and_odd_hand_overs(plaintext: str, expected: ContactBundle | None) -> None:
    assert parse_contact_plaintext(plaintext) == expected


def test_contact_kind() -> None:
    assert ContactBundle("+6281234567890").kind == "phone"
    assert ContactBundle("a@b.org").kind == "email"


# ---- retries -------------------------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base_seconds=30, max_seconds=600, max_attempts=8)
    assert [policy.step(n) for n in range(1, 8)] == [30, 60, 120, 240, 480, 600, 600]


def test_jitter_stays_within_the_upper_half_of_the_step() -> None:
    policy = RetryPolicy(base_seconds=10, max_seconds=1000)
    assert policy.delay(3, rand=lambda: 0.0) == 20.0
    assert policy.delay(3, rand=lambda: 0.999999) == pytest.approx(40.0, abs=1e-4)
    delays = {policy.delay(3) for _ in range(200)}
    assert len(delays) > 100 and all(20.0 <= d <= 40.0 for d in delays), "spread out, never early"


def test_dead_lettered_after_the_last_attempt_or_a_permanent_refusal() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.outcome(n, retryable=True) for n in (1, 2, 3, 4)] == ["retry", "retry", "dead", "dead"]
    assert policy.outcome(1, retryable=False) == "dead"
    assert RetryPolicy(max_attempts=1).outcome(1, retryable=True) == "dead"


def test_default_schedule_spans_hours_not_days() -> None:
    policy = RetryPolicy()
    worst = sum(policy.step(n) for n in range(1, policy.max_attempts))
    assert 3600 < worst < 86400


# ---- retention -----------------------------------------------------------------------------------------------------


def test_contact_is_kept_until_the_retention_period_after_the_final_status() -> None:
    done = datetime(2026, 11, 1, tzinfo=UTC)
    assert not contact_purge_due(None, done + timedelta(days=999), 30, 0), "never while the report is open"
    assert not contact_purge_due(done, done + timedelta(days=29, hours=23), 30, 0)
    assert contact_purge_due(done, done + timedelta(days=30), 30, 0)
    assert contact_purge_due(done, done + timedelta(seconds=3), 2 / 86400, 0), "fractions of a day (tests)"
    assert contact_purge_due(done, done, 0, 0)
    assert contact_purge_due(done, done, -5, 0), "a negative setting means at once, not never"


def test_contact_is_kept_while_a_message_to_it_is_still_on_its_way() -> None:
    done = datetime(2026, 11, 1, tzinfo=UTC)
    assert not contact_purge_due(done, done + timedelta(days=31), 30, pending_deliveries=1)


def test_a_citizen_reopen_tells_the_opd_and_a_confirmation_joins_the_timeline() -> None:
    from datetime import UTC, datetime

    from jaklapor.events import OpdRef, ReportConfirmed, ReportReopened
    from services.notify.domain import OPD, notifications_for, timeline_entry

    at = datetime(2026, 12, 1, tzinfo=UTC)
    reopened = ReportReopened(
        report_id="JK-20261201-000001",
        version=6,
        category="jalan",
        opd=OpdRef(code="bina-marga", name="Dinas Bina Marga", level="dinas"),
        reason="Lubang masih ada",
        selesai_at=at,
        work_deadline=at,
        submitted_at=at,
    )
    (told,) = notifications_for(reopened, lambda code: None)
    assert (told.audience, told.kind, told.opd, told.facts["note"]) == (
        OPD,
        "report_reopened",
        "bina-marga",
        "Lubang masih ada",
    )
    assert timeline_entry(reopened) is None  # the citizen hears of it by its status change
    confirmed = ReportConfirmed(
        report_id="JK-20261201-000001", version=7, category="jalan", rating=4, selesai_at=at, submitted_at=at
    )
    entry = timeline_entry(confirmed)
    assert entry is not None and (entry["kind"], entry["status"], entry["rating"]) == ("confirmed", "selesai", 4)
    assert notifications_for(confirmed, lambda code: None) == []
