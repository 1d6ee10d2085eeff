"""Overload answers fast (issue 19): past its backlog bound intake answers a submission at once with 503,
`Retry-After` and a JSON error naming the problem, stores nothing, and accepts again once the backlog drained; a
client retrying with the same Idempotency-Key gets one report, delivered once.

The backlog is made real, not mocked: a full queue that refuses new messages (max-length 1, reject-publish) bound to
intake's event exchange in the system's own vhost makes the broker nack every publish of the outbox relay, so
accepted reports stay in the outbox, as when RabbitMQ refuses them. Deleting that queue lets the relay drain it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
from kombu import Connection, Exchange, Queue
from prometheus_client.parser import text_string_to_metric_families

from devtools.seaweedfs import LocalS3Server
from tests.system import OpdDeliveries, RunningSystem, Vhost, client_headers, start_system, wait_for

pytestmark = pytest.mark.e2e

BLOK_M = (-6.2443, 106.8003)
PARKING_OPD = "sudin-perhubungan-jakarta-selatan"
OUTBOX_BOUND = 3
HOLD_QUEUE = "admission-test.hold"


@pytest.fixture(scope="module")
def bounded_system(tmp_path_factory: pytest.TempPathFactory, s3: LocalS3Server) -> Iterator[RunningSystem]:
    """A system of its own (own vhost, so the policy touches nothing else) with a small outbox bound."""
    vhost = Vhost.create()
    running = start_system(
        tmp_path_factory.mktemp("admission"),
        vhost,
        s3,
        ADMISSION_MAX_OUTBOX_PENDING=str(OUTBOX_BOUND),
        ADMISSION_SAMPLE_SECONDS="0.2",
        ADMISSION_RETRY_AFTER_SECONDS="1",
    )
    yield running
    running.stop()
    vhost.delete()


def hold_intake_events(system: RunningSystem, hold: bool) -> None:
    """Hold: a full queue (max-length 1, reject-publish) bound to intake's event exchange, so the broker nacks every
    publish of the outbox relay. Release: delete it."""
    exchange = Exchange("intake.events", type="topic", durable=True)
    queue = Queue(
        HOLD_QUEUE,
        exchange=exchange,
        routing_key="#",
        durable=True,
        queue_arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
    )
    with Connection(system.amqp_uri) as connection:
        channel = connection.channel()
        if hold:
            exchange(channel).declare()
            queue(channel).declare()
            connection.Producer(channel).publish({"hold": True}, exchange="", routing_key=HOLD_QUEUE)
        else:
            queue(channel).delete()


def submit(system: RunningSystem, key: str | None = None) -> requests.Response:
    headers = client_headers()
    if key is not None:
        headers["Idempotency-Key"] = key
    return requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": "parkir-liar", "description": "Mobil parkir di trotoar", "lat": BLOK_M[0], "lon": BLOK_M[1]},
        headers=headers,
        timeout=30,
    )


def intake_metric(system: RunningSystem, name: str, **labels: str) -> float:
    text = requests.get(system.url("intake", "/metrics"), timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_past_the_outbox_bound_a_submission_gets_503_at_once_then_is_accepted_once(
    bounded_system: RunningSystem,
) -> None:
    system = bounded_system
    hold_intake_events(system, True)
    try:
        accepted = []
        for _ in range(OUTBOX_BOUND):
            response = submit(system)
            assert response.status_code == 201, response.text
            accepted.append(response.json()["report_id"])
        # the relay cannot get them confirmed: they wait in the outbox, and the sampler sees it
        wait_for(
            lambda: intake_metric(system, "jaklapor_outbox_pending_reports") >= OUTBOX_BOUND,
            timeout=30,
            message="the accepted reports waiting in the outbox",
        )

        def refused_or_accepted() -> tuple[requests.Response] | None:
            response = submit(system)
            if response.status_code == 201:  # before the admission's sample saw the backlog: one more accepted
                accepted.append(response.json()["report_id"])
                return None
            return (response,)  # a tuple: a 503 Response is falsy

        (first,) = wait_for(refused_or_accepted, timeout=10, message="a 503 once the outbox is over its bound")
        assert first.status_code == 503, first.text
        key = f"admission-{uuid.uuid4()}"
        refused = submit(system, key)  # the backlog cannot drain while the queue refuses: refused as well
        assert refused.status_code == 503, refused.text
        assert refused.elapsed.total_seconds() < 1.0  # answered at once, not queued
        assert refused.headers["Retry-After"] == "1"
        error = refused.json()["error"]
        assert error["code"] == "overloaded" and error["reason"] == "outbox"
        assert error["retry_after_seconds"] == 1
        assert "retry in 1 s" in error["message"] and "nothing was stored" in error["message"]
        assert intake_metric(system, "jaklapor_intake_admission_refused_total", reason="outbox") >= 1
    finally:
        hold_intake_events(system, False)

    # the relay drains the outbox (its backoff is at most 5 s), the sampler sees it, the same retry is accepted
    retried = wait_for(
        lambda: (r := submit(system, key)).status_code == 201 and r,
        timeout=60,
        interval=0.5,
        message="the retry accepted once the outbox drained",
    )
    report_id = retried.json()["report_id"]
    again = submit(system, key)  # the client did not see the 201 and retries once more: the same report
    assert again.status_code in (200, 201) and again.json()["report_id"] == report_id

    expected = {*accepted, report_id}
    deliveries = OpdDeliveries.collect(system.amqp_uri, {PARKING_OPD}, expected, timeout=120)
    # nothing lost, nothing extra (the refused submission stored nothing)
    assert deliveries.reports == expected, deliveries.shortfall
    assert deliveries.redundant_copies() == 0
