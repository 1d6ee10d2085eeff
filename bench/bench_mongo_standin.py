"""Throughput of the MongoDB stand-in (jaklapor.mongo_standin) through a real pymongo client.

Starts the stand-in as its own process (as the services use it), fills a collection, then for 1 and 8 concurrent
clients (separate processes by default, each with its own MongoClient) runs each operation for a few seconds:

    insert_one                      a small report-like document
    find_one by _id                 random ids among the pre-filled documents
    find_one_and_update by _id      {$inc: {n: 1}}, return_document=AFTER

    python bench/bench_mongo_standin.py [--seconds 3] [--clients 1 8] [--threads] [--preload 10000]
    python bench/bench_mongo_standin.py --uri mongodb://127.0.0.1:27017/   # against a running server
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import random
import re
import subprocess
import sys
import threading
import time
from typing import Any

import pymongo
from pymongo import ReturnDocument

DB = "bench_standin"
OPS = ("insert_one", "find_one_by_id", "find_one_and_update_inc")


def _doc(key: str, n: int) -> dict[str, Any]:
    return {
        "_id": key,
        "n": n,
        "status": "menunggu",
        "category": "jalan-rusak",
        "kota": "jakarta-selatan",
        "created_at": datetime.datetime.now(datetime.timezone.utc),
        "description": "Jalan berlubang di depan sekolah, membahayakan pengendara motor.",
        "location": {"lat": -6.2446, "lon": 106.8006},
    }


def _worker(uri: str, op: str, worker: int, preload: int, seconds: float, barrier: Any, result: Any) -> None:
    client = pymongo.MongoClient(uri, tz_aware=True)
    coll = client[DB]["reports"]
    coll.find_one({"_id": "warm-up"})  # connect before the clock starts
    rng = random.Random(worker)
    barrier.wait()
    count = 0
    deadline = time.perf_counter() + seconds
    if op == "insert_one":
        prefix = f"w{worker}-{os.getpid()}-{time.time_ns()}-"
        while time.perf_counter() < deadline:
            for _ in range(20):
                coll.insert_one(_doc(f"{prefix}{count}", count))
                count += 1
    elif op == "find_one_by_id":
        while time.perf_counter() < deadline:
            for _ in range(20):
                found = coll.find_one({"_id": f"pre-{rng.randrange(preload)}"})
                assert found is not None
                count += 1
    else:
        while time.perf_counter() < deadline:
            for _ in range(20):
                coll.find_one_and_update(
                    {"_id": f"pre-{rng.randrange(preload)}"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
                )
                count += 1
    result.put(count)
    client.close()


def run(uri: str, op: str, clients: int, preload: int, seconds: float, threads: bool) -> float:
    if threads:
        import queue

        barrier: Any = threading.Barrier(clients + 1)
        result: Any = queue.Queue()
        workers: list[Any] = [
            threading.Thread(target=_worker, args=(uri, op, i, preload, seconds, barrier, result)) for i in range(clients)
        ]
    else:
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(clients + 1)
        result = ctx.Queue()
        workers = [
            ctx.Process(target=_worker, args=(uri, op, i, preload, seconds, barrier, result)) for i in range(clients)
        ]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    total = sum(result.get() for _ in workers)
    elapsed = time.perf_counter() - started
    for w in workers:
        w.join()
    return total / elapsed


def start_server(data_dir: str | None) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "jaklapor.mongo_standin", "--port", "0", "--log-level", "WARNING"]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on ([\d.]+):(\d+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"stand-in did not start: {line!r}")
    return proc, f"mongodb://{match.group(1)}:{match.group(2)}/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uri", help="benchmark a running server instead of starting a stand-in")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--preload", type=int, default=10_000)
    parser.add_argument("--threads", action="store_true", help="clients as threads of one process, not processes")
    parser.add_argument("--data-dir", help="start the stand-in with this journal directory")
    args = parser.parse_args()

    proc = None
    uri = args.uri
    if uri is None:
        proc, uri = start_server(args.data_dir)
    try:
        client = pymongo.MongoClient(uri, tz_aware=True)
        client.drop_database(DB)
        coll = client[DB]["reports"]
        coll.create_index("status")
        for start in range(0, args.preload, 1000):
            coll.insert_many([_doc(f"pre-{i}", i) for i in range(start, min(start + 1000, args.preload))])
        print(
            f"mongo stand-in at {uri}, {args.preload} documents preloaded, {args.seconds:g}s per run, clients as "
            f"{'threads' if args.threads else 'processes'}, {os.cpu_count()} CPUs"
        )
        print(f"{'operation':<28}" + "".join(f"{f'{n} client(s)':>16}" for n in args.clients))
        for op in OPS:
            rates = [run(uri, op, n, args.preload, args.seconds, args.threads) for n in args.clients]
            print(f"{op:<28}" + "".join(f"{rate:>12,.0f} op/s" for rate in rates), flush=True)
        client.drop_database(DB)
        client.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
