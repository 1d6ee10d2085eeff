"""docker-compose.yml is checked without a Docker engine: `docker-compose config` validates it, and every service's
command and environment must match what the code reads."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

from jaklapor.cli import SERVICES
from jaklapor.config import DEFAULT_CONFIG_PATH

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = set(SERVICES)
HTTP_ENV = {"intake": "INTAKE_HTTP", "routing": "ROUTING_HTTP", "notify": "NOTIFY_HTTP", "stats": "STATS_HTTP"}


@pytest.fixture(scope="module")
def compose() -> dict:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose (Debian package docker-compose) is required in CI")
        pytest.skip("docker-compose is not installed (scripts/install-system-deps installs it)")
    result = subprocess.run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def config_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+):", DEFAULT_CONFIG_PATH.read_text()))


def test_full_stack_has_the_real_backing_services(compose: dict) -> None:
    services = compose["services"]
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3.10-management")
    assert services["mongodb"]["image"].startswith("mongo:")
    assert services["minio"]["image"].startswith("minio/minio")
    assert services["prometheus"]["image"].startswith("prom/prometheus")
    plugins = (ROOT / "deploy/rabbitmq/enabled_plugins").read_text()
    assert "rabbitmq_management" in plugins and "rabbitmq_prometheus" in plugins
    assert set(services) >= APP_SERVICES


def test_each_service_runs_its_own_code_with_real_stores(compose: dict) -> None:
    known = config_variables()
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["command"] == ["jaklapor", "run", "--services", name, "--no-s3-standin"]
        env = service["environment"]
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables the config never reads: {unknown}"
        assert env["MONGO_URI"].startswith("mongodb://"), "compose must use the real MongoDB"
        assert env["S3_ENDPOINT"] == "minio:9000"
        assert env["AMQP_URI"].startswith("pyamqp://") and "@rabbitmq:5672" in env["AMQP_URI"]
        port = env[HTTP_ENV[name]].rsplit(":", 1)[1]
        # `docker-compose config` normalises ports to {published, target}
        listening = {str(p["target"]) for p in service.get("ports", [])} | {str(p) for p in service.get("expose", [])}
        assert port in listening, f"{name} listens on {port} but compose exposes {listening}"
        assert set(service["depends_on"]) >= {"rabbitmq", "mongodb", "minio"}


def test_prometheus_scrapes_every_service_and_rabbitmq(compose: dict) -> None:
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    for name in APP_SERVICES:
        port = compose["services"][name]["environment"][HTTP_ENV[name]].rsplit(":", 1)[1]
        assert f"{name}:{port}" in targets
    assert "rabbitmq:15692" in targets


def mounts(service: dict) -> dict[str, Path | str]:
    """A compose service's volumes as {container path: host path (bind mount) or volume name}."""
    found: dict[str, Path | str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume["source"], volume["target"]
        else:
            source, target = volume.split(":")[:2]
        found[target] = Path(source) if source.startswith(("/", ".")) else source
    return found


def test_prometheus_loads_the_alert_rules(compose: dict) -> None:
    config_dir = PurePosixPath("/etc/prometheus")
    volumes = mounts(compose["services"]["prometheus"])
    assert volumes[str(config_dir / "prometheus.yml")] == ROOT / "deploy/prometheus/prometheus.yml"
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert scrape["rule_files"], "prometheus.yml loads no alert rules"
    for rule_file in scrape["rule_files"]:  # relative to the config file, inside the container
        host = volumes.get(str(config_dir / rule_file))
        assert host is not None, f"{rule_file} is not mounted next to prometheus.yml"
        assert Path(host).is_file() and yaml.safe_load(Path(host).read_text())["groups"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboards(compose: dict) -> None:
    grafana = compose["services"]["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    assert "prometheus" in grafana["depends_on"]
    volumes = mounts(grafana)
    provisioning = volumes["/etc/grafana/provisioning"]
    assert provisioning == ROOT / "deploy/grafana/provisioning"

    def provisioned(path: str) -> dict:
        # Grafana replaces ${VAR} in provisioning files with its environment
        text = re.sub(r"\$\{(\w+)\}", lambda m: grafana["environment"][m.group(1)], (provisioning / path).read_text())
        return yaml.safe_load(text)

    # the datasource points at the compose Prometheus
    datasources = provisioned("datasources/prometheus.yml")["datasources"]
    (datasource,) = datasources
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    assert any(str(p["target"]) == "9090" for p in compose["services"]["prometheus"]["ports"])

    # the dashboard provider reads a directory that compose mounts from deploy/grafana/dashboards
    providers = provisioned("dashboards/jaklapor.yml")["providers"]
    (provider,) = providers
    dashboards_dir = volumes[provider["options"]["path"]]
    assert dashboards_dir == ROOT / "deploy/grafana/dashboards"
    files = sorted(Path(dashboards_dir).glob("*.json"))
    assert files
    home = grafana["environment"].get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home == f"{provider['options']['path']}/jaklapor.json"

    uids = set()
    for file in files:
        dashboard = json.loads(file.read_text())
        assert dashboard["uid"] not in uids and dashboard["title"]
        uids.add(dashboard["uid"])
        panels = [p for row in dashboard["panels"] for p in [row, *row.get("panels", [])]]
        queries = [t for p in panels for t in p.get("targets", [])]
        assert queries, f"{file.name} has no queries"
        for panel in panels:
            for target in [panel, *panel.get("targets", [])]:
                if "datasource" in target:
                    assert target["datasource"]["uid"] == datasource["uid"], f"{file.name}: {panel['title']}"
        assert all(t["expr"].strip() for t in queries)


def test_dockerfile_installs_the_package_and_its_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11" in dockerfile
    assert "pip install ." in dockerfile
    assert 'CMD ["jaklapor", "run"' in dockerfile
