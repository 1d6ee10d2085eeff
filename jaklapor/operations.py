"""What every service exposes to operations: Prometheus `/metrics` and `/health`."""

from __future__ import annotations

from typing import Any

from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Request, Response

from jaklapor.config import refuse_development_secrets, setting
from jaklapor.metrics import exposition
from jaklapor.web import api, json_response


class SecretGuard(DependencyProvider):
    """Stops the service at start when a secret it uses is a development value outside the local mode.

    `secrets`: the settings the service always uses; `used_with`: {secret: setting that enables its use}."""

    def __init__(self, *secrets: str, used_with: dict[str, str] | None = None) -> None:
        self.secrets = secrets
        self.used_with = used_with or {}

    def setup(self) -> None:
        config = self.container.config
        used = self.secrets + tuple(key for key, switch in self.used_with.items() if setting(config, switch))
        refuse_development_secrets(config, self.container.service_name, used)


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
