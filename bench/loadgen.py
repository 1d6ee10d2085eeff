"""Load generator and end-to-end benchmark: citizen reports in, OPD-queue deliveries out (issue 6).

    python bench/loadgen.py --scenario smoke                      # 50 reports/s for 20 s, the whole path
    python bench/loadgen.py --scenario fixed                      # open loop, 500 reports/s for 60 s
    python bench/loadgen.py --scenario max                        # closed loop, 64 clients for 60 s, no photos
    python bench/loadgen.py --scenario photos                     # closed loop, every report with a photo
    python bench/loadgen.py --scenario flood                      # 50,000 reports in 5 minutes, then the drain
    python bench/loadgen.py --scenario selftest                   # the generator against a trivial endpoint
    python bench/loadgen.py --scenario max --layout per-service
    python bench/loadgen.py --scenario max --layout two-per-service
    python bench/loadgen.py --scenario max --profile intake,routing   # py-spy flame graphs during the load
    python bench/loadgen.py --scenario max --layout per-service --versus-naive   # then issue 19's naive baseline
    python bench/loadgen.py --scenario max --plain-body form      # reports as the citizen app sends them: multipart
    python bench/loadgen.py --url http://127.0.0.1:8000 --amqp-uri pyamqp://guest:guest@127.0.0.1:5672/ \
        --pid all=12345 --scenario smoke                           # attach to a running system

By default it starts the system itself (bench/harness.py: own RabbitMQ vhost, SeaweedFS S3 server, free ports,
RATE_LIMIT_BURST=0 so rate limiting is off, TRUSTED_PROXY_HOPS=1), and every request carries an X-Forwarded-For
address from a pool of 65,536, so an attached system that limits per client still sees many clients (start it with
TRUSTED_PROXY_HOPS=1, which also lifts the cap of HTTP_MAX_CONNECTIONS_PER_ADDRESS connections per peer address).

Per run: reports/s accepted (201) and delivered to OPD queues; latency from the client's send (the intended send
time in the open loop) to the arrival of the report's copy at our own queue bound to `jaklapor.opd` with `#`
(p50/p95/p99/max); errors by status; every accepted report id checked to arrive exactly once (lost, duplicated);
backlog drain time after the load stops; CPU and RSS of every process each second; the broker's raw ceiling
(confirmed publishes/s with kombu to a quorum queue) measured in the same run, before the load, and the ratio.
A summary is printed and the full result written to bench/results/<scenario>-<layout>-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# tests/system.py imports nameko, which imports eventlet (never monkey-patched here): its deprecation notice is noise
warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")

import numpy as np  # noqa: E402

from bench.client import Results, Sender, run_closed_loop, run_open_loop, serve_trivial  # noqa: E402
from bench.flamegraph import write_flamegraph  # noqa: E402
from bench.harness import LAYOUTS, BenchSystem  # noqa: E402
from bench.observer import BrokerInterrupted, CopyConsumer, ResourceMonitor, confirmed_publish_ceiling, find_beam  # noqa: E402
from bench.workload import build_reports, client_addresses, photo_pool  # noqa: E402
from tests.broker_admin import vhost_publish_count  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"

SCENARIOS: dict[str, dict[str, Any]] = {
    "smoke": {"mode": "fixed", "rate": 50.0, "duration": 20.0, "photo_share": 0.2},
    "fixed": {"mode": "fixed", "rate": 500.0, "duration": 60.0, "photo_share": 0.2},
    "max": {"mode": "closed", "clients": 64, "duration": 60.0, "photo_share": 0.0},
    "photos": {"mode": "closed", "clients": 32, "duration": 60.0, "photo_share": 1.0},
    "flood": {"mode": "fixed", "count": 50_000, "duration": 300.0, "photo_share": 0.2},
    "selftest": {"mode": "closed", "clients": 64, "duration": 10.0, "photo_share": 0.0},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="smoke")
    parser.add_argument("--layout", choices=LAYOUTS, default="single")
    parser.add_argument("--rate", type=float, help="open loop: reports per second")
    parser.add_argument("--duration", type=float, help="seconds of load")
    parser.add_argument("--count", type=int, help="open loop: reports in total (rate = count / duration)")
    parser.add_argument("--clients", type=int, help="closed loop: concurrent clients")
    parser.add_argument("--photo-share", type=float, help="share of reports with a 150-300 KB JPEG photo")
    parser.add_argument("--photo-pool", type=int, default=32, help="distinct photos, generated before the run")
    parser.add_argument("--kelurahan-weight", choices=("uniform", "area"), default="uniform")
    parser.add_argument("--connections", type=int, default=256, help="open loop: keep-alive connections at most")
    parser.add_argument("--timeout", type=float, default=60.0, help="HTTP timeout per request, seconds")
    parser.add_argument("--warmup", type=int, default=40, help="reports sent (and awaited) before the measurement")
    parser.add_argument("--ceiling-seconds", type=float, default=8.0)
    parser.add_argument("--ceiling-publishers", default="1,4", help="publisher connections to measure, e.g. 1,4")
    parser.add_argument("--no-ceiling", action="store_true")
    parser.add_argument("--max-drain", type=float, default=420.0, help="stop waiting for deliveries after this")
    parser.add_argument("--drain-stall", type=float, default=60.0, help="... or after this long without progress")
    parser.add_argument("--profile", default="", help="services to profile with py-spy during the load, e.g. intake")
    parser.add_argument("--profile-delay", type=float, default=10.0)
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service processes")
    parser.add_argument("--code-dir", type=Path, default=REPO, help="run the services from this copy of the code")
    parser.add_argument("--url", action="append", default=[], help="attach: intake URL(s) of a running system")
    parser.add_argument("--amqp-uri", help="attach: the running system's AMQP URI (vhost included)")
    parser.add_argument("--pid", action="append", default=[], help="attach: label=pid of a process to watch")
    parser.add_argument("--wait-quiet", type=float, default=0.0, help="first wait up to this long for an idle machine")
    parser.add_argument("--retries", type=int, default=2, help="runs voided by a broker restart are run again")
    parser.add_argument(
        "--plain-body",
        choices=("urlencoded", "form"),
        default="urlencoded",
        help="how reports without a photo are sent: urlencoded, or multipart as the citizen app sends every report",
    )
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--tag", default="", help="added to the result file name")
    parser.add_argument(
        "--versus-naive",
        action="store_true",
        help="after the run, the same load against the naive baseline (bench/naive_pipeline.py); prints the ratio",
    )
    args = parser.parse_args(argv)
    preset = SCENARIOS[args.scenario]
    for key in ("rate", "duration", "count", "clients", "photo_share"):
        if getattr(args, key) is None:
            setattr(args, key, preset.get(key))
    args.mode = preset["mode"]
    if args.mode == "fixed":
        if args.count is None:
            args.count = round(args.rate * args.duration)
        elif args.rate is None or "rate" not in preset:
            args.rate = args.count / args.duration
        args.duration = args.count / args.rate
    if args.url and not args.amqp_uri:
        parser.error("--url needs --amqp-uri (the copy queue and the ceiling use the system's broker and vhost)")
    return args


# ---- statistics -------------------------------------------------------------------------------------------------


def pct(values: list[float] | np.ndarray, scale: float = 1000.0) -> dict[str, float | None]:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "n": int(arr.size),
        "p50": round(float(p50) * scale, 1),
        "p95": round(float(p95) * scale, 1),
        "p99": round(float(p99) * scale, 1),
        "max": round(float(arr.max()) * scale, 1),
        "mean": round(float(arr.mean()) * scale, 1),
    }


def analyse(
    res: Results, sent_count: int, t0: float, load_end: float, arrivals: dict[str, list], warmup_ids: set[str]
) -> dict[str, Any]:
    idx = [i for i in range(sent_count) if res.status[i] == 201 and res.report_id[i]]
    accepted_ids = [res.report_id[i] for i in idx]
    accepted_set = set(accepted_ids)
    status_counts = collections.Counter(res.status[i] for i in range(sent_count))
    dup_accept = len(accepted_ids) - len(accepted_set)  # two 201s with one id: never expected
    lost = [r for r in accepted_ids if r not in arrivals]
    duplicated = {r: len(arrivals[r]) for r in accepted_set if r in arrivals and len(arrivals[r]) > 1}
    known = accepted_set | warmup_ids
    unexpected = [r for r in arrivals if r not in known]
    first_arrival = {r: min(a[0] for a in arrivals[r]) for r in accepted_set if r in arrivals}

    lat_intended, lat_sent, lat_server, http = [], [], [], []
    for i in idx:
        rid = res.report_id[i]
        http.append(res.done[i] - res.intended[i])
        if rid in first_arrival:
            lat_intended.append(first_arrival[rid] - res.intended[i])
            lat_sent.append(first_arrival[rid] - res.sent[i])
            lat_server.append(min(a[1] for a in arrivals[rid]))
    sched_lag = [res.sent[i] - res.intended[i] for i in range(sent_count) if res.status[i] != -1]
    # issue 19: every client must get an answer (201, or 503 + Retry-After) within 1 s of wanting to send
    answered = [res.done[i] - res.intended[i] for i in range(sent_count) if res.status[i] > 0]
    without_answer = sum(1 for i in range(sent_count) if res.status[i] <= 0)

    arrival_times = sorted(first_arrival.values())
    last_arrival = arrival_times[-1] if arrival_times else t0
    last_done = max((res.done[i] for i in range(sent_count)), default=t0)
    load_seconds = max(load_end - t0, 1e-9)
    delivered_in_load = sum(1 for t in arrival_times if t <= load_end)
    end = max(last_arrival, last_done)
    seconds = int(end - t0) + 1
    accepted_per_s = np.zeros(seconds, dtype=int)
    delivered_per_s = np.zeros(seconds, dtype=int)
    for i in idx:
        accepted_per_s[min(seconds - 1, max(0, int(res.done[i] - t0)))] += 1
    for t in arrival_times:
        delivered_per_s[min(seconds - 1, max(0, int(t - t0)))] += 1
    window = 10
    best_window = max(
        (int(delivered_per_s[s : s + window].sum()) for s in range(max(1, seconds - window + 1))), default=0
    )
    return {
        "sent": sent_count,
        "accepted": len(idx),
        "status_counts": {str(k): v for k, v in sorted(status_counts.items())},
        "errors": dict(res.errors.most_common()),
        "load_seconds": round(load_seconds, 2),
        "accepted_per_s": round(len(idx) / load_seconds, 1),
        "delivered": len(first_arrival),
        "delivered_per_s_during_load": round(delivered_in_load / load_seconds, 1),
        "delivered_per_s_end_to_end": round(len(first_arrival) / max(last_arrival - t0, 1e-9), 1),
        "delivered_per_s_best_10s": round(best_window / window, 1),
        "backlog_at_load_end": len(idx) - delivered_in_load,
        "drain_seconds": round(max(0.0, last_arrival - load_end), 2),
        "latency_ms_from_intended_send": pct(lat_intended),
        "latency_ms_from_actual_send": pct(lat_sent),
        "latency_ms_server_submitted_at_to_copy": pct(lat_server),
        "http_ms": pct(http),
        "client_schedule_lag_ms": pct(sched_lag),
        "time_to_answer_ms": pct(answered),
        "answers": {
            "answered": len(answered),
            "without_answer": without_answer,
            "answered_within_1s": sum(1 for t in answered if t <= 1.0),
            "refused_503": status_counts.get(503, 0),
        },
        "integrity": {
            "accepted_ids": len(accepted_set),
            "lost": len(lost),
            "lost_examples": lost[:10],
            "duplicated": len(duplicated),
            "duplicated_examples": dict(list(duplicated.items())[:10]),
            "same_id_accepted_twice": dup_accept,
            "arrived_without_201": len(unexpected),
            "arrived_without_201_examples": unexpected[:10],
        },
        "per_second": {"accepted": accepted_per_s.tolist(), "delivered": delivered_per_s.tolist()},
    }


# ---- profiling ----------------------------------------------------------------------------------------------------


def start_profiles(targets: dict[str, int], seconds: float, out_dir: Path, stamp: str) -> list[dict[str, Any]]:
    """One py-spy sampler per process (50 Hz, collapsed stacks); the flame graph is drawn from them afterwards."""
    started = []
    # beside this interpreter when the virtualenv is not activated
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    for label, pid in targets.items():
        base = out_dir / f"profile-{stamp}-{label.replace('#', '-')}"
        command = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "50"]
        command += ["--format", "raw", "-o", str(base) + ".txt"]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append({"label": label, "pid": pid, "base": base, "procs": [proc]})
    return started


def finish_profiles(started: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for item in started:
        for proc in item["procs"]:
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
        raw = Path(str(item["base"]) + ".txt")
        if raw.exists():
            svg = Path(str(item["base"]) + ".svg")
            write_flamegraph(raw, svg, f"{item['label']} (pid {item['pid']})")
            out[item["label"]] = summarize_profile(raw)
            out[item["label"]]["raw"] = str(raw.relative_to(REPO)) if raw.is_relative_to(REPO) else str(raw)
            out[item["label"]]["svg"] = str(svg.relative_to(REPO)) if svg.is_relative_to(REPO) else str(svg)
    return out


def short_frame(frame: str) -> str:
    """`func (path/to/file.py:123)` -> `func (file.py)`: one entry per function, whatever the line."""
    name, _, where = frame.partition(" (")
    if not where:
        return frame
    path = where.split(":")[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"


def summarize_profile(raw: Path, top: int = 25) -> dict[str, Any]:
    """Inclusive and self sample shares per function from py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [short_frame(f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count

    def share(counter: collections.Counter[str]) -> list[list[Any]]:
        return [[name, round(100.0 * n / max(total, 1), 1)] for name, n in counter.most_common(top)]

    return {"samples": total, "inclusive_pct": share(inclusive), "self_pct": share(own)}


# ---- the run ------------------------------------------------------------------------------------------------------


def machine_facts(code_dir: Path = REPO) -> dict[str, Any]:
    facts: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        facts["nproc"] = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip())
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        keep = ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Hypervisor vendor")
        facts["lscpu"] = {
            k.strip(): v.strip()
            for k, _, v in (line.partition(":") for line in lscpu.splitlines())
            if k.strip() in keep
        }
        with open("/proc/meminfo") as fh:
            facts["mem_total_mib"] = int(fh.readline().split()[1]) // 1024
        facts["rabbitmq"] = "3.10 (127.0.0.1:5672)"
        git = ["git", "-C", str(REPO)]
        facts["git_commit"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "jaklapor", "services"], capture_output=True, text=True
        )
        facts["git_uncommitted_service_files"] = [line[3:] for line in dirty.stdout.splitlines()]
        # the code the run measured (others edit services while benchmarks run): a hash of every .py file
        digest = hashlib.sha256()
        for path in sorted([*code_dir.glob("jaklapor/**/*.py"), *code_dir.glob("services/**/*.py")]):
            if "tests" not in path.relative_to(code_dir).parts:
                digest.update(path.relative_to(code_dir).as_posix().encode() + b"\0" + path.read_bytes())
        facts["code_sha256"] = digest.hexdigest()[:16]
    except Exception as exc:
        facts["error"] = repr(exc)
    return facts


def wait_for_deliveries(consumer: CopyConsumer, expected: int, max_wait: float, stall: float, quiet: bool) -> str:
    """Wait until `expected` copies arrived; returns why it stopped: complete, time limit or stalled."""
    started = time.monotonic()
    last, last_change, last_print = consumer.count.value, started, started
    while consumer.count.value < expected:
        consumer.check()
        now = time.monotonic()
        if consumer.count.value != last:
            last, last_change = consumer.count.value, now
        if now - last_change > stall:
            reason = f"stalled (no copy for {stall:.0f} s)"
        elif now - started > max_wait:
            reason = f"time limit ({max_wait:.0f} s)"
        else:
            if not quiet and now - last_print >= 15:
                print(f"  drain: {consumer.count.value:,}/{expected:,} copies after {now - started:.0f} s", flush=True)
                last_print = now
            time.sleep(0.2)
            continue
        print(f"  drain: giving up with {consumer.count.value:,}/{expected:,} copies: {reason}", flush=True)
        return reason
    return "complete"


def wait_quiet(limit: float, threshold: float = 35.0) -> float:
    """Wait (up to `limit` s) until the machine's CPU use stays under `threshold` % (of all cores) for 5 s, so
    other developers' test runs disturb the measurement less. Returns the CPU % seen last."""
    import psutil

    started = time.monotonic()
    while True:
        busy = psutil.cpu_percent(interval=5.0)
        if busy < threshold or time.monotonic() - started > limit:
            return busy
        print(f"  waiting for a quieter machine (CPU {busy:.0f} % busy)", flush=True)


def selftest(args: argparse.Namespace) -> dict[str, Any]:
    """The generator's own ceiling: closed loop against a trivial HTTP server in another process."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=serve_trivial, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    import psutil

    me, srv = psutil.Process(), psutil.Process(server.pid)
    reports, _ = build_reports(int(args.duration * 8000), args.seed, 0.0, 0, args.kelurahan_weight)
    addresses = client_addresses(65536, args.seed)
    out: dict[str, Any] = {}
    for clients in (args.clients, 8):
        res = Results(len(reports))
        sender = Sender([f"http://127.0.0.1:{port}"], reports, [], addresses, res, clients, args.timeout)
        cpu0, srv0 = me.cpu_times(), srv.cpu_times()

        async def go(sender: Sender = sender, clients: int = clients) -> tuple[float, int]:
            async with sender:
                return await run_closed_loop(sender, clients, args.duration)

        t0, n = asyncio.run(go())
        elapsed = time.monotonic() - t0
        cpu1, srv1 = me.cpu_times(), srv.cpu_times()
        client_cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        server_cpu = (srv1.user + srv1.system) - (srv0.user + srv0.system)
        ok = sum(1 for s in res.status[:n] if s == 201)
        out[f"closed_{clients}_clients"] = {
            "requests_per_s": round(ok / elapsed, 1),
            "client_cpu_us_per_request": round(client_cpu / max(ok, 1) * 1e6, 1),
            "client_cpu_pct": round(100 * client_cpu / elapsed, 1),
            "server_cpu_pct": round(100 * server_cpu / elapsed, 1),
            "client_ceiling_per_core": round(max(ok, 1) / max(client_cpu, 1e-9), 0),
            "http_ms": pct([res.done[i] - res.intended[i] for i in range(n) if res.status[i] == 201]),
        }
    # and a fixed rate: does the open loop keep its schedule at 1,000/s and 2,000/s?
    for rate in (1000.0, 2000.0):
        count = int(rate * 5)
        res = Results(count)
        sender = Sender([f"http://127.0.0.1:{port}"], reports[:count], [], addresses, res, args.connections, 30)

        async def go_open(sender: Sender = sender, rate: float = rate, count: int = count) -> float:
            async with sender:
                return await run_open_loop(sender, rate, count)

        t0 = asyncio.run(go_open())
        last = max(res.done[:count])
        out[f"open_{int(rate)}_per_s"] = {
            "achieved_per_s": round(count / (last - t0), 1),
            "schedule_lag_ms": pct([res.sent[i] - res.intended[i] for i in range(count)]),
            "http_ms": pct([res.done[i] - res.intended[i] for i in range(count)]),
        }
    server.terminate()
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result: dict[str, Any] = {
        "scenario": args.scenario,
        "started_at": stamp,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine_facts(args.code_dir.resolve()),
    }
    if args.scenario == "selftest":
        result["selftest"] = selftest(args)
        return result

    # ---- everything the run sends, built before the clock starts ----
    t_build = time.monotonic()
    n_reports = args.count if args.mode == "fixed" else int(args.duration * 3000)
    reports, weights = build_reports(
        n_reports + args.warmup, args.seed, args.photo_share, args.photo_pool, args.kelurahan_weight
    )
    photos = photo_pool(args.photo_pool if args.photo_share > 0 else 0)
    addresses = client_addresses(65536, args.seed)
    result["workload"] = {
        "reports_prepared": len(reports),
        "photo_share": args.photo_share,
        "plain_body": args.plain_body,
        "photo_pool": len(photos),
        "photo_kib": [round(len(p) / 1024) for p in photos],
        "kelurahan_weighting": args.kelurahan_weight,
        "category_weights": {k: round(v, 4) for k, v in sorted(weights.items(), key=lambda kv: -kv[1])},
        "client_addresses": len(addresses),
        "build_seconds": round(time.monotonic() - t_build, 1),
    }
    print(
        f"[{args.scenario}] {len(reports):,} reports prepared ({args.photo_share:.0%} with photos, "
        f"{len(photos)} distinct photos) in {result['workload']['build_seconds']} s",
        flush=True,
    )

    if args.wait_quiet > 0:
        result["machine"]["cpu_busy_pct_before_start"] = round(wait_quiet(args.wait_quiet), 1)
    system: BenchSystem | None = None
    consumer: CopyConsumer | None = None
    monitor: ResourceMonitor | None = None
    try:
        # ---- the system ----
        if args.url:
            urls, amqp_uri, pids = args.url, args.amqp_uri, {}
            for item in args.pid:
                label, _, pid = item.partition("=")
                pids[label] = int(pid)
            vhost = amqp_uri.rsplit("/", 1)[-1] or "/"
            result["system"] = {"attached": urls}
        else:
            env = dict(item.split("=", 1) for item in args.env)
            system = BenchSystem(args.layout, env=env, code_dir=args.code_dir.resolve())
            t_start = time.monotonic()
            system.start()
            urls, amqp_uri, pids = system.intake_urls(), system.amqp_uri, system.pids()
            vhost = system.vhost.name if system.vhost else None
            result["system"] = {
                "layout": args.layout,
                "mongo": "standin",  # the wire stand-in with its journal, as `make run` (mongomock in-process before)
                "processes": {p.label: list(p.services) for p in system.processes},
                "env_overrides": env,
                "code_dir": str(system.code_dir),
                "rate_limit": "off (RATE_LIMIT_BURST=0), TRUSTED_PROXY_HOPS=1",
                "start_seconds": round(time.monotonic() - t_start, 1),
                "run_dir": str(system.run_dir),
                "vhost": vhost,
            }
            print(
                f"  system up ({args.layout}) in {result['system']['start_seconds']} s: "
                f"{', '.join(urls)}; logs in {system.run_dir}",
                flush=True,
            )
        consumer = CopyConsumer(amqp_uri)
        consumer.start()
        beam = find_beam()
        watch = dict(pids)
        if beam:
            watch["rabbitmq(beam.smp)"] = beam
        watch["loadgen"] = os.getpid()
        watch["copy-consumer"] = consumer.pid
        monitor = ResourceMonitor(watch, vhost)
        monitor.start()

        # ---- the broker's ceiling, on the idle system ----
        if not args.no_ceiling:
            monitor.phase = "ceiling"
            ceilings = []
            for n in [int(x) for x in args.ceiling_publishers.split(",") if x]:
                c = confirmed_publish_ceiling(amqp_uri, n, args.ceiling_seconds)
                ceilings.append(c)
                print(
                    f"  ceiling: {c['publishes_per_s']:,.0f} confirmed publishes/s with {n} publisher(s) "
                    f"(confirm p50 {c['confirm_ms_p50']} ms, p99 {c['confirm_ms_p99']} ms)",
                    flush=True,
                )
            result["ceiling"] = ceilings
            monitor.phase = "idle"
            time.sleep(2)

        # ---- warm-up: a few reports through the whole path (declares the OPD queues they hit, fills caches) ----
        def send_warmup(batch: list[Any]) -> Results:
            results = Results(len(batch))
            sender = Sender(urls, batch, photos, addresses, results, 16, args.timeout, args.plain_body)

            async def send_all() -> float:
                async with sender:
                    return await run_open_loop(sender, 20.0, len(batch))

            asyncio.run(send_all())
            return results

        warm = send_warmup(reports[: args.warmup])
        warmup_ids = {r for r in warm.report_id if r}
        warmup_errors = collections.Counter(warm.errors)
        # right after the start (four services and two stores starting on the same cores) the first requests are
        # slow, so admission control may shed some of them with 503 + Retry-After: sent again once, as a phone would
        refused = [reports[i] for i in range(args.warmup) if warm.status[i] == 503 and i in warm.retry_after]
        if refused:
            pause = max(warm.retry_after.values())
            print(f"  warm-up: {len(refused)} of {args.warmup} refused (503, Retry-After), resent after {pause:.0f} s")
            time.sleep(pause)
            again = send_warmup(refused)
            warmup_ids |= {r for r in again.report_id if r}
            warmup_errors.update(again.errors)
            result["warmup_refused_then_resent"] = len(refused)
        wait_for_deliveries(consumer, len(warmup_ids), 90, 60, True)
        if len(warmup_ids) < args.warmup or consumer.count.value < len(warmup_ids):
            raise SystemExit(
                f"warm-up failed: {len(warmup_ids)}/{args.warmup} accepted ({dict(warmup_errors)}), "
                f"{consumer.count.value} copies arrived; not measuring a broken system "
                f"(logs: {system.run_dir if system else 'attached'})"
            )
        # management statistics lag by up to 5 s: let the warm-up's publishes be counted before the baseline
        time.sleep(6)
        publishes_before = vhost_publish_count(vhost) if vhost else None
        store_before = store_commands(system.mongo_uri) if system is not None else None

        # ---- the load ----
        load_reports = reports[args.warmup :]
        res = Results(len(load_reports))
        connections = args.connections if args.mode == "fixed" else args.clients
        sender = Sender(urls, load_reports, photos, addresses, res, connections, args.timeout, args.plain_body)
        profiles: list[dict[str, Any]] = []
        profile_targets = {}
        if args.profile and system is not None:
            labelled = system.pids()
            for name in args.profile.split(","):
                if name in labelled:  # a process label: all, intake#2, mongo-standin, s3(seaweedfs)
                    profile_targets[name] = labelled[name]
                    continue
                for proc in system.processes:  # a service name: its (first) process
                    if name in proc.services:
                        profile_targets[proc.label] = proc.pid
                        break

        async def profile_later() -> None:
            await asyncio.sleep(args.profile_delay)
            profiles.extend(start_profiles(profile_targets, args.profile_seconds, args.out, stamp))

        async def send_all() -> tuple[float, int]:
            if args.mode == "fixed":
                t0 = await run_open_loop(sender, args.rate, len(load_reports))
                return t0, len(load_reports)
            return await run_closed_loop(sender, args.clients, args.duration)

        async def load() -> tuple[float, int]:
            async with sender:
                if profile_targets:
                    asyncio.get_running_loop().create_task(profile_later())
                task = asyncio.get_running_loop().create_task(send_all())
                while not task.done():
                    await asyncio.wait({task}, timeout=1.0)
                    try:
                        consumer.check()  # the broker dropped the copy consumer: stop, the run is void
                    except BrokerInterrupted:
                        task.cancel()
                        raise
                return task.result()

        what = (
            f"open loop {args.rate:g}/s for {args.duration:g} s ({args.count:,} reports)"
            if args.mode == "fixed"
            else f"closed loop, {args.clients} clients for {args.duration:g} s"
        )
        print(f"  load: {what}, photo share {args.photo_share:.0%}, {len(urls)} intake URL(s)", flush=True)
        monitor.phase = "load"
        t0, sent = asyncio.run(load())
        load_end = time.monotonic()
        monitor.phase = "drain"
        accepted = sum(1 for i in range(sent) if res.status[i] == 201)
        print(
            f"  load done: {sent:,} sent, {accepted:,} accepted in {load_end - t0:.1f} s; "
            f"{consumer.count.value - len(warmup_ids):,} copies so far; draining",
            flush=True,
        )
        drain_end = wait_for_deliveries(consumer, len(warmup_ids) + accepted, args.max_drain, args.drain_stall, False)
        time.sleep(2)  # late duplicates, if any, arrive now
        time.sleep(5)  # and the management statistics catch up with the last publishes
        publishes_after = vhost_publish_count(vhost) if vhost else None
        store_after = store_commands(system.mongo_uri) if system is not None else None
        monitor.phase = "after"
        time.sleep(1)
        consumer.check()
        copies = consumer.stop()
        consumer = None
        if copies.get("error"):
            raise BrokerInterrupted(copies["error"])
        result["profiles"] = finish_profiles(profiles) if profiles else {}
        result["run"] = analyse(res, sent, t0, load_end, copies["arrivals"], warmup_ids)
        result["run"]["drain_end"] = drain_end
        if drain_end != "complete":
            # not delivered when the benchmark stopped waiting: still in the outbox or a queue (time limit) or
            # stuck (stalled); either way not verified as delivered, so counted as lost
            result["run"]["integrity"]["not_delivered_reason"] = drain_end
        result["run"]["copy_redelivered"] = copies["redelivered"]
        result["run"]["warmup_reports"] = len(warmup_ids)
        result["run"]["warmup_lost"] = sum(1 for r in warmup_ids if r not in copies["arrivals"])
        monitor.stop()
        result["resources"] = monitor.summary()
        # CPU cost per delivered report, from the load start to the last delivery: what bounds the machine
        run_ = result["run"]
        window_end = t0 + run_["load_seconds"] + run_["drain_seconds"]
        spent = monitor.cpu_seconds(t0, window_end)
        if spent and run_["delivered"]:
            per_report = {k: round(1000 * v / run_["delivered"], 2) for k, v in spent.items()}
            system_ms = sum(v for k, v in per_report.items() if k not in ("loadgen", "copy-consumer"))
            result["cpu_ms_per_delivered_report"] = {
                "per_process": per_report,
                "system_total": round(system_ms, 2),
                "implied_max_reports_per_s_on_all_cores": round(1000 * (os.cpu_count() or 1) / system_ms, 1)
                if system_ms
                else None,
                "note": "rabbitmq(beam.smp) is shared with everything else on the machine",
            }
        if store_before is not None and store_after is not None and run_["delivered"]:
            result["store_operations_per_delivered_report"] = store_operations_per_report(
                store_before, store_after, run_["delivered"]
            )
        result["queue_peaks"] = monitor.queue_peaks()
        result["samples"] = monitor.samples
        if "ceiling" in result:
            best = max(c["publishes_per_s"] for c in result["ceiling"])
            single = result["ceiling"][0]["publishes_per_s"]
            delivered = result["run"]["delivered_per_s_end_to_end"]
            result["ratio"] = {
                "ceiling_publishes_per_s": best,
                "ceiling_single_publisher_per_s": single,
                "pipeline_delivered_per_s": delivered,
                "delivered_over_ceiling": round(delivered / best, 3) if best else None,
            }
            if publishes_before is not None and publishes_after is not None and result["run"]["delivered"]:
                # publishes into the system's vhost during load and drain, per delivered report (the benchmark's
                # copy of each OPD message is routed, not published, so it does not count)
                per_report = (publishes_after - publishes_before) / result["run"]["delivered"]
                result["ratio"]["broker_publishes_per_report"] = round(per_report, 2)
                result["ratio"]["broker_publishes_over_ceiling"] = round(per_report * delivered / best, 3)
    finally:
        for cleanup in (
            consumer.stop if consumer is not None else None,
            monitor.stop if monitor is not None and monitor.is_alive() else None,
            system.stop if system is not None else None,
        ):
            try:
                if cleanup is not None:
                    cleanup()
            except Exception as exc:  # clean up the rest anyway
                print(f"cleanup failed: {exc!r}", file=sys.stderr)
    return result


def store_commands(mongo_uri: str) -> dict[str, int] | None:
    """The MongoDB stand-in's count of commands run, by "database.collection.command" (None if not available)."""
    import pymongo

    try:
        with pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=3000) as client:
            commands = client.admin.command("serverStatus").get("jaklaporCommands")
            return dict(commands) if commands is not None else None  # a stand-in from before the counters
    except pymongo.errors.PyMongoError:
        return None


def store_operations_per_report(before: dict[str, int], after: dict[str, int], delivered: int) -> dict[str, Any]:
    """Store operations during load and drain per delivered report: in total, and the biggest by collection."""
    spent = {key: count - before.get(key, 0) for key, count in after.items()}
    spent = {key: count for key, count in spent.items() if count > 0 and not key.startswith("admin.")}
    return {
        "total": round(sum(spent.values()) / delivered, 2),
        "by_command": {key: round(count / delivered, 2) for key, count in sorted(spent.items(), key=lambda kv: -kv[1])},
    }


def print_summary(result: dict[str, Any]) -> None:
    if "selftest" in result:
        print("load generator ceiling (trivial HTTP server on the same machine):")
        for name, row in result["selftest"].items():
            print(f"  {name}: {json.dumps(row)}")
        return
    r = result["run"]
    print(f"\n== {result['scenario']} ({result.get('system', {}).get('layout', 'attached')}) ==")
    print(f"  sent {r['sent']:,}  accepted {r['accepted']:,}  status {r['status_counts']}  errors {r['errors']}")
    print(
        f"  accepted {r['accepted_per_s']:,}/s over {r['load_seconds']} s; delivered {r['delivered']:,}: "
        f"{r['delivered_per_s_during_load']:,}/s during load, {r['delivered_per_s_end_to_end']:,}/s end to end "
        f"(best 10 s: {r['delivered_per_s_best_10s']:,}/s)"
    )
    print(f"  backlog at load end {r['backlog_at_load_end']:,}, drained in {r['drain_seconds']} s")
    if r["integrity"]["lost"]:
        print(f"  (latencies below are of the {r['delivered']:,} delivered reports only)")
    keys = ("latency_ms_from_intended_send", "latency_ms_from_actual_send", "http_ms", "client_schedule_lag_ms")
    for key in (*keys, "time_to_answer_ms"):
        if key not in r:
            continue
        v = r[key]
        print(f"  {key:<38} p50 {v['p50']}  p95 {v['p95']}  p99 {v['p99']}  max {v['max']}  (n={v['n']:,})")
    if "answers" in r:
        a = r["answers"]
        print(
            f"  answers: {a['answered']:,} answered ({a['answered_within_1s']:,} within 1 s of the intended send, "
            f"{a['refused_503']:,} of them 503), {a['without_answer']:,} clients without an answer"
        )
    i = r["integrity"]
    print(
        f"  integrity: lost {i['lost']}, duplicated {i['duplicated']}, arrived without a 201 "
        f"{i['arrived_without_201']}, warm-up lost {r['warmup_lost']}; drain: {r['drain_end']}"
    )
    if "ratio" in result:
        q = result["ratio"]
        print(
            f"  ceiling {q['ceiling_publishes_per_s']:,}/s confirmed publishes (1 publisher: "
            f"{q['ceiling_single_publisher_per_s']:,}/s); delivered/ceiling {q['delivered_over_ceiling']}, "
            f"broker publishes per report {q.get('broker_publishes_per_report', '?')}, "
            f"broker publishes/ceiling {q.get('broker_publishes_over_ceiling', '?')}"
        )
    cost = result.get("cpu_ms_per_delivered_report")
    if cost:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(cost["per_process"].items(), key=lambda kv: -kv[1]))
        print(
            f"  CPU per delivered report: {cost['system_total']} ms in the system ({parts}); "
            f"at that cost all cores give {cost['implied_max_reports_per_s_on_all_cores']} reports/s"
        )
    store = result.get("store_operations_per_delivered_report")
    if store:
        top = ", ".join(f"{k} {v}" for k, v in list(store["by_command"].items())[:12])
        print(f"  store operations per delivered report: {store['total']} ({top})")
    print("  process                     CPU% load (mean/peak)  RSS MiB start/peak/end")
    for label, row in result["resources"].items():
        if label.startswith("_"):
            continue
        print(
            f"  {label:<27} {row['cpu_mean_load']!s:>8} / {row['cpu_peak_load']!s:<8}   "
            f"{row['rss_start_mib']} / {row['rss_peak_mib']} / {row['rss_end_mib']}"
        )
    m = result["resources"]["_machine"]
    print(
        f"  machine CPU under load: {m['cpu_mean_load_of_max']} % of {m['cpu_max']} % "
        f"({m['cpu_mean_load_others']} % of it by processes outside this run)"
    )
    if result.get("queue_peaks"):
        print(f"  queue peaks: {result['queue_peaks']}")
    for label, prof in (result.get("profiles") or {}).items():
        print(f"  profile {label} ({prof['samples']} samples, {prof['raw']}):")
        for name, share in prof["inclusive_pct"][:15]:
            print(f"    {share:5.1f}%  {name}")


def run_with_retries(args: argparse.Namespace) -> dict[str, Any] | None:
    for attempt in range(args.retries + 1):
        try:
            return run(args)
        except BrokerInterrupted as exc:
            print(f"\nrun void: {exc}", file=sys.stderr)
            if attempt == args.retries:
                return None
            print("  trying again in 60 s", file=sys.stderr, flush=True)
            time.sleep(60)
    return None


def save(args: argparse.Namespace, result: dict[str, Any]) -> Path:
    layout = result.get("system", {}).get("layout", "attached") if args.scenario != "selftest" else "client"
    tag = f"-{args.tag}" if args.tag else ""
    path = args.out / f"{args.scenario}-{layout}{tag}-{result['started_at']}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    return path


def versus_naive(ours: dict[str, Any], naive: dict[str, Any]) -> dict[str, Any]:
    """jaklapor / naive baseline, same load, one run after the other (issue 19's bar: delivered/s ratio >= 1.0)."""

    def figures(result: dict[str, Any]) -> tuple[float, float | None, int, int]:
        run_ = result["run"]
        cost = result.get("cpu_ms_per_delivered_report") or {}
        lost = run_["integrity"]["lost"]
        return run_["delivered_per_s_end_to_end"], cost.get("system_total"), lost, run_["integrity"]["duplicated"]

    rate, cpu, lost, dup = figures(ours)
    naive_rate, naive_cpu, naive_lost, naive_dup = figures(naive)
    return {
        "jaklapor_delivered_per_s": rate,
        "naive_delivered_per_s": naive_rate,
        "delivered_per_s_ratio": round(rate / naive_rate, 3) if naive_rate else None,
        "jaklapor_cpu_ms_per_report": cpu,
        "naive_cpu_ms_per_report": naive_cpu,
        "cpu_ms_per_report_ratio": round(cpu / naive_cpu, 2) if cpu and naive_cpu else None,
        "lost": {"jaklapor": lost, "naive": naive_lost},
        "duplicated": {"jaklapor": dup, "naive": naive_dup},
        "naive_run": naive["started_at"],
        "naive_cpu_by_process": (naive.get("cpu_ms_per_delivered_report") or {}).get("per_process"),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run_with_retries(args)
    if result is None:
        return 3
    path = save(args, result)  # now, in case the naive run fails; saved again below with the ratio
    naive = None
    if args.versus_naive and args.scenario != "selftest" and not args.url:
        ours_layout, args.layout = args.layout, "naive"
        print(f"\n[{args.scenario}] the same load against the naive baseline (bench/naive_pipeline.py)", flush=True)
        naive = run_with_retries(args)
        args.layout = ours_layout
        if naive is not None:
            result["versus_naive"] = versus_naive(result, naive)
            naive_path = save(args, naive)
            path = save(args, result)
    print_summary(result)
    if naive is not None:
        print_summary(naive)
        v = result["versus_naive"]
        print(
            f"\n  jaklapor / naive: delivered/s {v['jaklapor_delivered_per_s']} / {v['naive_delivered_per_s']} = "
            f"{v['delivered_per_s_ratio']}; CPU ms per report {v['jaklapor_cpu_ms_per_report']} / "
            f"{v['naive_cpu_ms_per_report']} = {v['cpu_ms_per_report_ratio']}; lost {v['lost']}, "
            f"duplicated {v['duplicated']}"
        )
        print(f"  naive results: {naive_path.relative_to(REPO) if naive_path.is_relative_to(REPO) else naive_path}")
    print(f"\nresults: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
