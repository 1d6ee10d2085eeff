"""The broker's floor: the least CPU RabbitMQ itself spends per citizen report with jaklapor's message topology.

Every report costs the broker 3 confirmed, persistent, `mandatory` publishes (intake.events/report_submitted ->
routing.reports, notify.events, stats.events; jaklapor.opd/<opd>.<kota>.<kecamatan>.<kelurahan> -> the OPD queue;
routing.events/report_routed -> intake.routing-results, notify.events, stats.events) and 7 quorum-queue deliveries and
acks, whatever the Python services do. This benchmark replays exactly that traffic, with no service logic, from bare
py-amqp clients in a fresh vhost holding the project's own queue declarations, and divides the CPU the `beam.smp`
server process used by the reports confirmed. `per-message` is how the services talked to the broker before they
batched (wait for every confirm, ack every delivery, prefetch 10); `batched` is the best a client can do (a window of
unconfirmed publishes, prefetch 500, acks with multiple=True every 100). `cores x 1000 ms / (broker ms per report)`
is then the most reports/s this machine could ever deliver, even if the broker had every core to itself and the
services cost nothing.

    python bench/bench_broker_floor.py                          # both modes, 15 s each (+2 s warm-up)
    python bench/bench_broker_floor.py --modes batched --duration 10 --window 500

Needs RabbitMQ on 127.0.0.1:5672 (guest/guest); the management API (15672) is used for the vhost when it answers.
Run nothing else heavy meanwhile: the broker's CPU is read from the OS, so other vhosts' traffic would count too
(the run warns when it sees other connections).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import multiprocessing as mp
import os
import platform
import signal
import sys
import time
import urllib.request
import warnings
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import amqp  # noqa: E402
import psutil  # noqa: E402
from amqp.exceptions import MessageNacked  # noqa: E402
from kombu import Connection  # noqa: E402

with warnings.catch_warnings():  # jaklapor.messaging imports nameko, which imports eventlet (deprecation warning)
    warnings.simplefilter("ignore")
    from jaklapor.messaging import (
        DEAD_LETTER_EXCHANGE,
        OPD_DEAD_LETTER_QUEUE,
        OPD_EXCHANGE,
        dead_letter_queue,
        opd_queue,
        work_queue,
    )
from jaklapor.events import (  # noqa: E402
    AreaRef,
    Location,
    OpdMessage,
    OpdRef,
    PhotoRef,
    ReportRouted,
    ReportSubmitted,
)
from tests.broker_admin import MANAGEMENT, create_vhost, delete_vhost  # noqa: E402

MODES = ("per-message", "batched")
OPD_CODE = "satpol-pp"
OPD_ROUTING_KEY = "satpol-pp.jakarta-selatan.kebayoran-baru.melawai"
# the services' queues and bindings, as declared in services/*/service.py (the OPD queue by routing's opd_queue())
WORK_QUEUES: dict[str, list[tuple[str, str]]] = {
    "routing.reports": [("intake", "report_submitted"), ("intake", "report_forwarded")],
    "notify.events": [("intake", "#"), ("routing", "#")],
    "stats.events": [("intake", "#"), ("routing", "#")],
    "intake.routing-results": [("routing", "report_routed"), ("routing", "report_unroutable")],
}
OPD_QUEUE = opd_queue(OPD_CODE).name
QUEUES: tuple[str, ...] = (*WORK_QUEUES, OPD_QUEUE)
# the 3 publishes of one report: (exchange, routing key, the queues it reaches)
PUBLISHES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("intake.events", "report_submitted", ("routing.reports", "notify.events", "stats.events")),
    (OPD_EXCHANGE.name, OPD_ROUTING_KEY, (OPD_QUEUE,)),
    ("routing.events", "report_routed", ("intake.routing-results", "notify.events", "stats.events")),
)
DELIVERIES_PER_REPORT = sum(len(queues) for _, _, queues in PUBLISHES)
# which consumer process reads which queues (about half of the 7 deliveries each)
CONSUMER_GROUPS: dict[int, tuple[tuple[str, ...], ...]] = {
    1: (QUEUES,),
    2: (("routing.reports", "notify.events", OPD_QUEUE), ("stats.events", "intake.routing-results")),
}
SETTINGS: dict[str, dict[str, int]] = {
    "per-message": {"prefetch": 10, "ack_every": 1},
    "batched": {"prefetch": 500, "ack_every": 100},
}
# publisher statistics, one shared int64 array per publisher process
P_REPORTS, P_CONFIRMED0, P_NACKED, P_RETURNED, P_PUBLISHED, P_DONE = 0, 1, 4, 5, 6, 7
P_FIELDS = 8
RID, EID = "@RID@", "@EID@"
DESCRIPTIONS = (
    "Sekelompok orang berkumpul dan mabuk di pos ronda sampai larut malam. Sudah beberapa kali ditegur warga tapi "
    "tetap berulang setiap akhir pekan, kadang sampai terjadi keributan dan botol pecah di jalan. Lokasi persis di "
    "gang sebelah masjid, dekat warung kopi yang buka 24 jam.",
    "Ada pungutan liar kepada pedagang setiap pagi di depan pasar. Pelaku mengaku dari ormas, meminta Rp10.000 per "
    "lapak dan mengancam pedagang yang tidak mau membayar. Mohon ditertibkan. Kejadian antara jam 05.30 dan 07.00, "
    "biasanya dua orang dengan sepeda motor hitam.",
    "Balap liar setiap malam minggu di Jalan Melawai Raya, warga resah dan tidak bisa tidur. Suara knalpot sangat "
    "bising dari jam 23.00 sampai subuh, sudah pernah ada pengendara yang jatuh. Mohon ada patroli rutin di akhir "
    "pekan, terutama di perempatan dekat halte.",
    "Pedagang kaki lima berjualan di atas trotoar dan sebagian badan jalan sehingga pejalan kaki terpaksa berjalan di "
    "jalan raya. Mohon ditata agar trotoar bisa dipakai kembali. Lapak dibiarkan semalaman dengan terpal dan "
    "gerobak, sehingga pagi hari trotoar juga tertutup.",
)


# ---- messages -----------------------------------------------------------------------------------------------------


def message_templates(variants: int = 8) -> list[tuple[bytes, bytes, bytes]]:
    """Realistic bodies of the 3 publishes of a report (the project's own event models, serialized as kombu's json
    serializer does), with placeholders for the report id and event id; `variants` sets with different texts."""
    submitted_at = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
    area = AreaRef(code="31.74.07.1001", kelurahan="Melawai", kecamatan="Kebayoran Baru", kota="Jakarta Selatan")
    opd = OpdRef(code=OPD_CODE, name="Satuan Polisi Pamong Praja", level="satpol-pp")
    templates = []
    for n in range(variants):
        location = Location(lat=-6.2442 - n * 0.0003, lon=106.8003 + n * 0.0002)
        photos = [PhotoRef(photo_id=f"p{n:02d}Yk3Qm9xWb7Tn2Lr5Hs8", url=f"/api/v1/photos/p{n:02d}Yk3Qm9xWb7Tn2Lr5Hs8")]
        description = DESCRIPTIONS[n % len(DESCRIPTIONS)]
        submitted = ReportSubmitted(
            event_id=EID,
            report_id=RID,
            version=1,
            category="gangguan-ketenteraman-dan-ketertiban",
            description=description,
            location=location,
            photos=photos[: n % 2],
            submitted_at=submitted_at,
            tracking_token_hash="9f2c4e0b7a1d3c5e8f6a2b4d6c8e0f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e",
            has_contact=n % 3 == 0,
        ).to_message()
        routed = ReportRouted(
            event_id=EID,
            report_id=RID,
            version=1,
            opd=opd,
            area=area,
            routing_key=OPD_ROUTING_KEY,
            category="gangguan-ketenteraman-dan-ketertiban",
            response_deadline=submitted_at + timedelta(hours=24),
        ).to_message()
        opd_message = OpdMessage(
            message_id=f"{RID}:0",
            report_id=RID,
            hop=0,
            assigned_at=submitted_at,
            opd=opd,
            category="gangguan-ketenteraman-dan-ketertiban",
            description=description,
            location=location,
            area=area,
            photos=photos[: n % 2],
            submitted_at=submitted_at,
            status="menunggu",
            transitions_url=f"http://127.0.0.1:8000/api/v1/opd/reports/{RID}/transitions",
            response_deadline=submitted_at + timedelta(hours=24),
        ).model_dump(mode="json")
        templates.append(tuple(json.dumps(body).encode() for body in (submitted, opd_message, routed)))
    return templates  # type: ignore[return-value]


def body_sizes(templates: list[tuple[bytes, bytes, bytes]]) -> list[float]:
    """Mean body bytes of each of the 3 publishes, with real-length ids in place of the placeholders."""
    rid, eid = b"JK-20261128-0000042", b"0" * 32
    return [
        sum(len(t[k].replace(RID.encode(), rid).replace(EID.encode(), eid)) for t in templates) / len(templates)
        for k in range(3)
    ]


# ---- broker side --------------------------------------------------------------------------------------------------


def amqp_uri(host: str, vhost: str) -> str:
    return f"pyamqp://guest:guest@{host}/{vhost}"


def declare_topology(host: str, vhost: str) -> int:
    """Declare the project's exchanges, queues (with their dead-letter queues) and bindings; the queues' count."""
    queues = [work_queue(name, bindings) for name, bindings in WORK_QUEUES.items()]
    entities = [
        DEAD_LETTER_EXCHANGE,
        OPD_EXCHANGE,
        OPD_DEAD_LETTER_QUEUE,
        *(dead_letter_queue(name) for name in WORK_QUEUES),
        *queues,
        opd_queue(OPD_CODE),
    ]
    with Connection(amqp_uri(host, vhost), connect_timeout=10) as connection:
        channel = connection.channel()
        for entity in entities:
            entity.declare(channel=channel)
    return sum(1 for entity in entities if hasattr(entity, "queue_arguments"))


def broker_processes() -> list[psutil.Process]:
    """The RabbitMQ server's beam.smp (not the short-lived ones rabbitmqctl starts)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        words = process.info["cmdline"] or []
        if process.info["name"] == "beam.smp" and any(
            a == "-s" and b == "rabbit" for a, b in itertools.pairwise(words)
        ):
            found.append(process)
    if not found:
        raise RuntimeError("no RabbitMQ beam.smp process found")
    return found


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def management_get(path: str) -> Any:
    auth = "Basic " + base64.b64encode(b"guest:guest").decode()
    request = urllib.request.Request(MANAGEMENT + path, headers={"Authorization": auth})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def foreign_activity(vhost: str) -> dict[str, Any]:
    """Other vhosts and connections on the broker: their traffic would be counted in the broker's CPU."""
    try:
        vhosts = [v["name"] for v in management_get("/vhosts?columns=name") if v["name"] not in ("/", vhost)]
        connections = [c for c in management_get("/connections?columns=vhost") if c.get("vhost") != vhost]
        return {"other_vhosts": vhosts, "other_connections": len(connections)}
    except Exception as exc:
        return {"error": repr(exc)}


def delete_vhost_patiently(vhost: str, patience: float = 90.0) -> bool:
    """Delete the vhost, retrying for `patience` seconds (a broker app stopped by someone else's fault test comes
    back); says so on stderr if it could not."""
    deadline = time.monotonic() + patience
    while not delete_vhost(vhost):
        if time.monotonic() > deadline:
            print(f"  vhost {vhost} was not deleted: delete it by hand", file=sys.stderr)
            return False
        time.sleep(5)
    return True


def wait_quiet(limit: float, threshold: float = 20.0) -> float:
    """Wait (up to `limit` s) until the machine's CPU stays under `threshold` % (of all cores) for 3 s and the
    broker has no other vhost or connection (other developers' test runs); the CPU % seen last."""
    started = time.monotonic()
    while True:
        busy = psutil.cpu_percent(interval=3.0)
        foreign = foreign_activity("")
        quiet = busy < threshold and not any(foreign.get(k) for k in ("other_vhosts", "other_connections", "error"))
        if quiet or time.monotonic() - started > limit:
            return busy
        print(f"  waiting for a quieter machine (CPU {busy:.0f} % busy, broker: {foreign})", flush=True)


# ---- client processes ---------------------------------------------------------------------------------------------


def _client_connection(host: str, vhost: str, confirm_publish: bool = False) -> amqp.Connection:
    connection = amqp.Connection(
        host=host, userid="guest", password="guest", virtual_host=vhost, confirm_publish=confirm_publish, heartbeat=0
    )
    connection.connect()
    return connection


class _Watchdog:
    """A client process stops by itself if the benchmark's main process died or it outlived its deadline."""

    def __init__(self, lifetime: float) -> None:
        self.parent = os.getppid()
        self.deadline = time.monotonic() + lifetime
        self.next_check = 0.0

    def expired(self) -> bool:
        now = time.monotonic()
        if now < self.next_check:
            return False
        self.next_check = now + 1.0
        return os.getppid() != self.parent or now > self.deadline


def _publisher(
    index: int,
    host: str,
    vhost: str,
    mode: str,
    window: int,
    max_backlog: int,
    lifetime: float,
    all_stats: list[Any],
    consumed: Any,
    ready: Any,
    go: Any,
    stop: Any,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process coordinates shutdown
    stats = all_stats[index]
    watchdog = _Watchdog(lifetime)
    templates = message_templates()
    connection = _client_connection(host, vhost, confirm_publish=mode == "per-message")
    channel = connection.channel()

    def on_return(exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        stats[P_RETURNED] += 1

    channel.events["basic_return"].add(on_return)
    report = 0

    def messages(report: int) -> list[tuple[str, str, amqp.Message]]:
        rid = f"JK-20261128-{index}{report:07d}".encode()
        built = []
        for kind, (exchange, routing_key, _) in enumerate(PUBLISHES):
            event_id = f"{index:02x}{report:028x}{kind:02x}"
            body = (
                templates[report % len(templates)][kind]
                .replace(RID.encode(), rid)
                .replace(EID.encode(), event_id.encode())
            )
            message = amqp.Message(
                body,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=f"{rid.decode()}:0" if kind == 1 else event_id,
                application_headers={},
            )
            built.append((exchange, routing_key, message))
        return built

    try:
        if mode == "per-message":
            # confirm_publish=True: basic_publish is py-amqp's basic_publish_confirm, as kombu does for the services
            ready.set()
            go.wait()
            while not stop.is_set() and not watchdog.expired():
                report += 1
                complete = True
                for kind, (exchange, routing_key, message) in enumerate(messages(report)):
                    stats[P_PUBLISHED] += 1
                    try:
                        channel.basic_publish(message, exchange, routing_key, mandatory=True, confirm_timeout=30)
                    except MessageNacked:
                        stats[P_NACKED] += 1
                        complete = False
                        break
                    stats[P_CONFIRMED0 + kind] += 1
                stats[P_REPORTS] += complete
        else:
            flow = (max_backlog, all_stats, consumed)
            _publish_windowed(channel, connection, messages, window, flow, stats, ready, go, stop, watchdog)
    finally:
        stats[P_DONE] = 1
        try:
            connection.close()
        except Exception:
            pass


def _publish_windowed(
    channel: Any,
    connection: Any,
    messages: Any,
    window: int,
    flow: tuple[int, list[Any], Any],
    stats: Any,
    ready: Any,
    go: Any,
    stop: Any,
    watchdog: Any,
) -> None:
    """Up to `window` unconfirmed publishes in flight; a report is complete when its 3 publishes are confirmed.

    Flow control: no new report while more than `max_backlog` deliveries (of all publishers) are not consumed yet,
    so the run measures a steady state where consumers keep up, not queues growing for the drain to pay later.
    """
    max_backlog, all_stats, consumed = flow

    def backlog() -> int:
        return sum(s[P_PUBLISHED] for s in all_stats) * DELIVERIES_PER_REPORT // 3 - sum(consumed)

    pending: dict[int, tuple[int, int]] = {}  # delivery tag -> (report, kind)
    order: deque[int] = deque()  # tags in publish order, for acks with multiple=True
    unconfirmed: dict[int, list[int]] = {}  # report -> [publishes not yet confirmed, nacked]

    def settle(tag: int, acked: bool) -> None:
        report, kind = pending.pop(tag)
        left = unconfirmed[report]
        left[0] -= 1
        if acked:
            stats[P_CONFIRMED0 + kind] += 1
        else:
            stats[P_NACKED] += 1
            left[1] += 1
        if left[0] == 0:
            del unconfirmed[report]
            stats[P_REPORTS] += left[1] == 0

    def on_confirm(tag: int, multiple: bool, acked: bool) -> None:
        if multiple:
            while order and order[0] <= tag:
                first = order.popleft()
                if first in pending:
                    settle(first, acked)
        elif tag in pending:
            settle(tag, acked)
        while order and order[0] not in pending:  # singly confirmed tags at the front
            order.popleft()

    channel.events["basic_ack"].add(lambda tag, multiple: on_confirm(tag, multiple, True))
    channel.events["basic_nack"].add(lambda tag, multiple: on_confirm(tag, multiple, False))
    channel.confirm_select()
    ready.set()
    go.wait()
    tag = report = 0
    while not stop.is_set() and not watchdog.expired():
        # whole reports only, so that a stop never leaves one half published
        throttled = False
        while len(pending) + 3 <= max(window, 3):
            if max_backlog and backlog() > max_backlog:
                throttled = True
                break
            report += 1
            unconfirmed[report] = [3, 0]
            for kind, (exchange, routing_key, message) in enumerate(messages(report)):
                tag += 1
                pending[tag] = (report, kind)
                order.append(tag)
                stats[P_PUBLISHED] += 1
                channel.basic_publish(message, exchange, routing_key, mandatory=True)
        try:
            connection.drain_events(timeout=0.002 if throttled else 1.0)
        except TimeoutError:
            pass
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:  # the confirms of what is in flight
        try:
            connection.drain_events(timeout=1.0)
        except TimeoutError:
            pass


def _consumer(
    host: str, vhost: str, queues: tuple[str, ...], mode: str, lifetime: float, consumed: Any, ready: Any, stop: Any
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watchdog = _Watchdog(lifetime)
    prefetch, ack_every = SETTINGS[mode]["prefetch"], SETTINGS[mode]["ack_every"]
    connection = _client_connection(host, vhost)
    # per channel: [unacked count, last delivery tag]
    unacked: dict[Any, list[int]] = {}

    def flush(channel: Any, state: list[int]) -> None:
        if state[0]:
            channel.basic_ack(state[1], multiple=True)
            state[0] = 0

    def subscribe(queue: str) -> None:
        slot = QUEUES.index(queue)
        channel = connection.channel()
        channel.basic_qos(0, prefetch, False)
        state = unacked.setdefault(channel, [0, 0])

        def on_message(message: amqp.Message) -> None:
            consumed[slot] += 1
            tag = message.delivery_info["delivery_tag"]
            if ack_every == 1:
                channel.basic_ack(tag)
                return
            state[0] += 1
            state[1] = tag
            if state[0] >= ack_every:
                flush(channel, state)

        channel.basic_consume(queue, callback=on_message)

    try:
        for queue in queues:
            subscribe(queue)
        ready.set()
        idle_timeout = 0.05
        while not watchdog.expired():
            try:
                connection.drain_events(timeout=idle_timeout)
            except TimeoutError:
                for channel, state in unacked.items():  # idle: ack what is held
                    flush(channel, state)
                if stop.is_set():
                    break
    finally:
        try:
            for channel, state in unacked.items():
                flush(channel, state)
            connection.close()
        except Exception:
            pass


# ---- one mode -----------------------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    at: float
    broker_cpu: float
    client_cpu: float
    machine: Any
    reports: int
    confirmed: list[int]
    published: list[int]
    consumed: list[int]


def _expected_per_queue(confirmed: list[int]) -> list[int]:
    expected = [0] * len(QUEUES)
    for kind, (_, _, queues) in enumerate(PUBLISHES):
        for queue in queues:
            expected[QUEUES.index(queue)] += confirmed[kind]
    return expected


def _published_deliveries(published: int) -> int:
    """Deliveries due for one publisher's first `published` messages (it publishes the 3 of a report in order)."""
    whole, part = divmod(published, len(PUBLISHES))
    return whole * DELIVERIES_PER_REPORT + sum(len(queues) for _, _, queues in PUBLISHES[:part])


def _busy_fraction(before: Any, after: Any) -> float:
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0) - getattr(before, "iowait", 0))
    return (total - idle) / total if total > 0 else 0.0


def run_mode(mode: str, args: argparse.Namespace, broker: list[psutil.Process]) -> dict[str, Any]:
    """One mode in its own fresh vhost (always deleted): rates, broker and client CPU per report, delivery check."""
    vhost = f"jaklapor-bench-floor-{mode}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    ctx = mp.get_context("fork")
    publisher_stats = [ctx.RawArray("q", P_FIELDS) for _ in range(args.publishers)]
    consumed = ctx.RawArray("q", len(QUEUES))
    go, stop_publishing, stop_consuming = ctx.Event(), ctx.Event(), ctx.Event()
    lifetime = args.idle + args.warmup + args.duration + 180
    processes: list[Any] = []
    created = False
    try:
        create_vhost(vhost)
        created = True
        queue_count = declare_topology(args.host, vhost)
        consumers = []
        for group in CONSUMER_GROUPS[args.consumer_procs]:
            ready = ctx.Event()
            process = ctx.Process(
                target=_consumer,
                args=(args.host, vhost, group, mode, lifetime, consumed, ready, stop_consuming),
                daemon=True,
            )
            process.start()
            consumers.append((process, ready))
        publishers = []
        for index in range(args.publishers):
            ready = ctx.Event()
            process = ctx.Process(
                target=_publisher,
                args=(
                    index,
                    args.host,
                    vhost,
                    mode,
                    args.window,
                    args.max_backlog,
                    lifetime,
                    publisher_stats,
                    consumed,
                    ready,
                    go,
                    stop_publishing,
                ),
                daemon=True,
            )
            process.start()
            publishers.append((process, ready))
        processes = [p for p, _ in consumers + publishers]
        for process, ready in consumers + publishers:
            if not ready.wait(30):
                raise RuntimeError(f"client process {process.pid} did not get ready (exit code {process.exitcode})")
        clients = [psutil.Process(p.pid) for p in processes]
        foreign = foreign_activity(vhost)

        # the broker with this vhost's queues and idle connections, before any message
        idle_start = (time.perf_counter(), cpu_seconds(broker))
        time.sleep(args.idle)
        idle_ms_per_s = (cpu_seconds(broker) - idle_start[1]) * 1000 / (time.perf_counter() - idle_start[0])

        def snapshot() -> Snapshot:
            return Snapshot(
                at=time.perf_counter(),
                broker_cpu=cpu_seconds(broker),
                client_cpu=cpu_seconds(clients),
                machine=psutil.cpu_times(),
                reports=sum(s[P_REPORTS] for s in publisher_stats),
                confirmed=[sum(s[P_CONFIRMED0 + k] for s in publisher_stats) for k in range(3)],
                published=[s[P_PUBLISHED] for s in publisher_stats],
                consumed=list(consumed),
            )

        start_broker = cpu_seconds(broker)
        go.set()
        time.sleep(args.warmup)
        first = snapshot()
        time.sleep(args.duration)
        last = snapshot()
        died = [p.pid for p in processes if not p.is_alive()]
        if died:
            raise RuntimeError(f"client processes {died} died during the run (broker stopped?): no valid result")
        if last.reports == first.reports:
            raise RuntimeError("no report was confirmed during the window: no valid result")
        foreign_after = foreign_activity(vhost)
        stop_publishing.set()
        for process, _ in publishers:
            process.join(60)
        final_stats = [list(s) for s in publisher_stats]
        if not all(s[P_DONE] for s in final_stats):
            print(f"  {mode}: a publisher did not finish its confirms in time", file=sys.stderr)
        confirmed = [sum(s[P_CONFIRMED0 + k] for s in final_stats) for k in range(3)]
        returned = sum(s[P_RETURNED] for s in final_stats)
        expected = _expected_per_queue(confirmed)
        # wait for the consumers to read everything confirmed (no progress for 10 s: give up and report it)
        progress, progress_at = -1, time.monotonic()
        while list(consumed) != expected and time.monotonic() - progress_at < 10:
            if sum(consumed) != progress:
                progress, progress_at = sum(consumed), time.monotonic()
            time.sleep(0.05)
        drained_at, drained_broker = time.perf_counter(), cpu_seconds(broker)
        stop_consuming.set()
        for process, _ in consumers:
            process.join(30)
        final_consumed = list(consumed)
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        try:
            go.set()
            stop_publishing.set()
            stop_consuming.set()
            for process in processes:
                process.join(30 if process.is_alive() else 0)
                if process.is_alive():
                    process.terminate()
                    process.join(5)
            if created:
                delete_vhost_patiently(vhost)
        finally:
            signal.signal(signal.SIGINT, previous)

    seconds = last.at - first.at
    reports = last.reports - first.reports
    consumed_window = sum(last.consumed) - sum(first.consumed)
    broker_s = last.broker_cpu - first.broker_cpu
    client_s = last.client_cpu - first.client_cpu
    broker_ms = broker_s * 1000 / reports if reports else float("nan")
    total_reports = sum(s[P_REPORTS] for s in final_stats)
    shortfall = {q: e - c for q, e, c in zip(QUEUES, expected, final_consumed, strict=True) if e != c}
    backlog = sum(_published_deliveries(n) for n in last.published) - sum(last.consumed)
    cores = psutil.cpu_count() or 1
    return {
        "mode": mode,
        "vhost": vhost,
        "quorum_queues": queue_count,
        "prefetch": SETTINGS[mode]["prefetch"],
        "ack_every": SETTINGS[mode]["ack_every"],
        "window": args.window if mode == "batched" else 1,
        "max_backlog": args.max_backlog if mode == "batched" else None,
        "seconds": seconds,
        "reports": reports,
        "reports_per_s": reports / seconds,
        "consumed_per_s": consumed_window / seconds,
        "deliveries_per_report_in_window": consumed_window / reports if reports else None,
        "backlog_at_end": backlog,
        "broker_cpu_s": broker_s,
        "broker_cpu_pct_of_one_core": broker_s * 100 / seconds,
        "broker_ms_per_report": broker_ms,
        "broker_idle_ms_per_s": idle_ms_per_s,
        "broker_ms_per_report_start_to_drained": (drained_broker - start_broker) * 1000 / total_reports
        if total_reports
        else None,
        "client_cpu_s": client_s,
        "client_ms_per_report": client_s * 1000 / reports if reports else None,
        "machine_cpu_pct": _busy_fraction(first.machine, last.machine) * 100,
        "cores": cores,
        "ceiling_reports_per_s": cores * 1000 / broker_ms if reports else None,
        "total_reports": total_reports,
        "total_confirmed": confirmed,
        "total_consumed": final_consumed,
        "expected_consumed": expected,
        "shortfall": shortfall,
        "nacked": sum(s[P_NACKED] for s in final_stats),
        "returned": returned,
        "drain_seconds": drained_at - last.at,
        "foreign_activity": {"before": foreign, "after": foreign_after},
    }


# ---- main ---------------------------------------------------------------------------------------------------------


ROWS: tuple[tuple[str, str, str], ...] = (
    ("reports/s (3 publishes confirmed)", "reports_per_s", "{:,.0f}"),
    ("consumed messages/s", "consumed_per_s", "{:,.0f}"),
    ("deliveries per report (window)", "deliveries_per_report_in_window", "{:.2f}"),
    ("RabbitMQ CPU s (window)", "broker_cpu_s", "{:.2f}"),
    ("RabbitMQ CPU % of one core", "broker_cpu_pct_of_one_core", "{:.0f} %"),
    ("RabbitMQ CPU ms per report", "broker_ms_per_report", "{:.3f}"),
    ("  idem, start to drained", "broker_ms_per_report_start_to_drained", "{:.3f}"),
    ("RabbitMQ idle CPU ms/s (no traffic)", "broker_idle_ms_per_s", "{:.1f}"),
    ("clients CPU ms per report", "client_ms_per_report", "{:.3f}"),
    ("machine CPU % (all cores)", "machine_cpu_pct", "{:.0f} %"),
    ("ceiling reports/s (cores x 1000 / broker ms)", "ceiling_reports_per_s", "{:,.0f}"),
    ("unconsumed at end of window (messages)", "backlog_at_end", "{:,}"),
)


def format_table(results: list[dict[str, Any]]) -> str:
    """The per-mode numbers as a plain-text table (metrics as rows, modes as columns)."""
    width = max(len(label) for label, _, _ in ROWS) + 2
    lines = ["".ljust(width) + "".join(r["mode"].rjust(14) for r in results)]
    for label, key, fmt in ROWS:
        cells = []
        for result in results:
            value = result.get(key)
            cells.append(("-" if value is None else fmt.format(value)).rjust(14))
        lines.append(label.ljust(width) + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per mode (default 15)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of traffic before measuring (default 2)")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds of the broker's idle CPU, before traffic")
    parser.add_argument("--window", type=int, default=200, help="batched: unconfirmed publishes per publisher")
    parser.add_argument(
        "--max-backlog",
        type=int,
        default=5000,
        help="batched: no new report while more deliveries than this are unconsumed (0: no limit; default 5000)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="before each mode, wait up to this many seconds for an idle machine and no other vhost or connection",
    )
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes (default 2)")
    parser.add_argument("--consumer-procs", type=int, choices=(1, 2), default=2, help="consumer processes")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: per-message,batched")
    parser.add_argument("--host", default="127.0.0.1:5672", help="RabbitMQ host:port (guest/guest)")
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--no-json", action="store_true", help="do not write the JSON result")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: choose from {', '.join(MODES)}")

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    broker = broker_processes()
    sizes = body_sizes(message_templates())
    started = datetime.now(UTC)
    print(
        f"broker pid {', '.join(str(p.pid) for p in broker)}; {psutil.cpu_count()} cores; "
        f"{len(PUBLISHES)} publishes and {DELIVERIES_PER_REPORT} quorum-queue deliveries per report; "
        f"body bytes {' / '.join(f'{s:.0f}' for s in sizes)}; {args.publishers} publisher and "
        f"{args.consumer_procs} consumer processes; {args.duration:g} s per mode after {args.warmup:g} s warm-up; "
        f"batched: window {args.window}, max backlog {args.max_backlog or 'none'}",
        flush=True,
    )
    results = []
    try:
        for mode in modes:
            before = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else psutil.cpu_percent(interval=0.5)
            if before > 30:
                print(f"  warning: the machine is already {before:.0f} % busy before {mode}", file=sys.stderr)
            result = run_mode(mode, args, broker)
            result["machine_cpu_pct_before"] = before
            results.append(result)
            for foreign in result["foreign_activity"].values():
                if foreign.get("other_vhosts") or foreign.get("other_connections") or foreign.get("error"):
                    print(f"  warning: other broker activity during {mode}: {foreign}", file=sys.stderr)
            if mode != modes[-1]:
                time.sleep(2)  # let the broker settle after deleting the vhost
    except KeyboardInterrupt:
        print("interrupted (client processes stopped, vhost deleted)", file=sys.stderr)
        return 130

    print()
    print(format_table(results))
    print()
    for result in results:
        check = (
            f"all {DELIVERIES_PER_REPORT} deliveries of each of the {result['total_reports']:,} reports consumed "
            f"({sum(result['total_consumed']):,} messages)"
            if not result["shortfall"]
            else f"SHORTFALL (expected - consumed per queue): {result['shortfall']}"
        )
        print(
            f"{result['mode']}: {check}; nacked {result['nacked']}, returned {result['returned']}, "
            f"drained in {result['drain_seconds']:.1f} s"
        )
    if not args.no_json:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        path = args.results_dir / f"broker-floor-{started:%Y%m%dT%H%M%SZ}.json"
        document = {
            "benchmark": "broker-floor",
            "started_at": started.isoformat(),
            "host": {"cpus": psutil.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "config": {
                "duration": args.duration,
                "warmup": args.warmup,
                "window": args.window,
                "max_backlog": args.max_backlog,
                "publishers": args.publishers,
                "consumer_procs": args.consumer_procs,
                "publishes": [{"exchange": e, "routing_key": k, "queues": list(q)} for e, k, q in PUBLISHES],
                "body_bytes": sizes,
            },
            "modes": {result["mode"]: result for result in results},
        }
        path.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"\nresult: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0 if all(not r["shortfall"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
