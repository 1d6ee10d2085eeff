"""The routing ledger: the first decision for (report, hop) is kept, and one worker at a time delivers it."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import timedelta

import mongomock
import pymongo
import pytest
from pymongo.database import Database

from devtools.mongo_standin import MongoStandIn
from jaklapor.events import OpdRef
from jaklapor.vocabulary import utcnow
from services.routing.dependencies import ClaimBusy, LedgerRepository, RecentReportsRepository
from services.routing.duplicates import (
    METRES_PER_DEGREE_LAT,
    DuplicateTerms,
    distance_m,
    index_entry,
    search_for,
)
from services.routing.incidents import Arrival, IncidentRepository
from services.routing.surge import SurgeRule
from services.routing.tests.reports import MELAWAI


def ledger(lease: timedelta = timedelta(seconds=30)) -> LedgerRepository:
    return LedgerRepository(mongomock.MongoClient(tz_aware=True)["routing"], lease)


def test_a_redelivered_report_gets_the_first_decision_and_no_second_delivery() -> None:
    repository = ledger()
    first, claimed = repository.record_and_claim("JK-1", 0, {"opd_code": "kel-melawai"})
    assert claimed and first["opd_code"] == "kel-melawai"
    repository.mark_delivered("JK-1", 0, utcnow())

    again, claimed_again = repository.record_and_claim("JK-1", 0, {"opd_code": "satpol-pp"})
    assert not claimed_again and again["opd_code"] == "kel-melawai"
    other_hop, claimed_hop = repository.record_and_claim("JK-1", 1, {"opd_code": "satpol-pp"})
    assert claimed_hop and other_hop["opd_code"] == "satpol-pp"


def test_a_claim_of_a_worker_that_died_is_taken_over_after_its_lease() -> None:
    repository = ledger(lease=timedelta(milliseconds=1))
    repository.record_and_claim("JK-1", 0, {"opd_code": "kel-melawai"})  # this worker dies before delivering
    kept, claimed = repository.record_and_claim("JK-1", 0, {"opd_code": "satpol-pp"})
    assert claimed and kept["opd_code"] == "kel-melawai"


# ---- a batch, through the MongoDB wire stand-in (devtools/mongo_standin.py) as the services use it ----------------


@pytest.fixture(scope="module")
def routing_db() -> Iterator[Database]:
    server = MongoStandIn("127.0.0.1", 0).start()
    client = pymongo.MongoClient(server.uri, tz_aware=True, serverSelectionTimeoutMS=5000)
    yield client["routing"]
    client.close()
    server.stop()


def test_a_batch_keeps_the_new_decisions_in_one_insert_and_the_known_ones_as_before(routing_db: Database) -> None:
    repository = LedgerRepository(routing_db, timedelta(seconds=30))
    repository.record_and_claim("B-1", 0, {"opd_code": "first"})
    repository.mark_delivered("B-1", 0, utcnow())
    repository.record_and_claim("B-2", 0, {"opd_code": "first"})
    repository.release_claim("B-2", 0)  # its publish failed
    kept = repository.record_and_claim_many(
        [("B-0", 0, {"opd_code": "new"}), ("B-1", 0, {"opd_code": "again"}), ("B-2", 0, {"opd_code": "again"})]
    )
    assert [(record["opd_code"], claimed) for record, claimed in kept] == [
        ("new", True),
        ("first", False),
        ("first", True),
    ]
    assert repository.decided(["B-0:0", "B-1:0", "B-9:0"]) == {"B-0:0", "B-1:0"}
    repository.mark_delivered_many(["B-0:0", "B-2:0"], utcnow())
    again = repository.record_and_claim_many([("B-0", 0, {}), ("B-2", 0, {})])
    assert [claimed for _record, claimed in again] == [False, False]


def test_a_batch_holding_claims_gives_them_back_rather_than_wait_for_another_worker(routing_db: Database) -> None:
    repository = LedgerRepository(routing_db, timedelta(seconds=30))
    repository.record_and_claim("C-1", 0, {"opd_code": "first"})  # another worker is delivering it
    with pytest.raises(ClaimBusy):
        repository.record_and_claim_many([("C-0", 0, {"opd_code": "new"}), ("C-1", 0, {"opd_code": "again"})])
    assert routing_db["decisions"].find_one({"_id": "C-0:0"})["claimed_until"] is None
    assert routing_db["decisions"].find_one({"_id": "C-1:0"})["claimed_until"] is not None
    repository.release_claims(["C-1:0"])


def test_the_index_answers_a_batch_in_one_query_as_it_answers_each(routing_db: Database) -> None:
    index = RecentReportsRepository(routing_db)
    index.ensure_indexes()
    terms, at = DuplicateTerms(), utcnow()
    entries = [
        index_entry(f"D-{n}", category, -6.2443 + n * 0.0005, 106.8001, at - timedelta(hours=n), terms)
        for n, category in enumerate(["sampah", "sampah", "jalan", "sampah", "sampah"])
    ]
    index.record_many(entries[:3])
    index.record_many(entries)  # the first three are kept as they were
    assert routing_db["recent_reports"].count_documents({"_id": {"$regex": "^D-"}}) == 5
    searches = [search_for(e["category"], e["lat"], e["lon"], e["submitted_at"], terms) for e in entries]
    together = index.candidates_many(searches)
    assert [sorted(d["_id"] for d in found) for found in together] == [
        sorted(d["_id"] for d in index.candidates(search)) for search in searches
    ]
    assert [d["_id"] for d in together[2]] == ["D-2"]


def test_the_surge_store_counts_a_batch_as_its_reports_one_by_one(routing_db: Database) -> None:
    store = IncidentRepository(routing_db)
    store.ensure_indexes()
    opd = OpdRef(code="kelurahan-melawai", name="Kelurahan Melawai", level="kelurahan")

    def arrival(report_id: str, key: str) -> Arrival:
        return Arrival(report_id, 1, key, "kelurahan-melawai.x.y.incident", opd, "sampah", MELAWAI, {"id": report_id})

    rule, now = SurgeRule(min_reports=3), utcnow()
    batch = [
        arrival("S-1", "k"),
        arrival("S-2", "k"),
        arrival("Q-1", "quiet"),
        arrival("S-3", "k"),
        arrival("S-4", "k"),
    ]
    outcomes = store.observe_many(batch, rule, now)
    assert [o is None for o in outcomes] == [True, True, True, False, False]
    opened, joined = outcomes[3], outcomes[4]
    assert opened.opened and [m["report_id"] for m in opened.early_members] == ["S-1", "S-2"]
    assert joined.incident_id == opened.incident_id and not joined.opened
    again = store.observe_many(batch, rule, now)  # redelivered: members stay members, the others are counted once
    assert [o.incident_id if o else None for o in again] == [opened.incident_id] * 2 + [None] + [opened.incident_id] * 2
    assert routing_db["surge_arrivals"].count_documents({"key": "quiet"}) == 1


def test_a_report_within_the_radius_is_found_across_a_cell_border(routing_db: Database) -> None:
    index = RecentReportsRepository(routing_db)
    index.ensure_indexes()
    terms, at, rng = DuplicateTerms(), utcnow(), random.Random(19)
    for n in range(200):
        # a point just either side of a cell border, and another 0-148 m away in any direction
        lat = round(-6.2 + rng.choice([-1, 1]) * 0.00001 + rng.randrange(-50, 50) * 0.002, 6)
        lon = 106.8 + rng.uniform(-0.1, 0.1)
        bearing, metres = rng.uniform(0, 6.2832), rng.uniform(0, 148)
        other_lat = lat + metres * math.cos(bearing) / METRES_PER_DEGREE_LAT
        other_lon = lon + metres * math.sin(bearing) / (METRES_PER_DEGREE_LAT * math.cos(math.radians(lat)))
        assert distance_m(lat, lon, other_lat, other_lon) <= terms.radius_m
        index.record_many([index_entry(f"near-{n}", "banjir", other_lat, other_lon, at, terms)])
        found = index.candidates(search_for("banjir", lat, lon, at, terms))
        assert f"near-{n}" in {doc["_id"] for doc in found}, (lat, lon, other_lat, other_lon)


def test_entries_kept_before_cells_get_theirs_when_the_index_starts(routing_db: Database) -> None:
    terms, at = DuplicateTerms(), utcnow()
    old = index_entry("old-1", "sampah", -6.2443, 106.8001, at, terms)
    del old["cell"]
    routing_db["recent_reports"].insert_one(old)
    index = RecentReportsRepository(routing_db)
    index.ensure_indexes()
    found = index.candidates(search_for("sampah", -6.2444, 106.8002, at, terms))
    assert "old-1" in {doc["_id"] for doc in found}  # the fixture's store is shared with the tests above
