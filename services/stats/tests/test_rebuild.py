"""`jaklapor stats-rebuild`: the projections rebuilt from the events intake replays equal the live ones; the command
pages through intake's replay and writes only stats' own store."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pymongo
import pytest
from nameko.exceptions import UnknownService

from devtools.mongo_standin import MongoStandIn
from jaklapor.events import ReportEvents, ReportEventsPage, ReportRouted
from services.stats.dependencies import ProjectionRepository
from services.stats.domain import apply_event
from services.stats.rebuild import (
    ReplayCall,
    ReplayUnavailable,
    compare,
    rebuild_all,
    rebuild_command,
    replayed_reports,
)
from services.stats.tests.story import DEADLINE_RULE, T0, Story, stories


def replayed(story: Story) -> ReportEvents:
    """A report as intake's replay sends it: its events as messages."""
    return ReportEvents(report_id=story.report_id, events=[event.to_message() for event in story.events])


def live_projections() -> dict[str, dict[str, Any]]:
    return {story.report_id: story.projection() for story in stories()}


def intake_pages(reports: list[ReportEvents]) -> ReplayCall:
    """intake's replay_events over a fixed set of reports, in id order, with its paging."""
    ordered = sorted(reports, key=lambda r: r.report_id)

    def call(after: str | None, limit: int) -> dict[str, Any]:
        rest = [r for r in ordered if after is None or r.report_id > after]
        page = rest[:limit]
        next_after = page[-1].report_id if len(page) == limit else None
        return ReportEventsPage(reports=page, next_after=next_after).model_dump(mode="json")

    return call


def test_rebuild_all_equals_the_live_fold_for_every_story() -> None:
    result = rebuild_all([replayed(s) for s in stories()], DEADLINE_RULE)
    assert result.failed == {}
    assert compare(live_projections(), result.rebuilt) == {}


def test_compare_lists_missing_extra_and_different_reports() -> None:
    live = live_projections()
    rebuilt = rebuild_all([replayed(s) for s in stories()], DEADLINE_RULE).rebuilt
    live["JK-1"] = {**live["JK-1"], "status": "dikerjakan"}
    del live["JK-2"]
    rebuilt.pop("JK-3")
    found = compare(live, rebuilt)
    assert found == {
        "JK-1": ["status: live 'dikerjakan' != rebuilt 'selesai'"],
        "JK-2": ["missing from the live projections"],
        "JK-3": ["live projection has no report in the report store"],
    }


def test_a_report_intake_could_not_replay_is_reported_not_fatal() -> None:
    broken = ReportEvents(report_id="JK-BROKEN", events=[], error="KeyError: 'submitted_at'")
    malformed = ReportEvents(report_id="JK-ODD", events=[{"event_type": "intake.report_commented"}])
    result = rebuild_all([broken, malformed, replayed(stories()[0])], DEADLINE_RULE)
    assert result.failed == {
        "JK-BROKEN": "KeyError: 'submitted_at'",
        "JK-ODD": "ValueError: unknown event_type 'intake.report_commented'",
    }
    assert list(result.rebuilt) == ["JK-1"]


def test_a_routing_result_without_its_deadline_gets_routing_rule_back() -> None:
    story = Story("JK-OLD").routed("sudin-bina-marga-jakarta-selatan")
    routed = next(e for e in story.events if isinstance(e, ReportRouted))
    old = ReportEvents(
        report_id="JK-OLD",
        events=[
            e.to_message() if e is not routed else routed.model_copy(update={"response_deadline": None}).to_message()
            for e in story.events
        ],
    )
    rebuilt = rebuild_all([old], DEADLINE_RULE).rebuilt["JK-OLD"]
    assert rebuilt["hops"][0]["deadline"] == T0 + timedelta(seconds=0.5, days=3)
    assert compare({"JK-OLD": story.projection()}, {"JK-OLD": rebuilt}) == {}


def test_replayed_reports_follow_the_pages_to_the_end() -> None:
    reports = [replayed(s) for s in stories()]
    asked: list[tuple[str | None, int]] = []
    call = intake_pages(reports)

    def counting(after: str | None, limit: int) -> Mapping[str, Any]:
        asked.append((after, limit))
        return call(after, limit)

    assert [r.report_id for r in replayed_reports(counting, page_size=4)] == sorted(s.report_id for s in stories())
    assert asked == [(None, 4), ("JK-4", 4), ("JK-8", 4)]


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (UnknownService("intake"), "intake is not running on this broker (AMQP_URI)"),
        ({"schema_version": 2, "reports": []}, "intake's replay has schema_version 2, not 1"),
        ({"reports": "none"}, "intake's replay is not a page of events"),
    ],
)
def test_a_replay_this_version_cannot_use_stops_the_rebuild(answer: Any, said: str) -> None:
    def call(after: str | None, limit: int) -> Mapping[str, Any]:
        if isinstance(answer, Exception):
            raise answer
        return answer

    with pytest.raises(ReplayUnavailable, match=re.escape(said)):
        list(replayed_reports(call))


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        ("", "MONGO_URI is not set: point it at MongoDB, or use `make run` which starts the local store"),
        ("mongomock://localhost", "MONGO_URI must start with mongodb:// or mongodb+srv:// (got 'mongomock')"),
    ],
)
def test_the_command_refuses_a_store_it_cannot_reach(monkeypatch: pytest.MonkeyPatch, uri: str, said: str) -> None:
    monkeypatch.setenv("MONGO_URI", uri)
    out, err = io.StringIO(), io.StringIO()
    assert rebuild_command(["--check"], out, err) == 2
    assert said in err.getvalue() and out.getvalue() == ""


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[pymongo.MongoClient]:
    """The wire stand-in, as another process would run it: stats' store, and nothing of intake's."""
    server = MongoStandIn("127.0.0.1", 0)
    server.start()
    monkeypatch.setenv("MONGO_URI", server.uri)
    monkeypatch.setenv("MONGO_DB_PREFIX", "rebuildtest")
    monkeypatch.delenv("RESPONSE_DEADLINE_SECONDS", raising=False)
    client = pymongo.MongoClient(server.uri, tz_aware=True)
    yield client
    client.close()
    server.stop()


@contextmanager
def intake(config: Mapping[str, Any]) -> Iterator[ReplayCall]:
    """intake's replay of the stories, as the command reaches it (the RPC itself: tests/test_stats_e2e.py)."""
    assert config["MONGO_DB_PREFIX"] == "rebuildtest"
    yield intake_pages([replayed(s) for s in stories()])


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = rebuild_command(list(argv), out, err, replay=intake)
    return code, out.getvalue(), err.getvalue()


def test_check_agrees_with_live_projections_and_names_each_difference(store: pymongo.MongoClient) -> None:
    repository = ProjectionRepository(store["rebuildtest_stats"])
    for story in stories():
        for event in story.events:  # the live fold, as the service does it (through Mongo: milliseconds)
            repository.update(story.report_id, lambda current, event=event: apply_event(current, event))
    code, out, err = run("--check")
    assert (code, err) == (0, ""), out
    assert "checked 9 reports against 9 live projections: 0 differ" in out

    store["rebuildtest_stats"]["report_projections"].update_one({"_id": "JK-4"}, {"$set": {"status": "selesai"}})
    store["rebuildtest_stats"]["report_projections"].delete_one({"_id": "JK-7"})
    code, out, _ = run("--check")
    assert code == 1
    assert "JK-4: status: live 'selesai' != rebuilt 'ditolak'" in out
    assert "JK-7: missing from the live projections" in out
    assert "2 differ" in out

    code, out, _ = run()  # rewrite from intake's replay
    assert code == 0 and "rebuilt 9 projections from the report store; 2 changed" in out
    assert run("--check")[0] == 0
    assert store["rebuildtest_stats"]["report_projections"].find_one({"_id": "JK-4"})["status"] == "ditolak"
    assert [name for name in store.list_database_names() if name.startswith("rebuildtest")] == ["rebuildtest_stats"]


def test_rebuild_from_an_empty_statistics_store(store: pymongo.MongoClient) -> None:
    code, out, _ = run()
    assert code == 0 and "9 changed" in out
    code, out, _ = run("--check")
    assert code == 0, out


def test_the_command_says_when_intake_does_not_answer(store: pymongo.MongoClient) -> None:
    @contextmanager
    def absent(config: Mapping[str, Any]) -> Iterator[ReplayCall]:
        def call(after: str | None, limit: int) -> Mapping[str, Any]:
            raise UnknownService("intake")

        yield call

    out, err = io.StringIO(), io.StringIO()
    assert rebuild_command(["--check"], out, err, replay=absent) == 2
    assert err.getvalue() == "stats-rebuild: intake is not running on this broker (AMQP_URI)\n"
    assert out.getvalue() == ""
