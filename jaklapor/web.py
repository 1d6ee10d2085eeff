"""HTTP plumbing on nameko's web entrypoint: one server per service, JSON errors, request metrics.

nameko's WebServer reads a single `WEB_SERVER_ADDRESS`; several services in one runner (the local default) need one
port each, so the address comes from `HTTP_ADDRESSES[<service name>]`.

HTTP requests and a service's consumers and timers share the container's `max_workers` slots, and nameko hands a
free slot to whoever waits first: under a flood of requests a consumer's message waits behind every queued request
(the intake's routing results, i.e. the citizen's tracking view, fell minutes behind). So requests may take at most
`HTTP_MAX_CONCURRENT` slots (default: all but `SLOTS_KEPT_FOR_CONSUMERS`); the rest stay free for the consumers.

Slow clients never hold a slot: a request's body is read into a buffer in the connection's own green thread before
the request takes a slot, and every read from a client gives up after `HTTP_READ_TIMEOUT_SECONDS` (408). Stalled or
idle connections then cost a green thread and a socket each; `HTTP_MAX_CONNECTIONS_PER_ADDRESS` bounds how many one
peer address may hold (see `connection_limits`).
"""

from __future__ import annotations

import json
import logging
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import eventlet
from eventlet import wsgi
from eventlet.semaphore import Semaphore
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp, parse_address
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from jaklapor.config import setting
from jaklapor.metrics import http_metrics

log = logging.getLogger(__name__)

#: worker slots a service's HTTP requests leave to its consumers and timers (see the module docstring)
SLOTS_KEPT_FOR_CONSUMERS = 3
#: defaults of the settings of the same names (config.yaml); the per-address cap is 50 only for direct clients
DEFAULT_MAX_REQUEST_BYTES = 12 * 1024 * 1024
DEFAULT_READ_TIMEOUT_SECONDS = 30.0
DEFAULT_CONNECTIONS_PER_ADDRESS = 50
#: an idle keep-alive connection is closed after this long; longer than a reverse proxy's own upstream keep-alive
#: (ingress-nginx: 60 s), so the proxy never sends a request on a connection the service is just closing
KEEPALIVE_IDLE_SECONDS = 75
#: a request body up to this size stays in memory while it arrives; a larger one spills to a temporary file, so
#: many slow uploads at once cost disk, not memory
BODY_MEMORY_BYTES = 1024 * 1024
BODY_READ_BYTES = 64 * 1024
#: how long a refused connection is still read (and discarded) so the client sees the 429 rather than a reset
REFUSAL_LINGER_SECONDS = 1.0
#: WSGI environ key of a callable that makes the server close the connection after the response (set by
#: `GatewayProtocol`): once a body was read only in part, the next request's start cannot be found
CLOSE_CONNECTION_KEY = "jaklapor.close_connection"


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


@dataclass(frozen=True)
class ConnectionLimits:
    read_timeout: float  # seconds any single read from a client may wait
    per_address: int  # open connections one peer address may hold; 0: no cap


def connection_limits(config: dict[str, Any]) -> ConnectionLimits:
    """`HTTP_READ_TIMEOUT_SECONDS` and `HTTP_MAX_CONNECTIONS_PER_ADDRESS`, the latter counted per peer address.

    Behind a reverse proxy (`TRUSTED_PROXY_HOPS` > 0) every connection comes from the proxy, so capping its peer
    address would throttle all citizens together: there the cap is off unless set, and the proxy limits per client.
    """
    read_timeout = float(setting(config, "HTTP_READ_TIMEOUT_SECONDS", DEFAULT_READ_TIMEOUT_SECONDS))
    if read_timeout <= 0:
        raise ValueError(f"HTTP_READ_TIMEOUT_SECONDS must be above 0 seconds, not {read_timeout:g}")
    configured = setting(config, "HTTP_MAX_CONNECTIONS_PER_ADDRESS")
    if configured is not None:
        per_address = int(configured)
    elif int(setting(config, "TRUSTED_PROXY_HOPS", 0)) > 0:
        per_address = 0
    else:
        per_address = DEFAULT_CONNECTIONS_PER_ADDRESS
    if per_address < 0:
        raise ValueError(f"HTTP_MAX_CONNECTIONS_PER_ADDRESS must be 0 (no cap) or more, not {per_address}")
    return ConnectionLimits(read_timeout, per_address)


class ConnectionCounter:
    """Open connections per peer address, admitted up to a cap (0: no cap); an address at zero is forgotten."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        held = self._open.get(address, 0)
        if self.cap and held >= self.cap:
            return False
        self._open[address] = held + 1
        return True

    def release(self, address: str) -> None:
        held = self._open.get(address, 0) - 1
        if held > 0:
            self._open[address] = held
        else:
            self._open.pop(address, None)

    def open(self, address: str) -> int:
        return self._open.get(address, 0)


class GatewayProtocol(HttpOnlyProtocol):
    """nameko's HTTP protocol, letting the application ask for the connection to be closed after its response
    (eventlet would otherwise try to read the rest of the body to reach the next request)."""

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ[CLOSE_CONNECTION_KEY] = self._close_after_response
        return environ

    def _close_after_response(self) -> None:
        self.close_connection = 1


class ServiceWebServer(WebServer):
    def setup(self) -> None:
        super().setup()
        self.request_slots = Semaphore(http_request_slots(self.container.config, self.container.max_workers))
        self.limits = connection_limits(self.container.config)
        self.connections = ConnectionCounter(self.limits.per_address)

    def get_wsgi_server(
        self, sock: Any, wsgi_app: Any, protocol: Any = GatewayProtocol, debug: bool = False
    ) -> wsgi.Server:
        return wsgi.Server(
            sock,
            sock.getsockname(),
            wsgi_app,
            protocol=protocol,
            debug=debug,
            log=logging.getLogger("nameko.web.server"),
            # every read and write on a client socket (nameko applies it at accept); waiting for the next request
            # on a kept-alive connection uses `keepalive` instead
            socket_timeout=self.limits.read_timeout,
            keepalive=KEEPALIVE_IDLE_SECONDS,
        )

    def process_request(self, sock: Any, address: Any) -> None:
        peer = address[0]
        if not self.connections.admit(peer):
            self._refuse(sock)
            return
        try:
            super().process_request(sock, address)
        finally:
            self.connections.release(peer)

    def _refuse(self, sock: Any) -> None:
        """Answer 429 at once, before reading the request: the client already holds as many connections as allowed."""
        cap = self.limits.per_address
        http_metrics(self.container.service_name).observe("-", "connection_limit", 429, 0.0)
        body = json.dumps(
            {
                "error": {
                    "code": "too_many_connections",
                    "message": f"this address already has {cap} open connections to this service; "
                    "close one or retry later",
                }
            }
        ).encode()
        head = (
            "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        ).encode()
        # an error here (the client is gone) must not escape: nameko kills the container on an error in this thread
        try:
            sock.sendall(head + body)
            sock.shutdown(socket.SHUT_WR)
            # read what the client already sent, so closing with unread data does not reset the connection before
            # the client has read the answer
            with eventlet.Timeout(REFUSAL_LINGER_SECONDS, False):
                while sock.recv(BODY_READ_BYTES):
                    pass
        except OSError:
            pass
        finally:
            sock.close()

    @property
    def bind_addr(self) -> Any:
        config = self.container.config
        address = (config.get("HTTP_ADDRESSES") or {}).get(self.container.service_name)
        return parse_address(str(address or config.get("WEB_SERVER_ADDRESS", "0.0.0.0:8000")))

    def get_wsgi_app(self) -> Any:
        return JsonWsgiApp(self)


def max_request_bytes(config: dict[str, Any]) -> int:
    return int(setting(config, "MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES))


def buffer_request_body(environ: dict[str, Any], limit: int) -> None:
    """Read the whole request body now, in the connection's own green thread, and hand it on in `wsgi.input` with
    its `CONTENT_LENGTH` (a chunked body de-chunked): a client sending slowly holds no worker slot meanwhile.

    Each read waits at most the server's socket timeout: a stalled body gets 408. Over `limit`: 413, from the
    declared length before any of the body is read. After a body read only in part the connection is closed.
    """
    chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
    declared = int(environ.get("CONTENT_LENGTH") or 0)  # eventlet already refused a length that is not a number
    if not chunked and declared == 0:
        return
    if declared > limit:
        raise ApiError(413, "request_too_large", f"request body is {declared} bytes; the limit is {limit}")
    body: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=BODY_MEMORY_BYTES)  # noqa: SIM115 (handed on below)
    try:
        received = _copy_body(environ["wsgi.input"], body, None if chunked else declared, limit)
    except ApiError:
        body.close()
        _close_connection(environ)
        raise
    body.seek(0)
    environ["wsgi.input"] = body
    environ["CONTENT_LENGTH"] = str(received)
    environ.pop("HTTP_TRANSFER_ENCODING", None)  # the body handed on is no longer chunked
    # a spilled body's temporary file goes as soon as the response is sent
    environ.setdefault("eventlet.posthooks", []).append((lambda _environ: body.close(), (), {}))


def _copy_body(source: IO[bytes], sink: IO[bytes], length: int | None, limit: int) -> int:
    """Copy `length` bytes (None: up to the end of a chunked body) from the client; returns how many."""
    received = 0
    try:
        while length is None or received < length:
            data = source.read(BODY_READ_BYTES if length is None else min(BODY_READ_BYTES, length - received))
            if not data:
                if length is None:
                    break
                raise ApiError(400, "incomplete_body", f"the body ended after {received} of {length} bytes")
            received += len(data)
            if received > limit:
                raise ApiError(413, "request_too_large", f"request body is over the limit of {limit} bytes")
            sink.write(data)
    except TimeoutError:
        raise ApiError(
            408,
            "request_timeout",
            f"the request body stopped arriving ({received} bytes received); send the request again",
        ) from None
    except wsgi.ChunkReadError:
        raise ApiError(400, "invalid_chunked_body", "the chunked transfer encoding of the body is malformed") from None
    except OSError:  # the client went away mid-body (eventlet: "unexpected end of file while parsing chunked data")
        raise ApiError(400, "incomplete_body", f"the body ended after {received} bytes") from None
    return received


def _close_connection(environ: dict[str, Any]) -> None:
    close: Callable[[], None] | None = environ.get(CLOSE_CONNECTION_KEY)
    if close is not None:
        close()


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
        request.max_content_length = max_request_bytes(self.container.config)
        try:
            # still in the connection's green thread: a slow body holds no worker slot while it arrives
            buffer_request_body(request.environ, request.max_content_length)
        except ApiError as exc:
            response = error_response(exc)
        else:
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
