"""Stats: aggregates rebuilt from events; the public statistics API, agency performance and the dashboard."""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Request, Response

from jaklapor.batches import RECORDING, batch_consumer
from jaklapor.events import Event, ReportSubmitted, parse_event
from jaklapor.messaging import PermanentFailure, broker_reachable, work_queue
from jaklapor.operations import OperationsEndpoints
from jaklapor.reference import load_areas, load_categories, load_directory
from jaklapor.settings import Settings
from jaklapor.vocabulary import JAKARTA_TZ, iso, utc, utcnow
from jaklapor.web import ApiError, api, json_response
from services.stats.aggregates import DIMENSIONS, MAX_DAYS, breakdown, durations, per_day, status_counts
from services.stats.dependencies import AREA_FIELDS, DAY_FIELDS, KelurahanMap, ProjectionStore
from services.stats.domain import DeadlineRule, apply_event, headline, summarize
from services.stats.incidents import INCIDENT_FIELDS, active_incidents
from services.stats.metrics import EVENTS_APPLIED, EVENTS_DUPLICATE
from services.stats.performance import agency_table, one_agency
from services.stats.query import Filters, QueryError, known_code, parse_filters, positive_int
from services.stats.settings import StatsSettings
from services.stats.verification import EVIDENCE_FIELDS, evidence_share

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg|png|ico)$")
CONTENT_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "ico": "image/x-icon",
}
PUBLIC_HEADERS = {"Cache-Control": "public, max-age=5", "Access-Control-Allow-Origin": "*"}
DASHBOARD_HEADERS = {
    "Cache-Control": "public, max-age=60",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
DEFAULT_TREND_DAYS = 30


@functools.cache
def reference_names() -> dict[str, Any]:
    categories = load_categories()
    areas = load_areas()
    kotas: dict[str, str] = {}
    for kota in areas.kota.values():
        kotas[kota.name.lower()] = kota.name
        kotas[kota.slug] = kota.name
    return {
        "categories": {c.code: {"name": c.name, "name_en": c.name_en} for c in categories.values()},
        "opds": {o.code: {"name": o.name, "level": o.level} for o in load_directory().all()},
        "kotas": kotas,
    }


class ResponseCache(DependencyProvider):
    """Computed statistics kept briefly: at most `fresh` seconds old, or up to `idle` seconds while no event changed
    the projections in this process. Another replica's changes are not seen as events here: a replica that folds
    none shows them within `idle`, not `fresh`."""

    def __init__(self, fresh: float = 1.0, idle: float = 30.0, size: int = 256) -> None:
        self.fresh = fresh
        self.idle = idle
        self.size = size
        self.generation = 0
        self.entries: dict[Any, tuple[float, int, Any]] = {}
        self.lock = threading.Lock()

    def changed(self) -> None:
        with self.lock:
            self.generation += 1

    def get_or_compute(self, key: Any, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self.lock:
            hit = self.entries.get(key)
            generation = self.generation
        if hit is not None:
            created, seen_generation, value = hit
            age = now - created
            if age < self.fresh or (seen_generation == generation and age < self.idle):
                return value
        value = compute()
        with self.lock:
            if len(self.entries) >= self.size:
                self.entries.clear()
            self.entries[key] = (now, generation, value)
        return value

    def get_dependency(self, worker_ctx: Any) -> ResponseCache:
        return self


class StatsService(OperationsEndpoints):
    name = "stats"
    # the statistics stay readable while the broker is away (they just stop moving)
    required_checks = ("mongo",)

    settings = Settings(StatsSettings)
    projections = ProjectionStore()
    kelurahan_map = KelurahanMap()
    cache = ResponseCache()

    # ---- events in ---------------------------------------------------------------------------------------------

    @batch_consumer(work_queue("stats.events", [("intake", "#"), ("routing", "#")]), linger=RECORDING)
    def fold_events(self, bodies: list[dict[str, Any]]) -> None:
        """Fold a batch of events into their reports' projections: one read of the batch's projections and one
        write of those that changed (none to read for reports whose first event is in the batch).

        A report whose write lost to another worker (services/stats/dependencies.py `update_many`) has its events
        folded again one by one into what that worker wrote; an event already counted is then recognised as such,
        so nothing is counted twice and every event is counted once, as applied or as a duplicate."""
        events = [_parsed(body) for body in bodies]  # a malformed body fails the batch, then only itself
        by_report: dict[str, list[Event]] = {}
        for event in events:
            by_report.setdefault(event.report_id, []).append(event)
        outcomes: dict[str, list[bool]] = {}  # report id -> for each of its events: applied (else a duplicate)
        changes = {
            report_id: _fold_each(report_events, outcomes, report_id) for report_id, report_events in by_report.items()
        }
        first_events = {r for r, report_events in by_report.items() if isinstance(report_events[0], ReportSubmitted)}
        _changed, lost = self.projections.update_many(changes, probably_new=first_events)
        for report_id in lost:
            # the write this batch tried did not happen: the projection is as another worker left it
            outcomes[report_id] = [
                self.projections.update(report_id, functools.partial(_apply, event)) for event in by_report[report_id]
            ]
        for report_id, report_events in by_report.items():
            for event, applied in zip(report_events, outcomes[report_id], strict=True):
                if applied:
                    EVENTS_APPLIED.labels(event.event_type).inc()
                else:
                    EVENTS_DUPLICATE.labels(event.event_type).inc()
                    log.info("event already counted", extra={"report_id": report_id, "event_id": event.event_id})
        if any(any(applied) for applied in outcomes.values()):
            self.cache.changed()

    # ---- statistics API ----------------------------------------------------------------------------------------

    @api("GET", "/api/v1/stats/summary")
    def summary(self, request: Request) -> Response:
        """Totals and shares per status, category and kota (the sentence the city publishes)."""
        filters = self._filters(request)

        def compute() -> dict[str, Any]:
            names = {code: c["name"] for code, c in reference_names()["categories"].items()}
            body = summarize(self.projections.grouped_counts(filters.mongo()), names, utcnow())
            # one problem reported N times counts once: `total` counts problems, merged reports are told apart
            merged = self.projections.merged_count(filters.mongo())
            body.update(problems=body["total"], reports_merged=merged, reports=body["total"] + merged)
            return {**body, "filters": filters.echo()}

        return self._public("summary", request, compute)

    @api("GET", "/api/v1/stats/by/<dimension>")
    def by_dimension(self, request: Request, dimension: str) -> Response:
        """Totals per status of each category / kota / kecamatan / kelurahan / responsible OPD."""
        if dimension not in DIMENSIONS:
            raise ApiError(404, "unknown_dimension", f"statistics exist by {', '.join(DIMENSIONS)}; not {dimension!r}")
        filters = self._filters(request)

        def compute() -> dict[str, Any]:
            names = reference_names()
            lookup = {"category": names["categories"], "opd": names["opds"]}.get(dimension)
            body = breakdown(self.projections.rows(filters.mongo(), AREA_FIELDS), dimension, lookup)
            return {"generated_at": iso(utcnow()), **body, "filters": filters.echo()}

        return self._public(f"by/{dimension}", request, compute)

    @api("GET", "/api/v1/stats/daily")
    def daily(self, request: Request) -> Response:
        """Reports submitted per Jakarta day (zero days included) and reports that reached selesai that day."""
        filters = self._filters(request)
        today = utcnow().astimezone(JAKARTA_TZ).date()
        last = (filters.end - timedelta(milliseconds=1)).astimezone(JAKARTA_TZ).date() if filters.end else today
        first = (
            filters.start.astimezone(JAKARTA_TZ).date()
            if filters.start
            else last - timedelta(days=DEFAULT_TREND_DAYS - 1)
        )
        if (last - first).days + 1 > MAX_DAYS:
            raise self._bad_query(QueryError("from", f"at most {MAX_DAYS} days per request"))
        window = Filters(
            start=filters.start or utc(datetime.combine(first, datetime.min.time(), JAKARTA_TZ)),
            end=filters.end,
            kota=filters.kota,
            category=filters.category,
        )

        def compute() -> dict[str, Any]:
            body = per_day(self.projections.rows(window.mongo(), DAY_FIELDS), first, last)
            return {"generated_at": iso(utcnow()), **body, "filters": window.echo()}

        return self._public("daily", request, compute)

    @api("GET", "/api/v1/stats/durations")
    def durations(self, request: Request) -> Response:
        """Time to first response and to selesai (median, p90), overall, per OPD and per category; share within
        deadline."""
        filters = self._filters(request)

        def compute() -> dict[str, Any]:
            names = reference_names()
            now = utcnow()
            body = durations(
                self.projections.rows(filters.mongo()),
                now,
                self._deadline_rule(),
                names["opds"],
                names["categories"],
            )
            return {"generated_at": iso(now), **body, "filters": filters.echo()}

        return self._public("durations", request, compute)

    @api("GET", "/api/v1/stats/agencies")
    def agencies(self, request: Request) -> Response:
        """Agency performance: rates, times, deadlines and a composite score; ranked only with enough reports."""
        opds = known_code(reference_names()["opds"], "OPD", "GET /api/v1/stats/by/opd")
        filters = self._filters(request, {"min_reports": positive_int(100_000), "opd": opds})
        min_reports = filters.extra.get("min_reports", self._min_reports())
        opd = filters.extra.get("opd")

        def compute() -> dict[str, Any]:
            now = utcnow()
            rows = self.projections.rows(filters.mongo())
            table = agency_table(
                rows,
                now,
                min_reports=min_reports,
                deadline_of=self._deadline_rule(),
                names=reference_names()["opds"],
            )
            if opd is not None:
                table = one_agency(table, opd)
            counts = status_counts(rows)
            return {
                "generated_at": iso(now),
                "total": sum(counts.values()),
                "headline": headline(counts),
                "min_reports_default": self._min_reports(),
                **table,
                "filters": filters.echo(),
            }

        return self._public("agencies", request, compute)

    @api("GET", "/api/v1/stats/evidence")
    def evidence(self, request: Request) -> Response:
        """Verified completion: the share of closures whose evidence photo matched the report (taken near it, after
        it, not the citizen's own photo), refusals by the city's verifier, reports pending verification."""
        filters = self._filters(request)

        def compute() -> dict[str, Any]:
            rows = self.projections.rows(filters.mongo(), EVIDENCE_FIELDS)
            return {"generated_at": iso(utcnow()), **evidence_share(rows), "filters": filters.echo()}

        return self._public("evidence", request, compute)

    @api("GET", "/api/v1/stats/incidents")
    def incidents(self, request: Request) -> Response:
        """Active incidents: surges of one category in one kecamatan grouped by routing, with open members."""

        def compute() -> dict[str, Any]:
            rows = self.projections.rows({"incident_id": {"$ne": None}}, INCIDENT_FIELDS)
            return {"generated_at": iso(utcnow()), "incidents": active_incidents(rows)}

        return self._public("incidents", request, compute)

    @api("GET", "/api/v1/stats/categories")
    def categories(self, request: Request) -> Response:
        """Every category a report can have (the shared reference data), whether or not any report has it yet: what
        the `category` filter takes."""
        try:
            parse_filters(request.args.lists(), kotas={}, categories=(), filters=())
        except QueryError as exc:
            raise self._bad_query(exc) from None
        categories = [c.public_fields() for c in load_categories().values()]
        return json_response({"categories": categories}, headers=PUBLIC_HEADERS)

    @api("GET", "/api/v1/stats/map/kelurahan.geojson")
    def kelurahan_geojson(self, request: Request) -> Response:
        """The 267 kelurahan boundaries, simplified, for maps (properties: code, kelurahan, kecamatan, kota)."""
        return Response(
            self.kelurahan_map,
            content_type="application/geo+json",
            headers={"Cache-Control": "public, max-age=86400", "Access-Control-Allow-Origin": "*"},
        )

    # ---- dashboard ---------------------------------------------------------------------------------------------

    @api("GET", "/")
    def home(self, request: Request) -> Response:
        return self._dashboard()

    @api("GET", "/dashboard")
    def dashboard(self, request: Request) -> Response:
        return self._dashboard()

    @api("GET", "/static/<name>")
    def static(self, request: Request, name: str) -> Response:
        path = STATIC_DIR / name
        if not STATIC_NAME.match(name) or not path.is_file():
            raise ApiError(404, "not_found", f"no static file {name!r}")
        return Response(
            _read_static(name),
            content_type=CONTENT_TYPES[name.rsplit(".", 1)[1]],
            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    def _dashboard(self) -> Response:
        return Response(
            _read_static("dashboard.html"), content_type="text/html; charset=utf-8", headers=DASHBOARD_HEADERS
        )

    # ---- helpers -----------------------------------------------------------------------------------------------

    def _filters(self, request: Request, extra: dict[str, Any] | None = None) -> Filters:
        names = reference_names()
        try:
            return parse_filters(
                request.args.lists(), kotas=names["kotas"], categories=names["categories"], extra=extra
            )
        except QueryError as exc:
            raise self._bad_query(exc) from None

    @staticmethod
    def _bad_query(exc: QueryError) -> ApiError:
        error = ApiError(400, "invalid_query", exc.message, field=exc.param)
        error.headers.update(PUBLIC_HEADERS)
        return error

    def _public(self, endpoint: str, request: Request, compute: Callable[[], dict[str, Any]]) -> Response:
        key = (endpoint, request.path, tuple(sorted(request.args.items(multi=True))))
        body = self.cache.get_or_compute(key, compute)
        return json_response(body, headers=PUBLIC_HEADERS)

    def _min_reports(self) -> int:
        return self.settings.stats_min_reports_for_rank

    def _deadline_rule(self) -> DeadlineRule:
        return self.settings.deadline_rule()

    def health_checks(self) -> dict[str, Any]:
        return {"mongo": self.projections.ping(), "broker": broker_reachable(self.settings.amqp_uri)}


def _read_static(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


def _apply(event: Any, current: dict[str, Any] | None) -> dict[str, Any] | None:
    return apply_event(current, event)


def _parsed(body: dict[str, Any]) -> Event:
    try:
        return parse_event(body)
    except ValueError as exc:
        raise PermanentFailure(str(exc)) from exc


def _fold_each(
    events: list[Event], outcomes: dict[str, list[bool]], report_id: str
) -> Callable[[dict[str, Any] | None], dict[str, Any] | None]:
    """The change folding a report's events in order into its projection, one at a time as if each came alone:
    it records in `outcomes[report_id]` which of them changed something (the others were counted already)."""

    def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
        projection, applied = current, []
        for event in events:
            updated = apply_event(projection, event)
            applied.append(updated is not None)
            projection = updated if updated is not None else projection
        outcomes[report_id] = applied
        return projection if any(applied) else None

    return change
