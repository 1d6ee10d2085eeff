"""Routing: decides the responsible OPD for each report and delivers it to that OPD's durable queue."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from jaklapor.batches import ON_THE_WAY_TO_OPD, batch_consumer
from jaklapor.events import ReportForwarded, ReportRouted, ReportSubmitted
from jaklapor.messaging import (
    DEAD_LETTER_EXCHANGE,
    OPD_DEAD_LETTER_QUEUE,
    OPD_EXCHANGE,
    Outgoing,
    Publisher,
    PublishFailed,
    broker_reachable,
    event_exchange,
    expect_event,
    opd_queue,
    work_queue,
)
from jaklapor.operations import OperationsEndpoints
from jaklapor.settings import Settings
from jaklapor.vocabulary import utcnow
from services.routing import metrics
from services.routing.assignment import Assignment, Terms, assign, with_possible_duplicates
from services.routing.dependencies import ClaimBusy, RecentReports, RoutingData, RoutingLedger
from services.routing.duplicates import DuplicateTerms, index_entry, likely_duplicates, search_for, with_earlier
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

    @batch_consumer(
        work_queue("routing.reports", [("intake", "report_submitted"), ("intake", "report_forwarded")]),
        linger=ON_THE_WAY_TO_OPD,
        # a batch meeting another worker's claim is handled again one by one: a warning, not an error in the logs
        expected_exceptions=ClaimBusy,
    )
    def route_reports(self, bodies: list[dict[str, Any]]) -> None:
        # every body is read before anything is written: a malformed one fails the batch untouched, and alone it
        # is dead-lettered while its neighbours are routed
        events = [report_event(body) for body in bodies]
        terms = Terms(self.settings.public_url, self.settings.response_deadline_seconds)
        decided_at = utcnow()
        assignments = [assign(event, self.data.index, self.data.directory, terms, decided_at) for event in events]
        events, assignments = first_of_each_hop(events, assignments)
        found = self._likely_duplicates([event for event in events if isinstance(event, ReportSubmitted)])
        assignments = [
            with_possible_duplicates(assignment, found[event.report_id])
            if isinstance(event, ReportSubmitted)
            else assignment
            for event, assignment in zip(events, assignments, strict=True)
        ]
        decisions = [assignment.as_record() for assignment in assignments]
        # a report of a surge joins its incident (services/routing/surge.py); counted once, before its decision is kept
        for decision, incident in zip(decisions, self._surge_decisions(events, assignments), strict=True):
            decision.update(incident)

        # the first decision for (report, hop) is the one kept, with its ids: redeliveries repeat it exactly;
        # one worker at a time may deliver a (report, hop): duplicate events handled concurrently wait for it
        kept = self.ledger.record_and_claim_many(
            [
                (event.report_id, assignment.hop, decision)
                for event, assignment, decision in zip(events, assignments, decisions, strict=True)
            ]
        )
        deliveries = [
            Delivery(event, assignment.hop, record, claimed)
            for event, assignment, (record, claimed) in zip(events, assignments, kept, strict=True)
        ]
        members = [delivery for delivery in deliveries if delivery.record.get("incident_id")]
        try:
            self._deliver([delivery for delivery in deliveries if not delivery.record.get("incident_id")])
        except BaseException:
            self.ledger.release_claims([member.key for member in members if member.claimed])
            raise
        for position, member in enumerate(members):
            try:
                self._deliver_member(member.event.report_id, member.hop, member.record, member.routed, member.claimed)
            except BaseException:
                self.ledger.release_claims([later.key for later in members[position + 1 :] if later.claimed])
                raise

    def _deliver(self, deliveries: list[Delivery]) -> None:
        """Announce each decision and put each claimed OPD message on its queue: one publish, one confirm round trip
        and one ledger write for the batch. An OPD message the broker confirmed is never sent again; the claims of
        the others are released for the retry."""
        claimed = [delivery for delivery in deliveries if delivery.claimed]
        messages: list[Outgoing] = []
        for delivery in deliveries:
            messages.append(delivery.routed)
            if delivery.claimed:
                messages.append(delivery.opd_message)
        queues = {code: opd_queue(code) for code in (delivery.record["opd_code"] for delivery in claimed)}
        try:
            # the batch's routings travel as one event pack: one delivery to each of their four queues, not four
            # per report (jaklapor/messaging.py); published first, so they are ahead of the OPD messages
            self.publisher.publish_many(messages, declare=list(queues.values()), pack=[ReportRouted.type_name])
        except PublishFailed as exc:
            confirmed = set(exc.confirmed)
            stored = [delivery.key for delivery in claimed if delivery.opd_message.message_id in confirmed]
            self.ledger.mark_delivered_many(stored, utcnow())  # the OPD has them: never a second copy
            self.ledger.release_claims([delivery.key for delivery in claimed if delivery.key not in stored])
            raise
        except BaseException:
            self.ledger.release_claims([delivery.key for delivery in claimed])
            raise
        delivered_at = utcnow()
        self.ledger.mark_delivered_many([delivery.key for delivery in claimed], delivered_at)
        for delivery in deliveries:
            event, hop, record = delivery.event, delivery.hop, delivery.record
            if not delivery.claimed:  # delivered before: the decision announced again, in case that was lost
                log.info("report already delivered", extra={"report_id": event.report_id, "hop": hop})
                continue
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

    def _likely_duplicates(self, events: list[ReportSubmitted]) -> dict[str, list[str]]:
        """Earlier reports of the category close by (routing's own index), those before it in the batch included,
        for each report of a batch; the batch recorded for later ones. One query and one write per batch."""
        settings = self.settings
        terms = DuplicateTerms(settings.duplicate_radius_m, timedelta(days=settings.duplicate_window_days))
        if not events:
            return {}
        searches = [
            search_for(event.category, event.location.lat, event.location.lon, event.submitted_at, terms)
            for event in events
        ]
        entries = [
            index_entry(
                event.report_id, event.category, event.location.lat, event.location.lon, event.submitted_at, terms
            )
            for event in events
        ]
        stored = self.recent.candidates_many(searches)
        found = {
            event.report_id: likely_duplicates(
                with_earlier(stored[i], entries[:i], searches[i]),
                event.report_id,
                event.location.lat,
                event.location.lon,
                terms,
            )
            for i, event in enumerate(events)
        }
        self.recent.record_many(entries)
        return found

    def health_checks(self) -> dict[str, Any]:
        return {"mongo": self.ledger.ping(), "broker": broker_reachable(self.config["AMQP_URI"])}


def report_event(body: dict[str, Any]) -> ReportSubmitted | ReportForwarded:
    return cast(
        ReportSubmitted | ReportForwarded, expect_event(body, (ReportSubmitted, ReportForwarded), "routing.reports")
    )


def first_of_each_hop(
    events: list[ReportSubmitted | ReportForwarded], assignments: list[Assignment]
) -> tuple[list[ReportSubmitted | ReportForwarded], list[Assignment]]:
    """The batch without a repeated (report, hop): the repeat of an event would wait for the claim its first copy
    holds in the same batch; announced once with the first, both are acknowledged with the batch."""
    seen: set[tuple[str, int]] = set()
    kept_events, kept_assignments = [], []
    for event, assignment in zip(events, assignments, strict=True):
        if (event.report_id, assignment.hop) in seen:
            continue
        seen.add((event.report_id, assignment.hop))
        kept_events.append(event)
        kept_assignments.append(assignment)
    return kept_events, kept_assignments


@dataclass(frozen=True)
class Delivery:
    """A report of the batch with the decision kept for its hop and whether this worker delivers its OPD message."""

    event: ReportSubmitted | ReportForwarded
    hop: int
    record: dict[str, Any]
    claimed: bool

    @property
    def key(self) -> str:
        return f"{self.event.report_id}:{self.hop}"

    @property
    def routed(self) -> Outgoing:
        record = self.record
        return Outgoing(record["event"], ROUTING_EVENTS.name, record["event_type"], record["event"]["event_id"])

    @property
    def opd_message(self) -> Outgoing:
        record = self.record
        return Outgoing(
            record["opd_message"], OPD_EXCHANGE.name, record["routing_key"], record["opd_message"]["message_id"]
        )
