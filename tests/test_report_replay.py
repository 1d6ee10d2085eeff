"""The replay contract between intake and stats, without a broker: the events intake replays from its stored reports,
folded by stats, give the statistics the live events gave (what `jaklapor stats-rebuild` relies on)."""

from __future__ import annotations

import json
import random

from jaklapor.events import ReportEventsPage
from services.intake.replay import replay_page, replay_report
from services.intake.tests.report_story import BASE_URL, report_stories
from services.stats.domain import comparable, differences, fold
from services.stats.rebuild import compare, rebuild_all


def test_the_replayed_events_fold_to_the_live_projection_for_every_kind_of_history() -> None:
    rng = random.Random(7)
    for story in report_stories():
        # live: as delivered, in any order, some twice
        delivered = [*story.events, *rng.sample(story.events, k=min(3, len(story.events)))]
        rng.shuffle(delivered)
        live = fold(delivered)
        rebuilt = fold(replay_report(story.report, BASE_URL))
        assert differences(live, rebuilt) == [], story.report_id
        assert comparable(live) == comparable(rebuilt)


def test_a_page_sent_as_json_rebuilds_every_report() -> None:
    stories = report_stories()
    page = replay_page(sorted((s.report for s in stories), key=lambda r: r["_id"]), 100, BASE_URL)
    received = ReportEventsPage.model_validate(json.loads(json.dumps(page.model_dump(mode="json"))))
    result = rebuild_all(received.reports)
    assert result.failed == {}
    live = {s.report_id: fold(s.events) for s in stories}
    assert compare({k: v for k, v in live.items() if v is not None}, result.rebuilt) == {}
    assert {p["status"] for p in result.rebuilt.values()} == {
        "selesai",
        "dikerjakan",
        "ditolak",
        "menunggu",
        "koordinasi",
    }
    assert (
        result.rebuilt["JK-9"]["escalation_count"] == 1 and result.rebuilt["JK-6"]["hops"][0]["ended"] == "escalation"
    )
