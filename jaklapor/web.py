"""HTTP plumbing on nameko's web entrypoint: one server per service, JSON errors, request metrics.

nameko's WebServer reads a single `WEB_SERVER_ADDRESS`; several services in one runner (the local default) need one
port each, so the address comes from `HTTP_ADDRESSES[<service name>]`.

HTTP requests and a service's consumers and timers share the container's `max_workers` slots, and nameko hands a
free slot to whoever waits first: under a flood of requests a consumer's message waits behind every queued request
(the intake's routing results, i.e. the citizen's tracking view, fell minutes behind). So requests may take at most
`HTTP_MAX_CONCURRENT` slots (default: all but `SLOTS_KEPT_FOR_CONSUMERS`); the rest stay free for the consumers.
"""

from __future__ import annotations

import errno
import json
import logging
import time
from typing import Any

import eventlet
from eventlet.semaphore import Semaphore
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp, parse_address
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from jaklapor.config import as_bool, setting
from jaklapor.metrics import http_metrics
from jaklapor.processes import port_holder

log = logging.getLogger(__name__)

#: worker slots a service's HTTP requests leave to its consumers and timers (see the module docstring)
SLOTS_KEPT_FOR_CONSUMERS = 3


class ApiError(Exception):
    """An error the client can act on: HTTP status, a stable code and a sentence naming the problem."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        error.update(self.extra)
        return {"error": error}


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload, ensure_ascii=False, default=str),
        status=status,
        headers=headers,
        mimetype="application/json",
    )


def error_response(error: ApiError) -> Response:
    return json_response(error.body(), status=error.status, headers=error.headers)


def _http_exception_response(exc: HTTPException) -> Response:
    code = (exc.name or "error").lower().replace(" ", "_")
    headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
    return json_response({"error": {"code": code, "message": exc.description}}, exc.code or 500, headers)


class JsonWsgiApp(WsgiApp):
    """nameko's WSGI app, answering unknown paths and wrong methods with JSON instead of HTML."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            response = _http_exception_response(exc)
            http_metrics(self.server.container.service_name).observe(
                request.method, "unmatched", response.status_code, 0.0
            )
        return response(environ, start_response)


class ServiceWebServer(WebServer):
    def setup(self) -> None:
        super().setup()
        self.request_slots = Semaphore(http_request_slots(self.container.config, self.container.max_workers))

    @property
    def bind_addr(self) -> Any:
        return http_bind_address(self.container.config, self.container.service_name)

    def get_wsgi_app(self) -> Any:
        return JsonWsgiApp(self)

    def start(self) -> None:
        # nameko's start, with an exclusive port: eventlet.listen's default SO_REUSEPORT let a second `make run` bind
        # the same ports and the kernel split requests between two systems
        if not self._starting:
            self._starting = True
            self._sock = listen(self.bind_addr, self.container.service_name, reuse_port(self.container.config))
            self._sock.settimeout(None)  # nameko's workaround for https://github.com/celery/kombu/issues/838
            self._serv = self.get_wsgi_server(self._sock, self.get_wsgi_app())
            self._gt = self.container.spawn_managed_thread(self.run)


def http_bind_address(config: dict[str, Any], service_name: str) -> Any:
    """Where a service's HTTP server listens: `HTTP_ADDRESSES[<service name>]`, else nameko's WEB_SERVER_ADDRESS."""
    address = (config.get("HTTP_ADDRESSES") or {}).get(service_name)
    return parse_address(str(address or config.get("WEB_SERVER_ADDRESS", "0.0.0.0:8000")))


def reuse_port(config: dict[str, Any]) -> bool:
    return as_bool(setting(config, "HTTP_REUSE_PORT", False))


def check_ports_free(config: dict[str, Any], service_names: list[str]) -> None:
    """Fail before anything starts if a service's HTTP port is taken (the server's own listen checks again)."""
    for name in service_names:
        listen(http_bind_address(config, name), name, reuse_port(config)).close()


class PortInUseError(RuntimeError):
    """A service's HTTP port is held by another process (and sharing it was not asked for)."""


def listen(bind_addr: Any, service_name: str, reuse_port: bool) -> Any:
    """A listening socket on `bind_addr`; sharing the port with other processes only when `reuse_port` says so."""
    try:
        return eventlet.listen(bind_addr, reuse_port=reuse_port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise PortInUseError(
            f"port {bind_addr.port} ({service_name}) is already in use by {port_holder(bind_addr.port)}: stop it "
            f"or give {service_name} another address ({service_name.upper()}_HTTP); to run several processes on one "
            "port on purpose, set HTTP_REUSE_PORT=true in each"
        ) from None


def http_request_slots(config: dict[str, Any], max_workers: int) -> int:
    """How many of the `max_workers` slots HTTP requests may hold at once: `HTTP_MAX_CONCURRENT`, or all but a few."""
    configured = int(setting(config, "HTTP_MAX_CONCURRENT", 0))
    if configured > 0:
        return min(configured, max_workers)
    return max(1, max_workers - SLOTS_KEPT_FOR_CONSUMERS)


class ApiEndpoint(HttpRequestHandler):
    """An HTTP entrypoint whose handler returns a Response or a JSON-able value, and raises ApiError for 4xx."""

    server = ServiceWebServer()

    def __init__(self, method: str, url: str, **kwargs: Any) -> None:
        kwargs.setdefault("expected_exceptions", (ApiError, HTTPException))
        super().__init__(method, url, **kwargs)

    stopping = False

    def stop(self) -> None:
        # from now on no new worker: nameko waits for running workers, then closes their clients (MongoDB, ...);
        # a request still arriving on an open connection gets a 503 to retry instead of a half-closed service
        self.stopping = True
        super().stop()

    def handle_request(self, request: Request) -> Response:
        if self.stopping:
            response = json_response(
                {"error": {"code": "shutting_down", "message": "this instance is restarting; retry"}},
                status=503,
                headers={"Retry-After": "1", "Connection": "close"},
            )
            return response
        started = time.perf_counter()
        # cap what a client may send before any of the body is read (the handler may lower it)
        request.max_content_length = int(self.container.config.get("MAX_REQUEST_BYTES", 12 * 1024 * 1024))
        with self.server.request_slots:
            response = super().handle_request(request)
        http_metrics(self.container.service_name).observe(
            request.method, self.url, response.status_code, time.perf_counter() - started
        )
        return response

    def response_from_result(self, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        return json_response(result)

    def response_from_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ApiError):
            return error_response(exc)
        if isinstance(exc, HTTPException):
            return _http_exception_response(exc)
        log.error("unhandled error in %s %s: %r", self.method, self.url, exc)
        return json_response(
            {"error": {"code": "internal_error", "message": "the server failed; the request was not completed"}},
            status=500,
        )


api = ApiEndpoint.decorator


def read_fields(request: Request, file_field: str | None = None) -> tuple[dict[str, str], bytes | None]:
    """Text fields and one optional file from a multipart, urlencoded or JSON body; 4xx for anything else."""
    limit = request.max_content_length
    if request.content_length is not None and limit is not None and request.content_length > limit:
        raise ApiError(
            413,
            "request_too_large",
            f"request body is {request.content_length} bytes; the limit is {limit}",
        )
    mimetype = request.mimetype
    if mimetype == "application/json":
        try:
            payload = json.loads(request.get_data(cache=False) or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise ApiError(400, "invalid_json", "request body must be a JSON object")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in payload.items() if v is not None}, None
    if mimetype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send multipart/form-data (with the photo), application/x-www-form-urlencoded or application/json",
        )
    try:
        form = request.form
        files = request.files
    except HTTPException:
        raise
    except ValueError as exc:
        raise ApiError(400, "malformed_body", f"the form body could not be parsed: {exc}") from None
    fields = {key: form.get(key, "") for key in form}
    content = None
    if file_field and file_field in files:
        content = files[file_field].read()
    elif file_field and file_field in form:
        raise ApiError(422, "invalid_field", f"{file_field} must be sent as a file part", field=file_field)
    return fields, content
