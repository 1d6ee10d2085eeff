"""`jaklapor run`: the services in one nameko runner, with local stores (jaklapor_app/local_stack.py) when no real ones
are configured. Each service can also run alone (`jaklapor run --services intake`), as docker-compose does.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from jaklapor.config import load_config, setting
from jaklapor.logs import configure_logging
from jaklapor_app.local_stack import LocalStack, split_endpoint
from jaklapor_app.system import DEMO_INTAKE_URL, DEMO_STATS_URL, SERVICES, jaklapor_command

log = logging.getLogger("jaklapor")


def _banner(lines: list[str]) -> None:
    width = max(len(line) for line in lines) + 4
    print("!" * width, file=sys.stderr)
    for line in lines:
        print(f"! {line.ljust(width - 4)} !", file=sys.stderr)
    print("!" * width, file=sys.stderr, flush=True)


def _local_url(config: dict[str, Any], name: str) -> str:
    host, port = split_endpoint(str((config.get("HTTP_ADDRESSES") or {})[name]))
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '', '::') else host}:{port}"


def banner_commands(config: dict[str, Any], names: list[str]) -> list[tuple[str, str]]:
    """The commands the start-up banner suggests, each runnable exactly as shown from where `jaklapor run` started."""
    cli = jaklapor_command()
    commands = []
    if "intake" in names and "stats" in names:
        intake, stats = _local_url(config, "intake"), _local_url(config, "stats")
        if (intake, stats) == (DEMO_INTAKE_URL, DEMO_STATS_URL):
            commands.append(("try it", "make demo"))
        else:
            commands.append(("try it", f"{cli} demo --url {intake} --stats-url {stats}"))
    if "intake" in names:
        commands.append(("OPD API keys", f"{cli} opd-key <opd_code>"))
        commands.append(("verifier key", f"{cli} verifier-key"))
    return commands


def ready_banner(config: dict[str, Any], names: list[str]) -> list[str]:
    def url(name: str) -> str:
        return _local_url(config, name)

    lines = ["jaklapor is up:"]
    if "intake" in names:
        lines += [
            f"  citizen app         {url('intake')}/",
            f"  OPD workbench       {url('intake')}/opd/  (sign in with an OPD API key, below)",
            f"  citizen + OPD API   {url('intake')}/api/v1/categories",
            f"  submit a report     POST {url('intake')}/api/v1/reports",
        ]
    if "notify" in names:
        lines.append(f"  live status stream  {url('notify')}/api/v1/reports/<tracking_token>/stream")
    if "stats" in names:
        lines.append(f"  public dashboard    {url('stats')}/")
        lines.append(f"  public statistics   {url('stats')}/api/v1/stats/summary")
    lines += [f"  {n:<8} health/metrics  {url(n)}/health  {url(n)}/metrics" for n in names]
    lines += [f"  {label + ':':<19} {command}" for label, command in banner_commands(config, names)]
    return lines


def _announce_when_ready(config: dict[str, Any], names: list[str]) -> None:
    import eventlet
    import requests

    def wait_and_print() -> None:
        for _ in range(600):
            try:
                if all(requests.get(f"{_local_url(config, n)}/health", timeout=2).status_code == 200 for n in names):
                    break
            except requests.RequestException:
                pass
            eventlet.sleep(0.1)
        print("\n".join(ready_banner(config, names)), file=sys.stderr, flush=True)

    eventlet.spawn_n(wait_and_print)


#: seconds SIGTERM / SIGINT may take to drain in-flight work before the services are killed (SHUTDOWN_DRAIN_SECONDS)
DEFAULT_DRAIN_SECONDS = 20.0
#: after the drain timeout: seconds the kill may take before the process exits regardless
KILL_GRACE_SECONDS = 5.0
#: exit status when the drain timed out and in-flight work was cut off
EXIT_DRAIN_TIMED_OUT = 3
#: the signals that stop a run gracefully
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: `kill -USR2 <pid>` prints the stack of every thread and green thread to the log, without stopping anything
STACKS_SIGNAL = signal.SIGUSR2


class Shutdown:
    """One graceful stop, however many SIGTERM / SIGINT arrive, bounded by the drain timeout.

    nameko's own handling stops the runner once per SIGTERM (a second stop re-enters every extension's stop and
    hung forever in its Timer) and turns SIGINT into a KeyboardInterrupt raised in whichever greenlet runs. Here
    the first signal starts the stop; later ones (make forwards a SIGTERM it receives, so one `kill` of `make run`
    arrives twice) change nothing. If the work has not drained after `drain_seconds`, the services are killed, and
    a watchdog thread outside eventlet ends the process `KILL_GRACE_SECONDS` later whatever happens.
    """

    def __init__(self, runner: Any, drain_seconds: float) -> None:
        import eventlet.event

        self.runner = runner
        self.drain_seconds = drain_seconds
        self.started = eventlet.event.Event()
        self.requested_by: str | None = None
        self.timed_out = False

    def install(self) -> None:
        """Take over SIGTERM and SIGINT. The handlers do nothing themselves: a signal handler interrupts whichever
        greenlet runs, and the eventlet hub would sleep on through it. The kernel-level wakeup fd both wakes the hub
        and carries the signal number to a greenlet that acts on it."""
        import eventlet

        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        for signum in STOP_SIGNALS:
            signal.signal(signum, _noted_by_wakeup_fd)
        # a handler of its own, not the wakeup fd: it must run even when the green threads cannot
        signal.signal(STACKS_SIGNAL, dump_stacks)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        eventlet.spawn_n(self._watch_signals, read_fd)

    def _watch_signals(self, read_fd: int) -> None:
        from eventlet.hubs import trampoline

        while True:
            trampoline(read_fd, read=True)
            try:
                received = os.read(read_fd, 64)
            except BlockingIOError:
                continue
            for signum in received:
                if signum in STOP_SIGNALS:  # the wakeup fd carries every handled signal, STACKS_SIGNAL too
                    self.on_signal(signal.Signals(signum).name)

    def on_signal(self, name: str) -> None:
        import eventlet

        if self.requested_by is not None:
            log.info("%s received while stopping: the stop already under way continues", name)
            return
        self.requested_by = name
        log.info("%s received: stopping, in-flight work has %.0f s to drain", name, self.drain_seconds)
        _exit_after(self.drain_seconds + KILL_GRACE_SECONDS)
        eventlet.spawn_n(self._stop)

    def _stop(self) -> None:
        import eventlet

        with eventlet.Timeout(self.drain_seconds, False):
            self.started.wait()  # a signal during start-up stops the services once they are started
            try:
                self.runner.stop()
                return
            except Exception:
                log.exception("stopping the services failed; killing them")
                self.runner.kill()
                return
        self.timed_out = True
        log.error(
            "in-flight work did not drain within %.0f s (SHUTDOWN_DRAIN_SECONDS): killing the services; what it "
            "waited on follows",
            self.drain_seconds,
        )
        dump_stacks()
        self.runner.kill()


def dump_stacks(_signum: int | None = None, _frame: Any = None) -> None:
    """Every OS thread's and every green thread's stack, to stderr: what a hung request or stop waits on."""
    import gc
    import threading
    import traceback

    import greenlet

    out = [f"jaklapor: stacks of pid {os.getpid()}"]
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        out.append(f"--- thread {names.get(ident, ident)}\n{''.join(traceback.format_stack(frame))}")
    for item in gc.get_objects():
        if isinstance(item, greenlet.greenlet) and item.gr_frame is not None:
            out.append(f"--- green thread {item!r}\n{''.join(traceback.format_stack(item.gr_frame))}")
    out.append("jaklapor: end of stacks\n")
    # straight to the file descriptor: a signal may arrive while the interrupted code is inside sys.stderr's buffer,
    # and an exception raised here would surface in whatever green thread was running
    data = "\n".join(out).encode(errors="replace")
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(2, data) :]


def _noted_by_wakeup_fd(_signum: int, _frame: Any) -> None:
    """Replaces the default action (SIGTERM: die at once; SIGINT: KeyboardInterrupt); see Shutdown.install."""


def _exit_after(seconds: float) -> None:
    """End the process after `seconds` even if the eventlet hub is stuck: a real OS thread, not a greenlet."""
    import eventlet.patcher

    threading = eventlet.patcher.original("threading")
    real_time = eventlet.patcher.original("time")

    def watchdog() -> None:
        real_time.sleep(seconds)
        os.write(2, f"jaklapor: still running {seconds:.0f} s after the stop signal; exiting now\n".encode())
        os._exit(EXIT_DRAIN_TIMED_OUT)

    threading.Thread(target=watchdog, name="shutdown-watchdog", daemon=True).start()


def serve(services: list[type], config: dict[str, Any], on_started: Callable[[], None] = lambda: None) -> int:
    """Run the services until a signal stops them (what `nameko run` does, with the signal handling above)."""
    import eventlet
    from nameko.runners import ServiceRunner

    from jaklapor.web import PortInUseError

    runner = ServiceRunner(config)
    for service_cls in services:
        runner.add_service(service_cls)
    shutdown = Shutdown(runner, float(setting(config, "SHUTDOWN_DRAIN_SECONDS", DEFAULT_DRAIN_SECONDS)))
    shutdown.install()
    try:
        runner.start()
    except PortInUseError as exc:
        runner.kill()  # the services that did start
        log.error("%s", exc)
        print(f"jaklapor: {exc}", file=sys.stderr, flush=True)
        return 1
    shutdown.started.send()
    on_started()
    # wait in a greenlet of its own: a signal arriving while the main greenlet waits on the hub surfaces there as
    # EINTR, which must not end the wait
    waiter = eventlet.spawn(runner.wait)
    while True:
        try:
            waiter.wait()
            break
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
    if shutdown.timed_out:
        return EXIT_DRAIN_TIMED_OUT
    log.info("stopped after %s", shutdown.requested_by)
    return 0


def run_services(config_path: str | None, names: list[str], standin: bool = True) -> int:
    from nameko.cli.run import import_service

    from jaklapor.web import PortInUseError, check_ports_free

    config = load_config(config_path)
    configure_logging(config["LOGGING"])
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        print(f"unknown service(s): {', '.join(unknown)}; choose from {', '.join(SERVICES)}", file=sys.stderr)
        return 2

    try:
        check_ports_free(config, names)
    except PortInUseError as exc:
        print(f"jaklapor: {exc}", file=sys.stderr, flush=True)
        return 1

    stack = LocalStack.for_config(config)
    stack.start(config, start_s3=standin)
    if stack.notes:
        _banner(
            [
                "Local mode: no MongoDB or MinIO configured, this run started local stores that keep their data:",
                *(f"  {note}" for note in stack.notes),
                "Wipe them with `make reset` (report numbers go on). For production set MONGO_URI and S3_ENDPOINT.",
            ]
        )
    try:
        services = [import_service(SERVICES[name])[0] for name in names]
        return serve(services, config, on_started=lambda: _announce_when_ready(config, names))
    finally:
        stack.stop()
