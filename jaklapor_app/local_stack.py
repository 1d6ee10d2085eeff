"""The stores `jaklapor run` starts for itself in the local mode, where no MongoDB or MinIO is configured.

A city's first pilot runs on one machine with `make run`, so the local stores are real and keep their data in the
local data directory (`LOCAL_DATA_DIR`): the MongoDB wire stand-in with its journal for reports, timelines and
statistics, and SeaweedFS (a real S3 server) for photos. Both are development tools from the `devtools`
distribution, outside the shipped package; the services reach them exactly as they reach MongoDB and MinIO, through
`MONGO_URI` and `S3_ENDPOINT`. The run owns what it starts: it stops them at exit, and they die with it if it is
killed (SIGKILL included), so a later run never finds a leftover.

    LOCAL_DATA_DIR/
        mongo/                  the document store's journal (replayed at start)
        s3/                     SeaweedFS's volumes and metadata
        report-numbers.json     the numbering mark (kept by `jaklapor reset`: numbers never repeat)
        logs/                   what the local stores print
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaklapor.config import LOCAL_MODE, local_data_dir, run_mode, setting
from jaklapor.processes import port_holder, port_open
from jaklapor_app.owned_servers import OwnedLocalServer

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: where the local document store listens unless LOCAL_MONGO_PORT says otherwise: MongoDB's own port
DEFAULT_LOCAL_MONGO_PORT = 27017
#: what `jaklapor reset` deletes under LOCAL_DATA_DIR; the numbering mark stays, so report numbers never repeat
STORE_DIRS = ("mongo", "s3")
#: how long a start waits for the document store of a killed run on the same data to finish exiting (it flushes and
#: unlocks within a few seconds of SIGTERM; the S3 server waits for its own, devtools.seaweedfs.await_earlier_servers)
EARLIER_STORE_EXIT_SECONDS = 10.0


class LocalStackError(SystemExit):
    """The local stores cannot be started; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(f"jaklapor: {message}")


def split_endpoint(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host or "127.0.0.1", int(port)


def _devtools() -> Any:
    try:
        import devtools.seaweedfs

        if importlib.util.find_spec("devtools.mongo_standin") is None:  # run as a module, not imported here
            raise ImportError("devtools.mongo_standin")
    except ImportError:
        raise LocalStackError(
            "the local mode needs the development tools (`make setup` installs them: pip install -e ./devtools); "
            "in production set MONGO_URI and S3_ENDPOINT to MongoDB and MinIO"
        ) from None
    return devtools


@dataclass
class LocalStack:
    """The local stores of one run: started by `start` as the configuration asks, stopped by `stop`."""

    data_dir: Path
    mongo: OwnedLocalServer | None = None
    s3: Any = None  # devtools.seaweedfs.LocalS3Server
    notes: list[str] = field(default_factory=list)

    @classmethod
    def for_config(cls, config: dict[str, Any]) -> LocalStack:
        return cls(local_data_dir(config))

    def start(self, config: dict[str, Any], start_s3: bool = True) -> None:
        """Start what the configuration leaves to the local mode and point `config` at it (MONGO_URI, S3_*)."""
        if run_mode(config) != LOCAL_MODE:
            return
        config["JAKLAPOR_MODE"] = LOCAL_MODE  # explicit for the services: MONGO_URI is about to name a server
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        try:
            if not setting(config, "MONGO_URI"):
                self._start_mongo(config)
            if start_s3:
                self._start_s3(config)
        except BaseException:
            self.stop()
            raise

    def _start_mongo(self, config: dict[str, Any]) -> None:
        _devtools()
        port = int(setting(config, "LOCAL_MONGO_PORT", DEFAULT_LOCAL_MONGO_PORT))
        _await_unlocked(self.data_dir / "mongo" / "LOCK", EARLIER_STORE_EXIT_SECONDS)
        if port_open("127.0.0.1", port):
            raise LocalStackError(
                f"port {port} (the local document store) is already in use by {port_holder(port)}: stop it, or set "
                "LOCAL_MONGO_PORT to a free port, or MONGO_URI to a MongoDB"
            )
        fsync = str(setting(config, "LOCAL_MONGO_FSYNC", "always"))
        self.mongo = OwnedLocalServer(
            "document store",
            [
                sys.executable,
                "-m",
                "devtools.mongo_standin",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(self.data_dir / "mongo"),
                "--fsync",
                fsync,
            ],
            "127.0.0.1",
            port,
            log_path=str(self.data_dir / "logs" / "mongo.log"),
        )
        self.mongo.start()
        config["MONGO_URI"] = f"mongodb://127.0.0.1:{port}/"
        self.notes.append(f"reports      {self.data_dir / 'mongo'}  (MongoDB wire stand-in on :{port}, fsync {fsync})")

    def _start_s3(self, config: dict[str, Any]) -> None:
        endpoint = str(setting(config, "S3_ENDPOINT", "127.0.0.1:9000"))
        host, port = split_endpoint(endpoint)
        if port_open(host, port):
            self.notes.append(f"photos       S3 server already answering on {endpoint} (used, left running)")
            return
        if host not in LOOPBACK:
            raise LocalStackError(f"S3_ENDPOINT {endpoint} is not reachable and is not local: start MinIO there")
        seaweedfs = _devtools().seaweedfs
        self.s3 = seaweedfs.LocalS3Server(
            self.data_dir / "s3",
            str(setting(config, "S3_BUCKET", "jaklapor-photos")),
            credentials=seaweedfs.S3Credentials(
                str(setting(config, "S3_ACCESS_KEY", "jaklapor")), str(setting(config, "S3_SECRET_KEY", ""))
            ),
            s3_port=port,
            host=host,
            log_path=self.data_dir / "logs" / "s3.log",
        )
        try:
            self.s3.start()
        except seaweedfs.LocalS3ServerError as exc:
            raise LocalStackError(f"the local S3 server did not start: {exc}") from None
        self.notes.append(f"photos       {self.data_dir / 's3'}  (SeaweedFS S3 on {endpoint})")

    def stop(self) -> None:
        if self.s3 is not None:
            self.s3.stop()
            self.s3 = None
        if self.mongo is not None:
            self.mongo.stop()
            self.mongo = None


def reset_local_data(config: dict[str, Any]) -> list[Path]:
    """Delete the local stores' data (reports, timelines, statistics, photos); the numbering mark stays. Refuses
    while a local document store of this data directory still runs."""
    data_dir = local_data_dir(config)
    port = int(setting(config, "LOCAL_MONGO_PORT", DEFAULT_LOCAL_MONGO_PORT))
    lock = data_dir / "mongo" / "LOCK"
    if lock.exists() and _locked(lock):
        raise LocalStackError(
            f"the local stores in {data_dir} are in use (the document store on :{port} holds {lock}): "
            "stop `make run` first"
        )
    removed = []
    for name in STORE_DIRS:
        path = data_dir / name
        if path.exists():
            shutil.rmtree(path)
            removed.append(path)
    return removed


def _await_unlocked(lock: Path, timeout: float) -> None:
    """Wait up to `timeout` seconds while `lock` is held: a killed run's document store gets SIGTERM with it and
    holds its data directory until it has exited. A store that still runs after that is reported by the caller."""
    deadline = time.monotonic() + timeout
    while lock.exists() and _locked(lock) and time.monotonic() < deadline:
        time.sleep(0.1)


def _locked(path: Path) -> bool:
    """Whether another process holds the lock the document store takes on its data directory."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
