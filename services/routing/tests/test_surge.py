"""Surges grouped into incidents: the rules (surge.py), routing's incident store on mongomock (incidents.py), and the
routing entrypoint with worker_factory: a burst beyond the threshold becomes one incident message plus coalesced
updates, members are announced with their incident, normal reports elsewhere go on their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from nameko.testing.services import worker_factory

from jaklapor.events import IncidentMessage, Location, OpdRef, ReportSubmitted
from jaklapor.messaging import OPD_EXCHANGE
from services.routing.service import RoutingService
from services.routing.settings import RoutingSettings
from services.routing.surge import SurgeRule, kecamatan_code, surge_key
from services.routing.tests.fakes import FakeLedger, FakePublisher, FakeRecentReports, ReferenceData, incident_store
from services.routing.tests.reports import BLOK_M, MELAWAI, submitted

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
REFERENCE = ReferenceData()
MONAS = Location(lat=-6.175392, lon=106.827153)


# ---- the rules ------------------------------------------------------------------------------------------------------


def test_the_threshold_counts_the_new_report_and_zero_switches_grouping_off() -> None:
    rule = SurgeRule(min_reports=3)
    assert not rule.opens(2) and rule.opens(3) and rule.opens(40)
    assert not SurgeRule(min_reports=0).opens(1000) and not SurgeRule(min_reports=0).enabled


def test_an_incident_takes_members_until_it_is_quiet_for_the_quiet_period() -> None:
    rule = SurgeRule(quiet_seconds=600)
    assert rule.still_active(T0, T0 + timedelta(seconds=600))
    assert not rule.still_active(T0, T0 + timedelta(seconds=601))


def test_updates_are_coalesced_by_time_or_by_number_waiting() -> None:
    rule = SurgeRule(update_seconds=60, update_members=50)
    assert rule.update_due(1, None, T0)  # the first message at once
    assert not rule.update_due(0, None, T0)  # nothing new: nothing to send
    assert not rule.update_due(10, T0, T0 + timedelta(seconds=59))
    assert rule.update_due(10, T0, T0 + timedelta(seconds=60))
    assert rule.update_due(50, T0, T0 + timedelta(seconds=1))


def test_the_key_is_opd_category_and_kecamatan() -> None:
    assert kecamatan_code(MELAWAI) == "31.74.07"
    assert surge_key("sudin-sda-jakarta-selatan", "penanganan-banjir", MELAWAI) == (
        "sudin-sda-jakarta-selatan|penanganan-banjir|31.74.07"
    )


# ---- the store ------------------------------------------------------------------------------------------------------

OPD = OpdRef(code="kelurahan-melawai", name="Kelurahan Melawai", level="kelurahan")


def observe(store: Any, report_id: str, at: datetime, rule: SurgeRule, key: str = "k") -> Any:
    return store.observe(
        report_id=report_id,
        version=1,
        key=key,
        routing_key="kelurahan-melawai.jakarta-selatan.kebayoran-baru.incident",
        opd=OPD,
        category="sampah",
        area=MELAWAI,
        member={"report_id": report_id},
        rule=rule,
        now=at,
    )


def test_the_threshold_within_the_window_opens_one_incident_listing_the_earlier_reports() -> None:
    store, rule = incident_store(), SurgeRule(min_reports=3, window_seconds=600)
    assert observe(store, "old", T0 - timedelta(seconds=601), rule) is None  # outside the window when r3 comes
    assert observe(store, "r1", T0, rule) is None
    assert observe(store, "r2", T0 + timedelta(seconds=1), rule) is None
    opened = observe(store, "r3", T0 + timedelta(seconds=2), rule)
    assert opened.opened and [m["report_id"] for m in opened.early_members] == ["r1", "r2"]
    joined = observe(store, "r4", T0 + timedelta(seconds=3), rule)
    assert joined.incident_id == opened.incident_id and not joined.opened
    # a redelivery joins once; another key is counted apart
    assert observe(store, "r4", T0 + timedelta(seconds=4), rule).incident_id == opened.incident_id
    assert observe(store, "x1", T0 + timedelta(seconds=4), rule, key="other") is None
    assert store.members.count_documents({"incident_id": opened.incident_id}) == 4


def test_a_quiet_incident_takes_no_more_members_and_a_new_surge_opens_another() -> None:
    store, rule = incident_store(), SurgeRule(min_reports=2, window_seconds=60, quiet_seconds=60)
    observe(store, "a1", T0, rule)
    first = observe(store, "a2", T0, rule).incident_id
    later = T0 + timedelta(hours=2)
    assert observe(store, "b1", later, rule) is None  # alone in its window: delivered on its own
    second = observe(store, "b2", later, rule)
    assert second.opened and second.incident_id != first


def test_messages_are_claimed_once_and_pending_members_are_sent_once() -> None:
    store, rule = incident_store(), SurgeRule(min_reports=2, update_seconds=60, update_members=3)
    observe(store, "r1", T0, rule)
    incident_id = observe(store, "r2", T0, rule).incident_id
    claim = store.claim_update(incident_id, rule, T0)
    assert claim.first and claim.member_ids == ["r1", "r2"] and claim.total == 2
    assert store.claim_update(incident_id, rule, T0) is None  # leased by the first sender
    store.sent(claim, T0)
    observe(store, "r3", T0 + timedelta(seconds=1), rule)
    assert store.claim_update(incident_id, rule, T0 + timedelta(seconds=1)) is None  # one waiting, 59 s to go
    for n in (4, 5):
        observe(store, f"r{n}", T0 + timedelta(seconds=2), rule)
    claim = store.claim_update(incident_id, rule, T0 + timedelta(seconds=2))  # three waiting: sooner
    assert not claim.first and claim.member_ids == ["r3", "r4", "r5"] and claim.total == 5


# ---- the entrypoint -------------------------------------------------------------------------------------------------


class Routing:
    def __init__(self, **rule: Any) -> None:
        self.ledger = FakeLedger()
        self.publisher = FakePublisher()
        self.incidents = incident_store()
        settings = RoutingSettings(public_url="https://lapor.example", **rule)
        self.service = worker_factory(
            RoutingService,
            settings=settings,
            data=REFERENCE,
            ledger=self.ledger,
            publisher=self.publisher,
            incidents=self.incidents,
            recent=FakeRecentReports(),
        )

    def deliver(self, event: ReportSubmitted) -> None:
        self.service.route_reports([event.to_message()])

    def opd_messages(self) -> list[dict[str, Any]]:
        return [m.body for m in self.publisher.messages if m.exchange == OPD_EXCHANGE.name]

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [m.body for m in self.publisher.messages if m.routing_key == kind]


def burst(n: int, location: Location = BLOK_M, prefix: str = "F") -> list[ReportSubmitted]:
    return [submitted("penanganan-banjir", location, report_id=f"{prefix}-{i:04d}") for i in range(n)]


def test_a_burst_becomes_one_incident_message_and_coalesced_updates() -> None:
    routing = Routing(surge_min_reports=3, incident_update_seconds=3600, incident_update_members=10)
    for event in burst(25):
        routing.deliver(event)
    messages = routing.opd_messages()
    individual = [m for m in messages if m["message_type"] == "report_assigned"]
    incident = [IncidentMessage.model_validate(m) for m in messages if m["message_type"] != "report_assigned"]
    assert [m["report_id"] for m in individual] == ["F-0000", "F-0001"]  # before the threshold tripped
    assert [m.message_type for m in incident] == ["incident_opened", "incident_updated", "incident_updated"]
    opened = incident[0]
    assert opened.member_count == 3 and [m.delivered_individually for m in opened.members] == [True, True, False]
    assert [m.member_count for m in incident] == [3, 13, 23]  # one update per 10 new members, none per report
    assert opened.category == "penanganan-banjir" and opened.kecamatan == "Kebayoran Baru"
    assert opened.transitions_url == f"https://lapor.example/api/v1/opd/incidents/{opened.incident_id}/transitions"
    routed = routing.events("report_routed")
    assert len(routed) == 25 and all(r["incident_id"] == opened.incident_id for r in routed[2:])
    assert routed[0].get("incident_id") is None  # delivered on its own; it joins by report_joined_incident
    joined = routing.events("report_joined_incident")
    assert [j["report_id"] for j in joined] == ["F-0000", "F-0001"]
    assert all(j["incident_id"] == opened.incident_id for j in joined)
    # the two members still waiting are sent by the flush timer once their interval passed
    later = datetime.now(UTC) + timedelta(hours=2)
    with mock.patch("services.routing.surge_delivery.utcnow", return_value=later):
        routing.service.flush_incidents()
    last = IncidentMessage.model_validate(routing.opd_messages()[-1])
    assert last.member_count == 25 and [m.report_id for m in last.members] == ["F-0023", "F-0024"]


def test_normal_reports_elsewhere_are_delivered_on_their_own_during_a_surge() -> None:
    routing = Routing(surge_min_reports=3)
    for event in burst(5):
        routing.deliver(event)
    routing.deliver(submitted("jalan", MONAS, report_id="N-1"))
    routing.deliver(submitted("sampah", BLOK_M, report_id="N-2"))  # same kecamatan, another category
    assigned = [m["report_id"] for m in routing.opd_messages() if m["message_type"] == "report_assigned"]
    assert assigned[-2:] == ["N-1", "N-2"]


def test_a_redelivered_member_is_announced_again_and_joins_once() -> None:
    routing = Routing(surge_min_reports=2, incident_update_seconds=3600)
    events = burst(3)
    for event in events:
        routing.deliver(event)
    before = len(routing.opd_messages())
    routing.deliver(events[2])
    assert len(routing.opd_messages()) == before
    assert routing.events("report_routed")[-1] == routing.events("report_routed")[2]
    assert routing.incidents.members.count_documents({}) == 3


def test_grouping_switched_off_delivers_every_report_on_its_own() -> None:
    routing = Routing(surge_min_reports=0)
    for event in burst(12):
        routing.deliver(event)
    assert [m["message_type"] for m in routing.opd_messages()] == ["report_assigned"] * 12


def test_a_burst_in_batches_is_grouped_as_it_is_report_by_report() -> None:
    def outcome(batch_size: int) -> tuple[Any, ...]:
        routing = Routing(surge_min_reports=4, incident_update_seconds=3600, incident_update_members=5)
        events = [*burst(9), submitted("jalan", MONAS, report_id="N-1"), *burst(6, prefix="G")]
        for start in range(0, len(events), batch_size):
            routing.service.route_reports([e.to_message() for e in events[start : start + batch_size]])
        with mock.patch("services.routing.surge_delivery.utcnow", return_value=datetime.now(UTC) + timedelta(hours=2)):
            routing.service.flush_incidents()
        messages = routing.opd_messages()
        incident = [m for m in messages if m["message_type"] != "report_assigned"]
        return (
            [m["report_id"] for m in messages if m["message_type"] == "report_assigned"],
            incident[0]["message_type"],
            [x["report_id"] for m in incident for x in m["members"]],
            # a batch announces its reports delivered alone before its incident members
            sorted((r["report_id"], r.get("incident_id") is not None) for r in routing.events("report_routed")),
            [j["report_id"] for j in routing.events("report_joined_incident")],
        )

    one_by_one = outcome(1)
    assert one_by_one[0] == ["F-0000", "F-0001", "F-0002", "N-1"]
    assert one_by_one[2] == [e.report_id for e in [*burst(9), *burst(6, prefix="G")]]
    # a batch's members join before the first of them announces the incident: an update may carry more of them
    # (never sooner than update_seconds or update_members allow), so only who is told of what, in order, is compared
    for batch_size in (2, 5, 16):
        assert outcome(batch_size) == one_by_one, batch_size
