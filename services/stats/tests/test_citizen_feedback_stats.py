"""The citizen's word on selesai in the statistics: a reopen counts against the closure it takes back, a rating feeds
the agency's average and its score; both learned from events only (folded in any order, duplicates ignored)."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta
from typing import Any

import pytest

from jaklapor.events import ReportConfirmed, ReportReopened, ReportStatusChanged
from jaklapor.vocabulary import CITIZEN_ACTOR
from services.stats.domain import differences, fold
from services.stats.performance import composite_score
from services.stats.tests.story import T0, Story, opd
from services.stats.tests.test_performance import LATER, agency_table, row_of

_ids = itertools.count(1)


def citizen_reopens(story: Story, *, hours: float = 2.0) -> Story:
    """What intake publishes when the citizen reopens: the status change by "warga" and report_reopened."""
    at = story.later(hours=hours)
    story.version += 1
    common: dict[str, Any] = {
        "report_id": story.report_id,
        "version": story.version,
        "occurred_at": at,
        "category": story.category,
        "area": story.area,
        "submitted_at": story.start,
    }
    story.events.append(
        ReportStatusChanged(
            **common,
            from_status="selesai",
            to_status="dikerjakan",
            actor_opd=CITIZEN_ACTOR,
            note="Dibuka kembali oleh pelapor: masih berlubang",
            assigned_opd=story.assigned,
        )
    )
    story.events.append(
        ReportReopened(
            **common,
            opd=opd(story.assigned or ""),
            reason="masih berlubang",
            selesai_at=at - timedelta(hours=hours),
            work_deadline=at + timedelta(days=3),
        )
    )
    story.status = "dikerjakan"
    return story


def citizen_confirms(story: Story, rating: int | None, *, hours: float = 5.0) -> Story:
    at = story.later(hours=hours)
    story.version += 1
    story.events.append(
        ReportConfirmed(
            report_id=story.report_id,
            version=story.version,
            occurred_at=at,
            category=story.category,
            opd=opd(story.assigned or ""),
            rating=rating,
            selesai_at=at - timedelta(hours=hours),
            area=story.area,
            submitted_at=story.start,
        )
    )
    return story


def closed(code: str) -> Story:
    return Story(f"JK-{next(_ids)}").routed(code).transition("dikerjakan").transition("selesai", hours=10)


def test_a_confirmation_rates_the_hop_that_closed_the_report() -> None:
    story = citizen_confirms(closed("sudin-a"), 4)
    projection = story.projection()
    assert (projection["status"], projection["rating"]) == ("selesai", 4)
    assert projection["hops"][0]["rating"] == 4 and projection["hops"][0]["confirmed_at"] is not None
    # any order, duplicates: the same projection
    shuffled = list(story.events) + list(story.events)
    random.Random(7).shuffle(shuffled)
    assert differences(projection, fold(shuffled)) == []


def test_a_report_without_confirmation_keeps_its_shape() -> None:
    projection = closed("sudin-a").projection()
    assert projection["rating"] is None and "rating" not in projection["hops"][0]


def test_a_citizen_reopen_counts_against_the_closure_and_the_report_is_not_complete() -> None:
    story = citizen_reopens(closed("sudin-a"))
    projection = story.projection()
    assert (projection["status"], projection["reopened_count"], projection["opd"]) == ("dikerjakan", 1, "sudin-a")
    row = row_of(agency_table([projection]), "sudin-a")
    assert (row["completed"], row["closures"], row["reopened"], row["reopened_rate"]) == (0, 1, 1, 1.0)
    # finished again: complete, but one of its two closures was taken back
    story.transition("selesai", hours=4)
    row = row_of(agency_table([story.projection()]), "sudin-a")
    assert (row["completed"], row["closures"], row["reopened"], row["reopened_rate"]) == (1, 2, 1, 0.5)


def test_ratings_give_an_average_per_agency_and_weigh_on_the_score() -> None:
    loved = [citizen_confirms(closed("sudin-loved"), 5).projection() for _ in range(20)]
    hated = [citizen_confirms(closed("sudin-hated"), 1).projection() for _ in range(20)]
    silent = [citizen_confirms(closed("sudin-silent"), None).projection() for _ in range(20)]
    result = agency_table(loved + hated + silent, LATER)
    a, b, c = row_of(result, "sudin-loved"), row_of(result, "sudin-hated"), row_of(result, "sudin-silent")
    assert (a["rating_average"], a["ratings"], a["confirmed"], a["confirmation_rate"]) == (5.0, 20, 20, 1.0)
    assert (b["rating_average"], c["rating_average"], c["ratings"], c["confirmed"]) == (1.0, None, 0, 20)
    # same work: a mean of 1 costs 30 % of the score; confirming without a rating costs nothing
    assert a["score"] == c["score"] and b["score"] == pytest.approx(a["score"] * 0.7, abs=0.1)
    assert [r["opd"] for r in result["ranked"]][-1] == "sudin-hated"
    assert "satisfaction" in result["formula"] and result["weights"]["rating_penalty"] == 0.3


def test_the_score_formula_with_satisfaction() -> None:
    assert composite_score(1, 1, 1, 0, 0, 0, satisfaction=None) == 100.0
    assert composite_score(1, 1, 1, 0, 0, 0, satisfaction=1.0) == 100.0
    assert composite_score(1, 1, 1, 0, 0, 0, satisfaction=0.0) == 70.0
    assert composite_score(1, 1, 1, 0, 0, 0, satisfaction=0.5) == 85.0


def test_closing_early_and_getting_reopened_loses_to_honest_work() -> None:
    honest = [closed("sudin-honest").projection() for _ in range(20)]
    early = [citizen_reopens(closed("sudin-early")).transition("selesai", hours=30).projection() for _ in range(20)]
    result = agency_table(honest + early, T0 + timedelta(days=30))
    assert row_of(result, "sudin-early")["reopened_rate"] == 0.5
    assert row_of(result, "sudin-honest")["score"] > row_of(result, "sudin-early")["score"]
