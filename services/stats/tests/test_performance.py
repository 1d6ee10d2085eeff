"""Agency performance: the score formula, the ranking threshold and the ways an agency might try to look good."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from services.stats.performance import DEFAULT_TARGET, composite_score, speed
from services.stats.performance import agency_table as table
from services.stats.tests.story import DEADLINE_RULE, T0, Story

LATER = T0 + timedelta(days=30)
_ids = itertools.count(1)


def finished(opd: str, *, respond_h: float = 1.0, work_h: float = 20.0, reopen: bool = False) -> dict[str, Any]:
    story = Story(f"JK-{next(_ids)}").routed(opd).transition("dikerjakan", hours=respond_h)
    story.transition("selesai", hours=work_h)
    if reopen:  # the verification (or the citizen) sends it back: the work was not done
        story.events.append(
            story.events[-1].model_copy(
                update={
                    "event_id": f"reopen-{story.report_id}",
                    "version": story.events[-1].version + 1,
                    "from_status": "selesai",
                    "to_status": "dikerjakan",
                    "occurred_at": story.later(hours=2),
                }
            )
        )
    return story.projection()


def bounced(opd: str, to: str = "kelurahan-melawai", *, after_h: float = 0.1) -> dict[str, Any]:
    return (
        Story(f"JK-{next(_ids)}").routed(opd).transition("koordinasi", hours=after_h, target=to).routed(to).projection()
    )


def rejected(opd: str, *, after_h: float = 0.1) -> dict[str, Any]:
    return Story(f"JK-{next(_ids)}").routed(opd).transition("ditolak", hours=after_h, reason="spam").projection()


def disposed(dinas: str, sudin: str) -> dict[str, Any]:
    story = Story(f"JK-{next(_ids)}").routed(dinas).transition("disposisi", hours=0.5, target=sudin).routed(sudin)
    return story.transition("dikerjakan", hours=1).transition("selesai", hours=10).projection()


def waiting(opd: str) -> dict[str, Any]:
    return Story(f"JK-{next(_ids)}").routed(opd).projection()


def agency_table(rows: list[dict[str, Any]], now: Any = LATER, **kw: Any) -> dict[str, Any]:
    return table(rows, now, deadline_of=DEADLINE_RULE, **kw)


def row_of(result: dict[str, Any], opd: str) -> dict[str, Any]:
    return next(r for r in [*result["ranked"], *result["unranked"]] if r["opd"] == opd)


def test_score_formula() -> None:
    assert composite_score(1, 1, 1, 0, 0, 0) == 100.0
    assert composite_score(None, None, 0, None, None, None) == 0.0
    # bouncing everything at once: on time, never finished, half the score taken for the bounces
    assert composite_score(0, 1, 0, 1, 0, 0) == 15.0
    assert composite_score(0, 1, 0, 0, 1, 0) == 15.0
    assert composite_score(0.8, 0.9, 0.5, 0.1, 0.0, 0.25) == pytest.approx(
        100 * (0.45 * 0.8 + 0.30 * 0.9 + 0.25 * 0.5) * 0.95 * 0.875, abs=0.05
    )


def test_speed_is_half_at_the_target() -> None:
    t = DEFAULT_TARGET.total_seconds()
    assert speed({"median_seconds": t, "p90_seconds": t}, DEFAULT_TARGET) == pytest.approx(0.5)
    assert speed({"median_seconds": 0, "p90_seconds": 0}, DEFAULT_TARGET) == 1.0
    assert speed({"median_seconds": None, "p90_seconds": None}, DEFAULT_TARGET) == 0.0
    # a slow tail costs as much as a slow median
    assert speed({"median_seconds": 0, "p90_seconds": 2 * t}, DEFAULT_TARGET) == pytest.approx(0.5)


def test_one_fast_report_does_not_top_the_table() -> None:
    rows = [finished("kelurahan-cepat", respond_h=0.01, work_h=0.05)]
    rows += [finished("sudin-bina-marga-jakarta-selatan", respond_h=2, work_h=30) for _ in range(25)]
    result = agency_table(rows)
    assert [r["opd"] for r in result["ranked"]] == ["sudin-bina-marga-jakarta-selatan"]
    assert result["ranked"][0]["rank"] == 1
    fast = row_of(result, "kelurahan-cepat")
    assert fast["unranked_reason"] == "fewer than 20 reports" and "rank" not in fast
    assert fast["score"] > result["ranked"][0]["score"]  # it would have won: that is why it is not ranked


def test_min_reports_is_configurable() -> None:
    rows = [finished("a-opd") for _ in range(3)] + [finished("b-opd") for _ in range(2)]
    assert [r["opd"] for r in agency_table(rows, min_reports=3)["ranked"]] == ["a-opd"]
    assert len(agency_table(rows, min_reports=2)["ranked"]) == 2
    assert agency_table(rows, min_reports=2)["min_reports"] == 2


def test_bouncing_reports_does_not_beat_doing_the_work() -> None:
    bouncer = [bounced("sudin-bouncer") for _ in range(20)]
    worker = [finished("sudin-worker", respond_h=20, work_h=60) for _ in range(20)]
    result = agency_table(bouncer + worker)
    b, w = row_of(result, "sudin-bouncer"), row_of(result, "sudin-worker")
    assert b["within_deadline"]["share"] == 1.0 and b["response"]["median_hours"] == pytest.approx(0.1, abs=0.01)
    assert (b["bounce_rate"], b["completion_rate"], b["score"]) == (1.0, 0.0, 15.0)
    assert w["score"] > 60 and result["ranked"][0]["opd"] == "sudin-worker"


def test_rejecting_reports_does_not_beat_doing_the_work() -> None:
    result = agency_table([rejected("kelurahan-a") for _ in range(20)] + [finished("kelurahan-b") for _ in range(20)])
    a = row_of(result, "kelurahan-a")
    assert (a["rejected"], a["rejection_rate"], a["completion_rate"]) == (20, 1.0, 0.0)
    assert a["score"] == 15.0 and result["ranked"][0]["opd"] == "kelurahan-b"


def test_closing_too_early_is_caught_by_reopens() -> None:
    honest = [finished("honest", work_h=30) for _ in range(20)]
    hasty = [finished("hasty", work_h=0.5, reopen=n % 2 == 0) for n in range(20)]
    result = agency_table(honest + hasty)
    h = row_of(result, "hasty")
    assert (h["reopened"], h["reopened_rate"]) == (10, 0.5)
    assert h["completion_rate"] == 0.5  # the reopened ones are not finished
    assert result["ranked"][0]["opd"] == "honest"


def test_disposisi_is_not_a_bounce_and_the_sudin_gets_the_credit() -> None:
    rows = [disposed("bina-marga", "sudin-bina-marga-jakarta-selatan") for _ in range(20)]
    result = agency_table(rows)
    dinas, sudin = row_of(result, "bina-marga"), row_of(result, "sudin-bina-marga-jakarta-selatan")
    assert (dinas["disposisi"], dinas["koordinasi"], dinas["bounce_rate"]) == (20, 0, 0.0)
    assert dinas["completion_rate"] is None  # it had nothing to finish itself
    assert (sudin["received"], sudin["completed"], sudin["completion_rate"]) == (20, 20, 1.0)
    # the Sudin's time runs from when it got the report, not from the submission
    assert sudin["resolution"]["median_hours"] == pytest.approx(11.0, abs=0.01)


def test_reports_not_yet_due_do_not_count_against_completion() -> None:
    rows = [finished("kelurahan-x") for _ in range(10)] + [waiting("kelurahan-x") for _ in range(10)]
    soon = agency_table(rows, now=T0 + timedelta(days=2))
    assert row_of(soon, "kelurahan-x")["completion_rate"] == 1.0
    assert row_of(soon, "kelurahan-x")["open"] == 10
    late = agency_table(rows, now=LATER)  # the deadline of the waiting ones passed
    assert row_of(late, "kelurahan-x")["completion_rate"] == 0.5
    assert row_of(late, "kelurahan-x")["within_deadline"] == {"decided": 20, "within": 10, "share": 0.5}


def test_an_agency_with_nothing_to_judge_yet_has_no_score() -> None:
    result = agency_table([waiting("kelurahan-baru") for _ in range(3)], now=T0 + timedelta(hours=1))
    row = row_of(result, "kelurahan-baru")
    assert (row["score"], row["completion_rate"], row["within_deadline"]["share"]) == (None, None, None)
    assert row_of(agency_table([waiting("kelurahan-baru")]), "kelurahan-baru")["score"] == 0.0  # overdue later


def test_escalations_count_as_missed_deadlines() -> None:
    rows = []
    for _ in range(20):
        story = Story(f"JK-{next(_ids)}", category="sampah").routed("kelurahan-lambat")
        rows.append(story.escalated("kecamatan-kebayoran-baru").routed("kecamatan-kebayoran-baru").projection())
    slow = row_of(agency_table(rows), "kelurahan-lambat")
    assert (slow["escalations"], slow["escalation_rate"], slow["within_deadline"]["share"]) == (20, 1.0, 0.0)


def test_the_triage_desk_is_never_ranked() -> None:
    rows = []
    for _ in range(25):
        story = Story(f"JK-{next(_ids)}", area=None).triage()
        rows.append(
            story.transition("koordinasi", hours=0.5, target="kelurahan-melawai")
            .routed("kelurahan-melawai")
            .projection()
        )
    result = agency_table(rows)
    assert result["ranked"] == [] or all(r["opd"] != "triage" for r in result["ranked"])
    assert row_of(result, "triage")["unranked_reason"].startswith("triage desk")


def test_names_are_added_and_the_formula_is_published() -> None:
    rows = [finished("sudin-x") for _ in range(20)]
    result = agency_table(rows, names={"sudin-x": {"name": "Suku Dinas X", "level": "suku-dinas"}})
    assert result["ranked"][0]["name"] == "Suku Dinas X"
    assert "score = 100" in result["formula"] and result["weights"]["completion"] == 0.45
    assert result["target_hours"] == 72.0
