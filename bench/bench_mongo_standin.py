"""Throughput of the MongoDB stand-in (devtools.mongo_standin) through a real pymongo client.

Starts the stand-in as its own process (as the services use it), fills a collection, then for 1 and 8 concurrent
clients (separate processes by default, each with its own MongoClient) runs each operation for a few seconds:

    insert_one                      a small report-like document
    find_one by _id                 random ids among the pre-filled documents
    find_one_and_update by _id      {$inc: {n: 1}}, return_document=AFTER

Besides the throughput, it prints the stand-in's own CPU time per operation (from /proc), which is what bounds
its capacity when the clients run on other cores (one core at most: one process, one lock, the GIL).

    python bench/bench_mongo_standin.py [--seconds 3] [--clients 1 8] [--threads] [--preload 10000]
    python bench/bench_mongo_standin.py --uri mongodb://127.0.0.1:27017/   # against a running server
    python bench/bench_mongo_standin.py --data-dir /tmp/j --fsync always  # the local mode's durable journal
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
        "created_at": datetime.datetime.now(datetime.UTC),
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


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (Linux), 0 if unknown."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(uri: str, op: str, clients: int, preload: int, seconds: float, threads: bool) -> tuple[float, int]:
    if threads:
        import queue

        barrier: Any = threading.Barrier(clients + 1)
        result: Any = queue.Queue()
        workers: list[Any] = [
            threading.Thread(target=_worker, args=(uri, op, i, preload, seconds, barrier, result))
            for i in range(clients)
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
    return total / elapsed, total


def start_server(data_dir: str | None, fsync: str = "never") -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "devtools.mongo_standin", "--port", "0", "--log-level", "WARNING"]
    if data_dir:
        cmd += ["--data-dir", data_dir, "--fsync", fsync]
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
    parser.add_argument(
        "--fsync", choices=("always", "never"), default="never", help="with --data-dir: the journal's fsync policy"
    )
    args = parser.parse_args()

    proc = None
    uri = args.uri
    if uri is None:
        proc, uri = start_server(args.data_dir, args.fsync)
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
        pid = proc.pid if proc is not None else None
        header = "".join(f"{f'{n} client(s)':>16}" for n in args.clients)
        if pid is not None:
            header += "".join(f"{f'server CPU, {n}':>20}" for n in args.clients)
        print(f"{'operation':<28}{header}")
        for op in OPS:
            rates, costs = [], []
            for n in args.clients:
                before = cpu_seconds(pid)
                rate, total = run(uri, op, n, args.preload, args.seconds, args.threads)
                rates.append(rate)
                costs.append((cpu_seconds(pid) - before) / max(total, 1) * 1e6)
            line = f"{op:<28}" + "".join(f"{rate:>12,.0f} op/s" for rate in rates)
            if pid is not None:
                line += "".join(f"{cost:>14.0f} us/op" for cost in costs)
            print(line, flush=True)
        client.drop_database(DB)
        client.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
