"""`jaklapor stats-rebuild`: the projections rebuilt from the report store equal the live ones folded from events."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from devtools.mongo_standin import MongoStandIn
from services.stats.dependencies import ProjectionRepository
from services.stats.domain import apply_event
from services.stats.rebuild import compare, rebuild_all, rebuild_command
from services.stats.tests.story import DEADLINE_RULE, stories


def live_projections() -> dict[str, dict[str, Any]]:
    live = {}
    for story in stories():
        projection = None
        for event in story.events:
            projection = apply_event(projection, event) or projection
        assert projection is not None
        live[story.report_id] = projection
    return live


def test_rebuild_all_equals_the_live_fold_for_every_story() -> None:
    result = rebuild_all([s.report for s in stories()], DEADLINE_RULE)
    assert result.failed == {}
    assert compare(live_projections(), result.rebuilt) == {}


def test_compare_lists_missing_extra_and_different_reports() -> None:
    live = live_projections()
    rebuilt = rebuild_all([s.report for s in stories()], DEADLINE_RULE).rebuilt
    live["JK-1"] = {**live["JK-1"], "status": "dikerjakan"}
    del live["JK-2"]
    rebuilt.pop("JK-3")
    found = compare(live, rebuilt)
    assert found == {
        "JK-1": ["status: live 'dikerjakan' != rebuilt 'selesai'"],
        "JK-2": ["missing from the live projections"],
        "JK-3": ["live projection has no report in the report store"],
    }


def test_a_report_whose_history_cannot_be_read_is_reported_not_fatal() -> None:
    broken = {"_id": "JK-BROKEN", "category": "jalan", "history": [{"kind": "submitted"}]}  # no time, no submitted_at
    result = rebuild_all([broken, stories()[0].report], DEADLINE_RULE)
    assert list(result.failed) == ["JK-BROKEN"] and list(result.rebuilt) == ["JK-1"]


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
    """The wire stand-in, as another process would run it, with reports in intake's collection."""
    server = MongoStandIn("127.0.0.1", 0)
    server.start()
    monkeypatch.setenv("MONGO_URI", server.uri)
    monkeypatch.setenv("MONGO_DB_PREFIX", "rebuildtest")
    monkeypatch.delenv("RESPONSE_DEADLINE_SECONDS", raising=False)
    client = pymongo.MongoClient(server.uri, tz_aware=True)
    for story in stories():
        client["rebuildtest_intake"]["reports"].insert_one({**story.report, "outbox": [{"body": "never read"}]})
    yield client
    client.close()
    server.stop()


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = rebuild_command(list(argv), out, err)
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

    code, out, _ = run()  # rewrite from the report store
    assert code == 0 and "rebuilt 9 projections from the report store; 2 changed" in out
    assert run("--check")[0] == 0
    assert store["rebuildtest_intake"]["reports"].count_documents({}) == 9  # read-only
    assert store["rebuildtest_stats"]["report_projections"].find_one({"_id": "JK-4"})["status"] == "ditolak"


def test_rebuild_from_an_empty_statistics_store(store: pymongo.MongoClient) -> None:
    code, out, _ = run()
    assert code == 0 and "9 changed" in out
    code, out, _ = run("--check")
    assert code == 0, out
