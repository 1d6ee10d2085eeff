"""Write a Prometheus configuration for a jaklapor running outside Docker (`make run`): the scrape jobs, parameters
and alert rules of deploy/prometheus/, with the compose host names replaced by local addresses.

    python deploy/prometheus/localize.py /tmp/jaklapor-prometheus
    prometheus --config.file=/tmp/jaklapor-prometheus/prometheus.yml --storage.tsdb.path=/tmp/jaklapor-prometheus/data

Defaults are `make run`'s ports (intake 8000, notify 8001, stats 8002, routing 8003) and RabbitMQ's Prometheus plugin
on 127.0.0.1:15692; `--target intake=127.0.0.1:18000` moves one, `--interval 1s` scrapes and evaluates faster,
`--vhost NAME` keeps only one RabbitMQ vhost's queues. The end-to-end test tests/test_prometheus_scrape.py uses it.
"""

from __future__ import annotations

import argparse
import copy
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
LOCAL_TARGETS = {
    "intake": "127.0.0.1:8000",
    "notify": "127.0.0.1:8001",
    "stats": "127.0.0.1:8002",
    "routing": "127.0.0.1:8003",
    "rabbitmq": "127.0.0.1:15692",
}


def localized(
    config: dict[str, Any],
    targets: Mapping[str, str],
    *,
    interval: str | None = None,
    vhost: str | None = None,
    jobs: set[str] | None = None,
) -> dict[str, Any]:
    """`config` with each `host:port` target whose host is a key of `targets` replaced by its value."""
    config = copy.deepcopy(config)
    if interval:
        config["global"].update(scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval)
    scrape_configs = []
    for job in config["scrape_configs"]:
        if jobs is not None and job["job_name"] not in jobs:
            continue
        if interval:
            job.pop("scrape_interval", None)
            job.pop("scrape_timeout", None)
        if vhost and job.get("metrics_path", "").startswith("/metrics/detailed"):
            job.setdefault("params", {})["vhost"] = [vhost]
        for group in job["static_configs"]:
            group["targets"] = [targets.get(t.rsplit(":", 1)[0], t) for t in group["targets"]]
        scrape_configs.append(job)
    config["scrape_configs"] = scrape_configs
    return config


def write(
    out_dir: Path,
    targets: Mapping[str, str] = LOCAL_TARGETS,
    *,
    interval: str | None = None,
    vhost: str | None = None,
    jobs: set[str] | None = None,
) -> Path:
    """Write prometheus.yml and its rule files into `out_dir`; returns the configuration's path."""
    config = yaml.safe_load((HERE / "prometheus.yml").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    for rule_file in config.get("rule_files", []):
        shutil.copyfile(HERE / rule_file, out_dir / rule_file)
    path = out_dir / "prometheus.yml"
    local = localized(config, {**LOCAL_TARGETS, **targets}, interval=interval, vhost=vhost, jobs=jobs)
    path.write_text(yaml.safe_dump(local, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--target", action="append", default=[], metavar="NAME=HOST:PORT")
    parser.add_argument("--interval", help="scrape and evaluation interval (default: as in prometheus.yml)")
    parser.add_argument("--vhost", help="only this RabbitMQ vhost's queues")
    args = parser.parse_args()
    targets = dict(LOCAL_TARGETS)
    for item in args.target:
        name, _, address = item.partition("=")
        if name not in targets or not address:
            parser.error(f"--target {item}: expected one of {', '.join(targets)}=HOST:PORT")
        targets[name] = address
    path = write(args.out_dir, targets, interval=args.interval, vhost=args.vhost)
    print(path)


if __name__ == "__main__":
    main()
