"""The open-data exports (services/intake/open_data.py) over a store of many reports: rows/s, total time and peak
memory of the CSV and the GeoJSON export, through the same code the gateway streams with (the store query, a cursor
read in batches, the row writer), against the MongoDB stand-in (devtools.mongo_standin, started here as its own
process, as the services use it) through a real pymongo client.

It fills the store with `--reports` report documents shaped as intake stores them (categories in the reference
mix, private ones included, areas from the kelurahan list, a history), then exports everything twice per format:
once timed (with the process's RSS sampled every 10,000 rows), once under tracemalloc for the peak of Python
allocations (`--compare-list`: also the peak of reading every report into a list first, what streaming avoids).
Bounded memory shows as the same peak after a tenth of the rows and after all of them.

    python bench/bench_open_data.py [--reports 200000] [--compare-list] [--uri mongodb://127.0.0.1:27017/]
    python bench/bench_open_data.py --gateway   # through a running intake (HTTP, chunked), its RSS sampled
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import random
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pymongo
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_mongo_standin import start_server
from jaklapor.reference import load_areas, load_categories
from services.intake.open_data import csv_chunks, geojson_chunks, public_rows
from services.intake.public_reports import PublicFilter, mongo_filter, stream_in_id_order

DB = "bench_open_data"
BASE_URL = "https://lapor.example"
SEED_BATCH = 5000


def report_documents(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """`count` reports over the last year, as intake stores them."""
    rng = random.Random(seed)
    categories = list(load_categories().values())
    kelurahan = list(load_areas().kelurahan.values())
    areas = load_areas()
    start = datetime.datetime(2025, 12, 1, tzinfo=datetime.UTC)
    statuses = ["menunggu", "koordinasi", "disposisi", "dikerjakan", "selesai", "selesai", "selesai", "ditolak"]
    for n in range(count):
        at = start + datetime.timedelta(seconds=n * 365 * 86400 / count)
        category = rng.choice(categories)
        place = rng.choice(kelurahan)
        kecamatan = areas.kecamatan[place.kecamatan_code]
        kota = areas.kota[kecamatan.kota_code]
        status = rng.choice(statuses)
        yield {
            "_id": f"JK-{at:%Y%m%d}-{n:06d}",
            "tracking_token_hash": f"{n:064x}",
            "category": category.code,
            "description": "Jalan berlubang di depan sekolah, membahayakan pengendara motor, mohon segera diperbaiki.",
            "location": {"lat": -6.2 + rng.uniform(-0.15, 0.1), "lon": 106.85 + rng.uniform(-0.1, 0.1)},
            "photos": [{"photo_id": f"{n:024d}", "width": 1600, "height": 1200, "content_type": "image/jpeg"}],
            "status": status,
            "version": 3,
            "hop": 0,
            "assigned_opd": {
                "code": "sudin-bina-marga-jakarta-selatan",
                "name": "Suku Dinas Bina Marga",
                "level": "sudin",
            },
            "area": {
                "code": place.code,
                "kelurahan": place.name,
                "kecamatan": kecamatan.name,
                "kota": kota.name,
                "kota_slug": kota.name.lower().replace(" ", "-"),
            },
            "submitted_at": at,
            "updated_at": at + datetime.timedelta(hours=5),
            "response_deadline": at + datetime.timedelta(days=3),
            "history": [
                {"kind": "submitted", "at": at, "status": "menunggu", "actor_opd": None, "note": "Laporan diterima"},
                {"kind": "routed", "at": at, "status": "menunggu", "actor_opd": "routing", "note": "Diteruskan"},
            ],
            "applied_events": [],
        }


def seed(uri: str, count: int, database: str = DB) -> None:
    """Fill the store (run in a child process, so the exporting process's memory starts clean)."""
    client: Any = pymongo.MongoClient(uri, tz_aware=True)
    collection = client[database]["reports"]
    collection.drop()
    batch: list[dict[str, Any]] = []
    for document in report_documents(count):
        batch.append(document)
        if len(batch) == SEED_BATCH:
            collection.insert_many(batch, ordered=False)
            batch = []
    if batch:
        collection.insert_many(batch, ordered=False)
    client.close()


def whole_list_peak(collection: Any) -> int:
    """For comparison: the peak traced memory of reading every exported report into a list first (what the streamed
    export avoids)."""
    tracemalloc.start()
    reports = list(collection.find(mongo_filter(PublicFilter(), load_categories())))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del reports
    return peak


def export(collection: Any, kind: str, rows_seen: list[int]) -> Iterator[bytes]:
    """The export as the gateway streams it (open_data_api.py), counting the rows it writes."""
    categories = load_categories()
    reports = stream_in_id_order(collection, mongo_filter(PublicFilter(), categories))

    def counted() -> Iterator[dict[str, Any]]:
        for row in public_rows(reports, categories, BASE_URL):
            rows_seen[0] += 1
            yield row

    return csv_chunks(counted()) if kind == "csv" else geojson_chunks(counted(), datetime.datetime.now(datetime.UTC))


def timed_run(collection: Any, kind: str) -> dict[str, float]:
    process = psutil.Process()
    rss_start = process.memory_info().rss
    rss_peak = rss_start
    rows = [0]
    size = 0
    next_sample = 10_000
    started = time.perf_counter()
    for chunk in export(collection, kind, rows):
        size += len(chunk)
        if rows[0] >= next_sample:
            rss_peak = max(rss_peak, process.memory_info().rss)
            next_sample += 10_000
    elapsed = time.perf_counter() - started
    rss_peak = max(rss_peak, process.memory_info().rss)
    return {"rows": rows[0], "seconds": elapsed, "bytes": size, "rss_growth": rss_peak - rss_start}


def traced_run(collection: Any, kind: str, total: int) -> tuple[int, int]:
    """Peak traced allocation after a tenth of the rows, and after all of them."""
    rows = [0]
    tracemalloc.start()
    early_peak = 0
    for _chunk in export(collection, kind, rows):
        if not early_peak and rows[0] >= total // 10:
            early_peak = tracemalloc.get_traced_memory()[1]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return early_peak, peak


def gateway_run(count: int) -> None:
    """The exports through a running intake gateway (bench/harness.py, one process per service): the HTTP answer
    read as it streams, the intake process's RSS sampled while it sends."""
    from bench.harness import BenchSystem

    system = BenchSystem("per-service")
    try:
        system.start()
        started = time.perf_counter()
        child = multiprocessing.Process(target=seed, args=(system.mongo_uri, count, "jaklapor_intake"))
        child.start()
        child.join()
        print(f"seeded {count} reports into the gateway's store in {time.perf_counter() - started:.1f} s")
        intake = psutil.Process(system.pid_of("intake"))
        url = system.intake_urls()[0]
        for kind in ("csv", "geojson"):
            rss_start = rss_peak = intake.memory_info().rss
            size = 0
            started = time.perf_counter()
            with requests.get(f"{url}/api/v1/open-data/reports.{kind}", stream=True, timeout=600) as response:
                response.raise_for_status()
                chunked = response.headers.get("Transfer-Encoding") == "chunked"
                lines = 0
                marker = b"\n" if kind == "csv" else b'{"type":"Feature"'
                tail = b""  # a marker may be cut between two blocks
                for block in response.iter_content(1 << 16):
                    size += len(block)
                    window = tail + block
                    lines += window.count(marker) - tail.count(marker)
                    tail = window[-(len(marker) - 1) :] if len(marker) > 1 else b""
                    rss_peak = max(rss_peak, intake.memory_info().rss)
            elapsed = time.perf_counter() - started
            rows = lines - 1 if kind == "csv" else lines  # the CSV's header line; descriptions have no newline here
            print(
                f"gateway {kind:8s} rows={rows} total={elapsed:.2f} s rows/s={rows / elapsed:,.0f} "
                f"size={size / 1e6:.1f} MB chunked={chunked} intake_rss={rss_start / 1e6:.0f} MB "
                f"-> peak {rss_peak / 1e6:.0f} MB (+{(rss_peak - rss_start) / 1e6:.1f} MB)"
            )
    finally:
        system.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=200_000)
    parser.add_argument("--uri", help="a running MongoDB instead of starting the stand-in")
    parser.add_argument("--compare-list", action="store_true", help="also measure reading every report into a list")
    parser.add_argument("--gateway", action="store_true", help="export through a running intake gateway (HTTP)")
    args = parser.parse_args()
    if args.gateway:
        gateway_run(args.reports)
        sys.stdout.flush()
        os._exit(0)

    server = None
    uri = args.uri
    if uri is None:
        server, uri = start_server(None)
    try:
        started = time.perf_counter()
        child = multiprocessing.Process(target=seed, args=(uri, args.reports))
        child.start()
        child.join()
        seconds = time.perf_counter() - started
        client: Any = pymongo.MongoClient(uri, tz_aware=True)
        collection = client[DB]["reports"]
        print(f"seeded {args.reports} reports in {seconds:.1f} s ({args.reports / seconds:,.0f}/s)")
        public = collection.count_documents(mongo_filter(PublicFilter(), load_categories()))
        print(f"public reports (exported): {public}; private: {args.reports - public}")
        for kind in ("csv", "geojson"):
            result = timed_run(collection, kind)
            early, peak = traced_run(collection, kind, int(result["rows"]))
            print(
                f"{kind:8s} rows={int(result['rows'])} total={result['seconds']:.2f} s "
                f"rows/s={result['rows'] / result['seconds']:,.0f} size={result['bytes'] / 1e6:.1f} MB "
                f"peak_traced={peak / 1e6:.2f} MB (after 10%: {early / 1e6:.2f} MB) "
                f"rss_growth={result['rss_growth'] / 1e6:.1f} MB"
            )
        if args.compare_list:
            peak = whole_list_peak(collection)
            print(f"for comparison, a list of every exported report: peak_traced={peak / 1e6:.1f} MB")
        client[DB].command("dropDatabase")
        client.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    sys.stdout.flush()
    os._exit(0)  # nothing left to wait for


if __name__ == "__main__":
    main()
