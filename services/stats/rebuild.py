"""`jaklapor stats-rebuild [--config FILE] [--check]`: recompute the statistics projections from intake's events.

Stats never reads intake's store: it asks intake for the events of every report (intake's `replay_events` RPC over
RabbitMQ, a `jaklapor.events.ReportEventsPage` at a time) and folds them with the rule it folds live events with
(`domain.fold`). Without `--check` the rebuilt projections replace the live ones; with `--check` nothing is written,
the differences are printed, and the exit code is 1 if there are any (events still in flight show up as differences:
run it again a moment later).

It talks to the system the running services make up: intake on `AMQP_URI`, and stats' store at `MONGO_URI` as they
have it (a MongoDB, or on a development machine the local store `make run` started).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from jaklapor.config import load_config
from jaklapor.events import SCHEMA_VERSION, Event, ReportEvents, ReportEventsPage, ReportRouted
from jaklapor.settings import InvalidSettings
from services.stats.domain import DeadlineRule, differences, fold
from services.stats.settings import StatsSettings

with warnings.catch_warnings():  # nameko, imported for the services, warns that eventlet is deprecated: not here
    warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")
    from kombu.exceptions import OperationalError
    from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
    from nameko.standalone.rpc import ClusterRpcProxy

    from jaklapor.mongo import StoreNotConfigured, connect
    from services.stats.dependencies import ProjectionRepository

#: reports per page asked of intake
PAGE_SIZE = 200
#: seconds one page may take to come back before the rebuild gives up
RPC_TIMEOUT_SECONDS = 60

# intake's replay: (after_report_id, limit) -> a ReportEventsPage as JSON
ReplayCall = Callable[[str | None, int], Mapping[str, Any]]
ReplaySource = Callable[[Mapping[str, Any]], AbstractContextManager[ReplayCall]]


class ReplayUnavailable(Exception):
    """Intake did not answer the replay, or answered with something this version cannot read."""


@dataclass
class RebuildResult:
    rebuilt: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


@contextmanager
def intake_replay(config: Mapping[str, Any]) -> Iterator[ReplayCall]:
    """Intake's `replay_events` over the broker of `config` (AMQP_URI)."""
    try:
        with ClusterRpcProxy(dict(config), timeout=RPC_TIMEOUT_SECONDS) as cluster:
            yield lambda after, limit: cluster.intake.replay_events(after, limit)
    except (OperationalError, OSError) as exc:
        raise ReplayUnavailable(f"cannot reach the broker (AMQP_URI): {exc}") from None


def replayed_reports(call: ReplayCall, page_size: int = PAGE_SIZE) -> Iterator[ReportEvents]:
    """Every report intake has, with its events, page by page in id order."""
    after: str | None = None
    while True:
        try:
            page = ReportEventsPage.model_validate(call(after, page_size))
        except UnknownService:
            raise ReplayUnavailable("intake is not running on this broker (AMQP_URI)") from None
        except RpcTimeout:
            raise ReplayUnavailable(f"intake did not answer within {RPC_TIMEOUT_SECONDS} s") from None
        except RemoteError as exc:
            raise ReplayUnavailable(f"intake failed to replay its reports: {exc}") from None
        except ValueError as exc:
            raise ReplayUnavailable(f"intake's replay is not a page of events: {exc}") from None
        if page.schema_version != SCHEMA_VERSION:
            raise ReplayUnavailable(f"intake's replay has schema_version {page.schema_version}, not {SCHEMA_VERSION}")
        yield from page.reports
        if page.next_after is None:
            return
        after = page.next_after


def with_deadline(event: Event, deadline_of: DeadlineRule | None) -> Event:
    """A routing result recorded before intake kept its deadline gets it back from routing's rule."""
    if isinstance(event, ReportRouted) and event.response_deadline is None and deadline_of is not None:
        return event.model_copy(update={"response_deadline": deadline_of(event.category, event.occurred_at)})
    return event


def rebuild_all(reports: Iterable[ReportEvents], deadline_of: DeadlineRule | None = None) -> RebuildResult:
    """Projections for every replayed report; a report intake could not replay is listed with the reason."""
    result = RebuildResult()
    for replayed in reports:
        if replayed.error is not None:
            result.failed[replayed.report_id] = replayed.error
            continue
        try:
            events = replayed.parsed()
        except ValueError as exc:
            result.failed[replayed.report_id] = f"{type(exc).__name__}: {exc}"
            continue
        projection = fold(with_deadline(event, deadline_of) for event in events)
        if projection is not None:
            result.rebuilt[replayed.report_id] = projection
    return result


def compare(live: Mapping[str, Mapping[str, Any]], rebuilt: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """report id -> differences between the live projection and the rebuilt one (only reports that differ)."""
    found = {}
    for report_id in sorted(set(live) | set(rebuilt)):
        diffs = differences(live.get(report_id), rebuilt.get(report_id))
        if diffs:
            found[report_id] = diffs
    return found


def rebuild_command(
    argv: list[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr, replay: ReplaySource = intake_replay
) -> int:
    parser = argparse.ArgumentParser(
        prog="jaklapor stats-rebuild",
        description="Recompute the statistics projections from the events intake replays for its reports.",
    )
    parser.add_argument(
        "--config", help="nameko config file (default: the packaged config.yaml); uses AMQP_URI and MONGO_URI"
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; print differences with the live projections (exit 1)"
    )
    args = parser.parse_args(argv)
    config = load_config(args.config)
    try:
        settings = StatsSettings.from_config(config)
        client = connect(settings.mongo_uri)
    except InvalidSettings as exc:
        print(f"stats-rebuild: {exc}", file=err)
        return 2
    except StoreNotConfigured as exc:
        print(f"stats-rebuild: {exc} (the store the running services use)", file=err)
        return 2
    try:
        repository = ProjectionRepository(client[f"{settings.mongo_db_prefix}_stats"])
        try:
            with replay(config) as call:
                result = rebuild_all(replayed_reports(call), settings.deadline_rule())
        except ReplayUnavailable as exc:
            print(f"stats-rebuild: {exc}", file=err)
            return 2
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


def _replacement(rebuilt: dict[str, Any]) -> Any:
    def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
        if current is not None and not differences(current, rebuilt):
            return None
        return dict(rebuilt)

    return change
