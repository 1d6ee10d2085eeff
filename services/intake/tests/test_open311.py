"""Open311 (open311.py, open311_xml.py, open311_api.py) and the visibility rule (visibility.py): the rules with no
I/O, and the entrypoints through `worker_factory` over a real ReportRepository on mongomock, in milliseconds."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import mongomock
import pytest
from nameko.testing.services import worker_factory
from pymongo.errors import ServerSelectionTimeoutError
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from jaklapor.contacts import decrypt_contact, generate_key
from jaklapor.live import LiveHub
from jaklapor.reference import load_areas, load_categories, load_directory, load_kelurahan_geojson, parse_categories
from services.intake.dependencies import ReportRepository
from services.intake.open311 import (
    MAX_RANGE,
    OPEN311_STATUSES,
    Open311Error,
    plan_requests,
    service_list,
    w3c,
)
from services.intake.open311_xml import xml_document
from services.intake.photos import sanitize_photo
from services.intake.public_documents import reference_documents
from services.intake.public_reports import PublicFilter, mongo_filter
from services.intake.ratelimit import FailureThrottle, RateLimiter
from services.intake.service import IntakeService
from services.intake.settings import IntakeSettings
from services.intake.tests.fakes import FakePhotoStorage, FakeRelay, FakeSessionStore
from services.intake.visibility import for_public, private_category_codes, published_location
from tests import photo_fixtures as fx

CATEGORIES = load_categories()
SETTINGS = IntakeSettings(
    public_url="https://lapor.example/",
    opd_key_secret="s",
    token_secret="t",
    contact_key=generate_key(),
)
REFERENCE = SimpleNamespace(
    categories=CATEGORIES,
    directory=load_directory(),
    documents=reference_documents(load_areas(), load_kelurahan_geojson()),
)


def make_service(settings: IntakeSettings = SETTINGS, limiter: RateLimiter | None = None) -> Any:
    return worker_factory(
        IntakeService,
        settings=settings,
        store=ReportRepository(mongomock.MongoClient(tz_aware=True)["intake"]),
        photos=FakePhotoStorage(),
        photo_cleaner=sanitize_photo,
        relay=FakeRelay(),
        reference=REFERENCE,
        limiter=limiter or RateLimiter(burst=1000, per_minute=1000),
        sessions=FakeSessionStore(),
        key_throttle=FailureThrottle(),
        opd_streams=LiveHub(max_per_key=2),
    )


@pytest.fixture
def service() -> Any:
    return make_service()


def post(path: str, fields: dict[str, Any], media: bytes | None = None) -> Request:
    data: dict[str, Any] = dict(fields)
    if media is not None:
        data["media"] = (io.BytesIO(media), "m.jpg", "image/jpeg")
    return EnvironBuilder(method="POST", path=path, data=data).get_request()


def get(path: str, query: dict[str, Any] | None = None) -> Request:
    return EnvironBuilder(method="GET", path=path, query_string=query).get_request()


def as_json(response: Response) -> Any:
    return json.loads(response.get_data())


FIELDS = {
    "service_code": "jalan",
    "lat": "-6.2441",
    "long": "106.8013",
    "description": "Jalan berlubang",
    "email": "Warga@Example.ORG",
    "first_name": "Siti",
    "last_name": "Rahayu",
}


def create(service: Any, fmt: str = "json", **extra: Any) -> Response:
    return service.open311_create_request(post(f"/open311/v2/requests.{fmt}", {**FIELDS, **extra}), fmt)


# ---- the entrypoints -------------------------------------------------------------------------------------------------


def test_post_stores_the_report_and_sends_contact_and_name_only_to_notify(service: Any) -> None:
    response = create(service)
    assert response.status_code == 201
    (receipt,) = as_json(response)
    report = service.store.reports.find_one({"_id": receipt["service_request_id"]})
    assert report["category"] == "jalan" and report["location"] == {"lat": -6.2441, "lon": 106.8013}
    (contact,) = [entry for entry in report["outbox"] if "contact_ciphertext" in entry["body"]]
    # the names and the address are in the encrypted hand-over only
    stored = json.dumps(report, default=str).replace(contact["body"]["contact_ciphertext"], "")
    assert "Siti" not in stored and "Rahayu" not in stored and "example" not in stored.lower()
    bundle = json.loads(decrypt_contact(SETTINGS.contact_key, contact["body"]["contact_ciphertext"]))
    assert bundle["contact"] == "Warga@example.org" and bundle["name"] == "Siti Rahayu"
    (listed,) = as_json(
        service.open311_request(
            get(f"/open311/v2/requests/{receipt['service_request_id']}.json"), receipt["service_request_id"], "json"
        )
    )
    assert "Siti" not in json.dumps(listed) and "example.org" not in json.dumps(listed)


def test_post_with_media_stores_the_sanitised_photo(service: Any) -> None:
    response = service.open311_create_request(
        post("/open311/v2/requests.xml", FIELDS, media=fx.jpeg_with_gps(-6.2441, 106.8013)), "xml"
    )
    assert response.status_code == 201, response.get_data()
    report_id = ET.fromstring(response.get_data()).findtext("request/service_request_id")
    (request,) = as_json(service.open311_request(get("/"), report_id, "json"))
    assert request["media_url"].startswith("https://lapor.example/api/v1/photos/")


def test_api_keys_when_configured_are_required(service: Any) -> None:
    keyed = make_service(SETTINGS.model_copy(update={"open311_api_keys": "key-one, key-two"}))
    for given in ({}, {"api_key": "wrong"}):
        response = create(keyed, "xml", **given)
        assert response.status_code == 403
        assert ET.fromstring(response.get_data()).findtext("error/code") == "403"
    assert create(keyed, api_key="key-two").status_code == 201
    # without configured keys the channel is anonymous, as the native API: a key sent is not checked
    assert create(service, api_key="anything").status_code == 201


def test_the_rate_limit_answers_in_the_spec_format() -> None:
    limited = make_service(limiter=RateLimiter(burst=1, per_minute=1))
    assert create(limited).status_code == 201
    response = create(limited)
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    (error,) = as_json(response)
    assert error["code"] == 429 and "too many reports" in error["description"]


def test_media_url_is_refused_before_anything_is_stored(service: Any) -> None:
    response = create(service, media_url="https://example.org/p.jpg")
    assert response.status_code == 400 and "media_url" in as_json(response)[0]["description"]
    assert service.store.reports.count_documents({}) == 0
    assert create(service, media_url="").status_code == 201  # an empty field is no URL


def test_hostile_text_is_escaped_in_xml(service: Any) -> None:
    description = "</description><script>alert(1)</script>&amp; ]]> \u202e"
    (receipt,) = as_json(create(service, description=description))
    body = service.open311_request(get("/"), receipt["service_request_id"], "xml").get_data()
    assert b"<script>" not in body
    assert ET.fromstring(body).findtext("request/description") == description


def test_private_and_rounded_reports_in_lists(service: Any) -> None:
    (public,) = as_json(create(service))
    (private,) = as_json(create(service, service_code="kependudukan"))
    (noisy,) = as_json(create(service, service_code="gangguan-dan-kebisingan", lat="-6.24419", long="106.80136"))
    listed = as_json(service.open311_requests(get("/open311/v2/requests.json"), "json"))
    ids = [request["service_request_id"] for request in listed]
    assert public["service_request_id"] in ids and private["service_request_id"] not in ids
    noisy_view = next(request for request in listed if request["service_request_id"] == noisy["service_request_id"])
    assert (noisy_view["lat"], noisy_view["long"]) == (-6.244, 106.801)
    missing = service.open311_request(get("/"), private["service_request_id"], "json")
    assert missing.status_code == 404
    # the token's holder finds the private report's number
    token = service.open311_token(get("/"), private["token"], "json")
    assert as_json(token) == [{"service_request_id": private["service_request_id"], "token": private["token"]}]
    # the native public view and nearby apply the same rule
    with pytest.raises(Exception, match="no report"):
        service.public_report(get("/"), private["service_request_id"])
    near = as_json(service.nearby_reports(get("/api/v1/reports/nearby", {"lat": -6.2441, "lon": 106.8013})))
    near_ids = [item["report_id"] for item in near["reports"]]
    assert private["service_request_id"] not in near_ids and public["service_request_id"] in near_ids
    assert next(r for r in near["reports"] if r["report_id"] == noisy["service_request_id"])["location"] == {
        "lat": -6.244,
        "lon": 106.801,
    }


def test_discovery_and_services_in_both_formats(service: Any) -> None:
    document = as_json(service.open311_discovery(get("/"), "json"))
    assert document["endpoints"][0]["url"] == "https://lapor.example/open311/v2"
    assert document["endpoints"][0]["formats"] == ["text/xml", "application/json"]
    xml = ET.fromstring(service.open311_v2_discovery(get("/"), "xml").get_data())
    assert [f.text for f in xml.findall("endpoints/endpoint/formats/format")] == ["text/xml", "application/json"]
    services = ET.fromstring(service.open311_services(get("/"), "xml").get_data())
    assert len(services.findall("service")) == len(CATEGORIES)
    definition = as_json(service.open311_service_definition(get("/"), "jalan", "json"))
    assert definition == {"service_code": "jalan", "attributes": []}


# ---- the rules -------------------------------------------------------------------------------------------------------


def test_service_request_id_overrides_the_other_filters() -> None:
    plan = plan_requests(
        {"service_request_id": ["JK-20261127-000001,JK-20261127-000002"], "status": ["closed"]}, CATEGORIES
    )
    assert plan.filter == PublicFilter(report_ids=["JK-20261127-000001", "JK-20261127-000002"])


@pytest.mark.parametrize(
    "args",
    [
        {"start_date": ["0001-01-01T00:00:00+07:00"]},
        {"end_date": ["0001-01-01T05:00:00+07:00"]},  # its default start, 90 days before, is no date
        {"end_date": ["9999-12-31T23:00:00-07:00"]},
    ],
)
def test_dates_beyond_what_a_report_can_have_are_refused_by_name(args: dict[str, list[str]]) -> None:
    # found by the fuzzer: these overflowed while the answer was written (a 500)
    with pytest.raises(Open311Error) as refused:
        plan_requests(args, CATEGORIES)
    assert refused.value.args and next(iter(args)) in str(refused.value)


def test_an_open_data_date_filter_beyond_the_calendar_is_a_400_naming_it() -> None:
    from jaklapor.web import ApiError
    from services.intake.open_data import export_filter

    for field, day in (("start_date", "0001-01-01"), ("end_date", "9999-12-31")):
        with pytest.raises(ApiError) as refused:
            export_filter({field: [day]}, CATEGORIES)
        assert refused.value.status == 400 and refused.value.field == field


def test_dates_default_to_the_last_90_days_and_span_at_most_90() -> None:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    plan = plan_requests({}, CATEGORIES, now)
    assert (plan.filter.submitted_from, plan.filter.submitted_until) == (now - MAX_RANGE, now)
    start = plan_requests({"start_date": ["2026-01-01T00:00:00+07:00"]}, CATEGORIES, now).filter
    assert start.submitted_until - start.submitted_from == MAX_RANGE  # type: ignore[operator]
    with pytest.raises(Open311Error, match="90 days"):
        plan_requests({"start_date": ["2026-01-01T00:00:00Z"], "end_date": ["2026-04-02T00:00:00Z"]}, CATEGORIES)
    with pytest.raises(Open311Error, match="before"):
        plan_requests({"start_date": ["2026-02-01T00:00:00Z"], "end_date": ["2026-01-01T00:00:00Z"]}, CATEGORIES)


def test_status_and_service_code_lists() -> None:
    plan = plan_requests({"status": ["open"], "service_code": ["jalan,trotoar"]}, CATEGORIES)
    assert plan.filter.statuses == list(OPEN311_STATUSES["open"])
    assert plan.filter.categories == ["jalan", "trotoar"]
    assert plan_requests({"status": ["selesai,ditolak"]}, CATEGORIES).filter.statuses == ["selesai", "ditolak"]
    with pytest.raises(Open311Error, match="more than once"):
        plan_requests({"status": ["open", "closed"]}, CATEGORIES)


def test_the_store_query_never_reaches_private_categories() -> None:
    query = mongo_filter(PublicFilter(categories=["jalan", "pmks-bantuan-sosial"]), CATEGORIES)
    assert query["category"] == {"$in": ["jalan"]}
    everything = mongo_filter(PublicFilter(), CATEGORIES)["category"]["$in"]
    assert not set(everything) & set(private_category_codes(CATEGORIES))
    assert {"pmks-bantuan-sosial", "kependudukan", "tenaga-kerja"} <= set(private_category_codes(CATEGORIES))


def test_w3c_date_times_carry_jakarta_offset() -> None:
    assert w3c(datetime(2026, 12, 3, 1, 2, 3, tzinfo=UTC)) == "2026-12-03T08:02:03+07:00"
    assert w3c(datetime(2026, 12, 3, 1, 2, 3)) == "2026-12-03T08:02:03+07:00"  # naive from the store is UTC
    assert w3c(None) is None


def test_xml_drops_what_xml_cannot_carry() -> None:
    body = xml_document("service_requests", [{"description": "a\x00b\x1bc\ufffed", "flag": True, "none": None}])
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    item = ET.fromstring(body).find("request")
    assert item is not None
    assert [item.findtext("description"), item.findtext("flag"), item.findtext("none")] == ["abcd", "true", ""]


def test_services_list_every_category_with_its_group() -> None:
    services = service_list(CATEGORIES)
    assert [s["service_code"] for s in services] == list(CATEGORIES)
    assert all(s["metadata"] is False and s["type"] == "realtime" and s["group"] for s in services)


def test_published_location_and_for_public() -> None:
    point = {"lat": -6.1234567, "lon": 106.8876543}
    assert published_location(point, CATEGORIES["jalan"]) == point
    assert published_location(point, CATEGORIES["gangguan-dan-kebisingan"]) == {"lat": -6.123, "lon": 106.888}
    assert published_location(point, None) == {"lat": -6.123, "lon": 106.888}  # unknown: the cautious rule
    assert for_public({"category": "kependudukan", "location": point}, CATEGORIES) is None
    assert for_public({"category": "gone-category", "location": point}, CATEGORIES) is None


def test_category_visibility_and_precision_are_checked() -> None:
    base = {
        "groups": [{"name": "G", "name_en": "G"}],
        "categories": [
            {"code": "a", "name": "A", "name_en": "A", "description": "d", "evidence": "data", "group": "G"}
        ],
    }
    (plain,) = parse_categories(base).values()
    assert plain.is_public and plain.public_decimals is None
    entry = {**base["categories"][0], "visibility": "private", "location_precision": 3}  # type: ignore[index]
    (private,) = parse_categories({**base, "categories": [entry]}).values()
    assert not private.is_public and private.public_decimals == 3
    with pytest.raises(ValueError, match="visibility"):
        parse_categories({**base, "categories": [{**entry, "visibility": "secret"}]})
    with pytest.raises(ValueError, match="location_precision"):
        parse_categories({**base, "categories": [{**entry, "location_precision": 5}]})


def test_expected_datetime_is_the_deadline(service: Any) -> None:
    (receipt,) = as_json(create(service))
    deadline = datetime.now(UTC) + timedelta(days=3)
    service.store.reports.update_one({"_id": receipt["service_request_id"]}, {"$set": {"response_deadline": deadline}})
    (request,) = as_json(service.open311_request(get("/"), receipt["service_request_id"], "json"))
    assert datetime.fromisoformat(request["expected_datetime"]) == deadline.replace(microsecond=0)


def test_a_store_outage_is_the_spec_s_503(service: Any) -> None:
    class Down:
        def find(self, *args: Any, **kwargs: Any) -> Any:
            raise ServerSelectionTimeoutError("no server")

    service.store.reports = Down()
    response = service.open311_requests(get("/open311/v2/requests.xml"), "xml")
    assert response.status_code == 503
    assert ET.fromstring(response.get_data()).findtext("error/code") == "503"
