"""deploy/kubernetes is checked without a cluster: every manifest parses and has a known kind; with kubernetes-validate
installed, each built resource is validated strictly against the Kubernetes OpenAPI schemas it ships (offline); with
kubectl installed, `kubectl kustomize` builds both kustomizations. The rest is checked against the code itself: each
Deployment runs what docker-compose.yml runs, sets only variables jaklapor/config.yaml reads, takes its credentials
from the Secret, probes /health on the port it listens on; Services, PodDisruptionBudgets, autoscalers, the
NetworkPolicies and the Ingress reach the right pods and ports, and the Ingress sends every public route the services
declare to that service (and /health, /metrics nowhere); the PrometheusRule is the one generated from alerts.yml."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from jaklapor.config import DEFAULT_CONFIG_PATH
from jaklapor.web import DEFAULT_CONNECTIONS_PER_ADDRESS, connection_limits
from jaklapor_app.system import SERVICES

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy/kubernetes"
MONITORING = K8S / "monitoring"
NAMESPACE = "jaklapor"
SECRET = "jaklapor-secrets"
CONFIG_MAP = "jaklapor-config"
HTTP_ENV = {"intake": "INTAKE_HTTP", "routing": "ROUTING_HTTP", "notify": "NOTIFY_HTTP", "stats": "STATS_HTTP"}
# credentials each service needs, from the Secret and never optional (the config's development defaults must never
# be used in production); MONGO_URI, SMTP_USER and SMTP_PASSWORD may come from the Secret, optionally
REQUIRED_SECRETS = {
    "intake": {"AMQP_URI", "S3_ACCESS_KEY", "S3_SECRET_KEY", "OPD_KEY_SECRET", "TOKEN_SECRET", "CONTACT_KEY"},
    "routing": {"AMQP_URI"},
    "notify": {"AMQP_URI", "CONTACT_KEY", "CITIZEN_WEBHOOK_SECRET"},
    "stats": {"AMQP_URI"},
}
OPTIONAL_SECRETS = {"MONGO_URI", "SMTP_USER", "SMTP_PASSWORD", "OPEN311_API_KEYS"}
# each service's MONGO_URI comes from a Secret key of its own: a MongoDB user per service, limited to its database
MONGO_URI_KEYS = {service: f"{service.upper()}_MONGO_URI" for service in SERVICES}
# replicas (a fixed count, or the autoscaler's minimum)
REPLICAS = {"intake": 3, "routing": 2, "notify": 2, "stats": 2}
AUTOSCALED = {"intake", "routing"}
PUBLIC = {"intake", "notify", "stats"}
KNOWN_KINDS = {
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
# the oldest Kubernetes these manifests are written for (PDB unhealthyPodEvictionPolicy, matchLabelKeys) and the
# newest kubernetes-validate knows
SCHEMA_VERSIONS = ("1.29.0", None)


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifest_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")


def listed(directory: Path) -> list[str]:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"]


@pytest.fixture(scope="module")
def resources() -> list[dict[str, Any]]:
    """Every resource kustomization.yaml lists (the base and the monitoring add-on), as written."""
    found = []
    for directory in (K8S, MONITORING):
        for name in listed(directory):
            found += documents(directory / name)
    return found


def of_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def config_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+):", DEFAULT_CONFIG_PATH.read_text()))


def raw_secret_variables() -> set[str]:
    """Variables config.yaml reads as secrets (`!raw_env_var`)."""
    return set(re.findall(r"!raw_env_var \$\{([A-Z0-9_]+):", DEFAULT_CONFIG_PATH.read_text()))


def config_defaults() -> dict[str, str]:
    return dict(re.findall(r"\$\{([A-Z0-9_]+):([^}]*)\}", DEFAULT_CONFIG_PATH.read_text()))


def secret_template() -> dict[str, Any]:
    (secret,) = documents(K8S / "secret.example.yaml")
    return secret


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions with In / NotIn / Exists) against a set of labels."""
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
    return True


def port_of(deployment: dict[str, Any], port: int | str) -> int:
    """A container port of the Deployment by number or name."""
    for declared in container(deployment).get("ports", []):
        if port in (declared["containerPort"], declared.get("name")):
            return declared["containerPort"]
    raise AssertionError(f"{deployment['metadata']['name']} has no container port {port!r}")


def http_port(deployment: dict[str, Any], name: str) -> int:
    env = {e["name"]: e.get("value") for e in container(deployment)["env"]}
    return int(env[HTTP_ENV[name]].rsplit(":", 1)[1])


# ---- the files -------------------------------------------------------------------------------------------------------


def test_every_manifest_parses_and_has_a_known_kind() -> None:
    files = manifest_files(K8S) + manifest_files(MONITORING)
    assert files
    for path in files:
        docs = documents(path)
        assert docs, f"{path.name} is empty"
        for doc in docs:
            assert (doc.get("apiVersion"), doc.get("kind")) in KNOWN_KINDS, f"{path.name}: {doc.get('kind')}"
            assert doc["metadata"]["name"], path.name
            # kustomization.yaml sets the namespace; only the (unlisted) Secret template names it itself
            assert doc["metadata"].get("namespace") in (None, NAMESPACE), path.name


def test_kustomizations_list_every_manifest_and_nothing_else() -> None:
    for directory in (K8S, MONITORING):
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        assert kustomization["namespace"] == NAMESPACE
        names = set(listed(directory))
        assert all((directory / n).is_file() for n in names), names
        expected = {p.name for p in manifest_files(directory)} - {"secret.example.yaml"}
        assert names == expected, f"{directory.relative_to(ROOT)}: listed {sorted(names)}, present {sorted(expected)}"
    assert "secret.example.yaml" not in listed(K8S), "the Secret template must never be applied"
    (image,) = yaml.safe_load((K8S / "kustomization.yaml").read_text())["images"]
    assert image["name"] == "jaklapor"


def test_the_namespace_is_declared(resources: list[dict[str, Any]]) -> None:
    assert set(of_kind(resources, "Namespace")) == {NAMESPACE}


# ---- Deployments against the code -----------------------------------------------------------------------------------


def test_one_deployment_per_service_running_what_compose_runs(resources: list[dict[str, Any]]) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    deployments = of_kind(resources, "Deployment")
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        spec = container(deployment)
        # compose's `command` replaces the image's CMD: that is `args` in Kubernetes
        assert spec["args"] == compose[name]["command"] == ["jaklapor", "run", "--services", name, "--no-s3-standin"]
        assert "command" not in spec
        assert spec["image"] == compose[name]["image"] == "jaklapor:latest"
        env = {e["name"]: e.get("value") for e in spec["env"]}
        assert env[HTTP_ENV[name]] == compose[name]["environment"][HTTP_ENV[name]], name


def test_environment_is_what_the_config_reads(resources: list[dict[str, Any]]) -> None:
    known = config_variables()
    config_map = of_kind(resources, "ConfigMap")[CONFIG_MAP]["data"]
    assert set(config_map) <= known, f"the ConfigMap sets variables the config never reads: {set(config_map) - known}"
    assert all(isinstance(v, str) for v in config_map.values()), "ConfigMap values must be strings"
    template = secret_template()
    assert set(template["stringData"]) <= known | set(MONGO_URI_KEYS.values())
    for name, deployment in of_kind(resources, "Deployment").items():
        spec = container(deployment)
        assert spec["envFrom"] == [{"configMapRef": {"name": CONFIG_MAP}}], name
        names = [e["name"] for e in spec["env"]]
        assert len(names) == len(set(names)), f"{name} sets a variable twice"
        unknown = set(names) - known
        assert not unknown, f"{name} sets variables the config never reads: {unknown}"


def test_credentials_come_only_from_the_secret(resources: list[dict[str, Any]]) -> None:
    config_map = of_kind(resources, "ConfigMap")[CONFIG_MAP]["data"]
    secret_vars = raw_secret_variables() | {"AMQP_URI", "S3_ACCESS_KEY"}
    assert not set(config_map) & secret_vars, "credentials in the ConfigMap"
    assert "@" not in config_map["MONGO_URI"], "no credentials in the ConfigMap's MONGO_URI"
    template = secret_template()["stringData"]
    for name, deployment in of_kind(resources, "Deployment").items():
        from_secret = {}
        for entry in container(deployment)["env"]:
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref is None:
                assert entry["name"] not in secret_vars, f"{name}: {entry['name']} is a credential, set in plain text"
                continue
            key = MONGO_URI_KEYS[name] if entry["name"] == "MONGO_URI" else entry["name"]
            assert ref["name"] == SECRET and ref["key"] == key, f"{name}: {entry}"
            assert ref["key"] in template, f"{name} reads {ref['key']}, which secret.example.yaml does not have"
            from_secret[entry["name"]] = ref.get("optional", False)
        required = {k for k, optional in from_secret.items() if not optional}
        assert required == REQUIRED_SECRETS[name], name
        assert set(from_secret) - required <= OPTIONAL_SECRETS, name
    # every credential the config reads, some service takes from the Secret
    taken = set().union(*REQUIRED_SECRETS.values()) | OPTIONAL_SECRETS
    assert secret_vars <= taken, secret_vars - taken


def test_the_secret_template_holds_placeholders_only() -> None:
    secret = secret_template()
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == SECRET
    defaults = config_defaults()
    for key, value in secret["stringData"].items():
        if key in OPTIONAL_SECRETS and value == "":
            continue
        assert value != defaults.get(key), f"{key} is the development default"
        assert "dev-only" not in value, key
        if key in raw_secret_variables() | {"S3_ACCESS_KEY"}:
            assert value == "CHANGE-ME", f"{key} must be a placeholder"
    for key in ("AMQP_URI", *MONGO_URI_KEYS.values()):
        assert "CHANGE-ME@" in secret["stringData"][key], key


def test_each_service_has_a_mongodb_user_of_its_own() -> None:
    template = secret_template()["stringData"]
    users = {service: urlsplit(template[key]).username for service, key in MONGO_URI_KEYS.items()}
    assert len(set(users.values())) == len(SERVICES), users
    assert all(service in user for service, user in users.items()), users


def test_production_settings(resources: list[dict[str, Any]]) -> None:
    config_map = of_kind(resources, "ConfigMap")[CONFIG_MAP]["data"]
    mongo = urlsplit(config_map["MONGO_URI"])
    assert mongo.scheme == "mongodb" and len(mongo.netloc.split(",")) == 3, "a three-member replica set"
    assert "replicaSet=rs0" in mongo.query and "w=majority" in mongo.query
    for key in MONGO_URI_KEYS.values():
        assert "w=majority" in secret_template()["stringData"][key], key
    assert config_map["JAKLAPOR_MODE"] == "deployment", "development secrets must stop the services"
    assert config_map["TRUSTED_PROXY_HOPS"] == "1", "one proxy (the ingress controller) in front of intake"
    assert config_map["MAX_REQUEST_BYTES"] == config_defaults()["MAX_REQUEST_BYTES"]
    assert config_map["S3_ENDPOINT"].split(":")[0] == "minio"
    assert config_map["PUBLIC_URL"].startswith("https://") and config_map["NOTIFY_PUBLIC_URL"].startswith("https://")


def test_probes_hit_health_on_the_port_the_service_listens_on(resources: list[dict[str, Any]]) -> None:
    for name, deployment in of_kind(resources, "Deployment").items():
        spec = container(deployment)
        port = http_port(deployment, name)
        assert port_of(deployment, "http") == port
        probes = {kind: spec[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
        for kind, probe in probes.items():
            assert probe["httpGet"]["path"] == "/health", f"{name} {kind}"
            assert port_of(deployment, probe["httpGet"]["port"]) == port, f"{name} {kind}"

        def tolerated(probe: dict[str, Any]) -> int:
            return probe["periodSeconds"] * probe["failureThreshold"]

        # a broker blip takes a pod out of the Service; it takes much longer to get it restarted
        assert tolerated(probes["livenessProbe"]) >= 5 * tolerated(probes["readinessProbe"]), name
        assert probes["livenessProbe"]["timeoutSeconds"] >= probes["readinessProbe"]["timeoutSeconds"], name


def test_pods_are_hardened_and_sized(resources: list[dict[str, Any]]) -> None:
    uid = int(re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text()).group(1))
    for name, deployment in of_kind(resources, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        spec = container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        assert spec["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }, name
        # the one writable place: /tmp, on an emptyDir
        mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name
        assert all(m.get("readOnly") for m in spec["volumeMounts"] if m["mountPath"] != "/tmp"), name
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(spec["resources"][kind]), f"{name} {kind}"
        # nameko drains in-flight work on SIGTERM: give it time after the preStop pause
        assert pod["terminationGracePeriodSeconds"] >= 30, name
        assert spec["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep", name
        anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        term = anti[0]["podAffinityTerm"]
        assert term["topologyKey"] == "kubernetes.io/hostname", name
        assert matches(term["labelSelector"], deployment["spec"]["template"]["metadata"]["labels"]), name


def test_replicas_disruption_budgets_and_autoscalers(resources: list[dict[str, Any]]) -> None:
    deployments = of_kind(resources, "Deployment")
    autoscalers = of_kind(resources, "HorizontalPodAutoscaler")
    budgets = of_kind(resources, "PodDisruptionBudget")
    assert set(autoscalers) == AUTOSCALED
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert matches(deployment["spec"]["selector"], labels), name
        if name in AUTOSCALED:
            # the autoscaler owns the count; a `replicas` field would be reset by every apply
            assert "replicas" not in deployment["spec"], name
            hpa = autoscalers[name]["spec"]
            assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
            assert hpa["minReplicas"] == REPLICAS[name] < hpa["maxReplicas"]
            (metric,) = hpa["metrics"]
            assert metric["resource"]["name"] == "cpu", name
        else:
            assert deployment["spec"]["replicas"] == REPLICAS[name], name
        budget = [b for b in budgets.values() if matches(b["spec"]["selector"], labels)]
        assert len(budget) == 1, f"{name}: {len(budget)} PodDisruptionBudgets"
        assert budget[0]["spec"]["maxUnavailable"] == 1, name
        # no other Deployment's pods are caught by this one's selector
        others = [d for d in deployments.values() if d is not deployment]
        assert not any(
            matches(deployment["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"]) for d in others
        )


# ---- Services, Ingress, NetworkPolicies ---------------------------------------------------------------------------


def test_services_select_their_deployment_and_port(resources: list[dict[str, Any]]) -> None:
    deployments = of_kind(resources, "Deployment")
    services = of_kind(resources, "Service")
    assert set(services) == set(deployments)
    for name, service in services.items():
        deployment = deployments[name]
        selector = {"matchLabels": service["spec"]["selector"]}
        selected = [
            d for d, dep in deployments.items() if matches(selector, dep["spec"]["template"]["metadata"]["labels"])
        ]
        assert selected == [name], f"Service {name} selects the pods of {selected}"
        (port,) = service["spec"]["ports"]
        assert port["name"] == "http" and port["port"] == http_port(deployment, name), name
        assert port_of(deployment, port["targetPort"]) == http_port(deployment, name), name
        assert service["spec"]["type"] == "ClusterIP", f"{name}: public traffic comes through the Ingress"


def ingress_locations(resources: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(host, path, service) of every Ingress path, checking that each backend is a Service port."""
    services = of_kind(resources, "Service")
    locations = []
    for ingress in of_kind(resources, "Ingress").values():
        annotations = ingress["metadata"]["annotations"]
        # ingress-nginx turns on regex matching for every path of a host once one Ingress of it asks for it
        assert annotations["nginx.ingress.kubernetes.io/use-regex"] == "true"
        assert ingress["spec"]["ingressClassName"] == "nginx"
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["pathType"] == "ImplementationSpecific", path
                backend = path["backend"]["service"]
                service = services[backend["name"]]
                assert backend["port"].get("name", backend["port"].get("number")) in {
                    p.get("name") for p in service["spec"]["ports"]
                } | {p["port"] for p in service["spec"]["ports"]}, backend
                locations.append((rule["host"], path["path"], backend["name"]))
    return locations


def sample_url(route: str) -> str:
    """A URL the route matches: `<name>` placeholders replaced by a plausible segment."""
    return re.sub(r"<[^>]+>", "Xy_9-aBc", route)


def declared_routes() -> Iterator[tuple[str, str, str]]:
    """(service, method, route) of every HTTP entrypoint the services declare."""
    from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

    from jaklapor.web import ApiEndpoint

    for name, target in SERVICES.items():
        module, cls = target.split(":")
        service_class = getattr(import_module(module), cls)
        for attribute in dir(service_class):
            for entrypoint in getattr(getattr(service_class, attribute), ENTRYPOINT_EXTENSIONS_ATTR, ()):
                if isinstance(entrypoint, ApiEndpoint):
                    yield name, entrypoint.method, entrypoint.url


#: routes a service declares for its own port that the public host gives to another, with the reason
NOT_ON_THE_PUBLIC_HOST = {("stats", "/"): "the public / is the citizen app; the dashboard is /dashboard"}


def routed_to(locations: list[tuple[str, str, str]], host: str, url: str) -> list[str]:
    """The services whose location matches `url` as ingress-nginx writes it: `location ~* "^<path>"`."""
    return [service for h, path, service in locations if h == host and re.match("^" + path, url, re.IGNORECASE)]


def test_ingress_sends_every_public_route_to_its_service(resources: list[dict[str, Any]]) -> None:
    locations = ingress_locations(resources)
    hosts = {host for host, _, _ in locations}
    assert len(hosts) == 1, "one public host (see ingress.yaml for the alternative)"
    (host,) = hosts
    config_map = of_kind(resources, "ConfigMap")[CONFIG_MAP]["data"]
    assert urlsplit(config_map["PUBLIC_URL"]).hostname == host
    assert urlsplit(config_map["NOTIFY_PUBLIC_URL"]).hostname == host
    assert {service for _, _, service in locations} == PUBLIC, "routing has no public API"
    routes = list(declared_routes())
    assert routes
    for service, method, route in routes:
        url = sample_url(route)
        found = routed_to(locations, host, url)
        if route in ("/health", "/metrics"):
            assert found == [], f"{service} {route} must not be public"
        elif (service, route) in NOT_ON_THE_PUBLIC_HOST:
            assert found != [service], f"{service} {route}: {NOT_ON_THE_PUBLIC_HOST[service, route]}"
        else:
            # exactly one location matches: the order nginx tries them in cannot matter
            assert found == [service], f"{method} {route} ({service}) goes to {found}"
    # the two routes that share a prefix, spelled out
    assert routed_to(locations, host, "/api/v1/reports/tok3n/stream") == ["notify"]
    assert routed_to(locations, host, "/api/v1/reports/tok3n") == ["intake"]
    assert routed_to(locations, host, "/api/v1/reports") == ["intake"]
    for internal in ("/metrics", "/health", "/health/", "/api/v1/reports/a/b/c", "/api/v1/opd/"):
        assert routed_to(locations, host, internal) == [], internal


def test_ingress_limits_match_the_application(resources: list[dict[str, Any]]) -> None:
    ingresses = of_kind(resources, "Ingress")
    body = ingresses["intake"]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", body).groups()
    limit = int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    assert limit == int(of_kind(resources, "ConfigMap")[CONFIG_MAP]["data"]["MAX_REQUEST_BYTES"])
    # behind the ingress the services see only its pods: the ingress caps connections per citizen, intake does not
    connections = ingresses["intake"]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-connections"]
    assert int(connections) == DEFAULT_CONNECTIONS_PER_ADDRESS
    assert connection_limits(of_kind(resources, "ConfigMap")[CONFIG_MAP]["data"]).per_address == 0
    sse = ingresses["notify"]["metadata"]["annotations"]
    assert sse["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(sse["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
    assert int(sse["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 600
    for ingress in ingresses.values():
        (tls,) = ingress["spec"]["tls"]
        assert tls["hosts"] == [rule["host"] for rule in ingress["spec"]["rules"]]


def test_network_policies_let_the_ingress_and_prometheus_in(resources: list[dict[str, Any]]) -> None:
    policies = list(of_kind(resources, "NetworkPolicy").values())
    deployments = of_kind(resources, "Deployment")

    def allowed_from(namespace: str, name: str) -> bool:
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        for policy in policies:
            if not matches(policy["spec"]["podSelector"], labels):
                continue
            for rule in policy["spec"]["ingress"]:
                peers = [p["namespaceSelector"]["matchLabels"] for p in rule["from"]]
                ports = [port_of(deployments[name], p["port"]) for p in rule["ports"]]
                if {"kubernetes.io/metadata.name": namespace} in peers and http_port(deployments[name], name) in ports:
                    return True
        return False

    for name in deployments:
        assert allowed_from("monitoring", name), f"Prometheus cannot scrape {name}"
        assert allowed_from("ingress-nginx", name) == (name in PUBLIC), name


# ---- monitoring ---------------------------------------------------------------------------------------------------


def test_service_monitors_give_the_labels_the_alerts_use(resources: list[dict[str, Any]]) -> None:
    monitors = of_kind(resources, "ServiceMonitor")
    services = of_kind(resources, "Service")
    app = monitors["jaklapor"]["spec"]
    selected = {name for name, s in services.items() if matches(app["selector"], s["metadata"]["labels"])}
    assert selected == set(SERVICES)
    # job="jaklapor" as in deploy/prometheus/prometheus.yml: the value of the label jobLabel names
    assert {services[n]["metadata"]["labels"][app["jobLabel"]] for n in selected} == {"jaklapor"}
    (endpoint,) = app["endpoints"]
    assert endpoint["path"] == "/metrics" and all(
        endpoint["port"] in {p["name"] for p in services[n]["spec"]["ports"]} for n in selected
    )
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    queues_job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "rabbitmq-queues")
    jobs = {}
    for endpoint in monitors["jaklapor-rabbitmq"]["spec"]["endpoints"]:
        (relabel,) = endpoint["relabelings"]
        assert relabel["targetLabel"] == "job"
        jobs[relabel["replacement"]] = endpoint
    assert set(jobs) == {"rabbitmq", "rabbitmq-queues"}
    assert jobs["rabbitmq-queues"]["path"] == queues_job["metrics_path"]
    assert jobs["rabbitmq-queues"]["params"] == queues_job["params"]
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    used = set(re.findall(r'job="([^"]+)"', yaml.safe_dump(rules)))
    assert used <= {"jaklapor", "rabbitmq", "rabbitmq-queues"}


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_prometheusrule", MONITORING / "make_prometheusrule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prometheus_rule_is_generated_from_alerts_yml_and_up_to_date() -> None:
    generator = load_generator()
    assert (MONITORING / "prometheusrule.yaml").read_text() == generator.render(), (
        "deploy/kubernetes/monitoring/prometheusrule.yaml is out of date: "
        "run python deploy/kubernetes/monitoring/make_prometheusrule.py"
    )
    assert generator.main(["--check"]) == 0
    (rule,) = documents(MONITORING / "prometheusrule.yaml")
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
    names = {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]} - {None}
    assert {"ServiceDown", "OutboxBacklog", "DeadLetterQueueNotEmpty"} <= names


def test_prometheus_rule_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (scripts/install-system-deps installs it)")
    (rule,) = documents(MONITORING / "prometheusrule.yaml")
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- tools, when present ------------------------------------------------------------------------------------------


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: kustomize builds not checked")
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_kustomize_builds_and_sets_namespace_and_image(tmp_path: Path) -> None:
    built = kustomize(K8S)
    assert all(d["metadata"].get("namespace") == NAMESPACE for d in built if d["kind"] != "Namespace")
    assert len(kustomize(MONITORING)) == len(documents(MONITORING / "servicemonitor.yaml")) + 1
    # the image is overridable with kustomize's `images:` (an overlay of the base)
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(K8S, overlay)],
                "images": [{"name": "jaklapor", "newName": "registry.example.org/jaklapor", "newTag": "1.4.2"}],
            }
        )
    )
    images = {
        c["image"]
        for d in kustomize(overlay)
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"registry.example.org/jaklapor:1.4.2"}


def test_resources_validate_against_the_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (PyPI) is not installed: schemas not checked"
    )
    built = [doc for path in manifest_files(K8S) for doc in documents(path)]
    checked = 0
    for version in SCHEMA_VERSIONS:
        version = version or kubernetes_validate.latest_version()
        for resource in built:
            if resource["apiVersion"].startswith("monitoring.coreos.com/"):
                continue  # CRDs: not in the Kubernetes schemas (structure checked above)
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                failure = (
                    f"{resource['kind']}/{resource['metadata']['name']} (Kubernetes {version}): {where}: {exc.message}"
                )
            else:
                failure = None
            if failure:
                pytest.fail(failure)
            checked += 1
    assert checked >= 2 * 20
