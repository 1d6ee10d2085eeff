"""Slow clients cannot take the API offline (issue 12, item 1): with hundreds of stalled uploads open from several
addresses the gateway still answers everyone else at once, the stalled bodies get 408 after the read timeout and
store nothing, and one address cannot hold more connections than allowed. The stalled uploads are real sockets from
real loopback addresses (127.0.0.x: all of 127/8 reaches the services listening on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from devtools.seaweedfs import LocalS3Server
from tests.photo_fixtures import jpeg_with_gps
from tests.system import RunningSystem, SseListener, Vhost, client_headers, start_system, wait_for

pytestmark = pytest.mark.e2e

READ_TIMEOUT = 3  # seconds; 30 by default, short here so the test runs fast
PER_ADDRESS = 50  # connections per address; the default for clients that connect directly
STALLED_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 7)]
STALLED_PER_ADDRESS = 40  # 5 addresses x 40 = 200 stalled uploads, each address under its cap
CAPPED_ADDRESS = "127.0.0.9"
BLOK_M = (-6.2443, 106.8003)
PARKING_OPD = "sudin-perhubungan-jakarta-selatan"
BOUNDARY = "jaklapor-slow-upload"


@pytest.fixture(scope="module")
def slow_system(tmp_path_factory: pytest.TempPathFactory, s3: LocalS3Server) -> Iterator[RunningSystem]:
    """A system of its own (own vhost): its report count must be exactly what these tests submitted."""
    vhost = Vhost.create()
    running = start_system(
        tmp_path_factory.mktemp("slow-clients"),
        vhost,
        s3,
        HTTP_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
        HTTP_MAX_CONNECTIONS_PER_ADDRESS=str(PER_ADDRESS),
    )
    yield running
    running.stop()
    vhost.delete()


def connect(system: RunningSystem, source: str, service: str = "intake") -> socket.socket:
    return socket.create_connection(("127.0.0.1", system.ports[service]), timeout=30, source_address=(source, 0))


def stalled_upload(system: RunningSystem, source: str) -> socket.socket:
    """A phone on a dying link: the headers announce a 100 kB report, the fields and the photo's first bytes come,
    then nothing more."""
    start = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="category"\r\n\r\nparkir-liar\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="description"\r\n\r\nMobil parkir di trotoar\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="lat"\r\n\r\n-6.2443\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="lon"\r\n\r\n106.8003\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="photo"; filename="IMG_0001.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + jpeg_with_gps(*BLOK_M)[:2000]
    head = (
        "POST /api/v1/reports HTTP/1.1\r\nHost: jaklapor\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: 100000\r\nX-Forwarded-For: {source}\r\n\r\n"
    ).encode()
    sock = connect(system, source)
    sock.sendall(head + start)
    return sock


def answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def get_health(sock: socket.socket) -> int:
    """A request on a kept-alive connection: proves the connection is open and served."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: jaklapor\r\n\r\n")
    return answer(sock)[0]


def submit(system: RunningSystem) -> requests.Response:
    return requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": "parkir-liar", "description": "Mobil parkir di trotoar", "lat": BLOK_M[0], "lon": BLOK_M[1]},
        files={"photo": ("IMG_0002.jpg", jpeg_with_gps(*BLOK_M), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )


def intake_metric(system: RunningSystem, name: str, **labels: str) -> float:
    text = requests.get(system.url("intake", "/metrics"), timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_stalled_uploads_do_not_take_the_api_offline(slow_system: RunningSystem) -> None:
    stalled = [stalled_upload(slow_system, source) for source in STALLED_ADDRESSES for _ in range(STALLED_PER_ADDRESS)]
    try:
        # before: 7 stalled uploads held every request slot and nothing answered until they went away
        started = time.monotonic()
        health = requests.get(slow_system.url("intake", "/health"), timeout=30)
        assert health.status_code == 200
        assert time.monotonic() - started < 1.0, "health answered within 1 s"

        started = time.monotonic()
        accepted = submit(slow_system)
        assert accepted.status_code == 201, accepted.text
        assert time.monotonic() - started < 2.0, "a report from another client accepted within 2 s"

        # every stalled upload is cut off after the read timeout with a 408 naming the problem, then closed
        for sock in stalled:
            status, headers, body = answer(sock)
            assert status == 408, body
            assert json.loads(body)["error"]["code"] == "request_timeout"
            assert headers["connection"] == "close"
            assert sock.recv(1) == b""
    finally:
        for sock in stalled:
            sock.close()

    # nothing of them was stored: the only report accepted is the normal one
    assert intake_metric(slow_system, "jaklapor_reports_submitted_total") == 1
    assert intake_metric(slow_system, "jaklapor_http_requests_total", route="/api/v1/reports", status="408") == len(
        stalled
    )
    tracking = requests.get(accepted.json()["tracking_url"], timeout=10)
    assert tracking.status_code == 200 and tracking.json()["report_id"] == accepted.json()["report_id"]


def test_one_address_cannot_hold_more_connections_than_allowed(slow_system: RunningSystem) -> None:
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(connect(slow_system, CAPPED_ADDRESS)) for _ in range(PER_ADDRESS)]
        assert [get_health(sock) for sock in held] == [200] * PER_ADDRESS  # all open and admitted

        with connect(slow_system, CAPPED_ADDRESS) as extra:
            status, headers, body = answer(extra)  # answered at once, before it sent anything
            assert status == 429
            assert json.loads(body)["error"]["code"] == "too_many_connections"
            assert headers["connection"] == "close" and headers["retry-after"] == "1"
            assert extra.recv(1) == b""

        # the connections already open keep working, and other addresses are not affected
        assert get_health(held[0]) == 200
        with connect(slow_system, "127.0.0.10") as other:
            assert get_health(other) == 200
        # the cap is per service: the same address still reaches the live streams
        with connect(slow_system, CAPPED_ADDRESS, "notify") as notify:
            assert get_health(notify) == 200

        # a connection that closes gives its place back
        held.pop().close()

        def admitted_again() -> bool:
            with connect(slow_system, CAPPED_ADDRESS) as again:
                return get_health(again) == 200

        assert wait_for(admitted_again, 10, message="a new connection from the address once one closed")


def test_a_live_stream_outlives_the_read_timeout(slow_system: RunningSystem) -> None:
    """The read timeout bounds reading a request, not writing a long response: a citizen's stream stays open."""
    accepted = submit(slow_system)
    assert accepted.status_code == 201, accepted.text
    receipt = accepted.json()
    stream = SseListener(receipt["stream_url"])
    try:
        assert stream.status_code == 200
        transitions = slow_system.url("intake", f"/api/v1/opd/reports/{receipt['report_id']}/transitions")

        def routed() -> bool:
            view = requests.get(receipt["tracking_url"], timeout=10).json()
            return (view.get("responsible_opd") or {}).get("code") == PARKING_OPD

        wait_for(routed, 20, message="the report routed to its agency")
        time.sleep(READ_TIMEOUT + 1)  # the stream stays quiet for longer than any read may wait
        working = requests.post(
            transitions,
            json={"status": "dikerjakan", "note": "Petugas menuju lokasi"},
            headers=slow_system.opd_headers(PARKING_OPD),
            timeout=10,
        )
        assert working.status_code == 200, working.text
        stream.next_matching(lambda f: f["json"].get("status") == "dikerjakan", timeout=10)
    finally:
        stream.close()
