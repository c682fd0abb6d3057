"""The Helm chart (charts/thrifty/): it lints strictly, renders the same install as the kustomize
one in manifests/ with its default values, carries up-to-date copies of the files it cannot read
from outside its directory, and every value changes what it says.

Rendering uses helm (``hack/build.sh helm``); the kustomize side is rendered by the real
kustomize of kubectl (``hack/build.sh``), never re-implemented here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import thrifty
from tests.conftest import REPO
from thrifty.cli import build_parser
from thrifty.schedulerconfig import KUBE_SCHEDULER_VERSION

CHART = REPO / "charts" / "thrifty"
RELEASE = "thrifty"
NAMESPACE = "thrifty-system"
"""Release name and namespace that give the objects the names and namespace of manifests/."""

COPIES = {
    CHART / "crds" / "thrifty.dev_rlworkloads.yaml": REPO / "crds" / "thrifty.dev_rlworkloads.yaml",
    CHART / "files" / "thrifty.json": REPO / "manifests" / "grafana" / "thrifty.json",
    CHART / "files" / "prometheusrule.yaml": REPO / "manifests" / "monitoring" / "prometheusrule.yaml",
    CHART / "files" / "scheduler-config.yaml": REPO / "manifests" / "scheduler-config.yaml",
}
HELM_ONLY = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance",
             "app.kubernetes.io/version", "helm.sh/resource-policy", "imagePullPolicy"}
"""Labels that only the chart sets (the instance label also in its selectors), the annotation
that keeps its Namespace on uninstall, and the container's explicit imagePullPolicy."""

MONITORING_ON = {"monitoring": {k: {"enabled": True} for k in ("serviceMonitor", "prometheusRule", "dashboard")}}

CUSTOM = {
    "image": {"repository": "registry.example.com/platform/thrifty", "tag": "0.2.0-rc1", "pullPolicy": "Always"},
    "replicas": 3,
    "prometheusUrl": "http://prometheus-operated.monitoring.svc:9090",
    "watchNamespace": "apps",
    "extraArgs": ["--interval-seconds=30"],
    "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
}


def render(helm: str, tmp_path: Path, values: dict | None = None, *, release: str = RELEASE,
           namespace: str = NAMESPACE, crds: bool = False) -> dict[tuple[str, str], dict]:
    """``helm template`` of the chart: (kind, name) -> object."""
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values or {}))
    proc = subprocess.run([helm, "template", release, str(CHART), "--namespace", namespace, "--values",
                           str(values_file), *(["--include-crds"] if crds else [])],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
    return by_name(proc.stdout)


def by_name(text: str) -> dict[tuple[str, str], dict]:
    objects: dict[tuple[str, str], dict] = {}
    for obj in yaml.safe_load_all(text):
        if obj:
            key = (obj["kind"], obj["metadata"]["name"])
            assert key not in objects, f"{key} rendered twice"
            objects[key] = obj
    return objects


def kustomize(bin_dir: str, directory: Path) -> dict[tuple[str, str], dict]:
    proc = subprocess.run([f"{bin_dir}/kubectl", "kustomize", str(directory)], check=False, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return by_name(proc.stdout)


def without_helm_only(obj: Any) -> Any:
    """The object without what only the chart adds (HELM_ONLY, wherever it stands; a map left
    empty by that goes too). RBAC rules in a fixed order (they are a set)."""
    if isinstance(obj, dict):
        out = {k: without_helm_only(v) for k, v in obj.items() if k not in HELM_ONLY}
        out = {k: v for k, v in out.items() if v != {} or obj[k] == {}}
        if "rules" in out and obj.get("kind") in {"ClusterRole", "Role"}:
            out["rules"] = sorted(out["rules"], key=json.dumps)
        return out
    if isinstance(obj, list):
        return [without_helm_only(v) for v in obj]
    return obj


def deployment(objects: dict[tuple[str, str], dict]) -> dict:
    [obj] = [o for (kind, _), o in objects.items() if kind == "Deployment"]
    return obj


def container(objects: dict[tuple[str, str], dict], name: str = "operator") -> dict:
    [c] = [c for c in deployment(objects)["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return c


def kinds(objects: dict[tuple[str, str], dict]) -> set[str]:
    return {kind for kind, _ in objects}


def test_copies_match_their_sources() -> None:
    stale = [str(copy.relative_to(REPO)) for copy, source in COPIES.items()
             if not copy.is_file() or copy.read_bytes() != source.read_bytes()]
    assert not stale, f"stale copies in the chart: {stale}; run hack/sync-chart.sh"
    extra = set((CHART / "crds").iterdir()) - set(COPIES)
    assert not extra and {p.name for p in (REPO / "crds").glob("*.yaml")} == {
        p.name for p in COPIES if p.parent.name == "crds"}, "charts/thrifty/crds/ must hold exactly crds/*.yaml"


@pytest.mark.parametrize("values", [{}, {**CUSTOM, **MONITORING_ON, "namespace": {"create": True}}],
                         ids=["defaults", "every-value-set"])
def test_chart_lints_strictly(helm: str, tmp_path: Path, values: dict) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    proc = subprocess.run([helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, "--values",
                           str(values_file)], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"helm lint --strict:\n{proc.stdout}{proc.stderr}"
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


def test_chart_versions_follow_the_operator() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    kustomization = yaml.safe_load((REPO / "manifests" / "kustomization.yaml").read_text())
    assert chart["appVersion"] == thrifty.__version__ == kustomization["images"][0]["newTag"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["scheduler"]["image"]["tag"] == KUBE_SCHEDULER_VERSION


def test_defaults_render_the_kustomize_install(helm: str, bin_dir: str, tmp_path: Path) -> None:
    """With the release name and namespace of manifests/, the objects are those of
    `kubectl kustomize manifests/` but for the chart's own labels; the Namespace only on request."""
    installed = kustomize(bin_dir, REPO / "manifests")
    with_namespace = render(helm, tmp_path, {"namespace": {"create": True}})
    assert without_helm_only(with_namespace) == without_helm_only(installed)
    assert render(helm, tmp_path) == {k: v for k, v in with_namespace.items() if k[0] != "Namespace"}


def test_monitoring_renders_the_kustomize_monitoring(helm: str, bin_dir: str, tmp_path: Path) -> None:
    """ServiceMonitor, PrometheusRule and dashboard ConfigMap as `kubectl kustomize
    manifests/monitoring/` renders them; the dashboard byte for byte."""
    monitoring = kustomize(bin_dir, REPO / "manifests" / "monitoring")
    assert kinds(monitoring) == {"ServiceMonitor", "PrometheusRule", "ConfigMap"}
    base = render(helm, tmp_path)
    rendered = {k: v for k, v in render(helm, tmp_path, MONITORING_ON).items() if k not in base}
    assert without_helm_only(rendered) == without_helm_only(monitoring)
    dashboard = rendered[("ConfigMap", "thrifty-dashboard")]
    assert dashboard["data"]["thrifty.json"] == (REPO / "manifests" / "grafana" / "thrifty.json").read_text()
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_crds_come_from_the_chart_crds_directory(helm: str, tmp_path: Path) -> None:
    crds = {name for kind, name in render(helm, tmp_path, crds=True) if kind == "CustomResourceDefinition"}
    assert crds == {"rlworkloads.thrifty.dev"}


def test_values_set_image_args_replicas_and_resources(helm: str, tmp_path: Path) -> None:
    objects = render(helm, tmp_path, CUSTOM, release="energy", namespace="platform")
    spec = deployment(objects)["spec"]
    c = container(objects)
    assert c["image"] == "registry.example.com/platform/thrifty:0.2.0-rc1"
    assert c["imagePullPolicy"] == "Always"
    assert spec["replicas"] == 3
    assert c["resources"] == CUSTOM["resources"]
    args = build_parser().parse_args(["run", *c["args"]])
    assert args.prometheus_url == CUSTOM["prometheusUrl"]
    assert args.namespace == "apps"
    assert args.interval_seconds == 30.0
    assert args.policy == "/opt/thrifty/policies/default"
    # A release name without "thrifty" in it prefixes the names; every reference follows.
    assert spec["template"]["spec"]["serviceAccountName"] == "energy-thrifty"
    assert ("ServiceAccount", "energy-thrifty") in objects
    for binding in ("ClusterRoleBinding", "RoleBinding"):
        assert objects[(binding, "energy-thrifty")]["subjects"] == [
            {"kind": "ServiceAccount", "name": "energy-thrifty", "namespace": "platform"}]
    assert {o["metadata"].get("namespace") for (kind, _), o in objects.items()
            if kind not in {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}} == {"platform"}


def test_default_args_name_no_prometheus_and_watch_everything(helm: str, tmp_path: Path) -> None:
    c = container(render(helm, tmp_path))
    assert c["image"] == f"thrifty:{thrifty.__version__}"
    args = build_parser().parse_args(["run", *c["args"]])
    assert args.prometheus_url is None and args.namespace is None


@pytest.mark.parametrize(("toggle", "kind"), [("serviceMonitor", "ServiceMonitor"),
                                              ("prometheusRule", "PrometheusRule"), ("dashboard", "ConfigMap")])
def test_each_monitoring_object_has_its_toggle(helm: str, tmp_path: Path, toggle: str, kind: str) -> None:
    base = render(helm, tmp_path)
    values = {"monitoring": {toggle: {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}}}
    objects = render(helm, tmp_path, values)
    [added] = set(objects) - set(base)
    assert added[0] == kind
    assert objects[added]["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def _grants(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in rules for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def test_watching_one_namespace_confines_the_writes_to_it(helm: str, tmp_path: Path) -> None:
    """Of the operator's RBAC: every write and every read of RLWorkloads in a Role of the watched
    namespace; cluster-wide only the reads the operator makes whatever it watches (the extender's
    view of pods and nodes), and kopf's of the namespaces; together the permissions of watching
    everything."""
    everything = _grants(render(helm, tmp_path)[("ClusterRole", RELEASE)]["rules"])
    objects = render(helm, tmp_path, {"watchNamespace": "apps"})
    cluster_wide = _grants(objects[("ClusterRole", RELEASE)]["rules"])
    role = objects[("Role", RELEASE)]
    assert role["metadata"]["namespace"] == "apps"
    assert objects[("RoleBinding", RELEASE)]["metadata"]["namespace"] == "apps"
    assert objects[("RoleBinding", RELEASE)]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": RELEASE}
    namespaces = {("", "namespaces", "list"), ("", "namespaces", "watch")}
    assert cluster_wide == namespaces | {("", "pods", "list"), ("", "pods", "watch"), ("", "nodes", "list"),
                                         ("", "nodes", "watch"), ("metrics.k8s.io", "nodes", "list"),
                                         ("metrics.k8s.io", "pods", "list"),
                                         ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
                                         ("apiextensions.k8s.io", "customresourcedefinitions", "watch")}
    in_namespace = _grants(role["rules"])
    assert cluster_wide | in_namespace == everything | namespaces
    assert not {verb for _, _, verb in cluster_wide} & WRITES


@pytest.mark.parametrize("values", [{}, {"watchNamespace": "apps"}])
def test_the_leader_lease_is_the_only_one_the_operator_may_write(helm: str, tmp_path: Path, values: dict) -> None:
    """The Role of the leader election: in the release's namespace, the Lease that
    ``--leader-election-lease`` names (create, then get and update of that name only), whatever
    namespace is watched."""
    objects = render(helm, tmp_path, values, release="thrifty-ops")
    role, binding = objects[("Role", "thrifty-ops-leader")], objects[("RoleBinding", "thrifty-ops-leader")]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["thrifty-ops"],
         "verbs": ["get", "update"]}]
    assert binding["roleRef"]["name"] == "thrifty-ops-leader"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "thrifty-ops", "namespace": NAMESPACE}]
    args = objects[("Deployment", "thrifty-ops")]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--leader-election-lease=thrifty-ops" in args


SCHEDULER_RBAC = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def test_one_namespace_leaves_the_scheduler_its_cluster_wide_rbac(helm: str, tmp_path: Path) -> None:
    """kube-scheduler places pods of `schedulerName: thrifty` in every namespace and its filters
    read the whole cluster, so watching one namespace changes none of its RBAC."""
    name = f"{RELEASE}-scheduler"
    everything = render(helm, tmp_path)
    one_namespace = render(helm, tmp_path, {"watchNamespace": "apps"})
    for kind in SCHEDULER_RBAC:
        assert one_namespace[(kind, name)] == everything[(kind, name)]
    assert {("", "nodes", "list"), ("", "pods", "watch"), ("", "pods/binding", "create")} <= _grants(
        one_namespace[("ClusterRole", name)]["rules"])
    assert one_namespace[("Role", name)]["metadata"]["namespace"] == NAMESPACE


def test_scheduler_values_and_names_follow_the_release(helm: str, tmp_path: Path) -> None:
    """The scheduler container's image and resources come from `scheduler`; its ConfigMap, RBAC
    and Lease are named after the release, the Lease in the release's namespace, and the rest of
    the configuration is manifests/scheduler-config.yaml's."""
    resources = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    values = {"scheduler": {"image": {"repository": "registry.example.com/kube-scheduler", "tag": "v1.37.3",
                                      "pullPolicy": "Always"}, "resources": resources}}
    objects = render(helm, tmp_path, values, release="energy", namespace="platform")
    c = container(objects, "kube-scheduler")
    assert c["image"] == "registry.example.com/kube-scheduler:v1.37.3"
    assert c["imagePullPolicy"] == "Always"
    assert c["resources"] == resources
    assert "--no-kube-scheduler" in container(objects)["args"]
    name = "energy-thrifty-scheduler"
    [volume] = [v for v in deployment(objects)["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == name
    config = yaml.safe_load(objects[("ConfigMap", name)]["data"]["config.yaml"])
    assert config["leaderElection"]["resourceName"] == name
    assert config["leaderElection"]["resourceNamespace"] == "platform"
    source = yaml.safe_load(yaml.safe_load((REPO / "manifests" / "scheduler-config.yaml").read_text())[
        "data"]["config.yaml"])
    source["leaderElection"].update(resourceName=name, resourceNamespace="platform")
    assert config == source
    role = objects[("Role", name)]
    assert role["metadata"]["namespace"] == "platform"
    assert [name] in [rule.get("resourceNames") for rule in role["rules"]]
    for binding in ("ClusterRoleBinding", "RoleBinding"):
        assert objects[(binding, name)]["subjects"] == [
            {"kind": "ServiceAccount", "name": "energy-thrifty", "namespace": "platform"}]


def test_default_scheduler_image_is_the_release_the_project_builds(helm: str, tmp_path: Path) -> None:
    c = container(render(helm, tmp_path), "kube-scheduler")
    assert c["image"] == f"registry.k8s.io/kube-scheduler:{KUBE_SCHEDULER_VERSION}"
