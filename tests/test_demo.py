"""`jaklapor demo`: it walks its sample reports through the running system, and says true things about them."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from devtools.demo import ACTIONS, SAMPLES, run_demo
from jaklapor.reference import load_directory
from services.routing.domain import AreaMatch, default_area_index, route
from tests.system import OPD_KEY_SECRET, RunningSystem, free_port


def test_samples_go_where_the_demo_says() -> None:
    """The demo's expectations (kelurahan, OPD) are what the routing rules decide for its coordinates."""
    index, directory = default_area_index(), load_directory()
    for sample in SAMPLES:
        decision = route(index, directory, sample.lat, sample.lon, sample.category)
        assert decision.opd.code == sample.expect_opd, sample.key
        where = index.locate(sample.lat, sample.lon)
        kelurahan = where.kelurahan.name if isinstance(where, AreaMatch) else None
        assert kelurahan == sample.expect_kelurahan, sample.key
    keys = {sample.key for sample in SAMPLES}
    assert {action.sample for action in ACTIONS} <= keys
    for action in ACTIONS:
        if action.target_opd:
            assert directory.get(action.target_opd) is not None, action.target_opd


def test_demo_says_how_to_start_the_system_when_nothing_answers(capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    assert run_demo(nowhere, nowhere, None) == 1
    out = capsys.readouterr().out
    assert "does not answer" in out and "make run" in out


@pytest.mark.e2e
def test_demo_walks_reports_through_the_running_system(
    system: RunningSystem, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the demo reads the system's configuration: the same environment as the running services
    monkeypatch.delenv("JAKLAPOR_CONFIG", raising=False)
    monkeypatch.setenv("AMQP_URI", system.amqp_uri)
    monkeypatch.setenv("OPD_KEY_SECRET", OPD_KEY_SECRET)
    monkeypatch.setenv("ROUTING_HTTP", f"127.0.0.1:{system.ports['routing']}")
    summary_url = system.url("stats", "/api/v1/stats/summary")
    before = requests.get(summary_url, timeout=10).json()

    code = run_demo(system.url("intake"), system.url("stats"), None)
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out + captured.err
    assert "demo complete" in out

    # the statistics count every submitted report and the demo's finished work
    after = requests.get(summary_url, timeout=10).json()
    finished = sum(1 for action in ACTIONS if action.status == "selesai" and not action.expect_error)
    assert after["total"] >= before["total"] + len(SAMPLES)
    assert after["by_status"]["selesai"]["count"] >= before["by_status"]["selesai"]["count"] + finished >= 1
    assert after["by_status"]["ditolak"]["count"] >= before["by_status"]["ditolak"]["count"] + 1

    # the Depok report was sent to triage, and the triage desk rejected it as outside Jakarta
    depok = re.search(r"(JK-\d{8}-\d{6})  Depok[^\n]*triage[^\n]*\n\s+→ [^\n]*\[triage\]", out)
    assert depok, out
    report_id = depok.group(1)
    view = requests.get(
        system.url("intake", f"/api/v1/opd/reports/{report_id}"), headers=system.opd_headers("triage"), timeout=10
    ).json()
    assert view["status"] == "ditolak"
    assert view["history"][-1]["reason"] == "di-luar-jakarta"

    # every step of the story was told
    for promise in (
        "carry no EXIF",
        "acknowledged",
        "without a photo is refused",
        "koordinasi, handed to",
        "event: status_changed  status selesai",
        "Headline:",
        "jaklapor opd-key",
    ):
        assert promise in out, promise


def test_demo_under_the_default_configuration_has_the_verifier_approve(
    tmp_path_factory: pytest.TempPathFactory,
    s3: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`make run` verifies every category (VERIFICATION_DEFAULT true): the demo's selesai waits for the verifier, whose
    automatic check the demo prints before it approves as the verifier."""
    from tests.system import Vhost, start_system

    vhost = Vhost.create()
    system = start_system(tmp_path_factory.mktemp("verified"), vhost, s3, VERIFICATION_DEFAULT="true")
    try:
        monkeypatch.delenv("JAKLAPOR_CONFIG", raising=False)
        monkeypatch.setenv("AMQP_URI", system.amqp_uri)
        monkeypatch.setenv("OPD_KEY_SECRET", OPD_KEY_SECRET)
        monkeypatch.setenv("ROUTING_HTTP", f"127.0.0.1:{system.ports['routing']}")
        code = run_demo(system.url("intake"), system.url("stats"), None)
        out = capsys.readouterr().out
    finally:
        system.stop()
        vhost.delete()
    assert code == 0, out
    finished = sum(1 for action in ACTIONS if action.status == "selesai" and not action.expect_error)
    assert out.count("automatic check of the evidence: diambil 0 m dari lokasi laporan") == finished
    assert out.count("verifikator (Biro Pemerintahan): approved → selesai") == finished
    assert "event: status_changed  status selesai" in out
