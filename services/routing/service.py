"""Routing: decides the responsible OPD for each report and delivers it to that OPD's durable queue."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from jaklapor.events import ReportForwarded, ReportSubmitted, parse_event
from jaklapor.messaging import (
    DEAD_LETTER_EXCHANGE,
    OPD_DEAD_LETTER_QUEUE,
    OPD_EXCHANGE,
    Outgoing,
    PermanentFailure,
    Publisher,
    PublishFailed,
    broker_reachable,
    event_exchange,
    opd_queue,
    work_consumer,
    work_queue,
)
from jaklapor.operations import OperationsEndpoints
from jaklapor.settings import Settings
from jaklapor.vocabulary import utcnow
from services.routing import metrics
from services.routing.assignment import Terms, assign, with_possible_duplicates
from services.routing.dependencies import RecentReports, RoutingData, RoutingLedger
from services.routing.duplicates import DuplicateTerms, index_entry, likely_duplicates, search_for
from services.routing.incidents import IncidentLedger
from services.routing.settings import RoutingSettings
from services.routing.surge_delivery import SurgeDelivery

log = logging.getLogger(__name__)

ROUTING_EVENTS = event_exchange("routing")


class RoutingService(SurgeDelivery, OperationsEndpoints):
    name = "routing"

    settings = Settings(RoutingSettings)
    data = RoutingData()
    ledger = RoutingLedger()
    recent = RecentReports()
    incidents = IncidentLedger()
    publisher = Publisher(declare=[ROUTING_EVENTS, OPD_EXCHANGE, DEAD_LETTER_EXCHANGE, OPD_DEAD_LETTER_QUEUE])

    @work_consumer(work_queue("routing.reports", [("intake", "report_submitted"), ("intake", "report_forwarded")]))
    def route_report(self, body: dict[str, Any]) -> None:
        try:
            event = parse_event(body)
        except ValueError as exc:
            raise PermanentFailure(str(exc)) from exc
        if not isinstance(event, ReportSubmitted | ReportForwarded):
            raise PermanentFailure(f"routing.reports does not handle {event.event_type}")
        terms = Terms(self.settings.public_url, self.settings.response_deadline_seconds)
        assignment = assign(event, self.data.index, self.data.directory, terms, utcnow())
        if isinstance(event, ReportSubmitted):
            assignment = with_possible_duplicates(assignment, self._likely_duplicates(event))
        hop = assignment.hop
        decision = assignment.as_record()
        # a report of a surge joins its incident (services/routing/surge.py); counted once, before its decision is kept
        decision.update(self._surge_decision(event, assignment))

        # the first decision for (report, hop) is the one kept, with its ids: redeliveries repeat it exactly;
        # one worker at a time may deliver a (report, hop): duplicate events handled concurrently wait for it
        record, claimed = self.ledger.record_and_claim(event.report_id, hop, decision)
        routed = Outgoing(record["event"], ROUTING_EVENTS.name, record["event_type"], record["event"]["event_id"])
        if record.get("incident_id"):
            self._deliver_member(event.report_id, hop, record, routed, claimed)
            return
        if not claimed:  # delivered before: announce the decision again, in case that announcement was lost
            self.publisher.publish_many([routed])
            log.info("report already delivered", extra={"report_id": event.report_id, "hop": hop})
            return
        opd_message = Outgoing(
            record["opd_message"], OPD_EXCHANGE.name, record["routing_key"], record["opd_message"]["message_id"]
        )
        try:
            self.publisher.publish_many([routed, opd_message], declare=[opd_queue(record["opd_code"])])
        except PublishFailed as exc:
            if opd_message.message_id in exc.confirmed:
                self.ledger.mark_delivered(event.report_id, hop, utcnow())  # the OPD has it: never a second copy
            else:
                self.ledger.release_claim(event.report_id, hop)
            raise
        except Exception:
            self.ledger.release_claim(event.report_id, hop)
            raise
        delivered_at = utcnow()
        self.ledger.mark_delivered(event.report_id, hop, delivered_at)
        started = event.submitted_at if hop == 0 else event.occurred_at
        metrics.DELIVERY_LATENCY.observe(max((delivered_at - started).total_seconds(), 0.0))
        if record["event_type"] == "report_routed":
            metrics.ROUTED.labels(record["kota"] or "", record["opd_level"]).inc()
        else:
            metrics.UNROUTABLE.labels(record["reason"]).inc()
        log.info(
            "report delivered to OPD queue",
            extra={
                "report_id": event.report_id,
                "opd": record["opd_code"],
                "hop": hop,
                "routing_key": record["routing_key"],
            },
        )

    def _likely_duplicates(self, event: ReportSubmitted) -> list[str]:
        """Earlier reports of the category close by (routing's own index), and this one recorded for later ones."""
        settings = self.settings
        terms = DuplicateTerms(settings.duplicate_radius_m, timedelta(days=settings.duplicate_window_days))
        lat, lon = event.location.lat, event.location.lon
        search = search_for(event.category, lat, lon, event.submitted_at, terms)
        found = likely_duplicates(self.recent.candidates(search), event.report_id, lat, lon, terms)
        self.recent.record(index_entry(event.report_id, event.category, lat, lon, event.submitted_at, terms))
        return found

    def health_checks(self) -> dict[str, Any]:
        return {"mongo": self.ledger.ping(), "broker": broker_reachable(self.config["AMQP_URI"])}
