"""Slow clients hold no worker slot: a request's body is read before it takes one, every read from a client has a
timeout (a stalled body gets 408), and a peer address may hold only so many connections. In-process: one small
service on nameko's web entrypoint, clients on green sockets in the same hub (the end-to-end proof against the whole
system is tests/test_slow_clients.py)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import eventlet
import pytest
from eventlet.green import socket
from nameko.containers import ServiceContainer
from werkzeug.wrappers import Request, Response

from jaklapor.web import (
    BODY_MEMORY_BYTES,
    DEFAULT_CONNECTIONS_PER_ADDRESS,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_READ_TIMEOUT_SECONDS,
    ConnectionCounter,
    ConnectionLimits,
    api,
    connection_limits,
    read_fields,
)

READ_TIMEOUT = 1.0
LIMIT = 2 * 1024 * 1024


class Seen:
    bodies: list[bytes] = []


class EchoService:
    name = "echo"

    @api("POST", "/echo")
    def echo(self, request: Request) -> dict[str, Any]:
        body = request.get_data()
        Seen.bodies.append(body)
        return {"length": request.content_length, "received": len(body)}

    @api("POST", "/form")
    def form(self, request: Request) -> dict[str, Any]:
        fields, photos = read_fields(request, "photo")
        photo = b"".join(stream.read() for stream in photos)
        Seen.bodies.append(photo)
        return {"fields": fields, "photo": len(photo)}

    @api("GET", "/ping")
    def ping(self, request: Request) -> dict[str, bool]:
        return {"ok": True}

    @api("GET", "/ticks")
    def ticks(self, request: Request) -> Response:
        def slowly() -> Iterator[bytes]:
            # a response that takes two read timeouts to write, like a live stream
            for tick in range(4):
                eventlet.sleep(READ_TIMEOUT / 2)
                yield f"tick {tick}\n".encode()

        request.environ["eventlet.minimum_write_chunk_size"] = 0
        return Response(slowly(), mimetype="text/plain")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def port() -> Iterator[int]:
    Seen.bodies = []
    chosen = free_port()
    config = {
        "max_workers": 4,  # one slot for HTTP requests
        "HTTP_ADDRESSES": {"echo": f"127.0.0.1:{chosen}"},
        "HTTP_READ_TIMEOUT_SECONDS": READ_TIMEOUT,
        "MAX_REQUEST_BYTES": LIMIT,
    }
    container = ServiceContainer(EchoService, config)
    container.start()
    try:
        yield chosen
    finally:
        container.stop()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with connect(port) as sock:
        sock.sendall(raw)
        return answer(sock)


def upload_head(length: int | None = None, chunked: bool = False) -> bytes:
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    return f"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\n{framing}\r\n\r\n".encode()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        eventlet.sleep(0.01)


def test_stalled_bodies_hold_no_slot_and_get_408(port: int) -> None:
    stalled = []
    for _ in range(5):  # five times the one HTTP slot
        sock = connect(port)
        sock.sendall(upload_head(1000) + b"x" * 100)
        stalled.append(sock)

    # before, each stalled body held the slot while a worker waited for the rest, and nothing timed out
    assert request(port, b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n")[0] == 200

    for sock in stalled:
        status, headers, body = answer(sock)
        assert status == 408
        assert json.loads(body)["error"]["code"] == "request_timeout"
        assert headers["connection"] == "close"
        assert sock.recv(1) == b""  # and the connection is closed
        sock.close()
    assert Seen.bodies == []  # no handler ever ran


def test_a_slow_but_steady_body_is_accepted(port: int) -> None:
    """The timeout is per read: a weak mobile link that keeps sending, slower than one timeout in all, gets through."""
    with connect(port) as sock:
        sock.sendall(upload_head(40))
        for _ in range(8):  # well within one read timeout each, longer than one in all
            eventlet.sleep(READ_TIMEOUT / 5)
            sock.sendall(b"x" * 5)
        status, _headers, body = answer(sock)
    assert status == 200 and json.loads(body) == {"length": 40, "received": 40}
    assert Seen.bodies == [b"x" * 40]


def test_a_chunked_body_reaches_the_handler_whole(port: int) -> None:
    chunks = b"5\r\nhello\r\n1\r\n \r\n6\r\njakart\r\n1\r\na\r\n0\r\n\r\n"
    status, _headers, body = request(port, upload_head(chunked=True) + chunks)
    assert status == 200, body
    assert json.loads(body) == {"length": 13, "received": 13}
    assert Seen.bodies == [b"hello jakarta"]


def chunked(body: bytes, size: int = 100_000) -> bytes:
    frames = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)
    )
    return frames + b"0\r\n\r\n"


def test_a_chunked_upload_larger_than_the_memory_buffer_reaches_the_form_parser(port: int) -> None:
    photo = bytes(range(256)) * (BODY_MEMORY_BYTES // 256 + 1000)  # spills to a temporary file while it arrives
    body = (
        b'--b\r\nContent-Disposition: form-data; name="category"\r\n\r\njalan\r\n'
        b'--b\r\nContent-Disposition: form-data; name="photo"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        + photo
        + b"\r\n--b--\r\n"
    )
    head = b"POST /form HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=b\r\n"
    status, _headers, answer_body = request(port, head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body))
    assert status == 200, answer_body
    assert json.loads(answer_body) == {"fields": {"category": "jalan"}, "photo": len(photo)}
    assert Seen.bodies == [photo]


def test_a_chunked_body_over_the_limit_gets_413(port: int) -> None:
    frames = chunked(b"x" * (LIMIT + 1))
    status, _headers, body = request(port, upload_head(chunked=True) + frames)
    assert status == 413 and json.loads(body)["error"]["code"] == "request_too_large"
    assert Seen.bodies == []


def test_a_malformed_chunked_body_gets_400(port: int) -> None:
    status, _headers, body = request(port, upload_head(chunked=True) + b"zz\r\nhello\r\n0\r\n\r\n")
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_chunked_body"
    assert Seen.bodies == []


def test_a_long_response_is_not_cut_by_the_read_timeout(port: int) -> None:
    status, _headers, body = request(port, b"GET /ticks HTTP/1.1\r\nHost: test\r\n\r\n")
    assert status == 200
    assert body.decode().splitlines() == [f"tick {n}" for n in range(4)]


def test_the_connection_counter_caps_each_address_and_forgets_closed_ones() -> None:
    counter = ConnectionCounter(2)
    assert counter.admit("10.0.0.1") and counter.admit("10.0.0.1")
    assert not counter.admit("10.0.0.1")
    assert counter.admit("10.0.0.2")
    counter.release("10.0.0.1")
    assert counter.open("10.0.0.1") == 1 and counter.admit("10.0.0.1")
    for _ in range(2):
        counter.release("10.0.0.1")
    counter.release("10.0.0.2")
    assert counter._open == {}  # nothing kept for addresses that left
    unlimited = ConnectionCounter(0)
    assert all(unlimited.admit("10.0.0.1") for _ in range(1000))


@pytest.mark.parametrize(
    ("config", "limits"),
    [
        ({}, ConnectionLimits(DEFAULT_READ_TIMEOUT_SECONDS, DEFAULT_CONNECTIONS_PER_ADDRESS)),
        (
            {"HTTP_READ_TIMEOUT_SECONDS": "3", "HTTP_MAX_CONNECTIONS_PER_ADDRESS": ""},
            ConnectionLimits(3.0, DEFAULT_CONNECTIONS_PER_ADDRESS),
        ),
        ({"HTTP_MAX_CONNECTIONS_PER_ADDRESS": "0"}, ConnectionLimits(DEFAULT_READ_TIMEOUT_SECONDS, 0)),
        # behind a trusted proxy every connection comes from the proxy: no cap unless asked for
        ({"TRUSTED_PROXY_HOPS": "1"}, ConnectionLimits(DEFAULT_READ_TIMEOUT_SECONDS, 0)),
        (
            {"TRUSTED_PROXY_HOPS": 1, "HTTP_MAX_CONNECTIONS_PER_ADDRESS": 500},
            ConnectionLimits(DEFAULT_READ_TIMEOUT_SECONDS, 500),
        ),
    ],
)
def test_connection_limits_come_from_the_settings(config: dict[str, Any], limits: ConnectionLimits) -> None:
    assert connection_limits(config) == limits


@pytest.mark.parametrize("config", [{"HTTP_READ_TIMEOUT_SECONDS": "0"}, {"HTTP_MAX_CONNECTIONS_PER_ADDRESS": "-1"}])
def test_impossible_connection_limits_are_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(config))):
        connection_limits(config)


def test_the_defaults_in_the_code_are_the_documented_ones() -> None:
    config = Path(__file__).resolve().parent.parent / "jaklapor" / "config.yaml"
    text = config.read_text()
    assert f"${{HTTP_READ_TIMEOUT_SECONDS:{DEFAULT_READ_TIMEOUT_SECONDS:g}}}" in text
    assert f"${{MAX_REQUEST_BYTES:{DEFAULT_MAX_REQUEST_BYTES}}}" in text
    assert "${HTTP_MAX_CONNECTIONS_PER_ADDRESS:}" in text  # empty: the derived default above
