"""A real Prometheus (Debian `prometheus`) scrapes the running services with the production scrape jobs and alert
rules (deploy/prometheus/, targets moved to the test system's ports), and its queries return what the submitted
reports should produce."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.photo_fixtures import jpeg_with_gps
from tests.system import ALL_SERVICES, ROOT, RunningSystem, client_headers, free_port, wait_for

pytestmark = pytest.mark.e2e

PONDOK_BAMBU = (-6.2250, 106.9000)  # Pondok Bambu, Duren Sawit, Jakarta Timur: Suku Dinas Pertamanan Jakarta Timur
DEPOK = (-6.4025, 106.7942)  # West Java: outside Jakarta, to triage
IN_JAKARTA = 3
RABBITMQ_METRICS = ("127.0.0.1", 15692)


def load_localize() -> Any:
    spec = importlib.util.spec_from_file_location("localize", ROOT / "deploy/prometheus/localize.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rabbitmq_metrics_reachable() -> bool:
    try:
        with socket.create_connection(RABBITMQ_METRICS, timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen
    log: Path
    scrapes_rabbitmq: bool

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The value of a query returning at most one series (None when it returns none)."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait(self, what: str, condition: Any, timeout: float = 20) -> Any:
        try:
            return wait_for(condition, timeout, interval=0.25, message=what)
        except AssertionError as exc:
            targets = requests.get(f"{self.url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
            health = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in targets]
            raise AssertionError(f"{exc}\ntargets: {health}\nlog: {self.log.read_text()[-3000:]}") from None


@pytest.fixture(scope="module")
def prometheus(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    exe = shutil.which("prometheus")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus (Debian package prometheus) is required in CI")
        pytest.skip("prometheus is not installed (scripts/install-system-deps installs it)")
    scrapes_rabbitmq = rabbitmq_metrics_reachable()
    if not scrapes_rabbitmq and os.environ.get("CI") == "true":
        pytest.fail("RabbitMQ's Prometheus plugin does not answer on 127.0.0.1:15692 (scripts/ensure-rabbitmq)")

    work = tmp_path_factory.mktemp("prometheus")
    targets = {name: system.url(name).removeprefix("http://") for name in ALL_SERVICES}
    targets["rabbitmq"] = "{}:{}".format(*RABBITMQ_METRICS)
    jobs = {"jaklapor", "rabbitmq", "rabbitmq-queues"} if scrapes_rabbitmq else {"jaklapor"}
    config = load_localize().write(work, targets, interval="1s", vhost=system.vhost.name, jobs=jobs)
    port = free_port()
    log = work / "prometheus.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                exe,
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=work,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log, scrapes_rabbitmq)
    try:
        server.wait("Prometheus ready", lambda: requests.get(f"{server.url}/-/ready", timeout=1).status_code == 200)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def scraped(system: RunningSystem, service: str, sample: str, **labels: str) -> float:
    """The sum of `sample` with `labels` on the service's /metrics right now (0 if absent)."""
    text = requests.get(system.url(service, "/metrics"), timeout=5).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def submit_pohon(system: RunningSystem, lat: float, lon: float) -> None:
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": "pohon", "description": "Pohon tumbang menutup jalan", "lat": lat, "lon": lon},
        files={"photo": ("pohon.jpg", jpeg_with_gps(lat, lon), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text


def test_prometheus_counts_the_submitted_reports(system: RunningSystem, prometheus: Prometheus) -> None:
    # Prometheus has scraped every service once (so rates over the reports below have a sample before them)
    prometheus.wait(
        "up == 1 for the four services",
        lambda: (
            {r["metric"]["service"]: r["value"][1] for r in prometheus.query('up{job="jaklapor"}')}
            == dict.fromkeys(ALL_SERVICES, "1")
        ),
    )
    # other tests share the system: start from what the services count now
    submitted = scraped(system, "intake", "jaklapor_reports_submitted_total", category="pohon")
    routed = scraped(system, "routing", "jaklapor_reports_routed_total", kota="Jakarta Timur")
    outside = scraped(system, "routing", "jaklapor_reports_unroutable_total", reason="outside_jakarta")

    for _ in range(IN_JAKARTA):
        submit_pohon(system, *PONDOK_BAMBU)
    submit_pohon(system, *DEPOK)

    expected = submitted + IN_JAKARTA + 1
    prometheus.wait(
        f"sum(jaklapor_reports_submitted_total{{category='pohon'}}) == {expected}",
        lambda: prometheus.value('sum(jaklapor_reports_submitted_total{category="pohon"})') == expected,
    )
    prometheus.wait(
        "the Depok report counted as outside_jakarta",
        lambda: (
            (prometheus.value('sum(jaklapor_reports_unroutable_total{reason="outside_jakarta"})') or 0) >= outside + 1
        ),
    )
    prometheus.wait(
        "the Jakarta Timur reports counted as routed",
        lambda: (
            (prometheus.value('sum(jaklapor_reports_routed_total{kota="Jakarta Timur"})') or 0) >= routed + IN_JAKARTA
        ),
    )
    # a delivery latency was observed for them, so the recorded p95 is a number of seconds
    prometheus.wait(
        "the delivery latency p95 recorded",
        lambda: 0 <= (prometheus.value("jaklapor:opd_delivery_latency_seconds:p95_rate5m") or -1) < 30,
    )


def test_every_rule_evaluates_without_error(prometheus: Prometheus) -> None:
    def evaluated() -> list[dict[str, Any]]:
        groups = requests.get(f"{prometheus.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and not any(r["lastEvaluation"].startswith("0001-") for r in rules) else []

    rules = prometheus.wait("every rule evaluated once", evaluated)
    assert len(rules) >= 20
    errors = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not errors
    # nothing is down: the service-down and outbox alerts are not even pending
    assert prometheus.query('ALERTS{alertname=~"ServiceDown|RabbitMQDown|OutboxBacklog"}') == []


def test_queue_depths_come_from_rabbitmq(system: RunningSystem, prometheus: Prometheus) -> None:
    if not prometheus.scrapes_rabbitmq:
        pytest.skip("RabbitMQ's Prometheus plugin is not enabled here (scripts/ensure-rabbitmq enables it)")
    assert prometheus.wait("RabbitMQ scraped", lambda: prometheus.value('min(up{job=~"rabbitmq.*"})') == 1)
    # the recording rules over RabbitMQ's per-queue metrics see this vhost's queues and their consumers
    vhost = system.vhost.name
    consumers = prometheus.wait(
        "routing.reports and its consumer",
        lambda: prometheus.value(f'jaklapor:queue_consumers:max{{vhost="{vhost}", queue="routing.reports"}}'),
    )
    assert consumers >= 1
    queues = {r["metric"]["queue"] for r in prometheus.query(f'jaklapor:queue_messages:max{{vhost="{vhost}"}}')}
    assert {"routing.reports", "routing.reports.dead-letter", "stats.events", "jaklapor.opd.dead-letter"} <= queues
    # only the vhost the scrape asked for
    assert {r["metric"]["vhost"] for r in prometheus.query("rabbitmq_detailed_queue_messages")} == {vhost}
