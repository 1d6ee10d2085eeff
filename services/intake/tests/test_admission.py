"""Admission control's counting (services/intake/admission.py): which bound refuses, and what the client is told."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import eventlet
import pytest
from eventlet.event import Event
from nameko.containers import ServiceContainer

from services.intake.admission import IN_FLIGHT, OUTBOX, WAITING, Admission, AdmissionPolicy, admitted_api


def test_in_flight_bound_refuses_the_next_and_admits_again_when_one_leaves() -> None:
    admission = Admission(AdmissionPolicy(max_in_flight=2, max_wait_seconds=0, max_outbox_pending=0))
    assert admission.enter("a") is None and admission.enter("b") is None
    assert admission.enter("c") == IN_FLIGHT
    assert admission.in_flight == 2  # a refusal holds nothing
    admission.leave("a")
    assert admission.enter("d") is None


def test_waiting_bound_refuses_while_enough_admitted_are_late_whatever_the_count() -> None:
    now = [100.0]
    policy = AdmissionPolicy(max_in_flight=0, max_wait_seconds=0.5, min_late=2, max_outbox_pending=0)
    admission = Admission(policy, lambda: now[0])
    assert admission.enter("first") is None
    now[0] += 0.3
    assert admission.enter("second") is None  # the oldest has waited 0.3 s: still admitted
    now[0] += 0.3
    assert admission.enter("third") is None  # only the oldest is late (0.6 s): one slow submission
    now[0] += 0.3
    assert admission.enter("fourth") == WAITING  # "first" and "second" are late (0.9 and 0.6 s)
    message = admission.refusal(WAITING).body()["error"]["message"]
    assert "2 or more submissions" in message and "over 0.5 s" in message and "the oldest 0.9 s" in message
    admission.leave("second")  # answered: of the rest only "first" is late
    assert admission.enter("fifth") is None
    for key in ("first", "third", "fifth"):
        admission.leave(key)
    assert admission.in_flight == 0 and admission.oldest_wait() == 0.0


def test_one_submission_stuck_on_the_store_turns_nobody_away() -> None:
    now = [100.0]
    admission = Admission(AdmissionPolicy(max_in_flight=32, max_outbox_pending=0), lambda: now[0])
    assert admission.enter("stuck") is None
    for n in range(200):  # 20 s of others, each answered in 10 ms, while the stuck one waits for its store call
        now[0] += 0.1
        assert admission.enter(n) is None, f"refused {now[0] - 100:.1f} s after one submission got stuck"
        now[0] += 0.01
        admission.leave(n)
    assert admission.oldest_wait() > 20


def test_outbox_bound_uses_the_last_sample_and_keeps_it_when_the_count_fails() -> None:
    admission = Admission(AdmissionPolicy(max_in_flight=0, max_outbox_pending=10))
    admission.sample(lambda: 10)
    assert admission.enter("a") == OUTBOX

    def store_down() -> int:
        raise OSError("store away")

    admission.sample(store_down)
    assert admission.outbox_pending == 10 and admission.enter("a") == OUTBOX
    admission.sample(lambda: 9)
    assert admission.enter("a") is None


def test_zero_turns_both_bounds_off() -> None:
    now = [0.0]
    admission = Admission(AdmissionPolicy(max_in_flight=0, max_wait_seconds=0, max_outbox_pending=0), lambda: now[0])
    admission.sample(lambda: 10**9)
    assert admission.enter("oldest") is None
    now[0] += 3600
    assert all(admission.enter(n) is None for n in range(1000))


def test_the_refusal_is_a_503_with_retry_after_naming_the_bound() -> None:
    admission = Admission(AdmissionPolicy(max_in_flight=1, retry_after_seconds=3))
    admission.enter("a")
    error = admission.refusal(admission.enter("b") or "")
    assert error.status == 503 and error.headers == {"Retry-After": "3"}
    body = error.body()["error"]
    assert body["code"] == "overloaded" and body["reason"] == "in_flight" and body["retry_after_seconds"] == 3
    assert "nothing was stored" in body["message"] and "Idempotency-Key" in body["message"]


def test_policy_from_config_with_defaults_and_checks() -> None:
    assert AdmissionPolicy.from_config({}) == AdmissionPolicy()
    policy = AdmissionPolicy.from_config({"ADMISSION_MAX_IN_FLIGHT": "5", "ADMISSION_MAX_OUTBOX_PENDING": ""})
    assert policy.max_in_flight == 5 and policy.max_outbox_pending == AdmissionPolicy.max_outbox_pending
    with pytest.raises(ValueError):
        AdmissionPolicy.from_config({"ADMISSION_MAX_IN_FLIGHT": "-1"})
    with pytest.raises(ValueError):
        AdmissionPolicy.from_config({"ADMISSION_RETRY_AFTER_SECONDS": "0"})
    with pytest.raises(ValueError):
        AdmissionPolicy.from_config({"ADMISSION_MAX_WAIT_SECONDS": "-0.5"})
    assert AdmissionPolicy.from_config({"ADMISSION_MAX_WAIT_SECONDS": "0.25"}).max_wait_seconds == 0.25
    assert AdmissionPolicy.from_config({"ADMISSION_MIN_LATE": "1"}).min_late == 1
    with pytest.raises(ValueError):
        AdmissionPolicy.from_config({"ADMISSION_MIN_LATE": "0"})


# ---- through HTTP: the in-flight bound answers at once, while admitted requests wait for their slots -------------


class Held:
    release = Event()
    active = 0


class AdmittedService:
    name = "admitted"

    @admitted_api("POST", "/submit")
    def submit(self, request: Any) -> dict[str, bool]:
        Held.active += 1
        try:
            Held.release.wait()
        finally:
            Held.active -= 1
        return {"ok": True}


def post(url: str) -> tuple[int, dict[str, str], dict[str, Any], float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"x=1", method="POST"), timeout=30) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read()), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read()), time.monotonic() - started


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        eventlet.sleep(0.01)  # lets the container's green threads run


@pytest.fixture
def admitted_url() -> Iterator[str]:
    Held.release, Held.active = Event(), 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = {
        "max_workers": 5,  # 2 slots for HTTP requests
        "HTTP_ADDRESSES": {"admitted": f"127.0.0.1:{port}"},
        "ADMISSION_MAX_IN_FLIGHT": 4,
        "ADMISSION_MAX_WAIT_SECONDS": 0,  # the held requests would pass the time bound: this test is of the count
        "ADMISSION_MAX_OUTBOX_PENDING": 0,
        "ADMISSION_RETRY_AFTER_SECONDS": 3,
    }
    container = ServiceContainer(AdmittedService, config)
    container.start()
    try:
        yield f"http://127.0.0.1:{port}/submit"
    finally:
        if not Held.release.ready():
            Held.release.send(None)
        container.stop()


def test_over_the_in_flight_bound_clients_get_503_at_once_and_the_admitted_ones_are_served(admitted_url: str) -> None:
    with ThreadPoolExecutor(6) as clients:  # blocking clients in OS threads; the service runs on this thread's hub
        admitted = [clients.submit(post, admitted_url) for _ in range(4)]
        wait_until(lambda: Held.active == 2, "two requests in their slots, two waiting for one")
        extra = [clients.submit(post, admitted_url) for _ in range(2)]
        wait_until(lambda: all(answer.done() for answer in extra), "the requests over the bound to be answered")
        for status, headers, body, seconds in (answer.result() for answer in extra):
            assert (status, headers["Retry-After"], body["error"]["code"]) == (503, "3", "overloaded")
            assert body["error"]["reason"] == "in_flight" and seconds < 1.0
        assert not any(answer.done() for answer in admitted)
        Held.release.send(None)
        wait_until(lambda: all(answer.done() for answer in admitted), "every admitted request to be answered")
        later = clients.submit(post, admitted_url)  # the backlog is gone: admitted again
        wait_until(later.done, "a later request to be answered")
    assert [answer.result()[0] for answer in admitted] == [200] * 4
    assert later.result()[0] == 200
