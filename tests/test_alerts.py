"""The Prometheus configuration and alert rules in deploy/prometheus/ are valid, and every alert is unit-tested with
`promtool test rules` (alerts_test.yml), firing and staying quiet. The Grafana dashboard's queries parse, and every
jaklapor metric the rules and the dashboard use is one the services export."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "deploy/prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
DASHBOARD = ROOT / "deploy/grafana/dashboards/jaklapor.json"

# The per-queue families scraped from RabbitMQ's /metrics/detailed (queue_coarse_metrics, queue_consumer_count).
RABBITMQ_DETAILED = {
    "rabbitmq_detailed_queue_messages_ready",
    "rabbitmq_detailed_queue_messages_unacked",
    "rabbitmq_detailed_queue_messages",
    "rabbitmq_detailed_queue_consumers",
    "rabbitmq_process_max_fds",  # /metrics, the node's open-file limit
}
REQUIRED_ALERTS = {
    "ServiceDown",
    "OpdQueueBacklogGrowing",
    "DeadLetterQueueNotEmpty",
    "MessagesDeadLettered",
    "UnroutableRateHigh",
    "OverdueReports",
    "OutboxBacklog",
    "HighSubmissionLatency",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool (Debian package prometheus) is required in CI")
        pytest.skip("promtool is not installed (scripts/install-system-deps installs it)")
    return exe


def run_promtool(promtool: str, *args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    # rule_files are relative paths: run where the files are, as Prometheus resolves them next to its config
    result = subprocess.run([promtool, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_are_valid(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", "--lint=all", "--lint-fatal", "alerts.yml")
    assert "SUCCESS" in output


def test_config_is_valid_and_loads_the_rules(promtool: str) -> None:
    output = run_promtool(promtool, "check", "config", "--lint=all", "--lint-fatal", "prometheus.yml")
    assert "SUCCESS: 1 rule files found" in output
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]


def test_every_alert_passes_its_unit_tests(promtool: str) -> None:
    output = run_promtool(promtool, "test", "rules", "alerts_test.yml")
    assert "SUCCESS" in output and "FAILED" not in output


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases: dict[str, set[bool]] = {}
    for group in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for case in group.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    names = {rule["alert"] for rule in alert_rules()}
    assert names >= REQUIRED_ALERTS
    for name in names:
        assert cases.get(name) == {True, False}, f"{name} needs a firing and a quiet case in alerts_test.yml"


def test_every_alert_says_how_bad_and_what_to_do() -> None:
    operations = (ROOT / "docs/operations.md").read_text()
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 80, name
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"
        assert f"### {name}" in operations, f"docs/operations.md has no section for {name}"


def exported_metric_names() -> set[str]:
    """Every sample name the four services' registries can expose, as the services create them."""
    import services.intake.metrics
    import services.notify.metrics
    import services.routing.metrics
    import services.stats.metrics  # noqa: F401
    from jaklapor.metrics import consumer_metrics, http_metrics, registry_for

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
    names: set[str] = set()
    for service in ("intake", "routing", "notify", "stats"):
        http_metrics(service)
        consumer_metrics(service)
        registry: CollectorRegistry = registry_for(service)
        for family in registry.collect():
            names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def used_metric_names(promql: str) -> set[str]:
    # jaklapor_* and rabbitmq_* selectors; recording rules are named jaklapor:...: and do not match
    return set(re.findall(r"\b((?:jaklapor|rabbitmq)_[a-z0-9_]+)\b", promql))


def dashboard_queries() -> list[str]:
    def walk(panels: list[dict]) -> list[str]:
        found = []
        for panel in panels:
            found += [target["expr"] for target in panel.get("targets", [])]
            found += walk(panel.get("panels", []))
        return found

    return walk(json.loads(DASHBOARD.read_text())["panels"])


def test_rules_and_dashboard_use_only_metrics_that_exist() -> None:
    exported = exported_metric_names() | RABBITMQ_DETAILED
    rules = [rule["expr"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    for promql in rules + dashboard_queries():
        unknown = used_metric_names(promql) - exported
        assert not unknown, f"{promql!r} uses metrics no service exports: {unknown}"


def test_dashboard_queries_parse(promtool: str, tmp_path: Path) -> None:
    # promtool parses PromQL offline when it checks rules: one recording rule per dashboard query
    queries = [q.replace("$__rate_interval", "1m").replace("$__interval", "15s") for q in dashboard_queries()]
    assert queries
    rules = [{"record": f"dashboard:q{i}", "expr": q} for i, q in enumerate(queries)]
    (tmp_path / "dashboard_rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool(promtool, "check", "rules", "dashboard_rules.yml", cwd=tmp_path)
