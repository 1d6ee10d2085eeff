"""Report numbers: unique per day across replicas, increasing within one, reserved a block per write."""

from __future__ import annotations

import mongomock

from services.intake.dependencies import SEQUENCE_BLOCK, ReportRepository


def test_replicas_sharing_the_store_never_hand_out_the_same_number() -> None:
    db = mongomock.MongoClient(tz_aware=True)["intake"]
    first, second = ReportRepository(db), ReportRepository(db)
    numbers_first = [first.next_sequence("20261128") for _ in range(SEQUENCE_BLOCK + 5)]
    numbers_second = [second.next_sequence("20261128") for _ in range(SEQUENCE_BLOCK + 5)]

    assert numbers_first == sorted(numbers_first) and numbers_second == sorted(numbers_second)
    assert len(set(numbers_first) | set(numbers_second)) == 2 * (SEQUENCE_BLOCK + 5)
    assert numbers_first[0] == 1
    # four blocks reserved for 2 × (block + 5) numbers: one write per block, not per report
    assert db.counters.find_one({"_id": "report-20261128"})["seq"] == 4 * SEQUENCE_BLOCK


def test_each_day_counts_from_one() -> None:
    repository = ReportRepository(mongomock.MongoClient(tz_aware=True)["intake"])
    assert [repository.next_sequence("20261128") for _ in range(3)] == [1, 2, 3]
    assert repository.next_sequence("20261129") == 1
