"""Benchmark of the photo store alone: PUT and GET rates and the S3 server's CPU per request, SeaweedFS (the local and
test S3 server, devtools/seaweedfs.py) and moto's S3 server (the former stand-in) side by side in the same run.

Requests go through the product's own code (jaklapor/storage.py: PhotoStore over the `minio` SDK, as the intake
uses it), from `--threads` threads, with incompressible objects of `--size` bytes (a photo is incompressible too).
The stores take turns, round by round and in alternating order, so a load from elsewhere on a shared machine hits
both alike; a first unmeasured round warms each store up. Server CPU is the server process's user + system time
during the phase, divided by the requests.

    python bench/bench_object_store.py                      # 1,000 x 200 KB per store and round, 8 threads, 2 rounds
    python bench/bench_object_store.py --objects 2000 --rounds 3 --json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")  # imported by nameko, under jaklapor.storage

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devtools.seaweedfs import WEED_VERSION, LocalS3Server, die_with_parent  # noqa: E402
from jaklapor.storage import PhotoStore, make_client  # noqa: E402
from tests.system import free_port, wait_for  # noqa: E402

BUCKET = "bench-object-store"


@dataclass
class Server:
    name: str
    endpoint: str
    access_key: str
    secret_key: str
    pid: int
    stop: Callable[[], None]

    def store(self) -> PhotoStore:
        config = {"S3_ENDPOINT": self.endpoint, "S3_ACCESS_KEY": self.access_key, "S3_SECRET_KEY": self.secret_key}
        return PhotoStore(make_client(config), BUCKET)

    def cpu_seconds(self) -> float:
        process = psutil.Process(self.pid)
        times = process.cpu_times()
        return times.user + times.system


@dataclass
class Phase:
    requests: int
    seconds: float
    server_cpu_s: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def server_cpu_ms_per_request(self) -> float:
        return self.server_cpu_s / self.requests * 1000


@dataclass
class StoreResult:
    name: str
    puts: list[Phase] = field(default_factory=list)
    gets: list[Phase] = field(default_factory=list)
    rss_mb: float = 0.0


def start_seaweedfs(data_dir: Path) -> Server:
    server = LocalS3Server(data_dir, BUCKET)
    server.start()
    assert server.pid is not None
    return Server(
        f"SeaweedFS {WEED_VERSION}",
        server.endpoint,
        server.credentials.access_key,
        server.credentials.secret_key,
        server.pid,
        server.stop,
    )


def start_moto(log_path: Path) -> Server:
    from importlib.metadata import version

    port = free_port()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )

    def stop() -> None:
        process.terminate()
        process.wait(15)

    def answers() -> bool:
        probe = make_client({"S3_ENDPOINT": f"127.0.0.1:{port}"})
        if not probe.bucket_exists(BUCKET):
            probe.make_bucket(BUCKET)
        return True

    wait_for(answers, 60, interval=0.2, message="moto's S3 server")
    return Server(f"moto {version('moto')}", f"127.0.0.1:{port}", "bench", "bench-secret", process.pid, stop)


def timed(server: Server, threads: int, work: Callable[[int], None], count: int) -> Phase:
    cpu_before, started = server.cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(work, range(count)):
            pass
    seconds = time.perf_counter() - started
    return Phase(count, seconds, server.cpu_seconds() - cpu_before)


def run_round(server: Server, result: StoreResult, payloads: list[bytes], label: str, args: argparse.Namespace) -> None:
    """PUT then GET `args.objects` new objects; a round labelled "warmup" is not recorded."""
    store = server.store()
    store.ensure_bucket()
    key = f"photos/{label}-{{}}.jpg".format

    def put(i: int) -> None:
        store.put(key(i), payloads[i % len(payloads)], "image/jpeg")

    def get(i: int) -> None:
        content = store.get(key(i)).content
        if len(content) != args.size:
            raise AssertionError(f"{server.name}: {key(i)} came back with {len(content)} bytes")

    puts, gets = timed(server, args.threads, put, args.objects), timed(server, args.threads, get, args.objects)
    if label != "warmup":
        result.puts.append(puts)
        result.gets.append(gets)
    result.rss_mb = psutil.Process(server.pid).memory_info().rss / 2**20


def summary(results: list[StoreResult]) -> str:
    def span(values: list[float], digits: int = 0) -> str:
        low, high = (f"{value:,.{digits}f}" for value in (min(values), max(values)))
        return low if low == high else f"{low}-{high}"

    lines = [
        f"{'store':<16} {'PUT/s':>13} {'GET/s':>13} {'server CPU ms/PUT':>18} {'ms/GET':>10} {'RSS MB':>8}",
    ]
    for r in results:
        lines.append(
            f"{r.name:<16} {span([p.per_second for p in r.puts]):>13} {span([g.per_second for g in r.gets]):>13} "
            f"{span([p.server_cpu_ms_per_request for p in r.puts], 2):>18} "
            f"{span([g.server_cpu_ms_per_request for g in r.gets], 2):>10} {r.rss_mb:>8.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=1000, help="objects per store and round")
    parser.add_argument("--size", type=int, default=200_000, help="bytes per object")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args(argv)

    payloads = [i.to_bytes(4, "big") + os.urandom(args.size - 4) for i in range(64)]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="jaklapor-bench-s3-") as tmp:
        servers = [start_seaweedfs(Path(tmp) / "seaweedfs"), start_moto(Path(tmp) / "moto.log")]
        results = [StoreResult(server.name) for server in servers]
        try:
            for server, result in zip(servers, results, strict=True):
                # not measured: the first writes to a bucket make SeaweedFS allocate its volumes
                run_round(server, result, payloads, "warmup", args)
            for round_no in range(args.rounds):
                order = list(zip(servers, results, strict=True))
                for server, result in order if round_no % 2 == 0 else reversed(order):
                    run_round(server, result, payloads, f"r{round_no}", args)
        finally:
            for server in servers:
                server.stop()
    print(
        f"== object store: {args.objects} x {args.size // 1000} KB per store and round, {args.threads} threads, "
        f"{args.rounds} rounds (load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}, "
        f"{psutil.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}) =="
    )
    print(summary(results))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "store": r.name,
                        "rss_mb": r.rss_mb,
                        "puts": [asdict(p) | {"per_second": p.per_second} for p in r.puts],
                        "gets": [asdict(g) | {"per_second": g.per_second} for g in r.gets],
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
