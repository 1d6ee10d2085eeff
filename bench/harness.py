"""Start the system for a benchmark run, as `jaklapor run` does, in a RabbitMQ vhost of its own.

Layouts:
  single           one process runs all four services (the local default, `make run`)
  per-service      one process per service
  two-per-service  two processes per service (two intake gateways on two ports)
  naive            not jaklapor: issue 19's naive baseline (bench/naive_pipeline.py), one `nameko run` process

Every layout stores its reports in the MongoDB wire stand-in (`python -m devtools.mongo_standin`, its own process,
its journal in the run directory, removed at the end), as `make run` does. Until issue 13 the single layout used
in-process mongomock instead (no socket, no BSON, no journal): its results before that are not comparable with later
ones on the document store's share of the cost. SeaweedFS (devtools/seaweedfs.py, its own process, data in the run
directory, removed at the end) is the S3 server, as MinIO would be. Rate limiting is off (RATE_LIMIT_BURST=0) and
one proxy hop is trusted (TRUSTED_PROXY_HOPS=1), unless `env` says otherwise. Nothing here touches a developer's
system: own vhost, free ports, logs in the run directory.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devtools.seaweedfs import LocalS3Server  # noqa: E402
from tests.system import Vhost, free_port, service_env  # noqa: E402

SERVICES = ("intake", "routing", "notify", "stats")
LAYOUTS = ("single", "per-service", "two-per-service", "naive")


@dataclass
class ServiceProcess:
    label: str  # e.g. "intake#1" or "all"
    services: tuple[str, ...]
    ports: dict[str, int]
    process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


@dataclass
class BenchSystem:
    layout: str
    env: dict[str, str] = field(default_factory=dict)
    run_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="jaklapor-bench-")))
    vhost: Vhost | None = None
    s3: LocalS3Server | None = None
    mongo_port: int = 0
    mongo_process: subprocess.Popen | None = None
    processes: list[ServiceProcess] = field(default_factory=list)
    # run the services (and the MongoDB stand-in) from another copy of the code, e.g. a candidate change
    code_dir: Path = REPO

    # ---- addresses ----------------------------------------------------------------------------------------------

    @property
    def amqp_uri(self) -> str:
        assert self.vhost is not None
        return self.vhost.amqp_uri

    @property
    def mongo_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/"

    @property
    def mongo_dir(self) -> Path:
        return self.run_dir / "mongo"

    def intake_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p.ports['intake']}" for p in self.processes if "intake" in p.services]

    def pids(self) -> dict[str, int]:
        """Process label -> pid, for the resource monitor and the profiler."""
        out = {p.label: p.pid for p in self.processes}
        if self.s3 is not None and self.s3.process is not None:
            out["s3(seaweedfs)"] = self.s3.process.pid
        if self.mongo_process is not None:
            out["mongo-standin"] = self.mongo_process.pid
        return out

    def pid_of(self, service: str) -> int:
        return next(p.pid for p in self.processes if service in p.services)

    # ---- lifecycle ----------------------------------------------------------------------------------------------

    def plan(self) -> list[ServiceProcess]:
        if self.layout == "single":
            groups = [("all", SERVICES)]
        elif self.layout == "per-service":
            groups = [(name, (name,)) for name in SERVICES]
        elif self.layout == "two-per-service":
            groups = [(f"{name}#{i}", (name,)) for name in SERVICES for i in (1, 2)]
        elif self.layout == "naive":
            return [ServiceProcess("naive", ("intake",), {s: free_port() for s in SERVICES})]
        else:
            raise ValueError(f"unknown layout {self.layout!r}; choose from {', '.join(LAYOUTS)}")
        # every process gets its own HTTP port for every service (only its own services listen)
        return [ServiceProcess(label, services, {s: free_port() for s in SERVICES}) for label, services in groups]

    def start(self, timeout: float = 90.0) -> None:
        self.vhost = Vhost.create("jaklapor-bench", patience=180)
        self.s3 = LocalS3Server(self.run_dir / "s3", "bench-photos", log_path=self.run_dir / "s3.log")
        self.s3.start()
        self.mongo_port = free_port()
        log = open(self.run_dir / "mongo-standin.log", "ab")  # noqa: SIM115 - closed with the process
        self.mongo_process = subprocess.Popen(
            [
                *(sys.executable, "-m", "devtools.mongo_standin"),
                *("--host", "127.0.0.1", "--port", str(self.mongo_port), "--data-dir", str(self.mongo_dir)),
            ],
            cwd=self.code_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _wait_port(self.mongo_port, 30, self.mongo_process, "mongo stand-in")
        mongo_uri = self.mongo_uri
        self.processes = self.plan()
        for proc in self.processes:
            env = self._env(proc, mongo_uri)
            log = open(self.run_dir / f"{proc.label.replace('#', '-')}.log", "ab")  # noqa: SIM115
            command = [sys.executable, "-m", "jaklapor_app.cli", "run", "--no-s3-standin"]
            command += ["--services", ",".join(proc.services)]
            if self.layout == "naive":
                config = self.run_dir / "naive.yaml"
                config.write_text(
                    f"AMQP_URI: {self.amqp_uri}\nWEB_SERVER_ADDRESS: 127.0.0.1:{proc.ports['intake']}\n"
                    f"MONGO_URI: {mongo_uri}\n"
                )
                command = [sys.executable, "-m", "nameko", "run", "bench.naive_pipeline", "--config", str(config)]
            proc.process = subprocess.Popen(
                command,
                env=env,
                cwd=self.code_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        for proc in self.processes:
            for service in proc.services:
                url = f"http://127.0.0.1:{proc.ports[service]}/health"
                while True:
                    if proc.process is not None and proc.process.poll() is not None:
                        raise RuntimeError(f"{proc.label} exited with {proc.process.returncode}; see {self.run_dir}")
                    try:
                        if requests.get(url, timeout=5).status_code == 200:
                            break
                    except requests.RequestException:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{proc.label}/{service} not healthy after {timeout} s; see {self.run_dir}")
                    time.sleep(0.2)

    def _env(self, proc: ServiceProcess, mongo_uri: str) -> dict[str, str]:
        assert self.s3 is not None
        intake_url = self.intake_urls()[0] if self.intake_urls() else "http://127.0.0.1:8000"
        env = service_env(self.amqp_uri, mongo_uri, self.s3, proc.ports, intake_url)
        # the tests turn admission control's time bound off (their bursts are on purpose); a benchmark measures the
        # shipped default unless `env` says otherwise
        env.pop("ADMISSION_MAX_WAIT_SECONDS", None)
        env.update(RATE_LIMIT_BURST="0", PYTHONPATH=str(self.code_dir), LOCAL_DATA_DIR=str(self.run_dir / "local-data"))
        env.update(self.env)
        return env

    def stop(self) -> None:
        for proc in self.processes:
            if proc.process is not None and proc.process.poll() is None:
                proc.process.terminate()
        for proc in self.processes:
            if proc.process is not None:
                try:
                    proc.process.wait(30)
                except subprocess.TimeoutExpired:
                    proc.process.kill()
                    proc.process.wait(10)
        if self.mongo_process is not None:
            self.mongo_process.terminate()
            try:
                self.mongo_process.wait(15)
            except subprocess.TimeoutExpired:
                self.mongo_process.kill()
            shutil.rmtree(self.mongo_dir, ignore_errors=True)  # the run's reports; its log stays with the others
        if self.s3 is not None:
            self.s3.stop()
            self.s3.wipe()  # the photos of a run (GBs after a long one); its log stays with the others
        if self.vhost is not None:
            self.vhost.delete()


def _wait_port(port: int, timeout: float, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")
