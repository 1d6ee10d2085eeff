"""`jaklapor stats-rebuild [--config FILE] [--check]`: recompute the statistics projections from the report store.

Reads intake's `reports` collection (read-only): each report's history has every step it went through, so the events
that announced them can be replayed (`domain.report_events`) into a fresh projection. Without `--check` the rebuilt
projections replace the live ones; with `--check` nothing is written, the differences are printed, and the exit code is
1 if there are any (events still in flight show up as differences: run it again a moment later).

It reads the store the running services use: `MONGO_URI` as they have it (a MongoDB, or on a development machine the
local store `make run` started).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from jaklapor.config import load_config, setting
from jaklapor.reference import load_categories
from services.stats.domain import DeadlineRule, deadline_rule, differences, rebuild_projection

with warnings.catch_warnings():  # nameko, imported for the services, warns that eventlet is deprecated: not here
    warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")
    from jaklapor.mongo import StoreNotConfigured, connect
    from services.stats.dependencies import ProjectionRepository

# fields of a stored report the rebuild reads; never its outbox or idempotency data
REPORT_FIELDS = ("category", "area", "submitted_at", "location", "description", "history", "triage_reason")


@dataclass
class RebuildResult:
    rebuilt: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def rebuild_all(reports: Iterable[Mapping[str, Any]], deadline_of: DeadlineRule | None = None) -> RebuildResult:
    """Projections for every report; a report whose history cannot be read is listed with the reason."""
    result = RebuildResult()
    for report in reports:
        report_id = str(report.get("_id"))
        try:
            projection = rebuild_projection(report, deadline_of)
        except (KeyError, TypeError, ValueError) as exc:
            result.failed[report_id] = f"{type(exc).__name__}: {exc}"
            continue
        if projection is not None:
            result.rebuilt[report_id] = projection
    return result


def compare(live: Mapping[str, Mapping[str, Any]], rebuilt: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """report id -> differences between the live projection and the rebuilt one (only reports that differ)."""
    found = {}
    for report_id in sorted(set(live) | set(rebuilt)):
        diffs = differences(live.get(report_id), rebuilt.get(report_id))
        if diffs:
            found[report_id] = diffs
    return found


def rebuild_command(argv: list[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    parser = argparse.ArgumentParser(
        prog="jaklapor stats-rebuild",
        description="Recompute the statistics projections from the report store (intake's reports, read-only).",
    )
    parser.add_argument("--config", help="nameko config file (default: the packaged config.yaml); uses MONGO_URI")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; print differences with the live projections (exit 1)"
    )
    args = parser.parse_args(argv)
    config = load_config(args.config)
    try:
        client = connect(setting(config, "MONGO_URI", ""))
    except StoreNotConfigured as exc:
        print(f"stats-rebuild: {exc} (the store the running services use)", file=err)
        return 2
    prefix = setting(config, "MONGO_DB_PREFIX", "jaklapor")
    try:
        reports = client[f"{prefix}_intake"]["reports"]
        repository = ProjectionRepository(client[f"{prefix}_stats"])
        result = rebuild_all(reports.find({}, dict.fromkeys(REPORT_FIELDS, 1)), deadline_rule_from(config))
        for report_id, reason in sorted(result.failed.items()):
            print(f"{report_id}: cannot rebuild: {reason}", file=err)
        if args.check:
            live = {str(p["_id"]): p for p in repository.all()}
            found = compare(live, result.rebuilt)
            for report_id, diffs in found.items():
                for line in diffs:
                    print(f"{report_id}: {line}", file=out)
            print(
                f"checked {len(result.rebuilt)} reports against {len(live)} live projections: "
                f"{len(found)} differ" + (" (events still in flight? run it again)" if found else ""),
                file=out,
            )
            return 1 if found or result.failed else 0
        written = 0
        for report_id, projection in result.rebuilt.items():
            if repository.update(report_id, _replacement(projection)):
                written += 1
        print(f"rebuilt {len(result.rebuilt)} projections from the report store; {written} changed", file=out)
        return 1 if result.failed else 0
    finally:
        client.close()


def deadline_rule_from(config: Mapping[str, Any]) -> DeadlineRule:
    """Routing's deadline rule as configured: RESPONSE_DEADLINE_SECONDS, else each category's response_days."""
    override = setting(dict(config), "RESPONSE_DEADLINE_SECONDS", None)
    return deadline_rule(
        {code: c.response_days for code, c in load_categories().items()}, float(override) if override else None
    )


def _replacement(rebuilt: dict[str, Any]) -> Any:
    def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
        if current is not None and not differences(current, rebuilt):
            return None
        return dict(rebuilt)

    return change
