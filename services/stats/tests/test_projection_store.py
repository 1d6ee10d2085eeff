"""The projection store: a report's first event creates its projection in one write; if a later event of the report
came first, the first one is folded into what is there (nothing is lost, nothing counted twice)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import mongomock
import pytest

from devtools.mongo_standin import MongoStandIn
from devtools.store_commands import StoreCommands, recorded_database
from services.stats.dependencies import ProjectionRepository


def add_event(name: str) -> Callable[[dict[str, Any] | None], dict[str, Any] | None]:
    def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
        seen = (current or {}).get("events", [])
        if name in seen:
            return None
        return {**(current or {}), "events": [*seen, name]}

    return change


def test_a_first_event_creates_the_projection_and_a_repeat_changes_nothing() -> None:
    store = ProjectionRepository(mongomock.MongoClient(tz_aware=True)["stats"])
    assert store.update("JK-1", add_event("submitted"), probably_new=True)
    assert not store.update("JK-1", add_event("submitted"), probably_new=True)
    assert store.get("JK-1") == {"_id": "JK-1", "events": ["submitted"], "rev": 1}


def test_a_first_event_arriving_after_a_later_one_is_folded_into_it() -> None:
    store = ProjectionRepository(mongomock.MongoClient(tz_aware=True)["stats"])
    assert store.update("JK-1", add_event("routed"))
    assert store.update("JK-1", add_event("submitted"), probably_new=True)
    assert store.get("JK-1") == {"_id": "JK-1", "events": ["routed", "submitted"], "rev": 2}


# ---- a batch: one read, one write (through the wire, as pymongo talks to MongoDB) ------------------------------------


@pytest.fixture(scope="module")
def standin() -> Iterator[MongoStandIn]:
    server = MongoStandIn("127.0.0.1", 0).start()
    yield server
    server.stop()


@pytest.fixture
def wire(standin: MongoStandIn) -> Iterator[tuple[ProjectionRepository, StoreCommands]]:
    with recorded_database(standin.uri, "stats") as (database, commands):
        yield ProjectionRepository(database), commands


def test_a_batch_reads_once_and_writes_once_and_new_projections_are_not_read(
    wire: tuple[ProjectionRepository, StoreCommands],
) -> None:
    store, commands = wire
    assert store.update("JK-1", add_event("submitted"), probably_new=True)
    commands.names.clear()
    changed, lost = store.update_many(
        {"JK-1": add_event("routed"), "JK-2": add_event("submitted"), "JK-3": add_event("routed")},
        probably_new={"JK-2"},
    )
    assert (changed, lost) == ({"JK-1", "JK-2", "JK-3"}, set())
    assert commands.names == ["find", "update"]
    assert store.get("JK-1") == {"_id": "JK-1", "events": ["submitted", "routed"], "rev": 2}
    assert store.get("JK-2") == {"_id": "JK-2", "events": ["submitted"], "rev": 1}
    assert store.get("JK-3") == {"_id": "JK-3", "events": ["routed"], "rev": 1}
    commands.names.clear()
    assert store.update_many({"JK-2": add_event("submitted")}, probably_new={"JK-2"}) == (set(), {"JK-2"})
    assert commands.names == ["update"], "a first event redelivered: the create fails alone, the caller reads"
    commands.names.clear()
    assert store.update_many({"JK-2": add_event("submitted"), "JK-3": add_event("routed")}) == (set(), set())
    assert commands.names == ["find"], "nothing new: read, and nothing to write"
    commands.names.clear()
    assert store.update_many({"JK-4": add_event("submitted")}, probably_new={"JK-4"}) == ({"JK-4"}, set())
    assert commands.names == ["update"], "a report's first event: written without reading"


def test_a_write_another_worker_got_in_first_is_lost_alone(wire: tuple[ProjectionRepository, StoreCommands]) -> None:
    store, _commands = wire
    for report_id in ("JK-1", "JK-2"):
        store.update(report_id, add_event("submitted"), probably_new=True)
    collection = store.projections
    real_find = collection.find

    def find_then_race(*args: Any, **kwargs: Any) -> Any:
        found = list(real_find(*args, **kwargs))
        # between this read and the batch's write, another worker folds an event into JK-1 and creates JK-5
        collection.replace_one({"_id": "JK-1"}, {"events": ["submitted", "escalated"], "rev": 2})
        collection.insert_one({"_id": "JK-5", "events": ["routed"], "rev": 1})
        return found

    store.projections = SimpleNamespace(find=find_then_race, bulk_write=collection.bulk_write)  # type: ignore[assignment]
    changed, lost = store.update_many(
        {"JK-1": add_event("routed"), "JK-2": add_event("routed"), "JK-5": add_event("submitted")},
        probably_new={"JK-5"},
    )
    store.projections = collection
    assert (changed, lost) == ({"JK-2"}, {"JK-1", "JK-5"})
    assert store.get("JK-1") == {"_id": "JK-1", "events": ["submitted", "escalated"], "rev": 2}  # as the other left it
    assert store.get("JK-5") == {"_id": "JK-5", "events": ["routed"], "rev": 1}
    assert store.get("JK-2") == {"_id": "JK-2", "events": ["submitted", "routed"], "rev": 2}
    # the caller folds the lost ones again, one by one
    assert store.update("JK-1", add_event("routed")) and store.update("JK-5", add_event("submitted"))
    assert store.get("JK-1") == {"_id": "JK-1", "events": ["submitted", "escalated", "routed"], "rev": 3}
    assert store.get("JK-5") == {"_id": "JK-5", "events": ["routed", "submitted"], "rev": 2}
