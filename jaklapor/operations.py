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

    # the checks whose failure makes this instance unable to serve; the others are reported, not fatal
    # (None: all of them)
    required_checks: tuple[str, ...] | None = None

    @api("GET", "/health")
    def health(self, request: Request) -> Response:
        checks = self.health_checks()
        required = [name for name in (self.required_checks or checks) if name in checks]
        healthy = all(checks[name] for name in required)
        degraded = not all(checks.values())
        status = ("degraded" if degraded else "ok") if healthy else "unavailable"
        return json_response(
            {"service": self.name, "status": status, "checks": checks, "required": required},
            status=200 if healthy else 503,
        )

    def health_checks(self) -> dict[str, Any]:
        return {}
