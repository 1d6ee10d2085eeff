"""The naive baseline of issue 19: the simplest nameko pipeline a developer would write for jaklapor's job.

    python -m nameko run bench.naive_pipeline --config CONFIG.yaml      # what `loadgen.py --layout naive` starts

A nameko `@http` POST -> one `insert_one` into the MongoDB (stand-in) -> `EventDispatcher` -> an `@event_handler`
that does one `find_one` and publishes the OPD message to a durable queue bound to the OPD exchange (`jaklapor.opd`)
with nameko's per-message publisher confirms. Nothing more, on purpose: no outbox, no idempotency, no quorum queues,
no dead-lettering, no routing rules, no notify or stats. It is the bar the guarantees are measured against
(`bench/loadgen.py --versus-naive` runs it after jaklapor with the same load and prints the ratio), never a service.

The OPD message carries `report_id` and `submitted_at` like jaklapor's, so the benchmark's copy consumer (bound to
`jaklapor.opd` with `#`) sees both pipelines' deliveries alike. Configuration (nameko config file): AMQP_URI,
WEB_SERVER_ADDRESS, MONGO_URI.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from kombu import Exchange, Queue
from nameko.events import EventDispatcher, event_handler
from nameko.extensions import DependencyProvider
from nameko.messaging import Publisher
from nameko.web.handlers import http
from pymongo import MongoClient
from pymongo.collection import Collection
from werkzeug.wrappers import Request, Response

OPD_EXCHANGE = Exchange("jaklapor.opd", type="topic", durable=True)
# one durable (classic) queue for every agency: the naive developer's choice, bound like jaklapor's per-OPD queues
NAIVE_OPD_QUEUE = Queue("bench.naive.opd", exchange=OPD_EXCHANGE, routing_key="naive.#", durable=True)


class Reports(DependencyProvider):
    """The `reports` collection of the configured MongoDB, one client per process."""

    def setup(self) -> None:
        self.client: MongoClient = MongoClient(self.container.config["MONGO_URI"])
        self.collection = self.client["naive"]["reports"]

    def stop(self) -> None:
        self.client.close()

    def get_dependency(self, worker_ctx: Any) -> Collection:
        return self.collection


class NaiveIntake:
    name = "naive_intake"
    reports = Reports()
    dispatch = EventDispatcher()

    @http("GET", "/health")
    def health(self, request: Request) -> tuple[int, str]:
        return 200, "ok"

    @http("POST", "/api/v1/reports")
    def submit(self, request: Request) -> Response:
        form = request.form
        report_id = uuid.uuid4().hex
        doc = {
            "_id": report_id,
            "category": form.get("category", ""),
            "description": form.get("description", ""),
            "lat": form.get("lat"),
            "lon": form.get("lon"),
            "submitted_at": datetime.now(UTC).isoformat(),
        }
        self.reports.insert_one(doc)
        self.dispatch("report_submitted", {"report_id": report_id})
        return Response(json.dumps({"report_id": report_id}), status=201, mimetype="application/json")


class NaiveRouting:
    name = "naive_routing"
    reports = Reports()
    publish = Publisher(exchange=OPD_EXCHANGE, declare=[NAIVE_OPD_QUEUE])  # confirms on: nameko's default

    @event_handler("naive_intake", "report_submitted")
    def route(self, payload: dict[str, Any]) -> None:
        doc = self.reports.find_one({"_id": payload["report_id"]})
        message = {"report_id": doc["_id"], "category": doc["category"], "submitted_at": doc["submitted_at"]}
        self.publish(message, routing_key="naive.opd")
