"""Installing Thrifty from its Helm chart (charts/thrifty/), as README's "Install with Helm" says:
`helm install` puts the CRDs and the operator on a bare cluster, its Deployment becomes Ready, and
the operator does its whole job with nothing but the permissions the chart gives its
ServiceAccount; once watching every namespace, once watching one (a Role there for the writes).

As in test_install.py, no image can run here: kwok only fakes the Deployment's pods, and the
operator runs as a local process with the rendered Deployment's own args and a token of the
chart-created ServiceAccount.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cluster.test_install import (
    FAST,
    InstalledOperator,
    assert_lease_and_health,
    does_its_whole_job,
    identity,
    service_account_kubeconfig,
    start_scheduler_container,
)
from tests.conftest import REPO, Cluster
from tests.support.operator import create_namespace

CHART = REPO / "charts" / "thrifty"
RELEASE = "thrifty"
NAMESPACE = "thrifty-chart"
"""Not manifests/' thrifty-system, so that nothing of test_install.py's install can stand in."""
CRDS = ("rlworkloads.thrifty.dev",)


def helm(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    """helm, from the same bin dir as kubectl (hack/build.sh links it there), on the cluster."""
    return subprocess.run([f"{cluster.bin_dir}/helm", "--kubeconfig", cluster.kubeconfig, *args],
                          check=False, capture_output=True, text=True, timeout=300)


class Release:
    """A release of the chart; ``watched`` is the namespace it watches, None for all."""

    def __init__(self, cluster: Cluster, watched: str | None) -> None:
        self.cluster = cluster
        self.watched = watched

    def install(self) -> None:
        # namespace.create: the pods must be admitted under the restricted Pod Security Standard.
        settings = ["--set", "namespace.create=true"]
        if self.watched:
            settings += ["--set", f"watchNamespace={self.watched}"]
        proc = helm(self.cluster, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
                    "--wait", "--timeout=120s", *settings)
        events = self.cluster.kubectl("get", "events", "-n", NAMESPACE, check=False).stdout
        assert proc.returncode == 0, f"helm install failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}\n{events}"

    def uninstall(self) -> None:
        proc = helm(self.cluster, "uninstall", RELEASE, "--namespace", NAMESPACE, "--ignore-not-found", "--wait",
                    "--timeout=100s")
        assert proc.returncode == 0, f"helm uninstall failed:\n{proc.stdout}{proc.stderr}"
        self.cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait", "--timeout=100s")


@pytest.fixture(scope="module", params=["all-namespaces", "one-namespace"])
def release(request: pytest.FixtureRequest, cluster: Cluster) -> Release:
    watched = create_namespace(cluster, "thrifty-watched") if request.param == "one-namespace" else None
    installed = Release(cluster, watched)
    try:
        installed.install()
        yield installed
    finally:
        # Also after a failed install, whose release would block the next one.
        installed.uninstall()
        if watched:
            cluster.kubectl("delete", "namespace", watched, "--wait", "--timeout=60s", check=False)


def test_chart_installs_crds_and_a_ready_deployment(release: Release) -> None:
    cluster = release.cluster
    for crd in CRDS:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    labels = json.loads(cluster.kubectl("get", "namespace", NAMESPACE, "-o", "json").stdout)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = json.loads(cluster.kubectl("get", "deployment", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["status"].get("readyReplicas") == 2, deployment["status"]
    pods = json.loads(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/instance=thrifty",
                                      "-o", "json").stdout)["items"]
    assert {p["spec"]["serviceAccountName"] for p in pods} == {RELEASE}
    status = json.loads(helm(cluster, "status", RELEASE, "--namespace", NAMESPACE, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"


def test_operator_does_its_whole_job_with_the_chart_permissions(release: Release, image_bin: Path,
                                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    cluster = release.cluster
    tmp = tmp_path_factory.mktemp("chart")
    operator = InstalledOperator(cluster, bin_dir=image_bin,
                                 kubeconfig=service_account_kubeconfig(cluster, tmp / "sa.kubeconfig", NAMESPACE),
                                 log_path=tmp / "thrifty-run.log", extra_args=FAST, namespace=NAMESPACE)
    workloads = release.watched or create_namespace(cluster, "thrifty-chart-apps")
    operator.start()
    operator.scheduler_log = tmp / "kube-scheduler.log"
    scheduler = start_scheduler_container(cluster, kubeconfig=tmp / "sa.kubeconfig",
                                          extender_port=operator.extender_port, log_path=operator.scheduler_log,
                                          namespace=NAMESPACE)
    try:
        does_its_whole_job(operator, workloads)
        assert_lease_and_health(operator, NAMESPACE, RELEASE)
    finally:
        # The RLWorkload carries kopf's finalizer: the operator, still running, releases it.
        cluster.kubectl("delete", "rlw", "--all", "-n", workloads, "--wait", "--timeout=60s", check=False)
        scheduler.stop()
        operator.stop()
        if not release.watched:
            cluster.kubectl("delete", "namespace", workloads, "--wait=false", check=False)


def test_writes_are_granted_only_where_the_release_watches(release: Release) -> None:
    """Watching all namespaces, the ServiceAccount writes in any; watching one, the operator's own
    writes (pods it creates, its RLWorkloads) are in that one only. Pods are listed across the
    cluster either way: every pod's requests fill its node. The kube-scheduler container shares
    the pod's ServiceAccount, and places and preempts thrifty pods anywhere (delete pods, Events):
    those stay cluster-wide (charts/thrifty/README.md, Limits)."""
    cluster = release.cluster

    def can_i(verb: str, resource: str, namespace: str) -> str:
        resource, _, subresource = resource.partition("/")
        return cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace, f"--as={identity(NAMESPACE)}",
                               *([f"--subresource={subresource}"] if subresource else []),
                               check=False).stdout.strip()

    elsewhere = "kube-public"
    for verb, resource in [("create", "pods"), ("patch", "rlworkloads.thrifty.dev")]:
        assert can_i(verb, resource, release.watched or "default") == "yes", (verb, resource)
        assert can_i(verb, resource, elsewhere) == ("no" if release.watched else "yes"), (verb, resource)
    for verb, resource in [("delete", "pods"), ("create", "events"), ("create", "pods/binding")]:
        assert can_i(verb, resource, elsewhere) == "yes", (verb, resource)
    assert can_i("list", "pods", elsewhere) == "yes"
