"""Reading request bodies (jaklapor/web.py read_fields) without a broker: chunked uploads, broken multipart, urlencoded
and JSON bodies, nesting depth, repeated fields and several files. Every body gets fields or a 4xx naming the problem.
"""

from __future__ import annotations

import http.client
import io
import json
import re
from typing import Any

import eventlet.wsgi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from jaklapor.web import (
    JSON_MAX_DEPTH,
    TEXT_BODY_MAX_BYTES,
    ApiError,
    GatewayProtocol,
    RequestHeaders,
    buffer_request_body,
    json_nesting_problem,
    read_fields,
)

LIMIT = 64 * 1024
FIELDS = {"category": "jalan", "description": "Jalan berlubang", "lat": "-6.2", "lon": "106.8"}
BOUNDARY = "b0undary"


def multipart(parts: list[tuple[str, bytes, str | None]], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body from (name, value, filename or None) parts."""
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def text_parts(fields: dict[str, str]) -> list[tuple[str, bytes, str | None]]:
    return [(name, value.encode(), None) for name, value in fields.items()]


def request_for(body: bytes, content_type: str, limit: int = LIMIT) -> Request:
    request = Request(EnvironBuilder(method="POST", data=body, content_type=content_type).get_environ())
    request.max_content_length = limit
    return request


def chunked(body: bytes, chunk: int = 1000) -> bytes:
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def chunked_request(body: bytes, content_type: str, limit: int = LIMIT, wire: bytes | None = None) -> Request:
    """A request as eventlet's server hands over `Transfer-Encoding: chunked` (no Content-Length), read in full by the
    gateway before its handler runs (`buffer_request_body`, which may refuse it)."""
    environ = EnvironBuilder(method="POST").get_environ()
    environ["CONTENT_TYPE"] = content_type
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    raw = chunked(body) if wire is None else wire
    environ["wsgi.input"] = eventlet.wsgi.Input(io.BufferedReader(io.BytesIO(raw)), None, None, chunked_input=True)
    buffer_request_body(environ, limit)
    request = Request(environ)
    request.max_content_length = limit
    return request


def refused(request: Request, **kwargs: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        read_fields(request, "photo", **kwargs)
    return caught.value


# ---- chunked bodies (issue 12 item 4) ------------------------------------------------------------------------------


def test_a_chunked_multipart_body_is_read() -> None:
    body = multipart([*text_parts(FIELDS), ("photo", b"\xff\xd8 photo bytes", "p.jpg")])
    fields, files = read_fields(chunked_request(body, f"multipart/form-data; boundary={BOUNDARY}"), "photo")
    assert fields == FIELDS
    assert [f.read() for f in files] == [b"\xff\xd8 photo bytes"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"category=jalan&description=Jalan+berlubang&lat=-6.2&lon=106.8"),
        ("application/json", json.dumps(FIELDS).encode()),
    ],
)
def test_a_chunked_text_body_is_read(content_type: str, body: bytes) -> None:
    assert read_fields(chunked_request(body, content_type), "photo") == (FIELDS, [])


@pytest.mark.parametrize(
    ("content_type", "body", "limit"),
    [
        (f"multipart/form-data; boundary={BOUNDARY}", multipart([("photo", b"x" * 200_000, "p.jpg")]), LIMIT),
        ("application/json", json.dumps({"description": "x" * (TEXT_BODY_MAX_BYTES + 10)}).encode(), 10 * LIMIT**2),
        ("application/x-www-form-urlencoded", b"description=" + b"x" * 100_000, 50_000),
    ],
    ids=["multipart", "json", "urlencoded"],
)
def test_a_chunked_body_over_the_limit_gets_413(content_type: str, body: bytes, limit: int) -> None:
    with pytest.raises(ApiError) as caught:
        read_fields(chunked_request(body, content_type, limit), "photo")
    error = caught.value
    assert (error.status, error.code) == (413, "request_too_large")
    assert str(min(limit, TEXT_BODY_MAX_BYTES)) in error.message


def test_a_broken_chunked_encoding_gets_400() -> None:
    body = multipart(text_parts(FIELDS))
    wire = b"%x\r\n%s\r\nzz\r\n" % (len(body[:50]), body[:50])  # "zz" is no chunk size
    with pytest.raises(ApiError) as caught:
        chunked_request(body, f"multipart/form-data; boundary={BOUNDARY}", wire=wire)
    assert (caught.value.status, caught.value.code) == (400, "invalid_chunked_body")
    assert "chunked" in caught.value.message


# ---- broken bodies (item 5) ------------------------------------------------------------------------------------------

GOOD_MULTIPART = multipart([*text_parts(FIELDS), ("photo", b"\xff\xd8 photo", "p.jpg")])
BROKEN_MULTIPART = [
    ("truncated", GOOD_MULTIPART[: len(GOOD_MULTIPART) // 2], f"boundary={BOUNDARY}", "truncated"),
    ("closing boundary cut", GOOD_MULTIPART[:-6], f"boundary={BOUNDARY}", "truncated"),
    ("wrong boundary", GOOD_MULTIPART, "boundary=another", "does not contain the boundary 'another'"),
    ("missing boundary", GOOD_MULTIPART, "", "needs a boundary"),
    ("garbage", b"\x00\x01garbage" * 50, f"boundary={BOUNDARY}", "does not contain the boundary"),
    ("part without disposition", f"--{BOUNDARY}\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(), f"boundary={BOUNDARY}", ""),
]


@pytest.mark.parametrize(
    ("body", "params", "says"), [case[1:] for case in BROKEN_MULTIPART], ids=[case[0] for case in BROKEN_MULTIPART]
)
def test_broken_multipart_gets_400_saying_what_is_wrong(body: bytes, params: str, says: str) -> None:
    content_type = "multipart/form-data" + (f"; {params}" if params else "")
    for request in (request_for(body, content_type), chunked_request(body, content_type)):
        error = refused(request)
        assert (error.status, error.code) == (400, "invalid_multipart"), error.message
        assert says in error.message


def test_a_body_shorter_than_its_content_length_gets_400() -> None:
    request = request_for(GOOD_MULTIPART, f"multipart/form-data; boundary={BOUNDARY}")
    request.environ["CONTENT_LENGTH"] = str(len(GOOD_MULTIPART) + 500)
    request.environ["wsgi.input"] = io.BytesIO(GOOD_MULTIPART)
    error = refused(request)
    assert (error.status, error.code) == (400, "invalid_multipart")
    assert "Content-Length" in error.message


def test_urlencoded_body_that_is_not_utf8_gets_400() -> None:
    error = refused(request_for(b"category=jalan&description=\xff\xfe", "application/x-www-form-urlencoded"))
    assert (error.status, error.code) == (400, "invalid_urlencoded")
    assert "UTF-8" in error.message


# ---- JSON nesting (item 6) -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [JSON_MAX_DEPTH + 1, 1000, 100_000])
@pytest.mark.parametrize("shape", ["[", '{"a":', '[{"a":'])
def test_deeply_nested_json_gets_400_naming_the_limit(depth: int, shape: str) -> None:
    closing = {"[": "]", '{"a":': "}", '[{"a":': "}]"}[shape]
    body = (shape * depth + "1" + closing * depth).encode()
    limit = TEXT_BODY_MAX_BYTES
    for request in (request_for(body, "application/json", limit), chunked_request(body, "application/json", limit)):
        error = refused(request)
        assert (error.status, error.code) == (400, "invalid_json")
        assert f"deeper than {JSON_MAX_DEPTH}" in error.message


@pytest.mark.parametrize("opening", ["[", '{"a":', '[{"a":'])
def test_unclosed_deep_json_gets_400_without_being_parsed(opening: str) -> None:
    body = (opening * 100_000).encode()  # the parser would recurse into these before seeing they never close
    error = refused(request_for(body, "application/json", TEXT_BODY_MAX_BYTES))
    assert (error.status, error.code) == (400, "invalid_json")
    assert "left open" in error.message or "deeper than" in error.message


@pytest.mark.parametrize("body", [b"[1, 2}", b'{"a": [}', b"]", b'{"status": "dikerjakan"]'])
def test_mismatched_brackets_get_400(body: bytes) -> None:
    assert refused(request_for(body, "application/json")).code == "invalid_json"


def test_json_at_the_nesting_limit_is_parsed() -> None:
    nested = "[" * (JSON_MAX_DEPTH - 1) + "1" + "]" * (JSON_MAX_DEPTH - 1)
    fields, _ = read_fields(request_for(f'{{"note": {nested}}}'.encode(), "application/json"), "photo")
    assert json.loads(fields["note"]) == json.loads(nested)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "[" * 200 + '\\"{{'
    fields, _ = read_fields(request_for(json.dumps({**FIELDS, "description": text}).encode(), "application/json"))
    assert fields["description"] == text


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"ab'), inner, max_size=3),
    max_leaves=60,
)


def true_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((true_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((true_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, limit=st.integers(1, 12))
def test_nesting_check_agrees_with_the_parsed_depth(value: Any, limit: int) -> None:
    problem = json_nesting_problem(json.dumps(value).encode(), limit)
    if true_depth(value) > limit:
        assert problem is not None and f"deeper than {limit}" in problem
    else:
        assert problem is None


# ---- nothing dropped quietly (item 7) --------------------------------------------------------------------------------


def test_up_to_the_limit_of_files_are_returned_in_order() -> None:
    photos = [("photo", f"photo {i}".encode(), f"p{i}.jpg") for i in range(3)]
    body = multipart([*text_parts(FIELDS), *photos])
    fields, files = read_fields(request_for(body, f"multipart/form-data; boundary={BOUNDARY}"), "photo", max_files=3)
    assert fields == FIELDS
    assert [f.read() for f in files] == [b"photo 0", b"photo 1", b"photo 2"]


def test_one_file_too_many_is_refused_naming_the_field_and_the_limit() -> None:
    photos = [("photo", b"x", f"p{i}.jpg") for i in range(4)]
    body = multipart([*text_parts(FIELDS), *photos])
    error = refused(request_for(body, f"multipart/form-data; boundary={BOUNDARY}"), max_files=3)
    assert (error.status, error.code, error.field) == (422, "too_many_files", "photo")
    assert "at most 3" in error.message and "has 4" in error.message


def test_a_second_evidence_photo_is_refused() -> None:
    body = multipart([("status", b"selesai", None), ("photo", b"a", "a.jpg"), ("photo", b"b", "b.jpg")])
    error = refused(request_for(body, f"multipart/form-data; boundary={BOUNDARY}"))
    assert (error.code, error.field) == ("too_many_files", "photo") and "at most 1 file " in error.message


@pytest.mark.parametrize("field", ["category", "description", "lat", "lon", "contact"])
def test_a_repeated_text_field_is_refused_naming_it(field: str) -> None:
    repeated = [*text_parts({**FIELDS, "contact": "warga@example.com"}), (field, b"again", None)]
    urlencoded = "&".join(f"{name}={value.decode()}" for name, value, _ in repeated).encode()
    json_body = ("{" + ", ".join(f'"{name}": "{value.decode()}"' for name, value, _ in repeated) + "}").encode()
    for request in (
        request_for(multipart(repeated), f"multipart/form-data; boundary={BOUNDARY}"),
        request_for(urlencoded, "application/x-www-form-urlencoded"),
        request_for(json_body, "application/json"),
    ):
        error = refused(request)
        assert (error.status, error.code, error.field) == (422, "repeated_field", field), request.mimetype


@pytest.mark.parametrize("value", ["/9j/4AAQSkZJRgABAQ==", None, 1, {"data": "..."}])
def test_a_photo_in_json_is_refused_telling_to_send_a_file_part(value: Any) -> None:
    error = refused(request_for(json.dumps({**FIELDS, "photo": value}).encode(), "application/json"))
    assert (error.status, error.field) == (422, "photo")
    assert "file part" in error.message and "multipart/form-data" in error.message


def test_a_file_under_another_name_is_refused() -> None:
    body = multipart([*text_parts(FIELDS), ("image", b"\xff\xd8", "p.jpg")])
    error = refused(request_for(body, f"multipart/form-data; boundary={BOUNDARY}"))
    assert (error.status, error.code, error.field) == (422, "unexpected_file", "image")


def test_a_json_body_above_the_text_limit_gets_413_before_parsing() -> None:
    body = json.dumps({"description": "x" * TEXT_BODY_MAX_BYTES}).encode()
    error = refused(request_for(body, "application/json", limit=10 * TEXT_BODY_MAX_BYTES))
    assert (error.status, error.code) == (413, "request_too_large")
    assert f"{TEXT_BODY_MAX_BYTES} bytes" in error.message


@pytest.mark.parametrize("message_class", [RequestHeaders, http.client.HTTPMessage])
def test_the_headers_of_an_upload_are_parsed_without_compiling_its_boundary(
    monkeypatch: pytest.MonkeyPatch, message_class: type[http.client.HTTPMessage]
) -> None:
    # a browser picks a new boundary for every upload: a pattern compiled for it is compiled on every request
    boundary = "----WebKitFormBoundaryq9V2cMx8Hk3LrT0a"
    raw = (
        "Host: jaklapor.example\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        "Content-Length: 2048\r\n\r\n"
    ).encode("latin-1")
    compiled: list[str] = []
    original = re.compile

    def spying_compile(pattern: Any, flags: int = 0) -> Any:
        compiled.append(str(pattern))
        return original(pattern, flags)

    monkeypatch.setattr(re, "compile", spying_compile)
    headers = http.client.parse_headers(io.BytesIO(raw), _class=message_class)
    assert headers["Content-Type"] == f"multipart/form-data; boundary={boundary}"
    assert headers.get_content_type() == "multipart/form-data" and headers["Content-Length"] == "2048"
    boundary_patterns = [p for p in compiled if "WebKitFormBoundary" in p]
    # the standard library's own message class compiles one (the control case): ours does not
    assert bool(boundary_patterns) is (message_class is http.client.HTTPMessage), boundary_patterns
    assert GatewayProtocol.MessageClass is RequestHeaders  # what every service's HTTP server parses with
