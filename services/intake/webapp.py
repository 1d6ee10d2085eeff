"""The citizen web app, served by intake: the app shell at `/` (and `/lacak`, `/laporan-saya`), its files under
`/app/...` and the service worker at `/sw.js`. A mixin of HTTP entrypoints that IntakeService inherits.

Every page carries a strict Content-Security-Policy (no inline script or style; images and connections only to this
origin, the configured map tiles and notify's live stream), `nosniff` and `no-referrer`: the tracking token lives
in the URL fragment, and a referrer must not carry even the path to another origin. Text files are sent gzipped
to clients that accept it (the shell stays within its 300 KB budget on a phone's signal).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from werkzeug.wrappers import Request, Response

from jaklapor.web import ApiError, api, gzipped, negotiated_body, web_origin
from services.intake.settings import IntakeSettings

APP_DIR = Path(__file__).resolve().parent / "static" / "app"
#: a path below APP_DIR: lower-case segments, no dot-segments, one of the known file types
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


def content_security_policy(settings: IntakeSettings) -> str:
    tiles = origin_of(settings.map_tile_url)
    notify = origin_of(settings.notify_public_url)
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            " ".join(filter(None, ("img-src 'self' blob: data:", tiles))),
            " ".join(filter(None, ("connect-src 'self'", notify))),
            "worker-src 'self'",
            "manifest-src 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        )
    )


@functools.cache
def _app_file(name: str) -> tuple[bytes, bytes | None]:
    """The file's bytes, and their gzip form for text types; read once per process (the files ship with the code)."""
    content = (APP_DIR / name).read_bytes()
    compressed = gzipped(content) if name.rsplit(".", 1)[1] in COMPRESSIBLE else None
    return content, compressed


class CitizenAppEndpoints:
    """The citizen web app's pages and files (mixed into IntakeService, which provides `settings`)."""

    settings: IntakeSettings

    def _page_headers(self) -> dict[str, str]:
        return {
            "Content-Security-Policy": content_security_policy(self.settings),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }

    def _file(self, request: Request, name: str, cache_control: str, headers: dict[str, str]) -> Response:
        content, encoding = negotiated_body(request, *_app_file(name))
        headers = {**headers, **encoding, "Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"}
        return Response(content, content_type=CONTENT_TYPES[name.rsplit(".", 1)[1]], headers=headers)

    def _shell(self, request: Request) -> Response:
        # no-cache: always revalidated, so a new release reaches phones at once (the service worker serves it offline)
        return self._file(request, "index.html", "no-cache", self._page_headers())

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
        return self._file(request, "sw.js", "no-cache", {**self._page_headers(), "Service-Worker-Allowed": "/"})

    @api("GET", "/app/<path:name>")
    def app_file(self, request: Request, name: str) -> Response:
        if not APP_FILE.match(name) or not (APP_DIR / name).is_file():
            raise ApiError(404, "not_found", f"no app file {name!r}")
        return self._file(request, name, "public, max-age=300", self._page_headers())
