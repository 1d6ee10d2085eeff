"""The process lifecycle of `jaklapor run` and `make run`: stop signals in any number and order, a second start on
ports in use, and the local S3 server (SeaweedFS) a run starts (and must not leave behind).

The store is the MongoDB wire stand-in, outside the service processes, so a report accepted before a stop can be
looked for after a restart, as it would be with a real MongoDB."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools.seaweedfs import LocalS3Server
from jaklapor.processes import listening_pids, port_open
from jaklapor_app.runner import KILL_GRACE_SECONDS
from tests.system import (
    ALL_SERVICES,
    FLOOD_SCENARIOS,
    ROOT,
    MongoServerStandIn,
    OpdDeliveries,
    RunningSystem,
    Vhost,
    flood_scenario_opds,
    free_port,
    s3_server,
    start_system,
    wait_for,
)

pytestmark = pytest.mark.e2e

#: SHUTDOWN_DRAIN_SECONDS for these tests: a graceful stop takes about 2 s; the bound only has to be finite
DRAIN_SECONDS = 15
#: what a stopped process may take past its drain timeout on a loaded 2-core CI machine
EXIT_BOUND = DRAIN_SECONDS + KILL_GRACE_SECONDS + 10


@pytest.fixture(scope="module")
def mongo() -> Iterator[MongoServerStandIn]:
    server = MongoServerStandIn()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_vhost() -> Iterator[Vhost]:
    created = Vhost.create()
    yield created
    created.delete()


class OwnGroupSystem(RunningSystem):
    """The services as one `jaklapor run` process leading a process group of its own, as a shell job would."""

    def start_group(self, group: tuple[str, ...]) -> None:
        with open(self.log_path, "ab") as log:
            self.processes[group] = subprocess.Popen(
                [sys.executable, "-m", "jaklapor_app.cli", "run", "--no-s3-standin"],
                env=self.build_env(),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


def system_env(mongo: MongoServerStandIn, **extra: str) -> dict[str, str]:
    return {
        "MONGO_DB_PREFIX": f"lifecycle{uuid.uuid4().hex[:8]}",
        "RATE_LIMIT_BURST": "0",
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
        **extra,
    }


def on_the_stand_in(
    kind: type[RunningSystem], log_dir: Path, vhost: Vhost, s3: LocalS3Server, mongo: MongoServerStandIn
) -> RunningSystem:
    """A system (not started yet) on free ports, storing its reports in `mongo`, outside its processes."""
    return kind(
        vhost=vhost,
        s3=s3,
        ports={name: free_port() for name in ALL_SERVICES},
        log_dir=log_dir,
        mongo_uri=mongo.uri,
        env=system_env(mongo),
    )


class Submitter:
    """Citizens submitting reports, one after another, until stopped; remembers every report answered 201."""

    def __init__(self, intake_url: str) -> None:
        self.url = f"{intake_url}/api/v1/reports"
        self.accepted: list[str] = []
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        index = 0
        while not self._stop.is_set():
            lat, lon, category = FLOOD_SCENARIOS[index % len(FLOOD_SCENARIOS)]
            index += 1
            try:
                response = requests.post(
                    self.url,
                    data={"category": category, "description": f"laporan {index}", "lat": lat, "lon": lon},
                    timeout=10,
                )
            except requests.RequestException:
                self.refused += 1
                time.sleep(0.05)
                continue
            if response.status_code == 201:
                self.accepted.append(response.json()["report_id"])
            else:
                self.refused += 1
                time.sleep(0.05)

    def __enter__(self) -> Submitter:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def kill_if_alive(pid: int | None) -> None:
    """Clean up after a failed test: a process it expected to be gone."""
    if pid is not None and alive(pid):
        os.kill(pid, signal.SIGKILL)


def group_alive(pgid: int) -> list[int]:
    """Running processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def send(pid: int, names: tuple[str, ...], to_group: bool) -> None:
    """Send the signals 0.2 s apart (as someone pressing Ctrl-C again, or make forwarding a SIGTERM, would)."""
    for number, name in enumerate(names):
        if number:
            time.sleep(0.2)
        sig = signal.Signals[name]
        if to_group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def assert_every_accepted_report_delivered(system: RunningSystem, accepted: list[str]) -> None:
    """Start the services again on the same store and broker: every report answered 201 reaches its OPD queue."""
    assert accepted, "no report was accepted before the stop"
    # new ports: the old ones are free, but another process may have taken one as a client port since
    system.ports = {name: free_port() for name in ALL_SERVICES}
    try:
        system.restart("intake")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{system.logs()[-5000:]}") from None
    try:
        delivered = OpdDeliveries.collect(system.amqp_uri, flood_scenario_opds(), set(accepted), timeout=90)
    finally:
        system.stop()
    missing = set(accepted) - delivered.reports
    assert not missing, (
        f"{len(missing)} of {len(accepted)} accepted reports never reached their OPD: {sorted(missing)}; "
        f"{delivered.shortfall}"
    )
    assert not delivered.second_assignments()


def assert_ports_free(ports: dict[str, int]) -> None:
    held = {name: port for name, port in ports.items() if port_open("127.0.0.1", port)}
    assert not held, f"still listening after the stop: {held}"


SEQUENCES = [
    (("SIGTERM",), False),
    (("SIGTERM", "SIGTERM"), False),
    (("SIGINT", "SIGINT"), False),
    (("SIGTERM", "SIGINT"), False),
    (("SIGTERM", "SIGTERM"), True),
    (("SIGINT",), True),
]


@pytest.mark.parametrize(
    ("signals", "to_group"),
    SEQUENCES,
    ids=[f"{'+'.join(s)}-to-{'group' if g else 'process'}" for s, g in SEQUENCES],
)
def test_stop_signals_end_the_process_without_losing_an_accepted_report(
    tmp_path: Path,
    fresh_vhost: Vhost,
    s3: LocalS3Server,
    mongo: MongoServerStandIn,
    signals: tuple[str, ...],
    to_group: bool,
) -> None:
    system = on_the_stand_in(OwnGroupSystem, tmp_path, fresh_vhost, s3, mongo)
    system.start()
    process = system.process
    assert process is not None
    with Submitter(system.url("intake")) as citizens:
        wait_for(lambda: len(citizens.accepted) >= 10, 30, message="reports accepted before the stop")
        send(process.pid, signals, to_group)
        try:
            code = process.wait(EXIT_BOUND)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"{'+'.join(signals)} did not end the process within {EXIT_BOUND}s") from None
    system.processes.clear()
    assert code == 0, f"a graceful stop exits 0, got {code}"
    assert not group_alive(process.pid), "a process of the group outlived the stop"
    assert_ports_free(system.ports)
    assert "Trying to re-send() an already-triggered event" not in system.logs()
    assert_every_accepted_report_delivered(system, citizens.accepted)


STUCK_SERVICE = """
import logging
import sys

import eventlet

eventlet.monkey_patch()
logging.basicConfig(level=logging.INFO)

from jaklapor_app.runner import serve
from jaklapor.timers import timer_from_config


class Stuck:
    name = "stuck"

    @timer_from_config("TICK_SECONDS", 0.01)
    def tick(self):
        print("working", flush=True)
        eventlet.sleep(3600)  # work that never drains


sys.exit(serve([Stuck], {"SHUTDOWN_DRAIN_SECONDS": sys.argv[1]}))
"""


def test_work_that_does_not_drain_is_cut_off_at_the_drain_timeout(tmp_path: Path) -> None:
    """The stop waits for running work only SHUTDOWN_DRAIN_SECONDS, then kills it and exits 3."""
    script = tmp_path / "stuck_service.py"
    script.write_text(STUCK_SERVICE)
    drain = 2
    process = subprocess.Popen(
        [sys.executable, str(script), str(drain)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # eventlet may warn first
            if line.strip() == "working":
                break
        send(process.pid, ("SIGTERM", "SIGINT", "SIGTERM"), to_group=False)
        output, _ = process.communicate(timeout=drain + KILL_GRACE_SECONDS + 10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 3, output
    assert f"did not drain within {drain} s (SHUTDOWN_DRAIN_SECONDS): killing the services" in output


# ---- a second start on ports in use ---------------------------------------------------------------------------------


def test_a_second_start_on_ports_in_use_fails_naming_the_port_and_its_holder(
    tmp_path: Path, fresh_vhost: Vhost, s3: LocalS3Server
) -> None:
    first = start_system(tmp_path, fresh_vhost, s3)
    try:
        report = requests.post(
            first.url("intake", "/api/v1/reports"),
            data={"category": "jalan", "description": "jalan rusak", "lat": -6.175392, "lon": 106.827153},
            timeout=10,
        )
        assert report.status_code == 201, report.text
        second = subprocess.run(
            [sys.executable, "-m", "jaklapor_app.cli", "run", "--no-s3-standin"],
            env=first.build_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        match = re.search(r"port (\d+) \((\w+)\) is already in use by pid (\d+) \(([^)]*)\)", second.stderr)
        assert match, second.stderr[-2000:]
        port, service, pid, command = match.groups()
        assert first.ports[service] == int(port)
        assert int(pid) == first.process.pid
        assert "jaklapor_app.cli run" in command
        assert "HTTP_REUSE_PORT=true" in second.stderr
        # the first system alone answers: the report just submitted is found every time
        tracking = first.url("intake", f"/api/v1/reports/{report.json()['tracking_token']}")
        assert [requests.get(tracking, timeout=5).status_code for _ in range(20)] == [200] * 20
        for name in ALL_SERVICES:
            assert listening_pids(first.ports[name]) == [first.process.pid], name
    finally:
        first.stop()


def test_sharing_a_port_must_be_asked_for() -> None:
    from nameko.web.server import BindAddress

    from jaklapor.web import PortInUseError, listen

    address = BindAddress("127.0.0.1", free_port())
    shared = [listen(address, "intake", reuse_port=True), listen(address, "intake", reuse_port=True)]
    try:
        with pytest.raises(PortInUseError, match=rf"port {address.port} \(intake\) is already in use by"):
            listen(address, "intake", reuse_port=False)
    finally:
        for sock in shared:
            sock.close()
    exclusive = listen(address, "intake", reuse_port=False)
    try:
        with pytest.raises(PortInUseError):
            listen(address, "intake", reuse_port=True)
    finally:
        exclusive.close()


# ---- the S3 server a run starts --------------------------------------------------------------------------------------


def test_the_s3_standin_dies_with_a_killed_run(tmp_path: Path, fresh_vhost: Vhost, mongo: MongoServerStandIn) -> None:
    own_s3 = s3_server(tmp_path / "s3")  # not started: only its port, where `jaklapor run` starts its own stand-in
    system = on_the_stand_in(RunningSystem, tmp_path, fresh_vhost, own_s3, mongo)
    with open(system.log_path, "ab") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "jaklapor_app.cli", "run"],
            env=system.build_env(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    standin = None
    try:
        system.processes[ALL_SERVICES] = run
        wait_for(system.healthy, 60, interval=0.2, message="the run healthy")
        (standin,) = listening_pids(own_s3.ports.s3)
        assert "weed" in Path(f"/proc/{standin}/cmdline").read_text()  # the SeaweedFS the run started
        run.kill()
        run.wait(10)
        wait_for(lambda: not alive(standin), 10, message="the stand-in gone after its run was killed")
        assert not port_open("127.0.0.1", own_s3.ports.s3)
    finally:
        if run.poll() is None:
            run.kill()
        kill_if_alive(standin)
        system.processes.clear()


# ---- make run -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_make_run_stops_on_a_signal_to_its_group(
    tmp_path: Path, fresh_vhost: Vhost, mongo: MongoServerStandIn, signal_name: str
) -> None:
    """`kill -TERM -- -PGID` (make forwards it, so the run gets it twice) or Ctrl-C in the terminal (SIGINT to the
    group): every process ends, the S3 stand-in the run started included, and no accepted report is lost."""
    own_s3 = s3_server(tmp_path / "s3")  # its port only: the run starts its own stand-in there
    system = on_the_stand_in(RunningSystem, tmp_path, fresh_vhost, own_s3, mongo)
    env = {k: v for k, v in system.build_env().items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    with open(system.log_path, "ab") as log:
        make = subprocess.Popen(
            ["make", "run"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    standin = None
    try:
        system.processes[ALL_SERVICES] = make
        wait_for(system.healthy, 90, interval=0.2, message=f"`make run` healthy (log: {system.log_path})")
        (standin,) = listening_pids(own_s3.ports.s3)
        with Submitter(system.url("intake")) as citizens:
            wait_for(lambda: len(citizens.accepted) >= 10, 30, message="reports accepted before the stop")
            os.killpg(make.pid, signal.Signals[signal_name])
            wait_for(lambda: not group_alive(make.pid), EXIT_BOUND, 0.2, "every process of `make run` ended")
        make.wait(10)
        assert not alive(standin), "the S3 stand-in the run started outlived it"
        assert_ports_free({**system.ports, "s3": own_s3.ports.s3})
    finally:
        if group_alive(make.pid):
            os.killpg(make.pid, signal.SIGKILL)
        kill_if_alive(standin)
        system.processes.clear()
    logs = system.logs()
    assert f"{signal_name} received: stopping" in logs
    assert "Trying to re-send() an already-triggered event" not in logs
    # the same store and broker, with an S3 server of the test's own this time
    own_s3.start()
    try:
        assert_every_accepted_report_delivered(system, citizens.accepted)
    finally:
        own_s3.stop()
