"""Flood burst (issue 17, "Surges"): thousands of "banjir" reports in one kecamatan within minutes, mixed with normal
traffic elsewhere, against the real system with surge grouping at its defaults (services/routing/surge.py).

    .venv/bin/python bench/bench_flood.py                        # baseline run, then the flood run (defaults below)
    .venv/bin/python bench/bench_flood.py --flood 2000 --normal 600 --seconds 120
    .venv/bin/python bench/bench_flood.py --only flood
    .venv/bin/python bench/bench_flood.py --only flood-ungrouped   # the same flood, grouping switched off

Each run starts its own system (bench/harness.py, single process, own vhost) with SURGE_MIN_REPORTS etc. at their
production defaults, and a copy consumer bound to the OPD exchange with `#` (one copy of every OPD message). Normal
traffic: the benchmarks' realistic mix (bench/workload.py) over all of Jakarta, minus banjir in the flooded kecamatan,
sent at a steady rate (open loop, no photos). The flood run adds `--flood` penanganan-banjir reports at uniform points
of the flooded kecamatan's kelurahan, spread evenly over the same seconds. Printed per run:

- reports lost: accepted (201) reports that never reached their OPD, neither as their own `report_assigned` message
  nor as a member of an `incident_opened` / `incident_updated` message, once the pipeline drained (must be 0);
- latency of the normal reports from their intended send time to their copy on the OPD exchange (p50/p95/max),
  to compare between the baseline and the flood run;
- the flooded OPD's durable queue: how many messages it holds (what the agency has to read) against the flood's
  reports, split into incident messages and single report messages.
The full result goes to bench/results/flood-<run>-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")

import aiohttp  # noqa: E402
import numpy as np  # noqa: E402
import shapely  # noqa: E402
from shapely.geometry import shape  # noqa: E402

from bench.harness import BenchSystem  # noqa: E402
from bench.workload import Report as LoadReport  # noqa: E402
from bench.workload import build_reports, client_addresses, points_inside, urlencoded_body  # noqa: E402
from jaklapor.messaging import opd_queue_name  # noqa: E402

FLOOD_CATEGORY = "penanganan-banjir"
RESULTS = REPO / "bench" / "results"


# ---- what is sent ---------------------------------------------------------------------------------------------------


def flood_reports(n: int, kecamatan: str, seed: int) -> list[LoadReport]:
    """`n` banjir reports at uniform points of `kecamatan`'s kelurahan (each kelurahan equally likely)."""
    from jaklapor.reference import load_kelurahan_geojson

    rng = np.random.default_rng(seed)
    features = [f for f in load_kelurahan_geojson()["features"] if f["properties"]["kecamatan"] == kecamatan]
    if not features:
        raise SystemExit(f"no kelurahan in kecamatan {kecamatan!r}")
    picks = rng.integers(0, len(features), n)
    reports = []
    for index, feature in enumerate(features):
        count = int((picks == index).sum())
        if not count:
            continue
        geometry = shape(feature["geometry"])
        shapely.prepare(geometry)
        for lat, lon in points_inside(geometry, count, rng):
            text = f"Banjir setinggi {rng.integers(20, 120)} cm di {feature['properties']['kelurahan']}"
            reports.append(LoadReport(FLOOD_CATEGORY, text, float(lat), float(lon), None))
    random.Random(seed).shuffle(reports)
    return reports


def normal_reports(n: int, kecamatan: str, seed: int) -> list[LoadReport]:
    """The realistic mix over all of Jakarta, without banjir in the flooded kecamatan (that would be the flood)."""
    from services.routing.domain import AreaMatch, default_area_index

    index = default_area_index()
    picked: list[LoadReport] = []
    for report in build_reports(n * 2, seed, 0.0, 0)[0]:
        if report.category == FLOOD_CATEGORY:
            where = index.locate(report.lat, report.lon)
            if isinstance(where, AreaMatch) and where.kecamatan == kecamatan:
                continue
        picked.append(report)
        if len(picked) == n:
            break
    return picked


# ---- a copy of every OPD message ------------------------------------------------------------------------------------


def _copy_consumer(amqp_uri: str, ready: Any, stop: Any, conn: Any) -> None:
    from kombu import Connection, Exchange, Queue

    copies: list[tuple[float, str, str, list[str]]] = []  # (monotonic, routing key, message_type, report ids)
    exchange = Exchange("jaklapor.opd", type="topic", durable=True)
    queue = Queue("bench-flood-copy", exchange=exchange, routing_key="#", durable=False, exclusive=True)

    def on_message(body: Any, message: Any) -> None:
        now = time.monotonic()
        data = json.loads(body) if isinstance(body, bytes | str) else body
        kind = data.get("message_type", "?")
        ids = [m["report_id"] for m in data.get("members", [])] if "incident_id" in data else [data.get("report_id")]
        copies.append((now, message.delivery_info.get("routing_key", ""), kind, ids))

    with Connection(amqp_uri, heartbeat=0) as connection:
        channel = connection.channel()
        exchange(channel).declare()
        queue(channel).declare()
        channel.basic_qos(0, 2000, False)
        consumer = connection.Consumer(queue, callbacks=[on_message], accept=["json"], no_ack=True)
        consumer.consume()
        ready.set()
        while not stop.is_set():
            try:
                connection.drain_events(timeout=0.2)
            except TimeoutError:
                pass
        conn.send(copies)
        conn.close()


class CopyConsumer:
    def __init__(self, amqp_uri: str) -> None:
        ctx = mp.get_context("spawn")
        self.ready, self.stop_event = ctx.Event(), ctx.Event()
        self.parent, child = ctx.Pipe()
        self.process = ctx.Process(target=_copy_consumer, args=(amqp_uri, self.ready, self.stop_event, child))

    def start(self) -> None:
        self.process.start()
        if not self.ready.wait(30):
            raise RuntimeError("copy consumer not ready")

    def stop(self) -> list[tuple[float, str, str, list[str]]]:
        self.stop_event.set()
        copies = self.parent.recv()
        self.process.join(10)
        return copies


# ---- sending --------------------------------------------------------------------------------------------------------


async def send_all(url: str, schedule: list[tuple[float, bytes, str]], addresses: list[str]) -> list[dict[str, Any]]:
    """Open loop: each body at t0 + its offset, whether or not earlier ones were answered."""
    results: list[dict[str, Any]] = [{} for _ in schedule]
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        t0 = time.monotonic() + 0.1

        async def one(i: int, offset: float, body: bytes, kind: str) -> None:
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Forwarded-For": addresses[i % len(addresses)],
            }
            results[i] = {"kind": kind, "intended": t0 + offset, "status": 0, "report_id": None}
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    results[i]["status"] = response.status
                    if response.status == 201:
                        results[i]["report_id"] = (await response.json())["report_id"]
            except (aiohttp.ClientError, TimeoutError) as exc:
                results[i]["error"] = type(exc).__name__

        tasks = []
        for i, (offset, body, kind) in enumerate(schedule):
            delay = t0 + offset - time.monotonic()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, offset, body, kind)))
        await asyncio.gather(*tasks)
    return results


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


# ---- one run --------------------------------------------------------------------------------------------------------


def run(name: str, args: argparse.Namespace) -> dict[str, Any]:
    normal = normal_reports(args.normal, args.kecamatan, args.seed)
    flood = flood_reports(args.flood, args.kecamatan, args.seed + 1) if name.startswith("flood") else []
    schedule = [(i * args.seconds / max(len(normal), 1), urlencoded_body(r), "normal") for i, r in enumerate(normal)]
    schedule += [(i * args.seconds / max(len(flood), 1), urlencoded_body(r), "flood") for i, r in enumerate(flood)]
    schedule.sort(key=lambda item: item[0])
    env = {
        # flood-ungrouped: the same flood with grouping switched off, to tell its cost from the flood's own load
        "SURGE_MIN_REPORTS": "0" if name == "flood-ungrouped" else str(args.min_reports),
        "SURGE_WINDOW_SECONDS": "3600",
        "SURGE_QUIET_SECONDS": "3600",
        "INCIDENT_UPDATE_SECONDS": str(args.update_seconds),
        "INCIDENT_UPDATE_MEMBERS": str(args.update_members),
    }
    system = BenchSystem("single", env=env)
    print(f"[{name}] starting the system ({system.run_dir})", flush=True)
    system.start()
    consumer = CopyConsumer(system.amqp_uri)
    consumer.start()
    try:
        url = system.intake_urls()[0] + "/api/v1/reports"
        print(
            f"[{name}] sending {len(normal)} normal + {len(flood)} flood reports over {args.seconds:.0f} s", flush=True
        )
        started = time.monotonic()
        sent = asyncio.run(send_all(url, schedule, client_addresses(4096, args.seed)))
        send_seconds = time.monotonic() - started
        accepted = {r["report_id"]: r for r in sent if r.get("report_id")}
        # drain: until every accepted report reached its OPD (alone or in an incident), or the time is up
        deadline = time.monotonic() + args.max_drain
        opd_queue = opd_queue_name(args.flooded_opd)
        while True:
            time.sleep(2)
            waiting = _queue_depth(system.amqp_uri, "routing.reports")
            if waiting == 0 or time.monotonic() > deadline:
                break
        time.sleep(max(args.update_seconds, 5) + 2)  # the last coalesced update is sent by the flush timer
        depth = _queue_depth(system.amqp_uri, opd_queue)
        copies = consumer.stop()
    finally:
        system.stop()
    first_seen: dict[str, tuple[float, str]] = {}
    for mono, _key, kind, ids in copies:
        for report_id in ids:
            if report_id and report_id not in first_seen:
                first_seen[report_id] = (mono, kind)
    lost = [rid for rid in accepted if rid not in first_seen]
    normal_latency = [
        first_seen[rid][0] - r["intended"]
        for rid, r in accepted.items()
        if r["kind"] == "normal" and rid in first_seen and first_seen[rid][1] == "report_assigned"
    ]
    normal_in_incident = sum(
        1
        for rid, r in accepted.items()
        if r["kind"] == "normal" and first_seen.get(rid, (0, ""))[1] != "report_assigned"
    )
    flooded = [c for c in copies if c[1].split(".", 1)[0] == args.flooded_opd]
    flood_ids = {rid for rid, r in accepted.items() if r["kind"] == "flood"}
    result = {
        "run": name,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {**vars(args), **env},
        "sent": {"normal": len(normal), "flood": len(flood), "seconds": round(send_seconds, 1)},
        "accepted": {
            "normal": sum(1 for r in accepted.values() if r["kind"] == "normal"),
            "flood": len(flood_ids),
            "errors": sum(1 for r in sent if r.get("status") != 201),
        },
        "lost": len(lost),
        "lost_ids": lost[:20],
        "normal_latency_s": {
            "n": len(normal_latency),
            "p50": percentile(normal_latency, 50),
            "p95": percentile(normal_latency, 95),
            "max": max(normal_latency) if normal_latency else None,
        },
        "normal_reports_grouped_into_incidents": normal_in_incident,
        "flooded_opd": {
            "code": args.flooded_opd,
            "queue_depth": depth,
            "messages": len(flooded),
            "incident_messages": sum(1 for c in flooded if c[2] != "report_assigned"),
            "report_messages_for_flood_reports": sum(
                1 for c in flooded if c[2] == "report_assigned" and c[3][0] in flood_ids
            ),
            "report_messages_for_normal_reports": sum(
                1 for c in flooded if c[2] == "report_assigned" and c[3][0] not in flood_ids
            ),
            "incidents": len({c[3][0] for c in flooded if c[2] == "incident_opened"}),
        },
        "incident_messages_all_opds": sum(1 for c in copies if c[2] != "report_assigned"),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"flood-{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return result


def _queue_depth(amqp_uri: str, queue: str) -> int:
    from kombu import Connection

    with Connection(amqp_uri) as connection:
        try:
            _name, depth, _consumers = connection.channel().queue_declare(queue, passive=True)
        except Exception:
            return -1
        return int(depth)


def show(result: dict[str, Any]) -> None:
    lat = result["normal_latency_s"]
    ms = lambda v: "-" if v is None else f"{v * 1000:.0f} ms"  # noqa: E731
    opd = result["flooded_opd"]
    print(
        f"\n== {result['run']}: sent {result['sent']['normal']} normal + {result['sent']['flood']} flood in "
        f"{result['sent']['seconds']} s; accepted {result['accepted']['normal']} + {result['accepted']['flood']}, "
        f"errors {result['accepted']['errors']}"
    )
    print(f"   reports lost: {result['lost']}")
    print(
        f"   normal reports to their OPD queue: p50 {ms(lat['p50'])}, p95 {ms(lat['p95'])}, "
        f"max {ms(lat['max'])} (n={lat['n']})"
    )
    print(f"   normal reports grouped into an incident: {result['normal_reports_grouped_into_incidents']}")
    print(
        f"   flooded OPD {opd['code']}: queue holds {opd['queue_depth']} messages for "
        f"{result['accepted']['flood']} flood reports ({opd['incidents']} incident(s), "
        f"{opd['incident_messages']} incident messages, "
        f"{opd['report_messages_for_flood_reports']} single flood reports, "
        f"{opd['report_messages_for_normal_reports']} normal reports)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flood", type=int, default=2000, help="banjir reports in the flooded kecamatan")
    parser.add_argument("--normal", type=int, default=600, help="normal reports elsewhere, same seconds")
    parser.add_argument("--seconds", type=float, default=120.0, help="over how many seconds both are sent")
    parser.add_argument("--kecamatan", default="Jatinegara")
    parser.add_argument("--flooded-opd", default="sudin-sumber-daya-air-jakarta-timur")
    parser.add_argument("--min-reports", type=int, default=10, help="SURGE_MIN_REPORTS (the default)")
    parser.add_argument("--update-seconds", type=float, default=60.0, help="INCIDENT_UPDATE_SECONDS (the default)")
    parser.add_argument("--update-members", type=int, default=100, help="INCIDENT_UPDATE_MEMBERS (the default)")
    parser.add_argument("--max-drain", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--only", choices=("baseline", "flood", "flood-ungrouped"), action="append")
    args = parser.parse_args()
    runs = args.only or ["baseline", "flood"]
    results = [run(name, args) for name in runs]
    for result in results:
        show(result)


if __name__ == "__main__":
    main()
