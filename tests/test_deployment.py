"""docker-compose.yml is checked without a Docker engine: `docker-compose config` validates it with a .env from
scripts/generate-env (and refuses it without one), every service's command and environment must match what the code
reads, no secret has a default, every image is pinned; and the services refuse development secrets outside the local
mode."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import yaml

from devtools.mongo_standin import MongoStandIn
from devtools.seaweedfs import LocalS3Server
from jaklapor.config import (
    DEFAULT_CONFIG_PATH,
    DEPLOYMENT_MODE,
    LOCAL_MODE,
    SECRET_SETTINGS,
    InsecureConfiguration,
    development_secrets,
    development_secrets_in,
    run_mode,
)
from jaklapor.mongo import MongoConnection, MongoDatabase, StoreNotConfigured
from jaklapor.operations import SecretGuard
from jaklapor_app.cli import main as cli_main
from jaklapor_app.system import SERVICES
from tests.system import MongoServerStandIn, Vhost, free_port, service_env, wait_for

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = set(SERVICES)
HTTP_ENV = {"intake": "INTAKE_HTTP", "routing": "ROUTING_HTTP", "notify": "NOTIFY_HTTP", "stats": "STATS_HTTP"}
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
GENERATE_ENV = ROOT / "scripts/generate-env"
# a release, not a moving tag: 1.2.3 (with a variant suffix), v1.2.3, or MinIO's RELEASE.<timestamp>
PINNED_TAG = re.compile(r"^(v?\d+\.\d+\.\d+([-.][\w.-]+)?|RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ)$")
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def required_in_env_example() -> list[str]:
    """The variables .env.example asks for (uncommented, empty assignments)."""
    return re.findall(r"^([A-Z][A-Z0-9_]*)=$", ENV_EXAMPLE.read_text(), re.MULTILINE)


def docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose (Debian package docker-compose) is required in CI")
        pytest.skip("docker-compose is not installed (scripts/install-system-deps installs it)")
    return exe


def compose_config(env_file: Path) -> subprocess.CompletedProcess:
    """`docker-compose config` with only `env_file` as the source of variables (none from the caller's shell)."""
    env = {k: v for k, v in os.environ.items() if k not in required_in_env_example() and k != "COMPOSE_FILE"}
    return subprocess.run(
        [docker_compose(), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )


def generate_env(output: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GENERATE_ENV), "--output", str(output)], capture_output=True, text=True)


def read_env(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", path.read_text(), re.MULTILINE))


@pytest.fixture(scope="module")
def generated_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("deployment") / ".env"
    result = generate_env(path)
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def compose(generated_env: Path) -> dict:
    result = compose_config(generated_env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def config_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+):", DEFAULT_CONFIG_PATH.read_text()))


def test_full_stack_has_the_real_backing_services(compose: dict) -> None:
    services = compose["services"]
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3.10.")
    assert services["rabbitmq"]["image"].endswith("-management")
    assert services["mongodb"]["image"].startswith("mongo:")
    assert services["minio"]["image"].startswith("minio/minio")
    assert services["prometheus"]["image"].startswith("prom/prometheus")
    plugins = (ROOT / "deploy/rabbitmq/enabled_plugins").read_text()
    assert "rabbitmq_management" in plugins and "rabbitmq_prometheus" in plugins
    assert set(services) >= APP_SERVICES


def quorum_queues_of_a_deployment() -> int:
    """Every quorum queue a deployment can declare: the work queues the services consume (with their dead-letter
    queues) and one queue per OPD of the directory (with the OPD dead-letter queue)."""
    from nameko.cli.run import import_service

    from jaklapor.reference import load_directory

    work_queues = set()
    for service in (import_service(path)[0] for path in SERVICES.values()):
        for _, method in inspect.getmembers(service):
            for entrypoint in getattr(method, "nameko_entrypoints", ()):
                queue = getattr(entrypoint, "queue", None)
                if queue is not None and (queue.queue_arguments or {}).get("x-queue-type") == "quorum":
                    work_queues.add(queue.name)
    assert len(work_queues) >= 7
    return 2 * len(work_queues) + len(load_directory()) + 1


def broker_file_handles_wanted() -> int:
    found = re.search(r"^BROKER_FILE_HANDLES=(\d+)$", (ROOT / "scripts/ensure-rabbitmq").read_text(), re.MULTILINE)
    assert found, "scripts/ensure-rabbitmq sets BROKER_FILE_HANDLES"
    return int(found.group(1))


# RabbitMQ 3.10 reserves 2 + the cluster size file handles per quorum-queue leader (3 on one node)
FILE_HANDLES_PER_QUORUM_QUEUE = 3


def test_the_local_broker_budget_covers_the_deployments_tests_run_side_by_side() -> None:
    # the tests and benchmarks keep a few deployments alive at once, each in its own vhost; 500 for connections
    assert broker_file_handles_wanted() >= 4 * FILE_HANDLES_PER_QUORUM_QUEUE * quorum_queues_of_a_deployment() + 500


def test_the_local_broker_has_the_file_handles_the_quorum_queues_reserve() -> None:
    from tests.broker_admin import rabbitmqctl

    if shutil.which("rabbitmqctl") is None:
        pytest.skip("no rabbitmqctl: the broker is not a local node")
    limit = int(rabbitmqctl("eval", "file_handle_cache:get_limit().", timeout=60).strip())
    assert limit >= broker_file_handles_wanted(), (
        f"RabbitMQ's file handle limit is {limit}: scripts/ensure-rabbitmq restarts the node with a higher ulimit -n"
    )


def test_compose_gives_rabbitmq_the_file_handles_of_its_quorum_queues(compose: dict) -> None:
    nofile = compose["services"]["rabbitmq"]["ulimits"]["nofile"]
    assert min(nofile["soft"], nofile["hard"]) >= broker_file_handles_wanted()


def test_the_alert_on_rabbitmq_file_handles_watches_that_budget() -> None:
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    rule = next(r for g in alerts["groups"] for r in g["rules"] if r.get("alert") == "RabbitMQFileHandlesLow")
    assert rule["expr"].endswith(f"< {broker_file_handles_wanted()}")


def test_each_service_runs_its_own_code_with_real_stores(compose: dict) -> None:
    known = config_variables()
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["command"] == ["jaklapor", "run", "--services", name, "--no-s3-standin"]
        env = service["environment"]
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables the config never reads: {unknown}"
        assert env["MONGO_URI"].startswith("mongodb://"), "compose must use the real MongoDB"
        assert env["AMQP_URI"].startswith("pyamqp://") and "@rabbitmq:5672" in env["AMQP_URI"]
        assert env["JAKLAPOR_MODE"] == DEPLOYMENT_MODE, f"{name} must refuse development secrets"
        port = env[HTTP_ENV[name]].rsplit(":", 1)[1]
        # `docker-compose config` normalises ports to {published, target}
        listening = {str(p["target"]) for p in service.get("ports", [])} | {str(p) for p in service.get("expose", [])}
        assert port in listening, f"{name} listens on {port} but compose exposes {listening}"
        assert set(service["depends_on"]) >= {"rabbitmq", "mongodb"}
    intake = compose["services"]["intake"]
    assert intake["environment"]["S3_ENDPOINT"] == "minio:9000"
    assert intake["depends_on"]["minio-init"] == {"condition": "service_completed_successfully"}


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


#: development tools: the image and the package carry none of them (they live in devtools/, jaklapor-devtools)
DEVELOPMENT_ONLY = ("devtools", "mongomock", "moto", "seaweedfs")
IMPORTS_DEVELOPMENT_TOOL = re.compile(r"^\s*(?:from|import)\s+(?:devtools|mongomock|moto|seaweedfs)\b", re.MULTILINE)


def test_the_image_and_the_package_carry_no_development_tool(tmp_path: Path) -> None:
    """Build the wheel from exactly what the Dockerfile copies, as its `pip install` does: no stand-in, no demo, no
    test, and nothing that pulls mongomock, moto or SeaweedFS in."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    sources = [src for line in re.findall(r"^COPY\s+(.+)$", dockerfile, re.MULTILINE) for src in line.split()[:-1]]
    assert sources and not [src for src in sources if src.startswith("--") or "devtools" in src]
    installs = re.findall(r"pip install ([^&\n]+)", dockerfile)
    assert [spec.strip() for spec in installs] == ["."], "the image installs the package alone: no extra, no devtools"

    context = tmp_path / "image"
    context.mkdir()
    for src in sources:
        path = ROOT / src
        if path.is_dir():
            shutil.copytree(path, context / src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, context / src)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path / "wheel"), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    [wheel] = (tmp_path / "wheel").glob("jaklapor-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        sources_in_wheel = {n: archive.read(n).decode() for n in names if n.endswith(".py")}
    dist_info = wheel.name.split("-py3")[0] + ".dist-info"
    assert {n.split("/")[0] for n in names} == {"jaklapor", "jaklapor_app", "services", dist_info}
    assert "jaklapor/mongo.py" in names
    assert not [n for n in names if re.search(r"mongo_standin|demo\.py$|/tests/", n)]
    # the web apps' files (the citizen app, the OPD workbench and what they share: pages, scripts, images, vendored
    # libraries with their licences) ship with intake
    static_dir = ROOT / "services" / "intake" / "static"
    app_files = {path.relative_to(ROOT).as_posix() for path in static_dir.rglob("*") if path.is_file()}
    assert {"opd", "shared"} <= {path.relative_to(static_dir).parts[0] for path in static_dir.rglob("*.js")}
    assert app_files and not app_files - set(names), sorted(app_files - set(names))
    # only the `demo` subcommand and the local mode's stores, lazily, saying what to install when they are missing
    importing = sorted(n for n, text in sources_in_wheel.items() if IMPORTS_DEVELOPMENT_TOOL.search(text))
    assert importing == ["jaklapor_app/cli.py", "jaklapor_app/local_stack.py"]
    required = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+)", metadata, re.MULTILINE)
    assert "pymongo" in required
    assert not [name for name in required if name.lower().startswith(DEVELOPMENT_ONLY)]


def test_the_demo_without_the_development_tools_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for module in ("devtools", "devtools.demo"):
        monkeypatch.setitem(sys.modules, module, None)  # as in the image: not installed
    assert cli_main(["demo"]) == 2
    said = capsys.readouterr().err
    assert "jaklapor demo is a development tool: it needs the jaklapor-devtools package" in said
    assert "`make setup` (or `pip install -e ./devtools`)" in said


def test_the_local_mode_without_the_development_tools_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from jaklapor_app.local_stack import LocalStack, LocalStackError

    for module in ("devtools", "devtools.seaweedfs", "devtools.mongo_standin"):
        monkeypatch.setitem(sys.modules, module, None)  # as in the image: not installed
    config = {"MONGO_URI": "", "JAKLAPOR_MODE": "", "LOCAL_MONGO_PORT": str(free_port())}
    with pytest.raises(LocalStackError) as refused:
        LocalStack(tmp_path).start(config)
    assert "the local mode needs the development tools" in str(refused.value)
    assert "set MONGO_URI and S3_ENDPOINT to MongoDB and MinIO" in str(refused.value)
    assert not config["MONGO_URI"]  # nothing half-started


# ---- secrets, credentials and images -------------------------------------------------------------------------------


def test_compose_refuses_to_start_without_the_generated_env(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = compose_config(empty)
    assert result.returncode != 0
    assert "Missing mandatory value" in result.stderr and "run scripts/generate-env" in result.stderr


def test_no_secret_in_compose_has_a_default() -> None:
    text = COMPOSE_FILE.read_text()
    required = set(required_in_env_example())
    used = {}
    for name, operator, default in VARIABLE.findall(text):
        used.setdefault(name, set()).add(operator)
        if operator == ":-" and re.search(r"PASSWORD|SECRET|KEY|TOKEN", name):
            assert default == "", f"{name} has a default value: {default!r}"
    for name in required:
        assert used.get(name) == {":?"}, f"{name} must be given as ${{{name}:?...}} (no default), not {used.get(name)}"
    # every variable compose insists on is one .env.example asks for, and scripts/generate-env fills
    assert {name for name, operators in used.items() if ":?" in operators} == required
    assert set(SECRET_SETTINGS) <= required


def test_each_service_gets_only_the_secrets_it_uses_as_on_kubernetes(compose: dict) -> None:
    from tests.test_kubernetes import REQUIRED_SECRETS

    credentials = {*SECRET_SETTINGS, "S3_ACCESS_KEY"}
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        assert set(env) & credentials == REQUIRED_SECRETS[name] & credentials, name
    assert "TOKEN_SECRET" in compose["services"]["intake"]["environment"]


def test_services_use_their_own_accounts_not_the_stores_root(compose: dict, generated_env: Path) -> None:
    values = read_env(generated_env)
    services = compose["services"]
    # RabbitMQ: the deployment's user, from .env, is the one the broker creates and the services log in as
    rabbitmq = services["rabbitmq"]["environment"]
    assert (rabbitmq["RABBITMQ_DEFAULT_USER"], rabbitmq["RABBITMQ_DEFAULT_PASS"]) == (
        values["RABBITMQ_USER"],
        values["RABBITMQ_PASSWORD"],
    )
    amqp = f"pyamqp://{values['RABBITMQ_USER']}:{values['RABBITMQ_PASSWORD']}@rabbitmq:5672/"
    # MongoDB: authentication on (root user set), each service logs in as a user of its own the init script creates
    mongodb = services["mongodb"]
    assert mongodb["environment"]["MONGO_INITDB_ROOT_USERNAME"] == values["MONGO_ROOT_USER"]
    init_script = mounts(mongodb)["/docker-entrypoint-initdb.d/create-service-users.js"]
    script = Path(init_script).read_text()
    assert "process.env[`MONGO_${name}_USER`]" in script and "process.env[`MONGO_${name}_PASSWORD`]" in script
    # readWrite on its own service's database (MONGO_DB_PREFIX "jaklapor" + service), nothing else
    assert 'roles: [{ role: "readWrite", db: `jaklapor_${service}` }]' in script and script.count("role:") == 1
    assert set(re.search(r"const services = \[(.*)\]", script).group(1).replace('"', "").split(", ")) == APP_SERVICES
    users = set()
    for name in APP_SERVICES:
        user, password = values[f"MONGO_{name.upper()}_USER"], values[f"MONGO_{name.upper()}_PASSWORD"]
        assert mongodb["environment"][f"MONGO_{name.upper()}_USER"] == user != values["MONGO_ROOT_USER"]
        assert mongodb["environment"][f"MONGO_{name.upper()}_PASSWORD"] == password
        users.add(user)
        env = services[name]["environment"]
        assert env["AMQP_URI"] == amqp, name
        assert env["MONGO_URI"] == f"mongodb://{user}:{password}@mongodb:27017/?authSource=admin", name
        assert not any(values["MINIO_ROOT_PASSWORD"] == v or values["MONGO_ROOT_PASSWORD"] in v for v in env.values())
        # no other service's MongoDB password
        others = {values[f"MONGO_{other.upper()}_PASSWORD"] for other in APP_SERVICES - {name}}
        assert not any(password in v for v in env.values() for password in others), name
    assert len(users) == len(APP_SERVICES), "each service has a MongoDB user of its own"
    # MinIO: intake's own user, created by minio-init with a policy on the photo bucket's objects only
    intake = services["intake"]["environment"]
    assert intake["S3_ACCESS_KEY"] == values["S3_ACCESS_KEY"] != values["MINIO_ROOT_USER"]
    init = services["minio-init"]
    assert init["environment"]["S3_ACCESS_KEY"] == values["S3_ACCESS_KEY"]
    assert init["environment"]["S3_BUCKET"] == intake["S3_BUCKET"]
    commands = init["command"][0]
    policy_file = mounts(init)["/etc/jaklapor/photos-policy.json"]
    assert "mc admin policy create jaklapor jaklapor-photos /etc/jaklapor/photos-policy.json" in commands
    assert 'mc admin user add jaklapor "$$S3_ACCESS_KEY" "$$S3_SECRET_KEY"' in commands
    assert 'mc admin policy attach jaklapor jaklapor-photos --user "$$S3_ACCESS_KEY"' in commands
    policy = json.loads(Path(policy_file).read_text())
    bucket = f"arn:aws:s3:::{intake['S3_BUCKET']}"
    granted = {(action, resource) for s in policy["Statement"] for action in s["Action"] for resource in s["Resource"]}
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    assert {resource for _action, resource in granted} == {bucket, f"{bucket}/*"}
    assert {action for action, _resource in granted} == {
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
    }


def test_every_image_is_pinned_to_a_release(compose: dict) -> None:
    for name, service in compose["services"].items():
        if "build" in service:
            continue  # built here from the Dockerfile, whose base image is checked below
        image, _, tag = service["image"].rpartition(":")
        assert image and PINNED_TAG.match(tag), f"{name}: {service['image']} is not pinned to a release"
    (base,) = re.findall(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert PINNED_TAG.match(base.rpartition(":")[2]), base


def test_generate_env_writes_every_secret_fresh_and_never_overwrites(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    first, second = tmp_path / "first.env", tmp_path / "second.env"
    assert generate_env(first).returncode == 0 and generate_env(second).returncode == 0
    values, others = read_env(first), read_env(second)
    assert sorted(values) == sorted(required_in_env_example())
    assert all(values.values())
    assert len(set(values.values())) == len(values), "two variables got the same value"
    assert not set(values.values()) & set(others.values()), "two runs gave a same value: not random"
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    Fernet(values["CONTACT_KEY"].encode())  # a valid key, or this raises
    assert not development_secrets_in(values, SECRET_SETTINGS)
    for name, value in values.items():
        assert re.fullmatch(r"[A-Za-z0-9-]+", value) or name == "CONTACT_KEY", f"{name}: unsafe in a URI: {value}"
        if name.endswith(("USER", "ACCESS_KEY")):
            assert 3 <= len(value) <= 20, name  # MinIO's access key limits
        else:
            assert 32 <= len(value) <= 44, name  # MinIO's secret keys are at most 40 (CONTACT_KEY: 44)

    before = first.read_text()
    again = generate_env(first)
    assert again.returncode == 1 and "not overwritten" in again.stderr
    assert first.read_text() == before


def test_the_secret_guard_knows_every_development_value() -> None:
    known = development_secrets()
    assert set(known) == set(SECRET_SETTINGS), "each secret setting has its development default in config.yaml"
    assert known["OPD_KEY_SECRET"] == "dev-only-opd-key-secret-change-me"
    # the values the old compose file shipped and the Kubernetes template's placeholders are refused as well
    template = yaml.safe_load((ROOT / "deploy/kubernetes/secret.example.yaml").read_text())["stringData"]
    guarded = [key for key in SECRET_SETTINGS if key in template]
    assert development_secrets_in(template, tuple(guarded)) == guarded
    assert development_secrets_in({**known, "OPD_KEY_SECRET": ""}, SECRET_SETTINGS) == list(SECRET_SETTINGS)


def test_the_mode_is_local_only_when_asked_or_with_no_store_configured() -> None:
    assert run_mode({"MONGO_URI": ""}) == LOCAL_MODE  # `make run`: it starts the local stores itself
    assert run_mode({}) == LOCAL_MODE
    assert run_mode({"MONGO_URI": "mongodb://mongodb:27017/"}) == DEPLOYMENT_MODE
    assert run_mode({"MONGO_URI": "mongodb://127.0.0.1:27017/", "JAKLAPOR_MODE": "local"}) == LOCAL_MODE
    assert run_mode({"MONGO_URI": "", "JAKLAPOR_MODE": "deployment"}) == DEPLOYMENT_MODE
    with pytest.raises(InsecureConfiguration, match="JAKLAPOR_MODE='prod'"):
        run_mode({"JAKLAPOR_MODE": "prod"})


def guard_setup(guard: SecretGuard, config: dict) -> None:
    guard.container = SimpleNamespace(config=config, service_name="notify")
    guard.setup()


def test_notify_guards_the_relay_secret_only_when_it_signs_webhooks(caplog: pytest.LogCaptureFixture) -> None:
    guard = SecretGuard("CONTACT_KEY", used_with={"CITIZEN_WEBHOOK_SECRET": "CITIZEN_WEBHOOK_URL"})
    real = {"CONTACT_KEY": "a-real-key-nobody-knows", "JAKLAPOR_MODE": "deployment"}
    guard_setup(guard, {**real, "CITIZEN_WEBHOOK_SECRET": development_secrets()["CITIZEN_WEBHOOK_SECRET"]})
    with pytest.raises(InsecureConfiguration, match="notify refuses to start: CITIZEN_WEBHOOK_SECRET is empty"):
        guard_setup(guard, {**real, "CITIZEN_WEBHOOK_URL": "https://relay.example.org/hook"})
    assert "notify refuses to start" in caplog.text


#: the secrets of the services themselves; S3_SECRET_KEY is the S3 server's (the tests' SeaweedFS has its own)
APP_SECRETS = tuple(key for key in SECRET_SETTINGS if key != "S3_SECRET_KEY")


def intake_process(vhost: Vhost, s3: LocalS3Server, store: str, port: int, **settings: str) -> subprocess.Popen:
    """`jaklapor run --services intake` on the store at `store` with only the given secrets (none from the shell)."""
    ports = {"intake": port, "notify": free_port(), "stats": free_port(), "routing": free_port()}
    env = service_env(vhost.amqp_uri, store, s3, ports, f"http://127.0.0.1:{port}")
    # the S3 key stays: it is the test server's own, not a development value
    for key in (*APP_SECRETS, "JAKLAPOR_MODE", "JAKLAPOR_CONFIG"):
        env.pop(key, None)
    env.update(settings)
    return subprocess.Popen(
        [sys.executable, "-m", "jaklapor_app.cli", "run", "--no-s3-standin", "--services", "intake"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen) -> str:
    """SIGTERM, as docker and Kubernetes stop a container; its output. Never leaves the process behind."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=120)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
        raise AssertionError(f"intake did not stop within 120 s of SIGTERM: {output[-4000:]}") from None


def healthy_or_exited(process: subprocess.Popen, port: int) -> bool:
    if process.poll() is not None:
        return True
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def own_vhost() -> Iterator[Vhost]:
    created = Vhost.create()
    yield created
    created.delete()


@pytest.fixture(scope="module")
def posing_store() -> Iterator[MongoServerStandIn]:
    """The stand-in without its marker: what a MongoDB looks like to the services (no MongoDB can run here)."""
    server = MongoServerStandIn(unmarked=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def standin_store() -> Iterator[MongoServerStandIn]:
    server = MongoServerStandIn()
    server.start()
    yield server
    server.stop()


@pytest.mark.e2e
def test_intake_with_development_secrets_starts_only_in_local_mode(
    own_vhost: Vhost, s3: LocalS3Server, posing_store: MongoServerStandIn, generated_env: Path, tmp_path: Path
) -> None:
    # the S3 server's key is the test's own, not a development value; the numbering mark stays in the test's dir
    common = {"LOCAL_DATA_DIR": str(tmp_path)}
    vhost = own_vhost
    refused = intake_process(vhost, s3, posing_store.uri, free_port(), JAKLAPOR_MODE="deployment", **common)
    output, _ = refused.communicate(timeout=120)  # generous: starting Python with nameko on a loaded 2-core machine
    assert refused.returncode != 0
    assert (
        "intake refuses to start: OPD_KEY_SECRET, TOKEN_SECRET, CONTACT_KEY are empty, a published development value "
        "or a placeholder"
    ) in output
    assert '"level": "ERROR"' in next(line for line in output.splitlines() if "refuses to start" in line)

    real = {key: value for key, value in read_env(generated_env).items() if key in APP_SECRETS}
    for mode, secrets in ((LOCAL_MODE, {}), (DEPLOYMENT_MODE, real)):
        port = free_port()
        started = intake_process(vhost, s3, posing_store.uri, port, **{**common, "JAKLAPOR_MODE": mode, **secrets})
        try:
            wait_for(lambda p=started, n=port: healthy_or_exited(p, n), 120, message=f"intake healthy in {mode} mode")
            running = started.poll() is None
        finally:
            output = stop(started)
        assert running, f"intake did not start in {mode} mode: {output[-4000:]}"
        assert "refuses to start" not in output


@pytest.mark.e2e
def test_intake_refuses_the_development_store_outside_the_local_mode(
    own_vhost: Vhost, s3: LocalS3Server, standin_store: MongoServerStandIn, generated_env: Path, tmp_path: Path
) -> None:
    """Real secrets, but MONGO_URI points at the stand-in (say, a `make run` store left reachable): deployment refuses
    it with an ERROR naming it; the local mode runs on it with a warning."""
    real = {key: value for key, value in read_env(generated_env).items() if key in APP_SECRETS}
    common = {"LOCAL_DATA_DIR": str(tmp_path), **real}
    refused = intake_process(own_vhost, s3, standin_store.uri, free_port(), JAKLAPOR_MODE="deployment", **common)
    output, _ = refused.communicate(timeout=120)
    assert refused.returncode != 0
    said = next(line for line in output.splitlines() if "refuses to start" in line)
    assert f"the store at 127.0.0.1:{standin_store.port} (MONGO_URI) is jaklapor's development stand-in" in said
    assert '"level": "ERROR"' in said

    port = free_port()
    started = intake_process(own_vhost, s3, standin_store.uri, port, JAKLAPOR_MODE="local", **common)
    try:
        wait_for(lambda: healthy_or_exited(started, port), 120, message="intake healthy in local mode")
        running = started.poll() is None
    finally:
        output = stop(started)
    assert running, f"intake did not start in local mode: {output[-4000:]}"
    warning = next(line for line in output.splitlines() if "development stand-in" in line)
    assert '"level": "WARNING"' in warning and "local mode only" in warning


class ReportsForTest(MongoDatabase):
    database = "intake"

    def make_repository(self, db: Any) -> Any:
        return SimpleNamespace(db=db)


def store_setup(config: dict, service: str = "intake") -> ReportsForTest:
    """A store set up as a container does it: its shared connection first, then the store on it."""
    container = SimpleNamespace(config=config, service_name=service)
    store = ReportsForTest()
    store.container = container
    store.connection = MongoConnection()
    store.connection.container = container
    store.connection.setup()
    store.setup()
    return store


def test_a_service_without_a_store_says_how_to_get_one(caplog: pytest.LogCaptureFixture) -> None:
    """The image's services run without `make run`'s local stores: an unset MONGO_URI stops them with the fix."""
    for unset in ({}, {"MONGO_URI": ""}, {"MONGO_URI": "", "JAKLAPOR_MODE": "local"}):
        with pytest.raises(StoreNotConfigured) as raised:
            store_setup(unset)
        assert str(raised.value) == (
            "MONGO_URI is not set: point it at MongoDB, or use `make run` which starts the local store"
        )
    with pytest.raises(StoreNotConfigured, match=r"mongodb:// or mongodb\+srv:// \(got 'mongomock'\)"):
        store_setup({"MONGO_URI": "mongomock://localhost"})
    assert [r.levelname for r in caplog.records if "MONGO_URI is not set" in r.getMessage()] == ["ERROR"] * 3


@pytest.mark.parametrize("marked", [True, False])
def test_the_store_guard_tells_the_stand_in_from_mongodb(caplog: pytest.LogCaptureFixture, marked: bool) -> None:
    server = MongoStandIn("127.0.0.1", 0, marked=marked)
    server.start()
    try:
        for mode in (DEPLOYMENT_MODE, LOCAL_MODE):
            config = {"MONGO_URI": server.uri, "JAKLAPOR_MODE": mode}
            if marked and mode == DEPLOYMENT_MODE:
                with pytest.raises(InsecureConfiguration, match=r"stats refuses to start: the store at 127\.0\.0\.1"):
                    store_setup(config, "stats")
            else:
                store_setup(config, "stats").connection.stop()
    finally:
        server.stop()
    refusals = [r for r in caplog.records if "refuses to start" in r.getMessage()]
    assert [r.levelname for r in refusals] == (["ERROR"] if marked else [])
