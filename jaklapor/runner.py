"""`jaklapor run`: the services in one nameko runner, with the local stand-ins when no real stores are configured.

Running them in one process is what lets them share mongomock's in-process data; with a real MongoDB and MinIO
each service can run alone (`jaklapor run --services intake`), as docker-compose does.
"""

from __future__ import annotations

import atexit
import logging
import logging.config
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from jaklapor.config import load_config, setting
from jaklapor.mongo import is_in_process

log = logging.getLogger("jaklapor")

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _split_endpoint(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host or "127.0.0.1", int(port)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_s3_standin(endpoint: str, wait_seconds: float = 30.0) -> subprocess.Popen | None:
    """Start moto's S3 server on a loopback endpoint where nothing listens; None if something already does."""
    host, port = _split_endpoint(endpoint)
    if _port_open(host, port):
        return None
    if host not in LOOPBACK:
        raise SystemExit(f"S3_ENDPOINT {endpoint} is not reachable and is not local: start MinIO there")
    log_path = os.path.join(tempfile.gettempdir(), f"jaklapor-s3-standin-{port}.log")
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    atexit.register(process.terminate)
    deadline = time.monotonic() + wait_seconds
    while not _port_open(host, port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the local S3 stand-in did not start; see {log_path}")
        time.sleep(0.1)
    return process


def _banner(lines: list[str]) -> None:
    width = max(len(line) for line in lines) + 4
    print("!" * width, file=sys.stderr)
    for line in lines:
        print(f"! {line.ljust(width - 4)} !", file=sys.stderr)
    print("!" * width, file=sys.stderr, flush=True)


def _announce_when_ready(config: dict[str, Any], names: list[str]) -> None:
    import eventlet
    import requests

    addresses = config.get("HTTP_ADDRESSES") or {}

    def local_url(name: str) -> str:
        host, port = _split_endpoint(str(addresses[name]))
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '', '::') else host}:{port}"

    def wait_and_print() -> None:
        for _ in range(600):
            try:
                if all(requests.get(f"{local_url(n)}/health", timeout=2).status_code == 200 for n in names):
                    break
            except requests.RequestException:
                pass
            eventlet.sleep(0.1)
        lines = ["jaklapor is up:"]
        if "intake" in names:
            lines += [
                f"  citizen + OPD API   {local_url('intake')}/api/v1/categories",
                f"  submit a report     POST {local_url('intake')}/api/v1/reports",
            ]
        if "notify" in names:
            lines.append(f"  live status stream  {local_url('notify')}/api/v1/reports/<tracking_token>/stream")
        if "stats" in names:
            lines.append(f"  public statistics   {local_url('stats')}/api/v1/stats/summary")
        lines += [f"  {n:<8} health/metrics  {local_url(n)}/health  {local_url(n)}/metrics" for n in names]
        lines.append("  try it: jaklapor demo      (OPD keys: jaklapor opd-key <code>)")
        print("\n".join(lines), file=sys.stderr, flush=True)

    eventlet.spawn_n(wait_and_print)


def run_services(config_path: str | None, names: list[str], standin: bool = True) -> int:
    from nameko.cli.run import import_service, run

    from jaklapor.cli import SERVICES

    config = load_config(config_path)
    logging.config.dictConfig(config["LOGGING"])
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        print(f"unknown service(s): {', '.join(unknown)}; choose from {', '.join(SERVICES)}", file=sys.stderr)
        return 2

    mongo_uri = setting(config, "MONGO_URI", "mongomock://localhost")
    if is_in_process(mongo_uri):
        _banner(
            [
                f"MONGO_URI={mongo_uri}: NO MongoDB configured, using the in-process stand-in (mongomock).",
                "Reports live in this process's memory only and are LOST when it stops.",
                "Set MONGO_URI=mongodb://host:27017/ for real storage.",
            ]
        )
    if standin:
        endpoint = setting(config, "S3_ENDPOINT", "127.0.0.1:9000")
        if start_s3_standin(endpoint) is not None:
            _banner(
                [
                    f"S3_ENDPOINT={endpoint}: NO MinIO answered, started the local stand-in (moto's S3 server).",
                    "Photos are kept in its memory only and are LOST when it stops.",
                    "Set S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY for a real MinIO.",
                ]
            )

    services = [import_service(SERVICES[name])[0] for name in names]
    _announce_when_ready(config, names)
    run(services, config)
    return 0
