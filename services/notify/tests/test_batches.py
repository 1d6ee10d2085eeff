"""A batch of report events in notify's real store, in-process (mongomock) and over the wire (the stand-in
devtools/mongo_standin.py, whose commands are counted): each entry numbered and stored as if appended alone, a
redelivered one found there, every delivery stored once; in one numbering write per report and one insert per
collection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import mongomock
import pymongo
import pytest
from nameko.testing.services import worker_factory
from pymongo.errors import BulkWriteError

from devtools.mongo_standin import MongoStandIn
from devtools.store_commands import StoreCommands
from jaklapor.contacts import encrypt_contact, generate_key
from jaklapor.live import LiveHub
from services.notify.channels import OpdChannels, WebhookTarget
from services.notify.dependencies import (
    Appended,
    NotifyRepository,
    TimelineWrite,
    duplicate_positions,
    numbered,
    report_fields,
)
from services.notify.dispatcher import DeliverySettings, Dispatcher
from services.notify.service import NotifyService
from services.notify.settings import NotifySettings
from services.notify.tests.fakes import FakePublisher
from services.notify.tests.reports import REPORT, routed, status_changed, submitted

KEY = generate_key()
SECRET = "a-webhook-secret-of-32-characters"


@pytest.fixture(scope="module")
def standin() -> Iterator[MongoStandIn]:
    server = MongoStandIn("127.0.0.1", 0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def wire(standin: MongoStandIn, request: pytest.FixtureRequest) -> Iterator[tuple[NotifyRepository, StoreCommands]]:
    commands = StoreCommands()
    client: pymongo.MongoClient = pymongo.MongoClient(standin.uri, tz_aware=True, event_listeners=[commands])
    client.drop_database(f"notify_{request.node.name[:40]}")
    repository = NotifyRepository(client[f"notify_{request.node.name[:40]}"])
    repository.ensure_indexes()
    commands.take()
    yield repository, commands
    client.close()


@pytest.fixture(params=["mongomock", "wire"])
def repository(request: pytest.FixtureRequest) -> NotifyRepository:
    if request.param == "mongomock":
        repo = NotifyRepository(mongomock.MongoClient(tz_aware=True)["notify"])
        repo.ensure_indexes()
        return repo
    repo, _ = request.getfixturevalue("wire")
    return repo


def write(report_id: str, event_id: str, fields: dict[str, Any] | None = None) -> TimelineWrite:
    return TimelineWrite(report_id, {"event_id": event_id, "kind": "status"}, fields)


# ---- the store ------------------------------------------------------------------------------------------------------


def test_a_batch_numbers_each_reports_entries_in_batch_order(repository: NotifyRepository) -> None:
    repository.append("r1", {"event_id": "e0"})
    results = repository.append_many(
        [write("r1", "e1"), write("r2", "f1", report_fields("h" * 64, True)), write("r1", "e2"), write("r2", "f2")]
    )
    assert [appended.seq if appended else None for appended in results] == [2, 1, 3, 2]
    assert [entry["event_id"] for _, entry in repository.entries_after("r1", 0)] == ["e0", "e1", "e2"]
    assert [seq for seq, _ in repository.entries_after("r2", 0)] == [1, 2]
    assert repository.report_for_token("h" * 64) == "r2"
    assert repository.append("r1", {"event_id": "e3"}) == (4, False, None, False)  # numbering goes on after


def test_each_entry_of_a_batch_sees_the_report_as_written_one_by_one(repository: NotifyRepository) -> None:
    repository.store_contact(REPORT, "h" * 64, "ciphertext", supporter_hash="s" * 64)  # a supporter left a contact
    repository.stream_opened(REPORT)
    results = repository.append_many(
        [write(REPORT, "before"), write(REPORT, "submitted", report_fields("h" * 64, False)), write(REPORT, "after")]
    )
    assert results == [(1, True, None, True), (2, True, False, True), (3, True, False, True)]


def test_a_batch_with_entries_there_already_stores_the_others_once(repository: NotifyRepository) -> None:
    repository.append("r1", {"event_id": "e1"})
    results = repository.append_many([write("r1", "e1"), write("r1", "e2"), write("r1", "e2"), write("r2", "f1")])
    # a redelivered entry takes a number (a harmless gap) and is found there; so is a second copy in the batch
    assert [appended.seq if appended else None for appended in results] == [None, 3, None, 1]
    assert [(seq, entry["event_id"]) for seq, entry in repository.entries_after("r1", 0)] == [(1, "e1"), (3, "e2")]
    assert repository.entries_after("r2", 0) == [(1, {"event_id": "f1", "kind": "status"})]


def test_a_batch_of_reports_known_before_numbers_each_as_if_alone(repository: NotifyRepository) -> None:
    repository.append("r1", {"event_id": "e0"})
    repository.stream_opened("r1")
    repository.append("r2", {"event_id": "f0"}, report_fields("h" * 64, True))
    repository.append("r2", {"event_id": "f1"})
    results = repository.append_many([write("r1", "e1"), write("r2", "f2"), write("r1", "e2")])
    assert results == [(2, True, None, False), (3, False, True, False), (3, True, None, False)]
    assert [seq for seq, _ in repository.entries_after("r2", 0)] == [1, 2, 3]


class StreamOpenedDuringTheBatch:
    """The reports collection, where a live stream of `report_id` opens right after the batch has read the reports."""

    def __init__(self, repository: NotifyRepository, report_id: str) -> None:
        self.collection, self.repository, self.report_id = repository.reports, repository, report_id

    def find(self, *args: Any, **kwargs: Any) -> Any:
        found = list(self.collection.find(*args, **kwargs))
        self.collection.update_one({"_id": self.report_id}, {"$inc": {"streams": 1}})  # as `stream_opened`
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)


def test_a_report_that_changes_while_its_batch_is_numbered_is_numbered_again_on_its_own(
    repository: NotifyRepository,
) -> None:
    repository.append("r1", {"event_id": "e0"})
    repository.append("r2", {"event_id": "f0"})
    repository.reports = StreamOpenedDuringTheBatch(repository, "r2")  # type: ignore[assignment]
    results = repository.append_many([write("r1", "e1"), write("r2", "f1")])
    # r2's stream must be woken for f1; the first round's numbers of r1 are left as a gap
    assert results[1] is not None and results[1].watched
    r1_seq = [seq for seq, _ in repository.entries_after("r1", 0)]
    assert r1_seq[0] == 1 and r1_seq[1] > 1 and len(r1_seq) == 2
    assert [entry["event_id"] for _, entry in repository.entries_after("r2", 0)] == ["f0", "f1"]


def test_deliveries_of_a_batch_are_stored_once_each(repository: NotifyRepository) -> None:
    repository.enqueue_delivery({"_id": "d1", "state": "pending"})
    assert repository.enqueue_deliveries([{"_id": "d1"}, {"_id": "d2"}, {"_id": "d2"}, {"_id": "d3"}]) == 2
    assert sorted(doc["_id"] for doc in repository.deliveries.find()) == ["d1", "d2", "d3"]
    assert repository.deliveries.find_one({"_id": "d1"})["state"] == "pending"  # not replaced


def test_numbering_is_as_one_by_one() -> None:
    assert numbered(None, [None, {"has_contact": True}]) == [Appended(1, False, None), Appended(2, False, True)]
    before = {"seq": 4, "streams": 1, "has_contact": False, "supporter_contacts": True}
    assert numbered(before, [None]) == [Appended(5, True, False, True)]


def test_only_duplicates_count_as_there_already() -> None:
    duplicate = {"index": 2, "code": 11000, "errmsg": "E11000"}
    assert duplicate_positions(BulkWriteError({"writeErrors": [duplicate], "nInserted": 2})) == {2}
    other = BulkWriteError({"writeErrors": [duplicate, {"index": 3, "code": 2, "errmsg": "bad"}]})
    with pytest.raises(BulkWriteError):  # the batch fails and its messages are handled again one by one
        duplicate_positions(other)
    with pytest.raises(BulkWriteError):
        duplicate_positions(BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"code": 64}]}))


# ---- the service on the real store, its writes counted --------------------------------------------------------------


def notify_on(repository: NotifyRepository) -> Any:
    settings = NotifySettings(contact_key=KEY, public_url="https://lapor.example")
    dispatcher = Dispatcher(
        repository,
        DeliverySettings.from_settings(settings),
        KEY,
        None,
        None,  # type: ignore[arg-type]  # nothing is sent here
        WebhookTarget("https://relay.example/", SECRET),
        {"kelurahan-melawai": OpdChannels(WebhookTarget("https://melawai.example/hook", SECRET))},
        {"kelurahan-melawai": "Kelurahan Melawai"},
    )
    return worker_factory(
        NotifyService,
        settings=settings,
        store=repository,
        live=LiveHub(),
        publisher=FakePublisher(),
        deliveries=dispatcher,
    )


def register_phone(repository: NotifyRepository) -> None:
    bundle = json.dumps({"contact": "0812000000", "tracking_url": "https://lapor.example/lacak/TOKEN"})
    repository.store_contact(REPORT, "a" * 64, encrypt_contact(KEY, bundle), kind="phone")


def test_a_reports_submission_and_routing_in_one_batch_cost_four_store_commands(
    wire: tuple[NotifyRepository, StoreCommands],
) -> None:
    repository, commands = wire
    register_phone(repository)
    service = notify_on(repository)
    commands.take()
    service.record_events([submitted().to_message(), routed().to_message()])
    # the report's registration (numbered with it: one insert for every new report of a batch), the timeline
    # entries, the reporter's contact, the deliveries
    assert commands.take() == {"insert": 3, "find": 1}
    assert [seq for seq, _ in repository.entries_after(REPORT, 0)] == [1, 2]
    assert sorted(doc["channel"] for doc in repository.deliveries.find()) == ["webhook", "webhook"]  # citizen, OPD


def test_one_by_one_the_same_events_cost_six_and_a_known_report_is_numbered_by_a_write(
    wire: tuple[NotifyRepository, StoreCommands],
) -> None:
    repository, commands = wire
    register_phone(repository)
    service = notify_on(repository)
    commands.take()
    service.record_events([submitted().to_message()])
    assert commands.take() == {"insert": 2}  # registered and numbered in one insert; nobody is told of a submission
    service.record_events([routed().to_message()])
    assert commands.take() == {"findAndModify": 1, "insert": 2, "find": 1}


def test_reports_known_before_are_numbered_by_one_read_and_one_write_whatever_their_number(
    wire: tuple[NotifyRepository, StoreCommands],
) -> None:
    repository, commands = wire
    for report_id in ("r1", "r2", "r3"):
        repository.append(report_id, {"event_id": f"{report_id}-submitted"}, report_fields(report_id * 32, False))
    commands.take()
    repository.append_many([write("r1", "e1"), write("r2", "f1"), write("r3", "g1"), write("r1", "e2")])
    assert commands.take() == {"find": 1, "update": 1, "insert": 1}  # the read, the numbering, the entries
    assert [seq for seq, _ in repository.entries_after("r1", 0)] == [1, 2, 3]


def test_a_redelivered_batch_adds_nothing(wire: tuple[NotifyRepository, StoreCommands]) -> None:
    repository, _ = wire
    register_phone(repository)
    service = notify_on(repository)
    batch = [submitted().to_message(), routed().to_message(), status_changed("selesai").to_message()]
    service.record_events(batch)
    service.record_events(batch[1:])  # the batch failed after its writes: its messages come again
    assert [entry["kind"] for _, entry in repository.entries_after(REPORT, 0)] == [
        "submitted",
        "routed",
        "status_changed",
    ]
    assert repository.deliveries.count_documents({}) == 3  # routed: citizen and OPD; selesai: citizen
    assert repository.is_final(REPORT)


def test_a_submission_of_a_report_known_already_is_numbered_after_what_is_there(
    wire: tuple[NotifyRepository, StoreCommands],
) -> None:
    repository, _ = wire
    service = notify_on(repository)
    submission = submitted().to_message()
    service.record_events([routed().to_message()])  # came first (a redelivery, another replica)
    service.record_events([submission])
    service.record_events([submission])  # redelivered: found there, nothing added
    entries = repository.entries_after(REPORT, 0)
    assert [entry["kind"] for _, entry in entries] == ["routed", "submitted"]
    assert [seq for seq, _ in entries] == [1, 2]
    assert repository.report_for_token(submitted().tracking_token_hash) == REPORT  # registered all the same
