"""Fuzzing the gateway from its own OpenAPI document (schemathesis): valid and invalid requests, thousands of
them, and not a single 5xx. The document itself must be valid OpenAPI 3."""

from __future__ import annotations

import collections
import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis.generation import GenerationMode

from jaklapor.web import JSON_MAX_DEPTH
from tests.photo_fixtures import jpeg_with_gps
from tests.system import RunningSystem, client_headers, wait_for

pytestmark = pytest.mark.e2e

# examples per operation and generation mode (operations with few distinct inputs stop earlier): with the workbench's
# endpoints, 250 make about 7,000 requests in about 2 minutes here (FUZZ_EXAMPLES=1000 for a deeper run)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "250"))
FUZZ_OPD = "sudin-bina-marga-jakarta-pusat"
STREAMS = {"/api/v1/opd/stream"}


def test_openapi_document_is_valid(system: RunningSystem) -> None:
    response = requests.get(system.url("intake", "/openapi.json"), timeout=10)
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert {"/api/v1/reports", "/api/v1/opd/reports/{report_id}/transitions"} <= set(document["paths"])


@pytest.fixture(scope="module")
def fuzz_report(system: RunningSystem) -> dict:
    """A real report assigned to FUZZ_OPD, so fuzzed OPD calls reach the transition rules, not just a 404."""
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": "jalan", "description": "Jalan rusak (fuzz)", "lat": "-6.175392", "lon": "106.827153"},
        files={"photo": ("p.jpg", jpeg_with_gps(-6.175392, 106.827153), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201
    receipt = response.json()
    wait_for(
        lambda: requests.get(system.url("intake", f"/api/v1/reports/{receipt['tracking_token']}"), timeout=5).json()[
            "responsible_opd"
        ],
        10,
        message="the fuzz report routed",
    )
    return receipt


def fuzz(operation, strategy, opd_auth: dict, statuses: collections.Counter, failures: list[str]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def call(case) -> None:
        headers = client_headers()
        if "/opd/" in operation.path and sum(statuses.values()) % 2 == 0:
            headers.update(opd_auth)  # half the OPD calls authenticated, to reach the rules behind the key
        response = case.call(headers=headers, timeout=30)
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(
                f"{operation.method.upper()} {operation.path} -> {response.status_code}: {response.text[:200]}"
            )

    try:
        call()
    except Unsatisfiable:  # e.g. no invalid input exists for an operation without parameters
        pass


@pytest.mark.timeout(900)  # thousands of requests: longer than the suite's per-test bound on a busy machine
def test_no_request_makes_the_gateway_fail(system: RunningSystem, fuzz_report: dict) -> None:
    schema = schemathesis.openapi.from_url(system.url("intake", "/openapi.json"))
    # a live stream never ends by itself: it is tested in tests/test_opd_workbench_api.py, not fuzzed
    operations = [op for op in (result.ok() for result in schema.get_all_operations()) if op.path not in STREAMS]
    statuses: collections.Counter[int] = collections.Counter()
    failures: list[str] = []
    opd_auth = system.opd_headers(FUZZ_OPD)
    path_values = {"report_id": fuzz_report["report_id"], "tracking_token": fuzz_report["tracking_token"]}

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            names = {p.name for p in operation.path_parameters}
            known = {k: v for k, v in path_values.items() if k in names}
            strategy = operation.as_strategy(generation_mode=mode)
            if known and mode is GenerationMode.POSITIVE:
                strategy = strategy | operation.as_strategy(generation_mode=mode, path_parameters=known)

            fuzz(operation, strategy, opd_auth, statuses, failures)

    total = sum(statuses.values())
    print(f"\nfuzzed {total} requests over {len(operations)} operations: {dict(sorted(statuses.items()))}")
    assert total >= 1000
    assert not failures, "\n".join(failures[:20])


# a JSON body nesting `depth` levels: arrays, objects or a mix, around a field the endpoint knows or a bare value
NESTING_LEVELS = st.lists(
    st.sampled_from([("[", "]"), ('{"a": ', "}"), ('[{"status": ', "}]")]), min_size=1, max_size=3
)
NESTED_FIELD = st.sampled_from(['{{"status": {}}}', '{{"category": "jalan", "description": {}}}', "{}"])


@st.composite
def nested_json(draw: st.DrawFn) -> tuple[int, bytes, bool]:
    depth = draw(st.integers(1, 100) | st.integers(JSON_MAX_DEPTH - 2, JSON_MAX_DEPTH + 2) | st.integers(100, 100_000))
    levels = draw(NESTING_LEVELS)
    opening = "".join(levels[i % len(levels)][0] for i in range(depth))
    closing = "".join(levels[i % len(levels)][1] for i in reversed(range(depth)))
    inner = opening + draw(st.sampled_from(["1", '"x"', "null", ""])) + closing
    body = draw(NESTED_FIELD).format(inner).encode()
    cut = draw(st.booleans())
    if cut:  # anywhere: unclosed brackets, which the parser would recurse into all the same
        body = body[: draw(st.integers(0, len(body)))]
    return depth, body, cut


def test_no_nesting_depth_makes_the_gateway_fail(system: RunningSystem, fuzz_report: dict) -> None:
    """Python's JSON parser recurses: a 2 KB body of brackets used to answer 500. Any depth gets a 4xx."""
    endpoints = [
        (system.url("intake", "/api/v1/reports"), {}),
        (
            system.url("intake", f"/api/v1/opd/reports/{fuzz_report['report_id']}/transitions"),
            system.opd_headers(FUZZ_OPD),
        ),
    ]
    statuses: collections.Counter[int] = collections.Counter()

    @settings(max_examples=EXAMPLES // 2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=nested_json(), endpoint=st.sampled_from(endpoints), chunked=st.booleans())
    def call(case: tuple[int, bytes, bool], endpoint: tuple[str, dict], chunked: bool) -> None:
        depth, body, cut = case
        url, auth = endpoint
        sent = iter([body[: len(body) // 2], body[len(body) // 2 :]]) if chunked else body
        headers = {"Content-Type": "application/json", **client_headers(), **auth}
        response = requests.post(url, data=sent, headers=headers, timeout=30)
        statuses[response.status_code] += 1
        assert 400 <= response.status_code < 500, f"depth {depth}: {response.status_code} {response.text[:200]}"
        if depth > JSON_MAX_DEPTH + 1 and not cut:  # deeper than the limit even around a field
            assert response.json()["error"]["code"] in ("invalid_json", "request_too_large"), response.text

    call()
    print(f"\nnested JSON bodies: {dict(sorted(statuses.items()))}")
    assert statuses[400] > 0
