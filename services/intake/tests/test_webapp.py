"""The web apps' pages and files as intake serves them (the citizen app, the OPD workbench, what they share): the
Content-Security-Policy built from the settings, gzip when accepted, and nothing outside the served folders."""

from __future__ import annotations

import gzip

import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from jaklapor.web import ApiError
from services.intake.service import IntakeService
from services.intake.settings import IntakeSettings
from services.intake.webapp import content_security_policy, origin_of

SETTINGS = IntakeSettings(
    public_url="https://lapor.example",
    notify_public_url="https://notify.lapor.example/",
    stats_public_url="https://stats.lapor.example",
    map_tile_url="https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png",
    map_tile_attribution="© OpenStreetMap contributors",
    opd_key_secret="s",
    token_secret="t",
    contact_key="k",
)


def get(path: str, **headers: str) -> Request:
    return EnvironBuilder(method="GET", path=path, headers=headers).get_request()


def test_origins_for_the_policy() -> None:
    assert origin_of("https://tile.openstreetmap.org/{z}/{x}/{y}.png") == "https://tile.openstreetmap.org"
    assert origin_of("https://{s}.tile.example:8443/{z}/{x}/{y}.png") == "https://*.tile.example:8443"
    assert origin_of("") == ""
    assert origin_of("/tiles/{z}/{x}/{y}.png") == ""  # same origin: 'self' covers it


def test_the_policy_allows_only_this_origin_the_tiles_and_the_live_stream() -> None:
    policy = dict(d.split(" ", 1) for d in content_security_policy(SETTINGS, SETTINGS.notify_public_url).split("; "))
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["img-src"] == "'self' blob: data: https://*.tile.openstreetmap.org"
    assert policy["connect-src"] == "'self' https://notify.lapor.example"
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
    without_tiles = content_security_policy(SETTINGS.model_copy(update={"map_tile_url": ""}), "")
    assert "img-src 'self' blob: data:;" in without_tiles


@pytest.fixture
def service() -> IntakeService:
    return worker_factory(IntakeService, settings=SETTINGS)


def test_the_shell_is_served_with_its_policy_and_gzip_when_accepted(service: IntakeService) -> None:
    plain = service.app_home(get("/"))
    assert plain.status_code == 200 and plain.mimetype == "text/html"
    assert b'<html lang="id">' in plain.get_data()
    assert plain.headers["Content-Security-Policy"] == content_security_policy(SETTINGS, SETTINGS.notify_public_url)
    assert plain.headers["X-Content-Type-Options"] == "nosniff"
    assert plain.headers["Referrer-Policy"] == "no-referrer"
    assert plain.headers["Cache-Control"] == "no-cache"
    packed = service.app_tracking(get("/lacak", **{"Accept-Encoding": "gzip, br"}))
    assert packed.headers["Content-Encoding"] == "gzip" and packed.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(packed.get_data()) == plain.get_data()


def test_app_files_and_the_service_worker(service: IntakeService) -> None:
    script = service.app_file(get("/app/main.js"), "main.js")
    assert script.mimetype == "text/javascript" and "Content-Security-Policy" in script.headers
    name = "vendor/leaflet/images/marker-icon.png"
    image = service.shared_file(get(f"/shared/{name}"), name)
    assert image.mimetype == "image/png" and "Content-Encoding" not in image.headers
    worker = service.app_service_worker(get("/sw.js"))
    assert worker.headers["Service-Worker-Allowed"] == "/" and worker.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    "name",
    ["../service.py", "vendor/../../service.py", "vendor/leaflet/LICENSE", "index.html", "nope.js", ".hidden.js"],
)
def test_nothing_else_is_served(service: IntakeService, name: str) -> None:
    with pytest.raises(ApiError) as refused:
        service.app_file(get(f"/app/{name}"), name)
    assert refused.value.status == 404


def test_the_workbench_pages_and_files_connect_to_stats_not_notify(service: IntakeService) -> None:
    for page in (
        service.workbench_list(get("/opd/")),
        service.workbench_report(get("/opd/laporan/JK-20261128-000042"), "JK-20261128-000042"),
        service.workbench_performance(get("/opd/kinerja")),
    ):
        assert page.status_code == 200 and page.mimetype == "text/html"
        assert b'<html lang="id">' in page.get_data()
        policy = dict(d.split(" ", 1) for d in page.headers["Content-Security-Policy"].split("; "))
        assert policy["connect-src"] == "'self' https://stats.lapor.example"
        assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
        assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["Cache-Control"] == "no-cache"
    script = service.workbench_file(get("/opd/main.js"), "main.js")
    assert script.mimetype == "text/javascript" and "stats.lapor.example" in script.headers["Content-Security-Policy"]
    with pytest.raises(ApiError) as refused:
        service.workbench_file(get("/opd/index.html"), "index.html")
    assert refused.value.status == 404


@pytest.mark.parametrize("name", ["../app/main.js", "vendor/leaflet/LICENSE", "nope.css"])
def test_nothing_else_is_shared(service: IntakeService, name: str) -> None:
    with pytest.raises(ApiError) as refused:
        service.shared_file(get(f"/shared/{name}"), name)
    assert refused.value.status == 404
