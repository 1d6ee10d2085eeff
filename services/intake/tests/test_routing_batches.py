"""The report repository's batch of routing results, through the wire as pymongo talks to MongoDB (the MongoDB
stand-in): one read of the batch's reports, one write of its results, and which of them were applied."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devtools.mongo_standin import MongoStandIn
from devtools.store_commands import StoreCommands, recorded_database
from services.intake.dependencies import OnceChange, ReportRepository


@pytest.fixture(scope="module")
def standin() -> Iterator[MongoStandIn]:
    server = MongoStandIn("127.0.0.1", 0).start()
    yield server
    server.stop()


@pytest.fixture
def wire(standin: MongoStandIn) -> Iterator[tuple[ReportRepository, StoreCommands]]:
    with recorded_database(standin.uri, "intake") as (database, commands):
        repository = ReportRepository(database)
        for n in (1, 2, 3):
            repository.reports.insert_one(
                {"_id": f"JK-{n}", "hop": 0, "version": 1, "history": [], "applied_events": [], "outbox": [{"m": n}]}
            )
        commands.names.clear()
        yield repository, commands


def routed(report_id: str, event_id: str, hop: int = 0) -> OnceChange:
    return OnceChange(report_id, event_id, {"hop": hop}, {"assigned_opd": event_id}, {"kind": "routed"})


def test_the_batchs_reports_are_read_at_once_without_their_outbox(wire: tuple[ReportRepository, StoreCommands]) -> None:
    repository, commands = wire
    found = repository.by_ids(["JK-1", "JK-3", "JK-9", "JK-1"])
    assert sorted(found) == ["JK-1", "JK-3"] and "outbox" not in found["JK-1"]
    assert commands.names == ["find"]


def test_results_of_several_reports_are_applied_in_one_write(wire: tuple[ReportRepository, StoreCommands]) -> None:
    repository, commands = wire
    assert repository.apply_each_once([routed("JK-1", "e1"), routed("JK-2", "e2")]) == {"e1", "e2"}
    assert commands.names == ["update"]
    report: dict[str, Any] = repository.reports.find_one({"_id": "JK-1"})
    assert (report["assigned_opd"], report["version"], report["applied_events"]) == ("e1", 2, ["e1"])
    assert report["history"] == [{"kind": "routed"}]


def test_a_result_that_no_longer_applies_is_told_apart_by_one_more_read(
    wire: tuple[ReportRepository, StoreCommands],
) -> None:
    repository, commands = wire
    # between the caller's read and its write: another worker applied e1, and JK-2 was forwarded to hop 1
    assert repository.apply_once("JK-1", "e1", {"hop": 0}, {"assigned_opd": "e1"}, {"kind": "routed"})
    repository.reports.update_one({"_id": "JK-2"}, {"$set": {"hop": 1}})
    commands.names.clear()
    applied = repository.apply_each_once([routed("JK-1", "e1"), routed("JK-2", "e2"), routed("JK-3", "e3")])
    assert commands.names == ["update", "find"]
    # e1 is held by its report (applied: by the other worker, which logs and wakes too), e2 was not applied
    assert applied == {"e1", "e3"}
    assert repository.reports.find_one({"_id": "JK-1"})["version"] == 2
    assert repository.reports.find_one({"_id": "JK-2"})["version"] == 1
    with pytest.raises(ValueError, match="one change per report"):
        repository.apply_each_once([routed("JK-1", "e4"), routed("JK-1", "e5")])
    assert repository.apply_each_once([]) == set()
