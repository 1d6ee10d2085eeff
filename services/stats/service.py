"""Stats: aggregates rebuilt from events; the public statistics API."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from werkzeug.wrappers import Request, Response

from jaklapor.events import parse_event, utcnow
from jaklapor.messaging import PermanentFailure, broker_reachable, work_consumer, work_queue
from jaklapor.operations import OperationsEndpoints
from jaklapor.reference import load_categories
from jaklapor.web import api, json_response
from services.stats.dependencies import ProjectionStore
from services.stats.domain import apply_event, summarize
from services.stats.metrics import EVENTS_APPLIED

log = logging.getLogger(__name__)


class StatsService(OperationsEndpoints):
    name = "stats"

    projections = ProjectionStore()

    @work_consumer(work_queue("stats.events", [("intake", "#"), ("routing", "#")]))
    def fold_event(self, body: dict[str, Any]) -> None:
        try:
            event = parse_event(body)
        except ValueError as exc:
            raise PermanentFailure(str(exc)) from exc
        if self.projections.update(event.report_id, partial(_apply, event)):
            EVENTS_APPLIED.labels(event.event_type).inc()

    @api("GET", "/api/v1/stats/summary")
    def summary(self, request: Request) -> Response:
        names = {code: category.name for code, category in load_categories().items()}
        body = summarize(self.projections.grouped_counts(), names, utcnow())
        return json_response(body, headers={"Cache-Control": "public, max-age=5", "Access-Control-Allow-Origin": "*"})

    def health_checks(self) -> dict[str, Any]:
        return {"mongo": self.projections.ping(), "broker": broker_reachable(self.config["AMQP_URI"])}


def _apply(event: Any, current: dict[str, Any] | None) -> dict[str, Any] | None:
    return apply_event(current, event)
