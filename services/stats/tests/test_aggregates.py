"""Breakdowns, reports per day, durations and deadlines, computed from projections of known reports."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from jaklapor.vocabulary import STATUSES
from services.stats.aggregates import (
    breakdown,
    deadline_share,
    duration_stats,
    durations,
    hop_outcomes,
    per_day,
    percentile,
    status_counts,
)
from services.stats.tests.story import DEADLINE_RULE, T0, Story, stories

LATER = T0 + timedelta(days=30)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return [story.projection() for story in stories()]


def by_id(rows: list[dict[str, Any]], report_id: str) -> dict[str, Any]:
    return next(r for r in rows if r["_id"] == report_id)


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 90) == 7.0
    assert percentile([1, 2, 3, 10], 50) == 2.5
    assert percentile([10, 1, 3, 2], 50) == 2.5  # order of input does not matter
    assert percentile(list(range(1, 11)), 90) == pytest.approx(9.1)
    assert percentile([1, 2], 0) == 1 and percentile([1, 2], 100) == 2


def test_duration_stats_in_seconds_and_hours() -> None:
    assert duration_stats([3600, 7200, 10800]) == {
        "count": 3,
        "median_seconds": 7200.0,
        "p90_seconds": 10080.0,
        "median_hours": 2.0,
        "p90_hours": 2.8,
    }
    assert duration_stats([])["median_hours"] is None


def test_status_counts_and_shares(rows: list[dict[str, Any]]) -> None:
    assert status_counts(rows) == {
        "menunggu": 2,
        "koordinasi": 1,
        "disposisi": 0,
        "dikerjakan": 2,
        "selesai": 3,
        "ditolak": 1,
    }
    result = breakdown(rows, "status")
    assert result["total"] == 9
    selesai = next(r for r in result["rows"] if r["status"] == "selesai")
    assert (selesai["total"], selesai["percent_of_all"], selesai["share_of_all"]) == (3, 33.3, 0.3333)


def test_rows_with_no_status_yet_are_not_counted(rows: list[dict[str, Any]]) -> None:
    routed_only = {"_id": "JK-X", "status": None, "category": "jalan", "hops": []}
    assert breakdown([*rows, routed_only], "category")["total"] == 9


def test_breakdown_by_category_with_names(rows: list[dict[str, Any]]) -> None:
    names = {"jalan": {"name": "Jalan", "name_en": "Roads"}}
    result = breakdown(rows, "category", names)
    assert [(r["category"], r["total"]) for r in result["rows"]] == [
        ("jalan", 5),
        ("penanganan-banjir", 2),
        ("parkir-liar", 1),
        ("pohon", 1),
    ]
    jalan = result["rows"][0]
    assert (jalan["name"], jalan["name_en"]) == ("Jalan", "Roads")
    assert jalan["by_status"] == dict.fromkeys(STATUSES, 0) | {
        "selesai": 2,
        "ditolak": 1,
        "koordinasi": 1,
        "menunggu": 1,
    }
    assert jalan["selesai_percent"] == 40.0
    assert sum(r["share_of_all"] for r in result["rows"]) == pytest.approx(1.0, abs=1e-3)


def test_breakdown_by_area_levels(rows: list[dict[str, Any]]) -> None:
    kota = breakdown(rows, "kota")["rows"]
    assert [(r["kota"], r["total"]) for r in kota] == [
        ("Jakarta Selatan", 8),
        ("(di luar Jakarta / belum diketahui)", 1),
    ]
    kecamatan = breakdown(rows, "kecamatan")["rows"]
    assert (kecamatan[0]["code"], kecamatan[0]["kecamatan"], kecamatan[0]["total"]) == ("31.74.07", "Kebayoran Baru", 7)
    kelurahan = {r["code"]: r for r in breakdown(rows, "kelurahan")["rows"]}
    assert kelurahan["31.74.07.1001"]["kelurahan"] == "Melawai" and kelurahan["31.74.07.1001"]["total"] == 7
    assert kelurahan["31.74.01.1001"]["by_status"]["ditolak"] == 1
    assert kelurahan[None]["kelurahan"] == "(belum diketahui)"


def test_breakdown_by_responsible_opd(rows: list[dict[str, Any]]) -> None:
    names = {"sudin-bina-marga-jakarta-selatan": {"name": "Sudin Bina Marga JS", "level": "suku-dinas"}}
    result = {r["opd"]: r for r in breakdown(rows, "opd", names)["rows"]}
    sudin = result["sudin-bina-marga-jakarta-selatan"]
    # JK-1 and JK-8 (selesai), JK-5 (handed over to it from triage), JK-7 (waiting)
    assert (sudin["total"], sudin["name"], sudin["by_status"]["selesai"]) == (4, "Sudin Bina Marga JS", 2)
    assert result["sudin-perhubungan-jakarta-selatan"]["total"] == 1


def test_unknown_dimension_is_refused(rows: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="unknown dimension"):
        breakdown(rows, "rt-rw")


def test_per_day_in_jakarta_time_with_empty_days(rows: list[dict[str, Any]]) -> None:
    result = per_day(rows, date(2026, 11, 26), date(2026, 11, 29))
    days = {d["day"]: d for d in result["days"]}
    assert list(days) == ["2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29"]
    assert (result["first_day"], result["last_day"]) == ("2026-11-26", "2026-11-29")
    assert days["2026-11-26"]["submitted"] == 0
    assert days["2026-11-27"]["submitted"] == 8 and days["2026-11-28"]["submitted"] == 1  # JK-7, a day later
    assert days["2026-11-28"]["by_status"]["menunggu"] == 1
    # submitted 08:00 WIB: JK-2 done 16:30 and JK-8 19:00 that day; JK-1 after 22 h, at 06:00 the next day
    assert days["2026-11-27"]["selesai_that_day"] == 2 and days["2026-11-28"]["selesai_that_day"] == 1


def test_a_report_submitted_late_evening_utc_counts_on_the_next_jakarta_day() -> None:
    story = Story("JK-NIGHT", start=T0.replace(hour=18))  # 18:00 UTC = 01:00 WIB next day
    result = per_day([story.projection()], date(2026, 11, 27), date(2026, 11, 28))
    assert [d["submitted"] for d in result["days"]] == [0, 1]


def test_durations_overall_from_submission(rows: list[dict[str, Any]]) -> None:
    result = durations(rows, LATER, DEADLINE_RULE)
    overall = result["overall"]
    assert overall["reports"] == 9
    # selesai: JK-1 after 22 h, JK-2 after 8.5 h, JK-8 after 11 h (its last selesai, after the reopen)
    assert overall["selesai"]["count"] == 3
    assert overall["selesai"]["median_hours"] == pytest.approx(11.0, abs=0.01)
    assert overall["first_response"]["count"] == 7  # all but JK-7 (waiting) and JK-9 (nobody answered)
    # JK-4 rejected after 12 min is the quickest first response
    assert overall["first_response"]["median_hours"] == pytest.approx(1.0, abs=0.01)


def test_durations_per_opd_run_from_when_that_opd_got_the_report(rows: list[dict[str, Any]]) -> None:
    result = {r["opd"]: r for r in durations(rows, LATER, DEADLINE_RULE)["by_opd"]}
    perhubungan = result["sudin-perhubungan-jakarta-selatan"]
    # it got JK-2 half an hour after submission, started 3 h later and finished 5 h after that
    assert perhubungan["first_response"]["median_hours"] == pytest.approx(3.0, abs=0.01)
    assert perhubungan["selesai"]["median_hours"] == pytest.approx(8.0, abs=0.01)
    sudin = result["sudin-bina-marga-jakarta-selatan"]
    assert sudin["received"] == 5  # JK-1, JK-2 (handed on), JK-5, JK-7, JK-8
    assert sudin["selesai"]["count"] == 2


def test_durations_per_category(rows: list[dict[str, Any]]) -> None:
    result = {r["category"]: r for r in durations(rows, LATER, DEADLINE_RULE, category_names={})["by_category"]}
    assert result["parkir-liar"]["selesai"]["median_hours"] == pytest.approx(8.5, abs=0.01)
    # both flooding reports escalated; the kecamatan then answered JK-6 in time, nobody answered JK-9
    assert result["penanganan-banjir"]["within_deadline"] == {"decided": 4, "within": 1, "share": 0.25}


def test_deadline_outcomes_of_each_hop(rows: list[dict[str, Any]]) -> None:
    escalated = hop_outcomes(by_id(rows, "JK-6"), LATER, DEADLINE_RULE)
    assert [(o.opd, o.on_time, o.ended) for o in escalated] == [
        ("kelurahan-melawai", False, "escalation"),
        ("kecamatan-kebayoran-baru", True, None),
    ]
    waiting = by_id(rows, "JK-7")
    assert [o.on_time for o in hop_outcomes(waiting, T0 + timedelta(days=1, hours=1), DEADLINE_RULE)] == [None]
    assert [o.on_time for o in hop_outcomes(waiting, LATER, DEADLINE_RULE)] == [False]  # overdue now
    triaged = hop_outcomes(by_id(rows, "JK-5"), LATER, DEADLINE_RULE)
    # the triage desk has no routed deadline: the default rule applies (3 days); it answered in 4 h
    assert (triaged[0].opd, triaged[0].on_time, triaged[0].deadline) == (
        "triage",
        True,
        T0 + timedelta(days=3, seconds=0.5),
    )


def test_share_within_deadline_over_every_hop(rows: list[dict[str, Any]]) -> None:
    outcomes = [o for row in rows for o in hop_outcomes(row, LATER, DEADLINE_RULE)]
    # 14 hops; missed: JK-5 and JK-7 at Sudin Bina Marga (never answered), JK-6 and JK-9 escalated, JK-9 at the top
    assert deadline_share(outcomes) == {"decided": 14, "within": 9, "share": 0.6429}
    assert deadline_share([]) == {"decided": 0, "within": 0, "share": None}
