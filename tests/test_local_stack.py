"""The default local run keeps what it accepted: `jaklapor run` with no MONGO_URI and no S3 server starts its own
document store (journal on disk) and SeaweedFS in LOCAL_DATA_DIR; a `kill -9` mid-load loses no report answered 201,
its photo stays, each reaches its agency's queue under one message_id, and the numbering goes on."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from devtools.seaweedfs import SeaweedPorts
from jaklapor.processes import listening_pids, port_open
from jaklapor_app.runner import STACKS_SIGNAL
from tests import photo_fixtures as photos
from tests.system import (
    ALL_SERVICES,
    FLOOD_SCENARIOS,
    ROOT,
    OpdDeliveries,
    OpdQueueReader,
    Vhost,
    client_headers,
    flood_scenario_opds,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.e2e


@dataclass
class LocalRun:
    """`jaklapor run` exactly as `make run` starts it, on the test's own ports, vhost and data directory."""

    vhost: Vhost
    data_dir: Path
    log_path: Path
    ports: dict[str, int] = field(default_factory=lambda: {name: free_port() for name in ALL_SERVICES})
    mongo_port: int = field(default_factory=free_port)
    # from the S3 server's own window: its gRPC port (10000 above) must stay below the ephemeral range as well, where
    # an outgoing connection could take it before the restart binds it again
    s3_port: int = field(default_factory=lambda: SeaweedPorts.pick().s3)
    process: subprocess.Popen | None = None

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def env(self) -> dict[str, str]:
        # nothing of a developer's own stores or mode: the defaults of a fresh clone, on other ports
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "S3_", "JAKLAPOR_", "LOCAL_"))}
        env.update(
            AMQP_URI=self.vhost.amqp_uri,
            LOCAL_DATA_DIR=str(self.data_dir),
            LOCAL_MONGO_PORT=str(self.mongo_port),
            S3_ENDPOINT=f"127.0.0.1:{self.s3_port}",
            INTAKE_HTTP=f"127.0.0.1:{self.ports['intake']}",
            NOTIFY_HTTP=f"127.0.0.1:{self.ports['notify']}",
            STATS_HTTP=f"127.0.0.1:{self.ports['stats']}",
            ROUTING_HTTP=f"127.0.0.1:{self.ports['routing']}",
            PUBLIC_URL=self.url("intake"),
            NOTIFY_PUBLIC_URL=self.url("notify"),
            TRUSTED_PROXY_HOPS="1",
            RATE_LIMIT_BURST="0",
            PYTHONUNBUFFERED="1",
            # its floods count every report on its OPD queue: no grouping into incidents here (tests/test_incidents.py)
            SURGE_MIN_REPORTS="0",
        )
        return env

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jaklapor_app.cli", "run"],
                env=self.env(),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self.process
        wait_for(
            lambda: process.poll() is not None or self.healthy(),
            90,
            interval=0.2,
            message=f"the local run healthy (log: {self.log_path})",
        )
        if process.poll() is not None:  # at once, with the reason: CI keeps no files
            tail = "\n".join(self.logs().splitlines()[-40:])
            raise AssertionError(f"jaklapor run exited with {process.returncode}; the end of its log:\n{tail}")

    def healthy(self) -> bool:
        return all(requests.get(self.url(name, "/health"), timeout=5).status_code == 200 for name in self.ports)

    def stacks(self) -> str:
        """What every thread and green thread of the run is doing now (`kill -USR2`), from its log."""
        assert self.process is not None
        start = len(self.logs())
        self.process.send_signal(STACKS_SIGNAL)
        wait_for(lambda: "jaklapor: end of stacks" in self.logs()[start:], 10, message="the stacks in the log")
        return self.logs()[start:]

    def store_pids(self) -> list[int]:
        return [pid for port in (self.mongo_port, self.s3_port) for pid in listening_pids(port)]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def store_log(self, name: str) -> str:
        """A local store's log (`mongo` or `s3`), after asking a still running stand-in for its threads' stacks."""
        path = self.data_dir / "logs" / f"{name}.log"
        for pid in listening_pids(self.mongo_port) if name == "mongo" else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
            with contextlib.suppress(AssertionError):  # faulthandler writes the stacks at once; allow the disk a moment
                wait_for(lambda: "most recent call first" in path.read_text(errors="replace"), 5)
        return path.read_text(errors="replace") if path.exists() else "(no log)"


@dataclass
class Accepted:
    report_id: str
    token: str


class Citizens:
    """Citizens sending reports with a photo from several phones at once until stopped; remembers every 201."""

    def __init__(self, intake_url: str, phones: int = 3) -> None:
        self.url = f"{intake_url}/api/v1/reports"
        self.accepted: list[Accepted] = []
        self.answers: Counter[str] = Counter()  # every answer or error, for a failure's message
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(n,), daemon=True) for n in range(phones)]

    def _send(self, phone: int) -> None:
        index = 0
        while not self._stop.is_set():
            lat, lon, category = FLOOD_SCENARIOS[(phone + index) % len(FLOOD_SCENARIOS)]
            index += 1
            try:
                response = requests.post(
                    self.url,
                    data={"category": category, "description": f"laporan {phone}-{index}", "lat": lat, "lon": lon},
                    files={"photo": ("foto.jpg", photos.jpeg_with_gps(lat, lon), "image/jpeg")},
                    headers=client_headers(f"10.0.{phone}.1"),
                    timeout=10,
                )
            except requests.RequestException as exc:
                with self._lock:
                    self.answers[type(exc).__name__] += 1
                time.sleep(0.05)  # the run is gone: nothing was accepted
                continue
            with self._lock:
                self.answers[str(response.status_code)] += 1
                if response.status_code == 201:
                    receipt = response.json()
                    self.accepted.append(Accepted(receipt["report_id"], receipt["tracking_token"]))

    def __enter__(self) -> Citizens:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


@pytest.fixture
def fresh_vhost() -> Iterator[Vhost]:
    created = Vhost.create()
    yield created
    created.delete()


def test_a_killed_local_run_loses_no_accepted_report_or_photo_and_numbers_go_on(
    tmp_path: Path, fresh_vhost: Vhost
) -> None:
    run = LocalRun(fresh_vhost, tmp_path / "data", tmp_path / "jaklapor.log")
    run.start()
    try:
        assert "Local mode" in run.logs()
        assert "green thread" in run.stacks() and run.healthy(), "the stacks printed, and the run goes on"
        stores = run.store_pids()
        assert len(stores) >= 2, f"the run's document store and S3 server listen: {stores}"
        with Citizens(run.url("intake")) as citizens:
            try:
                wait_for(lambda: len(citizens.accepted) >= 30, 120, message="30 reports accepted before the kill")
            except AssertionError as exc:
                raise AssertionError(
                    f"{exc}; answers: {dict(citizens.answers)}\nthe run's stacks:\n{run.stacks()[-20000:]}\n"
                    f"the document store's log and stacks:\n{run.store_log('mongo')[-8000:]}"
                ) from None
            assert run.process is not None
            run.process.kill()  # kill -9, mid-load: no chance to stop anything in order
            run.process.wait(10)
        # what the run started dies with it: the next run finds the ports free, not a leftover
        try:
            wait_for(lambda: not port_open("127.0.0.1", run.mongo_port), 30, message="the document store gone")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe document store's log:\n{run.store_log('mongo')[-8000:]}") from None
        wait_for(lambda: not port_open("127.0.0.1", run.s3_port), 20, message="the S3 server gone")
        accepted = list(citizens.accepted)

        run.start()  # the same data directory, ports and broker
        for report in accepted:
            view = requests.get(run.url("intake", f"/api/v1/reports/{report.token}"), timeout=10)
            assert view.status_code == 200, f"{report.report_id} answered 201 before the kill, now {view.status_code}"
            body = view.json()
            assert body["report_id"] == report.report_id
            assert len(body["photos"]) == 1, body
            photo = requests.get(body["photos"][0], timeout=10)
            assert photo.status_code == 200 and photo.headers["Content-Type"] == "image/jpeg"

        deliveries = OpdDeliveries.collect(
            run.env()["AMQP_URI"], flood_scenario_opds(), {r.report_id for r in accepted}
        )
        missing = {r.report_id for r in accepted} - deliveries.reports
        assert not missing, f"accepted but never reached their OPD: {sorted(missing)}; {deliveries.shortfall}"
        assert deliveries.second_assignments() == {}
        assert deliveries.all_copies_identical()  # a re-publication repeats one message_id, never reuses it

        after = requests.post(
            run.url("intake", "/api/v1/reports"),
            data={"category": "jalan", "description": "setelah restart", "lat": "-6.175392", "lon": "106.827153"},
            headers=client_headers(),
            timeout=10,
        )
        assert after.status_code == 201, after.text
        assert after.json()["report_id"] > max(r.report_id for r in accepted)  # the numbering went on
    finally:
        run.stop()
    assert not port_open("127.0.0.1", run.mongo_port) and not port_open("127.0.0.1", run.s3_port)


BLOK_M = ("-6.2443", "106.8003")  # Melawai, Kebayoran Baru: illegal parking there goes to this Suku Dinas
PARKING_OPD = "sudin-perhubungan-jakarta-selatan"
REPORTS_PER_RUN = 3


def submit_parking(run: LocalRun, description: str) -> dict[str, str]:
    response = requests.post(
        run.url("intake", "/api/v1/reports"),
        data={"category": "parkir-liar", "description": description, "lat": BLOK_M[0], "lon": BLOK_M[1]},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_reset_wipes_the_stored_reports_but_report_numbers_never_repeat(tmp_path: Path, fresh_vhost: Vhost) -> None:
    """`make reset` empties the stores while RabbitMQ keeps the agencies' queues (and agencies remember every report
    by `message_id`): the numbering mark outlives the reset, so a new report never takes an old one's number."""
    run = LocalRun(fresh_vhost, tmp_path / "data", tmp_path / "jaklapor.log")
    run.start()
    try:
        before = [submit_parking(run, f"Mobil parkir di trotoar, {n} sebelum reset") for n in range(REPORTS_PER_RUN)]
        refused = subprocess.run(
            [sys.executable, "-m", "jaklapor_app.cli", "reset"], env=run.env(), cwd=ROOT, capture_output=True, text=True
        )
        assert refused.returncode != 0 and "stop `make run` first" in refused.stderr
    finally:
        run.stop()
    reset = subprocess.run(
        [sys.executable, "-m", "jaklapor_app.cli", "reset"], env=run.env(), cwd=ROOT, capture_output=True, text=True
    )
    assert reset.returncode == 0, reset.stderr
    assert not (run.data_dir / "mongo").exists() and not (run.data_dir / "s3").exists()
    run.start()
    try:
        gone = requests.get(run.url("intake", f"/api/v1/reports/{before[0]['tracking_token']}"), timeout=10)
        assert gone.status_code == 404
        after = [submit_parking(run, f"Mobil parkir di trotoar, {n} sesudah reset") for n in range(REPORTS_PER_RUN)]
        reader = OpdQueueReader(run.env()["AMQP_URI"])
        try:
            messages = [reader.get(PARKING_OPD, timeout=60)[1] for _ in range(2 * REPORTS_PER_RUN)]
        finally:
            reader.close()
    finally:
        run.stop()
    descriptions_by_id: dict[str, set[str]] = {}
    for body in messages:
        descriptions_by_id.setdefault(body["message_id"], set()).add(body["description"])
    reused = {message_id: texts for message_id, texts in descriptions_by_id.items() if len(texts) > 1}
    assert not reused, f"one message_id for different reports (an agency deduplicating drops one): {reused}"
    assert len(descriptions_by_id) == 2 * REPORTS_PER_RUN
    if before[-1]["report_id"][:11] == after[0]["report_id"][:11]:  # the same day in Jakarta
        assert after[0]["report_id"] > before[-1]["report_id"]
