"""Prometheus metrics: one registry per service, so each service's /metrics shows its own series even when the
services share a process. Labels stay bounded (route templates, status codes, statuses, kota) and never personal."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

_registries: dict[str, CollectorRegistry] = {}
_http: dict[str, HttpMetrics] = {}
_lock = threading.Lock()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def registry_for(service: str) -> CollectorRegistry:
    with _lock:
        registry = _registries.get(service)
        if registry is None:
            registry = _registries[service] = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
        return registry


@dataclass
class HttpMetrics:
    requests: Counter
    duration: Histogram

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)


def http_metrics(service: str) -> HttpMetrics:
    metrics = _http.get(service)
    if metrics is None:
        registry = registry_for(service)
        with _lock:
            metrics = _http.get(service)
            if metrics is None:
                metrics = _http[service] = HttpMetrics(
                    Counter(
                        "jaklapor_http_requests_total",
                        "HTTP requests answered, by route template and status code",
                        ["method", "route", "status"],
                        registry=registry,
                    ),
                    Histogram(
                        "jaklapor_http_request_duration_seconds",
                        "Time to answer an HTTP request, by route template",
                        ["method", "route"],
                        buckets=LATENCY_BUCKETS,
                        registry=registry,
                    ),
                )
    return metrics


@dataclass
class ConsumerMetrics:
    handled: Counter
    dead_lettered: Counter
    batch_size: Histogram


_consumers: dict[str, ConsumerMetrics] = {}


def consumer_metrics(service: str) -> ConsumerMetrics:
    metrics = _consumers.get(service)
    if metrics is None:
        registry = registry_for(service)
        with _lock:
            metrics = _consumers.get(service)
            if metrics is None:
                metrics = _consumers[service] = ConsumerMetrics(
                    Counter(
                        "jaklapor_messages_handled_total",
                        "Messages consumed from work queues, by queue and outcome (ok, retry, dead_letter; "
                        "taken_apart: a failed event pack, its events put back on the queue one by one)",
                        ["queue", "outcome"],
                        registry=registry,
                    ),
                    Counter(
                        "jaklapor_messages_dead_lettered_total",
                        "Messages this service sent to a dead-letter queue, by queue and reason",
                        ["queue", "reason"],
                        registry=registry,
                    ),
                    Histogram(
                        "jaklapor_consumer_batch_size",
                        "Events handed to one worker by a batch consumer (jaklapor/batches.py; a pack counts its "
                        "events), by queue",
                        ["queue"],
                        buckets=(1, 2, 5, 10, 20, 50, 100, 200),
                        registry=registry,
                    ),
                )
    return metrics


def exposition(service: str) -> tuple[bytes, str]:
    """The text exposition of a service's registry and its content type."""
    return generate_latest(registry_for(service)), CONTENT_TYPE_LATEST
