"""A live stream sends every timeline entry once, also one stored after a higher-numbered entry (two events of one
report handled at the same moment), and ends once the report's final entry is sent."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import mongomock
from eventlet.queue import Empty

from services.notify.dependencies import NotifyRepository
from services.notify.service import NotifyService


class NoWakeups:
    """Wake-ups as the hub gives them, here always 'nothing new yet' so the stream re-reads at once."""

    def subscribe(self, report_id: str) -> NoWakeups:
        return self

    def unsubscribe(self, report_id: str, queue: object) -> None:
        pass

    def get(self, timeout: float) -> None:
        raise Empty


class Stream:
    def __init__(self) -> None:
        self.store = NotifyRepository(mongomock.MongoClient(tz_aware=True)["notify"])
        self.live = NoWakeups()


def store_entry(store: NotifyRepository, seq: int, event_id: str) -> None:
    store.timeline.insert_one(
        {"_id": event_id, "report_id": "r1", "seq": seq, "entry": {"event_id": event_id, "kind": "status"}}
    )


def sent_ids(frames: list[bytes]) -> list[str]:
    return [line.split(":", 1)[1].strip() for f in frames for line in f.decode().splitlines() if line.startswith("id:")]


def test_an_entry_stored_late_is_still_sent_and_nothing_twice() -> None:
    stream = Stream()
    stream.store.reports.insert_one({"_id": "r1", "seq": 0})
    frames = NotifyService._frames(stream, "r1", 0)  # type: ignore[arg-type]
    assert next(frames).startswith(b"retry:")
    store_entry(stream.store, 2, "routed")  # numbered second, stored first
    got = [next(frames)]
    store_entry(stream.store, 1, "submitted")
    store_entry(stream.store, 3, "dikerjakan")
    got += [next(frames), next(frames)]
    assert sent_ids(got) == ["2", "1", "3"]
    store_entry(stream.store, 4, "selesai")
    assert sent_ids([next(frames)]) == ["4"]
    frames.close()


def store_status(store: NotifyRepository, seq: int, status: str) -> None:
    entry = {"event_id": status, "kind": "status_changed", "status": status}
    store.timeline.insert_one({"_id": status, "report_id": "r1", "seq": seq, "entry": entry})


def test_the_stream_ends_after_the_final_entry() -> None:
    stream = Stream()
    stream.store.reports.insert_one({"_id": "r1", "seq": 0})
    store_status(stream.store, 1, "menunggu")
    store_status(stream.store, 2, "dikerjakan")
    frames = NotifyService._frames(stream, "r1", 0)  # type: ignore[arg-type]
    got = list(itertools.islice(frames, 3))
    assert sent_ids(got) == ["1", "2"]
    store_status(stream.store, 3, "selesai")
    # bounded: a stream that does not end would go on with keep-alives
    rest = list(itertools.islice(frames, 5))
    assert sent_ids(rest) == ["3"] and len(rest) == 1


def test_a_stream_reopened_after_the_final_entry_sends_what_is_left_and_ends() -> None:
    stream = Stream()
    stream.store.reports.insert_one({"_id": "r1", "seq": 0})
    for seq, status in enumerate(("menunggu", "dikerjakan", "selesai"), start=1):
        store_status(stream.store, seq, status)
    stream.store.mark_final("r1", datetime.now(UTC))
    # stored after the final entry (numbered later): the client that saw selesai still gets it
    store_entry(stream.store, 4, "late")
    frames = list(itertools.islice(NotifyService._frames(stream, "r1", 3), 5))  # type: ignore[arg-type]
    assert frames[0].startswith(b"retry:") and sent_ids(frames) == ["4"] and len(frames) == 2


def test_a_final_entry_stored_before_an_earlier_one_waits_for_it_before_the_stream_ends() -> None:
    stream = Stream()
    stream.store.reports.insert_one({"_id": "r1", "seq": 0})
    store_status(stream.store, 1, "menunggu")
    frames = NotifyService._frames(stream, "r1", 0)  # type: ignore[arg-type]
    assert sent_ids(list(itertools.islice(frames, 2))) == ["1"]
    store_status(stream.store, 3, "selesai")  # numbered after 2, stored before it
    assert sent_ids([next(frames)]) == ["3"]
    store_entry(stream.store, 2, "escalated")
    rest = list(itertools.islice(frames, 5))
    assert sent_ids(rest) == ["2"] and len(rest) == 1  # the late entry, then the end


def test_a_gap_that_never_fills_does_not_keep_a_finished_stream_open() -> None:
    stream = Stream()
    stream.store.reports.insert_one({"_id": "r1", "seq": 0})
    store_status(stream.store, 1, "menunggu")
    store_status(stream.store, 3, "ditolak")  # number 2 was taken by a write that failed
    frames = list(itertools.islice(NotifyService._frames(stream, "r1", 0), 10))  # type: ignore[arg-type]
    assert sent_ids(frames) == ["1", "3"]
    assert len(frames) < 10  # it ended after a few waits (keep-alives at most), not never
