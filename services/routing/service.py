"""Routing: decides the responsible OPD for each report and delivers it to that OPD's durable queue."""

from __future__ import annotations

import logging
from typing import Any

from jaklapor.config import setting
from jaklapor.events import (
    AreaRef,
    Event,
    OpdMessage,
    OpdRef,
    ReportForwarded,
    ReportRouted,
    ReportSubmitted,
    ReportUnroutable,
    new_event_id,
    parse_event,
)
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
from jaklapor.vocabulary import utcnow
from services.routing import metrics
from services.routing.dependencies import RoutingData, RoutingLedger
from services.routing.domain import (
    Routed,
    response_deadline_for,
    route,
    routing_key_for,
    status_of,
    triage_citizen_note,
)

log = logging.getLogger(__name__)

ROUTING_EVENTS = event_exchange("routing")


class RoutingService(OperationsEndpoints):
    name = "routing"

    data = RoutingData()
    ledger = RoutingLedger()
    publisher = Publisher(declare=[ROUTING_EVENTS, OPD_EXCHANGE, DEAD_LETTER_EXCHANGE, OPD_DEAD_LETTER_QUEUE])

    @work_consumer(work_queue("routing.reports", [("intake", "report_submitted"), ("intake", "report_forwarded")]))
    def route_report(self, body: dict[str, Any]) -> None:
        try:
            event = parse_event(body)
        except ValueError as exc:
            raise PermanentFailure(str(exc)) from exc
        if isinstance(event, ReportSubmitted):
            decision = self._decide_new(event)
            hop = 0
        elif isinstance(event, ReportForwarded):
            decision = self._decide_forward(event)
            hop = event.hop
        else:
            raise PermanentFailure(f"routing.reports does not handle {event.event_type}")

        # the first decision for (report, hop) is the one kept, with its ids: redeliveries repeat it exactly;
        # one worker at a time may deliver a (report, hop): duplicate events handled concurrently wait for it
        record, claimed = self.ledger.record_and_claim(event.report_id, hop, decision)
        routed = Outgoing(record["event"], ROUTING_EVENTS.name, record["event_type"], record["event"]["event_id"])
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

    def _decide_new(self, event: ReportSubmitted) -> dict[str, Any]:
        decision = route(self.data.index, self.data.directory, event.location.lat, event.location.lon, event.category)
        area = AreaRef.model_validate(decision.area.as_area_ref()) if decision.area is not None else None
        if isinstance(decision, Routed):
            return self._routed(event, decision.opd, area, decision.routing_key, hop=0)
        return self._unroutable(
            event, decision.reason, decision.detail, decision.detail_id, area, decision.routing_key, hop=0
        )

    def _decide_forward(self, event: ReportForwarded) -> dict[str, Any]:
        target = self.data.directory.get(event.target_opd)
        if target is None:
            detail = f"forwarded by {event.from_opd} to unknown OPD {event.target_opd!r}"
            detail_id = f'{event.from_opd} meneruskan laporan ke OPD yang tidak dikenal ("{event.target_opd}")'
            key = "triage.unknown-opd"
            return self._unroutable(event, "unknown_opd", detail, detail_id, event.area, key, event.hop)
        kelurahan = self.data.directory.areas.kelurahan.get(event.area.code) if event.area else None
        key = routing_key_for(target, kelurahan)
        return self._routed(event, target, event.area, key, hop=event.hop)

    def _message(self, event: Any, opd: OpdRef, area: AreaRef | None, hop: int, **extra: Any) -> dict[str, Any]:
        base_url = setting(self.config, "PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
        return OpdMessage(
            message_id=f"{event.report_id}:{hop}",
            report_id=event.report_id,
            hop=hop,
            assigned_at=utcnow(),
            opd=opd,
            category=event.category,
            description=event.description,
            location=event.location,
            area=area,
            photos=event.photos,
            submitted_at=event.submitted_at,
            status=status_of(event),
            transitions_url=f"{base_url}/api/v1/opd/reports/{event.report_id}/transitions",
            **extra,
        ).model_dump(mode="json")

    def _routed(self, event: Any, opd: Any, area: AreaRef | None, key: str, hop: int) -> dict[str, Any]:
        ref = OpdRef.model_validate(opd.as_ref())
        routed = ReportRouted(
            event_id=new_event_id(),
            report_id=event.report_id,
            version=event.version,
            opd=ref,
            area=area,
            routing_key=key,
            hop=hop,
            category=event.category,
            status=status_of(event),
        )
        override = setting(self.config, "RESPONSE_DEADLINE_SECONDS", None)
        category = self.data.directory.categories.get(event.category)
        routed.response_deadline = response_deadline_for(
            routed.occurred_at, category, float(override) if override else None
        )
        extra: dict[str, Any] = {"response_deadline": routed.response_deadline}
        if isinstance(event, ReportForwarded):
            extra.update(forwarded_from=event.from_opd, note=event.note, forward_kind=event.kind)
        return self._record(routed, key, opd.code, self._message(event, ref, area, hop, **extra), area, opd.level)

    def _unroutable(
        self, event: Any, reason: str, detail: str, detail_id: str, area: AreaRef | None, key: str, hop: int
    ) -> dict[str, Any]:
        triage = self.data.directory.triage
        ref = OpdRef.model_validate(triage.as_ref())
        unroutable = ReportUnroutable(
            report_id=event.report_id,
            version=event.version,
            reason=reason,
            detail=detail,
            citizen_note=triage_citizen_note(detail_id),
            area=area,
            routing_key=key,
            hop=hop,
            category=event.category,
            status=status_of(event),
        )
        message = self._message(event, ref, area, hop, triage_reason=f"{reason}: {detail}")
        record = self._record(unroutable, key, triage.code, message, area, triage.level)
        record["reason"] = reason
        return record

    @staticmethod
    def _record(
        event: Event, key: str, opd_code: str, message: dict[str, Any], area: AreaRef | None, level: str
    ) -> dict[str, Any]:
        return {
            "event_type": event.type_name,
            "event": event.to_message(),
            "routing_key": key,
            "opd_code": opd_code,
            "opd_level": level,
            "kota": area.kota if area else None,
            "opd_message": message,
        }

    def health_checks(self) -> dict[str, Any]:
        return {"mongo": self.ledger.ping(), "broker": broker_reachable(self.config["AMQP_URI"])}
