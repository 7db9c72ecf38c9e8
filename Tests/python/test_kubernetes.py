"""The Kubernetes hosting backend against the Kubernetes API emulator (`lisa-fake-upstream
--kubernetes`: Deployments, Services, pods whose command runs as a local process on a
loopback IP of its own). The same flows as the local backend's tests: create → InService,
scale, stop/start, delete, a crashed container, a replaced pod, orphans, LISAServe killed
mid-workflow, a pod that cannot be scheduled. With KUBECONFIG set, the suite at the end
runs against that cluster instead (nothing on these machines can run one)."""
import json
import os
import signal
import time
import urllib.request

import pytest

from conftest import BIN, Lisa, Process, free_port, lisactl, wait_healthy
from conftest import api as request
from test_hosting import chat, replica_processes, status, wait_for

TOKEN = "emulator-token-0123456789"
NAMESPACE = "models"


class Emulator:
    def __init__(self, tmp_path, gpus=0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = Process([str(BIN / "lisa-fake-upstream"), "--kubernetes", "--port", str(self.port), "--kubernetes-token", TOKEN,
                             "--kubernetes-gpus", str(gpus)], log=tmp_path / "k8s.log")
        wait_healthy_k8s(self.url, self.proc.process)
        self.kubeconfig = tmp_path / "kubeconfig"
        self.kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: emulator
  cluster: {{server: "{self.url}"}}
users:
- name: lisa
  user: {{token: {TOKEN}}}
contexts:
- name: emulator
  context: {{cluster: emulator, user: lisa, namespace: {NAMESPACE}}}
current-context: emulator
""")

    def get(self, path):
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def send(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def items(self, kind, selector=""):
        group = "/apis/apps/v1" if kind == "deployments" else "/api/v1"
        code, body = self.get(f"{group}/namespaces/{NAMESPACE}/{kind}" + (f"?labelSelector={selector}" if selector else ""))
        assert code == 200, body
        return body["items"]

    def live_pods(self, model_label=None):
        pods = self.items("pods", f"lisa.model={model_label}" if model_label else "")
        return [p for p in pods if "deletionTimestamp" not in p["metadata"]]

    def stop(self):
        self.proc.stop()


def wait_healthy_k8s(url, process, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError("the emulator exited")
        try:
            urllib.request.urlopen(urllib.request.Request(url + "/api/v1/namespaces/x/pods",
                                                          headers={"Authorization": f"Bearer {TOKEN}"}), timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the emulator did not start")


def hosted_k8s(model_id, minimum=1, maximum=1, resources=None, command=None):
    kubernetes = {"image": "ghcr.io/example/fake-upstream:1.0", "port": 8000, "imagePullPolicy": "IfNotPresent",
                  "resources": resources or {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}}
    return {
        "modelId": model_id, "modelName": "echo", "modelType": "textgen", "inferenceContainer": "openai", "hostingType": "lisa_hosted",
        "launch": {"command": command or f"{BIN / 'lisa-fake-upstream'} --host $(POD_IP) --port {{port}} --chunk-delay-ms 5",
                   "kubernetes": kubernetes, "startupTimeoutSeconds": 30, "drainTimeoutSeconds": 5, "stopTimeoutSeconds": 3},
        "autoScalingConfig": {"minCapacity": minimum, "maxCapacity": maximum, "cooldown": 60, "metricConfig": {"targetValue": 2}},
    }


def k8s_lisa(upstream, data, emulator, port=None):
    config = f"hosting:\n  backend: kubernetes\n  kubernetes:\n    kubeconfig: {emulator.kubeconfig}\n"
    return Lisa(upstream, data, extra_config=config, port=port)


def model_label(emulator, model_id):
    for deployment in emulator.items("deployments"):
        if deployment["metadata"]["annotations"].get("lisa.model-id") == model_id:
            return deployment["metadata"]["labels"]["lisa.model"]
    return None


@pytest.fixture
def emulator(tmp_path):
    server = Emulator(tmp_path)
    yield server
    server.stop()


def test_hosted_model_lifecycle_on_kubernetes(upstream, emulator, tmp_path):
    lisa = k8s_lisa(upstream, tmp_path / "data", emulator)
    try:
        spec = tmp_path / "model.json"
        spec.write_text(json.dumps(hosted_k8s("k8s-hosted", minimum=2, maximum=2)))
        created = lisactl(lisa, "models", "create", "-f", str(spec), "--wait")
        assert created.returncode == 0, created.stdout + created.stderr
        assert "k8s-hosted: InService" in created.stdout

        label = model_label(emulator, "k8s-hosted")
        deployments = [d for d in emulator.items("deployments") if d["metadata"]["labels"]["lisa.model"] == label]
        assert len(deployments) == 2, "a Deployment per replica"
        services = emulator.items("services", f"lisa.model={label}")
        assert len(services) == 1 and services[0]["spec"]["clusterIP"] == "None", "one headless Service per model"
        pods = emulator.live_pods(label)
        assert len(pods) == 2 and all(c["status"] == "True" for p in pods for c in p["status"]["conditions"] if c["type"] == "Ready")
        model = status(lisa, "k8s-hosted")
        assert sorted(r["url"] for r in model["replicas"]) == sorted(f"http://{p['status']['podIP']}:8000/v1" for p in pods)
        container = deployments[0]["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "ghcr.io/example/fake-upstream:1.0"
        assert container["resources"]["limits"]["memory"] == "256Mi"
        assert {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in container["env"]
        assert chat(lisa, "k8s-hosted", "through a pod") == "echo: through a pod"

        # What LISA renders is valid against the Kubernetes schemas (strict: no unknown field).
        import kubernetes_validate
        for obj in deployments + services:
            kubernetes_validate.validate(obj, "1.30", strict=True)

        # A crashed container: the kubelet restarts it (same pod, same IP); LISA follows its readiness.
        victim = pods[0]
        before = {r["replicaId"]: r["url"] for r in model["replicas"]}
        os.kill(next(pid for pid in replica_processes("k8s-hosted")
                     if f"--host {victim['status']['podIP']} " in open(f"/proc/{pid}/cmdline").read().replace("\0", " ")),
                signal.SIGKILL)
        for i in range(10):
            assert chat(lisa, "k8s-hosted", f"during a crash {i}") == f"echo: during a crash {i}"
        # The calls above can all be served before the kubelet notices the crash: wait on the restart itself.
        wait_for(lambda: (pods := emulator.live_pods(label))
                 and any(p["status"]["containerStatuses"][0]["restartCount"] == 1 for p in pods)
                 and all(p["status"]["containerStatuses"][0]["ready"] for p in pods), timeout=30,
                 what="the container restarted and ready")

        # A replaced pod (deleted, as a node drain does): a new pod with a new IP; LISA relaunches onto it.
        code, _ = emulator.send("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{victim['metadata']['name']}")
        assert code == 200

        def moved():
            model = status(lisa, "k8s-hosted")
            urls = {r["replicaId"]: r["url"] for r in model["replicas"] if r["state"] == "ready"}
            return len(urls) == 2 and urls != before and model["status"] == "InService"
        wait_for(moved, timeout=60, what="the replica followed its new pod")
        assert chat(lisa, "k8s-hosted", "after the move") == "echo: after the move"

        logs = lisactl(lisa, "models", "logs", "k8s-hosted", "--tail", "20")
        assert logs.returncode == 0 and "lisa-fake-upstream listening" in logs.stdout, logs.stdout + logs.stderr

        # Scale in to one, then stop, start and delete.
        code, body = request(lisa, "PUT", "/models/k8s-hosted", {"autoScalingConfig": {"minCapacity": 1, "maxCapacity": 1, "cooldown": 60,
                                                                                       "metricConfig": {"targetValue": 2}}})
        assert code == 200, body
        wait_for(lambda: len(emulator.live_pods(label)) == 1 and len(status(lisa, "k8s-hosted")["replicas"]) == 1, timeout=60,
                 what="scaled in to one pod")
        stopped = lisactl(lisa, "models", "stop", "k8s-hosted", "--wait")
        assert stopped.returncode == 0 and "k8s-hosted: Stopped" in stopped.stdout, stopped.stdout + stopped.stderr
        assert [d for d in emulator.items("deployments") if d["metadata"]["labels"]["lisa.model"] == label] == []
        wait_for(lambda: emulator.live_pods(label) == [], timeout=30, what="the pods gone after stop")
        started = lisactl(lisa, "models", "start", "k8s-hosted", "--wait")
        assert started.returncode == 0 and "k8s-hosted: InService" in started.stdout
        assert chat(lisa, "k8s-hosted", "after start") == "echo: after start"
        deleted = lisactl(lisa, "models", "delete", "k8s-hosted", "--wait")
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        wait_for(lambda: emulator.live_pods(label) == [] and emulator.items("services", f"lisa.model={label}") == [], timeout=30,
                 what="pods and the Service gone")
        assert replica_processes("k8s-hosted") == []
    finally:
        lisa.stop()


def test_sigkill_mid_create_converges_and_orphans_are_removed(upstream, emulator, tmp_path):
    data = tmp_path / "data"
    lisa = k8s_lisa(upstream, data, emulator)
    code, body = request(lisa, "POST", "/models", hosted_k8s("k8s-crashy", minimum=2, maximum=2))
    assert code == 201 and body["status"] == "Creating"
    wait_for(lambda: len(emulator.items("deployments")) >= 1, timeout=10, interval=0.02, what="a Deployment created")
    lisa.stop(signal.SIGKILL)
    deployment_id = emulator.items("deployments")[0]["metadata"]["labels"]["lisa.deployment-id"]

    # An orphan: a Deployment of this LISA that no replica record knows.
    orphan = json.loads(json.dumps(emulator.items("deployments")[0]))
    orphan["metadata"] = {"name": "lisa-orphan-00000000", "labels": {**orphan["metadata"]["labels"], "lisa.replica-id": "orphan-replica"}}
    orphan["spec"]["selector"]["matchLabels"]["lisa.replica-id"] = "orphan-replica"
    orphan["spec"]["template"]["metadata"]["labels"]["lisa.replica-id"] = "orphan-replica"
    code, body = emulator.send("POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", orphan)
    assert code == 201, body
    # Another installation's Deployment is not ours to remove.
    foreign = json.loads(json.dumps(orphan))
    foreign["metadata"] = {"name": "someone-else", "labels": {"lisa.deployment-id": "another-lisa", "lisa.replica-id": "x", "lisa.model": "y"}}
    foreign["spec"]["selector"]["matchLabels"] = {"lisa.deployment-id": "another-lisa", "lisa.replica-id": "x"}
    foreign["spec"]["template"]["metadata"]["labels"] = {"lisa.deployment-id": "another-lisa", "lisa.replica-id": "x", "lisa.model": "y"}
    foreign["spec"]["template"]["spec"]["containers"][0]["command"] = ["/bin/sleep", "600"]
    assert emulator.send("POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", foreign)[0] == 201

    lisa = k8s_lisa(upstream, data, emulator, port=lisa.port)
    try:
        wait_for(lambda: (status(lisa, "k8s-crashy") or {}).get("status") == "InService", timeout=60, what="InService after the restart")
        label = model_label(emulator, "k8s-crashy")
        wait_for(lambda: len(emulator.live_pods(label)) == 2, timeout=30, what="exactly two pods")
        names = {d["metadata"]["name"] for d in emulator.items("deployments")}
        assert "lisa-orphan-00000000" not in names, "the orphan was removed"
        assert "someone-else" in names, "another installation's Deployment was left alone"
        ours = [d for d in emulator.items("deployments", f"lisa.deployment-id={deployment_id}")]
        assert len(ours) == 2, [d["metadata"]["name"] for d in ours]
        assert chat(lisa, "k8s-crashy", "converged") == "echo: converged"
        request(lisa, "DELETE", "/models/k8s-crashy")
        wait_for(lambda: emulator.live_pods(label) == [], timeout=30, what="pods gone after delete")
    finally:
        lisa.stop()


def test_a_pod_that_cannot_be_scheduled_fails_the_model_with_the_schedulers_reason(upstream, emulator, tmp_path):
    lisa = k8s_lisa(upstream, tmp_path / "data", emulator)
    try:
        spec = hosted_k8s("needs-gpu", resources={"limits": {"nvidia.com/gpu": 1}})
        spec["launch"]["startupTimeoutSeconds"] = 3
        code, body = request(lisa, "POST", "/models", spec)
        assert code == 201, body
        wait_for(lambda: (status(lisa, "needs-gpu") or {}).get("status") == "Failed", timeout=30, what="Failed")
        assert "Insufficient nvidia.com/gpu" in status(lisa, "needs-gpu")["statusReason"]
        code, body = request(lisa, "POST", "/models", {**hosted_k8s("no-image"), "launch": {**hosted_k8s("x")["launch"], "kubernetes": {"port": 80}}})
        assert code == 400, body
        request(lisa, "DELETE", "/models/needs-gpu")
        wait_for(lambda: emulator.items("deployments") == [], timeout=30, what="its Deployment removed")
    finally:
        lisa.stop()


def test_the_kubernetes_manifests_validate():
    """LISA's own manifests (deploy/kubernetes), offline against the Kubernetes 1.30 schemas."""
    import yaml
    import kubernetes_validate
    from conftest import ROOT
    documents = []
    for path in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")):
        documents += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    kinds = {doc["kind"] for _, doc in documents}
    assert {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "PodDisruptionBudget", "ConfigMap"} <= kinds, kinds
    for name, doc in documents:
        if doc["kind"] == "Kustomization":
            continue
        kubernetes_validate.validate(doc, "1.30", strict=True)
    deployment = next(doc for _, doc in documents if doc["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"


@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs a real cluster (KUBECONFIG); none can run on these machines")
def test_against_a_real_cluster(upstream, tmp_path):
    """The lifecycle against the cluster KUBECONFIG names (namespace LISA_TEST_NAMESPACE, default `default`), with the
    image LISA_TEST_IMAGE serving an OpenAI-compatible API (default: vLLM's CPU image would need a model; give your own)."""
    image = os.environ.get("LISA_TEST_IMAGE")
    if not image:
        pytest.skip("set LISA_TEST_IMAGE to an image serving an OpenAI-compatible API on port 8000")
    config = f"hosting:\n  backend: kubernetes\n  kubernetes:\n    kubeconfig: {os.environ['KUBECONFIG']}\n" \
             f"    namespace: {os.environ.get('LISA_TEST_NAMESPACE', 'default')}\n"
    lisa = Lisa(upstream, tmp_path / "data", extra_config=config)
    try:
        spec = hosted_k8s("real-cluster", command=os.environ.get("LISA_TEST_COMMAND", "serve --port {port}"))
        spec["launch"]["kubernetes"]["image"] = image
        spec["launch"]["startupTimeoutSeconds"] = 600
        code, body = request(lisa, "POST", "/models", spec)
        assert code == 201, body
        wait_for(lambda: (status(lisa, "real-cluster") or {}).get("status") == "InService", timeout=900, what="InService")
        request(lisa, "DELETE", "/models/real-cluster")
        wait_for(lambda: status(lisa, "real-cluster") is None, timeout=300, what="deleted")
    finally:
        lisa.stop()
