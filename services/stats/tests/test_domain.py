"""The stats projection folded from real events, and the public summary built from grouped counts."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jaklapor.events import (
    AreaRef,
    Location,
    OpdRef,
    PhotoRef,
    ReportEscalated,
    ReportForwarded,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportUnroutable,
)
from jaklapor.vocabulary import STATUSES, utc
from services.stats.domain import (
    UNKNOWN_KOTA,
    apply_event,
    comparable,
    differences,
    fold,
    headline,
    summarize,
)
from services.stats.tests.story import stories

REPORT = "JK-20261127-000001"
T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
MELAWAI = AreaRef(code="31.74.06.1006", kelurahan="Melawai", kecamatan="Kebayoran Baru", kota="Jakarta Selatan")
BINA_MARGA = OpdRef(code="bina-marga", name="Dinas Bina Marga", level="dinas")
SUDIN = OpdRef(
    code="sudin-bina-marga-jakarta-selatan", name="Suku Dinas Bina Marga Jakarta Selatan", level="suku-dinas"
)


def submitted(**kw: Any) -> ReportSubmitted:
    fields: dict[str, Any] = {
        "report_id": REPORT,
        "version": 1,
        "occurred_at": T0,
        "category": "jalan-rusak",
        "description": "Jalan berlubang",
        "location": Location(lat=-6.2441, lon=106.8013),
        "photos": [PhotoRef(photo_id="p1", url="http://x/api/v1/photos/p1")],
        "submitted_at": T0,
        "tracking_token_hash": "a" * 64,
    }
    return ReportSubmitted(**{**fields, **kw})


def routed(hop: int = 0, opd: OpdRef = BINA_MARGA, **kw: Any) -> ReportRouted:
    fields: dict[str, Any] = {
        "report_id": REPORT,
        "version": 1,
        "occurred_at": T0 + timedelta(seconds=5 + hop),
        "opd": opd,
        "area": MELAWAI,
        "routing_key": f"{opd.code}.jakarta-selatan.kebayoran-baru.melawai",
        "hop": hop,
        "category": "jalan-rusak",
    }
    return ReportRouted(**{**fields, **kw})


def unroutable(hop: int = 0, **kw: Any) -> ReportUnroutable:
    fields: dict[str, Any] = {
        "report_id": REPORT,
        "version": 1,
        "occurred_at": T0 + timedelta(seconds=5),
        "reason": "outside_jakarta",
        "detail": "Lokasi di luar DKI Jakarta",
        "area": None,
        "routing_key": "triage.outside-jakarta",
        "hop": hop,
        "category": "jalan-rusak",
    }
    return ReportUnroutable(**{**fields, **kw})


def changed(version: int, from_status: str, to_status: str, at: datetime, **kw: Any) -> ReportStatusChanged:
    fields: dict[str, Any] = {
        "report_id": REPORT,
        "version": version,
        "occurred_at": at,
        "from_status": from_status,
        "to_status": to_status,
        "actor_opd": "bina-marga",
        "note": "catatan",
        "category": "jalan-rusak",
        "assigned_opd": "bina-marga",
        "area": MELAWAI,
        "submitted_at": T0,
    }
    return ReportStatusChanged(**{**fields, **kw})


# ---- apply_event ----------------------------------------------------------------------------------------------------


def test_submitted_starts_a_menunggu_projection() -> None:
    event = submitted()
    projection = apply_event(None, event)
    assert projection is not None
    assert projection["_id"] == REPORT
    assert (projection["status"], projection["status_version"]) == ("menunggu", 1)
    assert projection["category"] == "jalan-rusak"
    assert projection["submitted_at"] == T0
    assert projection["day"] == "2026-11-27"
    assert projection["facts"]["submitted"]["event_id"] == event.event_id
    assert projection["first_response_at"] is None and projection["resolved_at"] is None


def test_the_same_event_twice_counts_once() -> None:
    event = changed(2, "menunggu", "koordinasi", T0 + timedelta(hours=1), target_opd="perhubungan")
    first = apply_event(apply_event(None, submitted()), event)
    assert first is not None and first["koordinasi_count"] == 1
    assert apply_event(first, event) is None
    # a redelivery is the same event id parsed afresh, not the same object
    assert apply_event(first, ReportStatusChanged.model_validate(event.to_message())) is None
    # a copy published again with a new event id describes the same change (same report version): still once
    copy = ReportStatusChanged.model_validate({**event.to_message(), "event_id": "another-id"})
    assert apply_event(first, copy) is None
    assert first["koordinasi_count"] == 1


def test_apply_event_does_not_modify_its_input() -> None:
    start = apply_event(None, submitted())
    assert start is not None
    snapshot = copy.deepcopy(start)
    apply_event(start, changed(2, "menunggu", "dikerjakan", T0 + timedelta(hours=1)))
    assert start == snapshot


def test_routed_sets_opd_and_area() -> None:
    projection = fold([submitted(), routed()])
    assert projection is not None
    assert projection["opd"] == "bina-marga"
    assert (projection["kota"], projection["kecamatan"], projection["kelurahan"]) == (
        "Jakarta Selatan",
        "Kebayoran Baru",
        "Melawai",
    )
    assert projection["area_code"] == "31.74.06.1006"
    assert projection["status"] == "menunggu"  # routing does not change the official status
    assert projection["hops"][0]["opd"] == "bina-marga"
    assert projection["hops"][0]["assigned_at"] == T0 + timedelta(seconds=5)


def test_an_older_routing_hop_does_not_take_the_report_back() -> None:
    projection = fold([submitted(), routed(hop=1, opd=SUDIN), routed(hop=0)])
    assert projection is not None
    assert (projection["opd"], projection["hop"]) == (SUDIN.code, 1)


def test_an_older_unroutable_does_not_take_the_report_back_to_triage() -> None:
    # hop 0 went to triage, triage handed it over (koordinasi), hop 1 was routed to bina-marga; the hop-0 event is
    # redelivered late
    projection = fold([submitted(), unroutable(hop=0), routed(hop=1)])
    assert projection is not None and projection["opd"] == "bina-marga"
    reordered = fold([submitted(), routed(hop=1), unroutable(hop=0)])
    assert reordered is not None
    assert (reordered["opd"], reordered["hop"]) == ("bina-marga", 1)


def test_unroutable_goes_to_triage_with_its_reason() -> None:
    projection = fold([submitted(), unroutable()])
    assert projection is not None
    assert (projection["opd"], projection["unroutable_reason"]) == ("triage", "outside_jakarta")
    assert projection["kota"] is None  # no area known
    assert projection["status"] == "menunggu"


def test_status_only_moves_forward_by_version() -> None:
    later = T0 + timedelta(hours=2)
    events = [
        submitted(),
        changed(3, "dikerjakan", "selesai", later + timedelta(hours=1)),
        changed(2, "menunggu", "dikerjakan", later),  # delivered late
    ]
    projection = fold(events)
    assert projection is not None
    assert (projection["status"], projection["status_version"]) == ("selesai", 3)


def test_submitted_delivered_after_a_status_change_does_not_reset_status() -> None:
    projection = fold([changed(2, "menunggu", "dikerjakan", T0 + timedelta(hours=1)), submitted()])
    assert projection is not None
    assert (projection["status"], projection["status_version"]) == ("dikerjakan", 2)
    assert projection["submitted_at"] == T0
    assert projection["kota"] == "Jakarta Selatan"  # a status event carries the area too


def test_first_response_and_resolution_times() -> None:
    first = T0 + timedelta(hours=1)
    done = T0 + timedelta(days=2)
    events = [
        submitted(),
        routed(),
        changed(4, "dikerjakan", "selesai", done),
        changed(3, "disposisi", "dikerjakan", first + timedelta(hours=3)),
        changed(2, "menunggu", "disposisi", first, target_opd=SUDIN.code),
    ]
    projection = fold(events)
    assert projection is not None
    assert projection["first_response_at"] == first  # the earliest status change, whatever the delivery order
    assert projection["resolved_at"] == done
    assert projection["resolved_by"] == "bina-marga"
    assert projection["disposisi_count"] == 1 and projection["koordinasi_count"] == 0
    assert projection["status"] == "selesai"


def test_each_hop_records_its_opd_response_and_how_it_ended() -> None:
    disposed = T0 + timedelta(hours=1)
    events = [
        submitted(),
        routed(),
        changed(3, "menunggu", "disposisi", disposed, target_opd=SUDIN.code),
        routed(hop=1, opd=SUDIN, occurred_at=disposed + timedelta(seconds=1)),
        changed(5, "disposisi", "dikerjakan", disposed + timedelta(hours=2)),
        changed(6, "dikerjakan", "selesai", disposed + timedelta(hours=30)),
    ]
    for order in (events, list(reversed(events)), events[3:] + events[:3]):
        projection = fold(order)
        assert projection is not None
        dinas, sudin = projection["hops"]
        assert (dinas["opd"], dinas["first_response"], dinas["ended"]) == ("bina-marga", "disposisi", "disposisi")
        assert dinas["first_response_at"] == disposed and dinas["ended_at"] == disposed
        # its clock starts at the hand-over, when intake let it act, not a second later when routing delivered it
        assert (sudin["hop"], sudin["opd"], sudin["assigned_at"]) == (1, SUDIN.code, disposed)
        assert (sudin["first_response"], sudin["first_response_at"]) == ("dikerjakan", disposed + timedelta(hours=2))
        assert sudin["selesai_at"] == disposed + timedelta(hours=30) and sudin["ended"] is None
        assert (projection["opd"], projection["hop"], projection["status"]) == (SUDIN.code, 1, "selesai")


def test_a_forward_seen_before_its_routing_already_moves_the_report() -> None:
    projection = fold(
        [submitted(), routed(), changed(3, "menunggu", "koordinasi", T0 + timedelta(hours=1), target_opd="dishub")]
    )
    assert projection is not None
    assert (projection["opd"], projection["hop"]) == ("dishub", 1)
    assert projection["hops"][1]["assigned_at"] == T0 + timedelta(hours=1)


def test_ditolak_is_a_response_but_not_a_resolution() -> None:
    rejected_at = T0 + timedelta(minutes=30)
    projection = fold([submitted(), routed(), changed(2, "menunggu", "ditolak", rejected_at, reason="spam")])
    assert projection is not None
    assert (projection["status"], projection["first_response_at"], projection["resolved_at"]) == (
        "ditolak",
        rejected_at,
        None,
    )
    assert projection["rejection_reason"] == "spam"
    assert projection["hops"][0]["rejected"] and projection["hops"][0]["rejection_reason"] == "spam"


def test_reopened_after_selesai_is_counted_against_the_opd_that_closed_it() -> None:
    events = [
        submitted(),
        routed(),
        changed(3, "menunggu", "dikerjakan", T0 + timedelta(hours=1)),
        changed(4, "dikerjakan", "selesai", T0 + timedelta(hours=2)),
        changed(5, "selesai", "dikerjakan", T0 + timedelta(hours=3), actor_opd="verifikator"),
    ]
    projection = fold(events)
    assert projection is not None
    assert (projection["status"], projection["reopened_count"], projection["resolved_at"]) == ("dikerjakan", 1, None)
    assert projection["hops"][0]["reopened"] == 1 and projection["hops"][0]["selesai_count"] == 1
    closed_again = apply_event(projection, changed(6, "dikerjakan", "selesai", T0 + timedelta(hours=9)))
    assert closed_again is not None
    assert (closed_again["status"], closed_again["resolved_at"]) == ("selesai", T0 + timedelta(hours=9))
    assert closed_again["reopened_count"] == 1


def test_escalation_starts_a_hop_and_names_the_missed_deadline() -> None:
    deadline = T0 + timedelta(days=3)
    escalated = ReportEscalated(
        report_id=REPORT,
        version=3,
        occurred_at=deadline + timedelta(minutes=1),
        category="jalan-rusak",
        status="menunggu",
        from_opd="kelurahan-melawai",
        to_opd="kecamatan-kebayoran-baru",
        deadline=deadline,
        hop=1,
        area=MELAWAI,
        submitted_at=T0,
    )
    kelurahan = OpdRef(code="kelurahan-melawai", name="Kelurahan Melawai", level="kelurahan")
    projection = fold([submitted(), routed(opd=kelurahan), escalated])
    assert projection is not None
    first, second = projection["hops"]
    assert (first["ended"], first["deadline"], first["first_response_at"]) == ("escalation", deadline, None)
    assert (second["opd"], second["hop"]) == ("kecamatan-kebayoran-baru", 1)
    assert projection["escalation_count"] == 1 and projection["opd"] == "kecamatan-kebayoran-baru"


def test_naive_stored_times_compare_with_aware_event_times() -> None:
    # a projection read back from Mongo without tz_aware carries naive UTC datetimes
    stored = fold([submitted(), routed(), changed(3, "menunggu", "dikerjakan", T0 + timedelta(hours=1))])
    assert stored is not None
    naive = _naive(stored)
    later = apply_event(naive, changed(4, "dikerjakan", "selesai", T0 + timedelta(hours=5)))
    assert later is not None
    assert utc(later["first_response_at"]) == T0 + timedelta(hours=1)  # kept, not replaced
    assert later["resolved_at"] == T0 + timedelta(hours=5)
    # an earlier aware time wins over a later naive one (compared as UTC, not as local time)
    earlier = apply_event(naive, changed(2, "menunggu", "dikerjakan", T0 + timedelta(minutes=10)))
    assert earlier is not None
    assert earlier["first_response_at"] == T0 + timedelta(minutes=10)


def _naive(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, dict):
        return {k: _naive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_naive(v) for v in value]
    return value


def test_koordinasi_counts_each_handover() -> None:
    events = [
        submitted(),
        changed(2, "menunggu", "koordinasi", T0 + timedelta(hours=1), target_opd="a"),
        changed(3, "koordinasi", "koordinasi", T0 + timedelta(hours=2), target_opd="b"),
    ]
    projection = fold(events)
    assert projection is not None
    assert projection["koordinasi_count"] == 2
    assert [h["opd"] for h in projection["hops"]][1:] == ["a", "b"]


def test_a_forwarded_event_and_its_status_change_are_one_handover() -> None:
    start = fold([submitted(), routed()])
    assert start is not None
    forwarded = ReportForwarded(
        report_id=REPORT,
        version=2,
        category="jalan-rusak",
        description="Jalan berlubang",
        location=Location(lat=-6.2441, lon=106.8013),
        photos=[],
        submitted_at=T0,
        area=MELAWAI,
        from_opd="bina-marga",
        target_opd="perhubungan",
        status="koordinasi",
        note="bukan kami",
        hop=1,
    )
    after = apply_event(start, forwarded)
    assert after is not None
    assert apply_event(after, forwarded) is None
    both = apply_event(after, changed(2, "menunggu", "koordinasi", T0 + timedelta(hours=1), target_opd="perhubungan"))
    assert both is not None
    assert both["koordinasi_count"] == 1 and len(both["hops"]) == 2
    assert (both["opd"], both["hop"], both["status"]) == ("perhubungan", 1, "koordinasi")


# ---- a report's events in any order, and the differences a rebuild reports ----------------------------------------


def test_a_story_folds_to_the_same_projection_in_any_order_and_with_redeliveries() -> None:
    """What a rebuild relies on: intake's replay (in version order) gives what the live, shuffled delivery gave."""
    rng = random.Random(7)
    for story in stories():
        events = [*story.events, *rng.sample(story.events, k=min(3, len(story.events)))]
        rng.shuffle(events)
        live = fold(events)
        in_order = fold(story.events)
        assert differences(live, in_order) == [], story.report_id
        assert comparable(live) == comparable(in_order)


def test_the_stories_cover_every_path() -> None:
    projections = {s.report_id: fold(s.events) for s in stories()}
    assert {p["status"] for p in projections.values() if p} == {
        "selesai",
        "dikerjakan",
        "ditolak",
        "menunggu",
        "koordinasi",
    }
    assert projections["JK-2"]["koordinasi_count"] == 1 and projections["JK-3"]["disposisi_count"] == 1
    assert projections["JK-4"]["rejection_reason"] == "duplikat"
    assert projections["JK-5"]["hops"][0]["opd"] == "triage" and projections["JK-5"]["opd"].startswith("sudin")
    assert projections["JK-6"]["escalation_count"] == 1 and projections["JK-6"]["hops"][0]["ended"] == "escalation"
    assert projections["JK-8"]["reopened_count"] == 1 and projections["JK-8"]["status"] == "selesai"
    assert projections["JK-1"]["hops"][0]["deadline"] == T0 + timedelta(seconds=0.5, days=3)
    assert projections["JK-6"]["hops"][0]["deadline"] == T0 + timedelta(seconds=0.5, days=1)
    assert projections["JK-9"]["escalation_count"] == 1 and projections["JK-9"]["opd"] == "lingkungan-hidup"


def test_differences_name_the_field() -> None:
    live = fold(stories()[0].events)
    assert live is not None
    changed_live = {**live, "status": "dikerjakan"}
    assert differences(changed_live, live) == ["status: live 'dikerjakan' != rebuilt 'selesai'"]
    assert differences(None, live) == ["missing from the live projections"]
    assert differences(live, None) == ["live projection has no report in the report store"]
    # Mongo keeps milliseconds: a rebuild from stored times still agrees with the microsecond event times
    truncated = {**live, "submitted_at": live["submitted_at"].replace(microsecond=0)}
    assert differences({**live, "submitted_at": live["submitted_at"].replace(microsecond=123)}, truncated) == []


# ---- summarize / headline -------------------------------------------------------------------------------------------

GENERATED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NAMES = {"jalan-rusak": "Jalan Rusak", "sampah": "Sampah"}


def test_headline_reads_largest_first_without_zeros() -> None:
    counts = dict.fromkeys(STATUSES, 0) | {"selesai": 96, "koordinasi": 2, "dikerjakan": 1, "ditolak": 1}
    text = headline(counts)
    assert text.startswith("96% selesai, 2% koordinasi, ")
    assert text.count("%") == 4
    assert "menunggu" not in text and "disposisi" not in text


def test_headline_rounds_to_one_decimal_and_handles_no_reports() -> None:
    assert headline({"selesai": 2, "menunggu": 1}) == "66.7% selesai, 33.3% menunggu"
    assert headline({"selesai": 1}) == "100% selesai"
    assert headline(dict.fromkeys(STATUSES, 0)) == "Belum ada laporan"
    assert headline({}) == "Belum ada laporan"


def test_summary_with_no_reports_still_lists_every_status() -> None:
    summary = summarize([], NAMES, GENERATED)
    assert summary["total"] == 0
    assert summary["headline"] == "Belum ada laporan"
    assert list(summary["by_status"]) == list(STATUSES)
    assert all(row["count"] == 0 and row["share"] == 0.0 for row in summary["by_status"].values())
    assert summary["by_category"] == [] and summary["by_kota"] == []
    assert summary["generated_at"] == "2026-11-27T12:00:00Z"


GROUPED = [
    ("selesai", "jalan-rusak", "Jakarta Selatan", 5),
    ("selesai", "sampah", "Jakarta Selatan", 2),
    ("menunggu", "jalan-rusak", "Jakarta Timur", 2),
    ("koordinasi", "sampah", None, 1),
    ("ditolak", None, "Jakarta Timur", 1),
    (None, "jalan-rusak", "Jakarta Selatan", 7),  # not counted yet: ignored
    ("bukan-status", "sampah", "Jakarta Pusat", 3),  # not an official status: ignored
]


def test_summary_by_status_shares_add_up() -> None:
    summary = summarize(GROUPED, NAMES, GENERATED)
    by_status = summary["by_status"]
    assert summary["total"] == 11
    assert list(by_status) == list(STATUSES)
    assert {s: row["count"] for s, row in by_status.items()} == {
        "menunggu": 2,
        "koordinasi": 1,
        "disposisi": 0,
        "dikerjakan": 0,
        "selesai": 7,
        "ditolak": 1,
    }
    assert by_status["selesai"] == {"label": "Selesai", "count": 7, "share": 0.6364, "percent": 63.6}
    assert sum(row["count"] for row in by_status.values()) == summary["total"]
    assert sum(row["share"] for row in by_status.values()) == pytest.approx(1.0, abs=1e-3)
    assert sum(row["percent"] for row in by_status.values()) == pytest.approx(100.0, abs=0.5)
    assert summary["headline"] == "63.6% selesai, 18.2% menunggu, 9.1% koordinasi, 9.1% ditolak"


def test_summary_by_category() -> None:
    rows = summarize(GROUPED, NAMES, GENERATED)["by_category"]
    assert [r["category"] for r in rows] == ["jalan-rusak", "sampah", "(tanpa kategori)"]  # largest first
    jalan, sampah, none = rows
    assert (jalan["name"], jalan["total"], jalan["selesai_percent"]) == ("Jalan Rusak", 7, 71.4)
    assert jalan["by_status"] == dict.fromkeys(STATUSES, 0) | {"selesai": 5, "menunggu": 2}
    assert (sampah["name"], sampah["total"], sampah["share_of_all"]) == ("Sampah", 3, 0.2727)
    assert (none["name"], none["total"], none["selesai_percent"]) == ("(tanpa kategori)", 1, 0.0)
    assert sum(r["total"] for r in rows) == 11
    assert sum(r["share_of_all"] for r in rows) == pytest.approx(1.0, abs=1e-3)


def test_summary_by_kota() -> None:
    rows = summarize(GROUPED, NAMES, GENERATED)["by_kota"]
    assert [(r["kota"], r["total"]) for r in rows] == [("Jakarta Selatan", 7), ("Jakarta Timur", 3), (UNKNOWN_KOTA, 1)]
    assert all("name" not in r for r in rows)
    assert all(list(r["by_status"]) == list(STATUSES) for r in rows)
    assert rows[0]["selesai_percent"] == 100.0
    assert rows[1]["by_status"]["ditolak"] == 1


def test_summary_of_projections_folded_from_events() -> None:
    """The path a user sees: events in, a public sentence out."""
    projection = fold(
        [
            submitted(),
            routed(),
            changed(2, "menunggu", "dikerjakan", T0 + timedelta(hours=1)),
            changed(3, "dikerjakan", "selesai", T0 + timedelta(hours=9)),
        ]
    )
    assert projection is not None
    grouped = [(projection["status"], projection["category"], projection["kota"], 1)]
    summary = summarize(grouped, NAMES, GENERATED)
    assert summary["headline"] == "100% selesai"
    assert summary["by_kota"][0]["kota"] == "Jakarta Selatan"
