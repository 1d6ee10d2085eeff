"""Local processes: who holds a TCP port, and the local servers a run starts and owns (the S3 stand-in).

Linux only (`/proc`), best effort: where `/proc` cannot tell, the answer is "another process".
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger("jaklapor")

_LISTEN = "0A"  # TCP state in /proc/net/tcp*
_PR_SET_PDEATHSIG = 1


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def listening_pids(port: int) -> list[int]:
    """The processes with a socket listening on `port` (those this user may inspect)."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    pids: list[int] = []
    if not targets:
        return pids
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.scandir(f"/proc/{entry.name}/fd")
            if any(os.readlink(fd.path) in targets for fd in fds):
                pids.append(int(entry.name))
        except OSError:  # gone meanwhile, or another user's
            continue
    return sorted(pids)


def command_line(pid: int) -> str:
    """A short, readable command line: `jaklapor run`, `weed mini ...`, `nginx: master process`."""
    try:
        argv = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return "?"
    if not argv:
        return "?"
    program = os.path.basename(argv[0])
    if program.startswith("python") and len(argv) > 1 and not argv[1].startswith("-"):
        argv = argv[1:]  # an installed script (`.venv/bin/jaklapor run`): name the script, not the interpreter
        program = os.path.basename(argv[0])
    text = " ".join([program, *argv[1:]])
    return text if len(text) <= 100 else text[:99] + "…"


def port_holder(port: int) -> str:
    """Who listens on `port`, for a message: "pid 1234 (jaklapor run)", or "another process" when unknown."""
    pids = [pid for pid in listening_pids(port) if pid != os.getpid()]
    if not pids:
        return "another process"
    return ", ".join(f"pid {pid} ({command_line(pid)})" for pid in pids)


def die_with_parent(parent_pid: int) -> None:
    """In the child, before exec: the kernel sends SIGTERM when the parent dies, even by SIGKILL, so no server
    outlives the run that started it. "The parent" is the thread that forked: start servers from a thread that lives
    as long as they should (the main thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


class OwnedLocalServer:
    """A local server a run starts for itself and owns: it stops with the run, and dies with it if the run is killed
    (SIGKILL included), so the next run never finds and silently uses a leftover."""

    def __init__(self, name: str, command: list[str], host: str, port: int, log_path: str) -> None:
        self.name = name
        self.command = command
        self.host = host
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, wait_seconds: float = 30.0) -> None:
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                self.command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # its own session: a Ctrl-C in the terminal reaches the run, which stops it in order
                start_new_session=True,
                preexec_fn=functools.partial(die_with_parent, os.getpid()),
            )
        deadline = time.monotonic() + wait_seconds
        while not port_open(self.host, self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the local {self.name} did not start; see {self.log_path}")
            time.sleep(0.1)

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        stop_process(process, timeout)


def stop_process(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM (a server closes its files), then SIGKILL if it has not exited within `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
