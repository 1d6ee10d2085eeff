"""The HTTP side of the load generator: asyncio + aiohttp, keep-alive connections, bodies built before sending.

Open loop (`run_open_loop`): report i is due at t0 + i / rate, whether or not earlier ones were answered; latency
is measured from that intended time (no coordinated omission) and the scheduling lag (actual send - intended) is
kept so a generator that falls behind is visible. Closed loop (`run_closed_loop`): N clients, each sending its next
report when the previous one is answered. Several intake URLs are used round-robin (two gateway processes).

`serve_trivial` is a minimal HTTP/1.1 server answering every request with a 201 and a report id: the target for
measuring the generator's own ceiling (`--scenario selftest`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from bench.workload import Report, multipart_body, urlencoded_body


@dataclass
class Results:
    n: int
    intended: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)  # 0: client-side error (timeout, connection)
    report_id: list[str | None] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    retry_after: dict[int, float] = field(default_factory=dict)  # request index -> the Retry-After it was given

    def __post_init__(self) -> None:
        self.intended = [0.0] * self.n
        self.sent = [0.0] * self.n
        self.done = [0.0] * self.n
        self.status = [-1] * self.n  # -1: never sent
        self.report_id = [None] * self.n


class Sender:
    def __init__(
        self,
        urls: list[str],
        reports: list[Report],
        photos: list[bytes],
        addresses: list[str],
        results: Results,
        connections: int,
        timeout: float,
        plain_body: str = "urlencoded",
    ) -> None:
        self.urls = [u.rstrip("/") + "/api/v1/reports" for u in urls]
        self.reports = reports
        self.photos = photos
        self.addresses = addresses
        self.results = results
        self.connections = connections
        self.timeout = timeout
        # urlencoded bodies (no photo) are built now; multipart ones (a 150-300 KB copy each) when sent.
        # plain_body="form": a report without a photo is multipart too, as the citizen app sends every report
        # (`FormData`, a new boundary each time)
        urlencoded = plain_body != "form"
        self.bodies: list[bytes | None] = [
            urlencoded_body(r) if r.photo is None and urlencoded else None for r in reports
        ]
        self.session: aiohttp.ClientSession | None = None
        self.slots = asyncio.Semaphore(connections)

    async def __aenter__(self) -> Sender:
        # one connector per intake URL would be the same: aiohttp pools per host:port
        connector = aiohttp.TCPConnector(
            limit=self.connections, limit_per_host=0, force_close=False, ttl_dns_cache=None
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            skip_auto_headers=("User-Agent",),
            raise_for_status=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def send(self, i: int) -> None:
        # at most `connections` requests in flight: the others wait here, before their (multipart) body is built, so
        # an open loop far above the system's capacity does not hold thousands of 250 KB bodies; their latency still
        # counts from the intended send time
        async with self.slots:
            if time.monotonic() - self.results.intended[i] > self.timeout:
                # waited longer than a request may take for a free connection: a client would have given up
                self.results.status[i] = 0
                self.results.errors["not sent: no free connection within the timeout"] += 1
                self.results.sent[i] = self.results.done[i] = time.monotonic()
                return
            await self._send(i)

    async def _send(self, i: int) -> None:
        assert self.session is not None
        report = self.reports[i]
        body = self.bodies[i]
        if body is None:
            body, content_type = multipart_body(report, None if report.photo is None else self.photos[report.photo])
        else:
            content_type = "application/x-www-form-urlencoded"
            self.bodies[i] = None  # free it
        headers = {
            "Content-Type": content_type,
            "X-Forwarded-For": self.addresses[i % len(self.addresses)],
        }
        url = self.urls[i % len(self.urls)]
        res = self.results
        res.sent[i] = time.monotonic()
        try:
            async with self.session.post(url, data=body, headers=headers) as response:
                payload = await response.read()
                res.status[i] = response.status
                if response.status == 201:
                    res.report_id[i] = json.loads(payload)["report_id"]
                else:
                    try:
                        code = json.loads(payload)["error"]["code"]
                    except Exception:
                        code = payload[:60].decode(errors="replace")
                    res.errors[f"{response.status} {code}"] += 1
                    if response.status == 503 and response.headers.get("Retry-After"):
                        res.errors["(503 with Retry-After)"] += 1
                    if response.headers.get("Retry-After", "").isdigit():
                        res.retry_after[i] = float(response.headers["Retry-After"])
        except TimeoutError:
            res.status[i] = 0
            res.errors["client timeout"] += 1
        except aiohttp.ClientError as exc:
            res.status[i] = 0
            res.errors[f"client {type(exc).__name__}"] += 1
        res.done[i] = time.monotonic()


async def run_open_loop(sender: Sender, rate: float, count: int, on_tick: Callable[[int], None] | None = None) -> float:
    """Send `count` reports at `rate` per second, scheduled by time; returns t0 (monotonic)."""
    tasks: set[asyncio.Task] = set()
    res = sender.results
    t0 = time.monotonic() + 0.05
    for i in range(count):
        due = t0 + i / rate
        delay = due - time.monotonic()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        res.intended[i] = due
        task = asyncio.create_task(sender.send(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if on_tick is not None and i % 1000 == 0:
            on_tick(i)
    if tasks:
        await asyncio.gather(*tasks)
    return t0


async def run_closed_loop(sender: Sender, clients: int, seconds: float) -> tuple[float, int]:
    """`clients` concurrent clients for `seconds`; returns (t0, reports sent)."""
    next_index = 0
    limit = len(sender.reports)
    t0 = time.monotonic()
    deadline = t0 + seconds

    async def client() -> None:
        nonlocal next_index
        while time.monotonic() < deadline and next_index < limit:
            i = next_index
            next_index += 1
            sender.results.intended[i] = time.monotonic()
            await sender.send(i)
            if sender.results.status[i] in (429, 503):
                # a phone backs off as told (Retry-After) instead of hammering an overloaded gateway
                await asyncio.sleep(sender.results.retry_after.get(i, 1.0))

    await asyncio.gather(*(client() for _ in range(clients)))
    return t0, next_index


# ---- the generator's own ceiling ------------------------------------------------------------------------------


class _TrivialHttp(asyncio.Protocol):
    counter = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                line_end = head.find(b"\r\n", marker)
                length = int(head[marker + 15 : line_end if line_end >= 0 else None])
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            _TrivialHttp.counter += 1
            body = b'{"report_id": "JK-00000000-%06d"}' % _TrivialHttp.counter
            self.transport.write(  # type: ignore[attr-defined]
                b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )


def serve_trivial(port: int, ready: object) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_TrivialHttp, "127.0.0.1", port, backlog=1024)
        ready.set()  # type: ignore[attr-defined]
        async with server:
            await server.serve_forever()

    asyncio.run(main())
