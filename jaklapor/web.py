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

import errno
import gzip
import http.client
import json
import logging
import re
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit

import eventlet
from eventlet import wsgi
from eventlet.semaphore import Semaphore
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp, parse_address
from werkzeug.exceptions import ClientDisconnected, HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from jaklapor.config import as_bool, setting
from jaklapor.metrics import http_metrics
from jaklapor.processes import port_holder

log = logging.getLogger(__name__)

#: worker slots a service's HTTP requests leave to its consumers and timers (see the module docstring)
SLOTS_KEPT_FOR_CONSUMERS = 3
#: defaults of the settings of the same names (config.yaml); the per-address cap is 50 only for direct clients
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024  # a report's photos (3 × 10 MiB) and its text
DEFAULT_READ_TIMEOUT_SECONDS = 30.0
DEFAULT_CONNECTIONS_PER_ADDRESS = 50
#: an idle keep-alive connection is closed after this long; longer than a reverse proxy's own upstream keep-alive
#: (ingress-nginx: 60 s), so the proxy never sends a request on a connection the service is just closing
KEEPALIVE_IDLE_SECONDS = 75
#: a request body up to this size stays in memory while it arrives; a larger one spills to a temporary file, so
#: many slow uploads at once cost disk, not memory
BODY_MEMORY_BYTES = 1024 * 1024
BODY_READ_BYTES = 64 * 1024
#: how long a connection answered before its request was read (429, 413, 408) is still read and discarded, so the
#: client sees the answer rather than a connection reset
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


@dataclass(frozen=True)
class DomainErrorTable:
    """The HTTP answers to one kind of domain error: a service's domain raises errors with a stable `code`, a
    `message` and the `field` at fault, and no HTTP status; the gateway maps them here (as nameko-examples' gateway
    maps its services' exceptions). `code_prefix` namespaces the codes the client sees, `headers` adds headers to
    some codes' answers; a code neither listed nor covered by `default_status` is a server error."""

    error_type: type[Exception]
    statuses: Mapping[str, int]
    default_status: int | None = None
    code_prefix: str = ""
    headers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def status_of(self, code: str) -> int | None:
        return self.statuses.get(code, self.default_status)


class DomainErrors:
    """A service's domain errors and their HTTP answers, one table per error type. A service class registers it as
    `domain_errors`; its API endpoints then answer those errors as they answer an ApiError."""

    def __init__(self, *tables: DomainErrorTable) -> None:
        self.tables = tables
        self.types: tuple[type[Exception], ...] = tuple(table.error_type for table in tables)

    def api_error(self, exc: BaseException) -> ApiError | None:
        """The ApiError answering `exc` (`exc` itself if it is one); None for an error this table does not map."""
        if isinstance(exc, ApiError):
            return exc
        for table in self.tables:
            if not isinstance(exc, table.error_type):
                continue
            code: str = getattr(exc, "code", "")
            status = table.status_of(code)
            if status is None:
                return None
            error = ApiError(
                status, table.code_prefix + code, getattr(exc, "message", str(exc)), field=getattr(exc, "field", None)
            )
            error.headers.update(table.headers.get(code, {}))
            return error
        return None


NO_DOMAIN_ERRORS = DomainErrors()


def web_origin(url: str) -> str:
    """The origin of a URL as a browser writes it in `Origin`: scheme://host[:port], the scheme's default port left
    out (`https://lapor.example:443/x` -> `https://lapor.example`)."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    port = parts.port
    default_port = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" if port in (None, default_port) else f"{scheme}://{host}:{port}"


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
    headers = (
        {"Allow": ", ".join(exc.valid_methods)} if isinstance(exc, MethodNotAllowed) and exc.valid_methods else None
    )
    return json_response({"error": {"code": code, "message": exc.description}}, exc.code or 500, headers)


class JsonWsgiApp(WsgiApp):
    """nameko's WSGI app, answering unknown paths and wrong methods with JSON instead of HTML."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values  # type: ignore[attr-defined]  # where nameko's handlers read them
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


class RequestHeaders(http.client.HTTPMessage):
    """A request's headers. The standard library parses them as an e-mail message, and for a multipart Content-Type
    it went on to split the (absent) body at its boundary with a regular expression compiled for that boundary: a new
    one for every upload, since clients pick a random boundary each time (~125 µs of CPU per request, issue 19).
    Here no request says it is multipart while its headers are parsed; the Content-Type header is unchanged."""

    def get_content_maintype(self) -> str:
        return "text"


class GatewayProtocol(HttpOnlyProtocol):
    """nameko's HTTP protocol, letting the application ask for the connection to be closed after its response
    (eventlet would otherwise try to read the rest of the body to reach the next request)."""

    MessageClass = RequestHeaders

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ[CLOSE_CONNECTION_KEY] = self._close_after_response
        return environ

    lingering = False

    def _close_after_response(self) -> None:
        self.close_connection = 1
        self.lingering = True

    def finish(self) -> None:
        if self.lingering:
            # the client may still be sending the body we stopped reading: closing now would reset the connection and
            # lose our answer on its way, so stop writing and discard its bytes a moment first (a "lingering close")
            try:
                self.wfile.flush()
            except OSError:
                pass
            linger_and_close_reading(self.connection)
        super().finish()


def linger_and_close_reading(sock: Any) -> None:
    """Half-close `sock` and discard what the client still sends, for at most `REFUSAL_LINGER_SECONDS`, so that an
    answer sent before reading a whole request reaches the client instead of being lost to a connection reset."""
    try:
        sock.shutdown(socket.SHUT_WR)
        with eventlet.Timeout(REFUSAL_LINGER_SECONDS, False):
            while sock.recv(BODY_READ_BYTES):
                pass
    except OSError:
        pass


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
        except OSError:
            pass
        else:
            linger_and_close_reading(sock)
        finally:
            sock.close()

    @property
    def bind_addr(self) -> Any:
        return http_bind_address(self.container.config, self.container.service_name)

    def get_wsgi_app(self) -> Any:
        return JsonWsgiApp(self)

    def start(self) -> None:
        # nameko's start, with an exclusive port: eventlet.listen's default SO_REUSEPORT let a second `make run` bind
        # the same ports and the kernel split requests between two systems
        if not self._starting:  # type: ignore[has-type]  # nameko's WebServer sets it, untyped
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
    #: the service's own domain errors (its class's `domain_errors`), answered like ApiError
    domain_errors: DomainErrors = NO_DOMAIN_ERRORS

    def __init__(self, method: str, url: str, **kwargs: Any) -> None:
        kwargs.setdefault("expected_exceptions", (ApiError, HTTPException))
        super().__init__(method, url, **kwargs)

    def setup(self) -> None:
        super().setup()
        self.domain_errors = getattr(self.container.service_cls, "domain_errors", NO_DOMAIN_ERRORS)
        expected = self.expected_exceptions  # type: ignore[has-type]  # nameko's Entrypoint sets it, untyped
        self.expected_exceptions = (
            *(expected if isinstance(expected, tuple) else (expected,)),
            *self.domain_errors.types,
        )

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
            refusal = self.refuse_now(request)
            if refusal is not None:
                response = error_response(refusal)
            else:
                try:
                    with self.server.request_slots:
                        response = super().handle_request(request)
                finally:
                    self.request_done(request)
        http_metrics(self.container.service_name).observe(
            request.method, self.url, response.status_code, time.perf_counter() - started
        )
        return response

    def refuse_now(self, request: Request) -> ApiError | None:
        """Admission control: an error to answer at once, after the body arrived and before the request waits for a
        worker slot (e.g. 503 when the service's backlog is over its bound); None admits it, and then
        `request_done` follows when it was handled. An endpoint overrides both (services/intake/admission.py)."""
        return None

    def request_done(self, request: Request) -> None:
        """An admitted request was handled (answered or failed)."""

    def response_from_result(self, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        return json_response(result)

    def response_from_exception(self, exc: Exception) -> Response:
        error = self.domain_errors.api_error(exc)
        if error is not None:
            return error_response(error)
        if isinstance(exc, HTTPException):
            return _http_exception_response(exc)
        log.error("unhandled error in %s %s: %r", self.method, self.url, exc)
        return json_response(
            {"error": {"code": "internal_error", "message": "the server failed; the request was not completed"}},
            status=500,
        )


api = ApiEndpoint.decorator


#: bodies without files (JSON, urlencoded) carry only short text fields: they are refused above this size
TEXT_BODY_MAX_BYTES = 1024 * 1024
#: the API's JSON bodies are flat objects; Python's parser recurses, so a few KB of brackets would exhaust the stack
JSON_MAX_DEPTH = 32

_JSON = "application/json"
_MULTIPART = "multipart/form-data"
_URLENCODED = "application/x-www-form-urlencoded"
#: the error code for a body of each accepted type that cannot be read
_INVALID_BODY_CODES = {_JSON: "invalid_json", _MULTIPART: "invalid_multipart", _URLENCODED: "invalid_urlencoded"}
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_OBJECTS_AS_ARRAYS = bytes.maketrans(b"{}", b"[]")


class _RepeatedField(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _object_refusing_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _RepeatedField(key)
        result[key] = value
    return result


def json_nesting_problem(data: bytes, limit: int) -> str | None:
    """What keeps a JSON text from being parsed safely: arrays and objects nested deeper than `limit`, or brackets
    left open or closed twice (the parser would recurse into `[[[[…` before seeing it never ends); None when it may
    be parsed.

    Strings are blanked out and objects counted as arrays, then the innermost pairs `[]` are removed `limit` times
    (each pass one `bytes.replace`, in C; a 1 MB body takes milliseconds): what is left was nested deeper. Valid JSON
    always shrinks to nothing; brackets that stop shrinking are unbalanced. A `[` closed by `}` is left to the parser,
    which stops there, no deeper than counted.
    """
    brackets = _JSON_STRING.sub(b"", data).translate(_OBJECTS_AS_ARRAYS, _NOT_A_BRACKET)
    for _ in range(limit):
        if not brackets:
            return None
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return "request body is not valid JSON: brackets are left open or closed twice"
        brackets = shorter
    if brackets:
        return f"request body nests arrays or objects deeper than {limit} levels"
    return None


def read_fields(
    request: Request, file_field: str | None = None, max_files: int = 1
) -> tuple[dict[str, str], list[IO[bytes]]]:
    """Text fields and up to `max_files` files named `file_field` from a multipart, urlencoded or JSON body.

    Nothing is dropped quietly: a repeated field, a file under another name, too many files, or a file field in a
    JSON body get a 422 naming the field; a body that cannot be read gets a 400 saying what is wrong with it. The
    files come back unread (spooled by werkzeug), so a handler holds one photo in memory at a time.
    """
    mimetype = request.mimetype
    limit = request.max_content_length
    if mimetype in (_JSON, _URLENCODED):
        limit = TEXT_BODY_MAX_BYTES if limit is None else min(limit, TEXT_BODY_MAX_BYTES)
        request.max_content_length = limit
    if request.content_length is not None and limit is not None and request.content_length > limit:
        raise _too_large(request, f"request body is {request.content_length} bytes")
    if mimetype not in _INVALID_BODY_CODES:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send multipart/form-data (with the photo), application/x-www-form-urlencoded or application/json",
        )
    try:
        if mimetype == _JSON:
            fields = _json_fields(request.get_data(cache=False), file_field)
            files: list[IO[bytes]] = []
        else:
            fields, files = _form_fields(request, file_field, max_files)
    except RequestEntityTooLarge:
        raise ApiError(
            413,
            "request_too_large",
            f"a text field is larger than {request.max_form_memory_size} bytes, "
            f"or the body has more than {request.max_form_parts} parts",
        ) from None
    except ClientDisconnected:
        raise ApiError(
            400,
            _INVALID_BODY_CODES[mimetype],
            f"the request body ended before its Content-Length ({request.content_length} bytes)",
        ) from None
    return fields, files


def _too_large(request: Request, what: str) -> ApiError:
    limit = request.max_content_length
    if request.mimetype in (_JSON, _URLENCODED):
        return ApiError(413, "request_too_large", f"{what}; a body without files is limited to {limit} bytes")
    return ApiError(413, "request_too_large", f"{what}; the limit is {limit} bytes")


def _json_fields(data: bytes, file_field: str | None) -> dict[str, str]:
    problem = json_nesting_problem(data, JSON_MAX_DEPTH)
    if problem is not None:
        raise ApiError(400, "invalid_json", problem)
    try:
        payload = json.loads(data or b"{}", object_pairs_hook=_object_refusing_repeated_keys)
    except _RepeatedField as exc:
        raise _repeated(exc.name) from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "request body must be a JSON object")
    if file_field is not None and file_field in payload:
        raise ApiError(
            422,
            "invalid_field",
            f"{file_field} must be sent as a file part of a multipart/form-data body, not in JSON",
            field=file_field,
        )
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in payload.items() if v is not None}


def _form_fields(request: Request, file_field: str | None, max_files: int) -> tuple[dict[str, str], list[IO[bytes]]]:
    parser = request.make_form_data_parser()
    parser.silent = False  # werkzeug's default turns any parse error into an empty form
    try:
        _stream, form, files = parser.parse(
            request.stream, request.mimetype, request.content_length, request.mimetype_params
        )
    except ValueError as exc:
        raise ApiError(400, _INVALID_BODY_CODES[request.mimetype], _form_problem(request, exc)) from None
    for name in form:
        if len(form.getlist(name)) > 1:
            raise _repeated(name)
    if file_field is not None and file_field in form:
        raise ApiError(422, "invalid_field", f"{file_field} must be sent as a file part", field=file_field)
    for name in files:
        if name != file_field:
            expected = f"only {file_field!r} may be a file" if file_field else "this request takes no files"
            raise ApiError(422, "unexpected_file", f"{name!r} was sent as a file; {expected}", field=name)
    parts = files.getlist(file_field) if file_field is not None else []
    if len(parts) > max_files:
        raise ApiError(
            422,
            "too_many_files",
            f"{file_field}: at most {max_files} file{'s' if max_files > 1 else ''} per request, this one has "
            f"{len(parts)}",
            field=file_field,
        )
    return {name: form[name] for name in form}, [part.stream for part in parts]


def _form_problem(request: Request, exc: ValueError) -> str:
    """What is wrong with a form body, in words a client developer can act on (werkzeug's are terse)."""
    if request.mimetype == _URLENCODED:
        return f"the urlencoded body is not UTF-8 text: {exc}"
    boundary = request.mimetype_params.get("boundary")
    text = str(exc)
    if not boundary:
        return "Content-Type multipart/form-data needs a boundary parameter"
    if text.endswith("State.PREAMBLE"):
        return f"the body does not contain the boundary {boundary!r} declared in Content-Type"
    if "cannot parse beyond" in text:
        return f"the multipart body is truncated: it ends before the closing boundary --{boundary}--"
    return f"the multipart body could not be parsed: {text}"


def _repeated(name: str) -> ApiError:
    return ApiError(422, "repeated_field", f"{name} was sent more than once; send each field once", field=name)


def gzipped(content: bytes) -> bytes:
    """`content` gzip-compressed the same way every time (no timestamp): for bodies built once and served often."""
    return gzip.compress(content, compresslevel=9, mtime=0)


def negotiated_body(request: Request, plain: bytes, compressed: bytes | None) -> tuple[bytes, dict[str, str]]:
    """The body to send, gzip-compressed when the client accepts it and a compressed form exists, with the headers
    that say so (`Content-Encoding`, and `Vary` so caches keep both forms apart)."""
    if compressed is None:
        return plain, {}
    if request.accept_encodings["gzip"] > 0:
        return compressed, {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
    return plain, {"Vary": "Accept-Encoding"}
