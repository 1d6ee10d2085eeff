"""Routing suggests likely duplicates (services/routing/duplicates.py): earlier reports of the same category within
the radius and the window, from its own index fed by the submissions it routes; on the OPD message and report_routed."""

from __future__ import annotations

from datetime import timedelta

from nameko.testing.services import worker_factory

from jaklapor.events import Location, OpdMessage, ReportRouted
from services.routing.duplicates import DuplicateTerms, distance_m, index_entry, likely_duplicates, search_for
from services.routing.service import RoutingService
from services.routing.settings import RoutingSettings
from services.routing.tests.fakes import FakeLedger, FakePublisher, FakeRecentReports, ReferenceData, incident_store
from services.routing.tests.reports import BLOK_M, SUBMITTED_AT, submitted

REFERENCE = ReferenceData()
TERMS = DuplicateTerms()


def near(metres_north: float) -> Location:
    return Location(lat=BLOK_M.lat + metres_north / 111_195.0, lon=BLOK_M.lon)


def test_within_the_radius_nearest_first_the_report_itself_left_out() -> None:
    candidates = [
        index_entry("JK-A", "sampah", near(140).lat, near(140).lon, SUBMITTED_AT, TERMS),
        index_entry("JK-B", "sampah", near(20).lat, near(20).lon, SUBMITTED_AT, TERMS),
        index_entry("JK-C", "sampah", near(160).lat, near(160).lon, SUBMITTED_AT, TERMS),
        index_entry("JK-SELF", "sampah", BLOK_M.lat, BLOK_M.lon, SUBMITTED_AT, TERMS),
    ]
    assert likely_duplicates(candidates, "JK-SELF", BLOK_M.lat, BLOK_M.lon, TERMS) == ["JK-B", "JK-A"]
    assert 139 < distance_m(BLOK_M.lat, BLOK_M.lon, near(140).lat, near(140).lon) < 141


def test_the_search_box_holds_the_circle_and_the_window_looks_back_only() -> None:
    search = search_for("sampah", BLOK_M.lat, BLOK_M.lon, SUBMITTED_AT, TERMS)
    assert search.min_lat < near(-150).lat and search.max_lat > near(150).lat
    assert search.since == SUBMITTED_AT - timedelta(days=7) and search.until == SUBMITTED_AT
    assert index_entry("JK-A", "sampah", 0, 0, SUBMITTED_AT, TERMS)["expires_at"] == SUBMITTED_AT + timedelta(days=7)


class Routing:
    def __init__(self) -> None:
        self.publisher = FakePublisher()
        self.recent = FakeRecentReports()
        self.service = worker_factory(
            RoutingService,
            settings=RoutingSettings(public_url="https://lapor.example"),
            data=REFERENCE,
            ledger=FakeLedger(),
            publisher=self.publisher,
            recent=self.recent,
            incidents=incident_store(),
        )

    def route(self, event: object) -> tuple[ReportRouted, OpdMessage]:
        self.service.route_reports([event.to_message()])  # type: ignore[attr-defined]
        announced, assigned = self.publisher.batches[-1]
        return ReportRouted.model_validate(announced.body), OpdMessage.model_validate(assigned.body)


def test_a_second_report_of_the_spot_names_the_first_on_its_opd_message_and_routed_event() -> None:
    routing = Routing()
    first, first_message = routing.route(submitted(report_id="JK-20261128-000001"))
    assert first.possible_duplicates == [] and first_message.possible_duplicates == []
    other_category, _ = routing.route(submitted(category="jalan", location=near(10), report_id="JK-20261128-000002"))
    far_away, _ = routing.route(submitted(location=near(2000), report_id="JK-20261128-000003"))
    second, second_message = routing.route(submitted(location=near(60), report_id="JK-20261128-000004"))
    assert other_category.possible_duplicates == [] and far_away.possible_duplicates == []
    assert second.possible_duplicates == ["JK-20261128-000001"] == second_message.possible_duplicates
    # the suggestion is part of the decision: a redelivery repeats it as recorded
    routing.service.route_reports([submitted(location=near(60), report_id="JK-20261128-000004").to_message()])
    assert routing.publisher.batches[-1][0].body["possible_duplicates"] == ["JK-20261128-000001"]
    assert set(routing.recent.reports) == {f"JK-20261128-00000{n}" for n in range(1, 5)}


def test_an_older_consumer_reads_the_opd_message_without_the_new_field() -> None:
    routing = Routing()
    routing.route(submitted(report_id="JK-20261128-000001"))
    _, message = routing.route(submitted(location=near(30), report_id="JK-20261128-000002"))
    body = message.model_dump(mode="json")
    body.pop("possible_duplicates")
    assert OpdMessage.model_validate(body).possible_duplicates == []


def test_a_report_of_a_batch_sees_the_earlier_ones_of_the_batch_and_the_index_is_asked_once() -> None:
    routing = Routing()
    routing.route(submitted(location=near(100), report_id="JK-20261128-000001"))
    batch = [
        submitted(location=near(0), report_id="JK-20261128-000002"),
        submitted(location=near(30), report_id="JK-20261128-000003"),
        submitted("jalan", near(10), report_id="JK-20261128-000004"),  # another category
        submitted(location=near(-400), report_id="JK-20261128-000005"),  # too far
    ]
    queries, writes = routing.recent.queries, routing.recent.writes
    routing.service.route_reports([event.to_message() for event in batch])  # type: ignore[attr-defined]
    assert (routing.recent.queries, routing.recent.writes) == (queries + 1, writes + 1)
    routed = [m.body for m in routing.publisher.batches[-1] if m.routing_key == "report_routed"]
    assert [r["possible_duplicates"] for r in routed] == [
        ["JK-20261128-000001"],
        ["JK-20261128-000002", "JK-20261128-000001"],  # nearest first; the earlier one of its batch included
        [],
        [],
    ]
    assert len(routing.recent.reports) == 5
