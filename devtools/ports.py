"""Listening ports for the processes that development tools, tests and benchmarks start on one machine.

A port that `bind(0)` hands out comes from the kernel's ephemeral range, and it stays free only until some process's
outgoing connection takes it as its source port: a benchmark run lost its routing process that way ("port 51459
(routing) is already in use by … stats"). So ports are picked at random below that range, where outgoing
connections never land, and checked free as a server would bind them. A port is free until its process binds it,
which may be seconds later: one process is never handed the same port twice (a test system picked its four service
ports, then its store's, which could be one of the four: the store bound it first and the services exited).
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from collections import deque
from pathlib import Path


def _ephemeral_ports_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


#: the lowest port an outgoing connection may be given (32768 on Linux by default)
EPHEMERAL_START = _ephemeral_ports_start()
LOWEST = 10000
#: Two disjoint windows below the ephemeral range. Ports picked by two tools at once must never collide while
#: neither listens yet: a test picks its services' ports, `make run` then starts the local S3 server, and only then
#: do the services bind (CI saw the S3 server take a port picked for intake). The local S3 server's HTTP ports come
#: from the first window (its gRPC ports are 10000 above, 20000-25999); every other port from the second.
S3_SERVER_WINDOW = (LOWEST, 15999)
SERVICE_WINDOW = (26000, EPHEMERAL_START - 1)
#: ports of well-known local services that may be briefly closed (RabbitMQ's management, Prometheus, distribution)
RESERVED_PORTS = frozenset({15672, 15692, 25672})
#: ports this process was handed lately, the oldest forgotten first: far fewer than the window holds, far more than
#: one process has picked and not yet bound
_HANDED_OUT_MEMORY = 2048
_handed_out: deque[int] = deque(maxlen=_HANDED_OUT_MEMORY)
_handed_out_lock = threading.Lock()


def bindable(host: str, port: int) -> bool:
    """Nothing listens on `port` now: it binds as a server binds it (SO_REUSEADDR, so TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):
            sock.bind((host, port))
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, below the ephemeral range and apart from the local S3 server's, for a process
    to listen on next; not one this process was handed lately."""
    rng = random.SystemRandom()
    with _handed_out_lock:
        for _ in range(1000):
            port = rng.randint(*SERVICE_WINDOW)
            if port not in RESERVED_PORTS and port not in _handed_out and bindable(host, port):
                _handed_out.append(port)
                return port
    raise RuntimeError(f"no free port to listen on between {SERVICE_WINDOW[0]} and {SERVICE_WINDOW[1]}")
