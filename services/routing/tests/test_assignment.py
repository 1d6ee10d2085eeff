"""What routing decides for one hop of a report (services.routing.assignment): pure, no broker, no store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jaklapor.events import ReportRouted, ReportUnroutable
from jaklapor.reference import Directory, load_directory
from jaklapor.vocabulary import KOORDINASI, MENUNGGU, TRIAGE_NOTE
from services.routing.assignment import Terms, assign, hop_of, status_of
from services.routing.domain import AreaIndex
from services.routing.tests.reports import DEPOK, MELAWAI, NOW, forwarded, submitted

TERMS = Terms(public_url="https://lapor.example/")


@pytest.fixture(scope="module")
def index() -> AreaIndex:
    return AreaIndex.default()


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory()


def test_a_submitted_report_goes_to_the_responsible_opd_with_the_category_deadline(
    index: AreaIndex, directory: Directory
) -> None:
    assignment = assign(submitted(), index, directory, TERMS, NOW)
    event = assignment.event
    assert isinstance(event, ReportRouted)
    assert assignment.hop == 0 and event.hop == 0
    assert assignment.opd.code == event.opd.code == "kelurahan-melawai"
    assert assignment.routing_key == event.routing_key == "kelurahan-melawai.jakarta-selatan.kebayoran-baru.melawai"
    assert event.area is not None and event.area.kelurahan == "Melawai"
    assert event.status == MENUNGGU and event.version == 1 and event.occurred_at == NOW
    assert event.response_deadline == NOW + timedelta(days=directory.categories["sampah"].response_days)
    message = assignment.opd_message
    assert message.message_id == "JK-20261128-000001:0" and message.hop == 0
    assert message.assigned_at == NOW and message.response_deadline == event.response_deadline
    assert message.status == MENUNGGU and message.opd == event.opd and message.area == event.area
    assert message.transitions_url == "https://lapor.example/api/v1/opd/reports/JK-20261128-000001/transitions"
    assert message.forwarded_from is None and message.triage_reason is None
    assert assignment.reason is None


def test_a_category_with_its_own_target_and_the_configured_override(index: AreaIndex, directory: Directory) -> None:
    flood = assign(submitted("penanganan-banjir"), index, directory, TERMS, NOW).event
    assert isinstance(flood, ReportRouted) and flood.response_deadline == NOW + timedelta(days=1)
    tight = Terms("https://lapor.example", deadline_override_seconds=90)
    overridden = assign(submitted("penanganan-banjir"), index, directory, tight, NOW).event
    assert isinstance(overridden, ReportRouted) and overridden.response_deadline == NOW + timedelta(seconds=90)


def test_a_report_outside_jakarta_goes_to_the_triage_desk_with_a_note_for_the_citizen(
    index: AreaIndex, directory: Directory
) -> None:
    assignment = assign(submitted(location=DEPOK), index, directory, TERMS, NOW)
    event = assignment.event
    assert isinstance(event, ReportUnroutable)
    assert event.reason == assignment.reason == "outside_jakarta"
    assert assignment.opd.code == directory.triage.code and assignment.routing_key == "triage.outside-jakarta"
    assert event.citizen_note.startswith(f"{TRIAGE_NOTE}: lokasi ")
    assert event.status == MENUNGGU and event.area is None and event.occurred_at == NOW
    message = assignment.opd_message
    assert message.triage_reason == f"outside_jakarta: {event.detail}"
    assert message.response_deadline is None and message.opd.level == "triage"


def test_a_forwarded_report_goes_to_its_target_with_the_hand_over_and_a_new_deadline(directory: Directory) -> None:
    event = forwarded("satpol-pp-jakarta-selatan", kind="koordinasi")
    assignment = assign(event, AreaIndex.default(), directory, TERMS, NOW)
    routed = assignment.event
    assert isinstance(routed, ReportRouted)
    assert assignment.hop == routed.hop == 2 and routed.status == KOORDINASI and routed.version == 3
    assert assignment.routing_key == "satpol-pp-jakarta-selatan.jakarta-selatan.kebayoran-baru.melawai"
    assert routed.response_deadline == NOW + timedelta(days=directory.categories["sampah"].response_days)
    message = assignment.opd_message
    assert message.message_id == "JK-20261128-000001:2" and message.status == KOORDINASI
    assert (message.forwarded_from, message.note, message.forward_kind) == (
        "kelurahan-melawai",
        "Bukan wewenang kami",
        "koordinasi",
    )


def test_a_forward_without_an_area_is_keyed_by_the_opd_alone(directory: Directory) -> None:
    assignment = assign(forwarded("pam-jaya", area=None), AreaIndex.default(), directory, TERMS, NOW)
    assert isinstance(assignment.event, ReportRouted) and assignment.routing_key == "pam-jaya"


def test_a_forward_to_an_unknown_opd_goes_to_triage(directory: Directory) -> None:
    assignment = assign(forwarded("dinas-bulan"), AreaIndex.default(), directory, TERMS, NOW)
    event = assignment.event
    assert isinstance(event, ReportUnroutable) and event.reason == "unknown_opd"
    assert assignment.routing_key == "triage.unknown-opd" and assignment.hop == 2
    assert event.area == MELAWAI and event.status == KOORDINASI
    assert "dinas-bulan" in event.detail and event.citizen_note.startswith(TRIAGE_NOTE)


def test_the_ledger_record_holds_what_a_redelivery_publishes_again(index: AreaIndex, directory: Directory) -> None:
    routed = assign(submitted(), index, directory, TERMS, NOW).as_record()
    assert routed["event_type"] == "report_routed" and routed["event"]["event_type"] == "routing.report_routed"
    assert routed["opd_code"] == "kelurahan-melawai" and routed["opd_level"] == "kelurahan"
    assert routed["kota"] == "Jakarta Selatan" and "reason" not in routed
    assert routed["opd_message"]["assigned_at"] == "2026-11-28T01:02:03Z"
    triage = assign(submitted(location=DEPOK), index, directory, TERMS, NOW).as_record()
    assert triage["event_type"] == "report_unroutable" and triage["reason"] == "outside_jakarta"
    assert triage["kota"] is None and triage["opd_code"] == directory.triage.code


def test_status_and_hop_of_a_new_and_a_forwarded_report() -> None:
    assert (status_of(submitted()), hop_of(submitted())) == (MENUNGGU, 0)
    assert (status_of(forwarded("pam-jaya", status="disposisi", hop=4)), hop_of(forwarded("pam-jaya", hop=4))) == (
        "disposisi",
        4,
    )
