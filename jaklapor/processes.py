"""Local processes: who holds a TCP port, for the messages that say why a port cannot be used.

Linux only (`/proc`), best effort: where `/proc` cannot tell, the answer is "another process". The local servers a
run starts and owns are in `jaklapor_app/owned_servers.py`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

_LISTEN = "0A"  # TCP state in /proc/net/tcp*


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


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
