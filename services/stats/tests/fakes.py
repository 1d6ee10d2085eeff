"""In-memory stand-ins for stats' dependencies, and a way to run one entrypoint of a container that is not started,
so StatsService is checked in milliseconds without RabbitMQ or MongoDB."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import eventlet.event
from nameko.containers import ServiceContainer
from nameko.extensions import Entrypoint
from nameko.testing.utils import get_extension
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from jaklapor.vocabulary import STATUSES


def matches(document: dict[str, Any], query: dict[str, Any]) -> bool:
    """The subset of MongoDB's query language stats uses: equality, $ne, $gte and $lt."""
    for name, condition in query.items():
        value = document.get(name)
        if not isinstance(condition, dict):
            if value != condition:
                return False
            continue
        for operator, operand in condition.items():
            if operator == "$ne":
                ok = value != operand
            elif operator == "$gte":
                ok = value is not None and value >= operand
            elif operator == "$lt":
                ok = value is not None and value < operand
            else:
                raise NotImplementedError(operator)
            if not ok:
                return False
    return True


class InMemoryProjections:
    """ProjectionRepository's interface over a dict (services/stats/dependencies.py)."""

    def __init__(self) -> None:
        self.projections: dict[str, dict[str, Any]] = {}
        self.healthy = True
        #: called by `update_many` between its read and its write (a test's concurrent writer)
        self.between_read_and_write: Callable[[], None] | None = None
        self.batch_writes = 0

    def ping(self) -> bool:
        return self.healthy

    def get(self, report_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.projections.get(report_id))

    def update(
        self,
        report_id: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        *,
        probably_new: bool = False,
    ) -> bool:
        current = self.get(report_id)
        updated = change(current)
        if updated is None:
            return False
        self.projections[report_id] = {**updated, "_id": report_id, "rev": (current or {}).get("rev", 0) + 1}
        return True

    def update_many(
        self,
        changes: dict[str, Callable[[dict[str, Any] | None], dict[str, Any] | None]],
        *,
        probably_new: Iterable[str] = (),
    ) -> tuple[set[str], set[str]]:
        """ProjectionRepository.update_many: a write whose projection changed since it was read is lost."""
        new = set(probably_new)
        read = {report_id: None if report_id in new else self.get(report_id) for report_id in changes}
        updates = {report_id: change(read[report_id]) for report_id, change in changes.items()}
        for report_id in new:  # created without reading; when there was nothing to create, read after all
            if updates[report_id] is None:
                read[report_id] = self.get(report_id)
                updates[report_id] = changes[report_id](read[report_id])
        if self.between_read_and_write is not None:
            self.between_read_and_write()
        changed: set[str] = set()
        lost: set[str] = set()
        for report_id, updated in updates.items():
            if updated is None:
                continue
            before, now = read[report_id], self.projections.get(report_id)
            if (before is None and now is not None) or (before is not None and (now or {}).get("rev") != before["rev"]):
                lost.add(report_id)
                continue
            rev = (before or {}).get("rev", 0) + 1
            self.projections[report_id] = copy.deepcopy({**updated, "_id": report_id, "rev": rev})
            changed.add(report_id)
        if changed or lost:
            self.batch_writes += 1
        return changed, lost

    def _counted(self, query: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
        for projection in self.projections.values():
            if matches(projection, {"status": {"$ne": None}, "merged_into": None, **(query or {})}):
                yield projection

    def merged_count(self, query: dict[str, Any] | None = None) -> int:
        return sum(
            1
            for p in self.projections.values()
            if matches(p, {"status": {"$ne": None}, **(query or {}), "merged_into": {"$ne": None}})
        )

    def grouped_counts(
        self, query: dict[str, Any] | None = None
    ) -> list[tuple[str | None, str | None, str | None, int]]:
        groups = Counter((p.get("status"), p.get("category"), p.get("kota")) for p in self._counted(query))
        return [(*key, n) for key, n in groups.items()]

    def rows(self, query: dict[str, Any] | None = None, fields: Iterable[str] | None = None) -> list[dict[str, Any]]:
        rows = []
        for projection in self._counted(query):
            if fields is None:
                rows.append({k: copy.deepcopy(v) for k, v in projection.items() if k != "facts"})
            else:
                rows.append({"_id": projection["_id"], **{f: projection[f] for f in fields if f in projection}})
        return rows

    def all(self) -> Iterator[dict[str, Any]]:
        return iter(copy.deepcopy(list(self.projections.values())))

    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for projection in self.projections.values():
            if projection.get("status") in counts and not projection.get("merged_into"):
                counts[projection["status"]] += 1
        return counts


def run_entrypoint(container: ServiceContainer, method_name: str, *args: Any) -> Any:
    """Run one entrypoint of `container` (not started) in a worker, with the container's dependency injection, and
    return its result or raise its exception.

    What nameko's `entrypoint_hook` does, but waiting on an eventlet Event: the hook's waiter blocks on a thread lock,
    which starves eventlet's hub in a test process that is not monkey-patched (ours)."""
    entrypoint = get_extension(container, Entrypoint, method_name=method_name)
    if entrypoint is None:
        raise LookupError(f"{container.service_name} has no entrypoint {method_name}")
    done = eventlet.event.Event()

    def handle_result(worker_ctx: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
        done.send((result, exc_info))
        return result, exc_info

    container.spawn_worker(entrypoint, args, {}, handle_result=handle_result)
    result, exc_info = done.wait()
    if exc_info is not None:
        raise exc_info[1]
    return result


def http_get(container: ServiceContainer, method_name: str, path: str, *args: Any) -> Response:
    """GET `path` through one HTTP entrypoint of `container`: the handler runs in a worker and its result or error
    becomes the response as the running service makes it (ApiError -> JSON 4xx)."""
    entrypoint = get_extension(container, Entrypoint, method_name=method_name)
    request = Request(EnvironBuilder(path=path, method="GET").get_environ())
    try:
        result = run_entrypoint(container, method_name, request, *args)
    except Exception as exc:
        return entrypoint.response_from_exception(exc)
    return entrypoint.response_from_result(result)
