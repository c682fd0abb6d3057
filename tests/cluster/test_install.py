"""Installing Thrifty as a user does (`kubectl apply --server-side -f crds/`, then
`kubectl apply -k manifests/`), and the operator doing its whole job with nothing but the
permissions of its own ServiceAccount.

No image can be built here, so the operator runs as a local process, but as the Deployment
runs it: from an environment built by the Dockerfile's own command (the hashed lock, then the
package; tests/support/image_env.py), with the installed Deployment's own args, watching the
whole cluster, authenticated with a token of the `thrifty` ServiceAccount (TokenRequest, as the
kubelet mounts it in the pod), so every call it and kopf make goes through the ClusterRole of
manifests/rbac.yaml.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, Cluster
from tests.support import image_env
from tests.support.operator import (
    Kubectl,
    Operator,
    create_namespace,
    free_port,
    install_crds,
    rlworkload,
    wait_for,
)
from thrifty.kubescheduler import KubeSchedulerProcess

MANIFESTS = REPO / "manifests"
NAMESPACE = "thrifty-system"
SERVICE_ACCOUNT = "thrifty"
IDENTITY = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
IMAGE_POLICIES = "/opt/thrifty/policies"
"""Where the Dockerfile puts policies/; the local run reads them from the checkout."""

GRANTED = {
    "rlworkloads.thrifty.dev": {"get", "list", "watch", "patch"},
    "rlworkloads.thrifty.dev/status": {"patch"},
    "rlworkloads.thrifty.dev/scale": {"patch"},
    "pods": {"get", "list", "watch", "create", "delete"},
    "pods/eviction": {"create"},
    "pods/binding": {"create"},
    "bindings": {"create"},
    "pods/resize": {"patch"},
    "pods/status": {"patch", "update"},
    "nodes": {"get", "list", "watch"},
    "namespaces": {"get", "list", "watch"},
    "services": {"get", "list", "watch"},
    "replicationcontrollers": {"get", "list", "watch"},
    "persistentvolumeclaims": {"get", "list", "watch"},
    "persistentvolumes": {"get", "list", "watch"},
    "replicasets.apps": {"list", "watch"},
    "statefulsets.apps": {"list", "watch"},
    "poddisruptionbudgets.policy": {"list", "watch"},
    "storageclasses.storage.k8s.io": {"list", "watch"},
    "csinodes.storage.k8s.io": {"list", "watch"},
    "csidrivers.storage.k8s.io": {"list", "watch"},
    "csistoragecapacities.storage.k8s.io": {"list", "watch"},
    "volumeattachments.storage.k8s.io": {"list", "watch"},
    "deviceclasses.resource.k8s.io": {"list", "watch"},
    "resourceclaims.resource.k8s.io": {"list", "watch"},
    "resourceslices.resource.k8s.io": {"list", "watch"},
    "devicetaintrules.resource.k8s.io": {"list", "watch"},
    "resourceclaims.resource.k8s.io/status": {"update"},
    "nodes.metrics.k8s.io": {"list"},
    "pods.metrics.k8s.io": {"list"},
    "events": {"create", "patch", "update"},
    "events.events.k8s.io": {"create", "patch", "update"},
    "customresourcedefinitions.apiextensions.k8s.io": {"list", "watch"},
}
"""Everything the ServiceAccount may do beyond what any authenticated identity may: the operator
container's (manifests/rbac.yaml) and its kube-scheduler container's (manifests/scheduler-rbac.yaml;
the Lease Roles, the operator's and the scheduler's, are namespaced, so ``can-i --list``
cluster-wide does not show them)."""

DENIED = [
    ("get", "secrets"), ("list", "secrets"), ("get", "configmaps"), ("list", "configmaps"),
    ("patch", "nodes"), ("update", "nodes"), ("delete", "nodes"), ("create", "nodes"),
    ("update", "pods"), ("patch", "pods"), ("deletecollection", "pods"), ("update", "leases.coordination.k8s.io"),
    ("create", "deployments.apps"), ("delete", "rlworkloads.thrifty.dev"), ("update", "rlworkloads.thrifty.dev"),
    ("create", "rlworkloads.thrifty.dev"), ("update", "rlworkloads.thrifty.dev/status"),
    ("delete", "events"), ("create", "serviceaccounts/token"), ("impersonate", "users"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"), ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "pods/exec"), ("update", "rlworkloads.thrifty.dev/scale"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
]
"""A sample of what an identity that binds and deletes pods must never be able to do besides."""

FAST = ["--interval-seconds=1", "--scale-out-cooldown-seconds=0", "--scale-in-cooldown-seconds=1",
        "--resize-cooldown-seconds=1"]
"""Seconds instead of the Deployment's defaults (15 s steps, minutes of cooldown)."""

CAN_I_ROW = re.compile(r"^(\S+)\s+\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]$")


def install(cluster: Cluster) -> None:
    """What README's "Install on a cluster" says, minus the samples."""
    install_crds(cluster)
    proc = cluster.kubectl("apply", "--server-side", "-k", str(MANIFESTS), check=False)
    assert proc.returncode == 0 and not proc.stderr.strip(), (
        f"kubectl apply --server-side -k manifests/ failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")


def uninstall(cluster: Cluster) -> None:
    """`kubectl delete -k manifests/`, waiting until the namespace is gone so a later install works."""
    cluster.kubectl("delete", "-k", str(MANIFESTS), "--ignore-not-found", "--wait", "--timeout=100s", check=False)


def identity(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"


def service_account_kubeconfig(cluster: Cluster, path: Path, namespace: str = NAMESPACE) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount of ``namespace`` (a 1-hour token) to
    the same server."""
    token = cluster.kubectl("create", "token", SERVICE_ACCOUNT, "-n", namespace, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    context = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "thrifty",
        "clusters": [server],
        "users": [{"name": identity(namespace), "user": {"token": token}}],
        "contexts": [{"name": "thrifty", "context": {"cluster": server["name"], "user": identity(namespace)}}],
    }))
    path.chmod(0o600)
    return path


def deployment_args(cluster: Cluster, namespace: str = NAMESPACE) -> list[str]:
    """The installed Deployment's container args, its image paths mapped to the checkout."""
    deployment = json.loads(cluster.kubectl("get", "deployment", "thrifty", "-n", namespace, "-o", "json").stdout)
    [container] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "operator"]
    return [arg.replace(IMAGE_POLICIES, str(REPO / "policies")) for arg in container["args"]]


def start_scheduler_container(cluster: Cluster, *, kubeconfig: Path, extender_port: int, log_path: Path,
                              namespace: str = NAMESPACE) -> KubeSchedulerProcess:
    """The Deployment's kube-scheduler container as a local process: its command, the ConfigMap
    its volume mounts, the ServiceAccount's identity; the extender's port on loopback is moved to
    the local operator's. Returns once it holds its Lease (its informers must first list all that
    its plugins read, which the RBAC must allow)."""
    deployment = json.loads(cluster.kubectl("get", "deployment", "thrifty", "-n", namespace, "-o", "json").stdout)
    pod = deployment["spec"]["template"]["spec"]
    [container] = [c for c in pod["containers"] if c["name"] == "kube-scheduler"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "scheduler-config"]
    configmap = json.loads(cluster.kubectl("get", "configmap", volume["configMap"]["name"], "-n", namespace, "-o",
                                           "json").stdout)
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    config["clientConnection"]["kubeconfig"] = str(kubeconfig)
    [extender] = config["extenders"]
    assert extender["urlPrefix"] == "http://127.0.0.1:8888", "the extender must be on the pod's loopback"
    extender["urlPrefix"] = f"http://127.0.0.1:{extender_port}"
    assert container["command"][1:] == ["--config=/etc/thrifty-scheduler/config.yaml", "--secure-port=0"]
    scheduler = KubeSchedulerProcess(f"{cluster.bin_dir}/kube-scheduler", yaml.safe_dump(config), str(log_path))
    scheduler.start()
    [profile] = config["profiles"]
    lease = config["leaderElection"]
    wait_for("the kube-scheduler container to hold its Lease", lambda: cluster.kubectl(
        "get", "lease", lease["resourceName"], "-n", lease["resourceNamespace"], "-o",
        "jsonpath={.spec.holderIdentity}", check=False).stdout.strip(),
        diagnose=lambda: "\n".join(log_path.read_text(errors="replace").splitlines()[-10:]))
    assert profile["schedulerName"] == "thrifty"
    return scheduler


class InstalledOperator(Operator):
    """``thrifty run`` from the image's environment, with the Deployment's args and the
    ServiceAccount's identity. Later flags win in argparse: ``extra_args`` move the ports to free
    ones on loopback and shorten the intervals so that the test takes seconds. ``namespace`` is
    where it is installed."""

    def __init__(self, cluster: Cluster, *, bin_dir: Path, kubeconfig: Path, log_path: Path,
                 extra_args: list[str], namespace: str = NAMESPACE) -> None:
        # The base class's args (one namespace, the test policy) are replaced: this one runs as
        # installed, over what the installed Deployment watches, with the image's packages and
        # nothing from the checkout.
        super().__init__(cluster, namespace=namespace, log_path=log_path)
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        self.identity = identity(namespace)
        self.health_port = free_port()
        self.scheduler_log: Path | None = None
        """The kube-scheduler container's log, checked for denials too."""
        self.args = [
            str(bin_dir / "thrifty"), "run", *deployment_args(cluster, namespace), "--kubeconfig", str(kubeconfig),
            f"--metrics-port={self.metrics_port}", "--metrics-address=127.0.0.1",
            f"--extender-port={self.extender_port}",
            f"--liveness=http://127.0.0.1:{self.health_port}/healthz",
            # In a pod, the leader Lease's namespace is read from the ServiceAccount's mount.
            f"--leader-election-namespace={namespace}", *extra_args,
        ]

    def healthz(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=5) as response:
            return response.status

    def denials(self) -> list[str]:
        """Log lines where the API server refused the ServiceAccount something (Thrifty's own
        calls name the user; kopf says "Not enough permissions" and carries on without)."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        if self.scheduler_log is not None:
            lines += self.scheduler_log.read_text(errors="replace").splitlines()
        return [line for line in lines
                if (self.identity in line and "cannot" in line) or "Not enough permissions" in line]


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Cluster:
    install(cluster)
    yield cluster
    uninstall(cluster)


@pytest.fixture(scope="module")
def operator(installed: Cluster, image_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> InstalledOperator:
    tmp = tmp_path_factory.mktemp("install")
    op = InstalledOperator(installed, bin_dir=image_bin,
                           kubeconfig=service_account_kubeconfig(installed, tmp / "thrifty.kubeconfig"),
                           log_path=tmp / "thrifty-run.log", extra_args=FAST)
    op.start()
    op.scheduler_log = tmp / "kube-scheduler.log"
    scheduler = start_scheduler_container(installed, kubeconfig=tmp / "thrifty.kubeconfig",
                                          extender_port=op.extender_port, log_path=op.scheduler_log)
    yield op
    scheduler.stop()
    op.stop()


def _can_i_rows(cluster: Cluster, user: str) -> set[str]:
    listing = cluster.kubectl("auth", "can-i", "--list", f"--as={user}").stdout
    return {" ".join(line.split()) for line in listing.splitlines()[1:] if line.strip()}


def test_manifests_install_on_a_bare_cluster(installed: Cluster) -> None:
    """Both replicas are admitted under the namespace's restricted Pod Security Standard and run."""
    proc = installed.kubectl("rollout", "status", "deployment/thrifty", "-n", NAMESPACE, "--timeout=90s", check=False)
    events = installed.kubectl("get", "events", "-n", NAMESPACE, check=False).stdout
    assert proc.returncode == 0, f"the Deployment did not roll out:\n{proc.stdout}{proc.stderr}\n{events}"
    pods = json.loads(installed.kubectl("get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=thrifty",
                                        "-o", "json").stdout)["items"]
    assert len(pods) == 2
    assert {p["spec"]["serviceAccountName"] for p in pods} == {SERVICE_ACCOUNT}
    service = json.loads(installed.kubectl("get", "service", "thrifty-metrics", "-n", NAMESPACE, "-o", "json").stdout)
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("metrics", 8000)]


def test_service_account_has_exactly_the_granted_permissions(installed: Cluster) -> None:
    """What the ServiceAccount may do, minus what an identity with no binding may do, is GRANTED."""
    baseline = _can_i_rows(installed, f"system:serviceaccount:{NAMESPACE}:nobody")
    granted = {}
    for row in _can_i_rows(installed, IDENTITY) - baseline:
        match = CAN_I_ROW.match(row)
        assert match and not match.group(2) and not match.group(3), f"unexpected rule: {row}"
        granted.setdefault(match.group(1), set()).update(match.group(4).split())
    assert granted == GRANTED


@pytest.mark.parametrize(("verb", "resource"), DENIED)
def test_service_account_is_denied(installed: Cluster, verb: str, resource: str) -> None:
    resource, _, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, resource, f"--as={IDENTITY}", "--all-namespaces"]
    proc = installed.kubectl(*args, *([f"--subresource={subresource}"] if subresource else []), check=False)
    assert proc.stdout.strip() == "no", f"kubectl {' '.join(args)}: {proc.stdout.strip()} {proc.stderr.strip()}"


def test_operator_does_its_whole_job_as_its_service_account(operator: InstalledOperator) -> None:
    """Place (binding), resize in place, scale out and in (create, delete), write status, post
    Events, hold its leader Lease and read metrics-server: all without a single denial."""
    cluster = operator.cluster
    namespace = create_namespace(cluster, "thrifty-install")
    try:
        does_its_whole_job(operator, namespace)
    finally:
        # The RLWorkload carries kopf's finalizer: the operator, still running, releases it.
        cluster.kubectl("delete", "namespace", namespace, "--wait", "--timeout=60s", check=False)
    assert_lease_and_health(operator, NAMESPACE, "thrifty")


def does_its_whole_job(operator: InstalledOperator, namespace: str) -> None:
    """The operator places, resizes, scales out and in an RLWorkload it creates in ``namespace``,
    writes its status and posts its Events."""
    k = Kubectl(operator.cluster, namespace)
    pinned = [{"name": "app", "cpu": {"min": "100m", "max": "100m"}}]
    k.apply(rlworkload("web", replicas={"min": 2, "max": 2}, bounds=pinned))
    placed = wait_for("2 pods of web created and bound by Thrifty", lambda: len(p := k.pods_of("web")) == 2 and all(
        x["spec"].get("nodeName") for x in p) and p, diagnose=operator.log_tail)
    assert {p["spec"]["schedulerName"] for p in placed} == {"thrifty"}
    uids = {p["metadata"]["uid"] for p in placed}

    # Raising the CPU minimum above the pods' request: the safety bounds resize them in place.
    k.patch("rlw", "web", {"spec": {"containers": [{"name": "app", "cpu": {"min": "150m", "max": "1"}}]}})
    wait_for("both pods resized in place to 150m", lambda: [
        p["spec"]["containers"][0]["resources"]["requests"]["cpu"] for p in k.pods_of("web")] == ["150m", "150m"],
        diagnose=operator.log_tail)
    assert {p["metadata"]["uid"] for p in k.pods_of("web")} == uids, "a pod was recreated instead of resized"

    k.patch("rlw", "web", {"spec": {"replicas": {"min": 3, "max": 3}}})
    wait_for("a third pod, bound", lambda: len(p := k.pods_of("web")) == 3 and all(
        x["spec"].get("nodeName") for x in p), diagnose=operator.log_tail)
    k.patch("rlw", "web", {"spec": {"replicas": {"min": 1, "max": 1}}})
    wait_for("scale-in to 1 pod", lambda: len(k.pods_of("web")) == 1, diagnose=operator.log_tail)

    status = wait_for("status of the last step", lambda: (w := k.get("rlw", "web")).get("status", {}).get(
        "replicas") == 1 and w["status"].get("observedGeneration") == w["metadata"]["generation"] and w["status"],
        diagnose=operator.log_tail)
    kinds = {(d["kind"], d["outcome"]) for d in status["lastDecisions"]}
    assert {("Placement", "Applied"), ("Vertical", "Applied"), ("Horizontal", "Applied")} <= kinds, kinds
    reasons = {e["reason"] for e in k.events("web", "RLWorkload")}
    assert {"Placed", "Resized", "Scaled"} <= reasons, reasons
    assert any(e["source"].get("component") == "thrifty" and e["reason"] == "Scheduled"
               for e in k.items("events") if e["involvedObject"]["kind"] == "Pod"), "no Scheduled Event on a pod"


def assert_lease_and_health(operator: InstalledOperator, namespace: str, lease: str) -> None:
    """It read metrics-server, holds the leader Lease ``lease`` in ``namespace`` (its Role's),
    answers /healthz, and was never denied anything."""
    cluster = operator.cluster
    assert operator.sample("thrifty_metrics_source_up", source="metrics-api") == 1.0, (
        "the ServiceAccount cannot read metrics.k8s.io: " + operator.log_tail())
    held = json.loads(cluster.kubectl("get", "lease", lease, "-n", namespace, "-o", "json").stdout)
    assert held["spec"].get("holderIdentity"), f"nobody holds Lease {namespace}/{lease}"
    assert operator.leads(), "the operator does not lead: " + operator.log_tail()
    assert operator.healthz() == 200
    assert not operator.denials(), "the API server denied the ServiceAccount:\n" + "\n".join(operator.denials())


def test_image_environment_has_none_of_the_extras(image_bin: Path) -> None:
    """The image's environment cannot even import what only the extras bring."""
    assert image_env.installed(image_bin) == [], "the image's environment would carry extras' packages"


def test_operator_runs_lean_from_the_image_environment(operator: InstalledOperator) -> None:
    """The running `thrifty run` of the whole-job test maps no file of ray, torch, gymnasium or
    matplotlib, and its Python is the image's environment, not the development one."""
    assert operator.process is not None and operator.process.poll() is None, operator.log_tail()
    files = image_env.loaded_files(operator.process.pid)
    heavy = sorted({f for f in files for m in image_env.EXTRAS_ONLY if f"/site-packages/{m}/" in f})
    assert not heavy, f"thrifty run loaded {heavy[:5]}"
    dev_env = str(Path(os.path.realpath(REPO / ".venv")))
    assert not any(f.startswith(dev_env) for f in files), "thrifty run used the development environment"


def test_operator_places_and_sizes_the_sample_application(operator: InstalledOperator) -> None:
    """`kubectl apply -f manifests/samples/`, as the README says: the image's operator creates and
    binds every Auto workload's pods, and records a sizing step (replicas and requests) for each
    workload, the Recommend-mode one included."""
    cluster = operator.cluster
    samples = [d for d in yaml.safe_load_all((MANIFESTS / "samples" / "app.yaml").read_text()) if d]
    [namespace] = {d["metadata"]["name"] for d in samples if d["kind"] == "Namespace"}
    workloads = [d for d in samples if d["kind"] == "RLWorkload"]
    k = Kubectl(cluster, namespace)
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "samples" / "app.yaml"))
    try:
        for workload in workloads:
            name, spec = workload["metadata"]["name"], workload["spec"]
            if spec["policy"]["mode"] == "Auto":
                wait_for(f"the pods of {name} created and bound", lambda name=name, spec=spec: len(p := [
                    x for x in k.pods_of(name) if x["spec"].get("nodeName")]) >= spec["replicas"]["min"] and p,
                    diagnose=operator.log_tail)
            # A sizing step writes what it decided (Auto) or would decide (Recommend): replicas and
            # per-container requests in the status.
            status = wait_for(f"the sizing step's status of {name}", lambda name=name: (s := k.get("rlw", name).get(
                "status", {})).get("recommendedReplicas") is not None and s.get("containers") and s,
                diagnose=operator.log_tail)
            [container] = status["containers"]
            assert container["recommendedRequests"].keys() >= {"cpu", "memory"}, status
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait", "--timeout=60s", check=False)
    assert not operator.denials(), "the API server denied the ServiceAccount:\n" + "\n".join(operator.denials())
