"""The citizen web app in a real browser (Playwright, Debian's Chromium, a phone's viewport) against the running
system: reporting photo first (the pin from the photo's GPS, from the phone's location, from the kelurahan picker by
keyboard only), no signal and no loss (offline, then filed exactly once), tracking live as the OPD acts, hostile
text shown as text, a strict Content-Security-Policy on every page, accessibility (axe-core), a light shell."""

from __future__ import annotations

import functools
import io
import os
import re
import time
from html.parser import HTMLParser
from typing import Any

import pymongo
import pytest
import requests
from PIL import Image
from playwright.sync_api import expect

from services.stats.tests.e2e_helpers import Filed, act, submit, view, wait_assigned
from tests.browser import (
    browser_fixture,
    new_phone,
    phone_fixture,
    serious_accessibility_violations,
    wait_until_image_shows,
)
from tests.photo_fixtures import gps_exif, jpeg_bytes, realistic_photo_jpeg
from tests.system import ROOT, RunningSystem, wait_for

pytestmark = pytest.mark.e2e
FIXTURES = (browser_fixture, phone_fixture)  # the browser and a phone (tests/browser.py)

PAGES = ("/", "/lacak", "/laporan-saya")
# Rawamangun, Jakarta Timur: its kelurahan's roads belong to the Sudin Bina Marga Jakarta Timur
RAWAMANGUN = (-6.19429, 106.88296)
MONAS = (-6.175392, 106.827153)
HOSTILE = "<img src=x onerror=alert(1)>"


def app_url(system: RunningSystem, path: str = "/") -> str:
    return system.url("intake", path)


def reports_with(system: RunningSystem, description: str) -> list[dict[str, Any]]:
    """The stored reports with this description (intake's own store: the API has no search by text)."""
    client = pymongo.MongoClient(system.mongo_uri, serverSelectionTimeoutMS=5000)
    try:
        return list(client["jaklapor_intake"]["reports"].find({"description": description}, {"_id": 1}))
    finally:
        client.close()


@functools.cache
def phone_photo(lat: float | None = None, lon: float | None = None) -> bytes:
    """A 12-megapixel phone photo of several MB, with the camera's GPS when given."""
    image = Image.open(io.BytesIO(realistic_photo_jpeg(target_kb=3500, size=(4000, 3000))))
    out = io.BytesIO()
    exif = gps_exif(lat, lon) if lat is not None and lon is not None else Image.Exif()
    image.save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()


def open_app(context: Any, url: str) -> Any:
    page = context.new_page()
    page.errors: list[str] = []  # type: ignore[misc]
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("body[data-state=ready]")
    return page


def choose_category(page: Any, text: str) -> None:
    page.fill("#category-search", text)


def test_every_page_has_a_strict_content_security_policy(system: RunningSystem) -> None:
    for path in (*PAGES, "/sw.js", "/app/main.js", "/shared/style.css", "/shared/vendor/leaflet/leaflet.js"):
        response = requests.get(app_url(system, path), timeout=10)
        assert response.status_code == 200, path
        policy = response.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'", "no inline script, no eval"
        assert directives["style-src"] == "'self'"
        assert directives["base-uri"] == "'none'" and directives["frame-ancestors"] == "'none'"
        assert directives["connect-src"] == f"'self' {system.url('notify')}"
        # images: this origin, the photos being resized (blob:, data:) and the map tiles' server (OpenStreetMap's by
        # default), nothing else
        assert directives["img-src"] == "'self' blob: data: https://tile.openstreetmap.org"
        assert "unsafe" not in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert requests.get(app_url(system, "/sw.js"), timeout=10).headers["Service-Worker-Allowed"] == "/"

    # the HTML itself: no inline script, no inline style, no event-handler attributes
    class Inline(HTMLParser):
        found: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            names = {name for name, _ in attrs}
            if (tag == "script" and "src" not in names) or tag == "style" or "style" in names:
                self.found.append(tag)
            self.found.extend(name for name in names if name.startswith("on"))

    inline = Inline()
    inline.feed(requests.get(app_url(system), timeout=10).text)
    assert inline.found == []
    for bad in ("/app/../service.py", "/app/%2e%2e/service.py", "/shared/vendor/leaflet/LICENSE", "/app/nope.js"):
        assert requests.get(app_url(system, bad), timeout=10).status_code == 404, bad


def test_the_shell_loads_within_its_300_kb_budget(system: RunningSystem, phone: Any) -> None:
    """The size budget of a first visit (map tiles aside); how fast it loads on a slow signal is measured by
    bench/bench_citizen_app.py, never timed here."""
    page = phone.new_page()
    transferred: dict[str, int] = {}

    def record(request: Any) -> None:
        sizes = request.sizes()
        transferred[request.url] = sizes["responseBodySize"] + sizes["responseHeadersSize"]

    page.on("requestfinished", record)
    page.goto(app_url(system))
    page.wait_for_selector("body[data-state=ready]")
    page.wait_for_load_state("networkidle")
    shell = {url: size for url, size in transferred.items() if "/api/" not in url}
    assert sum(shell.values()) <= 300_000, shell
    assert any(url.endswith("leaflet.js") for url in shell)


def photo_file(tmp_path: Any, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_a_report_with_a_gps_photo_places_the_pin_there_and_is_filed(
    system: RunningSystem, phone: Any, tmp_path: Any
) -> None:
    page = open_app(phone, app_url(system))
    original = phone_photo(*RAWAMANGUN)
    assert len(original) > 2_500_000
    page.set_input_files("#photos", photo_file(tmp_path, "IMG_0001.jpg", original))

    # the pin is where the photo was taken, read from its EXIF in the browser
    page.wait_for_selector("#map[data-pin-source=photo]")
    lat, lon = (float(v) for v in page.get_attribute("#map", "data-pin").split(","))
    assert abs(lat - RAWAMANGUN[0]) < 1e-4 and abs(lon - RAWAMANGUN[1]) < 1e-4
    assert "dari foto" in page.inner_text("#location-status")
    assert page.locator(".leaflet-marker-icon").count() == 1
    # made small before upload: a few hundred KB instead of several MB
    uploaded_size = int(page.get_attribute("#photo-list li", "data-size"))
    assert uploaded_size < 800_000 < len(original)

    choose_category(page, "Jalan")
    page.select_option("#category", "jalan")
    description = f"Jalan berlubang dekat halte, foto dari kamera {time.time_ns()}"
    page.fill("#description", description)
    assert page.inner_text("#description-count").startswith(f"{len(description)} / 2000")
    page.click("#submit")

    page.wait_for_selector("#sent-number")
    report_id = page.inner_text("#sent-number")
    assert re.fullmatch(r"JK-\d{8}-\d{6}", report_id)
    link = page.input_value("#tracking-link")
    assert link.startswith(app_url(system, "/lacak#"))
    token = link.split("#", 1)[1]
    view = requests.get(app_url(system, f"/api/v1/reports/{token}"), timeout=10).json()
    assert view["report_id"] == report_id and view["description"] == description
    assert abs(view["location"]["lat"] - RAWAMANGUN[0]) < 1e-4
    assert len(view["photos"]) == 1
    stored = requests.get(view["photos"][0], timeout=10)
    assert stored.status_code == 200 and len(stored.content) < 800_000
    assert Image.open(io.BytesIO(stored.content)).size[0] <= 2048

    # "my reports" on the device lists it, with its tracking link
    page.goto(app_url(system, "/laporan-saya"))
    page.wait_for_selector("body[data-state=ready]")
    card = page.locator(f"#mine-list li[data-report-id='{report_id}']")
    assert card.locator("a").get_attribute("href") == f"/lacak#{token}"
    assert page.errors == []


def test_a_report_with_the_phones_location(system: RunningSystem, browser: Any, tmp_path: Any) -> None:
    context = new_phone(browser, geolocation={"latitude": MONAS[0], "longitude": MONAS[1]})
    try:
        context.grant_permissions(["geolocation"])
        page = open_app(context, app_url(system))
        # a photo without GPS: the phone's location places the pin
        page.set_input_files("#photos", photo_file(tmp_path, "no-gps.jpg", jpeg_bytes((640, 480))))
        page.wait_for_selector("#map[data-pin-source=device]")
        lat, lon = (float(v) for v in page.get_attribute("#map", "data-pin").split(","))
        assert abs(lat - MONAS[0]) < 1e-5 and abs(lon - MONAS[1]) < 1e-5
        page.select_option("#category", "jalan")
        description = f"Trotoar rusak di Monas {time.time_ns()}"
        page.fill("#description", description)
        page.click("#submit")
        page.wait_for_selector("#sent-number")
        assert len(reports_with(system, description)) == 1
    finally:
        context.close()


def test_offline_the_report_is_kept_and_filed_exactly_once_when_back_online(
    system: RunningSystem, phone: Any, tmp_path: Any
) -> None:
    page = open_app(phone, app_url(system))
    page.set_input_files("#photos", photo_file(tmp_path, "banjir.jpg", phone_photo(*RAWAMANGUN)))
    page.wait_for_selector("#map[data-pin-source=photo]")
    page.select_option("#category", "jalan")
    description = f"Jalan tergenang, tidak ada sinyal {time.time_ns()}"
    page.fill("#description", description)

    page.evaluate("navigator.serviceWorker.ready.then(() => true)")  # the shell is cached for the offline visit
    phone.set_offline(True)
    page.click("#submit")
    page.wait_for_selector("body[data-sent=kept]")
    assert page.inner_text("#sent-title") == "Tersimpan, akan dikirim"
    assert "akan dikirim" in page.inner_text("#outbox-status")
    kept = page.evaluate(
        """() => new Promise((resolve) => {
             const open = indexedDB.open("jaklapor");
             open.onsuccess = () => {
               const all = open.result.transaction("outbox").objectStore("outbox").getAll();
               all.onsuccess = () => resolve(all.result.map((s) => ({key: s.key, photos: s.photos.length,
                                                                    bytes: s.photos[0].size})));
             };
           })"""
    )
    assert len(kept) == 1 and kept[0]["photos"] == 1 and 10_000 < kept[0]["bytes"] < 800_000
    assert reports_with(system, description) == []

    # the app shell still opens with no signal (service worker), the report still waiting
    offline_page = open_app(phone, app_url(system, "/laporan-saya"))
    offline_page.wait_for_selector("#mine-list li.pending")
    offline_page.close()

    phone.set_offline(False)
    page.wait_for_selector("#sent-number", timeout=45_000)
    assert page.inner_text("#sent-title") == "Laporan terkirim"
    report_id = page.inner_text("#sent-number")
    time.sleep(1)  # a second send would have happened by now (online event, start, retry timer)
    assert [r["_id"] for r in reports_with(system, description)] == [report_id]
    assert (
        page.evaluate(
            """() => new Promise((resolve) => {
             const open = indexedDB.open("jaklapor");
             open.onsuccess = () => {
               const count = open.result.transaction("outbox").objectStore("outbox").count();
               count.onsuccess = () => resolve(count.result);
             };
           })"""
        )
        == 0
    )


OUTBOX = """() => new Promise((resolve) => {
  const open = indexedDB.open("jaklapor");
  open.onsuccess = () => {
    const all = open.result.transaction("outbox").objectStore("outbox").getAll();
    all.onsuccess = () => resolve(all.result.map((s) => ({key: s.key, fields: s.fields, photos: s.photos.length,
                                                         refused: s.refused || null})));
  };
})"""

# the kept submission's category replaced in IndexedDB, as if the category was withdrawn while the phone was offline
WITHDRAW_CATEGORY = """(category) => new Promise((resolve) => {
  const open = indexedDB.open("jaklapor");
  open.onsuccess = () => {
    const store = open.result.transaction("outbox", "readwrite").objectStore("outbox");
    const all = store.getAll();
    all.onsuccess = () => {
      for (const submission of all.result) store.put({...submission, fields: {...submission.fields, category}});
      resolve(all.result.length);
    };
  };
})"""


def test_a_report_refused_when_back_online_is_kept_shown_with_the_reason_and_deleted(
    system: RunningSystem, phone: Any, tmp_path: Any
) -> None:
    page = open_app(phone, app_url(system))
    page.set_input_files("#photos", photo_file(tmp_path, "got.jpg", phone_photo(*RAWAMANGUN)))
    page.wait_for_selector("#map[data-pin-source=photo]")
    page.select_option("#category", "jalan")
    description = f"Got mampet, dikirim tanpa sinyal {time.time_ns()}"
    page.fill("#description", description)
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    phone.set_offline(True)
    page.click("#submit")
    page.wait_for_selector("body[data-sent=kept]")
    assert page.evaluate(WITHDRAW_CATEGORY, "kategori-yang-dihapus") == 1

    # back online: the server refuses it for good (422 unknown_category); the screen says so, in plain words
    phone.set_offline(False)
    page.wait_for_selector("body[data-sent=refused]", timeout=45_000)
    assert page.inner_text("#sent-title") == "Laporan ditolak"
    assert page.inner_text("#refused-reason") == "Kategori ini sudah tidak ada. Pilih kategori lain."
    assert "unknown_category" in page.inner_text("#sent-body")
    # kept on the device, marked refused, and not sent again by itself
    kept = page.evaluate(OUTBOX)
    assert len(kept) == 1 and kept[0]["refused"]["status"] == 422 and kept[0]["photos"] == 1
    assert kept[0]["refused"]["code"] == "unknown_category"
    assert "ditolak" in page.inner_text("#outbox-status")

    # "my reports" lists it with what went wrong and the two ways on
    page.goto(app_url(system, "/laporan-saya"))
    page.wait_for_selector("body[data-state=ready]")
    card = page.locator(f"#mine-list li.refused[data-outbox-key='{kept[0]['key']}']")
    card.wait_for()
    assert description in card.inner_text()
    assert card.locator(".refusal-reason").inner_text() == "Kategori ini sudah tidak ada. Pilih kategori lain."
    assert "HTTP 422, unknown_category" in card.inner_text()
    assert card.get_by_role("link", name="Ubah dan kirim lagi").get_attribute("href").startswith("/#ubah=")
    assert serious_accessibility_violations(page) == []
    # the screen is drawn again in the other language (it reads the device's store first: wait for the new text)
    page.click("#lang-toggle")
    expect(card.locator(".refusal-reason")).to_have_text("This category no longer exists. Choose another one.")
    page.click("#lang-toggle")
    expect(card.locator(".refusal-reason")).to_have_text("Kategori ini sudah tidak ada. Pilih kategori lain.")

    # delete it, confirming first (cancelling keeps it)
    card.get_by_role("button", name="Hapus", exact=True).click()
    assert "belum terkirim dan akan hilang" in card.inner_text()
    card.get_by_role("button", name="Batal").click()
    assert page.evaluate(OUTBOX) != []
    card.get_by_role("button", name="Hapus", exact=True).click()
    card.get_by_role("button", name="Ya, hapus").click()
    page.wait_for_selector("#mine-list li.refused", state="detached")
    assert page.evaluate(OUTBOX) == []
    assert "dihapus" in page.inner_text("#outbox-status")
    assert reports_with(system, description) == []
    assert page.errors == []


def test_a_refused_report_is_edited_from_my_reports_and_sent_again(
    system: RunningSystem, phone: Any, tmp_path: Any
) -> None:
    page = open_app(phone, app_url(system))
    page.set_input_files("#photos", photo_file(tmp_path, "pohon.jpg", phone_photo(*RAWAMANGUN)))
    page.wait_for_selector("#map[data-pin-source=photo]")
    page.select_option("#category", "jalan")
    description = f"Pohon tumbang menutup jalan {time.time_ns()}"
    page.fill("#description", description)
    page.fill("#contact", "hubungi saya")  # the browser takes any text; the server wants an e-mail or a phone number
    page.click("#submit")
    page.wait_for_selector("#form-error:not([hidden])")
    assert "Kontak tidak valid" in page.inner_text("#form-error")
    refused = page.evaluate(OUTBOX)
    assert len(refused) == 1 and refused[0]["refused"]["code"] == "invalid_field"

    # later, from "my reports": the form reopens filled with the kept report (its photo and location too)
    page.goto(app_url(system, "/laporan-saya"))
    card = page.locator("#mine-list li.refused")
    card.get_by_role("link", name="Ubah dan kirim lagi").click()
    page.wait_for_selector("#map[data-pin-source=saved]")
    assert "Kontak tidak valid" in page.inner_text("#editing")
    assert page.input_value("#description") == description
    assert page.input_value("#category") == "jalan"
    assert page.input_value("#contact") == "hubungi saya"
    assert page.locator("#photo-list li").count() == 1
    lat, lon = (float(v) for v in page.get_attribute("#map", "data-pin").split(","))
    assert abs(lat - RAWAMANGUN[0]) < 1e-4 and abs(lon - RAWAMANGUN[1]) < 1e-4

    # sent again unchanged: the same Idempotency-Key (the same report, were it filed meanwhile), refused again
    page.click("#submit")
    page.wait_for_selector("#form-error:not([hidden])")
    assert [(s["key"], s["refused"]["code"]) for s in page.evaluate(OUTBOX)] == [(refused[0]["key"], "invalid_field")]

    page.fill("#contact", "warga@example.org")
    page.click("#submit")
    page.wait_for_selector("#sent-number")
    report_id = page.inner_text("#sent-number")
    assert [r["_id"] for r in reports_with(system, description)] == [report_id]
    # the content changed: sent under a new Idempotency-Key, and the refused copy is gone
    assert page.evaluate(OUTBOX) == []
    token = page.input_value("#tracking-link").split("#", 1)[1]
    assert len(requests.get(app_url(system, f"/api/v1/reports/{token}"), timeout=10).json()["photos"]) == 1
    page.goto(app_url(system, "/laporan-saya"))
    page.wait_for_selector(f"#mine-list li[data-report-id='{report_id}']")
    assert page.locator("#mine-list li.refused").count() == 0
    assert page.errors == []


@pytest.fixture(scope="module")
def hostile_report(system: RunningSystem) -> Filed:
    """A report whose description is markup, routed to its OPD."""
    filed = submit(system, *RAWAMANGUN, "jalan", f"{HOSTILE} lubang {time.time_ns()}")
    wait_assigned(system, filed)
    return filed


def stream_allows_the_app(system: RunningSystem, filed: Filed) -> bool:
    """Whether notify's live stream answers the app's origin with CORS (else the page polls the report)."""
    stream = requests.get(
        view(system, filed)["stream_url"], headers={"Origin": app_url(system)}, stream=True, timeout=10
    )
    try:
        return stream.headers.get("Access-Control-Allow-Origin") in ("*", app_url(system))
    finally:
        stream.close()


def test_the_tracking_page_follows_the_report_live_as_the_opd_acts(
    system: RunningSystem, phone: Any, hostile_report: Filed
) -> None:
    dialogs: list[str] = []
    page = open_app(phone, app_url(system, f"/lacak#{hostile_report.token}"))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.wait_for_selector("#track-number")
    assert page.inner_text("#track-number") == hostile_report.report_id
    assert page.inner_text("#track-status") == "Menunggu"
    assert page.inner_text("#track-opd") == "Suku Dinas Bina Marga Kota Administrasi Jakarta Timur"
    assert "Rawamangun" in page.inner_text("#track-area")
    assert page.locator("#track-deadline").count() == 1
    assert page.locator("#track-photos img").count() == 1

    if stream_allows_the_app(system, hostile_report):
        page.wait_for_selector("body[data-live=stream]")  # live from notify's stream, not polling
    act(system, hostile_report, "dikerjakan", note="Tim sedang menambal jalan")
    page.wait_for_selector("body[data-report-status=dikerjakan]", timeout=30_000)
    assert page.inner_text("#track-status") == "Dikerjakan"
    assert "Tim sedang menambal jalan" in page.inner_text("#track-history")

    act(system, hostile_report, "selesai", note="Sudah ditambal")
    page.wait_for_selector("body[data-report-status=selesai]", timeout=30_000)
    assert page.locator("#track-evidence img").count() == 1
    wait_until_image_shows(page.locator("#track-evidence img"))
    statuses = page.eval_on_selector_all("#track-history li", "items => items.map((li) => li.dataset.status)")
    assert statuses[0] == "menunggu" and statuses[-2:] == ["dikerjakan", "selesai"]
    assert dialogs == [] and page.errors == []


def test_hostile_text_shows_as_text(system: RunningSystem, phone: Any, hostile_report: Filed) -> None:
    dialogs: list[str] = []
    phone.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page = open_app(phone, app_url(system, f"/lacak#{hostile_report.token}"))
    page.wait_for_selector("#track-description")
    description = requests.get(app_url(system, f"/api/v1/reports/{hostile_report.token}"), timeout=10).json()
    assert page.inner_text("#track-description") == description["description"]
    assert page.locator("#track-body img[src=x]").count() == 0
    # the tracking page put it in "my reports": text there too
    page.goto(app_url(system, "/laporan-saya"))
    page.wait_for_selector("#mine-list li[data-report-id]")
    assert HOSTILE in page.inner_text("#mine-list")
    assert page.locator("#mine-list img").count() == 0
    assert dialogs == [] and page.errors == []


def save_screenshot(page: Any, name: str, tmp_path: Any) -> None:
    """The phone screenshot for the README: into docs/ only when asked (UPDATE_SCREENSHOT=1), so a test run leaves
    the tree clean."""
    target = ROOT / "docs" / name if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / name
    png = page.screenshot(full_page=True)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(target, optimize=True)
    assert target.stat().st_size < 400_000


def test_every_screen_is_accessible_in_both_languages(
    system: RunningSystem, phone: Any, hostile_report: Filed, tmp_path: Any
) -> None:
    page = open_app(phone, app_url(system))
    assert page.get_attribute("html", "lang") == "id"
    # English, remembered on the device
    page.click("#lang-toggle")
    assert page.get_attribute("html", "lang") == "en"
    assert page.inner_text("#submit") == "Send report"
    assert serious_accessibility_violations(page) == []
    page.reload()
    page.wait_for_selector("body[data-state=ready]")
    assert page.inner_text("#report-title") == "Report a problem near you"
    assert page.get_attribute("#lang-toggle", "lang") == "id"
    page.click("#lang-toggle")
    assert page.get_attribute("html", "lang") == "id"

    # the report screen, filled in (a photo and the nearby list showing)
    page.set_input_files("#photos", photo_file(tmp_path, "a.jpg", phone_photo(*RAWAMANGUN)))
    page.wait_for_selector("#map[data-pin-source=photo]")
    page.select_option("#category", "jalan")
    page.fill("#description", "Lubang besar di jalan, berbahaya untuk motor")
    page.wait_for_timeout(500)
    assert serious_accessibility_violations(page) == []
    save_screenshot(page, "citizen-app-report.png", tmp_path)

    page.click("#submit")  # the description and category are there: sent
    page.wait_for_selector("#sent-number")
    assert serious_accessibility_violations(page) == []
    save_screenshot(page, "citizen-app-sent.png", tmp_path)

    page.goto(app_url(system, f"/lacak#{hostile_report.token}"))
    page.wait_for_selector("#track-number")
    assert serious_accessibility_violations(page) == []
    save_screenshot(page, "citizen-app-tracking.png", tmp_path)

    page.goto(app_url(system, "/laporan-saya"))
    page.wait_for_selector("#mine-list li[data-report-id]")
    assert serious_accessibility_violations(page) == []
    assert page.errors == []


def test_a_missing_field_is_named_and_focused(system: RunningSystem, phone: Any) -> None:
    page = open_app(phone, app_url(system))
    page.click("#submit")
    error = page.inner_text("#form-error")
    assert "lokasi" in error.lower() and "kategori" in error.lower()
    assert page.get_attribute("#category", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "use-location"


def tab_to(page: Any, selector: str, presses: int = 80) -> None:
    """Move the focus with the Tab key only until it reaches `selector`."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_a_report_placed_with_the_kelurahan_picker_by_keyboard_only(system: RunningSystem, phone: Any) -> None:
    page = open_app(phone, app_url(system))
    page.wait_for_selector("#pick-kota option >> nth=1", state="attached")
    tab_to(page, "#area-picker summary")
    page.keyboard.press("Enter")
    tab_to(page, "#pick-kota")
    page.keyboard.type("Jakarta Timur")
    tab_to(page, "#pick-kecamatan")
    page.keyboard.type("Pulogadung")
    tab_to(page, "#pick-kelurahan")
    page.keyboard.type("Rawamangun")
    page.wait_for_selector("#map[data-pin-source=area]")
    assert "Rawamangun" in page.inner_text("#location-status")
    tab_to(page, "#category")
    page.keyboard.type("Jalan")
    assert page.input_value("#category") == "jalan"
    tab_to(page, "#description")
    description = f"Lampu jalan mati, dilaporkan dengan keyboard {time.time_ns()}"
    page.keyboard.type(description)
    tab_to(page, "#contact")
    page.keyboard.press("Enter")  # submits the form
    page.wait_for_selector("#sent-number")
    assert page.evaluate("document.activeElement.id") == "sent-title"  # the confirmation is announced
    token = page.input_value("#tracking-link").split("#", 1)[1]
    view = requests.get(app_url(system, f"/api/v1/reports/{token}"), timeout=10).json()
    assert view["description"] == description
    # the kelurahan's representative point: routed to that kelurahan
    wait_for(
        lambda: requests.get(app_url(system, f"/api/v1/reports/{token}"), timeout=10).json().get("area"),
        15,
        message="the report routed",
    )
    area = requests.get(app_url(system, f"/api/v1/reports/{token}"), timeout=10).json()["area"]
    assert area["kelurahan"] == "Rawamangun"


def pin(page: Any) -> tuple[float, float]:
    lat, lon = (float(v) for v in page.get_attribute("#map", "data-pin").split(","))
    return lat, lon


def test_the_pin_is_placed_by_tapping_the_map_and_dragged_and_the_report_is_filed_there(
    system: RunningSystem, phone: Any
) -> None:
    page = open_app(phone, app_url(system))
    assert page.get_attribute("#map", "data-pin") is None
    map_box = page.locator("#map")
    map_box.scroll_into_view_if_needed()
    box = map_box.bounding_box()
    # a tap on the map, right of its centre (the map's centre is Monas): the pin goes there
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
    page.wait_for_selector("#map[data-pin-source=map]")
    tapped = pin(page)
    assert tapped[1] > MONAS[1] + 0.01 and abs(tapped[0] - MONAS[0]) < 0.01
    assert "dipilih di peta" in page.inner_text("#location-status")
    assert page.locator(".leaflet-marker-icon").count() == 1

    # dragged 60 px right and 40 px down: east and south of where it was, once the map has finished panning to
    # centre the new pin (a drag that starts mid-pan misses the marker)
    def settled_marker() -> dict[str, float] | None:
        here = page.locator(".leaflet-marker-icon").bounding_box()
        centre_x = here["x"] + here["width"] / 2
        return here if abs(centre_x - (box["x"] + box["width"] / 2)) < 2 else None

    marker = wait_for(settled_marker, message="the map to centre the pin")
    start = (marker["x"] + marker["width"] / 2, marker["y"] + marker["height"] * 0.75)
    page.mouse.move(*start)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(start[0] + 6 * step, start[1] + 4 * step)
    page.mouse.up()
    expect(page.locator("#map")).not_to_have_attribute("data-pin", f"{tapped[0]:.6f},{tapped[1]:.6f}")
    dragged = pin(page)
    assert dragged[1] > tapped[1] and dragged[0] < tapped[0]
    # the page writes 5 decimals with JavaScript's rounding, which may differ from Python's in the last digit
    shown = re.search(r"(-?\d+\.\d{5}), (-?\d+\.\d{5})", page.inner_text("#location-status"))
    assert shown is not None
    assert abs(float(shown[1]) - dragged[0]) <= 1.1e-5 and abs(float(shown[2]) - dragged[1]) <= 1.1e-5

    page.select_option("#category", "jalan")
    description = f"Jalan retak, penanda digeser di peta {time.time_ns()}"
    page.fill("#description", description)
    page.click("#submit")
    page.wait_for_selector("#sent-number")
    token = page.input_value("#tracking-link").split("#", 1)[1]
    location = requests.get(app_url(system, f"/api/v1/reports/{token}"), timeout=10).json()["location"]
    assert (round(location["lat"], 6), round(location["lon"], 6)) == (round(dragged[0], 6), round(dragged[1], 6))
    assert page.errors == []


def test_a_nearby_report_is_shown_and_followed_instead_of_filing_again(
    system: RunningSystem, phone: Any, tmp_path: Any
) -> None:
    dialogs: list[str] = []
    phone.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    known = submit(system, *RAWAMANGUN, "jalan", f"{HOSTILE} jalan amblas depan pasar {time.time_ns()}")
    wait_assigned(system, known)

    page = open_app(phone, app_url(system))
    near = (RAWAMANGUN[0] + 0.0009, RAWAMANGUN[1])  # about 100 m north
    page.set_input_files("#photos", photo_file(tmp_path, "near.jpg", phone_photo(*near)))
    page.wait_for_selector("#map[data-pin-source=photo]")
    page.select_option("#category", "jalan")
    card = page.locator(f"#nearby-list li[data-report-id='{known.report_id}']")
    card.wait_for()
    assert HOSTILE in card.inner_text() and "m dari penanda" in card.inner_text()
    assert card.locator("img[src=x]").count() == 0
    assert serious_accessibility_violations(page) == []

    card.get_by_role("button", name="Ikuti laporan ini").click()
    page.wait_for_url(re.compile(r"/lacak#JK-"))
    page.wait_for_selector("#track-number")
    assert page.inner_text("#track-number") == known.report_id
    assert HOSTILE in page.inner_text("#track-description")
    page.goto(app_url(system, "/laporan-saya"))
    followed = page.locator(f"#mine-list li[data-report-id='{known.report_id}']")
    assert "Diikuti" in followed.inner_text()
    assert followed.locator("a").get_attribute("href") == f"/lacak#{known.report_id}"
    assert dialogs == [] and page.errors == []
