"""HTTP requests never take a service's last worker slots: its consumers and timers keep running under a flood of
requests (before, the intake's routing results waited behind every queued request)."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import eventlet
import pytest
from eventlet.event import Event
from nameko.containers import ServiceContainer
from nameko.timer import timer

from jaklapor.web import SLOTS_KEPT_FOR_CONSUMERS, api, http_request_slots


class Seen:
    """What the service saw; reset by the fixture."""

    active = 0
    peak = 0
    ticks = 0
    release = Event()


class SlotService:
    name = "slots"

    @api("GET", "/hold")
    def hold(self, request: Any) -> dict[str, bool]:
        Seen.active += 1
        Seen.peak = max(Seen.peak, Seen.active)
        try:
            Seen.release.wait()
        finally:
            Seen.active -= 1
        return {"ok": True}

    @timer(interval=0.02)
    def tick(self) -> None:
        Seen.ticks += 1


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        eventlet.sleep(0.01)  # lets the container's green threads run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def service() -> Iterator[str]:
    Seen.active = Seen.peak = Seen.ticks = 0
    Seen.release = Event()
    port = free_port()
    container = ServiceContainer(SlotService, {"max_workers": 5, "HTTP_ADDRESSES": {"slots": f"127.0.0.1:{port}"}})
    container.start()
    try:
        yield f"http://127.0.0.1:{port}/hold"
    finally:
        if not Seen.release.ready():
            Seen.release.send(None)
        container.stop()


def test_a_timer_still_runs_while_requests_wait_for_every_slot(service: str) -> None:
    http_slots = 5 - SLOTS_KEPT_FOR_CONSUMERS
    with ThreadPoolExecutor(8) as clients:  # blocking clients in OS threads; the service runs on this thread's hub
        answers = [clients.submit(lambda: urllib.request.urlopen(service, timeout=30).status) for _ in range(8)]
        wait_until(lambda: Seen.active >= http_slots, "the requests to hold their slots")
        ticks_when_full = Seen.ticks

        wait_until(lambda: Seen.ticks >= ticks_when_full + 3, "the timer to run while requests wait")

        assert Seen.active == http_slots
        assert not any(answer.done() for answer in answers)  # the other requests wait; none is refused
        Seen.release.send(None)
        wait_until(lambda: all(answer.done() for answer in answers), "every request to be answered")
    assert [answer.result() for answer in answers] == [200] * 8
    assert Seen.peak == http_slots


@pytest.mark.parametrize(
    ("configured", "max_workers", "slots"),
    [(None, 10, 10 - SLOTS_KEPT_FOR_CONSUMERS), ("", 10, 7), (4, 10, 4), ("12", 10, 10), (None, 2, 1)],
)
def test_request_slots_come_from_the_config_or_leave_a_few_to_consumers(
    configured: Any, max_workers: int, slots: int
) -> None:
    assert http_request_slots({"HTTP_MAX_CONCURRENT": configured}, max_workers) == slots
