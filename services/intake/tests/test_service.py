"""IntakeService's entrypoints through nameko's `worker_factory`, with in-memory fakes (fakes.py) in place of MongoDB,
the object store and the outbox relay: what each answers, stores and queues, in milliseconds.

Requests are werkzeug requests as nameko's web entrypoint hands them over; an error the handler raises is answered
by the same `ApiEndpoint.response_from_exception` (and intake's domain error table) as in a running service.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from jaklapor.contacts import CONTACTS_QUEUE, decrypt_contact, generate_key
from jaklapor.events import AreaRef, ContactRegistered, OpdRef, ReportRouted, ReportUnroutable
from jaklapor.live import LiveHub
from jaklapor.messaging import PermanentFailure
from jaklapor.opd_keys import derive_key
from jaklapor.reference import load_areas, load_categories, load_directory, load_kelurahan_geojson
from jaklapor.tokens import hash_token
from jaklapor.vocabulary import DIKERJAKAN, DISPOSISI, DITOLAK, KOORDINASI, MENUNGGU, SELESAI
from jaklapor.web import ApiEndpoint
from services.intake.http_errors import INTAKE_ERRORS
from services.intake.photos import sanitize_photo
from services.intake.public_documents import reference_documents
from services.intake.ratelimit import FailureThrottle, RateLimiter
from services.intake.service import IntakeService
from services.intake.settings import IntakeSettings
from services.intake.tests.fakes import FakePhotoStorage, FakeRelay, FakeReportStore, FakeSessionStore
from tests import photo_fixtures as fx

OPD_KEY_SECRET = "interface-test-opd-secret"
SETTINGS = IntakeSettings(
    public_url="https://lapor.example/",
    notify_public_url="https://notify.example",
    opd_key_secret=OPD_KEY_SECRET,
    token_secret="interface-test-token-secret",
    contact_key=generate_key(),
)
REFERENCE = SimpleNamespace(
    categories=load_categories(),
    directory=load_directory(),
    documents=reference_documents(load_areas(), load_kelurahan_geojson()),
)
DINAS = "bina-marga"
SUDIN = "sudin-bina-marga-jakarta-selatan"
OTHER_OPD = "perhubungan"
KELURAHAN = "kelurahan-melawai"
AREA = AreaRef(code="31.74.06.1006", kelurahan="Melawai", kecamatan="Kebayoran Baru", kota="Jakarta Selatan")


@pytest.fixture
def service() -> Any:
    return worker_factory(
        IntakeService,
        settings=SETTINGS,
        store=FakeReportStore(),
        photos=FakePhotoStorage(),
        photo_cleaner=sanitize_photo,
        relay=FakeRelay(),
        reference=REFERENCE,
        limiter=RateLimiter(burst=1000, per_minute=1000),
        sessions=FakeSessionStore(),
        key_throttle=FailureThrottle(),
        opd_streams=LiveHub(max_per_key=2),
    )


# ---- calling the entrypoints ----------------------------------------------------------------------------------------

ENDPOINT = ApiEndpoint("GET", "/")
ENDPOINT.domain_errors = INTAKE_ERRORS  # what ApiEndpoint.setup takes from IntakeService.domain_errors


def answer(handler: Callable[..., Response], *args: Any) -> tuple[int, dict[str, Any], Any]:
    """Status, JSON body and headers of an entrypoint's answer, errors included."""
    try:
        response = handler(*args)
    except Exception as exc:
        response = ENDPOINT.response_from_exception(exc)
    return response.status_code, json.loads(response.get_data()), response.headers


def post(
    path: str, fields: dict[str, str], photos: list[bytes] | tuple[()] = (), headers: dict[str, str] | None = None
) -> Request:
    data: dict[str, Any] = dict(fields)
    if photos:
        data["photo"] = [(io.BytesIO(photo), f"photo{n}.jpg", "image/jpeg") for n, photo in enumerate(photos)]
    return EnvironBuilder(method="POST", path=path, data=data, headers=headers).get_request()


def get(path: str, headers: dict[str, str] | None = None) -> Request:
    return EnvironBuilder(method="GET", path=path, headers=headers).get_request()


def opd_auth(opd_code: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {derive_key(OPD_KEY_SECRET, opd_code)}"}


REPORT_FIELDS = {
    "category": "jalan",
    "description": "Jalan berlubang di depan sekolah",
    "lat": "-6.2441",
    "lon": "106.8013",
}


def submit(service: Any, **extra: str) -> dict[str, Any]:
    status, body, _ = answer(service.submit_report, post("/api/v1/reports", {**REPORT_FIELDS, **extra}))
    assert status == 201, body
    return body


def routed_event(report_id: str, opd_code: str = DINAS, hop: int = 0, **fields: Any) -> dict[str, Any]:
    opd = REFERENCE.directory.get(opd_code)
    return ReportRouted(
        report_id=report_id,
        version=2,
        opd=OpdRef(code=opd.code, name=opd.name, level=opd.level),
        area=AREA,
        routing_key=f"{opd_code}.jakarta-selatan",
        hop=hop,
        category="jalan",
        **fields,
    ).to_message()


def routed_report(service: Any, opd_code: str = DINAS, deadline: datetime | None = None) -> str:
    report_id = submit(service)["report_id"]
    service.apply_routing(routed_event(report_id, opd_code, response_deadline=deadline))
    return report_id


def outbox_types(service: Any, report_id: str) -> list[str]:
    return [message["routing_key"] for message in service.store.messages(report_id)]


# ---- citizens -------------------------------------------------------------------------------------------------------


def test_submitting_stores_the_report_queues_its_messages_and_hands_it_to_the_relay(service: Any) -> None:
    request = post("/api/v1/reports", {**REPORT_FIELDS, "contact": "warga@example.org"}, [fx.jpeg_bytes()])
    status, receipt, headers = answer(service.submit_report, request)

    assert status == 201
    report_id, token = receipt["report_id"], receipt["tracking_token"]
    assert receipt["status"] == MENUNGGU and receipt["category"] == "jalan"
    assert receipt["tracking_url"] == headers["Location"] == f"https://lapor.example/api/v1/reports/{token}"
    assert receipt["stream_url"] == f"https://notify.example/api/v1/reports/{token}/stream"
    stored = service.store.reports[report_id]
    assert (stored["status"], stored["version"], stored["hop"], stored["assigned_opd"]) == (MENUNGGU, 1, 0, None)
    assert stored["tracking_token_hash"] == hash_token(token)
    assert [entry["kind"] for entry in stored["history"]] == ["submitted"]
    assert "warga@example.org" not in json.dumps(stored, default=str)  # only the ciphertext, on its way to notify
    (photo,) = stored["photos"]
    assert f"photos/{photo['photo_id']}.jpg" in service.photos.objects
    submitted, contact = service.store.messages(report_id)
    assert (submitted["exchange"], submitted["routing_key"]) == ("intake.events", "report_submitted")
    assert submitted["body"]["has_contact"] is True
    assert submitted["body"]["photos"][0]["url"] == f"https://lapor.example/api/v1/photos/{photo['photo_id']}"
    assert (contact["exchange"], contact["routing_key"]) == ("", CONTACTS_QUEUE)
    registered = ContactRegistered.model_validate(contact["body"])
    assert (registered.message_type, registered.schema_version) == ("contact_registered", 1)
    bundle = json.loads(decrypt_contact(SETTINGS.contact_key, registered.contact_ciphertext) or "")
    assert bundle == {"contact": "warga@example.org", "tracking_url": receipt["tracking_url"]}
    assert service.relay.handed_over == [report_id]


def test_a_retried_submission_gets_the_same_report_and_a_reused_key_is_refused(service: Any) -> None:
    key = {"Idempotency-Key": "a1b2c3d4-e5f6-4789-abcd-0123456789ab"}
    first = answer(service.submit_report, post("/api/v1/reports", REPORT_FIELDS, headers=key))
    again = answer(service.submit_report, post("/api/v1/reports", REPORT_FIELDS, headers=key))
    assert (first[0], again[0]) == (201, 201)
    assert again[1] == first[1] and again[2]["Idempotent-Replayed"] == "true"
    assert len(service.store.reports) == 1

    other = post("/api/v1/reports", {**REPORT_FIELDS, "description": "Lain"}, headers=key)
    status, body, _ = answer(service.submit_report, other)
    assert (status, body["error"]["code"]) == (422, "idempotency_key_reused")


def test_a_refused_photo_stores_nothing(service: Any) -> None:
    request = post("/api/v1/reports", REPORT_FIELDS, [fx.jpeg_bytes(), fx.gif_bytes()])
    status, body, _ = answer(service.submit_report, request)
    assert (status, body["error"]["code"], body["error"]["field"]) == (415, "photo_unsupported_type", "photo")
    assert service.store.reports == {} and service.photos.objects == {}


def test_an_unavailable_photo_store_is_a_503(service: Any) -> None:
    service.photos.available = False
    status, body, _ = answer(service.submit_report, post("/api/v1/reports", REPORT_FIELDS, [fx.jpeg_bytes()]))
    assert (status, body["error"]["code"]) == (503, "storage_unavailable")
    assert service.store.reports == {}


def test_an_unknown_category_names_the_field(service: Any) -> None:
    status, body, _ = answer(service.submit_report, post("/api/v1/reports", {**REPORT_FIELDS, "category": "x"}))
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "unknown_category", "category")


def test_tracking_shows_the_public_view(service: Any) -> None:
    receipt = submit(service)
    status, view, headers = answer(service.track_report, get("/"), receipt["tracking_token"])
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert (view["report_id"], view["status"], view["version"]) == (receipt["report_id"], MENUNGGU, 1)
    assert view["stream_url"] == receipt["stream_url"]
    status, body, _ = answer(service.track_report, get("/"), "not-a-token")
    assert (status, body["error"]["code"]) == (404, "report_not_found")


def get_query(path: str, query: dict[str, str] | str) -> Request:
    return EnvironBuilder(method="GET", path=path, query_string=query).get_request()


def test_nearby_lists_open_reports_nearest_first_with_public_fields_only(service: Any) -> None:
    near = submit(service, lat="-6.2441", lon="106.8013")["report_id"]
    nearer = submit(service, lat="-6.24405", lon="106.8012", contact="warga@example.org")["report_id"]
    submit(service, lat="-6.2600", lon="106.8013")  # about 1.8 km south
    other_category = submit(service, category="pohon")["report_id"]
    closed = routed_report(service, SUDIN)
    rejection = post("/", {"status": "ditolak", "note": "x", "reason": "duplikat"}, headers=opd_auth(SUDIN))
    answer(service.transition, rejection, closed)
    assert service.store.reports[closed]["status"] == DITOLAK

    status, body, headers = answer(
        service.nearby_reports, get_query("/api/v1/reports/nearby", {"lat": "-6.2440", "lon": "106.8012"})
    )
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert body["radius_m"] == 250
    ids = [report["report_id"] for report in body["reports"]]
    assert ids[0] == nearer and set(ids) == {near, nearer, other_category}
    first = body["reports"][0]
    assert set(first) == {
        "report_id", "category", "status", "status_label", "description", "location", "area", "submitted_at",
        "photos", "distance_m",
    }  # fmt: skip
    assert first["distance_m"] == 6 and first["status_label"] == "Menunggu"
    assert "warga" not in json.dumps(body)

    status, body, _ = answer(
        service.nearby_reports,
        get_query("/", {"lat": "-6.2440", "lon": "106.8012", "category": "pohon", "radius_m": "2000"}),
    )
    assert [report["report_id"] for report in body["reports"]] == [other_category]
    status, body, _ = answer(
        service.nearby_reports, get_query("/", {"lat": "-6.2440", "lon": "106.8012", "radius_m": "2000"})
    )
    assert len(body["reports"]) == 4  # the one 1.8 km away too; never the rejected one


@pytest.mark.parametrize(
    ("query", "status", "code", "field"),
    [
        ("lon=106.8", 400, "invalid_query", "lat"),
        ("lat=-6.2&lon=abc", 400, "invalid_query", "lon"),
        ("lat=91&lon=106.8", 400, "invalid_query", "lat"),
        ("lat=-6.2&lon=106.8&radius_m=2001", 400, "invalid_query", "radius_m"),
        ("lat=-6.2&lon=106.8&radius_m=0", 400, "invalid_query", "radius_m"),
        ("lat=-6.2&lat=-6.3&lon=106.8", 400, "invalid_query", "lat"),
        ("lat=nan&lon=106.8", 400, "invalid_query", "lat"),
        ("lat=-6.2&lon=106.8&category=nope", 422, "unknown_category", "category"),
    ],
)
def test_a_bad_nearby_query_names_the_parameter(service: Any, query: str, status: int, code: str, field: str) -> None:
    answered, body, _ = answer(service.nearby_reports, get_query("/api/v1/reports/nearby", query))
    assert (answered, body["error"]["code"], body["error"]["field"]) == (status, code, field)


def test_an_empty_category_is_no_filter(service: Any) -> None:
    submit(service)
    status, body, _ = answer(service.nearby_reports, get_query("/", "lat=-6.2441&lon=106.8013&category="))
    assert status == 200 and len(body["reports"]) == 1


def test_a_report_is_public_by_its_number_without_its_token(service: Any) -> None:
    receipt = submit(service, contact="warga@example.org")
    status, view, headers = answer(service.public_report, get("/"), receipt["report_id"])
    assert status == 200 and headers["Cache-Control"] == "no-cache"
    assert view["report_id"] == receipt["report_id"] and view["history"][0]["kind"] == "submitted"
    text = json.dumps(view)
    assert "stream_url" not in view and receipt["tracking_token"] not in text and "warga" not in text
    assert "token" not in text

    status, body, _ = answer(service.public_report, get("/"), "JK-20000101-000001")
    assert (status, body["error"]["code"]) == (404, "report_not_found")
    for malformed in ("nope", "JK-2026-1", receipt["tracking_token"], "jk-20261127-000001"):
        status, body, _ = answer(service.public_report, get("/"), malformed)
        assert (status, body["error"]["code"], body["error"]["field"]) == (400, "invalid_report_number", "report_id")


def test_the_app_config_carries_the_map_settings(service: Any) -> None:
    status, config, headers = answer(service.app_config, get("/"))
    assert status == 200 and headers["Cache-Control"] == "public, max-age=3600"
    assert config["map"]["tile_url"] is None  # the interface tests' settings leave MAP_TILE_URL empty
    assert config["report"]["max_photos"] == 3


@pytest.mark.parametrize(
    ("handler", "content_type"), [("list_areas", "application/json"), ("kelurahan_geojson", "application/geo+json")]
)
def test_the_area_documents_are_cached_by_clients_and_compressed(service: Any, handler: str, content_type: str) -> None:
    endpoint = getattr(service, handler)
    plain = endpoint(get("/"))
    assert plain.status_code == 200 and plain.mimetype == content_type
    assert plain.headers["Cache-Control"] == "public, max-age=86400"
    assert plain.headers["Vary"] == "Accept-Encoding" and "Content-Encoding" not in plain.headers
    etag = plain.headers["ETag"]
    assert etag.startswith('"') and json.loads(plain.get_data())

    compressed = endpoint(get("/", {"Accept-Encoding": "gzip, deflate, br"}))
    assert compressed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(compressed.get_data()) == plain.get_data()
    assert compressed.headers["ETag"] != etag

    current = endpoint(get("/", {"If-None-Match": etag}))
    assert current.status_code == 304
    assert endpoint(get("/", {"If-None-Match": '"stale"'})).status_code == 200


# ---- routing results ------------------------------------------------------------------------------------------------


def test_a_routing_result_assigns_the_report_once(service: Any) -> None:
    report_id = submit(service)["report_id"]
    deadline = datetime(2030, 1, 1, tzinfo=UTC)
    event = routed_event(report_id, response_deadline=deadline)
    service.apply_routing(event)
    service.apply_routing(event)  # redelivered: no second change

    stored = service.store.reports[report_id]
    assert stored["assigned_opd"]["code"] == DINAS and stored["version"] == 2
    assert stored["area"]["kota_slug"] == "jakarta-selatan"
    assert stored["response_deadline"] == deadline
    assert [entry["kind"] for entry in stored["history"]] == ["submitted", "routed"]
    assert stored["history"][-1]["note"] == "Diteruskan ke Dinas Bina Marga"


def test_an_unroutable_report_goes_to_the_triage_desk(service: Any) -> None:
    report_id = submit(service)["report_id"]
    event = ReportUnroutable(
        report_id=report_id,
        version=2,
        reason="outside_jakarta",
        detail="no area",
        routing_key="triage",
        category="jalan",
    )
    service.apply_routing(event.to_message())
    stored = service.store.reports[report_id]
    assert stored["assigned_opd"]["code"] == "triage" and stored["triage_reason"] == "outside_jakarta"
    assert stored["history"][-1]["kind"] == "triage"


def test_a_routing_result_for_an_older_hop_changes_nothing(service: Any) -> None:
    report_id = routed_report(service)
    service.apply_routing(routed_event(report_id, OTHER_OPD, hop=3))
    assert service.store.reports[report_id]["assigned_opd"]["code"] == DINAS


def test_routing_results_that_cannot_be_applied(service: Any) -> None:
    with pytest.raises(PermanentFailure):
        service.apply_routing({"event_type": "routing.something_else"})
    with pytest.raises(LookupError):  # retried, then dead-lettered
        service.apply_routing(routed_event("JK-20300101-000001"))


# ---- the OPD API ----------------------------------------------------------------------------------------------------


def transition(service: Any, report_id: str, opd_code: str, fields: dict[str, str], photos: Any = ()) -> tuple:
    request = post(f"/api/v1/opd/reports/{report_id}/transitions", fields, photos, headers=opd_auth(opd_code))
    return answer(service.transition, request, report_id)


def test_taking_a_report_records_it_and_announces_it(service: Any) -> None:
    report_id = routed_report(service, deadline=datetime(2030, 1, 1, tzinfo=UTC))
    status, view, _ = transition(service, report_id, DINAS, {"status": DIKERJAKAN})
    assert status == 200
    assert (view["status"], view["version"], view["hop"], view["response_deadline"]) == (DIKERJAKAN, 3, 0, None)
    assert outbox_types(service, report_id) == ["report_submitted", "report_status_changed"]
    changed = service.store.messages(report_id)[-1]["body"]
    assert (changed["from_status"], changed["to_status"], changed["actor_opd"]) == (MENUNGGU, DIKERJAKAN, DINAS)
    assert changed["area"]["kota"] == "Jakarta Selatan" and changed["assigned_opd"] == DINAS
    assert service.relay.handed_over == [report_id, report_id]


def test_handing_over_forwards_the_report_one_hop(service: Any) -> None:
    report_id = routed_report(service)
    status, view, _ = transition(
        service, report_id, DINAS, {"status": KOORDINASI, "note": "Bukan kami", "target_opd": OTHER_OPD}
    )
    assert status == 200
    assert (view["status"], view["responsible_opd"]["code"], view["hop"]) == (KOORDINASI, OTHER_OPD, 1)
    assert outbox_types(service, report_id)[-2:] == ["report_status_changed", "report_forwarded"]
    forwarded = service.store.messages(report_id)[-1]["body"]
    assert (forwarded["from_opd"], forwarded["target_opd"], forwarded["kind"], forwarded["hop"]) == (
        DINAS,
        OTHER_OPD,
        KOORDINASI,
        1,
    )
    assert service.store.reports[report_id]["history"][-1]["opd"]["code"] == OTHER_OPD


def test_finishing_stores_the_evidence_photo(service: Any) -> None:
    report_id = routed_report(service)
    transition(service, report_id, DINAS, {"status": DIKERJAKAN})
    status, view, _ = transition(service, report_id, DINAS, {"status": SELESAI, "note": "Sudah"}, [fx.jpeg_bytes()])
    assert status == 200 and view["status"] == SELESAI
    (evidence,) = service.store.reports[report_id]["evidence_photos"]
    assert f"photos/{evidence['photo_id']}.jpg" in service.photos.objects
    assert view["evidence_photos"] == [f"https://lapor.example/api/v1/photos/{evidence['photo_id']}"]
    changed = service.store.messages(report_id)[-1]["body"]
    assert [photo["photo_id"] for photo in changed["evidence_photos"]] == [evidence["photo_id"]]


NOTE = {"note": "Catatan untuk warga"}
REFUSALS = [
    # id, status of the report, acting OPD, fields, expected status, code
    ("invalid_status", MENUNGGU, DINAS, {"status": "beres"}, 422, "invalid_status"),
    ("other_opd", MENUNGGU, OTHER_OPD, {"status": DIKERJAKAN}, 404, "report_not_found"),
    ("illegal", MENUNGGU, DINAS, {"status": SELESAI, **NOTE}, 409, "illegal_transition"),
    # (invalid_note: the form refuses a long note first, as invalid_field; test_domain checks the rule itself)
    ("missing_note", MENUNGGU, DINAS, {"status": DITOLAK, "reason": "spam"}, 422, "missing_note"),
    ("missing_target", MENUNGGU, DINAS, {"status": KOORDINASI, **NOTE}, 422, "missing_target"),
    ("unknown_opd", MENUNGGU, DINAS, {"status": KOORDINASI, **NOTE, "target_opd": "nope"}, 422, "unknown_opd"),
    ("same_opd", MENUNGGU, DINAS, {"status": KOORDINASI, **NOTE, "target_opd": DINAS}, 422, "same_opd"),
    ("unexpected", MENUNGGU, DINAS, {"status": DIKERJAKAN, "target_opd": OTHER_OPD}, 422, "unexpected_target"),
    ("invalid_target", MENUNGGU, DINAS, {"status": DISPOSISI, **NOTE, "target_opd": OTHER_OPD}, 422, "invalid_target"),
    ("invalid_reason", MENUNGGU, DINAS, {"status": DITOLAK, **NOTE, "reason": "bosan"}, 422, "invalid_reason"),
    ("no_evidence", DIKERJAKAN, DINAS, {"status": SELESAI, **NOTE}, 422, "missing_evidence"),
    ("disposisi", MENUNGGU, SUDIN, {"status": DISPOSISI, **NOTE}, 403, "disposisi_not_allowed"),
]


@pytest.mark.parametrize(
    ("report_status", "opd_code", "fields", "status", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSALS],
)
def test_each_refused_transition_is_answered_and_changes_nothing(
    service: Any, report_status: str, opd_code: str, fields: dict[str, str], status: int, code: str
) -> None:
    report_id = routed_report(service, DINAS if opd_code == OTHER_OPD else opd_code)
    service.store.reports[report_id]["status"] = report_status
    before = service.store.by_id(report_id)
    answered, body, _ = transition(service, report_id, opd_code, fields)
    assert (answered, body["error"]["code"]) == (status, code), body
    assert service.store.by_id(report_id) == before
    assert outbox_types(service, report_id) == ["report_submitted"]


def test_a_report_still_being_routed_asks_to_retry(service: Any) -> None:
    report_id = submit(service)["report_id"]
    status, body, headers = transition(service, report_id, DINAS, {"status": DIKERJAKAN})
    assert (status, body["error"]["code"], headers["Retry-After"]) == (409, "not_routed_yet", "1")


def test_disposisi_needs_a_report_inside_a_kota(service: Any) -> None:
    report_id = routed_report(service)
    del service.store.reports[report_id]["area"]["kota_slug"]
    status, body, _ = transition(service, report_id, DINAS, {"status": DISPOSISI, **NOTE})
    assert (status, body["error"]["code"]) == (409, "no_area")


def test_opd_requests_without_a_valid_key_are_refused(service: Any) -> None:
    report_id = routed_report(service)
    request = post(f"/api/v1/opd/reports/{report_id}/transitions", {"status": DIKERJAKAN})
    status, body, headers = answer(service.transition, request, report_id)
    assert (status, body["error"]["code"], headers["WWW-Authenticate"]) == (
        401,
        "unauthenticated",
        'Bearer realm="jaklapor-opd"',
    )
    request = post("/", {"status": DIKERJAKAN}, headers={"Authorization": "Bearer bina-marga.forged"})
    status, body, _ = answer(service.transition, request, report_id)
    assert (status, body["error"]["code"]) == (401, "invalid_key")


def test_a_missing_report_and_a_report_that_keeps_changing(service: Any) -> None:
    status, body, _ = transition(service, "JK-20300101-000009", DINAS, {"status": DIKERJAKAN})
    assert (status, body["error"]["code"]) == (404, "report_not_found")

    report_id = routed_report(service)
    service.store.reports[report_id]["status"] = DIKERJAKAN
    service.store.conflicts = 3  # every attempt finds the report changed
    status, body, _ = transition(service, report_id, DINAS, {"status": SELESAI, **NOTE}, [fx.jpeg_bytes()])
    assert (status, body["error"]["code"]) == (409, "concurrent_update")
    assert service.photos.objects == {}  # the evidence stored for each attempt is deleted again
    service.store.conflicts = 2  # the third attempt gets through
    status, view, _ = transition(service, report_id, DINAS, {"status": SELESAI, **NOTE}, [fx.jpeg_bytes()])
    assert (status, view["status"], len(service.photos.objects)) == (200, SELESAI, 1)


def test_an_opd_reads_only_its_own_reports(service: Any) -> None:
    report_id = routed_report(service)
    status, view, _ = answer(service.opd_get_report, get("/", opd_auth(DINAS)), report_id)
    assert (status, view["report_id"], view["hop"]) == (200, report_id, 0)
    status, body, _ = answer(service.opd_get_report, get("/", opd_auth(OTHER_OPD)), report_id)
    assert (status, body["error"]["code"]) == (404, "report_not_found")
    status, me, _ = answer(service.whoami, get("/", opd_auth(DINAS)))
    assert me == {"opd": {"code": DINAS, "name": "Dinas Bina Marga", "level": "dinas"}}


# ---- deadlines ------------------------------------------------------------------------------------------------------


def test_a_missed_deadline_moves_the_report_up_the_chain(service: Any) -> None:
    report_id = routed_report(service, KELURAHAN, deadline=datetime.now(UTC) - timedelta(minutes=1))
    service.escalate_overdue()

    stored = service.store.reports[report_id]
    parent = REFERENCE.directory.escalation_parent(KELURAHAN)
    assert (stored["assigned_opd"]["code"], stored["hop"], stored["escalation_exhausted"]) == (parent.code, 1, False)
    assert stored["history"][-1]["kind"] == "escalated"
    assert stored["history"][-1]["from_opd"] == KELURAHAN
    assert outbox_types(service, report_id)[-2:] == ["report_escalated", "report_forwarded"]
    assert service.store.messages(report_id)[-1]["body"]["kind"] == "escalation"
    assert service.relay.handed_over[-1] == report_id


def test_a_missed_deadline_at_the_top_marks_the_report_overdue(service: Any) -> None:
    report_id = routed_report(service, DINAS, deadline=datetime.now(UTC) - timedelta(minutes=1))
    service.escalate_overdue()

    stored = service.store.reports[report_id]
    assert (stored["assigned_opd"]["code"], stored["escalation_exhausted"]) == (DINAS, True)
    assert stored["history"][-1]["kind"] == "overdue"
    assert outbox_types(service, report_id) == ["report_submitted"]
    _, view, _ = answer(service.opd_get_report, get("/", opd_auth(DINAS)), report_id)
    assert view["overdue"] is True
