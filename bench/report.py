"""Markdown tables from result files of bench/loadgen.py (for docs/performance.md).

python bench/report.py bench/results/fixed-single-*.json bench/results/max-*.json
python bench/report.py --latest            # the newest result of every scenario/layout/tag
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def load(paths: list[Path]) -> list[dict]:
    runs = []
    for path in paths:
        data = json.loads(path.read_text())
        if "run" in data:
            data["_file"] = path.name
            runs.append(data)
    return runs


def latest(directory: Path) -> list[Path]:
    newest: dict[str, Path] = {}
    for path in sorted(directory.glob("*.json")):
        key = re.sub(r"-\d{8}T\d{6}Z\.json$", "", path.name)
        newest[key] = path  # sorted by name: the time stamp is last, so the newest wins
    return list(newest.values())


def offered(run: dict) -> str:
    c = run["config"]
    if c["mode"] == "fixed":
        return f"{c['rate']:g}/s × {c['duration']:g} s"
    return f"{c['clients']} clients × {c['duration']:g} s"


def ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v / 1000:.1f} s" if v >= 10_000 else f"{v:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--latest", action="store_true")
    args = parser.parse_args()
    runs = load(latest(RESULTS) if args.latest or not args.files else args.files)

    print(
        "| run | offered | photos | accepted/s | delivered/s (load / e2e / best 10 s) | latency p50 / p95 / p99 "
        "| HTTP p99 | errors | lost / dup | backlog → drain | file |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        x = r["run"]
        lat = x["latency_ms_from_intended_send"]
        errors = sum(v for k, v in x["status_counts"].items() if k != "201")
        integ = x["integrity"]
        drain = f"{x['backlog_at_load_end']:,} → {x['drain_seconds']:.0f} s"
        if x.get("drain_end", "complete") != "complete":
            drain += f" ({x['drain_end']})"
        name = f"{r['scenario']} / {r.get('system', {}).get('layout', 'attached')}"
        print(
            f"| {name} | {offered(r)} | {r['config']['photo_share']:.0%} | {x['accepted_per_s']:,.1f} "
            f"| {x['delivered_per_s_during_load']:,.1f} / {x['delivered_per_s_end_to_end']:,.1f} / "
            f"{x['delivered_per_s_best_10s']:,.1f} | {ms(lat['p50'])} / {ms(lat['p95'])} / {ms(lat['p99'])} "
            f"| {ms(x['http_ms']['p99'])} | {errors:,} | {integ['lost']:,} / {integ['duplicated']:,} | {drain} "
            f"| `{r['_file']}` |"
        )
    print()
    print(
        "| run | ceiling 1 / 4 publishers | delivered ÷ ceiling | publishes per report | broker publishes ÷ ceiling "
        "| others' CPU |"
    )
    print("|---|---|---|---|---|---|")
    for r in runs:
        ceil = r.get("ceiling") or []
        ratio = r.get("ratio") or {}
        name = f"{r['scenario']} / {r.get('system', {}).get('layout', 'attached')}"
        ceilings = " / ".join(f"{c['publishes_per_s']:,.0f}" for c in ceil)
        print(
            f"| {name} | {ceilings} "
            f"| {ratio.get('delivered_over_ceiling', '–')} | {ratio.get('broker_publishes_per_report', '–')} "
            # older result files hold an assumed (not measured) publish count: not shown
            f"| {ratio.get('broker_publishes_over_ceiling', '–') if 'broker_publishes_per_report' in ratio else '–'} "
            f"| {r['resources']['_machine'].get('cpu_mean_load_others')} % |"
        )
    print()
    for r in runs:
        name = f"{r['scenario']} / {r.get('system', {}).get('layout', 'attached')}"
        print(f"{name}: CPU % under load (mean / peak), RSS MiB (start / peak / end)")
        print()
        print("| process | CPU mean | CPU peak | RSS start | RSS peak | RSS end |")
        print("|---|---|---|---|---|---|")
        for label, row in r["resources"].items():
            if label.startswith("_"):
                continue
            print(
                f"| {label} | {row['cpu_mean_load']} | {row['cpu_peak_load']} | {row['rss_start_mib']} "
                f"| {row['rss_peak_mib']} | {row['rss_end_mib']} |"
            )
        print()


if __name__ == "__main__":
    main()
