"""What the end-to-end statistics tests do to a running system: submit reports as citizens and answer them as OPDs,
through the public HTTP APIs only."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.photo_fixtures import jpeg_with_gps
from tests.system import RunningSystem, client_headers, wait_for


@functools.cache
def photo(lat: float, lon: float) -> bytes:
    return jpeg_with_gps(lat, lon, size=(320, 240))


@dataclass
class Filed:
    """A submitted report as its citizen and its OPDs know it."""

    report_id: str
    token: str
    category: str
    opd: str | None = None
    statuses: list[str] = field(default_factory=list)


def submit(system: RunningSystem, lat: float, lon: float, category: str, description: str) -> Filed:
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": category, "description": description, "lat": lat, "lon": lon},
        files={"photo": ("IMG.jpg", photo(lat, lon), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Filed(body["report_id"], body["tracking_token"], category)


def view(system: RunningSystem, filed: Filed) -> dict[str, Any]:
    response = requests.get(system.url("intake", f"/api/v1/reports/{filed.token}"), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def wait_assigned(system: RunningSystem, filed: Filed, hop: int = 0) -> str:
    """The OPD the report is assigned to at `hop`, once routing delivered it (as the citizen's view shows)."""

    def assigned() -> str | None:
        current = view(system, filed)
        routed = [h for h in current["history"] if h["kind"] in ("routed", "triage")]
        return current["responsible_opd"]["code"] if len(routed) > hop and current["responsible_opd"] else None

    filed.opd = wait_for(assigned, 15, message=f"{filed.report_id} routed (hop {hop})")
    return filed.opd


def act(system: RunningSystem, filed: Filed, status: str, **fields: str) -> dict[str, Any]:
    """The assigned OPD moves the report to `status` (an evidence photo for selesai)."""
    assert filed.opd is not None
    url = system.url("intake", f"/api/v1/opd/reports/{filed.report_id}/transitions")
    data = {"status": status, "note": fields.pop("note", f"Ditindaklanjuti: {status}"), **fields}
    files = {"photo": ("bukti.jpg", photo(-6.2, 106.8), "image/jpeg")} if status == "selesai" else None
    for _attempt in range(20):
        response = requests.post(url, data=data, files=files, headers=system.opd_headers(filed.opd), timeout=30)
        if response.status_code != 409 or response.json()["error"]["code"] != "not_routed_yet":
            break
    assert response.status_code == 200, response.text
    filed.statuses.append(status)
    if status in ("koordinasi", "disposisi"):
        filed.opd = None
    return response.json()


def submit_many(
    system: RunningSystem, reports: Iterable[tuple[float, float, str, str]], workers: int = 6
) -> list[Filed]:
    """Submit in parallel (as many phones would), then wait for every report to reach its OPD."""
    reports = list(reports)
    with ThreadPoolExecutor(workers) as pool:
        filed = list(pool.map(lambda r: submit(system, *r), reports))
        list(pool.map(lambda f: wait_assigned(system, f), filed))
    return filed


def stats(system: RunningSystem, path: str, **params: Any) -> dict[str, Any]:
    response = requests.get(system.url("stats", path), params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()
