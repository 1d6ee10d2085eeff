"""The MongoDB stand-in (mongomock over the wire) through a real pymongo client.

Covers what jaklapor's repositories use (services/*/dependencies.py), the wire protocol itself, cursors across
batches, unique indexes, persistence across a restart of the stand-in, and concurrent clients.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import bson
import mongomock
import pymongo
import pytest
from bson import SON
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import (
    AutoReconnect,
    CollectionInvalid,
    DuplicateKeyError,
    OperationFailure,
    WriteError,
)
from pymongo.write_concern import WriteConcern

from devtools.mongo_standin import STANDIN_MARKER, Journal, MongoStandIn
from jaklapor import mongo

UTC = datetime.UTC
WIB = datetime.timezone(datetime.timedelta(hours=7))
ROOT = Path(__file__).resolve().parents[1]


def client_for(server: MongoStandIn, **options: object) -> pymongo.MongoClient:
    options.setdefault("tz_aware", True)
    options.setdefault("serverSelectionTimeoutMS", 5000)
    return pymongo.MongoClient(server.uri, **options)


@pytest.fixture(scope="module")
def standin() -> Iterator[MongoStandIn]:
    server = MongoStandIn("127.0.0.1", 0).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(standin: MongoStandIn) -> Iterator[pymongo.MongoClient]:
    with client_for(standin) as c:
        yield c


@pytest.fixture
def db(client: pymongo.MongoClient) -> Iterator[pymongo.database.Database]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield client[name]
    client.drop_database(name)


# --- handshake and server commands ---------------------------------------------------------------------------


def test_handshake_ping_and_server_information(client: pymongo.MongoClient) -> None:
    assert client.admin.command("ping")["ok"] == 1.0
    hello = client.admin.command("hello")
    assert hello["isWritablePrimary"] is True
    assert hello["maxWireVersion"] >= 8 and hello["minWireVersion"] == 0
    assert isinstance(hello["localTime"], datetime.datetime)
    assert "topologyVersion" not in hello  # pymongo polls instead of streaming heartbeats
    legacy = client.admin.command("isMaster", helloOk=True)
    assert legacy["ismaster"] is True and legacy["helloOk"] is True
    info = client.server_info()
    assert info["version"].startswith("6.") and info["ok"] == 1.0
    assert client.topology_description.topology_type_name == "Single"
    assert client.admin.command("getParameter", featureCompatibilityVersion=1)["ok"] == 1.0


def test_the_stand_in_says_it_is_not_mongodb(client: pymongo.MongoClient) -> None:
    """Services refuse it outside the local mode (jaklapor/mongo.py): it must say what it is on every handshake."""
    assert STANDIN_MARKER == mongo.STANDIN_MARKER
    assert client.admin.command("hello")[STANDIN_MARKER] is True
    assert client.admin.command("isMaster")[STANDIN_MARKER] is True
    assert client.server_info()[STANDIN_MARKER] is True
    assert mongo.is_standin(client)


def test_unmarked_it_answers_as_mongodb_does(tmp_path: Path) -> None:
    """`--unmarked` (tests of the deployment mode only); run from elsewhere than the repository, as `jaklapor run`
    (a console script, no checkout on its path) does: devtools is an installed package."""
    server = subprocess.Popen(
        [sys.executable, "-m", "devtools.mongo_standin", "--port", "0", "--unmarked", "--log-level", "WARNING"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "listening on 127.0.0.1:" in line, line
        with pymongo.MongoClient(f"mongodb://{line.split()[-1]}/", serverSelectionTimeoutMS=5000) as unmarked:
            assert STANDIN_MARKER not in unmarked.admin.command("hello")
            assert STANDIN_MARKER not in unmarked.server_info()
            assert not mongo.is_standin(unmarked)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0


def test_unknown_command_is_command_not_found(db: pymongo.database.Database) -> None:
    with pytest.raises(OperationFailure) as failure:
        db.command("frobnicate")
    assert failure.value.code == 59
    assert failure.value.details["codeName"] == "CommandNotFound"


def test_transactions_are_refused(client: pymongo.MongoClient, db: pymongo.database.Database) -> None:
    with client.start_session() as session:  # sessions exist (and are ignored), transactions do not
        db.c.insert_one({"_id": "in-session"}, session=session)
        session.start_transaction()
        with pytest.raises(OperationFailure) as failure:
            db.c.insert_one({"_id": "in-transaction"}, session=session)
        assert failure.value.code == 20
    assert db.c.find_one({"_id": "in-session"}) is not None
    assert db.c.find_one({"_id": "in-transaction"}) is None


# --- documents: the patterns jaklapor's repositories use --------------------------------------------------------


def test_insert_and_find_one_with_projection(db: pymongo.database.Database) -> None:
    report = {
        "_id": "JKT-1",
        "tracking_token_hash": "h1",
        "status": "menunggu",
        "outbox": [{"message_id": "m1"}],
        "assigned_opd": {"code": "satpol-pp", "name": "Satpol PP"},
        "version": 1,
    }
    result = db.reports.insert_one(report)
    assert result.inserted_id == "JKT-1" and result.acknowledged
    assert db.reports.find_one({"_id": "JKT-1"}) == report
    assert db.reports.find_one({"tracking_token_hash": "h1"}, {"outbox": 0}) == {
        k: v for k, v in report.items() if k != "outbox"
    }
    assert db.reports.find_one({"_id": "JKT-1"}, {"_id": 1}) == {"_id": "JKT-1"}
    assert db.reports.find_one({"_id": "JKT-1"}, {"status": 1, "_id": 0}) == {"status": "menunggu"}
    assert db.reports.find_one({"_id": "JKT-1"}, {"assigned_opd.code": 1}) == {
        "_id": "JKT-1",
        "assigned_opd": {"code": "satpol-pp"},
    }
    assert db.reports.find_one({"_id": "nope"}) is None
    assert db.reports.find_one({"_id": {"$in": ["nope", "JKT-1"]}})["_id"] == "JKT-1"
    assert db.reports.find_one({"_id": "JKT-1", "status": "selesai"}) is None
    generated = db.reports.insert_one({"status": "menunggu"}).inserted_id
    assert isinstance(generated, bson.ObjectId)
    assert db.reports.find_one({"_id": generated})["status"] == "menunggu"


def test_datetimes_round_trip_as_utc(standin: MongoStandIn, db: pymongo.database.Database) -> None:
    jakarta = datetime.datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=WIB)
    db.events.insert_one({"_id": "e1", "at": jakarta, "nested": {"list": [jakarta]}})
    found = db.events.find_one({"_id": "e1"})
    expected = jakarta.replace(microsecond=123000)  # BSON dates have millisecond precision
    assert found["at"] == expected
    assert found["at"].utcoffset() == datetime.timedelta(0)
    assert found["nested"]["list"][0] == expected
    assert db.events.find_one({"at": {"$lte": datetime.datetime(2025, 3, 1, 2, 31, tzinfo=UTC)}})["_id"] == "e1"
    assert db.events.find_one({"at": {"$gt": datetime.datetime(2025, 3, 1, 2, 31, tzinfo=UTC)}}) is None
    with client_for(standin, tz_aware=False) as naive:
        assert naive[db.name].events.find_one({"_id": "e1"})["at"] == datetime.datetime(2025, 3, 1, 2, 30, 15, 123000)


def test_documents_are_stored_as_mongomock_stores_them() -> None:
    """The stand-in's cheap walk over a written document gives what mongomock's own gives: a copy of every
    container, datetimes in naive UTC milliseconds, an empty Timestamp set to now, everything else untouched."""
    from collections import OrderedDict

    from bson import SON, Decimal128, Int64, ObjectId, Timestamp
    from bson.binary import Binary
    from mongomock import helpers

    from devtools.mongo_standin import _as_stored

    jakarta = datetime.datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=WIB)
    document = {
        "naive": datetime.datetime(2025, 3, 1, 2, 30, 15, 999999),
        "wire": datetime.datetime(2025, 3, 1, 2, 30, 15, 123000),
        "nested": [1, {"at": jakarta, "pair": (1, jakarta)}],
        "ordered": OrderedDict(a=jakarta),
        "son": SON(b=1),
        "plain": ["x", 1, 1.5, True, None, Int64(5), ObjectId(), Binary(b"x"), Decimal128("1.1"), Timestamp(5, 1)],
    }
    ours, theirs = _as_stored(document), helpers.patch_datetime_awareness_in_document(document)
    assert ours == theirs
    assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in theirs.items()}
    assert ours is not document and ours["nested"] is not document["nested"]
    assert ours["nested"][1]["at"] == datetime.datetime(2025, 3, 1, 2, 30, 15, 123000)
    assert _as_stored({"t": Timestamp(0, 0)})["t"].time > 0
    # the new document of an upsert, as mongomock builds it
    upserted = OrderedDict(_id=1, at=jakarta, inner={"at": jakarta}, also=OrderedDict(n=[jakarta]))
    ours, theirs = _as_stored(upserted), helpers.patch_datetime_awareness_in_document(upserted)
    assert ours == theirs and type(ours) is type(theirs) is OrderedDict
    assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in theirs.items()}
    assert ours["inner"] is not upserted["inner"] and ours["also"]["n"] is not upserted["also"]["n"]


def test_a_replacement_off_the_wire_stores_what_mongomock_stores(db: pymongo.database.Database) -> None:
    """The stand-in replaces a decoded document without mongomock's second validation of it (BSON did that): the
    stored documents, the answers and the refusals are mongomock's own."""
    reference = mongomock.MongoClient(tz_aware=True).db.projections
    at = datetime.datetime(2025, 3, 1, 2, 30, 15, 123000, tzinfo=datetime.UTC)
    replacement = {"rev": 2, "status": {"code": "selesai", "at": at}, "steps": [{"s": "menunggu", "at": at}, 1]}
    for projections in (db.projections, reference):
        projections.insert_one({"_id": "P", "rev": 1, "old": "gone"})
        assert projections.replace_one({"_id": "P", "rev": 1}, replacement).modified_count == 1
        assert projections.replace_one({"_id": "Q"}, {"rev": 1, "nested": {"a": [1]}}, upsert=True).upserted_id == "Q"
        projections.find_one_and_replace({"_id": "Q"}, {"rev": 2, "nested": {"a": [2]}})
    assert list(db.projections.find().sort("_id")) == list(reference.find().sort("_id"))
    assert db.projections.find_one({"_id": "P"}) == {"_id": "P", **replacement}
    # a replacement may not change the _id; the document stays as it was (mongomock's own would keep half of it)
    with pytest.raises(WriteError):
        db.projections.replace_one({"_id": "P"}, {"_id": "other", "rev": 3})
    assert db.projections.find_one({"_id": "P"}) == {"_id": "P", **replacement}
    # a replacement that also holds an operator is mongomock's to refuse, as before
    with pytest.raises((WriteError, OperationFailure, ValueError)):
        db.projections.replace_one({"_id": "P"}, {"rev": 4, "$set": {"x": 1}})


def test_find_one_and_update_patterns(db: pymongo.database.Database) -> None:
    # a per-day counter (intake.next_sequence, notify's seq)
    for expected in (1, 2, 3):
        counter = db.counters.find_one_and_update(
            {"_id": "report-20250301"}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert counter == {"_id": "report-20250301", "seq": expected}
    before = db.counters.find_one_and_update({"_id": "report-20250301"}, {"$inc": {"seq": 1}})
    assert before["seq"] == 3  # ReturnDocument.BEFORE is the default
    assert db.counters.find_one_and_update({"_id": "missing"}, {"$inc": {"seq": 1}}) is None
    assert db.counters.find_one({"_id": "missing"}) is None

    # a versioned change with $set / $push $each and a projection (intake.update_versioned)
    now = datetime.datetime(2025, 3, 1, 3, 0, tzinfo=UTC)
    db.reports.insert_one({"_id": "R1", "version": 1, "status": "menunggu", "history": [], "outbox": []})
    updated = db.reports.find_one_and_update(
        {"_id": "R1", "version": 1},
        {
            "$set": {"status": "dikerjakan", "version": 2, "outbox_due": now},
            "$push": {
                "history": {"status": "dikerjakan", "at": now},
                "outbox": {"$each": [{"message_id": "m1"}, {"message_id": "m2"}]},
                "evidence_photos": {"$each": [{"photo_id": "p1"}]},
            },
        },
        projection={"outbox": 0},
        return_document=ReturnDocument.AFTER,
    )
    assert updated["version"] == 2 and updated["status"] == "dikerjakan"
    assert "outbox" not in updated and updated["evidence_photos"] == [{"photo_id": "p1"}]
    assert updated["history"] == [{"status": "dikerjakan", "at": now}]
    assert db.reports.find_one_and_update({"_id": "R1", "version": 1}, {"$set": {"version": 2}}) is None  # conflict

    # a lease on the oldest due outbox, with sort and an inclusion projection (intake.claim_outbox)
    db.reports.insert_one({"_id": "R0", "outbox": [{"message_id": "m0"}], "outbox_due": now - datetime.timedelta(1)})
    leased = db.reports.find_one_and_update(
        {"outbox_due": {"$lte": now}},
        {"$set": {"outbox_due": now + datetime.timedelta(minutes=1)}},
        projection={"outbox": 1},
        sort=[("outbox_due", ASCENDING)],
        return_document=ReturnDocument.AFTER,
    )
    assert leased == {"_id": "R0", "outbox": [{"message_id": "m0"}]}

    # $pull with $in, then clear outbox_due only when the outbox is empty (intake.outbox_published)
    db.reports.update_one({"_id": "R1"}, {"$pull": {"outbox": {"message_id": {"$in": ["m1"]}}}})
    assert (
        db.reports.update_one({"_id": "R1", "outbox": {"$size": 0}}, {"$unset": {"outbox_due": ""}}).matched_count == 0
    )
    db.reports.update_one({"_id": "R1"}, {"$pull": {"outbox": {"message_id": {"$in": ["m2"]}}}})
    cleared = db.reports.update_one({"_id": "R1", "outbox": {"$size": 0}}, {"$unset": {"outbox_due": ""}})
    assert (cleared.matched_count, cleared.modified_count) == (1, 1)
    assert "outbox_due" not in db.reports.find_one({"_id": "R1"})
    assert db.reports.count_documents({"outbox_due": {"$exists": True}}) == 1

    # $addToSet, $setOnInsert and upsert through find_one_and_update, returning the new document
    doc = db.sets.find_one_and_update(
        {"_id": "S"},
        {"$addToSet": {"tags": "a"}, "$setOnInsert": {"created": now}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert doc == {"_id": "S", "tags": ["a"], "created": now}
    doc = db.sets.find_one_and_update(
        {"_id": "S"},
        {"$addToSet": {"tags": {"$each": ["a", "b"]}}, "$setOnInsert": {"created": now + datetime.timedelta(1)}},
        return_document=ReturnDocument.AFTER,
    )
    assert doc == {"_id": "S", "tags": ["a", "b"], "created": now}
    assert db.sets.find_one_and_replace({"_id": "S"}, {"replaced": True}, return_document=ReturnDocument.AFTER) == {
        "_id": "S",
        "replaced": True,
    }
    assert db.sets.find_one_and_delete({"_id": "S"}) == {"_id": "S", "replaced": True}
    assert db.sets.find_one({"_id": "S"}) is None


def test_update_one_replace_one_and_update_many(db: pymongo.database.Database) -> None:
    # applied at most once per event (intake.apply_once)
    db.reports.insert_one({"_id": "R", "version": 1, "history": [], "applied_events": [], "status": "menunggu"})
    for attempt in range(2):
        result = db.reports.update_one(
            {"_id": "R", "applied_events": {"$ne": "ev-1"}, "status": "menunggu"},
            {
                "$set": {"assigned_opd": {"code": "dinas-bina-marga"}},
                "$inc": {"version": 1},
                "$push": {"history": {"event": "routed"}, "applied_events": "ev-1"},
            },
        )
        assert result.modified_count == (1 if attempt == 0 else 0)
    assert db.reports.find_one({"_id": "R"})["version"] == 2

    # upsert with $setOnInsert (notify.register_token)
    result = db.tokens.update_one({"_id": "R"}, {"$set": {"token_hash": "t"}, "$setOnInsert": {"seq": 0}}, upsert=True)
    assert result.upserted_id == "R" and result.matched_count == 0
    result = db.tokens.update_one(
        {"_id": "R"}, {"$set": {"token_hash": "t2"}, "$setOnInsert": {"seq": 99}}, upsert=True
    )
    assert result.upserted_id is None and (result.matched_count, result.modified_count) == (1, 1)
    assert db.tokens.find_one({"_id": "R"}) == {"_id": "R", "token_hash": "t2", "seq": 0}
    assert db.tokens.update_one({"_id": "R"}, {"$set": {"token_hash": "t2"}}).modified_count == 0

    # optimistic replace on a revision (stats.apply)
    db.projections.insert_one({"_id": "P", "rev": 1, "status": "menunggu"})
    assert db.projections.replace_one({"_id": "P", "rev": 1}, {"rev": 2, "status": "selesai"}).modified_count == 1
    assert db.projections.replace_one({"_id": "P", "rev": 1}, {"rev": 3, "status": "ditolak"}).matched_count == 0
    assert db.projections.find_one({"_id": "P"}) == {"_id": "P", "rev": 2, "status": "selesai"}
    upserted = db.projections.replace_one({"_id": "Q"}, {"rev": 1}, upsert=True)
    assert upserted.upserted_id == "Q"

    db.many.insert_many([{"_id": i, "even": i % 2 == 0} for i in range(10)])
    result = db.many.update_many({"even": True}, {"$set": {"flag": 1}})
    assert (result.matched_count, result.modified_count) == (5, 5)
    assert db.many.count_documents({"flag": 1}) == 5
    with pytest.raises(WriteError):
        db.many.update_one({"_id": 1}, {"$set": {"_id": 100}})
    assert db.many.find_one({"_id": 1}) is not None

    # an update that fails half-way leaves the document as it was (MongoDB's single-document atomicity)
    db.many.update_one({"_id": 2}, {"$set": {"label": "two"}})
    with pytest.raises(WriteError):
        db.many.update_one({"_id": 2}, {"$set": {"flag": 2}, "$inc": {"label": 1}})
    assert db.many.find_one({"_id": 2}) == {"_id": 2, "even": True, "flag": 1, "label": "two"}


def test_delete(db: pymongo.database.Database) -> None:
    db.c.insert_many([{"_id": i, "k": i % 3} for i in range(9)])
    assert db.c.delete_one({"k": 0}).deleted_count == 1
    assert db.c.delete_many({"k": 1}).deleted_count == 3
    assert db.c.delete_one({"_id": "nope"}).deleted_count == 0
    assert sorted(d["_id"] for d in db.c.find()) == [2, 3, 5, 6, 8]
    assert db.c.delete_many({}).deleted_count == 5
    assert db.c.count_documents({}) == 0


def test_count_aggregate_and_distinct(db: pymongo.database.Database) -> None:
    rows = [
        ("menunggu", "jalan-rusak", "jakarta-selatan"),
        ("menunggu", "jalan-rusak", "jakarta-selatan"),
        ("selesai", "jalan-rusak", "jakarta-selatan"),
        ("menunggu", "banjir", "jakarta-utara"),
        (None, "banjir", "jakarta-utara"),
    ]
    db.projections.insert_many([{"_id": i, "status": s, "category": c, "kota": k} for i, (s, c, k) in enumerate(rows)])
    assert db.projections.count_documents({}) == 5
    assert db.projections.count_documents({"status": "menunggu"}) == 3
    assert db.projections.count_documents({"status": "menunggu"}, skip=1, limit=1) == 1
    assert db.projections.count_documents({"status": "nope"}) == 0
    assert db.projections.estimated_document_count() == 5
    grouped = db.projections.aggregate(
        [
            {"$match": {"status": {"$ne": None}}},
            {"$group": {"_id": {"status": "$status", "category": "$category", "kota": "$kota"}, "n": {"$sum": 1}}},
        ]
    )
    counts = {(r["_id"]["status"], r["_id"]["category"], r["_id"]["kota"]): r["n"] for r in grouped}
    assert counts == {
        ("menunggu", "jalan-rusak", "jakarta-selatan"): 2,
        ("selesai", "jalan-rusak", "jakarta-selatan"): 1,
        ("menunggu", "banjir", "jakarta-utara"): 1,
    }
    sorted_rows = list(db.projections.aggregate([{"$sort": {"_id": -1}}, {"$limit": 2}, {"$project": {"kota": 1}}]))
    assert sorted_rows == [{"_id": 4, "kota": "jakarta-utara"}, {"_id": 3, "kota": "jakarta-utara"}]
    assert sorted(db.projections.distinct("kota")) == ["jakarta-selatan", "jakarta-utara"]
    assert db.projections.distinct("category", {"kota": "jakarta-utara"}) == ["banjir"]
    # the aggregation works on copies: the stored documents are unchanged
    list(db.projections.aggregate([{"$set": {"status": "changed"}}]))
    assert db.projections.count_documents({"status": "changed"}) == 0


def test_cursors_across_batches(standin: MongoStandIn, db: pymongo.database.Database) -> None:
    db.timeline.insert_many([{"_id": f"e{i:03d}", "report_id": "R", "seq": i, "pad": "x" * 200} for i in range(250)])
    entries = list(db.timeline.find({"report_id": "R", "seq": {"$gt": 10}}).sort("seq", ASCENDING))
    assert [e["seq"] for e in entries] == list(range(11, 250))
    newest = list(db.timeline.find({}, {"seq": 1, "_id": 0}).sort("seq", DESCENDING).limit(150))
    assert [e["seq"] for e in newest] == list(range(249, 99, -1))
    small = list(db.timeline.find().sort([("seq", ASCENDING)]).skip(5).batch_size(7))
    assert len(small) == 245 and small[0]["seq"] == 5
    assert [e["seq"] for e in db.timeline.find().sort("seq", -1).limit(-3)] == [249, 248, 247]

    open_before = len(standin._cursors)
    cursor = db.timeline.find().batch_size(10)
    assert next(cursor)["seq"] == 0
    assert len(standin._cursors) == open_before + 1  # the rest waits in a server-side cursor
    cursor.close()  # killCursors
    deadline = time.monotonic() + 5
    while len(standin._cursors) > open_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(standin._cursors) == open_before

    aggregated = list(db.timeline.aggregate([{"$match": {"seq": {"$gte": 0}}}], batchSize=20))
    assert len(aggregated) == 250
    with pytest.raises(OperationFailure) as failure:
        db.command("getMore", bson.Int64(12345), collection="timeline")
    assert failure.value.code == 43


# --- indexes --------------------------------------------------------------------------------------------------


def test_indexes_and_duplicate_keys(db: pymongo.database.Database) -> None:
    reports = db.reports
    assert reports.create_index("tracking_token_hash", unique=True) == "tracking_token_hash_1"
    assert reports.create_index("idempotency_key_hash", unique=True, sparse=True) == "idempotency_key_hash_1"
    reports.create_index("outbox_due", sparse=True)
    reports.create_index([("assigned_opd.code", ASCENDING), ("status", ASCENDING)])
    reports.create_index("tracking_token_hash", unique=True)  # again: a no-op, like MongoDB
    info = reports.index_information()
    assert info["tracking_token_hash_1"]["unique"] is True
    assert info["idempotency_key_hash_1"]["sparse"] is True
    assert info["assigned_opd.code_1_status_1"]["key"] == [("assigned_opd.code", 1), ("status", 1)]
    assert "_id_" in info

    reports.insert_one({"_id": "A", "tracking_token_hash": "tA"})
    reports.insert_one({"_id": "B", "tracking_token_hash": "tB"})  # both without idempotency key: sparse
    with pytest.raises(DuplicateKeyError) as duplicate:
        reports.insert_one({"_id": "C", "tracking_token_hash": "tA"})
    assert duplicate.value.code == 11000
    assert "E11000" in str(duplicate.value) and "tracking_token_hash" in str(duplicate.value)
    assert duplicate.value.details["keyValue"] == {"tracking_token_hash": "tA"}
    with pytest.raises(DuplicateKeyError):
        reports.insert_one({"_id": "A", "tracking_token_hash": "tZ"})
    assert reports.find_one({"_id": "C"}) is None

    reports.insert_one({"_id": "K1", "tracking_token_hash": "t1", "idempotency_key_hash": "k"})
    with pytest.raises(DuplicateKeyError):
        reports.insert_one({"_id": "K2", "tracking_token_hash": "t2", "idempotency_key_hash": "k"})
    assert reports.find_one({"_id": "K2"}) is None  # no partial write

    # an update or an upsert that collides
    with pytest.raises(DuplicateKeyError):
        reports.update_one({"_id": "B"}, {"$set": {"tracking_token_hash": "tA"}})
    assert reports.find_one({"_id": "B"})["tracking_token_hash"] == "tB"  # rolled back
    with pytest.raises(DuplicateKeyError):
        reports.update_one({"_id": "NEW"}, {"$set": {"tracking_token_hash": "tA"}}, upsert=True)
    with pytest.raises(DuplicateKeyError):
        reports.find_one_and_update({"_id": "NEW"}, {"$set": {"tracking_token_hash": "tA"}}, upsert=True)
    assert reports.find_one({"_id": "NEW"}) is None

    # a value freed by an update or a delete can be taken again
    reports.update_one({"_id": "A"}, {"$set": {"tracking_token_hash": "tA2"}})
    reports.insert_one({"_id": "D", "tracking_token_hash": "tA"})
    reports.delete_one({"_id": "D"})
    reports.insert_one({"_id": "E", "tracking_token_hash": "tA"})
    with pytest.raises(DuplicateKeyError):
        reports.update_one({"_id": "E"}, {"$set": {"tracking_token_hash": "tA2"}})

    # bulk inserts report the failing index; unordered ones continue past it
    with pytest.raises(pymongo.errors.BulkWriteError) as bulk:
        reports.insert_many(
            [{"_id": "F1", "tracking_token_hash": "f1"}, {"_id": "F2", "tracking_token_hash": "tA"}, {"_id": "F3"}],
            ordered=False,
        )
    assert bulk.value.details["nInserted"] == 2
    assert [e["index"] for e in bulk.value.details["writeErrors"]] == [1]

    reports.drop_index("outbox_due_1")
    assert "outbox_due_1" not in reports.index_information()
    reports.drop_indexes()
    assert list(reports.index_information()) == ["_id_"]
    reports.insert_one({"_id": "G", "tracking_token_hash": "tA"})  # no unique index any more


def test_unique_index_on_existing_data(db: pymongo.database.Database) -> None:
    db.c.insert_many([{"_id": 1, "k": "a"}, {"_id": 2, "k": "a"}])
    with pytest.raises(DuplicateKeyError):
        db.c.create_index("k", unique=True)
    db.c.delete_one({"_id": 2})
    db.c.create_index("k", unique=True)
    with pytest.raises(DuplicateKeyError):
        db.c.insert_one({"_id": 3, "k": "a"})
    # array values fall back to mongomock's scan and keep working
    db.c.insert_one({"_id": 4, "k": ["x", "y"]})
    db.c.insert_one({"_id": 5, "k": "b"})
    with pytest.raises(DuplicateKeyError):
        db.c.insert_one({"_id": 6, "k": "b"})


# --- namespaces -----------------------------------------------------------------------------------------------


def test_databases_and_collections(client: pymongo.MongoClient, db: pymongo.database.Database) -> None:
    db.create_collection("made")
    with pytest.raises(CollectionInvalid):
        db.create_collection("made")
    db.other.insert_one({"_id": 1})
    assert sorted(db.list_collection_names()) == ["made", "other"]
    assert db.list_collection_names(filter={"name": "other"}) == ["other"]
    assert db.name in client.list_database_names()
    db.other.rename("renamed")
    assert sorted(db.list_collection_names()) == ["made", "renamed"]
    assert db.renamed.find_one({"_id": 1}) == {"_id": 1}
    assert db.other.find_one({"_id": 1}) is None
    db.drop_collection("renamed")
    db.drop_collection("never-existed")  # pymongo ignores "ns not found"
    assert db.list_collection_names() == ["made"]
    assert db.command("dbStats")["collections"] == 1
    client.drop_database(db.name)
    assert db.name not in client.list_database_names()


def test_two_clients_see_each_others_writes(standin: MongoStandIn, db: pymongo.database.Database) -> None:
    with client_for(standin) as first, client_for(standin) as second:
        first[db.name].shared.insert_one({"_id": "x", "n": 1})
        assert second[db.name].shared.find_one({"_id": "x"}) == {"_id": "x", "n": 1}
        second[db.name].shared.update_one({"_id": "x"}, {"$inc": {"n": 1}})
        assert first[db.name].shared.find_one({"_id": "x"})["n"] == 2


def test_unacknowledged_writes(db: pymongo.database.Database) -> None:
    fire_and_forget = db.get_collection("c", write_concern=WriteConcern(w=0))
    for i in range(20):
        fire_and_forget.insert_one({"_id": i})
    deadline = time.monotonic() + 5
    while db.c.count_documents({}) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert db.c.count_documents({}) == 20


# --- the wire protocol by hand ----------------------------------------------------------------------------------


def _exchange(sock: socket.socket, opcode: int, body: bytes, request_id: int) -> tuple[int, bytes]:
    sock.sendall(struct.pack("<iiii", 16 + len(body), request_id, 0, opcode) + body)
    header = b""
    while len(header) < 16:
        header += sock.recv(16 - len(header))
    length, _, response_to, reply_opcode = struct.unpack("<iiii", header)
    assert response_to == request_id
    payload = b""
    while len(payload) < length - 16:
        payload += sock.recv(length - 16 - len(payload))
    return reply_opcode, payload


def test_wire_protocol_op_query_and_op_msg(standin: MongoStandIn, db: pymongo.database.Database) -> None:
    with socket.create_connection(standin.address, timeout=5) as sock:
        # the legacy handshake: OP_QUERY on admin.$cmd, answered with OP_REPLY
        query = struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1)
        query += bson.encode({"isMaster": 1, "helloOk": True, "client": {"driver": {"name": "test"}}})
        opcode, payload = _exchange(sock, 2004, query, 1)
        assert opcode == 1
        _flags, cursor_id, _starting_from, returned = struct.unpack_from("<iqii", payload)
        assert (cursor_id, returned) == (0, 1)
        reply = bson.decode(payload[20:])
        assert reply["ismaster"] is True and reply["helloOk"] is True and reply["ok"] == 1.0

        # OP_MSG with a kind-1 document sequence and the checksum flag (the checksum itself is not verified)
        body = bson.encode(SON([("insert", "wire"), ("ordered", True), ("$db", db.name)]))
        docs = b"".join(bson.encode({"_id": i}) for i in range(3))
        sequence = b"documents\x00" + docs
        message = struct.pack("<I", 1) + b"\x00" + body + b"\x01" + struct.pack("<i", 4 + len(sequence)) + sequence
        opcode, payload = _exchange(sock, 2013, message + b"\x00\x00\x00\x00", 2)
        assert opcode == 2013 and payload[4] == 0
        assert bson.decode(payload[5:]) == {"n": 3, "ok": 1.0}

        # an unknown command
        opcode, payload = _exchange(sock, 2013, b"\x00\x00\x00\x00\x00" + bson.encode({"nope": 1, "$db": "x"}), 3)
        assert bson.decode(payload[5:])["code"] == 59
    assert db.wire.count_documents({}) == 3


# --- concurrency, faults, restarts ------------------------------------------------------------------------------


def test_concurrent_clients_smoke(standin: MongoStandIn, db: pymongo.database.Database) -> None:
    threads, per_thread = 20, 200
    errors: list[BaseException] = []
    db.counters.insert_one({"_id": "c", "n": 0})
    db.items.create_index("key", unique=True)
    with client_for(standin, maxPoolSize=threads) as shared:
        coll = shared[db.name]

        def work(t: int) -> None:
            try:
                for i in range(per_thread):
                    kind = i % 4
                    if kind == 0:
                        coll.items.insert_one({"_id": f"{t}-{i}", "key": f"k{t}-{i}", "t": t})
                    elif kind == 1:
                        assert coll.items.find_one({"_id": f"{t}-{i - 1}"})["t"] == t
                    elif kind == 2:
                        coll.counters.find_one_and_update({"_id": "c"}, {"$inc": {"n": 1}})
                    else:
                        coll.items.update_one({"_id": f"{t}-{i - 3}"}, {"$push": {"seen": i}})
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert not errors, errors[:3]
    assert db.counters.find_one({"_id": "c"})["n"] == threads * per_thread // 4
    assert db.items.count_documents({}) == threads * per_thread // 4
    assert db.items.count_documents({"seen": {"$size": 1}}) == threads * per_thread // 4


def test_restart_with_data_dir_keeps_data(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "mongo")
    server = MongoStandIn("127.0.0.1", 0, data_dir=data_dir).start()
    port = server.port
    client = client_for(server, serverSelectionTimeoutMS=1000)
    try:
        db = client.persist
        db.reports.create_index("token", unique=True)
        db.reports.insert_many([{"_id": i, "token": f"t{i}", "n": 0} for i in range(50)])
        db.reports.update_many({"_id": {"$lt": 10}}, {"$inc": {"n": 5}})
        db.reports.find_one_and_update({"_id": 49}, {"$push": {"h": "x"}})
        db.reports.delete_many({"_id": {"$gte": 40, "$lt": 45}})
        db.counters.find_one_and_update({"_id": "seq"}, {"$inc": {"v": 1}}, upsert=True)
        db.create_collection("empty")
        db.dropped.insert_one({"_id": 1})
        db.drop_collection("dropped")
        db.gone.insert_one({"_id": 1})
        db.gone.rename("moved")
        server.stop()

        with pytest.raises(AutoReconnect):
            client.persist.reports.find_one({"_id": 1})

        server = MongoStandIn("127.0.0.1", port, data_dir=data_dir).start()
        # the same MongoClient reconnects by itself
        assert db.reports.find_one({"_id": 1}) == {"_id": 1, "token": "t1", "n": 5}
        assert db.reports.count_documents({}) == 45
        assert db.reports.find_one({"_id": 49})["h"] == ["x"]
        assert db.counters.find_one({"_id": "seq"})["v"] == 1
        assert sorted(db.list_collection_names()) == ["counters", "empty", "moved", "reports"]
        with pytest.raises(DuplicateKeyError):
            db.reports.insert_one({"_id": 100, "token": "t1"})
        db.reports.insert_one({"_id": 101, "token": "t101"})
    finally:
        client.close()
        server.stop()

    # a torn record at the end (a crash in the middle of a write) is skipped
    with open(os.path.join(data_dir, Journal.FILE), "ab") as journal:
        journal.write(bson.encode({"o": "p", "d": "persist", "c": "reports", "doc": {"_id": 999}})[:-7])
    server = MongoStandIn("127.0.0.1", 0, data_dir=data_dir).start()
    try:
        with client_for(server) as again:
            assert again.persist.reports.count_documents({}) == 46
            assert again.persist.reports.find_one({"_id": 999}) is None
        with pytest.raises(RuntimeError):
            MongoStandIn("127.0.0.1", 0, data_dir=data_dir).start()  # one stand-in per data directory
    finally:
        server.stop()


_CLIENT_PROGRAM = textwrap.dedent(
    """
    import sys
    if sys.argv[2] == "eventlet":
        import eventlet
        eventlet.monkey_patch()
    import pymongo
    client = pymongo.MongoClient(sys.argv[1], tz_aware=True, serverSelectionTimeoutMS=5000)
    coll = client.procs.counters
    if sys.argv[2] == "eventlet":
        pool = eventlet.GreenPool(50)
        for _ in range(500):
            pool.spawn_n(coll.find_one_and_update, {"_id": "g"}, {"$inc": {"n": 1}}, upsert=True)
        pool.waitall()
        print("done", flush=True)
    else:
        i = 0
        while True:
            coll.update_one({"_id": "k"}, {"$inc": {"n": 1}}, upsert=True)
            i += 1
            if i == 50:
                print("running", flush=True)
    """
)


def test_service_process_killed_while_store_survives(tmp_path: Path) -> None:
    """The stand-in as its own process (the CLI); a client process is SIGKILLed; the store and others go on."""
    server = subprocess.Popen(
        [sys.executable, "-m", "devtools.mongo_standin", "--port", "0", "--log-level", "WARNING"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "listening on 127.0.0.1:" in line, line
        uri = f"mongodb://127.0.0.1:{int(line.rsplit(':', 1)[1])}/"
        program = tmp_path / "client.py"
        program.write_text(_CLIENT_PROGRAM)

        victim = subprocess.Popen([sys.executable, str(program), uri, "loop"], stdout=subprocess.PIPE, text=True)
        assert victim.stdout is not None and victim.stdout.readline().strip() == "running"
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)

        with pymongo.MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=5000) as survivor:
            counted = survivor.procs.counters.find_one({"_id": "k"})["n"]
            assert counted >= 50
            green = subprocess.run(
                [sys.executable, str(program), uri, "eventlet"], capture_output=True, text=True, timeout=60
            )
            assert green.stdout.strip() == "done", green.stderr[-2000:]
            assert survivor.procs.counters.find_one({"_id": "g"})["n"] == 500
            assert survivor.procs.counters.find_one({"_id": "k"})["n"] == counted
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0


# --- the stand-in's shortcuts return what mongomock returns ------------------------------------------------------


def test_index_shortcuts_agree_with_mongomock() -> None:
    """Random documents, writes and queries on indexed paths: same results as plain mongomock (which scans)."""
    import random

    import mongomock

    from devtools.mongo_standin import FastClient

    rng = random.Random(20250301)
    days = [datetime.datetime(2025, 3, d) for d in range(1, 6)]
    fast = FastClient().db.c
    reference = mongomock.MongoClient().db.c
    for collection in (fast, reference):
        collection.create_index("a")
        collection.create_index([("b.c", ASCENDING), ("a", DESCENDING)])
        collection.create_index("d", sparse=True)
        collection.create_index("u", unique=True, sparse=True)

    def value() -> object:
        return rng.choice([0, 1, 2, 3, 2.0, None, True, "x", [1, 2], [3], {"k": 1}, float("nan")])

    def document(i: int) -> dict[str, object]:
        doc: dict[str, object] = {"_id": i}
        if rng.random() < 0.8:
            doc["a"] = value()
        if rng.random() < 0.6:
            doc["b"] = rng.choice([{"c": rng.choice("pqr")}, [{"c": "p"}, {"c": "q"}], {"x": 1}, "flat"])
        if rng.random() < 0.5:
            doc["d"] = rng.choice(days)
        if rng.random() < 0.3:
            doc["u"] = f"u{rng.randrange(40)}"
        return doc

    def query() -> dict[str, object]:
        v = rng.choice([0, 1, 2, 3, 2.0, None, True, "x", [1, 2], 3.5])
        return rng.choice(
            [
                {"a": v},
                {"a": {"$eq": v}},
                {"a": {"$in": [v, rng.choice([0, 1, None, "x"])]}},
                {"a": {"$gte": 1}},
                {"a": {"$gt": 0, "$lt": 3}},
                {"a": {"$lte": v}},
                {"a": {"$exists": rng.choice([True, False])}},
                {"a": {"$ne": v}},
                {"a": {"$nin": [0, 1]}},
                {"a": {"$size": 2}},
                {"a": {"$elemMatch": {"$gt": 1}}},
                {"a": {"$all": [1]}},
                {"b.c": rng.choice("pqr")},
                {"b.c": {"$in": ["p", "r"]}},
                {"b.c": {"$exists": True}, "a": v},
                {"d": {"$lte": rng.choice(days)}},
                {"d": rng.choice(days)},
                {"u": f"u{rng.randrange(40)}"},
                {"u": {"$exists": False}},
                {"$or": [{"a": 1}, {"b.c": "p"}]},
                {"b.c": {"$regex": "^[pq]"}},
                {"a": {"$not": {"$gt": 1}}},
                {"a": {"$type": "number"}},
                {"a": {"$in": [[1, 2], 3]}},
                {"a": [1, 2]},
                {"a": {"k": 1}},
                {"a": v, "d": {"$gt": days[1]}},
            ]
        )

    def write(i: int) -> None:
        choice = rng.random()
        q = query()
        if choice < 0.35:
            doc = document(1000 + i)
            outcomes = []
            for collection in (fast, reference):
                try:
                    collection.insert_one(dict(doc))
                    outcomes.append("ok")
                except DuplicateKeyError:
                    outcomes.append("duplicate")
            assert outcomes[0] == outcomes[1], doc
        elif choice < 0.6:
            update = rng.choice(
                [
                    {"$set": {"a": value()}},
                    {"$inc": {"n": 1}},
                    {"$unset": {"a": ""}},
                    {"$set": {"b.c": rng.choice("pqr")}},
                    {"$set": {"d": rng.choice(days)}},
                    {"$unset": {"d": ""}},
                    {"$set": {"u": f"u{rng.randrange(40)}"}},
                ]
            )
            results = []
            for collection in (fast, reference):
                try:
                    r = collection.update_many(q, update)
                    results.append((r.matched_count, r.modified_count))
                except DuplicateKeyError:
                    results.append("duplicate")
                except (WriteError, TypeError, ValueError, OperationFailure):
                    results.append("failed")
            assert results[0] == results[1], (q, update)
            if isinstance(results[0], str):
                resync()
        elif choice < 0.7:
            assert fast.delete_many(q).deleted_count == reference.delete_many(q).deleted_count, q
        elif choice < 0.8:
            inc = {"$inc": {"a": 1}} if rng.random() < 0.5 else {"$set": {"a": rng.choice([0, 1, 2])}}
            try:
                left = fast.update_many({"a": {"$gte": 0}}, inc).modified_count
            except (WriteError, TypeError, ValueError, OperationFailure):
                left = None
            try:
                right = reference.update_many({"a": {"$gte": 0}}, inc).modified_count
            except (WriteError, TypeError, ValueError, OperationFailure):
                right = None
            assert left == right
            if left is None:
                resync()

    def resync() -> None:
        # a multi-document update that failed half-way changed documents in iteration order, which is not defined
        fast.delete_many({})
        for doc in reference.find():
            fast.insert_one(doc)

    def same(docs_fast: list[dict[str, object]], docs_reference: list[dict[str, object]]) -> bool:
        return repr(sorted(docs_fast, key=lambda d: d["_id"])) == repr(sorted(docs_reference, key=lambda d: d["_id"]))

    for i in range(300):
        doc = document(i)
        doc.pop("u", None)
        fast.insert_one(dict(doc))
        reference.insert_one(dict(doc))
    for i in range(1500):
        write(i)
        q = query()
        assert same(list(fast.find(q)), list(reference.find(q))), q
    assert same(list(fast.find()), list(reference.find()))


class MatcherCalls:
    """How many documents mongomock's matcher checks from now on: what the stand-in's indexes spare it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from mongomock import collection as mongomock_collection
        from mongomock import filtering

        self.count = 0
        original = filtering.filter_applies

        def counting(*args: object, **kwargs: object) -> bool:
            self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(filtering, "filter_applies", counting)
        monkeypatch.setattr(mongomock_collection, "filter_applies", counting)


def test_indexed_queries_do_not_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queries on the leading field of an index (and on _id) only match the documents holding the value."""
    from devtools.mongo_standin import FastClient

    reports = FastClient().jaklapor_intake.reports
    reports.create_index("tracking_token_hash", unique=True)
    reports.create_index("outbox_due", sparse=True)
    due = datetime.datetime(2025, 3, 1)
    for i in range(2000):
        reports.insert_one(
            {"_id": f"R{i}", "tracking_token_hash": f"t{i}", **({"outbox_due": due} if i % 500 == 0 else {})}
        )
    reports.update_one({"_id": "R500"}, {"$unset": {"outbox_due": ""}})

    checked = MatcherCalls(monkeypatch)
    assert reports.find_one({"tracking_token_hash": "t1234"})["_id"] == "R1234"
    assert [d["_id"] for d in reports.find({"outbox_due": {"$lte": due}}).sort("_id")] == ["R0", "R1000", "R1500"]
    assert reports.count_documents({"outbox_due": {"$exists": True}}) == 3
    assert reports.find_one({"_id": "R7"}, {"_id": 1}) == {"_id": "R7"}
    assert checked.count < 20
    checked.count = 0
    assert reports.count_documents({"tracking_token_hash": {"$ne": "t1"}}) == 1999  # not narrowed: scans
    assert checked.count >= 2000


def test_a_field_that_keeps_changing_stays_narrowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox's way: every report is stored with its own due time, which the relay then clears or moves. The
    due reports are still found among the documents that hold a due time, not by scanning the collection."""
    from devtools.mongo_standin import FastClient

    reports = FastClient().jaklapor_intake.reports
    reports.create_index("outbox_due", sparse=True)
    start = datetime.datetime(2025, 3, 1)
    for i in range(2000):
        reports.insert_one({"_id": f"R{i}", "outbox_due": start + datetime.timedelta(milliseconds=i)})
        if i % 3 == 0:  # handed over, then put back with a later due time, as a failed publish does
            reports.update_one({"_id": f"R{i}"}, {"$set": {"outbox_due": start + datetime.timedelta(hours=1)}})
        if i % 100 != 0:  # published
            reports.update_one({"_id": f"R{i}"}, {"$unset": {"outbox_due": ""}})
    reports.delete_many({"_id": {"$in": ["R0", "R100"]}})

    checked = MatcherCalls(monkeypatch)
    due = [d["_id"] for d in reports.find({"outbox_due": {"$lte": start + datetime.timedelta(minutes=1)}})]
    assert sorted(due) == sorted(f"R{i}" for i in range(200, 2000, 100) if i % 3 != 0)
    assert reports.count_documents({"outbox_due": {"$exists": True}}) == 18
    assert checked.count < 60


def test_expired_documents_do_not_pile_up_in_the_indexes() -> None:
    """Routing's recent reports expire (TTL) by the thousand. Their entries in the stand-in's indexes must not stay
    behind for good, or a stand-in left running keeps one per report ever routed."""
    from devtools.mongo_standin import FastClient, _field_indexes

    recent = FastClient().jaklapor_routing.recent_reports
    recent.create_index([("cell", ASCENDING), ("category", ASCENDING)])
    recent.create_index("expires_at", expireAfterSeconds=0)
    past = datetime.datetime(2025, 3, 1)
    future = datetime.datetime.now() + datetime.timedelta(days=1)
    recent.insert_many([{"_id": f"live{i}", "cell": f"c{i}", "expires_at": future} for i in range(10)])
    for day in range(10):
        recent.insert_many([{"_id": f"d{day}-{i}", "cell": f"c{i % 10}", "expires_at": past} for i in range(300)])
        recent._store._jaklapor_swept_at = float("-inf")  # the once-a-second sweep is due
        assert [doc["_id"] for doc in recent.find({"cell": "c3"})] == ["live3"]
    assert recent.count_documents({}) == 10
    assert _field_indexes(recent._store)["cell"].entries <= 2 * 10 + 64


# ---- the journal's fsync policy (the local mode's durability) -------------------------------------------------------


def test_with_fsync_a_write_returns_only_once_its_record_is_on_disk_and_concurrent_writes_share_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(str(tmp_path), fsync=True)
    journal.open()
    synced_sizes: list[int] = []
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(0.05)  # a disk's flush: writes arriving meanwhile must wait for the next one, not each its own
        real_fsync(fd)
        synced_sizes.append(os.fstat(fd).st_size)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    write_lock = threading.Lock()  # the server's lock around appends
    returned: list[tuple[int, int]] = []

    def writer(n: int) -> None:
        with write_lock:
            journal.write(b"record %03d;" % n)
            upto = journal.appended
        journal.sync(upto)
        returned.append((upto, max(synced_sizes)))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(returned) == 16
    assert all(upto <= on_disk for upto, on_disk in returned)  # nobody was answered before its bytes were synced
    assert 1 <= len(synced_sizes) < 16  # group commit
    journal.close()


def test_only_with_fsync_a_write_waits_for_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    with MongoStandIn("127.0.0.1", 0, data_dir=str(tmp_path)) as server:
        client = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000)
        before = len(calls)  # compaction at start may sync; a write never does
        client.db.reports.insert_one({"_id": 1})
        assert len(calls) == before
        client.close()
    with MongoStandIn("127.0.0.1", 0, data_dir=str(tmp_path), fsync=True) as server:
        before = len(calls)
        client = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000)
        client.db.reports.insert_one({"_id": 2})
        assert len(calls) > before  # answered after an fsync
        assert client.db.reports.count_documents({}) == 2
        client.close()


def test_expired_documents_go_within_the_ttl_sweep_and_others_stay(db: pymongo.database.Database) -> None:
    """MongoDB removes expired documents in a background sweep; the stand-in sweeps at most once a second instead of
    scanning the collection on every operation, so an expired document is gone within about a second."""
    sessions = db["ttl_sessions"]
    sessions.create_index("expires_at", expireAfterSeconds=0)
    now = datetime.datetime.now(datetime.UTC)
    sessions.insert_many(
        [
            {"_id": "expired", "expires_at": now - datetime.timedelta(seconds=5)},
            {"_id": "valid", "expires_at": now + datetime.timedelta(hours=1)},
        ]
    )
    deadline = time.monotonic() + 5
    while sessions.find_one({"_id": "expired"}) is not None:
        assert time.monotonic() < deadline, "the expired document was never removed"
        time.sleep(0.1)  # polling the condition itself: the sweep runs on the server's own clock
    assert sessions.find_one({"_id": "valid"}) is not None


def test_server_status_counts_the_operations_run(client: pymongo.MongoClient, db: pymongo.database.Database) -> None:
    """What a benchmark divides by its reports: MongoDB's opcounters, and the stand-in's count per collection."""

    def status() -> dict:
        return client.admin.command("serverStatus")

    before = status()
    db["counted"].insert_one({"_id": 1})
    db["counted"].find_one({"_id": 1})
    db["counted"].update_one({"_id": 1}, {"$set": {"n": 1}})
    after = status()
    assert after["opcounters"]["insert"] - before["opcounters"]["insert"] == 1
    assert after["opcounters"]["query"] - before["opcounters"]["query"] == 1
    assert after["opcounters"]["update"] - before["opcounters"]["update"] == 1
    commands = after["jaklaporCommands"]
    for command in ("insert", "find", "update"):
        assert commands[f"{db.name}.counted.{command}"] == 1
