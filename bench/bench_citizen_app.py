"""Benchmark of the citizen app's first load: what a phone downloads and how long until the report form is usable.

Starts the system (the single layout of bench/harness.py, map tiles off: tiles aside, the app draws the kelurahan
boundaries) or attaches to one (`--url`), and opens `/` in Debian's Chromium (Playwright, a phone's viewport) for each
network profile, each run in a fresh browser context:

  cold           empty HTTP cache, no service worker (a first visit)
  warm           the service worker installed and the HTTP cache as the cold visit left it (a visit minutes later)
  warm-uncached  the service worker installed, the HTTP cache emptied (a later visit: files past their max-age)

Profiles (Chrome DevTools' presets through CDP `Network.emulateNetworkConditions`, applied to the page and to the
service worker, which fetches the shell; 4x CPU throttling on the page with `Emulation.setCPUThrottlingRate`):

  none      no throttling
  fast-3g   1.6 Mbit/s down, 750 kbit/s up, 562.5 ms latency, CPU 4x slower
  slow-3g   400 kbit/s down and up, 2000 ms latency, CPU 4x slower

Measured per load: time to interactive, the `interactive` performance mark the app sets once the report screen is
usable (the photo button, the map and the kelurahan picker, the categories listed: what the browser tests wait for
as body[data-state=ready]), in ms since the navigation started; then, once the network is quiet (the service worker
installed too on a cold visit), the bytes that came over the network (CDP `encodedDataLength`: headers and the
compressed body; answers from the HTTP cache or the service worker count 0) and the number of requests that went to
the network, for the shell (every same-origin request but the API) and for the API's data (/api/...) apart. A warm
visit counts the service worker's own fetches (network first: the page's requests it answers count 0); a cold visit
counts the page's requests only, not the worker installing afterwards in the background (about 16 KB more: the other
two pages, the marker images, the manifest; the rest comes from the HTTP cache).

    python bench/bench_citizen_app.py                              # 3 runs of every profile and visit
    python bench/bench_citizen_app.py --runs 1 --profiles none     # a quick look
    python bench/bench_citizen_app.py --url http://127.0.0.1:8000  # a running system (`jaklapor run`)

Prints a table and writes `bench/results/citizen-app-<UTC time>.json` (`python bench/summarize.py` adds its row to
bench/results.csv).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import BenchSystem  # noqa: E402
from bench.report import RESULTS  # noqa: E402
from tests.browser import CHROMIUM, PHONE  # noqa: E402

BENCHMARK = "citizen-app-first-load"
#: bytes/s and ms, as Chrome DevTools' presets (1 kbit/s = 125 bytes/s)
NETWORKS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "fast-3g": {"offline": False, "latency": 562.5, "downloadThroughput": 200_000, "uploadThroughput": 93_750},
    "slow-3g": {"offline": False, "latency": 2000, "downloadThroughput": 50_000, "uploadThroughput": 50_000},
}
CPU_SLOWDOWN = {"none": 1, "fast-3g": 4, "slow-3g": 4}
VISITS = ("cold", "warm", "warm-uncached")
#: the network is quiet once nothing is outstanding and nothing new started for this long
QUIET_S = 1.0
LOAD_TIMEOUT_S = 180.0
#: nothing leaves this machine, and nothing but the app is measured (no component updates, no QUIC probing)
CHROMIUM_ARGS = [
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]


@dataclass
class Request:
    url: str
    from_cache: bool = False  # the HTTP cache, the service worker or the memory cache answered
    done: bool = False
    bytes: int = 0


@dataclass
class NetworkLog:
    """The network requests of one visit (the page's and its service worker's), from CDP events."""

    requests: dict[tuple[str, str], Request] = field(default_factory=dict)
    last_event: float = field(default_factory=time.monotonic)

    def listen(self, cdp: Any) -> None:
        """The page's own requests (its session's Network events)."""
        for method in (
            "Network.requestWillBeSent",
            "Network.responseReceived",
            "Network.requestServedFromCache",
            "Network.loadingFinished",
            "Network.loadingFailed",
        ):
            cdp.on(method, lambda event, method=method: self.record("page", method, event))

    def record(self, session: str, method: str, event: dict[str, Any]) -> None:
        self.last_event = time.monotonic()
        key = (session, event["requestId"])
        if method == "Network.requestWillBeSent":
            if key in self.requests and event.get("redirectResponse"):
                key = (session, f"{event['requestId']}@{len(self.requests)}")  # the redirect is a request too
            self.requests[key] = Request(event["request"]["url"])
            return
        request = self.requests.get(key)
        if request is None:
            return
        if method == "Network.responseReceived":
            response = event["response"]
            cached = (
                response.get("fromDiskCache") or response.get("fromServiceWorker") or response.get("fromPrefetchCache")
            )
            request.from_cache = request.from_cache or bool(cached)
        elif method == "Network.requestServedFromCache":
            request.from_cache = True
        elif method == "Network.loadingFinished":
            request.done, request.bytes = True, int(event.get("encodedDataLength", 0))
        else:  # loadingFailed
            request.done = True

    def quiet(self) -> bool:
        """Every request ended, and nothing new started for QUIET_S."""
        outstanding = [r for r in self.requests.values() if not r.done]
        return not outstanding and time.monotonic() - self.last_event >= QUIET_S

    def totals(self, origin: str) -> dict[str, int]:
        """Bytes and requests over the network for the shell (same origin, not /api/) and the API's data."""
        out = {"shell_bytes": 0, "shell_requests": 0, "api_bytes": 0, "api_requests": 0, "cached_requests": 0}
        for request in self.requests.values():
            if not request.url.startswith(origin + "/"):
                continue  # map tiles and anything else: not this app's (and blocked from leaving the machine)
            if request.from_cache:
                out["cached_requests"] += 1
                continue
            kind = "api" if request.url[len(origin) :].startswith("/api/") else "shell"
            out[f"{kind}_bytes"] += request.bytes
            out[f"{kind}_requests"] += 1
        return out


class ServiceWorkerTap:
    """The browser's service workers, throttled as the page and their requests logged to the visit under way.

    A page's CDP conditions do not reach its service worker, which fetches the shell (network first): this browser
    session attaches to every service worker as soon as it is created, and keeps it running (a worker with a
    debugger attached is not stopped when idle), so a warm visit meets a worker already throttled. Playwright's CDP
    session has no child sessions of its own, so they are attached without flattening: their events arrive as
    `Target.receivedMessageFromTarget`, and commands go to them with `Target.sendMessageToTarget`."""

    def __init__(self, browser: Any) -> None:
        self.cdp = browser.new_browser_cdp_session()
        self.sessions: list[str] = []
        self.network: dict[str, Any] | None = None
        self.log = NetworkLog()
        self.unanswered: set[int] = set()
        self.next_id = 0
        self.cdp.on("Target.targetCreated", self.created)
        self.cdp.on("Target.attachedToTarget", self.attached)
        self.cdp.on("Target.detachedFromTarget", lambda event: self.forget(event["sessionId"]))
        self.cdp.on("Target.receivedMessageFromTarget", self.received)
        self.cdp.send("Target.setDiscoverTargets", {"discover": True})

    def created(self, event: dict[str, Any]) -> None:
        if event["targetInfo"]["type"] == "service_worker":
            self.cdp.send("Target.attachToTarget", {"targetId": event["targetInfo"]["targetId"], "flatten": False})

    def visit(self, log: NetworkLog, network: dict[str, Any] | None) -> None:
        """Log to `log` from now on, under these network conditions (None: none)."""
        self.log, self.network = log, network
        for session in self.sessions:
            self.throttle(session)

    def attached(self, event: dict[str, Any]) -> None:
        session = event["sessionId"]
        self.sessions.append(session)
        self.send(session, "Network.enable", {})
        self.throttle(session)

    def forget(self, session: str) -> None:
        if session in self.sessions:
            self.sessions.remove(session)

    def throttle(self, session: str) -> None:
        # no throttling: the conditions of an earlier profile lifted
        conditions = self.network or {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
        self.send(session, "Network.emulateNetworkConditions", conditions)

    def send(self, session: str, method: str, params: dict[str, Any]) -> None:
        self.next_id += 1
        self.unanswered.add(self.next_id)
        message = json.dumps({"id": self.next_id, "method": method, "params": params})
        try:
            self.cdp.send("Target.sendMessageToTarget", {"sessionId": session, "message": message})
        except Exception:  # the worker stopped meanwhile: nothing to throttle
            self.unanswered.discard(self.next_id)
            self.forget(session)

    def received(self, event: dict[str, Any]) -> None:
        message = json.loads(event["message"])
        if "id" in message:
            self.unanswered.discard(message["id"])
        elif message.get("method", "").startswith("Network."):
            self.log.record(f"sw:{event['sessionId']}", message["method"], message.get("params", {}))

    def settle(self, page: Any) -> None:
        """Until every command sent to a worker was answered (events arrive while Playwright waits)."""
        deadline = time.monotonic() + 30
        while self.unanswered and time.monotonic() < deadline:
            page.wait_for_timeout(20)


def wait_quiet(page: Any, log: NetworkLog, tap: ServiceWorkerTap, timeout: float = LOAD_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(100)
        if log.quiet() and not tap.unanswered:
            return
    raise TimeoutError(f"the network was not quiet after {timeout} s")


def load(context: Any, tap: ServiceWorkerTap, url: str, profile: str, *, cold: bool) -> dict[str, Any]:
    """One visit of `url` in a new page of `context` under `profile`: time to interactive and the traffic."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log = NetworkLog()
    cdp = context.new_cdp_session(page)
    log.listen(cdp)
    cdp.send("Network.enable")
    if NETWORKS[profile]:
        cdp.send("Network.emulateNetworkConditions", NETWORKS[profile])
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN[profile]})
    # a cold visit's worker installs once the page is interactive, in the background: its fetches (mostly answered
    # by the HTTP cache) race its being attached, so they are left out rather than counted some of the time
    tap.visit(NetworkLog() if cold else log, NETWORKS[profile])
    tap.settle(page)  # the running service worker throttled before the visit
    page.goto(url, wait_until="commit", timeout=LOAD_TIMEOUT_S * 1000)
    page.wait_for_selector("body[data-state=ready]", timeout=LOAD_TIMEOUT_S * 1000)
    interactive_ms = page.evaluate("performance.getEntriesByName('interactive')[0].startTime")
    # a cold visit is a new context's first (the worker may already have claimed the page by now)
    if not cold and not page.evaluate("navigator.serviceWorker.controller !== null"):
        raise RuntimeError("a warm visit was not served by the service worker")
    if cold:  # the visit ends once the service worker installed (it fetches the shell to keep)
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    wait_quiet(page, log, tap)
    if errors:
        raise RuntimeError(f"the app failed in the browser: {errors}")
    totals = log.totals(url.rstrip("/"))
    page.close()
    return {"interactive_ms": round(interactive_ms, 1), **totals}


def visit_all(browser: Any, tap: ServiceWorkerTap, url: str, profile: str) -> dict[str, dict[str, Any]]:
    """A cold visit, then the warm ones, in one fresh browser context (its own HTTP cache and service worker)."""
    context = browser.new_context(**PHONE)
    try:
        cold = load(context, tap, url, profile, cold=True)
        warm = load(context, tap, url, profile, cold=False)
        cleaner = context.new_cdp_session(context.new_page())
        cleaner.send("Network.clearBrowserCache")
        uncached = load(context, tap, url, profile, cold=False)
        return {"cold": cold, "warm": warm, "warm-uncached": uncached}
    finally:
        context.close()


def summarize(samples: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """profile -> visit -> medians (and the range of the time to interactive) over the runs."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for sample in samples:
        out.setdefault(sample["profile"], {}).setdefault(sample["visit"], {"loads": []})["loads"].append(sample)
    for visits in out.values():
        for visit, cell in visits.items():
            loads = cell.pop("loads")
            tti = [s["interactive_ms"] for s in loads]
            visits[visit] = {
                "runs": len(loads),
                "interactive_ms_median": round(statistics.median(tti), 1),
                "interactive_ms_min": min(tti),
                "interactive_ms_max": max(tti),
                **{
                    name: statistics.median(s[name] for s in loads)
                    for name in ("shell_bytes", "shell_requests", "api_bytes", "api_requests", "cached_requests")
                },
            }
    return out


def table(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    header = (
        f"{'profile':<9} {'visit':<14} {'interactive ms (min-max)':>26} {'shell KB':>9} {'shell req':>9}"
        f" {'API KB':>7} {'API req':>7} {'cached':>6}"
    )
    lines = [header, "-" * len(header)]
    for profile, visits in summary.items():
        for visit, cell in visits.items():
            low, high = cell["interactive_ms_min"], cell["interactive_ms_max"]
            spread = f"{cell['interactive_ms_median']:.0f} ({low:.0f}-{high:.0f})"
            lines.append(
                f"{profile:<9} {visit:<14} {spread:>26} {cell['shell_bytes'] / 1000:>9.1f} {cell['shell_requests']:>9}"
                f" {cell['api_bytes'] / 1000:>7.1f} {cell['api_requests']:>7} {cell['cached_requests']:>6}"
            )
    return "\n".join(lines)


def git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fresh browser contexts per profile (default 3)")
    parser.add_argument(
        "--profiles",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=list(NETWORKS),
        help=f"comma-separated, of {', '.join(NETWORKS)} (default all)",
    )
    parser.add_argument("--url", help="the intake of a running system (else one is started)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the result file goes (default bench/results)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.profiles if name not in NETWORKS]
    if unknown or not args.profiles:
        parser.error(f"--profiles: unknown {unknown}; choose from {', '.join(NETWORKS)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from playwright.sync_api import sync_playwright

    started = datetime.now(UTC)
    system = None
    if args.url:
        url = args.url.rstrip("/") + "/"
    else:
        system = BenchSystem("single", env={"MAP_TILE_URL": ""})  # tiles aside: the map draws the boundaries
        system.start()
        url = system.intake_urls()[0] + "/"
    samples: list[dict[str, Any]] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            version = browser.version
            tap = ServiceWorkerTap(browser)
            for profile in args.profiles:
                for run in range(1, args.runs + 1):
                    for visit, measured in visit_all(browser, tap, url, profile).items():
                        samples.append({"profile": profile, "visit": visit, "run": run, **measured})
                        print(f"{profile} run {run} {visit}: {measured}", file=sys.stderr)
            browser.close()
    finally:
        if system is not None:
            system.stop()
    summary = summarize(samples)
    result = {
        "benchmark": BENCHMARK,
        "started_at": started.isoformat(timespec="seconds"),
        "commit": git_commit(),
        "chromium": version,
        "url": "started (single layout, no map tiles)" if system is not None else url,
        "runs": args.runs,
        "profiles": {name: {"network": NETWORKS[name], "cpu_slowdown": CPU_SLOWDOWN[name]} for name in args.profiles},
        "summary": summary,
        "samples": samples,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"citizen-app-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(table(summary))
    print(f"result: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
