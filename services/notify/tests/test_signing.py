"""Webhook signatures: HMAC-SHA256 over `<timestamp>.<body>`, checked the way a receiving system would."""

from __future__ import annotations

import pytest

from services.notify.signing import compute_signature, signature_header, verify_signature

SECRET = "whsec-example-secret-123"
BODY = b'{"report_id":"JK-20261128-000042","type":"report_assigned"}'
AT = 1764291723
# computed independently: printf '%s' "1764291723.$BODY" | openssl dgst -sha256 -hmac whsec-example-secret-123
KNOWN = "3cdaaee5e49cb9ac3acfd9a852474a5d2d82993d8ee07504c499e19005134ad4"


def test_signature_matches_an_independent_computation() -> None:
    assert compute_signature(SECRET, AT, BODY) == KNOWN
    assert signature_header(SECRET, BODY, AT) == f"t={AT},v1={KNOWN}"


def test_a_fresh_signature_verifies() -> None:
    assert verify_signature(SECRET, signature_header(SECRET, BODY), BODY)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("another-secret-of-some-length", BODY, AT),  # wrong secret
        (SECRET, BODY + b" ", AT),  # body changed (even by a space: sign the raw bytes)
        (SECRET, BODY.replace(b"000042", b"000043"), AT),
        (SECRET, BODY, AT + 301),  # too old: a replay
        (SECRET, BODY, AT - 301),  # from the future
    ],
)
def test_anything_else_does_not(secret: str, body: bytes, now: int) -> None:
    assert not verify_signature(secret, f"t={AT},v1={KNOWN}", body, now=now)


def test_tolerance_is_configurable_and_inclusive() -> None:
    header = f"t={AT},v1={KNOWN}"
    assert verify_signature(SECRET, header, BODY, now=AT + 300)
    assert verify_signature(SECRET, header, BODY, tolerance=3600, now=AT + 3000)


@pytest.mark.parametrize(
    "header",
    ["", "garbage", f"v1={KNOWN}", f"t={AT}", f"t=abc,v1={KNOWN}", f"t=-{AT},v1={KNOWN}", f"t={AT},v0={KNOWN}"],
)
def test_malformed_headers_fail_closed(header: str) -> None:
    assert not verify_signature(SECRET, header, BODY, now=AT)


def test_any_of_several_signatures_may_match_during_a_secret_rotation() -> None:
    header = f"t={AT},v1={'0' * 64},v1={KNOWN}"
    assert verify_signature(SECRET, header, BODY, now=AT)
    assert verify_signature(SECRET, f" t={AT} , v1={KNOWN} ", BODY, now=AT)  # whitespace around parts
