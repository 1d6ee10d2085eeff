"""Statistics from the real system: reports submitted and answered through the APIs, numbers read back from the
statistics API, a redelivered event that must not count twice, and the rebuild command against a shared store."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymongo
import pytest
import requests
from kombu import Connection, Exchange, Producer, Queue

from devtools.seaweedfs import LocalS3Server
from services.stats.tests.e2e_helpers import Filed, act, stats, submit_many, wait_assigned
from tests.system import ROOT, RunningSystem, Vhost, start_system, wait_for

pytestmark = pytest.mark.e2e

# Taman / RPTRA in Jakarta Barat: no other test files reports there, so the filtered numbers are ours alone
KOTA, CATEGORY = "Jakarta Barat", "taman-rptra"
PARKS_OPD = "sudin-pertamanan-hutan-kota-jakarta-barat"
PLACES = {
    "kembangan": (-6.17161, 106.74227),
    "kedoya": (-6.16798, 106.76022),
    "meruya": (-6.19869, 106.73278),
    "cengkareng": (-6.13901, 106.73762),
    "grogol": (-6.15919, 106.79444),
    "palmerah": (-6.2005, 106.79082),
}
OURS = {"kota": KOTA, "category": CATEGORY}


class EventTap:
    """A plain AMQP client on intake's event exchange: sees the real events as the services publish them."""

    def __init__(self, amqp_uri: str, routing_key: str) -> None:
        self.connection = Connection(amqp_uri)
        self.exchange = Exchange("intake.events", type="topic", durable=True)
        self.queue = Queue(
            f"stats-e2e-tap-{uuid.uuid4().hex[:8]}",
            exchange=self.exchange,
            routing_key=routing_key,
            exclusive=True,
            auto_delete=True,
        )(self.connection.channel())
        self.queue.declare()
        self.seen: list[dict[str, Any]] = []

    def find(self, predicate: Any, timeout: float = 10) -> dict[str, Any]:
        def look() -> dict[str, Any] | None:
            while (message := self.queue.get(no_ack=True)) is not None:
                self.seen.append(json.loads(message.body))
            return next((body for body in self.seen if predicate(body)), None)

        return wait_for(look, timeout, message="an event on intake.events")

    def publish(self, body: dict[str, Any], routing_key: str) -> None:
        """Publish a copy, as a broker redelivery or a relay retry would hand it over again."""
        with Connection(self.connection.as_uri(include_password=True)) as connection:
            producer = Producer(connection.channel())
            producer.publish(
                body,
                exchange=self.exchange,
                routing_key=routing_key,
                serializer="json",
                delivery_mode=2,
                message_id=body["event_id"],
                mandatory=True,
            )

    def close(self) -> None:
        self.connection.close()


def metric(system: RunningSystem, name: str, **labels: str) -> float:
    text = requests.get(system.url("stats", "/metrics"), timeout=10).text
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{re.escape(name)}{{{re.escape(selector)}}} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def counted(system: RunningSystem, expected: dict[str, int]) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        summary = stats(system, "/api/v1/stats/summary", **OURS)
        counts = {s: row["count"] for s, row in summary["by_status"].items() if row["count"]}
        return summary if counts == expected else None

    return wait_for(done, 15, message=f"the statistics to show {expected}")


@dataclass
class Parks:
    filed: dict[str, Filed]
    selesai_event: dict[str, Any]  # the real event announcing one of them selesai
    started: float


@pytest.fixture(scope="module")
def parks(system: RunningSystem) -> Parks:
    """Six park reports in Jakarta Barat walked through every kind of answer; the real selesai event of one."""
    started = time.monotonic()
    tap = EventTap(system.amqp_uri, "report_status_changed")
    filed = dict(
        zip(
            PLACES,
            submit_many(
                system, [(lat, lon, CATEGORY, f"Taman rusak di {name}") for name, (lat, lon) in PLACES.items()]
            ),
            strict=True,
        )
    )
    assert {f.opd for f in filed.values()} == {PARKS_OPD}
    for name in ("kembangan", "kedoya"):
        act(system, filed[name], "dikerjakan", note="Petugas menuju lokasi")
        act(system, filed[name], "selesai", note="Bangku taman sudah diperbaiki")
    meruya = filed["meruya"]
    act(system, meruya, "koordinasi", target_opd="kelurahan-meruya-utara", note="Taman ini dikelola kelurahan")
    assert wait_assigned(system, meruya, hop=1) == "kelurahan-meruya-utara"
    act(system, meruya, "dikerjakan")
    act(system, meruya, "selesai", note="Selesai oleh PPSU kelurahan")
    act(system, filed["cengkareng"], "ditolak", reason="duplikat", note="Sudah dilaporkan sebelumnya")
    act(system, filed["grogol"], "dikerjakan")
    selesai = tap.find(lambda b: b["report_id"] == filed["kedoya"].report_id and b["to_status"] == "selesai")
    tap.close()
    return Parks(filed, selesai, started)


def test_shares_per_status_category_and_area(system: RunningSystem, parks: Parks) -> None:
    summary = counted(system, {"selesai": 3, "dikerjakan": 1, "ditolak": 1, "menunggu": 1})
    assert summary["total"] == 6
    assert summary["headline"] == "50% selesai, 16.7% menunggu, 16.7% dikerjakan, 16.7% ditolak"
    assert summary["by_status"]["selesai"] == {"label": "Selesai", "count": 3, "share": 0.5, "percent": 50.0}
    assert [(c["category"], c["total"], c["selesai_percent"]) for c in summary["by_category"]] == [(CATEGORY, 6, 50.0)]
    assert summary["by_kota"][0]["kota"] == KOTA
    assert summary["filters"]["kota"] == KOTA and summary["filters"]["category"] == CATEGORY

    kelurahan = {r["kelurahan"]: r for r in stats(system, "/api/v1/stats/by/kelurahan", **OURS)["rows"]}
    assert set(kelurahan) == {
        "Kembangan Utara",
        "Kedoya Utara",
        "Meruya Utara",
        "Cengkareng Timur",
        "Grogol",
        "Palmerah",
    }
    assert kelurahan["Meruya Utara"]["by_status"]["selesai"] == 1 and kelurahan["Meruya Utara"]["code"].startswith(
        "31.73"
    )
    kecamatan = stats(system, "/api/v1/stats/by/kecamatan", **OURS)
    assert kecamatan["total"] == 6 and all(r["kota"] == KOTA for r in kecamatan["rows"])

    # per responsible OPD: the kelurahan now holds the report it was handed
    by_opd = {r["opd"]: r for r in stats(system, "/api/v1/stats/by/opd", **OURS)["rows"]}
    assert by_opd[PARKS_OPD]["total"] == 5 and by_opd["kelurahan-meruya-utara"]["by_status"]["selesai"] == 1
    assert by_opd[PARKS_OPD]["name"].startswith("Suku Dinas Pertamanan")

    today = stats(system, "/api/v1/stats/daily", **OURS)["days"][-1]
    assert (today["submitted"], today["selesai_that_day"]) == (6, 3)


def test_agency_performance_and_durations(system: RunningSystem, parks: Parks) -> None:
    counted(system, {"selesai": 3, "dikerjakan": 1, "ditolak": 1, "menunggu": 1})
    elapsed = time.monotonic() - parks.started
    agencies = stats(system, "/api/v1/stats/agencies", **OURS)
    assert agencies["min_reports"] == 20 and agencies["ranked"] == []  # six reports rank nobody
    parks_row = next(r for r in agencies["unranked"] if r["opd"] == PARKS_OPD)
    assert parks_row["unranked_reason"] == "fewer than 20 reports"
    assert (parks_row["received"], parks_row["completed"], parks_row["koordinasi"], parks_row["rejected"]) == (
        6,
        2,
        1,
        1,
    )
    # two of the four it had to finish itself (palmerah and grogol are still within their deadline)
    assert parks_row["completion_rate"] == 0.5
    assert (parks_row["bounce_rate"], parks_row["rejection_rate"]) == (0.1667, 0.1667)
    assert parks_row["within_deadline"] == {"decided": 5, "within": 5, "share": 1.0}
    assert 0 < parks_row["response"]["median_seconds"] <= elapsed

    ranked = stats(system, "/api/v1/stats/agencies", min_reports=5, **OURS)
    assert [(r["rank"], r["opd"]) for r in ranked["ranked"]] == [(1, PARKS_OPD)]
    kelurahan = next(r for r in ranked["unranked"] if r["opd"] == "kelurahan-meruya-utara")
    assert (kelurahan["received"], kelurahan["completed"], kelurahan["completion_rate"]) == (1, 1, 1.0)

    durations = stats(system, "/api/v1/stats/durations", **OURS)
    overall = durations["overall"]
    assert overall["reports"] == 6
    assert overall["first_response"]["count"] == 5 and overall["selesai"]["count"] == 3
    first, done = overall["first_response"], overall["selesai"]
    assert 0 < first["median_seconds"] <= first["p90_seconds"] <= elapsed
    assert 0 < done["median_seconds"] <= done["p90_seconds"] <= elapsed
    assert done["median_hours"] == round(done["median_seconds"] / 3600, 2)
    assert overall["within_deadline"]["share"] == 1.0
    per_opd = {r["opd"]: r for r in durations["by_opd"]}
    # the kelurahan's clock started when it got the report, after the Suku Dinas had handed it over
    kelurahan = per_opd["kelurahan-meruya-utara"]
    assert (kelurahan["received"], kelurahan["selesai"]["count"]) == (1, 1)
    assert 0 < kelurahan["first_response"]["median_seconds"] <= kelurahan["selesai"]["median_seconds"] <= elapsed
    assert per_opd[PARKS_OPD]["received"] == 6 and per_opd[PARKS_OPD]["within_deadline"]["share"] == 1.0
    assert durations["by_category"][0]["category"] == CATEGORY


def test_a_redelivered_event_counts_once(system: RunningSystem, parks: Parks) -> None:
    selesai = parks.selesai_event
    assert selesai["event_type"] == "intake.report_status_changed" and selesai["event_id"]
    counted(system, {"selesai": 3, "dikerjakan": 1, "ditolak": 1, "menunggu": 1})
    before = stats(system, "/api/v1/stats/by/kelurahan", **OURS)["rows"]
    duplicates = metric(system, "jaklapor_stats_events_duplicate_total", event_type="intake.report_status_changed")
    tap = EventTap(system.amqp_uri, "report_status_changed.unused")
    tap.publish(selesai, "report_status_changed")  # the very same event again
    tap.publish({**selesai, "event_id": uuid.uuid4().hex}, "report_status_changed")  # a copy under a new id
    tap.close()
    wait_for(
        lambda: (
            metric(system, "jaklapor_stats_events_duplicate_total", event_type="intake.report_status_changed")
            >= duplicates + 2
        ),
        10,
        message="stats to receive both copies",
    )
    time.sleep(1.1)  # past the response cache's freshness
    summary = counted(system, {"selesai": 3, "dikerjakan": 1, "ditolak": 1, "menunggu": 1})
    assert summary["total"] == 6
    assert stats(system, "/api/v1/stats/by/kelurahan", **OURS)["rows"] == before
    today = stats(system, "/api/v1/stats/daily", **OURS)["days"][-1]
    assert (today["submitted"], today["selesai_that_day"]) == (6, 3)
    parks_row = next(r for r in stats(system, "/api/v1/stats/agencies", **OURS)["unranked"] if r["opd"] == PARKS_OPD)
    assert parks_row["completed"] == 2


def test_the_api_is_public_cached_briefly_and_names_bad_parameters(system: RunningSystem) -> None:
    response = requests.get(system.url("stats", "/api/v1/stats/summary"), timeout=10)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cache-Control"] == "public, max-age=5"
    for params, field in [
        ({"from": "kemarin"}, "from"),
        ({"kota": "Bandung"}, "kota"),
        ({"category": "banjir-bandang"}, "category"),
        ({"sort": "desc"}, "sort"),
        ({"from": "2026-11-28", "to": "2026-11-01"}, "to"),
    ]:
        bad = requests.get(system.url("stats", "/api/v1/stats/agencies"), params=params, timeout=10)
        assert bad.status_code == 400, (params, bad.text)
        assert bad.headers["Content-Type"].startswith("application/json")
        assert bad.json()["error"]["field"] == field
    assert requests.get(system.url("stats", "/api/v1/stats/by/rt"), timeout=10).status_code == 404
    geojson = requests.get(system.url("stats", "/api/v1/stats/map/kelurahan.geojson"), timeout=10)
    assert geojson.status_code == 200 and len(geojson.json()["features"]) == 267
    metrics = requests.get(system.url("stats", "/metrics"), timeout=10).text
    assert re.search(r'^jaklapor_stats_reports\{status="selesai"\} [1-9]', metrics, re.MULTILINE)
    assert "jaklapor_stats_events_applied_total" in metrics


# ---- the rebuild command, against a store shared by the services and the command -----------------------------------


@pytest.fixture(scope="module")
def shared_store_system(tmp_path_factory: pytest.TempPathFactory, s3: LocalS3Server) -> Iterator[RunningSystem]:
    """A system of its own (its store holds only this module's reports), on the local store as `make run` has it."""
    vhost = Vhost.create()
    running = start_system(tmp_path_factory.mktemp("shared-store"), vhost, s3)
    yield running
    running.stop()
    vhost.delete()


def rebuild(system: RunningSystem, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONGO_URI": system.mongo_uri, "AMQP_URI": system.amqp_uri}
    return subprocess.run(
        [sys.executable, "-m", "jaklapor.cli", "stats-rebuild", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_rebuild_from_the_report_store_matches_the_live_statistics(shared_store_system: RunningSystem) -> None:
    system = shared_store_system
    filed = submit_many(system, [(lat, lon, CATEGORY, "Taman") for lat, lon in list(PLACES.values())[:4]])
    a, b, c, d = filed
    act(system, a, "dikerjakan")
    act(system, a, "selesai")
    act(system, b, "koordinasi", target_opd="kelurahan-kedoya-utara")
    wait_assigned(system, b, hop=1)
    act(system, b, "ditolak", reason="duplikat")
    act(system, c, "dikerjakan")
    counted(system, {"selesai": 1, "ditolak": 1, "dikerjakan": 1, "menunggu": 1})

    checked = wait_for(lambda: (r := rebuild(system, "--check")).returncode == 0 and r, 15, message="rebuild == live")
    assert "checked 4 reports against 4 live projections: 0 differ" in checked.stdout

    client = pymongo.MongoClient(system.mongo_uri, tz_aware=True)
    projections = client["jaklapor_stats"]["report_projections"]
    projections.update_one({"_id": a.report_id}, {"$set": {"status": "menunggu"}})
    projections.delete_one({"_id": d.report_id})
    drift = rebuild(system, "--check")
    assert drift.returncode == 1
    assert f"{a.report_id}: status: live 'menunggu' != rebuilt 'selesai'" in drift.stdout
    assert f"{d.report_id}: missing from the live projections" in drift.stdout

    fixed = rebuild(system)
    assert fixed.returncode == 0 and "2 changed" in fixed.stdout, fixed.stdout + fixed.stderr
    assert rebuild(system, "--check").returncode == 0
    assert projections.find_one({"_id": a.report_id})["status"] == "selesai"
    assert client["jaklapor_intake"]["reports"].count_documents({}) == 4
    client.close()


def test_rebuild_without_a_store_says_where_to_point_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jaklapor.cli", "stats-rebuild", "--check"],
        env={**os.environ, "MONGO_URI": ""},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "MONGO_URI is not set: point it at MongoDB" in result.stderr
