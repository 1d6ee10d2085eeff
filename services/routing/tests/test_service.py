"""RoutingService's entrypoint with nameko's worker_factory and in-memory fakes (tests/fakes.py): what it records
and publishes for a submitted and a forwarded report, for a redelivery, and when the broker fails it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from nameko.testing.services import worker_factory

from jaklapor.events import Event, ReportStatusChanged
from jaklapor.messaging import OPD_EXCHANGE, PermanentFailure, PublishFailed, opd_queue
from jaklapor.settings import InvalidSettings
from services.routing.service import ROUTING_EVENTS, RoutingService
from services.routing.settings import RoutingSettings
from services.routing.tests.fakes import FakeLedger, FakePublisher, FakeRecentReports, ReferenceData, incident_store
from services.routing.tests.reports import DEPOK, REPORT, SUBMITTED_AT, forwarded, submitted

REFERENCE = ReferenceData()


class Routing:
    """A routing worker and its fakes."""

    def __init__(self, settings: RoutingSettings | None = None) -> None:
        self.ledger = FakeLedger()
        self.publisher = FakePublisher()
        self.service = worker_factory(
            RoutingService,
            settings=settings or RoutingSettings(public_url="https://lapor.example"),
            data=REFERENCE,
            ledger=self.ledger,
            publisher=self.publisher,
            incidents=incident_store(),
            recent=FakeRecentReports(),
        )

    def deliver(self, event: Event) -> None:
        self.service.route_reports([event.to_message()])


def test_a_submitted_report_is_announced_and_put_on_its_opd_queue_once_confirmed() -> None:
    routing = Routing()
    routing.deliver(submitted())
    [batch] = routing.publisher.batches
    announced, assigned = batch
    assert (announced.exchange, announced.routing_key) == (ROUTING_EVENTS.name, "report_routed")
    assert announced.body["event_type"] == "routing.report_routed"
    assert announced.message_id == announced.body["event_id"]
    assert announced.body["opd"]["code"] == "kelurahan-melawai" and announced.body["hop"] == 0
    assert assigned.exchange == OPD_EXCHANGE.name
    assert assigned.routing_key == "kelurahan-melawai.jakarta-selatan.kebayoran-baru.melawai"
    assert assigned.message_id == f"{REPORT}:0" == assigned.body["message_id"]
    assert assigned.body["transitions_url"] == f"https://lapor.example/api/v1/opd/reports/{REPORT}/transitions"
    assert [queue.name for queue in routing.publisher.declared] == [opd_queue("kelurahan-melawai").name]
    record = routing.ledger.records[f"{REPORT}:0"]
    assert record["delivered_at"] is not None and not record["claimed"]
    assert record["event"] == announced.body and record["opd_message"] == assigned.body


def test_a_redelivered_report_is_announced_again_with_the_same_ids_and_not_sent_twice() -> None:
    routing = Routing()
    event = submitted()
    routing.deliver(event)
    routing.deliver(event)
    first, again = routing.publisher.batches
    assert len(again) == 1 and again[0] == first[0]


def test_a_report_outside_jakarta_goes_to_the_triage_queue() -> None:
    routing = Routing()
    routing.deliver(submitted(location=DEPOK))
    announced, assigned = routing.publisher.messages
    assert announced.routing_key == "report_unroutable" and announced.body["reason"] == "outside_jakarta"
    assert assigned.routing_key == "triage.outside-jakarta" and assigned.body["opd"]["code"] == "triage"
    assert assigned.body["triage_reason"].startswith("outside_jakarta: ")
    assert routing.ledger.records[f"{REPORT}:0"]["reason"] == "outside_jakarta"


def test_a_forwarded_report_is_delivered_to_its_target_as_its_own_hop() -> None:
    routing = Routing()
    routing.deliver(forwarded("satpol-pp-jakarta-selatan", hop=3))
    announced, assigned = routing.publisher.messages
    assert announced.body["hop"] == 3 and announced.body["status"] == "koordinasi"
    assert assigned.routing_key == "satpol-pp-jakarta-selatan.jakarta-selatan.kebayoran-baru.melawai"
    assert assigned.message_id == f"{REPORT}:3" and assigned.body["forwarded_from"] == "kelurahan-melawai"
    assert set(routing.ledger.records) == {f"{REPORT}:3"}


def test_the_configured_response_deadline_applies_to_every_category() -> None:
    routing = Routing(RoutingSettings(response_deadline_seconds=90))
    routing.deliver(submitted("penanganan-banjir"))
    announced, assigned = routing.publisher.messages
    assert announced.body["response_deadline"] == assigned.body["response_deadline"]
    deadline, decided = (datetime.fromisoformat(announced.body[key]) for key in ("response_deadline", "occurred_at"))
    assert deadline - decided == timedelta(seconds=90)


@pytest.mark.parametrize(
    "body",
    [
        {"event_type": "intake.report_submitted", "report_id": REPORT},  # malformed
        {"event_type": "intake.something_else"},
        ReportStatusChanged(
            report_id=REPORT,
            version=2,
            from_status="menunggu",
            to_status="dikerjakan",
            actor_opd="kelurahan-melawai",
            note="",
            category="sampah",
            submitted_at=SUBMITTED_AT,
        ).to_message(),
    ],
)
def test_a_message_routing_cannot_handle_is_dead_lettered_untouched(body: dict[str, Any]) -> None:
    routing = Routing()
    with pytest.raises(PermanentFailure):
        routing.service.route_reports([body])
    assert routing.publisher.batches == [] and routing.ledger.records == {}


def test_a_failed_publish_releases_the_claim_and_the_retry_sends_the_same_decision() -> None:
    routing = Routing()
    event = submitted()
    routing.publisher.fail_next(PublishFailed("broker gone"))
    with pytest.raises(PublishFailed):
        routing.deliver(event)
    record = routing.ledger.records[f"{REPORT}:0"]
    assert not record["claimed"] and record["delivered_at"] is None
    routing.deliver(event)
    announced, assigned = routing.publisher.messages
    assert announced.body == record["event"] and assigned.body == record["opd_message"]
    assert record["delivered_at"] is not None


def test_an_opd_message_the_broker_confirmed_before_failing_is_never_sent_again() -> None:
    routing = Routing()
    event = submitted()
    routing.publisher.fail_next(PublishFailed("connection lost", confirmed=[f"{REPORT}:0"]))
    with pytest.raises(PublishFailed):
        routing.deliver(event)
    assert routing.ledger.records[f"{REPORT}:0"]["delivered_at"] is not None
    routing.deliver(event)  # the redelivered event only announces the decision
    [(announced,)] = [tuple(batch) for batch in routing.publisher.batches]
    assert announced.routing_key == "report_routed"


def test_settings_come_from_the_config_and_a_bad_value_names_its_key() -> None:
    settings = RoutingSettings.from_config(
        {"PUBLIC_URL": "https://lapor.example", "RESPONSE_DEADLINE_SECONDS": "", "DELIVERY_CLAIM_SECONDS": "3"}
    )
    assert settings == RoutingSettings(public_url="https://lapor.example", delivery_claim_seconds=3)
    assert settings.response_deadline_seconds is None
    with pytest.raises(InvalidSettings, match="DELIVERY_CLAIM_SECONDS"):
        RoutingSettings.from_config({"DELIVERY_CLAIM_SECONDS": "soon"})


# ---- batches (jaklapor/batches.py): what a batch does is what its reports would do one by one ----------------------


def reports(n: int) -> list[Event]:
    return [submitted(report_id=f"JK-20261128-{i:06d}") for i in range(1, n + 1)]


def route(routing: Routing, events: list[Event]) -> None:
    routing.service.route_reports([event.to_message() for event in events])


def test_a_batch_of_new_reports_is_announced_and_delivered_in_one_publish_and_two_ledger_writes() -> None:
    routing = Routing()
    events = reports(5)
    route(routing, events)
    [batch] = routing.publisher.batches
    announced = [m for m in batch if m.exchange == ROUTING_EVENTS.name]
    assigned = [m for m in batch if m.exchange == OPD_EXCHANGE.name]
    assert [m.body["report_id"] for m in announced] == [e.report_id for e in events]
    assert [m.message_id for m in assigned] == [f"{e.report_id}:0" for e in events]
    assert [queue.name for queue in routing.publisher.declared] == [opd_queue("kelurahan-melawai").name]
    assert routing.ledger.writes == ["record_and_claim_many", "mark_delivered_many"]
    assert all(r["delivered_at"] is not None and not r["claimed"] for r in routing.ledger.records.values())


def test_a_redelivered_report_in_a_batch_is_announced_again_and_not_sent_to_its_opd_twice() -> None:
    routing = Routing()
    first, *others = reports(3)
    route(routing, [first])
    route(routing, [*others[:1], first, *others[1:]])
    sent, again = routing.publisher.batches
    assert [m.message_id for m in again if m.exchange == OPD_EXCHANGE.name] == [f"{e.report_id}:0" for e in others]
    announced = [m for m in again if m.exchange == ROUTING_EVENTS.name]
    assert len(announced) == 3 and announced[1] == sent[0]  # the first decision, with its event id


def test_a_report_twice_in_one_batch_is_delivered_once() -> None:
    routing = Routing()
    event = submitted()
    route(routing, [event, event])
    [batch] = routing.publisher.batches
    assert [m.exchange for m in batch] == [ROUTING_EVENTS.name, OPD_EXCHANGE.name]


def test_a_failed_batch_releases_every_claim_and_each_report_retried_alone_is_delivered_once() -> None:
    routing = Routing()
    events = reports(3)
    routing.publisher.fail_next(PublishFailed("broker gone"))
    with pytest.raises(PublishFailed):
        route(routing, events)
    assert all(not r["claimed"] and r["delivered_at"] is None for r in routing.ledger.records.values())
    kept = {key: dict(record) for key, record in routing.ledger.records.items()}
    for event in events:  # what the batch consumer does with a failed batch
        route(routing, [event])
    assigned = [m for m in routing.publisher.messages if m.exchange == OPD_EXCHANGE.name]
    assert [m.message_id for m in assigned] == [f"{e.report_id}:0" for e in events]
    assert [m.body for m in assigned] == [kept[m.message_id]["opd_message"] for m in assigned]
    assert all(r["delivered_at"] is not None for r in routing.ledger.records.values())


def test_the_opd_messages_a_failed_batch_had_confirmed_are_never_sent_again() -> None:
    routing = Routing()
    first, second = reports(2)
    # stored in order: the first report's two messages were confirmed before the connection dropped
    confirmed = [f"{first.report_id}:0"]
    routing.publisher.fail_next(PublishFailed("connection lost", confirmed=confirmed))
    with pytest.raises(PublishFailed):
        route(routing, [first, second])
    records = routing.ledger.records
    assert records[f"{first.report_id}:0"]["delivered_at"] is not None
    assert records[f"{second.report_id}:0"]["delivered_at"] is None and not records[f"{second.report_id}:0"]["claimed"]
    route(routing, [first])
    route(routing, [second])
    announced_again, delivered = routing.publisher.batches
    assert [m.exchange for m in announced_again] == [ROUTING_EVENTS.name]
    assert [m.message_id for m in delivered if m.exchange == OPD_EXCHANGE.name] == [f"{second.report_id}:0"]


def test_a_malformed_body_fails_its_batch_untouched_and_alone_only_itself() -> None:
    routing = Routing()
    good = submitted().to_message()
    malformed = {"event_type": "intake.report_submitted", "report_id": REPORT}
    with pytest.raises(PermanentFailure):
        routing.service.route_reports([good, malformed])
    assert routing.publisher.batches == [] and routing.ledger.records == {}
    routing.service.route_reports([good])
    with pytest.raises(PermanentFailure):
        routing.service.route_reports([malformed])
    assert len(routing.publisher.messages) == 2
