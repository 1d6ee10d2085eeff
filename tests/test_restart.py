"""`make run` stopped and started again: its in-process store starts empty, while RabbitMQ keeps the agencies' queues
(and the agencies remember every report they got, by `message_id`)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.system import OpdQueueReader, RunningSystem, S3StandIn, Vhost, client_headers, start_system, wait_for

pytestmark = pytest.mark.e2e

BLOK_M = (-6.2443, 106.8003)  # Melawai, Kebayoran Baru: illegal parking there goes to this Suku Dinas
PARKING_OPD = "sudin-perhubungan-jakarta-selatan"
REPORTS_PER_RUN = 3


@pytest.fixture
def local_system(tmp_path: Path) -> Iterator[RunningSystem]:
    """The default `make run`: all four services in one process with the in-process store (mongomock)."""
    vhost, s3 = Vhost.create(), S3StandIn()
    s3.start()
    system = start_system(tmp_path, vhost, s3)
    yield system
    system.stop()
    s3.stop()
    vhost.delete()


def submit(system: RunningSystem, description: str) -> str:
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": "parkir-liar", "description": description, "lat": BLOK_M[0], "lon": BLOK_M[1]},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["report_id"]


def queued(system: RunningSystem, count: int) -> None:
    reader = OpdQueueReader(system.amqp_uri)
    try:
        wait_for(lambda: reader.count(PARKING_OPD) >= count, 120, message=f"{count} messages on {PARKING_OPD}'s queue")
    finally:
        reader.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_report_numbers_never_repeat_after_a_restart_of_the_in_process_store(
    local_system: RunningSystem, stop_signal: int
) -> None:
    first_run = [
        submit(local_system, f"Mobil parkir di trotoar, laporan {n} sebelum restart") for n in range(REPORTS_PER_RUN)
    ]
    queued(local_system, REPORTS_PER_RUN)  # the agency has them; nobody read them yet
    local_system.stop(stop_signal)  # Ctrl-C / kill of `make run`, or a crash

    local_system.restart("intake")  # same broker, same vhost, same queues; a new, empty report store
    second_run = [
        submit(local_system, f"Mobil parkir di trotoar, laporan {n} sesudah restart") for n in range(REPORTS_PER_RUN)
    ]
    queued(local_system, 2 * REPORTS_PER_RUN)

    reader = OpdQueueReader(local_system.amqp_uri)
    try:
        messages = [reader.get(PARKING_OPD)[1] for _ in range(2 * REPORTS_PER_RUN)]
    finally:
        reader.close()
    descriptions_by_id: dict[str, set[str]] = {}
    for body in messages:
        descriptions_by_id.setdefault(body["message_id"], set()).add(body["description"])
    reused = {message_id: texts for message_id, texts in descriptions_by_id.items() if len(texts) > 1}
    assert not reused, f"one message_id for different reports (an agency deduplicating drops one): {reused}"
    assert len(descriptions_by_id) == 2 * REPORTS_PER_RUN
    # within a day the numbers keep increasing across the restart (the test may straddle Jakarta's midnight)
    if first_run[-1][:11] == second_run[0][:11]:
        assert first_run == sorted(first_run) and second_run[0] > first_run[-1], (first_run, second_run)
