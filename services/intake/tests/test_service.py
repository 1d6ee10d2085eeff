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
        routing_key=f"{opd_code}.jakarta-selatan",
        hop=hop,
        category="jalan",
        **{"area": AREA, **fields},
    ).to_message()


def routed_report(service: Any, opd_code: str = DINAS, deadline: datetime | None = None) -> str:
    report_id = submit(service)["report_id"]
    service.apply_routing_results([routed_event(report_id, opd_code, response_deadline=deadline)])
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
        "photos", "distance_m", "supporters", "merged_into",
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
    service.apply_routing_results([event])
    service.apply_routing_results([event])  # redelivered: no second change

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
    service.apply_routing_results([event.to_message()])
    stored = service.store.reports[report_id]
    assert stored["assigned_opd"]["code"] == "triage" and stored["triage_reason"] == "outside_jakarta"
    assert stored["history"][-1]["kind"] == "triage"


def test_a_routing_result_for_an_older_hop_changes_nothing(service: Any) -> None:
    report_id = routed_report(service)
    service.apply_routing_results([routed_event(report_id, OTHER_OPD, hop=3)])
    assert service.store.reports[report_id]["assigned_opd"]["code"] == DINAS


def test_routing_results_that_cannot_be_applied(service: Any) -> None:
    with pytest.raises(PermanentFailure):
        service.apply_routing_results([{"event_type": "routing.something_else"}])
    with pytest.raises(LookupError):  # retried, then dead-lettered
        service.apply_routing_results([routed_event("JK-20300101-000001")])


def woken_lists(service: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    woken: list[str] = []
    monkeypatch.setattr(service.opd_streams, "wake_all", lambda codes: woken.extend(codes))
    return woken


def test_a_batch_of_routing_results_reads_and_writes_once(service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = submit(service)["report_id"], submit(service)["report_id"]
    woken = woken_lists(service, monkeypatch)
    event = routed_event(first)
    service.apply_routing_results([event, routed_event(second, OTHER_OPD), event])  # one of them twice
    store = service.store
    # a round per result of a report: the repeat is read in a second round, found applied, and not written
    assert (store.batch_reads, store.batch_writes) == (2, 1)
    assert store.reports[first]["assigned_opd"]["code"] == DINAS and store.reports[first]["version"] == 2
    assert [entry["kind"] for entry in store.reports[first]["history"]] == ["submitted", "routed"]
    assert store.reports[second]["assigned_opd"]["code"] == OTHER_OPD and store.reports[second]["version"] == 2
    assert sorted(woken) == sorted([DINAS, OTHER_OPD])
    woken.clear()
    service.apply_routing_results([event, routed_event(second, OTHER_OPD, hop=5)])  # redelivered; an older hop's
    assert (store.batch_reads, store.batch_writes) == (3, 1), "nothing changes: nothing written"
    assert store.reports[first]["version"] == 2 and store.reports[second]["version"] == 2 and woken == []


def test_a_reports_two_results_in_one_batch_apply_in_order(service: Any) -> None:
    report_id = submit(service)["report_id"]
    unroutable = ReportUnroutable(
        report_id=report_id,
        version=2,
        reason="outside_jakarta",
        detail="no area",
        routing_key="triage",
        category="jalan",
    )
    service.apply_routing_results([unroutable.to_message(), routed_event(report_id, OTHER_OPD, area=None)])
    stored = service.store.reports[report_id]
    assert stored["assigned_opd"]["code"] == OTHER_OPD and stored["version"] == 3
    assert stored["triage_reason"] == "outside_jakarta" and stored["area"] is None
    assert [entry["kind"] for entry in stored["history"]] == ["submitted", "triage", "routed"]


def test_a_result_applied_meanwhile_by_another_worker_is_not_applied_twice(service: Any) -> None:
    report_id = submit(service)["report_id"]
    event = routed_event(report_id)
    store = service.store

    def another_worker() -> None:
        store.before_batch_write = None
        service.apply_routing_results([event])  # the same result, redelivered to another worker

    store.before_batch_write = another_worker
    service.apply_routing_results([event])
    assert store.reports[report_id]["version"] == 2 and store.reports[report_id]["applied_events"] == [
        event["event_id"]
    ]


def test_a_bad_message_fails_its_batch_before_anything_is_written(service: Any) -> None:
    report_id = submit(service)["report_id"]
    good = routed_event(report_id)
    for bad, failure in [
        ({"event_type": "routing.report_routed", "report_id": report_id}, PermanentFailure),
        (routed_event("JK-20300101-000001"), LookupError),  # an unknown report: retried alone, then dead-lettered
    ]:
        with pytest.raises(failure):
            service.apply_routing_results([good, bad])
        assert service.store.reports[report_id]["version"] == 1 and service.store.batch_writes == 0
    service.apply_routing_results([good])  # the batch consumer hands it over alone
    assert service.store.reports[report_id]["assigned_opd"]["code"] == DINAS


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
    # verification is on by default: the report waits for the verifier (tests/test_verification_api.py)
    assert status == 200 and (view["status"], view["pending_verification"]) == (DIKERJAKAN, True)
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
    assert (status, view["status"], len(service.photos.objects)) == (200, DIKERJAKAN, 1)  # pending verification
    assert view["verification"]["state"] == "pending"


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


# ---- the workbench: sessions, the work list, the OPD view, the directory, the live list ----------------------------


def raw(handler: Callable[..., Response], *args: Any) -> Response:
    """An entrypoint's answer as the client gets it, errors included."""
    try:
        return handler(*args)
    except Exception as exc:
        return ENDPOINT.response_from_exception(exc)


def sign_in(service: Any, opd_code: str = DINAS, **headers: str) -> tuple[str, str]:
    """A session of `opd_code`: its cookie header and CSRF token."""
    request = EnvironBuilder(
        method="POST", path="/api/v1/opd/session", json={"key": derive_key(OPD_KEY_SECRET, opd_code)}, headers=headers
    ).get_request()
    response = raw(service.sign_in, request)
    assert response.status_code == 201, response.get_data()
    token = response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    return f"jaklapor_opd_session={token}", json.loads(response.get_data())["csrf_token"]


def with_cookie(method: str, cookie: str, fields: dict[str, str] | None = None, **headers: str) -> Request:
    return EnvironBuilder(method=method, path="/", data=fields, headers={"Cookie": cookie, **headers}).get_request()


def test_a_key_is_exchanged_for_a_session_cookie_that_signs_out(service: Any) -> None:
    key = derive_key(OPD_KEY_SECRET, DINAS)
    request = EnvironBuilder(method="POST", path="/", data={"key": key}).get_request()  # a form, as a plain <form>
    response = raw(service.sign_in, request)
    assert response.status_code == 201
    body = json.loads(response.get_data())
    assert body["opd"]["code"] == DINAS and body["csrf_token"] and body["expires_at"] < body["absolute_expires_at"]
    cookie = response.headers["Set-Cookie"]
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) == 43  # 256 random bits
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/", "Secure", "Max-Age=43200"):
        assert attribute in cookie  # PUBLIC_URL is https here
    assert key not in response.get_data(as_text=True) and response.headers["Cache-Control"] == "no-store"
    # the store keeps the token's hash only
    assert list(service.sessions.sessions) == [hash_token(token)]
    assert token not in json.dumps(service.sessions.sessions, default=str)

    jar = f"jaklapor_opd_session={token}"
    status, current, _ = answer(service.current_session, with_cookie("GET", jar))
    assert (status, current["csrf_token"], current["opd"]["code"]) == (200, body["csrf_token"], DINAS)
    status, me, _ = answer(service.whoami, with_cookie("GET", jar))
    assert (status, me["opd"]["code"]) == (200, DINAS)

    refused = raw(service.sign_out, with_cookie("DELETE", jar))
    assert refused.status_code == 403 and json.loads(refused.get_data())["error"]["code"] == "csrf_failed"
    signed_out = raw(service.sign_out, with_cookie("DELETE", jar, **{"X-CSRF-Token": body["csrf_token"]}))
    assert signed_out.status_code == 204 and "Max-Age=0" in signed_out.headers["Set-Cookie"]
    assert service.sessions.sessions == {}
    status, error, headers = answer(service.whoami, with_cookie("GET", jar))
    assert (status, error["error"]["code"]) == (401, "session_expired") and "Max-Age=0" in headers["Set-Cookie"]
    assert raw(service.sign_out, with_cookie("DELETE", jar)).status_code == 204  # signing out again is done


def test_a_session_ends_when_idle_or_old(service: Any) -> None:
    cookie, _ = sign_in(service)
    (session,) = service.sessions.sessions.values()
    session["expires_at"] = datetime.now(UTC) - timedelta(seconds=1)
    status, error, _ = answer(service.whoami, with_cookie("GET", cookie))
    assert (status, error["error"]["code"]) == (401, "session_expired")
    status, error, _ = answer(service.whoami, with_cookie("GET", "jaklapor_opd_session=not-a-token"))
    assert (status, error["error"]["code"]) == (401, "session_expired")
    status, error, headers = answer(service.whoami, get("/"))
    assert (status, error["error"]["code"]) == (401, "unauthenticated") and "Bearer" in headers["WWW-Authenticate"]


def test_a_request_moves_the_idle_expiry_on_but_not_past_the_absolute_one(service: Any) -> None:
    cookie, _ = sign_in(service)
    (session,) = service.sessions.sessions.values()
    session["last_seen_at"] -= timedelta(hours=11, minutes=30)
    session["absolute_expires_at"] -= timedelta(hours=11, minutes=30)
    session["expires_at"] = session["absolute_expires_at"] - timedelta(minutes=10)
    answer(service.whoami, with_cookie("GET", cookie))
    assert session["expires_at"] == session["absolute_expires_at"]


def test_wrong_keys_are_slowed_down_per_client(service: Any) -> None:
    now = [1000.0]
    service.key_throttle = FailureThrottle(free=5, max_wait=900, clock=lambda: now[0])
    from_client = {"X-Forwarded-For": "10.9.8.7"}  # ignored: no trusted proxy in these settings

    def wrong() -> Request:
        return EnvironBuilder(
            method="POST", path="/", json={"key": f"{DINAS}.wrong"}, headers=from_client
        ).get_request()

    def right() -> Request:
        return EnvironBuilder(method="POST", path="/", json={"key": derive_key(OPD_KEY_SECRET, DINAS)}).get_request()

    statuses = [raw(service.sign_in, wrong()).status_code for _ in range(6)]
    assert statuses == [401, 401, 401, 401, 401, 429]
    refused = raw(service.sign_in, right())
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert json.loads(refused.get_data())["error"]["code"] == "too_many_failures"
    # the same key in a Bearer header waits just as long
    assert answer(service.whoami, get("/", opd_auth(DINAS)))[0] == 429
    now[0] += 2
    assert raw(service.sign_in, right()).status_code == 201  # and a success forgets the failures
    assert [raw(service.sign_in, wrong()).status_code for _ in range(5)] == [401] * 5


def test_a_session_changes_a_report_only_with_its_csrf_token_from_its_own_origin(service: Any) -> None:
    report_id = routed_report(service, DINAS)
    cookie, csrf = sign_in(service)
    fields = {"status": "dikerjakan", "note": "Petugas berangkat"}
    for headers in ({}, {"X-CSRF-Token": "x" * 43}, {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}):
        status, body, _ = answer(service.transition, with_cookie("POST", cookie, fields, **headers), report_id)
        assert (status, body["error"]["code"]) == (403, "csrf_failed"), headers
    assert service.store.reports[report_id]["status"] == MENUNGGU
    headers = {"X-CSRF-Token": csrf, "Origin": "https://lapor.example"}
    status, view, _ = answer(service.transition, with_cookie("POST", cookie, fields, **headers), report_id)
    assert (status, view["status"]) == (200, DIKERJAKAN)
    assert view["allowed_transitions"] == [KOORDINASI, SELESAI]


def test_sign_in_from_another_origin_is_refused(service: Any) -> None:
    request = EnvironBuilder(
        method="POST",
        path="/",
        json={"key": derive_key(OPD_KEY_SECRET, DINAS)},
        headers={"Origin": "https://evil.example"},
    ).get_request()
    status, body, _ = answer(service.sign_in, request)
    assert (status, body["error"]["code"]) == (403, "csrf_failed")
    status, body, _ = answer(service.sign_in, EnvironBuilder(method="POST", path="/", json={}).get_request())
    assert (status, body["error"]["field"]) == (422, "key")


def test_another_opds_report_is_not_found_with_a_session(service: Any) -> None:
    report_id = routed_report(service, DINAS)
    cookie, _ = sign_in(service, OTHER_OPD)
    status, body, _ = answer(service.opd_get_report, with_cookie("GET", cookie), report_id)
    assert (status, body["error"]["code"]) == (404, "report_not_found")


MELAWAI = AreaRef(code="31.74.07.1001", kelurahan="Melawai", kecamatan="Kebayoran Baru", kota="Jakarta Selatan")


def held_report(service: Any, deadline: datetime | None, area: AreaRef = AREA, category: str = "jalan") -> str:
    report_id = submit(service, category=category)["report_id"]
    service.apply_routing_results([routed_event(report_id, SUDIN, response_deadline=deadline, area=area)])
    return report_id


def work_list(service: Any, query: str = "", opd_code: str = SUDIN) -> tuple[int, dict[str, Any]]:
    status, body, _ = answer(service.work_list, get(f"/api/v1/opd/reports?{query}", opd_auth(opd_code)))
    return status, body


def test_the_work_list_is_overdue_first_then_by_deadline_then_oldest(service: Any) -> None:
    now = datetime.now(UTC)
    later = held_report(service, now + timedelta(days=2))
    sooner = held_report(service, now + timedelta(days=1))
    answered = held_report(service, now + timedelta(hours=1))
    answer(service.transition, post("/", {"status": "dikerjakan"}, headers=opd_auth(SUDIN)), answered)
    overdue = held_report(service, now + timedelta(days=3))
    service.store.reports[overdue].update(escalation_exhausted=True)
    done = held_report(service, now + timedelta(days=1), MELAWAI)
    answer(
        service.transition,
        post("/", {"status": "ditolak", "note": "x", "reason": "spam"}, headers=opd_auth(SUDIN)),
        done,
    )
    routed_report(service, DINAS)  # another OPD's

    status, body = work_list(service)
    assert status == 200
    assert [r["report_id"] for r in body["reports"]] == [overdue, sooner, later, answered]
    first = body["reports"][0]
    assert first["overdue"] is True and first["hop"] == 0 and first["status_label"] == "Menunggu"
    assert set(first) >= {"report_id", "category", "description", "location", "area", "submitted_at", "updated_at"}
    assert body["reports"][3]["response_deadline"] is None and body["next_cursor"] is None
    assert body["counts"]["by_status"][MENUNGGU] == 3 and body["counts"]["by_status"][DITOLAK] == 1
    assert body["counts"]["overdue"] == 1

    _, page = work_list(service, "limit=2")
    assert [r["report_id"] for r in page["reports"]] == [overdue, sooner]
    _, rest = work_list(service, f"limit=2&cursor={page['next_cursor']}")
    assert [r["report_id"] for r in rest["reports"]] == [later, answered] and rest["next_cursor"] is None

    assert [r["report_id"] for r in work_list(service, "status=dikerjakan")[1]["reports"]] == [answered]
    assert {r["report_id"] for r in work_list(service, "status=ditolak,dikerjakan")[1]["reports"]} == {answered, done}
    assert [r["report_id"] for r in work_list(service, "status=ditolak&kelurahan=melawai")[1]["reports"]] == [done]
    assert work_list(service, "status=ditolak&kecamatan=Kebayoran%20Baru&kelurahan=31.74.07.1001")[1]["reports"]
    assert work_list(service, "category=pohon")[1]["reports"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=menunggu,hilang", "status"),
        ("category=bukan", "category"),
        ("kecamatan=Atlantis", "kecamatan"),
        ("kelurahan=31.99.99.9999", "kelurahan"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=abc", "cursor"),
        ("limit=2&limit=3", "limit"),
    ],
)
def test_a_bad_work_list_query_is_a_400_naming_it(service: Any, query: str, field: str) -> None:
    status, body = work_list(service, query)
    assert (status, body["error"]["code"], body["error"]["field"]) == (400, "invalid_query", field)


def test_the_counts_of_an_opd(service: Any) -> None:
    held_report(service, None)
    status, body, _ = answer(service.work_counts, get("/", opd_auth(SUDIN)))
    assert status == 200 and body["by_status"][MENUNGGU] == 1 and sum(body["by_status"].values()) == 1


def test_the_opd_view_says_what_the_caller_may_do_and_shows_reports_nearby(service: Any) -> None:
    report_id = routed_report(service, DINAS)
    service.store.reports[report_id]["area"]["kota_slug"] = "jakarta-selatan"
    twin = submit(service)["report_id"]
    submit(service, category="pohon")
    status, view, _ = answer(service.opd_get_report, get("/", opd_auth(DINAS)), report_id)
    assert status == 200
    assert view["allowed_transitions"] == [KOORDINASI, DISPOSISI, DIKERJAKAN, DITOLAK]
    assert view["disposisi_target"]["code"] == SUDIN
    assert [near["report_id"] for near in view["nearby"]] == [twin]
    assert view["nearby"][0]["distance_m"] == 0 and "tracking_token_hash" not in view["nearby"][0]

    handed = post("/", {"status": "disposisi", "note": "Mohon ditangani"}, headers=opd_auth(DINAS))
    status, after, _ = answer(service.transition, handed, report_id)
    assert (status, after["allowed_transitions"], after["disposisi_target"]) == (200, [], None)
    status, view, _ = answer(service.opd_get_report, get("/", opd_auth(SUDIN)), report_id)
    assert DISPOSISI not in view["allowed_transitions"] and view["disposisi_target"] is None


def test_the_directory_finds_opds_by_words_in_any_case_and_accents(service: Any) -> None:
    def search(query: str) -> tuple[int, dict[str, Any]]:
        status, body, _ = answer(service.opd_directory, get(f"/api/v1/opd/directory?{query}", opd_auth(DINAS)))
        return status, body

    status, body = search("q=B%C3%8DNA%20marga%20selatan")  # "BÍNA marga selatan"
    assert status == 200
    assert body["opds"][0] == {
        "code": SUDIN,
        "name": REFERENCE.directory.get(SUDIN).name,
        "level": "suku-dinas",
        "kota": "jakarta-selatan",
    }
    assert search(f"q={SUDIN}")[1]["opds"][0]["code"] == SUDIN
    assert {o["level"] for o in search("q=marga&level=dinas")[1]["opds"]} == {"dinas"}
    assert len(search("limit=3")[1]["opds"]) == 3
    assert search("q=zzzz-tidak-ada")[1]["opds"] == []
    status, body = search("level=kementerian")
    assert (status, body["error"]["field"]) == (400, "level")
    assert answer(service.opd_directory, get("/"))[0] == 401


def frames(stream: Any, count: int) -> list[tuple[str, dict[str, Any]]]:
    """The next `count` events of a live list (comments and the retry line skipped)."""
    found = []
    while len(found) < count:
        chunk = next(stream).decode()
        if chunk.startswith("event: "):
            event, data = chunk.split("\n")[:2]
            found.append((event.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return found


def open_stream(service: Any, request: Request) -> Any:
    response = raw(service.opd_stream, request)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    return iter(response.response)


def test_the_live_list_sees_a_report_handed_over_leave_one_opd_and_reach_the_other(service: Any) -> None:
    report_id = routed_report(service, DINAS)
    source = open_stream(service, get("/", opd_auth(DINAS)))
    (ready,) = frames(source, 1)
    assert ready[0] == "ready" and ready[1]["held"] == 1 and ready[1]["counts"]["by_status"][MENUNGGU] == 1
    cookie, csrf = sign_in(service, OTHER_OPD)
    target = open_stream(service, with_cookie("GET", cookie))
    assert frames(target, 1)[0][1]["held"] == 0

    handover = {"status": "koordinasi", "note": "Bukan kewenangan kami", "target_opd": OTHER_OPD}
    assert answer(service.transition, post("/", handover, headers=opd_auth(DINAS)), report_id)[0] == 200
    (removed, counts) = frames(source, 2)
    assert removed == ("report", {"report_id": report_id, "change": "removed", "status": KOORDINASI})
    assert counts[0] == "counts" and counts[1]["by_status"][MENUNGGU] == 0
    added, _ = frames(target, 2)
    assert added[1]["change"] == "added" and added[1]["report"]["report_id"] == report_id

    # routing's answer for the new hop, heard on the broadcast queue: an update for the new holder
    event = routed_event(report_id, OTHER_OPD, hop=1)
    service.apply_routing_results([event])
    updated, _ = frames(target, 2)
    assert (updated[1]["change"], updated[1]["report"]["hop"]) == ("updated", 1)
    service.wake_opd_streams([event])  # a replica's own broadcast: nothing changed since, nothing sent
    assert service.opd_streams.streams(OTHER_OPD) == 1

    signed_out = raw(service.sign_out, with_cookie("DELETE", cookie, **{"X-CSRF-Token": csrf}))
    assert signed_out.status_code == 204
    assert frames(target, 1)[0][0] == "signed_out"
    with pytest.raises(StopIteration):
        next(target)
    assert service.opd_streams.streams(OTHER_OPD) == 0


def test_an_opd_has_a_bounded_number_of_live_lists(service: Any) -> None:
    streams = [open_stream(service, get("/", opd_auth(DINAS))) for _ in range(2)]
    for stream in streams:
        frames(stream, 1)  # subscribed
    status, body, headers = answer(service.opd_stream, get("/", opd_auth(DINAS)))
    assert (status, body["error"]["code"]) == (429, "too_many_streams") and headers["Retry-After"]
    for stream in streams:
        stream.close()
    assert service.opd_streams.streams(DINAS) == 0
