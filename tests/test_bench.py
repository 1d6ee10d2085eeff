"""The benchmarks in bench/ keep working: a short load-generator run against a system it starts on the real RabbitMQ,
and the routing micro-benchmark. Nothing here asserts a speed (docs/performance.md holds the measured numbers); the
run must deliver every accepted report exactly once and write its result, which `bench/summarize.py` turns into a
row of the summary."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.system import ROOT

pytestmark = pytest.mark.e2e


def run_bench(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_load_generator_delivers_every_accepted_report_once(tmp_path: Path) -> None:
    done = run_bench(
        "bench/loadgen.py",
        "--scenario=smoke",
        "--rate=25",
        "--duration=4",
        "--photo-share=0.2",
        "--photo-pool=4",
        "--warmup=10",
        "--ceiling-seconds=1",
        "--ceiling-publishers=1",
        f"--out={tmp_path}",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [result_file] = tmp_path.glob("smoke-single-*.json")
    result = json.loads(result_file.read_text())
    run = result["run"]
    assert run["sent"] == 100
    assert run["accepted"] == 100, run["status_counts"]
    assert run["delivered"] == 100
    assert run["integrity"]["lost"] == 0 and run["integrity"]["duplicated"] == 0, run["integrity"]
    assert result["ceiling"][0]["publishes_per_s"] > 0
    assert result["ratio"]["broker_publishes_per_report"] > 0
    # the single layout too keeps its reports in the wire stand-in, a process of its own (as `make run` does)
    assert {"all", "mongo-standin", "rabbitmq(beam.smp)"} <= set(result["resources"])
    assert "== smoke (single) ==" in done.stdout

    # the summary kept in git: one row per run, a run summarized again replaces its row, earlier rows stay
    summary = tmp_path / "results.csv"
    summary.write_text("run,started_utc,delivered\nmax-single-old-20260101T000000Z,2026-01-01T00:00:00Z,7\n")
    for _ in range(2):
        summarized = run_bench("bench/summarize.py", str(tmp_path), f"--out={summary}", timeout=60)
        assert summarized.returncode == 0, summarized.stderr[-3000:]
    with summary.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["run"] for row in rows] == ["max-single-old-20260101T000000Z", result_file.stem]
    assert rows[0]["delivered"] == "7"
    row = rows[1]
    assert (row["scenario"], row["layout"], row["delivered"], row["lost"], row["duplicated"]) == (
        "smoke",
        "single",
        "100",
        "0",
        "0",
    )
    assert float(row["cpu_ms_per_report"]) > 0 and "rabbitmq(beam.smp)=" in row["cpu_ms_per_report_by_process"]


def test_routing_benchmark_prints_decisions_per_second_and_index_memory() -> None:
    done = run_bench("bench/bench_routing.py", "--points=5000", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "decisions/s" in done.stdout and "index:" in done.stdout and "RSS" in done.stdout


def test_object_store_benchmark_prints_both_stores_side_by_side() -> None:
    done = run_bench("bench/bench_object_store.py", "--objects=20", "--rounds=1", "--size=20000", timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout.splitlines()
    assert "PUT/s" in table[1] and "server CPU ms/PUT" in table[1]
    assert [line.split()[0] for line in table[2:4]] == ["SeaweedFS", "moto"]


def test_citizen_app_benchmark_arguments() -> None:
    from bench.bench_citizen_app import parse_args

    args = parse_args(["--runs", "2", "--profiles", "slow-3g,none"])
    assert (args.runs, args.profiles, args.url) == (2, ["slow-3g", "none"], None)
    assert parse_args([]).profiles == ["none", "fast-3g", "slow-3g"]
    for wrong in (["--profiles", "4g"], ["--runs", "0"]):
        with pytest.raises(SystemExit):
            parse_args(wrong)


def test_citizen_app_benchmark_measures_a_cold_and_a_warm_load(tmp_path: Path) -> None:
    pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("chromium is not installed")
    done = run_bench("bench/bench_citizen_app.py", "--runs=1", "--profiles=none", f"--out={tmp_path}", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [result_file] = tmp_path.glob("citizen-app-*.json")
    summary = json.loads(result_file.read_text())["summary"]["none"]
    assert set(summary) == {"cold", "warm", "warm-uncached"}
    assert 0 < summary["cold"]["shell_bytes"] <= 300_000 and summary["cold"]["api_bytes"] > 0
    assert summary["warm"]["shell_bytes"] < summary["cold"]["shell_bytes"]  # the service worker and the cache
    assert "interactive ms" in done.stdout

    summarized = run_bench("bench/summarize.py", str(tmp_path), f"--out={tmp_path / 'results.csv'}", timeout=60)
    assert summarized.returncode == 0, summarized.stderr[-3000:]
    with (tmp_path / "results.csv").open(newline="") as fh:
        [row] = list(csv.DictReader(fh))
    assert row["scenario"] == "citizen-app-first-load" and "none/cold=" in row["app_interactive_ms"]


def test_open_data_benchmark_prints_rows_per_second_and_peak_memory() -> None:
    done = run_bench("bench/bench_open_data.py", "--reports=2000", "--compare-list", timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith(("csv", "geojson"))}
    assert set(lines) == {"csv", "geojson"}
    for line in lines.values():
        assert "rows/s=" in line and "peak_traced=" in line and "total=" in line
    assert "a list of every exported report" in done.stdout


def test_evidence_benchmark_prints_the_cost_and_the_hash_separation() -> None:
    done = run_bench("bench/bench_evidence.py", "--photos=4", "--runs=2", timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sanitise with checks" in done.stdout and "dHash of clean image" in done.stdout
    assert "copies recognised 4/4" in done.stdout and "different scenes taken for a copy 0/6" in done.stdout


def test_photo_benchmark_prints_the_decode_floor_at_each_scale() -> None:
    done = run_bench("bench/bench_photos.py", "--photos=2", "--rounds=1", "--decode-scales", "--json", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    scales = json.loads(done.stdout[done.stdout.index("{") :])
    assert set(scales) == {"bench 1600x1200", "12 MP 4000x3000", "12 MP 4032x3024"}
    assert [scales["12 MP 4000x3000"][f"1/{s}"]["decoded"] for s in (1, 2, 4, 8)] == [
        "4000x3000",
        "2000x1500",
        "1000x750",
        "500x375",
    ]
    assert all(cell["cpu_ms"] > 0 for row in scales.values() for key, cell in row.items() if key.startswith("1/"))


def test_stand_in_write_benchmark_prints_each_kind_of_write() -> None:
    done = run_bench("bench/bench_standin_writes.py", "--reports=200", "--batch=20", "--rounds=2", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    kinds = [line.split("  ")[1].strip() for line in done.stdout.splitlines() if line.endswith("µs")]
    assert kinds == ["inserted through the upsert", "replaced (revision 2)", "replaced (revision 3)"], done.stdout


@pytest.mark.parametrize("photo", [None, b"\xff\xd8 a photo's bytes \r\n--not-the-boundary \xff\xd9"])
def test_the_load_generator_sends_forms_as_a_browser_does(photo: bytes | None) -> None:
    # --plain-body form: a report without a photo is multipart too, under a boundary of its own
    from werkzeug.formparser import parse_form_data
    from werkzeug.test import EnvironBuilder

    from bench.workload import Report, multipart_body

    report = Report("jalan", "Jalan berlubang di depan halte", -6.2088, 106.82, None if photo is None else 0)
    bodies = [multipart_body(report, photo) for _ in range(2)]
    assert bodies[0][1] != bodies[1][1]  # a new boundary each time
    body, content_type = bodies[0]
    environ = EnvironBuilder(method="POST", data=body, content_type=content_type).get_environ()
    _stream, form, files = parse_form_data(environ, silent=False)
    assert form.to_dict() == {"category": "jalan", "description": report.description, "lat": "-6.2088", "lon": "106.82"}
    assert [f.read() for f in files.getlist("photo")] == ([] if photo is None else [photo])
