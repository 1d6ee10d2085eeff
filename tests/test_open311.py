"""Open311 GeoReport v2 at /open311/v2 against the running system: a real client (PyPI `georeport`) reads services
and requests in JSON and XML; a request is POSTed as FixMyStreet's Open311 client does (form-encoded to requests.xml,
XML answer, then the token lookup); every answer is checked against models written from the spec's text; every
error case of the spec is answered as it says; private categories never appear and contacts never leave.
"""

from __future__ import annotations

import json
import random
import shlex
import subprocess
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
import requests
import xmltodict
from georeport import GeoReport
from pydantic import BaseModel, ConfigDict

from tests.photo_fixtures import jpeg_with_gps
from tests.system import RunningSystem, client_headers, wait_for

pytestmark = pytest.mark.e2e

RNG = random.Random()
# Tanjung Priok, Jakarta Utara, moved a little each run
POINT = (-6.1180 + RNG.uniform(-0.002, 0.002), 106.8800 + RNG.uniform(-0.002, 0.002))

# ---- the spec's resources as models (field names and types from the GeoReport v2 text) ------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServiceModel(Strict):
    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str
    group: str


class DefinitionModel(Strict):
    service_code: str
    attributes: list[dict[str, Any]]


class RequestModel(Strict):
    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str | None
    service_name: str
    service_code: str
    description: str
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: datetime
    updated_datetime: datetime | None
    expected_datetime: datetime | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float
    long: float
    media_url: str | None
    # the extensions, only with extensions=true
    extended_attributes: dict[str, Any] | None = None
    notes: list[dict[str, Any]] | None = None


class PostAnswerModel(Strict):
    service_request_id: str
    token: str
    service_notice: str
    account_id: None


class TokenModel(Strict):
    service_request_id: str
    token: str


class ErrorModel(Strict):
    code: int
    description: str


REQUEST_ELEMENTS = list(RequestModel.model_fields)[:17]  # the spec's, in its order


def w3c_zoned(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, f"{text} has no time zone"
    return moment


def base(system: RunningSystem) -> str:
    return system.url("intake", "/open311/v2")


def xml_items(body: bytes, root: str, item: str) -> list[ET.Element]:
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    tree = ET.fromstring(body)
    assert tree.tag == root
    assert all(child.tag == item for child in tree)
    return list(tree)


def xml_error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("text/xml")
    (error,) = xml_items(response.content, "errors", "error")
    assert [child.tag for child in error] == ["code", "description"]
    assert error.findtext("code") == str(status)
    return error.findtext("description") or ""


def json_error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    (error,) = response.json()
    model = ErrorModel.model_validate(error)
    assert model.code == status
    return model.description


def post_fms(system: RunningSystem, fields: dict[str, Any], fmt: str = "xml", **kwargs: Any) -> requests.Response:
    """A POST as FixMyStreet's Open311.pm sends one: form-encoded fields to requests.xml."""
    return requests.post(f"{base(system)}/requests.{fmt}", data=fields, headers=client_headers(), timeout=30, **kwargs)


def fms_fields(**extra: Any) -> dict[str, Any]:
    lat, lon = POINT
    return {
        "service_code": "jalan",
        "lat": f"{lat:.6f}",
        "long": f"{lon:.6f}",
        "description": "Jalan berlubang <dalam> & berbahaya",
        "address_string": "Jl. Enggano",
        "email": "warga.open311@example.org",
        "first_name": "Siti",
        "last_name": "Rahayu",
        "phone": "081234567890",
        "attribute[easting]": "1",
        **extra,
    }


@pytest.fixture(scope="module")
def filed(system: RunningSystem) -> dict[str, Any]:
    """One report filed over Open311 the FixMyStreet way, and the XML answer's fields."""
    response = post_fms(system, fms_fields())
    assert response.status_code == 201, response.text
    (item,) = xml_items(response.content, "service_requests", "request")
    answer = {child.tag: child.text for child in item}
    PostAnswerModel.model_validate(answer)
    return answer


def wait_routed(system: RunningSystem, report_id: str) -> dict[str, Any]:
    def agency() -> dict[str, Any] | None:
        found = requests.get(f"{base(system)}/requests/{report_id}.json", timeout=10).json()[0]
        return found if found["agency_responsible"] else None

    return wait_for(agency, 20, message=f"{report_id} routed")


# ---- a real client reads it ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_the_georeport_client_reads_services_and_requests(system: RunningSystem, filed: dict, fmt: str) -> None:
    client = GeoReport(base(system), output_format=fmt)
    services = client.get_service_list()
    codes = [service["service_code"] for service in services]
    assert "jalan" in codes and len(codes) >= 20
    for service in services:
        if fmt == "xml":  # XML has only text: the spec's booleans are written true/false
            assert service["metadata"] == "false"
            service = {**service, "metadata": False}
        ServiceModel.model_validate(service)
    jalan = next(service for service in services if service["service_code"] == "jalan")
    assert jalan["service_name"] == "Jalan" and jalan["group"] == "Jalan & Transportasi"
    assert "Roads" in jalan["keywords"]

    definition = client.get_service_definition("jalan")
    assert definition["service_code"] == "jalan"

    wait_routed(system, filed["service_request_id"])
    listed = client.get_service_requests(service_code="jalan,trotoar", status="open")
    listed = listed if isinstance(listed, list) else [listed]  # xmltodict gives one item as a dict
    ids = [request["service_request_id"] for request in listed]
    assert filed["service_request_id"] in ids
    one = client.get_service_request(filed["service_request_id"])
    assert one["service_request_id"] == filed["service_request_id"]
    assert one["status"] == "open" and one["service_code"] == "jalan"
    assert one["description"] == "Jalan berlubang <dalam> & berbahaya"
    assert "Koja" in one["address"] or "Kelurahan" in one["address"]
    assert one["agency_responsible"]
    w3c_zoned(one["requested_datetime"])
    w3c_zoned(one["expected_datetime"])
    # what the citizen gave as contact is nowhere in what anyone reads
    raw = requests.get(f"{base(system)}/requests/{filed['service_request_id']}.{fmt}?extensions=true", timeout=10)
    for secret in ("warga.open311", "Siti", "Rahayu", "81234567890", filed["token"]):
        assert secret not in raw.text


def test_fixmystreet_post_then_token_lookup(system: RunningSystem, filed: dict) -> None:
    report_id = filed["service_request_id"]
    assert report_id.startswith("JK-")
    response = requests.get(f"{base(system)}/tokens/{filed['token']}.xml", timeout=10)
    assert response.status_code == 200
    (item,) = xml_items(response.content, "service_requests", "request")
    assert TokenModel.model_validate({child.tag: child.text for child in item}).service_request_id == report_id
    as_json = requests.get(f"{base(system)}/tokens/{filed['token']}.json", timeout=10).json()
    assert [TokenModel.model_validate(item).service_request_id for item in as_json] == [report_id]
    # the token is jaklapor's tracking token: the citizen's own view shows the exact point
    own = requests.get(system.url("intake", f"/api/v1/reports/{filed['token']}"), timeout=10).json()
    assert own["report_id"] == report_id


def test_requests_in_both_formats_match_the_spec(system: RunningSystem, filed: dict) -> None:
    report_id = filed["service_request_id"]
    wait_routed(system, report_id)
    as_json = requests.get(f"{base(system)}/requests/{report_id}.json", timeout=10)
    assert as_json.headers["Content-Type"].startswith("application/json")
    (request,) = as_json.json()
    model = RequestModel.model_validate(request)
    assert model.extended_attributes is None and model.notes is None
    assert model.media_url is None  # filed without a photo
    for field in ("requested_datetime", "updated_datetime", "expected_datetime"):
        w3c_zoned(request[field])

    as_xml = requests.get(f"{base(system)}/requests/{report_id}.xml", timeout=10)
    (element,) = xml_items(as_xml.content, "service_requests", "request")
    assert [child.tag for child in element] == REQUEST_ELEMENTS
    assert element.findtext("description") == request["description"]
    assert float(element.findtext("lat") or 0) == request["lat"]

    extended = requests.get(f"{base(system)}/requests/{report_id}.json?extensions=true", timeout=10).json()[0]
    RequestModel.model_validate(extended)
    assert extended["extended_attributes"]["jaklapor_status"] == "menunggu"
    kinds = [note["type"] for note in extended["notes"]]
    assert kinds[:2] == ["submitted", "routed"]
    for note in extended["notes"]:
        w3c_zoned(note["datetime"])
    xml_extended = requests.get(f"{base(system)}/requests/{report_id}.xml?extensions=true", timeout=10).content
    parsed = xmltodict.parse(xml_extended)["service_requests"]["request"]
    assert parsed["extended_attributes"]["jaklapor_status"] == "menunggu"
    assert parsed["notes"]["note"][0]["type"] == "submitted"


def test_post_with_a_photo_as_media_and_the_answer_in_json(system: RunningSystem) -> None:
    lat, lon = POINT
    response = requests.post(
        f"{base(system)}/requests.json",
        data={"service_code": "trotoar", "lat": lat, "long": lon, "description": "Trotoar rusak"},
        files={"media": ("p.jpg", jpeg_with_gps(lat, lon), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    (answer,) = response.json()
    PostAnswerModel.model_validate(answer)
    (request,) = requests.get(f"{base(system)}/requests/{answer['service_request_id']}.json", timeout=10).json()
    photo = requests.get(request["media_url"], timeout=10)
    assert photo.status_code == 200 and photo.headers["Content-Type"] == "image/jpeg"
    assert b"GPS" not in photo.content[:4096]  # sanitised: no EXIF GPS left


def test_post_is_idempotent_with_an_idempotency_key(system: RunningSystem) -> None:
    key = str(uuid.uuid4())
    headers = {**client_headers(), "Idempotency-Key": key}
    fields = fms_fields(description="Lampu jalan mati", service_code="jaringan-listrik")
    first = requests.post(f"{base(system)}/requests.json", data=fields, headers=headers, timeout=30)
    again = requests.post(f"{base(system)}/requests.json", data=fields, headers=headers, timeout=30)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"


def test_request_list_filters(system: RunningSystem, filed: dict) -> None:
    report_id = filed["service_request_id"]
    wait_routed(system, report_id)

    def ids(**params: Any) -> list[str]:
        response = requests.get(f"{base(system)}/requests.json", params=params, timeout=10)
        assert response.status_code == 200, response.text
        for item in response.json():
            RequestModel.model_validate(item)
        return [item["service_request_id"] for item in response.json()]

    assert report_id in ids()
    assert report_id in ids(service_code="trotoar,jalan")
    assert report_id not in ids(service_code="trotoar")
    assert report_id in ids(status="open")
    assert report_id not in ids(status="closed")
    assert report_id in ids(status="closed,open")
    now = datetime.now(UTC)
    assert report_id in ids(
        start_date=(now - timedelta(hours=1)).isoformat(), end_date=(now + timedelta(minutes=5)).isoformat()
    )
    assert report_id not in ids(start_date=(now + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"))
    assert report_id not in ids(end_date=(now - timedelta(days=1)).isoformat())
    # service_request_id overrides every other filter
    assert ids(service_request_id=report_id, service_code="trotoar", status="closed") == [report_id]
    # the location extension: the published point within the radius
    lat, lon = POINT
    assert report_id in ids(lat=lat, long=lon, radius=200)
    assert report_id not in ids(lat=lat + 0.05, long=lon, radius=200)
    # pages: page_size 1 gives one, the next page another
    first, second = ids(page_size=1), ids(page_size=1, page=2)
    assert len(first) == len(second) == 1 and first != second


def test_xml_resources_have_the_spec_s_elements_in_order(system: RunningSystem) -> None:
    """XSD-like: each XML resource's elements, as the spec's examples list them."""
    services = requests.get(f"{base(system)}/services.xml", timeout=10)
    assert services.headers["Content-Type"] == "text/xml; charset=utf-8"
    for service in xml_items(services.content, "services", "service"):
        assert [child.tag for child in service] == list(ServiceModel.model_fields)
        assert service.findtext("metadata") in ("true", "false")
    definition = ET.fromstring(requests.get(f"{base(system)}/services/jalan.xml", timeout=10).content)
    assert definition.tag == "service_definition"
    assert [child.tag for child in definition] == ["service_code", "attributes"]
    listed = requests.get(f"{base(system)}/requests.xml?page_size=20", timeout=10).content
    for request in xml_items(listed, "service_requests", "request"):
        assert [child.tag for child in request] == REQUEST_ELEMENTS
        assert request.findtext("status") in ("open", "closed")
        w3c_zoned(request.findtext("requested_datetime") or "")


def test_discovery_names_the_endpoint_and_its_formats(system: RunningSystem) -> None:
    for path in ("/open311/discovery.json", "/open311/v2/discovery.json"):
        document = requests.get(system.url("intake", path), timeout=10).json()
        (endpoint,) = document["endpoints"]
        assert endpoint["url"].endswith("/open311/v2") and endpoint["specification"].endswith("GeoReport_v2")
        assert endpoint["formats"] == ["text/xml", "application/json"]
        w3c_zoned(document["changeset"].replace("Z", "+00:00"))
    xml = requests.get(system.url("intake", "/open311/discovery.xml"), timeout=10).content
    tree = ET.fromstring(xml)
    assert tree.tag == "discovery" and tree.findtext("endpoints/endpoint/type") == "production"


# ---- every error case of the spec ----------------------------------------------------------------------------------


def test_errors_of_the_spec(system: RunningSystem, filed: dict) -> None:
    url = base(system)
    # service definition: 404 service_code not found
    assert "nope" in xml_error(requests.get(f"{url}/services/nope.xml", timeout=10), 404)
    json_error(requests.get(f"{url}/services/nope.json", timeout=10), 404)
    # any resource: 404 jurisdiction_id not found
    for path in ("services", "requests", "services/jalan", f"requests/{filed['service_request_id']}"):
        assert "jurisdiction_id" in xml_error(
            requests.get(f"{url}/{path}.xml?jurisdiction_id=nyc.gov", timeout=10), 404
        )
    json_error(post_fms(system, fms_fields(jurisdiction_id="nyc.gov"), "json"), 404)
    # single request and token: 404 not found
    xml_error(requests.get(f"{url}/requests/JK-20200101-000001.xml", timeout=10), 404)
    json_error(requests.get(f"{url}/requests/not-a-number.json", timeout=10), 404)
    xml_error(requests.get(f"{url}/tokens/{'x' * 43}.xml", timeout=10), 404)
    # POST: 400 service_code not provided, required fields missing, bad values; 404 service_code not found
    assert "service_code" in xml_error(post_fms(system, fms_fields(service_code="")), 400)
    assert "lat and long" in xml_error(post_fms(system, fms_fields(lat="", long="")), 400)
    assert "description" in json_error(post_fms(system, fms_fields(description=""), "json"), 400)
    assert "email" in json_error(post_fms(system, fms_fields(email="not an address"), "json"), 400)
    assert "lat" in json_error(post_fms(system, fms_fields(lat="95"), "json"), 400)
    xml_error(post_fms(system, fms_fields(service_code="no-such-service")), 404)
    # request list: 400 for a bad filter
    assert "90 days" in json_error(
        requests.get(f"{url}/requests.json?start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", timeout=10),
        400,
    )
    json_error(requests.get(f"{url}/requests.json?start_date=yesterday", timeout=10), 400)
    json_error(requests.get(f"{url}/requests.json?start_date=2026-01-01T00:00:00", timeout=10), 400)  # no zone
    json_error(requests.get(f"{url}/requests.json?status=pending", timeout=10), 400)
    json_error(requests.get(f"{url}/requests.json?service_code=nope", timeout=10), 400)
    json_error(requests.get(f"{url}/requests.json?page_size=5000", timeout=10), 400)
    # a format other than xml and json
    xml_error(requests.get(f"{url}/services.csv", timeout=10), 400)


def test_media_url_is_refused_and_never_fetched(system: RunningSystem) -> None:
    """media_url would make the server fetch a client's URL (SSRF): refused with a 400 saying why, before anything is
    stored; the address given is never contacted."""
    response = post_fms(system, fms_fields(media_url="http://169.254.169.254/latest/meta-data/"), "json")
    description = json_error(response, 400)
    assert "media_url" in description and "media" in description
    before = requests.get(f"{base(system)}/requests.json?service_code=jalan", timeout=10).json()
    assert all("169.254" not in str(item) for item in before)


# ---- privacy ---------------------------------------------------------------------------------------------------------


def test_a_private_category_report_appears_nowhere_public(system: RunningSystem) -> None:
    lat, lon = POINT
    response = post_fms(
        system, fms_fields(service_code="pmks-bantuan-sosial", description="Lansia terlantar di pinggir jalan"), "json"
    )
    assert response.status_code == 201, response.text
    (answer,) = response.json()
    report_id, token = answer["service_request_id"], answer["token"]
    # its citizen still reads it with the token
    own = requests.get(system.url("intake", f"/api/v1/reports/{token}"), timeout=10)
    assert own.status_code == 200
    wait_for(
        lambda: (
            own.json()
            and requests.get(system.url("intake", f"/api/v1/reports/{token}"), timeout=10).json()["responsible_opd"]
        ),
        20,
    )
    assert requests.get(f"{base(system)}/requests/{report_id}.json", timeout=10).status_code == 404
    listed = requests.get(f"{base(system)}/requests.json", params={"page_size": 1000}, timeout=10).json()
    assert report_id not in [item["service_request_id"] for item in listed]
    assert requests.get(f"{base(system)}/requests.json?service_request_id={report_id}", timeout=10).json() == []
    assert requests.get(f"{base(system)}/requests.json?service_code=pmks-bantuan-sosial", timeout=10).json() == []
    assert requests.get(system.url("intake", f"/api/v1/reports/public/{report_id}"), timeout=10).status_code == 404
    near = requests.get(
        system.url("intake", "/api/v1/reports/nearby"), params={"lat": lat, "lon": lon, "radius_m": 2000}, timeout=10
    ).json()
    assert report_id not in [item["report_id"] for item in near["reports"]]
    for export in ("csv", "geojson"):
        body = requests.get(system.url("intake", f"/api/v1/open-data/reports.{export}"), timeout=30)
        if body.status_code == 200:  # the exports are checked in tests/test_open_data.py
            assert report_id not in body.text


def test_a_category_about_people_is_published_at_about_100_m(system: RunningSystem) -> None:
    lat, lon = -6.1234567, 106.8876543
    response = post_fms(
        system,
        fms_fields(service_code="gangguan-dan-kebisingan", lat=lat, long=lon, description="Musik keras tiap malam"),
        "json",
    )
    assert response.status_code == 201, response.text
    (answer,) = response.json()
    (request,) = requests.get(f"{base(system)}/requests/{answer['service_request_id']}.json", timeout=10).json()
    assert (request["lat"], request["long"]) == (-6.123, 106.888)
    public = requests.get(system.url("intake", f"/api/v1/reports/public/{answer['service_request_id']}"), timeout=10)
    assert public.json()["location"] == {"lat": -6.123, "lon": 106.888}
    own = requests.get(system.url("intake", f"/api/v1/reports/{answer['token']}"), timeout=10).json()
    assert own["location"] == {"lat": lat, "lon": lon}


# ---- the README's examples work as written ---------------------------------------------------------------------------


def test_the_readme_examples_work(system: RunningSystem) -> None:
    from tests.test_readme_commands import readme_commands

    commands = [c for c in readme_commands() if "/open311/" in c or "/open-data/" in c]
    assert len(commands) >= 6
    for command in commands:
        argv = shlex.split(command.replace("http://127.0.0.1:8000", system.url("intake", "").rstrip("/")))
        # each example as a different client (the rate limit is per client)
        done = subprocess.run(
            [*argv, "-H", f"X-Forwarded-For: {client_headers()['X-Forwarded-For']}", "-w", "\n%{http_code}"],
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, (command, done.stderr)
        body, _, status = done.stdout.rpartition(b"\n")
        assert status in (b"200", b"201"), (command, body[:300])
        if ".xml" in command:
            ET.fromstring(body)
        elif ".json" in command:
            assert isinstance(json.loads(body), list)
        elif ".csv" in command:
            assert body.startswith(b"report_id,submitted_at,")
        else:
            assert json.loads(body)["type"] == "FeatureCollection"
