"""The Kubernetes manifests under cluster/: KubeRay CRDs against their JSON Schemas, built-in
kinds with kubernetes-validate (strict), and RBAC limited to what the live backend needs."""

import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
# JSON Schemas of the KubeRay v1 CRDs (copied from the shared schema folder).
SCHEMAS = Path(__file__).resolve().parent / "schemas"
K8S_VERSION = "1.30.0"


def docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def crd_schema(kind):
    name = {"RayCluster": "raycluster", "RayJob": "rayjob"}[kind]
    return json.loads((SCHEMAS / f"{name}.ray.io.v1.json").read_text())


def undeclared_keys(value, schema, path=""):
    """Keys the structural schema does not declare (the API server would prune them)."""
    out = []
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in value.items():
            if key not in schema["properties"]:
                if not isinstance(schema.get("additionalProperties"), dict):
                    out.append(f"{path}.{key}")
                continue
            out += undeclared_keys(sub, schema["properties"][key], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += undeclared_keys(item, schema["items"], f"{path}[{i}]")
    return out


def pod_templates(doc):
    spec = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
    yield spec["headGroupSpec"]["template"]
    for group in spec.get("workerGroupSpecs", []):
        yield group["template"]


KUBERAY = sorted((CLUSTER / "kuberay").glob("ray*.yaml"))
BUILTIN = [CLUSTER / "rbac.yaml", CLUSTER / "redis.yaml", CLUSTER / "kuberay" / "storage.yaml"]


@pytest.mark.parametrize("path", KUBERAY, ids=lambda p: p.name)
def test_kuberay_manifests_match_the_crd_schemas(path):
    (doc,) = docs(path)
    schema = crd_schema(doc["kind"])
    jsonschema.validate(doc, schema)
    assert undeclared_keys(doc, schema) == []
    for template in pod_templates(doc):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": template["spec"]}
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_schema_check_catches_a_typo():
    (doc,) = docs(CLUSTER / "kuberay" / "rayjob-dqn.yaml")
    doc["spec"]["shutdownAfterJobFinish"] = True  # missing the "es"
    assert undeclared_keys(doc, crd_schema("RayJob")) == [".spec.shutdownAfterJobFinish"]
    doc["spec"]["ttlSecondsAfterFinished"] = "ten minutes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, crd_schema("RayJob"))


@pytest.mark.parametrize("path", BUILTIN, ids=lambda p: p.name)
def test_builtin_kinds_validate_strictly(path):
    for doc in docs(path):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("algo", ["dqn", "sarsa"])
def test_rayjobs_run_tune_and_resume_from_durable_storage(algo):
    (doc,) = docs(CLUSTER / "kuberay" / f"rayjob-{algo}.yaml")
    spec = doc["spec"]
    entry = spec["entrypoint"].split()
    assert entry[:5] == ["python", "-m", "rl_autoscaling.tune", "--algo", algo]
    assert entry[entry.index("--address") + 1] == "auto"
    assert entry[entry.index("--resume") + 1] == "auto"
    storage = entry[entry.index("--storage-path") + 1]
    # the exported runs persist too (on the volume, not in the job's working dir)
    assert entry[entry.index("--output") + 1] == storage + "/runs"
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    for template in pod_templates(doc):
        (container,) = template["spec"]["containers"]
        assert container["resources"]["requests"] and container["resources"]["limits"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert storage.startswith("/data/") and mounts["/data"] == "runs"
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                  for v in template["spec"]["volumes"]}
        assert claims["runs"] == "rl-autoscaling-runs"


def _farm_function_names():
    from rl_autoscaling.config import load_config

    fn = load_config().functions
    return fn.namespace, {fn.emitter, fn.worker, fn.collector}


def test_rbac_grants_only_what_the_live_backend_needs():
    """KubernetesScaler reads/patches the farm Deployments' scale subresource and patches the
    ACKed pod's annotation; nothing else (pods have generated names: no resourceNames)."""
    namespace, functions = _farm_function_names()
    kinds = {}
    for doc in docs(CLUSTER / "rbac.yaml"):
        kinds.setdefault(doc["kind"], []).append(doc)
    assert set(kinds) == {"ServiceAccount", "Role", "RoleBinding"}  # no cluster-wide roles
    (role,) = kinds["Role"]
    assert role["metadata"]["namespace"] == namespace == "openfaas-fn"
    rules = [{k: sorted(v) for k, v in rule.items()} for rule in role["rules"]]
    assert rules == [
        {"apiGroups": ["apps"], "resources": ["deployments/scale"],
         "resourceNames": sorted(functions), "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]},
    ]
    assert sorted(functions) == ["collector", "emitter", "worker"]
    (binding,) = kinds["RoleBinding"]
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    (sa,) = kinds["ServiceAccount"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]


def test_rbac_covers_every_kubernetes_call_of_the_scaler():
    """The KubernetesScaler's API calls map to exactly the granted (resource, verb) pairs."""
    import inspect

    from rl_autoscaling.farm.scalers import KubernetesScaler

    source = inspect.getsource(KubernetesScaler)
    calls = {"read_namespaced_deployment_scale": ("deployments/scale", "get"),
             "patch_namespaced_deployment_scale": ("deployments/scale", "patch"),
             "patch_namespaced_pod": ("pods", "patch")}
    used = {name for name in calls if f".{name}," in source or f".{name}(" in source}
    assert used == set(calls)
    for other in ("read_namespaced_deployment,", "patch_namespaced_deployment,",
                  "list_namespaced_pod", "read_namespaced_pod", "delete_namespaced_pod"):
        assert other not in source
    (role,) = [d for d in docs(CLUSTER / "rbac.yaml") if d["kind"] == "Role"]
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert granted == set(calls.values())


@pytest.mark.parametrize("path", KUBERAY, ids=lambda p: p.name)
def test_kuberay_clusters_use_token_auth_and_the_autoscaler(path):
    (doc,) = docs(path)
    spec = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
    assert spec["authOptions"] == {"mode": "token"}
    assert spec["enableInTreeAutoscaling"] is True
    autoscaler = spec["autoscalerOptions"]
    assert autoscaler["resources"]["requests"] and autoscaler["resources"]["limits"]
    assert autoscaler["idleTimeoutSeconds"] > 0
    for group in spec["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["maxReplicas"] > group["minReplicas"]


def test_runs_volume_is_readwritemany_on_a_named_storage_class():
    text = (CLUSTER / "kuberay" / "storage.yaml").read_text()
    (pvc,) = [d for d in docs(CLUSTER / "kuberay" / "storage.yaml")
              if d["kind"] == "PersistentVolumeClaim"]
    assert pvc["metadata"]["name"] == "rl-autoscaling-runs"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert isinstance(pvc["spec"]["storageClassName"], str) and pvc["spec"]["storageClassName"]
    assert "PARAMETER" in text  # documented where it is set


def test_dockerfile_runs_as_non_root_with_cpu_torch():
    text = (CLUSTER / "Dockerfile").read_text()
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "torch==2.13.0" in text and "whl/cpu" in text


def test_raycluster_head_gives_submitted_jobs_the_shared_storage_path():
    """`submit` without --storage-path uses $RL_AUTOSCALING_STORAGE on the head (where job
    drivers run): the RayCluster points it at its ReadWriteMany volume."""
    from rl_autoscaling.service.submit import STORAGE_ENV

    (doc,) = docs(CLUSTER / "kuberay" / "raycluster.yaml")
    (head,) = doc["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in head["env"]}
    mounts = {m["mountPath"]: m["name"] for m in head["volumeMounts"]}
    assert env[STORAGE_ENV] == "/data/tune" and mounts["/data"] == "runs"


# --------------------------------------------------------------------------- serve


SERVE = CLUSTER / "serve"


@pytest.mark.parametrize("name", ["controller.yaml", "keda.yaml"])
def test_serve_manifests_validate_and_their_args_parse(name):
    from rl_autoscaling.deploy.cli import build_parser

    deployments = []
    for doc in docs(SERVE / name):
        if doc["kind"] == "ScaledObject":  # a KEDA CRD: checked below
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        if doc["kind"] == "Deployment":
            deployments.append(doc)
    (deployment,) = deployments
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # never two controllers
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "rl_autoscaling.serve"]
    args = build_parser().parse_args(container["args"])  # every flag exists as written
    assert args.model.startswith("/data/") and args.metrics_port == 9100
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/data"]["readOnly"] is True
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and probe["port"] == "metrics"


def test_serve_controller_rbac_is_the_worker_scale_subresource_only():
    """serve attaches to a running farm: it reads/patches the worker Deployment's scale and
    annotates the ACKed pod (scale-down); it never starts or stops the farm."""
    from rl_autoscaling.config import load_config

    namespace, worker = load_config().functions.namespace, load_config().functions.worker
    kinds = {}
    for doc in docs(SERVE / "controller.yaml"):
        kinds.setdefault(doc["kind"], []).append(doc)
    (role,) = kinds["Role"]
    assert role["metadata"]["namespace"] == namespace
    rules = [{k: sorted(v) for k, v in rule.items()} for rule in role["rules"]]
    assert rules == [
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": [worker],
         "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]},
    ]
    (binding,) = kinds["RoleBinding"]
    (sa,) = kinds["ServiceAccount"]
    (deployment,) = kinds["Deployment"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert deployment["metadata"]["namespace"] == sa["metadata"]["namespace"]


def test_keda_scaledobject_points_at_the_serve_grpc_service():
    from rl_autoscaling.config import load_config
    from rl_autoscaling.deploy.cli import build_parser

    fn = load_config().functions
    kinds = {}
    for doc in docs(SERVE / "keda.yaml"):
        kinds.setdefault(doc["kind"], []).append(doc)
    assert set(kinds) == {"ServiceAccount", "Deployment", "Service", "ScaledObject"}  # no RBAC
    (so,) = kinds["ScaledObject"]
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["metadata"]["namespace"] == fn.namespace
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": fn.worker}
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "external" and trigger["metricType"] == "AverageValue"
    host, port = trigger["metadata"]["scalerAddress"].rsplit(":", 1)
    (svc,) = kinds["Service"]
    assert host == f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc"
    grpc_port = {p["name"]: p for p in svc["spec"]["ports"]}["grpc"]
    (deployment,) = kinds["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert int(port) == grpc_port["port"] == args.keda_grpc
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (
        args.min_workers, args.max_workers)
    spec = deployment["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False  # no Kubernetes API in KEDA mode
