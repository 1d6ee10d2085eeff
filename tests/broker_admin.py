"""RabbitMQ vhosts for tests and benchmarks: created and deleted without ever hanging the caller or the broker.

Standard library only, so CI can run it before the virtualenv exists:

    python3 -m tests.broker_admin --delete-stale      # vhosts left by interrupted test and benchmark runs

Through the management API when it answers, else rabbitmqctl (bounded, in its own process group). A run can declare
hundreds of quorum queues (one per OPD it reaches); deleting a vhost with that many at once kept the broker's vhost
operations blocked for minutes on RabbitMQ 3.10.8 (seen on this machine, whose node then had too few file handles
for them: docs/operations.md, "RabbitMQ's file handles"), so queues are deleted one by one first, each with its own
timeout, and the vhost last.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# another broker than the shared one (e.g. a private node while the shared one is down): both default to 127.0.0.1
MANAGEMENT = os.environ.get("JAKLAPOR_RABBITMQ_MANAGEMENT", "http://127.0.0.1:15672/api")
AMQP_ADDRESS = os.environ.get("JAKLAPOR_RABBITMQ_AMQP", "127.0.0.1:5672")
STALE_VHOST = re.compile(r"^jaklapor-(test|bench)-")
_AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


def rabbitmqctl(*args: str, timeout: float = 120) -> str:
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        raise RuntimeError("rabbitmqctl not found: the tests need the local RabbitMQ")
    # its own process group: on a timeout the Erlang VM it starts must die too, or it holds one of the few
    # CLI slots the node allows and later calls fail
    process = subprocess.Popen(
        [exe, "-q", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, [exe, *args], out, err)
    return out


def _api(method: str, path: str, body: dict | None = None, timeout: float = 30.0) -> int:
    request = urllib.request.Request(
        MANAGEMENT + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": _AUTH, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _api_json(path: str, timeout: float = 30.0) -> object:
    request = urllib.request.Request(MANAGEMENT + path, headers={"Authorization": _AUTH})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def management_up() -> bool:
    try:
        _api_json("/overview", timeout=5)
    except Exception:
        return False
    return True


def create_vhost(name: str, patience: float = 0.0) -> None:
    """Create `name` with full rights for guest; retry for `patience` seconds (a fault test may have the app
    stopped)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return _create_vhost(name)
        except Exception as exc:
            if time.monotonic() > deadline:
                raise
            print(f"could not create vhost {name} ({exc!r}); retrying", file=sys.stderr, flush=True)
            time.sleep(5)


def _create_vhost(name: str) -> None:
    if management_up():
        quoted = urllib.parse.quote(name, safe="")
        if _api("PUT", f"/vhosts/{quoted}", {}) not in (201, 204):
            raise RuntimeError(f"could not create vhost {name}")
        permissions = {"configure": ".*", "write": ".*", "read": ".*"}
        if _api("PUT", f"/permissions/{quoted}/guest", permissions) not in (201, 204):
            raise RuntimeError(f"could not grant guest on vhost {name}")
    else:
        rabbitmqctl("add_vhost", name)
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")


def delete_vhost(name: str) -> bool:
    """Delete the vhost's queues one at a time, then the vhost. Reports (never hides) what is left behind."""
    quoted = urllib.parse.quote(name, safe="")
    try:
        if not management_up():
            rabbitmqctl("delete_vhost", name, timeout=300)
            return True
        started = time.monotonic()
        queues = _api_json(f"/queues/{quoted}?columns=name")
        failed = []
        for queue in queues:  # type: ignore[attr-defined]
            queue_name = urllib.parse.quote(queue["name"], safe="")
            try:
                if _api("DELETE", f"/queues/{quoted}/{queue_name}", timeout=30) not in (204, 404):
                    failed.append(queue["name"])
            except Exception:
                failed.append(queue["name"])
        status = _api("DELETE", f"/vhosts/{quoted}", timeout=120)
        took = time.monotonic() - started
        if status not in (204, 404) or failed:
            print(f"vhost {name}: delete answered {status}, queues not deleted: {failed[:5]}", file=sys.stderr)
            return False
        if took > 30:
            print(f"vhost {name} deleted in {took:.0f} s ({len(queues)} queues)", file=sys.stderr)  # type: ignore[arg-type]
        return True
    except Exception as exc:  # report, never hide: a leftover vhost must be deleted by hand
        print(f"could not delete vhost {name}: {exc!r}; delete it by hand", file=sys.stderr)
        return False


def vhost_publish_count(name: str) -> int | None:
    """Messages published into the vhost since it was created (management statistics, refreshed every 5 s)."""
    try:
        stats = _api_json(f"/vhosts/{urllib.parse.quote(name, safe='')}", timeout=10)
    except Exception:
        return None
    return int((stats.get("message_stats") or {}).get("publish", 0))  # type: ignore[attr-defined]


def list_vhosts() -> list[str]:
    if management_up():
        return [vhost["name"] for vhost in _api_json("/vhosts?columns=name")]  # type: ignore[attr-defined]
    return rabbitmqctl("list_vhosts", timeout=60).split()


def delete_stale_vhosts() -> int:
    """Delete the vhosts of interrupted test and benchmark runs; the number that could not be deleted."""
    failures = 0
    for name in list_vhosts():
        if STALE_VHOST.match(name):
            print(f"deleting stale vhost {name}", file=sys.stderr, flush=True)
            failures += not delete_vhost(name)
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delete-stale", action="store_true", help="delete jaklapor-test-*/jaklapor-bench-* vhosts")
    args = parser.parse_args(argv)
    if args.delete_stale:
        return 1 if delete_stale_vhosts() else 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
