"""A running jaklapor for end-to-end tests: the real RabbitMQ (own vhost), a real S3 server (SeaweedFS, with
credentials limited to the photo bucket), the services as a subprocess started exactly like `jaklapor run`, and small
clients a user would use (HTTP, AMQP, SSE)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
from amqp.exceptions import NotFound
from kombu import Connection

from devtools.ports import free_port
from devtools.seaweedfs import LocalS3Server, S3Credentials
from jaklapor.messaging import opd_queue_name
from jaklapor.opd_keys import derive_key
from tests.broker_admin import AMQP_ADDRESS, create_vhost, delete_vhost

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
OPD_KEY_SECRET = "e2e-opd-secret"
#: the one category the test systems send to the verifier before it closes (see service_env)
VERIFIED_CATEGORY = "trotoar"
CONTACT_KEY = "ZTJlLXRlc3QtY29udGFjdC1rZXktMzItYnl0ZXMhISE="
E2E_BUCKET = "e2e-photos"


class ProcessExited(RuntimeError):
    """A process a condition waits on has exited: waiting longer cannot help (wait_for raises it at once)."""


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, message: str = "") -> T:
    """Poll until `condition()` returns something truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except ProcessExited:
            raise
        except Exception as exc:  # the condition may fail until the system catches up
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval)
    # the last error as str, not repr: a process's log tail in it stays readable, one line per line
    error = "none" if last_error is None else f"{type(last_error).__name__}: {last_error}"
    raise AssertionError(f"timed out after {timeout}s waiting for {message or condition}; last error: {error}")


def client_headers(address: str | None = None) -> dict[str, str]:
    """Headers as the reverse proxy in front of the gateway sets them, for one citizen's phone (random by default).
    The test system trusts one proxy hop, so each simulated client gets its own rate-limit bucket."""
    if address is None:
        address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"
    return {"X-Forwarded-For": address}


@dataclass
class Vhost:
    name: str

    @property
    def amqp_uri(self) -> str:
        return f"pyamqp://guest:guest@{AMQP_ADDRESS}/{self.name}"

    @classmethod
    def create(cls, prefix: str = "jaklapor-test", patience: float = 0.0) -> Vhost:
        vhost = cls(f"{prefix}-{uuid.uuid4().hex[:10]}")
        create_vhost(vhost.name, patience)
        return vhost

    def delete(self) -> None:
        delete_vhost(self.name)


class LoopbackServer:
    """A stand-in server (for a store this machine cannot run) in its own process, on a free loopback port; its
    output goes to `log_path` if given."""

    name = "server"

    def __init__(self, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.log_path is None:
            self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._listening, 30, message=self.name)

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


def s3_server(data_dir: Path, bucket: str = E2E_BUCKET) -> LocalS3Server:
    """SeaweedFS on free loopback ports, keeping its objects in `data_dir` (not started yet), with credentials of its
    own: a service holding the development default would be refused outside the local mode."""
    credentials = S3Credentials(f"e2e-{secrets.token_hex(4)}", secrets.token_urlsafe(24))
    return LocalS3Server(data_dir, bucket, credentials=credentials)


def service_env(
    amqp_uri: str, mongo_uri: str, s3: LocalS3Server, ports: dict[str, int], public_url: str
) -> dict[str, str]:
    """The environment of a service process started by the tests or the benchmarks: local servers and stand-ins,
    loopback ports, one trusted proxy hop (clients are told apart by X-Forwarded-For)."""
    env = dict(os.environ)
    env.update(
        AMQP_URI=amqp_uri,
        MONGO_URI=mongo_uri,
        S3_ENDPOINT=s3.endpoint,
        S3_ACCESS_KEY=s3.credentials.access_key,
        S3_SECRET_KEY=s3.credentials.secret_key,
        S3_BUCKET=s3.bucket,
        INTAKE_HTTP=f"127.0.0.1:{ports['intake']}",
        NOTIFY_HTTP=f"127.0.0.1:{ports['notify']}",
        STATS_HTTP=f"127.0.0.1:{ports['stats']}",
        ROUTING_HTTP=f"127.0.0.1:{ports['routing']}",
        PUBLIC_URL=public_url,
        NOTIFY_PUBLIC_URL=f"http://127.0.0.1:{ports['notify']}",
        STATS_PUBLIC_URL=f"http://127.0.0.1:{ports['stats']}",
        OPD_KEY_SECRET=OPD_KEY_SECRET,
        # test secrets are no secrets: the explicit local mode, also with the MongoDB wire stand-in
        JAKLAPOR_MODE="local",
        LOG_LEVEL="INFO",
        TRUSTED_PROXY_HOPS="1",
        PYTHONUNBUFFERED="1",
        # verified completion (on for every category by default): the test systems verify VERIFIED_CATEGORY only, so
        # the tests of everything else close a report with the OPD's selesai, as an exempt category does; the
        # verification tests (tests/test_verification.py) use VERIFIED_CATEGORY
        VERIFICATION_DEFAULT="false",
        VERIFICATION_EXCEPTIONS=VERIFIED_CATEGORY,
        # surges are grouped into incidents only where a test asks (tests/test_incidents.py): the other tests send
        # many reports of one category to one place on purpose, and count each on its OPD queue
        SURGE_MIN_REPORTS="0",
        # the time bound of admission control sheds load when the machine is slow, which a test machine running a
        # whole system on two cores often is: tests that send bursts on purpose must not get 503s for it (the bound
        # has its own tests: services/intake/tests/test_admission.py)
        ADMISSION_MAX_WAIT_SECONDS="0",
    )
    return env


class MongoServerStandIn(LoopbackServer):
    """The MongoDB wire stand-in (`python -m devtools.mongo_standin`): a store that outlives the service processes,
    so they can be killed and restarted as they would be against a real MongoDB. With `data_dir` it keeps a journal
    there (as `make run`'s local store does) and can itself be restarted; `unmarked` hides that it is the stand-in
    (for tests of the deployment mode, which refuses it)."""

    name = "mongo stand-in server"

    def __init__(self, data_dir: Path | None = None, unmarked: bool = False) -> None:
        super().__init__(log_path=None if data_dir is None else data_dir.with_name(f"{data_dir.name}.log"))
        self.data_dir = data_dir
        self.unmarked = unmarked

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "devtools.mongo_standin", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.data_dir is not None:
            command += ["--data-dir", str(self.data_dir)]
        if self.unmarked:
            command.append("--unmarked")
        return command

    def client(self) -> Any:
        import pymongo

        return pymongo.MongoClient(self.uri, tz_aware=True, serverSelectionTimeoutMS=5000)


ALL_SERVICES = ("intake", "routing", "notify", "stats")


@dataclass
class RunningSystem:
    """The four services as `jaklapor run` starts them: one process for all (the default), or one process per group
    of services. Without `mongo_uri` the system has a store of its own, the wire stand-in as `make run` starts it
    (a journal in `log_dir`), started and stopped with it."""

    vhost: Vhost
    s3: LocalS3Server
    ports: dict[str, int]
    log_dir: Path
    mongo_uri: str = ""
    groups: tuple[tuple[str, ...], ...] = (ALL_SERVICES,)
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[tuple[str, ...], subprocess.Popen] = field(default_factory=dict)
    own_store: MongoServerStandIn | None = None

    def __post_init__(self) -> None:
        if not self.mongo_uri:
            self.own_store = MongoServerStandIn(self.log_dir / "mongo")
            self.mongo_uri = self.own_store.uri

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    @property
    def amqp_uri(self) -> str:
        return self.vhost.amqp_uri

    @property
    def process(self) -> subprocess.Popen | None:
        """The process running intake (all services, in the default layout)."""
        return self.processes.get(self.group_of("intake"))

    @property
    def log_path(self) -> Path:
        return self.log_dir / "jaklapor.log"

    def group_of(self, service: str) -> tuple[str, ...]:
        return next(group for group in self.groups if service in group)

    def opd_headers(self, opd_code: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {derive_key(OPD_KEY_SECRET, opd_code)}"}

    def build_env(self) -> dict[str, str]:
        env = service_env(
            amqp_uri=self.vhost.amqp_uri,
            mongo_uri=self.mongo_uri,
            s3=self.s3,
            ports=self.ports,
            public_url=self.url("intake"),
        )
        env["CONTACT_KEY"] = CONTACT_KEY
        # the report-number mark of the local mode, kept across restarts of this system (not the user's)
        env["LOCAL_DATA_DIR"] = str(self.log_dir / "local-data")
        env.update(self.env)
        return env

    def start(self) -> None:
        if self.own_store is not None and not self.own_store.running:
            self.own_store.start()  # again after stop(): the journal brings its data back
        for group in self.groups:
            self.start_group(group)
        wait_for(self.healthy, 60, interval=0.2, message=f"all services healthy (logs: {self.log_dir})")

    def start_group(self, group: tuple[str, ...]) -> None:
        with open(self.log_path, "ab") as log:
            self.processes[group] = subprocess.Popen(
                [sys.executable, "-m", "jaklapor_app.cli", "run", "--no-s3-standin", "--services", ",".join(group)],
                env=self.build_env(),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def restart(self, service: str) -> None:
        """Start again the process of `service` (after it was killed or stopped) and wait until it is healthy."""
        group = self.group_of(service)
        self.start_group(group)
        wait_for(self.healthy, 60, interval=0.2, message=f"{group} healthy again")

    def healthy(self) -> bool:
        for group, process in self.processes.items():
            if process.poll() is not None:
                raise ProcessExited(
                    f"{group} exited with {process.returncode}; the end of {self.log_path}:\n{self.log_tail()}"
                )
        return all(requests.get(self.url(name, "/health"), timeout=5).status_code == 200 for name in self.ports)

    def send_signal(self, service: str, sig: int, timeout: float = 60) -> int:
        """Send `sig` to the process running `service` and wait for it to exit; returns its exit code."""
        process = self.processes.pop(self.group_of(service))
        process.send_signal(sig)
        return process.wait(timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Stop the services with `sig`, then the system's own store; the highest exit code of the services."""
        try:
            codes = [self.send_signal(group[0], sig, timeout) for group in list(self.processes)]
        finally:
            if self.own_store is not None:
                self.own_store.stop()
        return max(codes, default=0)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the services' log: why a process exited, in the failure a CI run prints."""
        try:
            return "\n".join(self.logs().splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"


def start_system(
    tmp_dir: Path,
    vhost: Vhost,
    s3: LocalS3Server,
    *,
    mongo_uri: str = "",
    groups: tuple[tuple[str, ...], ...] = (ALL_SERVICES,),
    **env: str,
) -> RunningSystem:
    system = RunningSystem(
        vhost=vhost,
        s3=s3,
        ports={name: free_port() for name in ALL_SERVICES},
        log_dir=tmp_dir,
        mongo_uri=mongo_uri,
        groups=groups,
        env=dict(env),
    )
    system.start()
    return system


class OpdQueueReader:
    """What an agency does: read its durable queue with a plain AMQP client."""

    def __init__(self, amqp_uri: str) -> None:
        self.connection = Connection(amqp_uri)
        self.channel = self.connection.channel()

    def basic_get(self, opd_code: str, no_ack: bool) -> Any:
        """The next message on the OPD's queue, or None, also while the queue does not exist yet: routing declares
        an OPD's queue with its first report (the broker closes the channel on the 404, so a new one is opened)."""
        try:
            return self.channel.basic_get(opd_queue_name(opd_code), no_ack=no_ack)
        except NotFound:
            self.channel = self.connection.channel()
            return None

    def drain(self, opd_code: str) -> Iterator[tuple[Any, str]]:
        """Take every message now on the OPD's queue (acknowledged as taken): each with its body as text, yielded as
        it is taken, so that a broker error half-way loses none of those already off the queue."""
        while (message := self.basic_get(opd_code, no_ack=True)) is not None:
            yield message, message.body if isinstance(message.body, str) else message.body.decode()

    def get(self, opd_code: str, timeout: float = 10.0, predicate: Callable[[dict], bool] | None = None) -> Any:
        def fetch() -> Any:
            message = self.basic_get(opd_code, no_ack=False)
            if message is None:
                return None
            body = json.loads(message.body)
            self.channel.basic_ack(message.delivery_tag)
            if predicate is not None and not predicate(body):
                return None
            return message, body

        return wait_for(fetch, timeout, message=f"a message on {opd_queue_name(opd_code)}")

    def count(self, opd_code: str) -> int:
        _name, count, _consumers = self.channel.queue_declare(opd_queue_name(opd_code), passive=True)
        return count

    def close(self) -> None:
        self.connection.close()


class SseListener:
    """A citizen's live stream: collects Server-Sent Events frames in a background thread."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.received: list[dict[str, Any]] = []
        self.ended = threading.Event()  # the server ended the stream (or the test closed it)
        self._response = requests.get(url, stream=True, timeout=30, headers=headers or {})
        self.status_code = self._response.status_code
        self.content_type = self._response.headers.get("Content-Type", "")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _frames(self) -> Iterator[dict[str, Any]]:
        frame: dict[str, Any] = {}
        for line in self._response.iter_lines(decode_unicode=True):
            if line:
                key, _, value = line.partition(":")
                frame[key] = value.lstrip(" ")
            elif frame:
                yield frame
                frame = {}

    def _read(self) -> None:
        try:
            for frame in self._frames():
                if "data" in frame:
                    frame["json"] = json.loads(frame["data"])
                    frame["received_at"] = time.monotonic()
                    self.events.put(frame)
        except Exception:  # the stream was closed by the test
            pass
        finally:
            self.ended.set()

    def frames_until_end(self, timeout: float) -> list[dict[str, Any]]:
        """Every frame not taken yet, once the server ended the stream; AssertionError if it is still open."""
        if not self.ended.wait(timeout):
            raise AssertionError(f"the live stream is still open after {timeout}s; got {self.received}")
        frames, self.received = self.received, []
        while not self.events.empty():
            frames.append(self.events.get_nowait())
        return frames

    def next_matching(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        for seen in self.received:
            if predicate(seen):
                self.received.remove(seen)
                return seen
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching live event within {timeout}s; got {self.received}")
            try:
                frame = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if predicate(frame):
                return frame
            self.received.append(frame)

    def close(self) -> None:
        # shut the socket down first: closing the response would wait for the reader thread's next keep-alive
        connection = getattr(self._response.raw, "_connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._response.close()


# places and categories used by the flood tests; their responsible OPDs come from the routing code itself
FLOOD_SCENARIOS = [
    (-6.175392, 106.827153, "jalan"),  # Monas, Gambir
    (-6.2443, 106.8003, "parkir-liar"),  # Blok M, Melawai
    (-6.2250, 106.8450, "sampah"),  # Menteng Dalam, Tebet
    (-6.1588, 106.9055, "gangguan-ketenteraman-dan-ketertiban"),  # Kelapa Gading
]


def flood_scenario_opds() -> set[str]:
    from jaklapor.reference import load_directory
    from services.routing.domain import default_area_index, route

    directory, index = load_directory(), default_area_index()
    return {route(index, directory, lat, lon, category).opd.code for lat, lon, category in FLOOD_SCENARIOS}


@dataclass
class OpdDeliveries:
    """Every copy found on OPD queues, per report: what an agency de-duplicating by message_id would see."""

    copies: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: why `collect` stopped before every expected report arrived (its last reader error included): for the
    #: caller's failure message, so that a reader that could not read is not taken for reports that were lost
    shortfall: str = ""

    @classmethod
    def collect(cls, amqp_uri: str, opd_codes: set[str], expected: set[str], timeout: float = 180) -> OpdDeliveries:
        """Take messages off the OPD queues until every expected report arrived (or `timeout`), then until the
        pipeline is quiet: no message left on the routing work queue and none arriving for a second."""
        found = cls()
        reader = OpdQueueReader(amqp_uri)
        try:

            def all_arrived() -> bool:
                nonlocal reader
                try:
                    found._take(reader, opd_codes)
                except Exception:
                    # a broken channel or connection stays broken: read on with a new one (wait_for keeps the error)
                    with contextlib.suppress(Exception):
                        reader.close()
                    reader = OpdQueueReader(amqp_uri)
                    raise
                return expected <= found.reports

            # a report whose relay died holding its outbox lease comes only once the lease ran out (30 s)
            wait_for(
                all_arrived,
                timeout,
                interval=0.2,
                message=f"{len(expected)} reports on their OPD queues",
            )
            quiet = 0
            while quiet < 5:
                _name, waiting, _consumers = reader.channel.queue_declare("routing.reports", passive=True)
                quiet = 0 if found._take(reader, opd_codes) or waiting else quiet + 1
                time.sleep(0.2)
        except AssertionError as exc:
            found.shortfall = str(exc)  # the caller reports what is missing, and this
        finally:
            reader.close()
        return found

    def _take(self, reader: OpdQueueReader, opd_codes: set[str]) -> bool:
        took = False
        for code in opd_codes:
            for message, body in reader.drain(code):
                report_id = json.loads(body)["report_id"]
                self.copies.setdefault(report_id, []).append((message.properties.get("message_id"), body))
                took = True
        return took

    @property
    def reports(self) -> set[str]:
        return set(self.copies)

    def second_assignments(self) -> dict[str, set[str]]:
        """Reports handed to an OPD twice as different messages: a real duplicate, never allowed."""
        return {r: ids for r, c in self.copies.items() if len(ids := {mid for mid, _ in c}) > 1}

    def redundant_copies(self) -> int:
        """Identical re-publications of one message (same message_id and body), the at-least-once window of
        AMQP 0-9-1 when a connection or process dies between the broker storing a message and the publisher
        recording it; an agency de-duplicating by message_id sees each report once."""
        return sum(len(c) - 1 for c in self.copies.values())

    def all_copies_identical(self) -> bool:
        return all(len(set(c)) == 1 for c in self.copies.values())
