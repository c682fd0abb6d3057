"""The ``KubeSchedulerConfiguration`` of the kube-scheduler that runs Thrifty's profile. Pure.

One profile, ``schedulerName: thrifty``: every filter plugin of the release stays on (affinity,
spread, ports, volumes, extended resources, pod limits, taints), every score plugin is off, and
Thrifty's extender scores. kube-scheduler binds (its default binder, several pods at once): an
extender ``bind`` verb would add a second HTTP round trip per pod. The extender is ``ignorable``,
so when it is down the framework still scores (all nodes equal) and places the pod. ``thrifty scheduler-config``
prints it; ``thrifty run`` writes it for its child kube-scheduler; manifests/scheduler-config.yaml
is its ConfigMap form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import yaml

from thrifty.observe import SCHEDULER_NAME

KUBE_SCHEDULER_VERSION = "v1.37.2"
"""The kube-scheduler release the project builds (hack/build.sh) and the manifests run."""


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    """What the generated configuration is made of."""

    extender_url: str = "http://127.0.0.1:8888"
    """Base URL of Thrifty's extender (``/prioritize`` is appended): loopback."""
    extender_weight: int = 1
    """Weight of the extender's score; the only score of the profile, so any positive value."""
    http_timeout_seconds: float = 2.0
    """Longest kube-scheduler waits for one extender call before going on without it."""
    percentage_of_nodes_to_score: int = 100
    """Feasible nodes kube-scheduler looks for before scoring, as a percentage of all nodes: 100
    lets the policy see every feasible node; 0 is upstream's adaptive default (50 % of 100 nodes
    down to 5 % of 5,000 and more, never fewer than 100 nodes)."""
    lease_name: str = "thrifty-scheduler"
    """Leader-election Lease of this kube-scheduler (not kube-scheduler's own)."""
    lease_namespace: str = "kube-system"
    """Namespace of that Lease."""
    kubeconfig_path: str | None = None
    """Kubeconfig of kube-scheduler; None: in-cluster credentials."""
    client_qps: float = 50.0
    """Requests per second to the API server (upstream's default)."""
    client_burst: int = 100
    """Burst of requests above ``client_qps``."""

    def __post_init__(self) -> None:
        if not self.extender_url.startswith(("http://", "https://")):
            raise ValueError(f"SchedulerConfig.extender_url: must be an http(s) URL, got {self.extender_url!r}")
        if self.extender_weight < 1:
            raise ValueError(f"SchedulerConfig.extender_weight: must be >= 1, got {self.extender_weight!r}")
        if not 0 <= self.percentage_of_nodes_to_score <= 100:
            raise ValueError("SchedulerConfig.percentage_of_nodes_to_score: must lie in [0, 100], "
                             f"got {self.percentage_of_nodes_to_score!r}")
        for name in ("http_timeout_seconds", "client_qps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"SchedulerConfig.{name}: must be finite and > 0, got {value!r}")


def extender_entry(config: SchedulerConfig) -> dict:
    """The ``extenders`` entry, also what a cluster adds to its own kube-scheduler."""
    return {
        "urlPrefix": config.extender_url,
        "prioritizeVerb": "prioritize",
        "weight": config.extender_weight,
        "enableHTTPS": config.extender_url.startswith("https://"),
        "nodeCacheCapable": True,
        "ignorable": True,
        "httpTimeout": f"{config.http_timeout_seconds:g}s",
    }


def thrifty_profile() -> dict:
    """The ``thrifty`` profile: upstream's plugins, with every score plugin disabled."""
    return {"schedulerName": SCHEDULER_NAME, "plugins": {"score": {"disabled": [{"name": "*"}]}}}


def scheduler_configuration(config: SchedulerConfig) -> dict:
    client: dict = {"qps": config.client_qps, "burst": config.client_burst}
    if config.kubeconfig_path:
        client["kubeconfig"] = config.kubeconfig_path
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": client,
        "leaderElection": {"leaderElect": True, "resourceLock": "leases", "resourceName": config.lease_name,
                           "resourceNamespace": config.lease_namespace},
        "percentageOfNodesToScore": config.percentage_of_nodes_to_score,
        "profiles": [thrifty_profile()],
        "extenders": [extender_entry(config)],
    }


def render(config: SchedulerConfig) -> str:
    return yaml.safe_dump(scheduler_configuration(config), sort_keys=False)


def render_configmap(config: SchedulerConfig, *, name: str = "thrifty-scheduler",
                     namespace: str = "thrifty-system") -> str:
    """The configuration as the ConfigMap the Deployment's kube-scheduler container mounts."""
    configmap = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {
            "app.kubernetes.io/name": "thrifty", "app.kubernetes.io/component": "scheduler",
            "app.kubernetes.io/part-of": "thrifty"}},
        "data": {"config.yaml": render(config)},
    }
    header = "# Generated by `thrifty scheduler-config --configmap`; tests/unit/test_scheduler_config.py checks it.\n"
    return header + yaml.dump(configmap, Dumper=_BlockDumper, sort_keys=False)


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as ``|`` blocks, so the ConfigMap's config reads as YAML."""


_BlockDumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))
