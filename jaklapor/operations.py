"""What every service exposes to operations: Prometheus `/metrics` and `/health`."""

from __future__ import annotations

from typing import Any

from nameko.dependency_providers import Config
from werkzeug.wrappers import Request, Response

from jaklapor.metrics import exposition
from jaklapor.web import api, json_response


class OperationsEndpoints:
    """Mixed into each service class; the service lists its dependency checks in `health_checks`."""

    name: str
    config = Config()

    @api("GET", "/metrics")
    def metrics(self, request: Request) -> Response:
        body, content_type = exposition(self.name)
        return Response(body, content_type=content_type)

    @api("GET", "/health")
    def health(self, request: Request) -> Response:
        checks = self.health_checks()
        healthy = all(checks.values())
        return json_response(
            {"service": self.name, "status": "ok" if healthy else "unavailable", "checks": checks},
            status=200 if healthy else 503,
        )

    def health_checks(self) -> dict[str, Any]:
        return {}
