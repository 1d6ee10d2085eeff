"""Merged reports in the statistics: one problem with N reports counts once (as its primary); the changes a merged
report takes from its primary are not credited to it; an unmerged report counts again with its own course."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from jaklapor.events import ReportMerged, ReportUnmerged
from services.stats.aggregates import durations, status_counts
from services.stats.domain import comparable, deadline_rule, fold
from services.stats.performance import agency_table
from services.stats.tests.test_domain import MELAWAI, REPORT, T0, changed, routed, submitted

PRIMARY = "JK-20261127-000009"
RULE = deadline_rule({})


def merged(version: int, from_status: str, status: str, **kw: Any) -> ReportMerged:
    fields: dict[str, Any] = {
        "report_id": REPORT,
        "version": version,
        "occurred_at": T0 + timedelta(hours=1),
        "primary_id": PRIMARY,
        "actor_opd": "bina-marga",
        "from_status": from_status,
        "status": status,
        "category": "jalan-rusak",
        "area": MELAWAI,
        "submitted_at": T0,
    }
    return ReportMerged(**{**fields, **kw})


def unmerged(version: int, from_status: str, status: str) -> ReportUnmerged:
    return ReportUnmerged(
        report_id=REPORT,
        version=version,
        occurred_at=T0 + timedelta(hours=5),
        primary_id=PRIMARY,
        actor_opd="bina-marga",
        from_status=from_status,
        status=status,
        assigned_opd="bina-marga",
        category="jalan-rusak",
        area=MELAWAI,
        submitted_at=T0,
    )


def merged_story() -> list[Any]:
    """Routed, merged into the primary (dikerjakan there), then the primary's selesai reaches it."""
    return [
        submitted(),
        routed(),
        merged(3, "menunggu", "dikerjakan"),
        changed(4, "dikerjakan", "selesai", T0 + timedelta(hours=3), merged_into=PRIMARY),
    ]


def test_a_merged_report_takes_its_primarys_status_but_not_its_credit() -> None:
    projection = fold(merged_story())
    assert projection is not None
    assert (projection["status"], projection["merged_into"]) == ("selesai", PRIMARY)
    assert projection["resolved_at"] is None and projection["first_response_at"] is None
    (hop,) = projection["hops"]
    assert hop["selesai_count"] == 0 and hop["first_response_at"] is None


def test_the_order_of_delivery_does_not_matter() -> None:
    events = merged_story()
    expected = comparable(fold(events))
    for seed in range(5):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        assert comparable(fold(shuffled)) == expected


def test_merged_reports_are_not_counted_as_problems_nor_in_agency_figures() -> None:
    merged_row = fold(merged_story())
    assert merged_row is not None
    now = T0 + timedelta(days=30)
    assert sum(status_counts([merged_row]).values()) == 0
    assert durations([merged_row], now, RULE)["overall"]["reports"] == 0
    table = agency_table([merged_row], now, deadline_of=RULE, min_reports=1)
    assert not any(row.get("opd") == "bina-marga" for row in table.get("ranked", []) + table.get("unranked", []))


def test_an_unmerged_report_counts_again_with_the_status_it_went_back_to() -> None:
    events = [*merged_story(), unmerged(5, "selesai", "menunggu")]
    projection = fold(events)
    assert projection is not None
    assert (projection["status"], projection["merged_into"], projection["resolved_at"]) == ("menunggu", None, None)
    assert status_counts([projection])["menunggu"] == 1
    # its own later work is its own again
    taken = fold([*events, changed(6, "menunggu", "dikerjakan", T0 + timedelta(hours=6))])
    assert taken is not None and taken["first_response_at"] == T0 + timedelta(hours=6)
