"""What the benchmark watches: a copy of every OPD message, the broker's raw ceiling, and each process's CPU/RSS.

- CopyConsumer: its own process; a classic, exclusive queue bound to the topic exchange `jaklapor.opd` with `#`
  (declared before the load starts), so it receives one copy of every message routed to any OPD queue. It records
  CLOCK_MONOTONIC (system-wide on Linux, comparable with the load generator's send times) and wall time per copy.
- confirmed_publish_ceiling: kombu publishers, each on its own connection and process, publishing persistent
  ~1.2 KB JSON messages, `mandatory`, waiting for every publisher confirm (exactly as jaklapor's
  ConfirmedPublisher does), to a quorum queue with our OPD queues' arguments.
- ResourceMonitor: a thread sampling, every second, CPU % and RSS of each labelled process (psutil), the machine's
  CPU, and the depths of the vhost's queues (RabbitMQ management API, if it answers).
"""

from __future__ import annotations

import base64
import json
import multiprocessing as mp
import os
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any

import psutil

OPD_EXCHANGE = "jaklapor.opd"


# ---- copy of every OPD message ----------------------------------------------------------------------------------


def _consume(amqp_uri: str, queue: str, ready: Any, stop: Any, broken: Any, count: Any, conn: Any) -> None:
    from kombu import Connection, Exchange, Queue

    # report_id -> [(arrival, CLOCK_MONOTONIC; arrival wall time - the message's submitted_at; hop)]
    arrivals: dict[str, list[tuple[float, float, int]]] = {}
    exchange = Exchange(OPD_EXCHANGE, type="topic", durable=True)
    copy = Queue(queue, exchange=exchange, routing_key="#", durable=False, exclusive=True, auto_delete=True)
    redelivered = 0

    def on_message(body: Any, message: Any) -> None:
        nonlocal redelivered
        now_mono, now_wall = time.monotonic(), time.time()
        try:
            data = json.loads(body) if isinstance(body, bytes | str) else body
            report_id = data["report_id"]
            hop = int(data.get("hop", 0))
            submitted = datetime.fromisoformat(data["submitted_at"].replace("Z", "+00:00")).timestamp()
        except Exception:
            report_id, hop, submitted = "<undecodable>", -1, 0.0
        if message.delivery_info.get("redelivered"):
            redelivered += 1
        arrivals.setdefault(report_id, []).append((now_mono, now_wall - submitted, hop))
        count.value += 1

    error = None
    sent = False
    connection = Connection(amqp_uri, heartbeat=0)
    try:
        with connection:
            channel = connection.channel()
            exchange(channel).declare()
            copy(channel).declare()
            channel.basic_qos(0, 2000, False)
            consumer = connection.Consumer(copy, callbacks=[on_message], accept=["json"], no_ack=True)
            consumer.consume()
            ready.set()
            while not stop.is_set():
                try:
                    connection.drain_events(timeout=0.2)
                except TimeoutError:
                    pass
            # hand the result over before closing the connection (closing may wait on a busy broker)
            conn.send({"arrivals": arrivals, "redelivered": redelivered, "error": None})
            conn.close()
            sent = True
    except Exception as exc:  # the broker dropped us (restarted?): every later copy is missed, say so
        if sent:
            return  # only the closing failed, after the result was handed over
        error = f"copy consumer lost its connection: {exc!r}"
        broken.set()
    if not sent:
        conn.send({"arrivals": arrivals, "redelivered": redelivered, "error": error})
        conn.close()


class CopyConsumer:
    def __init__(self, amqp_uri: str) -> None:
        ctx = mp.get_context("spawn")
        self.queue = f"bench.opd-copy.{int(time.time())}"
        self._ready = ctx.Event()
        self._stop = ctx.Event()
        self.broken = ctx.Event()
        self.count = ctx.Value("q", 0, lock=False)
        self._parent, child = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=_consume,
            args=(amqp_uri, self.queue, self._ready, self._stop, self.broken, self.count, child),
            daemon=True,
        )

    def start(self) -> None:
        self.process.start()
        if not self._ready.wait(30):
            raise RuntimeError("the copy consumer did not start")

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def check(self) -> None:
        """Raise if the copy consumer lost the broker: the run cannot be verified any more."""
        if self.broken.is_set() or not self.process.is_alive():
            raise BrokerInterrupted(
                "the copy consumer lost its broker connection (RabbitMQ restarted? tests/test_faults.py stops "
                "and starts the broker app): this run cannot be verified; run it again"
            )

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        try:
            result = self._parent.recv() if self._parent.poll(180) else None
        except (EOFError, OSError):
            result = None
        self.process.join(10)
        if result is None:
            result = {"arrivals": {}, "redelivered": 0, "error": "the copy consumer died without a result"}
        return result


class BrokerInterrupted(RuntimeError):
    """The broker dropped a connection the benchmark depends on."""


# ---- broker ceiling -----------------------------------------------------------------------------------------------


def _publish_for(amqp_uri: str, queue: str, seconds: float, start_at: float, out: Any) -> None:
    from kombu import Connection, Producer

    body = {
        "message_type": "report_assigned",
        "report_id": "JK-20260101-000000",
        "description": "x" * 900,
        "padding": "ceiling",
    }
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.channel())
        producer.publish(body, exchange="", routing_key=queue, mandatory=True, delivery_mode=2, serializer="json")
        while time.time() < start_at:
            time.sleep(0.001)
        n, latencies = 0, []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            producer.publish(
                body,
                exchange="",
                routing_key=queue,
                mandatory=True,
                delivery_mode=2,
                serializer="json",
                message_id=str(n),
                retry=False,
            )
            latencies.append(time.perf_counter() - t0)
            n += 1
    out.put((n, latencies[:: max(1, len(latencies) // 5000)]))


def confirmed_publish_ceiling(amqp_uri: str, publishers: int, seconds: float) -> dict[str, Any]:
    """Confirmed publishes/s with `publishers` connections, each waiting for every confirm (like ours)."""
    from kombu import Connection, Queue

    queue = f"bench.ceiling.{publishers}"
    q = Queue(
        queue,
        durable=True,
        queue_arguments={"x-queue-type": "quorum", "x-delivery-limit": 20},
    )
    with Connection(amqp_uri) as connection:
        q(connection.channel()).declare()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 1.5
    procs = [
        ctx.Process(target=_publish_for, args=(amqp_uri, queue, seconds, start_at, out)) for _ in range(publishers)
    ]
    for p in procs:
        p.start()
    results, errors = [], 0
    for _ in procs:
        try:
            results.append(out.get(timeout=seconds + 60))
        except Exception:
            errors += 1
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.terminate()
    if errors:
        raise BrokerInterrupted(f"{errors} ceiling publisher(s) failed (broker restarted?)")
    with Connection(amqp_uri) as connection:
        q(connection.channel()).delete()
    total = sum(n for n, _ in results)
    lat = sorted(x for _, xs in results for x in xs)

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else 0.0

    return {
        "publishers": publishers,
        "seconds": seconds,
        "messages": total,
        "publishes_per_s": round(total / seconds, 1),
        "confirm_ms_p50": pct(0.50),
        "confirm_ms_p99": pct(0.99),
    }


# ---- resources ----------------------------------------------------------------------------------------------------


def find_beam() -> int | None:
    if os.environ.get("JAKLAPOR_RABBITMQ_BEAM_PID"):  # the broker's process when several run (a private node)
        return int(os.environ["JAKLAPOR_RABBITMQ_BEAM_PID"])
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] and proc.info["name"].startswith("beam.smp"):
            return proc.pid
    return None


class ResourceMonitor(threading.Thread):
    def __init__(self, pids: dict[str, int], vhost: str | None, interval: float = 1.0) -> None:
        super().__init__(daemon=True, name="resource-monitor")
        self.interval = interval
        self.vhost = vhost
        self.procs: dict[str, psutil.Process] = {}
        for label, pid in pids.items():
            try:
                self.procs[label] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                pass
        self.samples: list[dict[str, Any]] = []
        self.phase = "idle"
        self._stop_event = threading.Event()
        self._mgmt_ok = vhost is not None

    def add(self, label: str, pid: int) -> None:
        try:
            self.procs[label] = psutil.Process(pid)
            self.procs[label].cpu_percent(None)
        except psutil.NoSuchProcess:
            pass

    def run(self) -> None:
        for proc in self.procs.values():
            try:
                proc.cpu_percent(None)
            except psutil.Error:
                pass
        psutil.cpu_percent(None, percpu=True)
        tick = 0
        next_at = time.monotonic()
        while not self._stop_event.is_set():
            next_at += self.interval
            self._stop_event.wait(max(0.0, next_at - time.monotonic()))
            sample: dict[str, Any] = {"t": time.monotonic(), "phase": self.phase, "procs": {}}
            for label, proc in list(self.procs.items()):
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        sample["procs"][label] = {
                            "cpu": proc.cpu_percent(None),
                            "cpu_s": round(times.user + times.system, 3),
                            "rss_mib": round(proc.memory_info().rss / 2**20, 1),
                            "threads": proc.num_threads(),
                        }
                except psutil.Error:
                    sample["procs"][label] = None
            sample["machine_cpu"] = psutil.cpu_percent(None, percpu=True)
            if self._mgmt_ok and tick % 2 == 0:
                sample["queues"] = self._queue_depths()
            tick += 1
            self.samples.append(sample)

    def _queue_depths(self) -> dict[str, int] | None:
        url = (
            f"http://127.0.0.1:15672/api/queues/{urllib.parse.quote(self.vhost or '/', safe='')}?columns=name,messages"
        )
        request = urllib.request.Request(
            url, headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
        )
        try:
            with urllib.request.urlopen(request, timeout=0.8) as response:
                rows = json.loads(response.read())
        except Exception:
            return None
        depths = {r["name"]: int(r.get("messages") or 0) for r in rows}
        # the OPD queues are never read in the benchmark (agencies would): keep their sum, not 444 entries
        kept = {k: v for k, v in depths.items() if not k.startswith(("jaklapor.opd.", "bench."))}
        kept["opd-queues(total)"] = sum(v for k, v in depths.items() if k.startswith("jaklapor.opd."))
        kept["bench-copy"] = sum(v for k, v in depths.items() if k.startswith("bench.opd-copy"))
        return kept

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def summary(self) -> dict[str, Any]:
        """Per process: CPU % mean/peak under load, RSS at start, peak and end."""
        out: dict[str, Any] = {}
        labels = {label for s in self.samples for label in s["procs"]}
        for label in sorted(labels):
            rows = [(s["phase"], s["procs"].get(label)) for s in self.samples]
            rows = [(phase, r) for phase, r in rows if r]
            if not rows:
                continue
            load = [r["cpu"] for phase, r in rows if phase == "load"]
            drain = [r["cpu"] for phase, r in rows if phase == "drain"]
            rss = [r["rss_mib"] for _, r in rows]
            out[label] = {
                "cpu_mean_load": round(sum(load) / len(load), 1) if load else None,
                "cpu_peak_load": max(load) if load else None,
                "cpu_mean_drain": round(sum(drain) / len(drain), 1) if drain else None,
                "rss_start_mib": rss[0],
                "rss_peak_mib": max(rss),
                "rss_end_mib": rss[-1],
            }
        load_samples = [s for s in self.samples if s["phase"] == "load"]
        machine = [sum(s["machine_cpu"]) for s in load_samples]
        ours = [sum((r or {}).get("cpu", 0.0) for r in s["procs"].values()) for s in load_samples]
        out["_machine"] = {
            "cpu_mean_load_of_max": round(sum(machine) / len(machine), 1) if machine else None,
            "cpu_max": 100 * len(self.samples[0]["machine_cpu"]) if self.samples else None,
            # what else ran on the machine meanwhile (other developers' tests, the OS): not ours
            "cpu_mean_load_others": round((sum(machine) - sum(ours)) / len(machine), 1) if machine else None,
        }
        return out

    def cpu_seconds(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each process used between two monotonic times (nearest samples)."""
        inside = [s for s in self.samples if start - 1.0 <= s["t"] <= end + 1.0]
        out: dict[str, float] = {}
        if len(inside) < 2:
            return out
        first, last = inside[0]["procs"], inside[-1]["procs"]
        for label, row in last.items():
            if row and first.get(label):
                out[label] = round(row["cpu_s"] - first[label]["cpu_s"], 2)
        return out

    def queue_peaks(self) -> dict[str, int]:
        peaks: dict[str, int] = {}
        for s in self.samples:
            for name, depth in (s.get("queues") or {}).items():
                peaks[name] = max(peaks.get(name, 0), depth)
        return peaks
