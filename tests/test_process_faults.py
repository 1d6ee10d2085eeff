"""Service processes stopped and killed mid-flow, with the store (the MongoDB wire stand-in) outliving them, as a real
MongoDB would: SIGTERM drains in-flight work before exit; SIGKILL loses nothing that was acknowledged."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.photo_fixtures import jpeg_bytes
from tests.system import (
    FLOOD_SCENARIOS,
    MongoServerStandIn,
    OpdDeliveries,
    RunningSystem,
    Vhost,
    client_headers,
    flood_scenario_opds,
    s3_server,
    start_system,
    wait_for,
)

pytestmark = pytest.mark.e2e

SEPARATE = (("intake",), ("routing",), ("notify",), ("stats",))


@pytest.fixture
def split_system(tmp_path) -> Iterator[RunningSystem]:
    """Each service in its own process, all sharing one store outside them."""
    vhost, s3, mongo = Vhost.create(), s3_server(tmp_path / "s3"), MongoServerStandIn()
    s3.start()
    mongo.start()
    running = start_system(
        tmp_path, vhost, s3, mongo_uri=mongo.uri, groups=SEPARATE, RATE_LIMIT_BURST="0", DELIVERY_CLAIM_SECONDS="3"
    )
    running.mongo = mongo  # type: ignore[attr-defined]
    yield running
    running.stop()
    mongo.stop()
    s3.stop()
    vhost.delete()


class Flood:
    """Citizens submitting reports from several threads while the test breaks things."""

    def __init__(self, system: RunningSystem, total: int) -> None:
        self.system = system
        self.total = total
        self.outcomes: list[tuple[int, str | None]] = []
        self.retries = 0
        self.lock = threading.Lock()

    def submit(self, index: int) -> None:
        """One phone: it retries with the same Idempotency-Key until it gets an answer, as JAKI would."""
        lat, lon, category = FLOOD_SCENARIOS[index % len(FLOOD_SCENARIOS)]
        key = f"flood-{uuid.uuid4()}"
        headers = {**client_headers(), "Idempotency-Key": key}
        photo = jpeg_bytes((120, 90))
        outcome: tuple[int, str | None] = (0, None)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                response = requests.post(
                    self.system.url("intake", "/api/v1/reports"),
                    data={"category": category, "description": f"laporan {index}", "lat": lat, "lon": lon},
                    files={"photo": ("p.jpg", photo, "image/jpeg")},
                    headers=headers,
                    timeout=30,
                )
            except requests.RequestException:
                outcome = (0, None)  # no answer: stored or not, the retry with the same key settles it
            else:
                report_id = response.json().get("report_id") if response.status_code == 201 else None
                outcome = (response.status_code, report_id)
                if response.status_code != 503:
                    break
            with self.lock:
                self.retries += 1
            time.sleep(0.2)  # a phone's retry back-off
        with self.lock:
            self.outcomes.append(outcome)

    def run(self, breaker) -> None:
        with ThreadPoolExecutor(5) as pool:
            chaos = pool.submit(breaker)
            workers = [pool.submit(lambda s=s: [self.submit(i) for i in range(s, self.total, 4)]) for s in range(4)]
            for future in workers:
                future.result()
            chaos.result()

    def reached(self, count: int) -> bool:
        return len(self.outcomes) >= count

    @property
    def accepted(self) -> list[str]:
        return [report_id for status, report_id in self.outcomes if status == 201]


def test_sigterm_drains_in_flight_work(split_system: RunningSystem) -> None:
    system = split_system
    flood = Flood(system, 240)
    exit_codes = {}

    def stop_intake_then_routing() -> None:
        wait_for(lambda: flood.reached(60), 60)
        exit_codes["intake"] = system.send_signal("intake", signal.SIGTERM)
        system.restart("intake")
        wait_for(lambda: flood.reached(150), 60)
        exit_codes["routing"] = system.send_signal("routing", signal.SIGTERM)
        system.restart("routing")

    flood.run(stop_intake_then_routing)
    assert exit_codes == {"intake": 0, "routing": 0}, f"a graceful stop must exit 0: {exit_codes}"
    delivered = OpdDeliveries.collect(system.amqp_uri, flood_scenario_opds(), set(flood.accepted))
    missing = set(flood.accepted) - delivered.reports
    print(
        f"\nSIGTERM: {Counter(s for s, _ in flood.outcomes)} answered after {flood.retries} retries, "
        f"{len(delivered.reports)} delivered, {len(missing)} missing, "
        f"{delivered.redundant_copies()} redundant copies"
    )
    assert len(flood.accepted) == flood.total, Counter(s for s, _ in flood.outcomes)
    assert not missing, delivered.shortfall
    assert not delivered.second_assignments()
    assert delivered.redundant_copies() == 0, "a graceful stop leaves no delivery in doubt"


def test_sigkill_loses_nothing_acknowledged(split_system: RunningSystem) -> None:
    system = split_system
    flood = Flood(system, 240)

    def kill_routing_then_intake() -> None:
        wait_for(lambda: flood.reached(60), 60)
        system.send_signal("routing", signal.SIGKILL)
        wait_for(lambda: flood.reached(100), 60)  # reports keep coming in while routing is dead
        system.restart("routing")
        wait_for(lambda: flood.reached(160), 60)
        system.send_signal("intake", signal.SIGKILL)
        system.restart("intake")

    flood.run(kill_routing_then_intake)
    delivered = OpdDeliveries.collect(system.amqp_uri, flood_scenario_opds(), set(flood.accepted))
    missing = set(flood.accepted) - delivered.reports
    print(
        f"\nSIGKILL: {Counter(s for s, _ in flood.outcomes)} answered after {flood.retries} retries, "
        f"{len(delivered.reports)} delivered, {len(missing)} missing, "
        f"{delivered.redundant_copies()} redundant copies"
    )
    assert len(flood.accepted) == flood.total, Counter(s for s, _ in flood.outcomes)
    assert len(set(flood.accepted)) == flood.total, "retries with one Idempotency-Key made one report"
    assert not missing, f"accepted but never delivered: {sorted(missing)[:5]}"
    # never a second assignment; a process killed between the broker's confirm and the ledger write may leave an
    # identical copy (same message_id), which an agency's consumer drops (docs/reliability.md)
    assert not delivered.second_assignments(), delivered.second_assignments()
    assert delivered.all_copies_identical()
