"""jaklapor.mongo.GroupedInserts, intake's insert of new reports: concurrent inserts go to the store together, and
every caller still gets its own document's outcome, as from pymongo's insert_one. Against the development store over
the wire (pymongo and the stand-in's unique indexes); the first write is held at a gate so that the others are known
to arrive while it is on its way."""

from __future__ import annotations

import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo.collection import Collection
from pymongo.errors import AutoReconnect, DuplicateKeyError

from devtools.mongo_standin import MongoStandIn
from jaklapor import mongo
from jaklapor.mongo import GroupedInserts
from tests.system import wait_for


class Interrupted(BaseException):
    """What a killed green thread sees (GreenletExit is a BaseException too)."""


class GatedCollection:
    """The real collection, whose first `insert_many` waits for the gate to open, and whose second raises
    `second_raises` if given, before it reaches the store; records each call's documents."""

    def __init__(self, real: Collection, second_raises: BaseException | None = None) -> None:
        self.real = real
        self.second_raises = second_raises
        self.gate = threading.Event()
        self.calls: list[list[Any]] = []

    def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> Any:
        self.calls.append([document["_id"] for document in documents])
        if len(self.calls) == 1:
            assert self.gate.wait(10), "the gate was never opened"
        if len(self.calls) == 2 and self.second_raises is not None:
            raise self.second_raises
        return self.real.insert_many(documents, ordered=ordered)


@pytest.fixture
def reports(tmp_path: Path) -> Iterator[Collection]:
    server = MongoStandIn("127.0.0.1", 0, data_dir=str(tmp_path / "store")).start()
    client: pymongo.MongoClient = pymongo.MongoClient(server.uri, tz_aware=True)
    try:
        collection = client.jaklapor_intake.reports
        collection.create_index("tracking_token_hash", unique=True)
        yield collection
    finally:
        client.close()
        server.stop()


def insert_concurrently(
    grouped: GroupedInserts, gated: GatedCollection, documents: list[dict[str, Any]]
) -> dict[str, BaseException | None]:
    """Insert the first document, and the others while its write waits at the gate; then open it. The outcome of
    each insert, by _id."""
    outcomes: dict[str, BaseException | None] = {}

    def insert(document: dict[str, Any]) -> None:
        try:
            grouped.insert_one(document)
            outcomes[document["_id"]] = None
        except BaseException as exc:
            outcomes[document["_id"]] = exc

    first = threading.Thread(target=insert, args=(documents[0],), daemon=True)  # a stranded one must not hold pytest
    first.start()
    wait_for(lambda: len(gated.calls) == 1, 10, message="the first insert is on its way")
    others = [threading.Thread(target=insert, args=(document,), daemon=True) for document in documents[1:]]
    for thread in others:
        thread.start()
    wait_for(lambda: len(grouped._waiting) == len(others), 10, message="every other insert waits")
    gated.gate.set()
    for thread in [first, *others]:
        thread.join(10)
        assert not thread.is_alive(), "an insert never returned"
    return outcomes


def report(number: int, token: str | None = None) -> dict[str, Any]:
    return {"_id": f"JK-20261205-{number:06d}", "tracking_token_hash": token or f"token-{number}", "status": "menunggu"}


def test_inserts_that_arrive_during_a_write_go_together_in_the_next(reports: Collection) -> None:
    gated = GatedCollection(reports)
    documents = [report(n) for n in range(1, 21)]

    outcomes = insert_concurrently(GroupedInserts(gated), gated, documents)  # type: ignore[arg-type]

    assert outcomes == {document["_id"]: None for document in documents}
    assert gated.calls == [["JK-20261205-000001"], [document["_id"] for document in documents[1:]]]
    assert sorted(doc["_id"] for doc in reports.find()) == [document["_id"] for document in documents]


def test_a_taken_key_fails_its_own_insert_alone(reports: Collection) -> None:
    reports.insert_one(report(99, token="taken"))
    gated = GatedCollection(reports)
    documents = [report(1), report(2), report(3, token="taken"), report(4)]

    outcomes = insert_concurrently(GroupedInserts(gated), gated, documents)  # type: ignore[arg-type]

    assert isinstance(outcomes.pop("JK-20261205-000003"), DuplicateKeyError)
    assert outcomes == {"JK-20261205-000001": None, "JK-20261205-000002": None, "JK-20261205-000004": None}
    assert gated.calls[1] == ["JK-20261205-000002", "JK-20261205-000003", "JK-20261205-000004"]
    assert sorted(doc["_id"] for doc in reports.find()) == [
        "JK-20261205-000001",
        "JK-20261205-000002",
        "JK-20261205-000004",
        "JK-20261205-000099",
    ]


def test_a_store_failure_reaches_every_caller_of_its_batch_and_the_next_batch_is_written(
    reports: Collection,
) -> None:
    gated = GatedCollection(reports, second_raises=AutoReconnect("connection reset"))
    grouped = GroupedInserts(gated, max_documents=3)  # type: ignore[arg-type]
    documents = [report(n) for n in range(1, 8)]

    outcomes = insert_concurrently(grouped, gated, documents)

    assert gated.calls == [[f"JK-20261205-00000{n}" for n in numbers] for numbers in ([1], [2, 3, 4], [5, 6, 7])]
    failed = {key: outcome for key, outcome in outcomes.items() if outcome is not None}
    assert sorted(failed) == ["JK-20261205-000002", "JK-20261205-000003", "JK-20261205-000004"]
    assert all(isinstance(outcome, AutoReconnect) for outcome in failed.values())
    stored = sorted(doc["_id"] for doc in reports.find())
    assert stored == [f"JK-20261205-00000{n}" for n in (1, 5, 6, 7)]


def test_a_writer_killed_mid_write_hands_over_and_strands_nobody(reports: Collection) -> None:
    gated = GatedCollection(reports, second_raises=Interrupted())
    grouped = GroupedInserts(gated, max_documents=2)  # type: ignore[arg-type]
    documents = [report(n) for n in range(1, 7)]

    outcomes = insert_concurrently(grouped, gated, documents)

    assert gated.calls == [[f"JK-20261205-00000{n}" for n in numbers] for numbers in ([1], [2, 3], [4, 5], [6])]
    assert isinstance(outcomes.pop("JK-20261205-000002"), Interrupted)  # the writer: its own exception
    assert isinstance(outcomes.pop("JK-20261205-000003"), AutoReconnect)  # its batch: a store error, as a 503
    assert outcomes == {f"JK-20261205-00000{n}": None for n in (1, 4, 5, 6)}
    assert not grouped._waiting and not grouped._writing


def test_a_writer_killed_before_it_took_its_batch_hands_over(
    reports: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes = []

    def sleep(seconds: float) -> None:  # the writer's pass of the hub, where a green thread can be killed
        passes.append(seconds)
        if len(passes) == 2:  # the second writer's
            raise Interrupted()

    monkeypatch.setattr(mongo, "time", types.SimpleNamespace(sleep=sleep))
    gated = GatedCollection(reports)
    grouped = GroupedInserts(gated)  # type: ignore[arg-type]
    documents = [report(n) for n in range(1, 5)]

    outcomes = insert_concurrently(grouped, gated, documents)

    assert isinstance(outcomes.pop("JK-20261205-000002"), Interrupted)
    assert outcomes == {f"JK-20261205-00000{n}": None for n in (1, 3, 4)}
    assert gated.calls == [["JK-20261205-000001"], ["JK-20261205-000003", "JK-20261205-000004"]]
    assert not grouped._waiting and not grouped._writing


def test_a_caller_killed_as_it_was_handed_the_turn_hands_it_on(
    reports: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = []

    class Event(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            woken = super().wait(timeout)
            if self is events[1]:  # the second caller's: killed the moment it is woken
                raise Interrupted()
            return woken

    def new_event() -> threading.Event:
        events.append(Event())
        return events[-1]

    monkeypatch.setattr(mongo, "threading", types.SimpleNamespace(Lock=threading.Lock, Event=new_event))
    gated = GatedCollection(reports)
    grouped = GroupedInserts(gated, max_documents=1)  # type: ignore[arg-type]
    documents = [report(n) for n in range(1, 5)]

    outcomes = insert_concurrently(grouped, gated, documents)

    assert isinstance(outcomes.pop("JK-20261205-000002"), Interrupted)
    assert outcomes == {f"JK-20261205-00000{n}": None for n in (1, 3, 4)}
    assert gated.calls == [["JK-20261205-000001"], ["JK-20261205-000003"], ["JK-20261205-000004"]]
    assert not grouped._waiting and not grouped._writing


def test_a_lone_insert_is_written_at_once_and_raises_as_insert_one_does(reports: Collection) -> None:
    grouped = GroupedInserts(reports)
    grouped.insert_one(report(1))
    with pytest.raises(DuplicateKeyError) as raised:
        grouped.insert_one(report(2, token="token-1"))
    assert raised.value.code == 11000
    assert [doc["_id"] for doc in reports.find()] == ["JK-20261205-000001"]
