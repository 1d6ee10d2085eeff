"""Routing's side of surges, mixed into RoutingService: counting a report under its key, delivering a member of an
incident (its routed event, and the report_joined_incident events of the members before it), and the coalesced
incident messages on the OPD's queue, sent by the worker that made one due or by the flush timer.

The rules are in surge.py, the store in incidents.py.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from jaklapor.events import AreaRef, OpdRef, ReportJoinedIncident, ReportRouted, ReportSubmitted
from jaklapor.messaging import OPD_EXCHANGE, Outgoing, PublishFailed, event_exchange, opd_queue
from jaklapor.timers import timer_from_config
from jaklapor.vocabulary import utcnow
from services.routing import metrics
from services.routing.incidents import Arrival
from services.routing.surge import eligible, incident_message, member_record, surge_key

log = logging.getLogger(__name__)

ROUTING_EVENTS = event_exchange("routing")
# stable ids for the report_joined_incident events, so a repeated announcement is deduplicated downstream
JOINED_NAMESPACE = uuid.UUID("6f1d3c0e-5a4b-4c8e-9a57-2d1f7e0b9c31")


class SurgeDelivery:
    """Mixed into RoutingService, whose dependencies these are."""

    settings: Any
    ledger: Any
    incidents: Any
    publisher: Any

    def _surge_decisions(self, events: Sequence[Any], assignments: Sequence[Any]) -> list[dict[str, Any]]:
        """The incident fields of each report's decision (a batch, in arrival order): empty when it is delivered on
        its own."""
        rule = self.settings.surge_rule()
        decisions: list[dict[str, Any]] = [{} for _ in events]
        counted = [
            i
            for i, (event, assignment) in enumerate(zip(events, assignments, strict=True))
            if isinstance(event, ReportSubmitted)
            and eligible(assignment.hop, isinstance(assignment.event, ReportRouted), assignment.area, rule)
        ]
        # decided before (a redelivery): the kept decision says whether it joined
        decided = self.ledger.decided([f"{events[i].report_id}:{assignments[i].hop}" for i in counted])
        counted = [i for i in counted if f"{events[i].report_id}:{assignments[i].hop}" not in decided]
        if not counted:
            return decisions
        arrivals = [self._arrival(events[i], assignments[i]) for i in counted]
        outcomes = self.incidents.observe_many(arrivals, rule, utcnow())
        for i, outcome in zip(counted, outcomes, strict=True):
            if outcome is None:
                continue
            decisions[i] = {
                "event": assignments[i].event.model_copy(update={"incident_id": outcome.incident_id}).to_message(),
                "incident_id": outcome.incident_id,
                "incident_opened": outcome.opened,
                "early_members": outcome.early_members,
            }
        return decisions

    def _arrival(self, event: ReportSubmitted, assignment: Any) -> Arrival:
        area: AreaRef = assignment.area
        return Arrival(
            report_id=event.report_id,
            version=event.version,
            key=surge_key(assignment.opd.code, event.category, area),
            routing_key=".".join([*assignment.routing_key.split(".")[:3], "incident"]),
            opd=assignment.opd,
            category=event.category,
            area=area,
            member=member_record(event, area, self.settings.public_url),
        )

    def _deliver_member(
        self, report_id: str, hop: int, record: dict[str, Any], routed: Outgoing, claimed: bool
    ) -> None:
        """A report in an incident: announce its routing (with incident_id), and, from the report that opened the
        incident, that the earlier ones joined it; the OPD hears of it through the incident's message."""
        incident_id = record["incident_id"]
        messages = [routed, *self._joined_events(record)]
        try:
            self.publisher.publish_many(messages)
        except Exception:
            if claimed:
                self.ledger.release_claim(report_id, hop)
            raise
        if claimed:
            self.ledger.mark_delivered(report_id, hop, utcnow())
            metrics.INCIDENT_MEMBERS.inc()
            if record.get("incident_opened"):
                metrics.INCIDENTS_OPENED.inc()
                log.info("incident opened", extra={"report_id": report_id, "incident_id": incident_id})
        self._announce_incident(incident_id)

    def _joined_events(self, record: dict[str, Any]) -> list[Outgoing]:
        if not record.get("incident_opened"):
            return []
        event = record["event"]
        outgoing = []
        for member in record.get("early_members", []):
            joined = ReportJoinedIncident(
                event_id=uuid.uuid5(JOINED_NAMESPACE, f"{record['incident_id']}:{member['report_id']}").hex,
                report_id=member["report_id"],
                version=member["version"],
                incident_id=record["incident_id"],
                opd=OpdRef.model_validate(event["opd"]),
                category=event["category"],
                area=AreaRef.model_validate(member["area"]) if member.get("area") else None,
                hop=0,
            )
            outgoing.append(Outgoing(joined.to_message(), ROUTING_EVENTS.name, joined.type_name, joined.event_id))
        return outgoing

    def _announce_incident(self, incident_id: str) -> bool:
        """Send the incident's next message if one is due; True if sent. A failure leaves the members pending for
        the flush timer (the reports themselves are delivered: their routing is announced)."""
        rule = self.settings.surge_rule()
        now = utcnow()
        claim = self.incidents.claim_update(incident_id, rule, now)
        if claim is None:
            return False
        incident = claim.incident
        message = incident_message(incident, claim.members, claim.total, claim.first, now, self.settings.public_url)
        body = message.model_dump(mode="json")
        outgoing = Outgoing(body, OPD_EXCHANGE.name, incident["routing_key"], message.message_id)
        try:
            self.publisher.publish_many([outgoing], declare=[opd_queue(incident["opd"]["code"])])
        except (PublishFailed, Exception):
            self.incidents.release(claim)
            log.exception("incident message not sent; the flush timer retries", extra={"incident_id": incident_id})
            return False
        self.incidents.sent(claim, utcnow())
        metrics.INCIDENT_MESSAGES.labels(message.message_type).inc()
        log.info(
            "incident message sent",
            extra={
                "incident_id": incident_id,
                "opd": incident["opd"]["code"],
                "message_type": message.message_type,
                "members": len(claim.members),
                "member_count": claim.total,
            },
        )
        return True

    @timer_from_config("SURGE_FLUSH_SECONDS", 5.0)
    def flush_incidents(self) -> None:
        """Send the updates that waited for their interval, retry failed ones, forget old arrivals."""
        rule = self.settings.surge_rule()
        if not rule.enabled:
            return
        for incident_id in self.incidents.with_pending():
            self._announce_incident(incident_id)
        self.incidents.prune_arrivals(utcnow() - rule.window)
