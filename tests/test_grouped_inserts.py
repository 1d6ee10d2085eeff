"""Group-committed inserts (jaklapor.mongo.GroupedInserts) through a real pymongo client and the wire stand-in.

What a caller must be able to rely on: its document is stored when `insert` returns, a refusal of its document
(a duplicate key) reaches it and only it, a failed write reaches every caller it concerned and nobody waits for
ever, and inserts that arrive while one is written share the next write.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError

from devtools.mongo_standin import MongoStandIn
from jaklapor.mongo import GroupedInserts
from tests.system import wait_for


@pytest.fixture(scope="module")
def standin() -> Iterator[MongoStandIn]:
    server = MongoStandIn("127.0.0.1", 0).start()
    yield server
    server.stop()


@pytest.fixture
def reports(standin: MongoStandIn) -> Iterator[pymongo.collection.Collection]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with pymongo.MongoClient(standin.uri, tz_aware=True, serverSelectionTimeoutMS=5000) as client:
        collection = client[name]["reports"]
        collection.create_index("idempotency_key_hash", unique=True, sparse=True)
        yield collection
        client.drop_database(name)


class HeldCollection:
    """The collection, with a record of each write and a gate the test can close to hold the next write."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.writes: list[tuple[str, list[str]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_next: Exception | None = None

    def _enter(self, kind: str, documents: list[dict[str, Any]]) -> None:
        self.writes.append((kind, [d["_id"] for d in documents]))
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    def insert_one(self, document: dict[str, Any]) -> Any:
        self._enter("insert_one", [document])
        return self.collection.insert_one(document)

    def insert_many(self, documents: list[dict[str, Any]], ordered: bool = True) -> Any:
        self._enter("insert_many", documents)
        return self.collection.insert_many(documents, ordered=ordered)


def report(number: int, key: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {"_id": f"JK-{number:04d}", "description": "Saluran tersumbat"}
    if key is not None:
        document["idempotency_key_hash"] = key
    return document


def insert_in_thread(grouped: GroupedInserts, document: dict[str, Any], outcomes: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        try:
            grouped.insert(document)
            outcomes[document["_id"]] = "stored"
        except Exception as exc:  # the outcome under test
            outcomes[document["_id"]] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def hold_first_write(held: HeldCollection, grouped: GroupedInserts, outcomes: dict[str, Any]) -> threading.Thread:
    """Start one insert and hold it inside the store, so that the next ones queue behind it."""
    held.gate.clear()
    first = insert_in_thread(grouped, report(1), outcomes)
    assert held.entered.wait(10)
    return first


def test_a_lone_insert_is_written_at_once_on_its_own(reports: Any) -> None:
    held = HeldCollection(reports)
    grouped = GroupedInserts(held)

    grouped.insert(report(1))

    assert held.writes == [("insert_one", ["JK-0001"])]
    assert reports.find_one({"_id": "JK-0001"})["description"] == "Saluran tersumbat"


def test_inserts_arriving_during_a_write_share_the_next_one_and_all_are_stored(reports: Any) -> None:
    held = HeldCollection(reports)
    grouped = GroupedInserts(held)
    outcomes: dict[str, Any] = {}
    threads = [hold_first_write(held, grouped, outcomes)]

    threads += [insert_in_thread(grouped, report(n), outcomes) for n in range(2, 7)]
    wait_for(lambda: grouped.waiting == 5, message="five inserts queued behind the held one")
    held.gate.set()
    for thread in threads:
        thread.join(10)

    assert outcomes == {f"JK-{n:04d}": "stored" for n in range(1, 7)}
    assert [(kind, sorted(ids)) for kind, ids in held.writes] == [
        ("insert_one", ["JK-0001"]),
        ("insert_many", [f"JK-{n:04d}" for n in range(2, 7)]),
    ]
    assert sorted(d["_id"] for d in reports.find()) == [f"JK-{n:04d}" for n in range(1, 7)]
    assert grouped.waiting == 0


def test_a_refused_document_fails_its_own_caller_only(reports: Any) -> None:
    reports.insert_one(report(99, key="retried-key"))
    held = HeldCollection(reports)
    grouped = GroupedInserts(held)
    outcomes: dict[str, Any] = {}
    threads = [hold_first_write(held, grouped, outcomes)]

    threads += [
        insert_in_thread(grouped, report(2), outcomes),
        insert_in_thread(grouped, report(3, key="retried-key"), outcomes),  # a retry of an answered submission
        insert_in_thread(grouped, report(4), outcomes),
    ]
    wait_for(lambda: grouped.waiting == 3, message="three inserts queued behind the held one")
    held.gate.set()
    for thread in threads:
        thread.join(10)

    assert isinstance(outcomes.pop("JK-0003"), DuplicateKeyError)
    assert outcomes == {"JK-0001": "stored", "JK-0002": "stored", "JK-0004": "stored"}
    assert reports.find_one({"_id": "JK-0003"}) is None
    kind, ids = held.writes[1]
    assert (kind, sorted(ids)) == ("insert_many", ["JK-0002", "JK-0003", "JK-0004"])


def test_a_failed_write_reaches_each_of_its_callers_and_the_next_inserts_still_go_through(reports: Any) -> None:
    held = HeldCollection(reports)
    grouped = GroupedInserts(held)
    outcomes: dict[str, Any] = {}
    threads = [hold_first_write(held, grouped, outcomes)]
    threads += [insert_in_thread(grouped, report(n), outcomes) for n in (2, 3)]
    wait_for(lambda: grouped.waiting == 2, message="two inserts queued behind the held one")

    held.fail_next = AutoReconnect("connection reset")  # the held write fails as a whole
    held.gate.set()
    for thread in threads:
        thread.join(10)
    grouped.insert(report(4))

    assert isinstance(outcomes.pop("JK-0001"), AutoReconnect)
    assert outcomes == {"JK-0002": "stored", "JK-0003": "stored"}
    assert sorted(d["_id"] for d in reports.find()) == ["JK-0002", "JK-0003", "JK-0004"]


def test_a_batch_is_at_most_max_batch_documents_and_the_rest_follows(reports: Any) -> None:
    held = HeldCollection(reports)
    grouped = GroupedInserts(held, max_batch=2)
    outcomes: dict[str, Any] = {}
    threads = [hold_first_write(held, grouped, outcomes)]
    threads += [insert_in_thread(grouped, report(n), outcomes) for n in range(2, 7)]
    wait_for(lambda: grouped.waiting == 5, message="five inserts queued behind the held one")

    held.gate.set()
    for thread in threads:
        thread.join(10)

    assert outcomes == {f"JK-{n:04d}": "stored" for n in range(1, 7)}
    assert [len(ids) for _, ids in held.writes] == [1, 2, 2, 1]
    assert reports.count_documents({}) == 6
