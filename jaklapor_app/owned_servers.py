"""The local servers a run starts for itself and owns (the document store and S3 stand-ins): they stop with the run
and die with it if it is killed, SIGKILL included.

Linux only (prctl).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import time

from jaklapor.processes import port_open

_PR_SET_PDEATHSIG = 1


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
