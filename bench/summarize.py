"""One row per benchmark run, in `bench/results.csv`: the summary kept in git, while the raw result files (time series,
samples, profiles) stay in the local `bench/results/` folder the benchmarks write to.

    python bench/summarize.py                          # add the runs in bench/results/ to bench/results.csv
    python bench/summarize.py /tmp/runs --out runs.csv

A run's row is keyed by its name, the result file's stem (`max-per-service-s9-20261128T023344Z`): summarizing a
folder again replaces its runs' rows and keeps every other row, so the summary outlives the raw files. Reads the
results of `bench/loadgen.py` (end to end), `bench/bench_broker_floor.py` (the broker's floor) and
`bench/bench_citizen_app.py` (the citizen app's first load); other JSON files are skipped.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.report import RESULTS, offered  # noqa: E402

SUMMARY = Path(__file__).resolve().parent / "results.csv"
#: the broker floor's modes, each with its own columns
FLOOR_MODES = ("per-message", "batched")


def column_prefix(mode: str) -> str:
    return mode.replace("-", "_")


COLUMNS = [
    "run",
    "scenario",
    "layout",
    "tag",
    "started_utc",
    "commit",
    "store",
    "offered",
    "photo_share",
    "sent",
    "accepted",
    "accepted_per_s",
    "delivered",
    "delivered_per_s_load",
    "delivered_per_s_e2e",
    "delivered_per_s_best_10s",
    # from the moment the client was scheduled to send (open loop) or sent (closed loop) to the OPD queue
    "latency_ms_p50",
    "latency_ms_p95",
    "latency_ms_p99",
    # from the intake's `submitted_at` to the OPD queue
    "server_to_opd_ms_p50",
    "server_to_opd_ms_p99",
    "http_ms_p99",
    "errors",
    "lost",
    "duplicated",
    "backlog_at_load_end",
    "drain_s",
    "cpu_ms_per_report",
    "cpu_ms_per_report_by_process",
    "implied_max_reports_per_s",
    "cpu_pct_mean_by_process",
    "rss_mib_start_peak_end_by_process",
    "machine_cpu_pct_mean",
    "others_cpu_pct",
    "ceiling_publishes_per_s_by_publishers",
    "broker_publishes_per_report",
    "queue_peaks",
    "profiles",
    *(
        f"{column_prefix(mode)}_{measure}"
        for mode in FLOOR_MODES
        for measure in ("broker_ms_per_report", "reports_per_s", "max_reports_per_s")
    ),
    # the citizen app's first load, by `<profile>/<visit>` (medians over the runs)
    "app_interactive_ms",
    "app_shell_bytes",
    "app_api_bytes",
    "app_requests_shell_api",
]


def listing(pairs: Iterable[tuple[str, Any]]) -> str:
    """`name=value; ...`: a compact cell for a measure per process or per queue."""
    return "; ".join(f"{name}={value}" for name, value in pairs)


def iso_time(stamp: str) -> str:
    """`20261128T131651Z` (loadgen) or an ISO time (broker floor) -> `2026-11-28T13:16:51Z`."""
    if re.fullmatch(r"\d{8}T\d{6}Z", stamp):
        moment = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
    else:
        moment = datetime.fromisoformat(stamp).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def run_tag(stem: str, scenario: str, layout: str) -> str:
    """The `--tag` of a run, from its name `<scenario>-<layout>[-<tag>]-<UTC time>`."""
    middle = re.sub(r"-\d{8}T\d{6}Z$", "", stem).removeprefix(f"{scenario}-{layout}")
    return middle.removeprefix("-")


def loadgen_row(stem: str, result: Mapping[str, Any]) -> dict[str, Any]:
    config, run = result["config"], result["run"]
    layout = result.get("system", {}).get("layout", "attached")
    latency = run["latency_ms_from_intended_send"]
    server = run.get("latency_ms_server_submitted_at_to_copy") or {}
    resources = {label: row for label, row in result["resources"].items() if not label.startswith("_")}
    machine = result["resources"].get("_machine", {})
    cpu = result.get("cpu_ms_per_delivered_report", {})
    ratio = result.get("ratio") or {}
    return {
        "run": stem,
        "scenario": result["scenario"],
        "layout": layout,
        "tag": run_tag(stem, result["scenario"], layout),
        "started_utc": iso_time(result["started_at"]),
        "commit": result.get("machine", {}).get("git_commit", ""),
        "store": result.get("system", {}).get("mongo", config.get("mongo", "")),
        "offered": offered(result),
        "photo_share": config["photo_share"],
        "sent": run["sent"],
        "accepted": run["accepted"],
        "accepted_per_s": run["accepted_per_s"],
        "delivered": run["delivered"],
        "delivered_per_s_load": run["delivered_per_s_during_load"],
        "delivered_per_s_e2e": run["delivered_per_s_end_to_end"],
        "delivered_per_s_best_10s": run["delivered_per_s_best_10s"],
        "latency_ms_p50": latency["p50"],
        "latency_ms_p95": latency["p95"],
        "latency_ms_p99": latency["p99"],
        "server_to_opd_ms_p50": server.get("p50", ""),
        "server_to_opd_ms_p99": server.get("p99", ""),
        "http_ms_p99": run["http_ms"]["p99"],
        "errors": listing(run["errors"].items()),
        "lost": run["integrity"]["lost"],
        "duplicated": run["integrity"]["duplicated"],
        "backlog_at_load_end": run["backlog_at_load_end"],
        "drain_s": run["drain_seconds"] if run.get("drain_end", "complete") == "complete" else run["drain_end"],
        "cpu_ms_per_report": cpu.get("system_total", ""),
        "cpu_ms_per_report_by_process": listing(cpu.get("per_process", {}).items()),
        "implied_max_reports_per_s": cpu.get("implied_max_reports_per_s_on_all_cores", ""),
        "cpu_pct_mean_by_process": listing((label, row["cpu_mean_load"]) for label, row in resources.items()),
        "rss_mib_start_peak_end_by_process": listing(
            (label, f"{row['rss_start_mib']}/{row['rss_peak_mib']}/{row['rss_end_mib']}")
            for label, row in resources.items()
        ),
        "machine_cpu_pct_mean": machine.get("cpu_mean_load_of_max", ""),
        "others_cpu_pct": machine.get("cpu_mean_load_others", ""),
        "ceiling_publishes_per_s_by_publishers": listing(
            (ceiling["publishers"], ceiling["publishes_per_s"]) for ceiling in result.get("ceiling") or []
        ),
        # measured from the vhost's publish counter; the oldest result files have none
        "broker_publishes_per_report": ratio.get("broker_publishes_per_report", ""),
        "queue_peaks": listing((queue, peak) for queue, peak in (result.get("queue_peaks") or {}).items() if peak),
        "profiles": " ".join(result.get("profiles") or {}),
    }


def broker_floor_row(stem: str, result: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run": stem,
        "scenario": result["benchmark"],
        "started_utc": iso_time(result["started_at"]),
    }
    for mode in FLOOR_MODES:
        measured = result["modes"].get(mode)
        if measured is not None:
            prefix = column_prefix(mode)
            row[f"{prefix}_broker_ms_per_report"] = round(measured["broker_ms_per_report"], 2)
            row[f"{prefix}_reports_per_s"] = round(measured["reports_per_s"], 1)
            row[f"{prefix}_max_reports_per_s"] = round(measured["ceiling_reports_per_s"], 1)
    return row


def citizen_app_row(stem: str, result: Mapping[str, Any]) -> dict[str, Any]:
    cells = [
        (f"{profile}/{visit}", cell) for profile, visits in result["summary"].items() for visit, cell in visits.items()
    ]
    return {
        "run": stem,
        "scenario": result["benchmark"],
        "started_utc": iso_time(result["started_at"]),
        "commit": result.get("commit", ""),
        "app_interactive_ms": listing((name, cell["interactive_ms_median"]) for name, cell in cells),
        "app_shell_bytes": listing((name, cell["shell_bytes"]) for name, cell in cells),
        "app_api_bytes": listing((name, cell["api_bytes"]) for name, cell in cells),
        "app_requests_shell_api": listing(
            (name, f"{cell['shell_requests']}/{cell['api_requests']}") for name, cell in cells
        ),
    }


def summary_row(path: Path) -> dict[str, Any] | None:
    """The summary row of one result file; None for a file that is not a benchmark result."""
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict):
        return None
    if "run" in result and "config" in result:
        return loadgen_row(path.stem, result)
    if result.get("benchmark") == "broker-floor":
        return broker_floor_row(path.stem, result)
    if result.get("benchmark") == "citizen-app-first-load":
        return citizen_app_row(path.stem, result)
    return None


def summarize(folder: Path, summary: Path) -> list[dict[str, Any]]:
    """Merge the runs in `folder` into the rows of `summary` (a run already there is replaced); the rows, by time."""
    rows: dict[str, dict[str, Any]] = {}
    if summary.exists():
        with summary.open(newline="", encoding="utf-8") as fh:
            rows = {row["run"]: row for row in csv.DictReader(fh)}
    for path in sorted(folder.glob("*.json")):
        row = summary_row(path)
        if row is not None:
            rows[row["run"]] = row
    return sorted(rows.values(), key=lambda row: (row["started_utc"], row["run"]))


def write_summary(rows: list[dict[str, Any]], summary: Path) -> None:
    with summary.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, COLUMNS, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=RESULTS, help="result files (default: bench/results)")
    parser.add_argument("--out", type=Path, default=SUMMARY, help="the summary to update (default: bench/results.csv)")
    args = parser.parse_args(argv)
    rows = summarize(args.folder, args.out)
    write_summary(rows, args.out)
    print(f"{args.out}: {len(rows)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
