"""What the system is made of, for the command and the runner: its services, and where the demo finds them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: each service's nameko class, by the name `jaklapor run --services` takes
SERVICES = {
    "intake": "services.intake.service:IntakeService",
    "routing": "services.routing.service:RoutingService",
    "notify": "services.notify.service:NotifyService",
    "stats": "services.stats.service:StatsService",
}

#: where `jaklapor demo` (and `make demo`) looks for the system: `make run`'s default addresses
DEMO_INTAKE_URL = "http://127.0.0.1:8000"
DEMO_STATS_URL = "http://127.0.0.1:8002"


def jaklapor_command() -> str:
    """How to call the `jaklapor` CLI from the current directory without an activated venv (`.venv/bin/jaklapor`
    from the repo root): the script installed beside this interpreter."""
    script = Path(sys.executable).parent / "jaklapor"
    if not script.exists():
        return "jaklapor"
    relative = os.path.relpath(script)
    return relative if not relative.startswith("..") else str(script)
