"""The web apps served by intake, mixins of HTTP entrypoints that IntakeService inherits:

- the citizen app: its shell at `/` (and `/lacak`, `/laporan-saya`), its files under `/app/...`, the service worker
  at `/sw.js`;
- the OPD workbench: its shell at `/opd/` (and `/opd/laporan/<id>`, `/opd/kinerja`), its files under `/opd/...`;
- what both use (the DOM and language helpers, the map, photo resizing, the style sheet, Leaflet) under `/shared/...`.

Every page carries a strict Content-Security-Policy (no inline script or style; images and connections only to this
origin, the configured map tiles and the one other service the app reads: notify's live stream for the citizen,
stats' figures for the workbench), `nosniff` and `no-referrer`: the tracking token lives in the URL fragment, and a
referrer must not carry even the path to another origin. Text files are sent gzipped to clients that accept it (the
shell stays within its 300 KB budget on a phone's signal).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from werkzeug.wrappers import Request, Response

from jaklapor.web import ApiError, api, gzipped, negotiated_body, web_origin
from services.intake.settings import IntakeSettings

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: the folders below STATIC_DIR served as they are: each app's own files, and those both share
APP_FOLDER, OPD_FOLDER, SHARED_FOLDER = "app", "opd", "shared"
#: a path below a served folder: lower-case segments, no dot-segments, one of the known file types
APP_FILE = re.compile(r"^(?:[a-z0-9][a-z0-9_-]*/)*[a-z0-9][a-z0-9_.-]*\.(js|css|svg|png|json|webmanifest)$")
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "json": "application/json",
    "webmanifest": "application/manifest+json",
}
COMPRESSIBLE = {"html", "js", "css", "svg", "json", "webmanifest"}


def origin_of(url: str) -> str:
    """The origin of a URL for a CSP source list ("" for none or a same-origin path, which 'self' covers); a tile URL's
    `{s}` subdomain placeholder becomes a wildcard."""
    return web_origin(url.replace("{s}", "*")) if "://" in url else ""


def content_security_policy(settings: IntakeSettings, connect_to: str) -> str:
    """The policy of an app's pages: this origin, the map tiles, and `connect_to` (the other service the app reads)."""
    tiles = origin_of(settings.map_tile_url)
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            " ".join(filter(None, ("img-src 'self' blob: data:", tiles))),
            " ".join(filter(None, ("connect-src 'self'", origin_of(connect_to)))),
            "worker-src 'self'",
            "manifest-src 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        )
    )


@functools.cache
def _read_static(folder: str, name: str) -> tuple[bytes, bytes | None]:
    """The file's bytes, and their gzip form for text types; read once per process (the files ship with the code)."""
    content = (STATIC_DIR / folder / name).read_bytes()
    compressed = gzipped(content) if name.rsplit(".", 1)[1] in COMPRESSIBLE else None
    return content, compressed


def page_headers(policy: str) -> dict[str, str]:
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def static_file(request: Request, folder: str, name: str, cache_control: str, headers: dict[str, str]) -> Response:
    """A file of a served folder (404 for anything else: other types, dot-segments, files that are not there)."""
    if not APP_FILE.match(name) or not (STATIC_DIR / folder / name).is_file():
        raise ApiError(404, "not_found", f"no file {name!r} in /{folder}/")
    return _send(request, folder, name, cache_control, headers)


def _send(request: Request, folder: str, name: str, cache_control: str, headers: dict[str, str]) -> Response:
    content, encoding = negotiated_body(request, *_read_static(folder, name))
    headers = {**headers, **encoding, "Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"}
    return Response(content, content_type=CONTENT_TYPES[name.rsplit(".", 1)[1]], headers=headers)


#: an app's pages are always revalidated, so a new release reaches phones at once; its files may be kept a little
PAGE_CACHE, FILE_CACHE = "no-cache", "public, max-age=300"


class CitizenAppEndpoints:
    """The citizen web app's pages and files, and the files both apps share (mixed into IntakeService, which
    provides `settings`)."""

    settings: IntakeSettings

    def _page_headers(self) -> dict[str, str]:
        return page_headers(content_security_policy(self.settings, self.settings.notify_public_url))

    def _shell(self, request: Request) -> Response:
        # the service worker serves it offline
        return _send(request, APP_FOLDER, "index.html", PAGE_CACHE, self._page_headers())

    @api("GET", "/")
    def app_home(self, request: Request) -> Response:
        return self._shell(request)

    @api("GET", "/lacak")
    def app_tracking(self, request: Request) -> Response:
        return self._shell(request)

    @api("GET", "/laporan-saya")
    def app_my_reports(self, request: Request) -> Response:
        return self._shell(request)

    @api("GET", "/sw.js")
    def app_service_worker(self, request: Request) -> Response:
        # served from the root so that its scope covers the whole app; never cached by HTTP, so updates are seen
        headers = {**self._page_headers(), "Service-Worker-Allowed": "/"}
        return _send(request, APP_FOLDER, "sw.js", PAGE_CACHE, headers)

    @api("GET", "/app/<path:name>")
    def app_file(self, request: Request, name: str) -> Response:
        return static_file(request, APP_FOLDER, name, FILE_CACHE, self._page_headers())

    @api("GET", "/shared/<path:name>")
    def shared_file(self, request: Request, name: str) -> Response:
        return static_file(request, SHARED_FOLDER, name, FILE_CACHE, self._page_headers())


class OpdWorkbenchEndpoints:
    """The OPD workbench's pages and files (mixed into IntakeService, which provides `settings`). The pages hold no
    report data: the workbench asks the OPD API for it with the session cookie."""

    settings: IntakeSettings

    def _workbench_headers(self) -> dict[str, str]:
        return page_headers(content_security_policy(self.settings, self.settings.stats_public_url))

    def _workbench(self, request: Request) -> Response:
        return _send(request, OPD_FOLDER, "index.html", PAGE_CACHE, self._workbench_headers())

    @api("GET", "/opd/")
    def workbench_list(self, request: Request) -> Response:
        return self._workbench(request)

    @api("GET", "/opd/laporan/<report_id>")
    def workbench_report(self, request: Request, report_id: str) -> Response:
        return self._workbench(request)

    @api("GET", "/opd/kinerja")
    def workbench_performance(self, request: Request) -> Response:
        return self._workbench(request)

    @api("GET", "/opd/<path:name>")
    def workbench_file(self, request: Request, name: str) -> Response:
        return static_file(request, OPD_FOLDER, name, FILE_CACHE, self._workbench_headers())
