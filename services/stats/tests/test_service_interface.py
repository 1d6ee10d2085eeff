"""StatsService through its entrypoints, with an in-memory projection store: the event handler and the HTTP API,
checked without RabbitMQ or MongoDB (nameko's worker_factory, and a container that is never started)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import replace_dependencies, worker_factory
from werkzeug.wrappers import Response

from jaklapor.messaging import PermanentFailure
from jaklapor.settings import InvalidSettings
from services.stats.domain import apply_event
from services.stats.metrics import EVENTS_APPLIED, EVENTS_DUPLICATE
from services.stats.service import ResponseCache, StatsService
from services.stats.settings import StatsSettings
from services.stats.tests.fakes import InMemoryProjections, http_get, run_entrypoint
from services.stats.tests.story import stories

CONFIG = {"AMQP_URI": "pyamqp://guest:guest@127.0.0.1:1/"}


def folded_store() -> InMemoryProjections:
    store = InMemoryProjections()
    service = worker_factory(StatsService, projections=store, cache=ResponseCache())
    for story in stories():
        for event in story.events:
            service.fold_events([event.to_message()])
    return store


@pytest.fixture
def container() -> Iterator[tuple[ServiceContainer, InMemoryProjections]]:
    store = folded_store()
    container = ServiceContainer(StatsService, CONFIG)
    replace_dependencies(
        container,
        projections=store,
        settings=StatsSettings(stats_min_reports_for_rank=1),
        cache=ResponseCache(fresh=0, idle=0),
        kelurahan_map=b'{"type":"FeatureCollection","features":[]}',
    )
    yield container, store


def body(response: Response) -> Any:
    return json.loads(response.get_data())


# ---- events in ----------------------------------------------------------------------------------------------------


def test_each_event_is_folded_into_its_report_projection_once() -> None:
    store = InMemoryProjections()
    cache = ResponseCache()
    service = worker_factory(StatsService, projections=store, cache=cache)
    story = stories()[1]  # JK-2: koordinasi to another Suku Dinas, then worked and finished
    for event in story.events:
        service.fold_events([event.to_message()])
    assert store.projections["JK-2"]["status"] == "selesai" and store.projections["JK-2"]["koordinasi_count"] == 1
    assert cache.generation == len(story.events)  # each change makes cached answers stale
    before = store.get("JK-2")
    service.fold_events([story.events[2].to_message()])  # redelivered
    assert store.get("JK-2") == before and cache.generation == len(story.events)


def test_a_body_that_is_no_event_is_a_permanent_failure() -> None:
    service = worker_factory(StatsService, projections=InMemoryProjections(), cache=ResponseCache())
    with pytest.raises(PermanentFailure, match="unknown event_type"):
        service.fold_events([{"event_type": "intake.report_commented", "report_id": "JK-1"}])


def test_the_event_handler_runs_as_a_worker_of_the_container(
    container: tuple[ServiceContainer, InMemoryProjections],
) -> None:
    service, store = container
    submitted = stories()[0].events[0].model_copy(update={"report_id": "JK-NEW", "event_id": "new"})
    run_entrypoint(service, "fold_events", [submitted.to_message()])
    assert store.projections["JK-NEW"]["status"] == "menunggu"


ROUTED = "routing.report_routed"


def without_revs(store: InMemoryProjections) -> dict[str, Any]:
    """The projections as the statistics read them (how many writes made them aside)."""
    return {report_id: {**p, "rev": None} for report_id, p in store.projections.items()}


def counted(metric: Any, event_type: str) -> float:
    return metric.labels(event_type)._value.get()


def test_a_batch_folds_each_reports_events_in_order_with_one_write() -> None:
    store = InMemoryProjections()
    cache = ResponseCache()
    service = worker_factory(StatsService, projections=store, cache=cache)
    one, two = stories()[0], stories()[1]
    # two reports' events interleaved, as a backlog delivers them
    bodies = [e.to_message() for pair in zip(one.events, two.events, strict=False) for e in pair]
    bodies += [e.to_message() for e in two.events[len(one.events) :]]
    service.fold_events(bodies)
    assert store.batch_writes == 1 and cache.generation == 1
    alone = folded_one_by_one([*one.events, *two.events])
    assert without_revs(store) == without_revs(alone)


def folded_one_by_one(events: list[Any]) -> InMemoryProjections:
    store = InMemoryProjections()
    service = worker_factory(StatsService, projections=store, cache=ResponseCache())
    for event in events:
        service.fold_events([event.to_message()])
    return store


def test_a_duplicate_within_or_after_a_batch_counts_once() -> None:
    store = InMemoryProjections()
    service = worker_factory(StatsService, projections=store, cache=ResponseCache())
    submitted, routed = stories()[0].events[:2]
    applied = counted(EVENTS_APPLIED, ROUTED), counted(EVENTS_DUPLICATE, ROUTED)
    service.fold_events([submitted.to_message(), routed.to_message(), routed.to_message()])
    assert store.projections["JK-1"]["rev"] == 1 and len(store.projections["JK-1"]["facts"]) == 2
    assert counted(EVENTS_APPLIED, ROUTED) - applied[0] == 1
    assert counted(EVENTS_DUPLICATE, ROUTED) - applied[1] == 1
    before = store.get("JK-1")
    service.fold_events([routed.to_message(), submitted.to_message()])  # the batch redelivered
    assert store.get("JK-1") == before and store.batch_writes == 1
    assert counted(EVENTS_APPLIED, ROUTED) - applied[0] == 1
    assert counted(EVENTS_DUPLICATE, ROUTED) - applied[1] == 2


def test_a_report_another_worker_wrote_meanwhile_is_folded_again_and_counted_once() -> None:
    store = InMemoryProjections()
    cache = ResponseCache()
    service = worker_factory(StatsService, projections=store, cache=cache)
    one, two = stories()[0], stories()[1]
    service.fold_events([one.events[0].to_message(), two.events[0].to_message()])
    # while the batch computes, another worker folds one of the batch's events (a redelivery) and a later one
    racing = [one.events[1], one.events[2]]

    def concurrent_writer() -> None:
        store.between_read_and_write = None
        for event in racing:
            store.update("JK-1", lambda current, event=event: apply_event(current, event))

    store.between_read_and_write = concurrent_writer
    types = {e.event_type for e in [*one.events, *two.events]}
    before = {t: (counted(EVENTS_APPLIED, t), counted(EVENTS_DUPLICATE, t)) for t in types}
    service.fold_events([e.to_message() for e in [*one.events[1:], *two.events[1:]]])
    applied = sum(counted(EVENTS_APPLIED, t) - before[t][0] for t in types)
    duplicate = sum(counted(EVENTS_DUPLICATE, t) - before[t][1] for t in types)
    assert without_revs(store) == without_revs(folded_one_by_one([*one.events, *two.events]))
    assert store.projections["JK-1"]["rev"] == 1 + len(racing) + 1  # the racing worker's writes, then ours
    # the racing worker applied two of the batch's events: here they are duplicates, everything else applied once
    assert (applied, duplicate) == (len(one.events) - 1 - len(racing) + len(two.events) - 1, len(racing))


def test_a_malformed_body_fails_the_batch_before_anything_is_written() -> None:
    store = InMemoryProjections()
    service = worker_factory(StatsService, projections=store, cache=ResponseCache())
    good = stories()[0].events[0].to_message()
    with pytest.raises(PermanentFailure):
        service.fold_events([good, {"event_type": "intake.report_submitted", "report_id": "JK-9"}])
    assert store.projections == {}
    service.fold_events([good])  # handled alone, as the batch consumer retries it
    assert store.projections["JK-1"]["status"] == "menunggu"


# ---- statistics API -----------------------------------------------------------------------------------------------


def test_summary_counts_every_folded_report(container: tuple[ServiceContainer, InMemoryProjections]) -> None:
    service, _store = container
    response = http_get(service, "summary", "/api/v1/stats/summary")
    assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
    summary = body(response)
    assert summary["total"] == len(stories())
    counts = {status: row["count"] for status, row in summary["by_status"].items()}
    assert counts["selesai"] == 3 and counts["ditolak"] == 1 and counts["koordinasi"] == 1
    assert summary["filters"]["kota"] is None


def test_filters_select_reports_and_a_bad_one_is_a_400_naming_it(
    container: tuple[ServiceContainer, InMemoryProjections],
) -> None:
    service, _store = container
    filtered = body(http_get(service, "summary", "/api/v1/stats/summary?category=penanganan-banjir"))
    assert filtered["total"] == 2 and filtered["filters"]["category"] == "penanganan-banjir"
    refused = http_get(service, "summary", "/api/v1/stats/summary?kota=atlantis")
    assert refused.status_code == 400
    assert body(refused)["error"]["code"] == "invalid_query" and body(refused)["error"]["field"] == "kota"


def test_breakdowns_exist_only_for_known_dimensions(container: tuple[ServiceContainer, InMemoryProjections]) -> None:
    service, _store = container
    by_opd = body(http_get(service, "by_dimension", "/api/v1/stats/by/opd", "opd"))
    assert sum(row["total"] for row in by_opd["rows"]) == len(stories())
    missing = http_get(service, "by_dimension", "/api/v1/stats/by/planet", "planet")
    assert missing.status_code == 404 and body(missing)["error"]["code"] == "unknown_dimension"


def test_agencies_rank_from_the_configured_minimum(container: tuple[ServiceContainer, InMemoryProjections]) -> None:
    service, _store = container
    agencies = body(http_get(service, "agencies", "/api/v1/stats/agencies"))
    assert agencies["min_reports_default"] == 1 and agencies["total"] == len(stories())
    assert agencies["ranked"], "with a minimum of 1 report every agency with one is ranked"


def test_one_agencys_figures_are_its_row_of_the_public_table(
    container: tuple[ServiceContainer, InMemoryProjections],
) -> None:
    service, _store = container
    table = body(http_get(service, "agencies", "/api/v1/stats/agencies"))
    row = table["ranked"][-1]
    response = http_get(service, "agencies", f"/api/v1/stats/agencies?opd={row['opd']}")
    assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
    own = body(response)
    assert own["agency"] == row and own["ranked"] == [row] and own["unranked"] == []
    assert own["filters"]["opd"] == row["opd"]
    quiet = body(http_get(service, "agencies", "/api/v1/stats/agencies?opd=kelurahan-gambir"))
    assert (quiet["agency"], quiet["ranked"], quiet["unranked"]) == (None, [], [])
    refused = http_get(service, "agencies", "/api/v1/stats/agencies?opd=dinas-atlantis")
    assert refused.status_code == 400 and body(refused)["error"]["field"] == "opd"
    assert refused.headers["Access-Control-Allow-Origin"] == "*"


def test_the_map_and_the_dashboard_are_served(container: tuple[ServiceContainer, InMemoryProjections]) -> None:
    service, _store = container
    geojson = http_get(service, "kelurahan_geojson", "/api/v1/stats/map/kelurahan.geojson")
    assert geojson.content_type == "application/geo+json" and body(geojson)["type"] == "FeatureCollection"
    dashboard = http_get(service, "dashboard", "/dashboard")
    assert dashboard.status_code == 200 and "default-src 'self'" in dashboard.headers["Content-Security-Policy"]


# ---- settings -------------------------------------------------------------------------------------------------------


def test_settings_are_read_from_the_config_with_their_defaults() -> None:
    assert StatsSettings.from_config({}).stats_min_reports_for_rank == 20
    assert StatsSettings.from_config({"STATS_MIN_REPORTS_FOR_RANK": ""}).stats_min_reports_for_rank == 20
    assert StatsSettings.from_config({"STATS_MIN_REPORTS_FOR_RANK": "0"}).stats_min_reports_for_rank == 1
    with pytest.raises(InvalidSettings, match="STATS_MIN_REPORTS_FOR_RANK"):
        StatsSettings.from_config({"STATS_MIN_REPORTS_FOR_RANK": "many"})
    with pytest.raises(InvalidSettings, match="RESPONSE_DEADLINE_SECONDS"):
        StatsSettings.from_config({"RESPONSE_DEADLINE_SECONDS": "soon"})


def test_the_deadline_rule_follows_the_configured_override() -> None:
    story = stories()[0]
    routed_at = story.events[1].occurred_at
    default = StatsSettings.from_config({}).deadline_rule()
    tight = StatsSettings.from_config({"RESPONSE_DEADLINE_SECONDS": "60"}).deadline_rule()
    assert (default("jalan", routed_at) - routed_at).days == 3
    assert (tight("jalan", routed_at) - routed_at).total_seconds() == 60
