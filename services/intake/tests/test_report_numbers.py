"""Report numbers: unique per day across replicas and restarts, increasing within one, reserved a block per write."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import eventlet
import mongomock
import pytest
from pymongo.database import Database

from services.intake.dependencies import SEQUENCE_BLOCK, ReportRepository, ReportStore
from services.intake.numbering import DAYS_KEPT, NumberingMark, NumberingMarkError


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


def test_concurrent_submissions_share_one_block_instead_of_reserving_one_each() -> None:
    db = mongomock.MongoClient(tz_aware=True)["intake"]
    repository = ReportRepository(db)
    store_write = repository.counters.find_one_and_update

    def slow_write(*args: object, **kwargs: object) -> object:
        eventlet.sleep(0.01)  # the store's round trip, during which the other green threads run
        return store_write(*args, **kwargs)

    repository.counters = SimpleNamespace(find_one_and_update=slow_write)  # type: ignore[assignment]
    pool = eventlet.GreenPool()
    numbers = list(pool.imap(lambda _: repository.next_sequence("20261128"), range(50)))

    assert sorted(numbers) == list(range(1, 51))  # no number skipped, none twice
    assert db.counters.find_one({"_id": "report-20261128"})["seq"] == SEQUENCE_BLOCK  # one block reserved


def test_each_day_counts_from_one() -> None:
    repository = ReportRepository(mongomock.MongoClient(tz_aware=True)["intake"])
    assert [repository.next_sequence("20261128") for _ in range(3)] == [1, 2, 3]
    assert repository.next_sequence("20261129") == 1


# ---- the local mode: numbers continue after a restart (the store is lost, the numbers handed out are not) ----


def fresh_store() -> Database:
    """An empty store, as `make run` has after its local store was wiped."""
    return mongomock.MongoClient(tz_aware=True)["intake"]


def test_a_wiped_local_store_continues_the_days_numbers(tmp_path: Path) -> None:
    before = ReportRepository(fresh_store(), NumberingMark(tmp_path))
    first_run = [before.next_sequence("20261128") for _ in range(SEQUENCE_BLOCK + 3)]
    assert first_run == list(range(1, SEQUENCE_BLOCK + 4))

    after = ReportRepository(fresh_store(), NumberingMark(tmp_path))  # the process restarted: its store is empty
    second_run = [after.next_sequence("20261128") for _ in range(3)]

    # the unused rest of the first run's block is skipped, never handed out again
    assert second_run == [2 * SEQUENCE_BLOCK + 1, 2 * SEQUENCE_BLOCK + 2, 2 * SEQUENCE_BLOCK + 3]
    assert after.next_sequence("20261129") == 1  # a new day still starts at 000001


def test_the_mark_is_on_disk_before_a_number_of_its_block_is_handed_out(tmp_path: Path) -> None:
    repository = ReportRepository(fresh_store(), NumberingMark(tmp_path))
    number = repository.next_sequence("20261128")
    # a kill -9 right now: what a new process would read
    with NumberingMark(tmp_path).locked() as marks:
        assert marks["20261128"] >= number
    assert json.loads((tmp_path / "report-numbers.json").read_text()) == {"20261128": SEQUENCE_BLOCK}


def test_processes_with_their_own_store_sharing_the_mark_never_overlap(tmp_path: Path) -> None:
    first = ReportRepository(fresh_store(), NumberingMark(tmp_path))
    second = ReportRepository(fresh_store(), NumberingMark(tmp_path))
    handed_out = []
    for _ in range(3 * SEQUENCE_BLOCK):
        handed_out += [first.next_sequence("20261128"), second.next_sequence("20261128")]
    assert len(set(handed_out)) == len(handed_out)


def test_concurrent_reservations_through_the_mark_never_overlap(tmp_path: Path) -> None:
    repositories = [ReportRepository(fresh_store(), NumberingMark(tmp_path)) for _ in range(4)]
    with ThreadPoolExecutor(len(repositories)) as pool:
        runs = list(pool.map(lambda r: [r.next_sequence("20261128") for _ in range(3 * SEQUENCE_BLOCK)], repositories))
    handed_out = [number for run in runs for number in run]
    assert len(set(handed_out)) == len(handed_out) == 4 * 3 * SEQUENCE_BLOCK


def test_the_mark_keeps_only_the_last_days(tmp_path: Path) -> None:
    repository = ReportRepository(fresh_store(), NumberingMark(tmp_path))
    days = [f"202611{day:02d}" for day in range(1, 11)]
    for day in days:
        repository.next_sequence(day)
    assert sorted(json.loads((tmp_path / "report-numbers.json").read_text())) == days[-DAYS_KEPT:]


@pytest.mark.parametrize("content", ["{not json", '["20261128", 40]', '{"20261128": "forty"}'])
def test_a_damaged_mark_hands_out_no_number_and_says_which_file(tmp_path: Path, content: str) -> None:
    (tmp_path / "report-numbers.json").write_text(content)
    mark = NumberingMark(tmp_path)
    with pytest.raises(NumberingMarkError, match=r"report-numbers.json is damaged.*restore it"):
        mark.check()
    with pytest.raises(NumberingMarkError):
        ReportRepository(fresh_store(), mark).next_sequence("20261128")


def test_an_unwritable_data_dir_is_refused_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(NumberingMarkError, match="cannot write the report-number mark"):
        NumberingMark(blocker / "jaklapor").check()


def test_only_the_local_mode_keeps_a_mark(tmp_path: Path) -> None:
    """In deployment MongoDB keeps the counters; in the local mode (whatever store it uses) the mark is on disk."""
    store = ReportStore()
    store.container = SimpleNamespace(
        config={"MONGO_URI": "mongodb://mongo.example:27017/", "LOCAL_DATA_DIR": str(tmp_path)}
    )
    assert store.make_repository(fresh_store()).numbering_mark is None

    store.container.config["JAKLAPOR_MODE"] = "local"  # what `make run` hands its services with the local store
    mark = store.make_repository(fresh_store()).numbering_mark
    assert mark is not None and mark.path == tmp_path / "report-numbers.json"
