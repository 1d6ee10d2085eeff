"""The `jaklapor` command's own subcommands (the others start services or tools and are tested with them)."""

from __future__ import annotations

import io

import pytest

from jaklapor_app.cli import main
from services.notify.signing import signature_header

SECRET = "whsec-example-secret-123"
BODY = b'{"report_id":"JK-20261128-000042","type":"report_assigned"}'


def test_the_cli_verifies_a_body_on_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    header = signature_header(SECRET, BODY)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(BODY)))
    assert main(["verify-webhook", "--secret", SECRET, "--signature", header]) == 0
    assert capsys.readouterr().out.strip() == "valid"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(BODY + b"\n")))
    monkeypatch.setenv("JAKLAPOR_WEBHOOK_SECRET", SECRET)
    assert main(["verify-webhook", "--signature", header]) == 1
