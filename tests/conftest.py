"""Shared fixtures.

Cluster tests run against a real control plane (etcd, kube-apiserver, controller-manager,
kube-scheduler, metrics-server, kwok nodes) started once per session by ``hack/cluster.sh``.
If it cannot start, every cluster test errors: they never skip.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLUSTER_NAME = os.environ.get("THRIFTY_TEST_CLUSTER", "thrifty-test")
CLUSTER_NODES = int(os.environ.get("THRIFTY_TEST_NODES", "6"))


@dataclass(frozen=True)
class Cluster:
    """A running local cluster."""

    name: str
    kubeconfig: str
    """Path of the cluster's kubeconfig."""
    bin_dir: str
    """Directory holding kubectl and the other Kubernetes binaries."""

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        """Run kubectl against this cluster and capture its output as text."""
        return subprocess.run(
            [f"{self.bin_dir}/kubectl", "--kubeconfig", self.kubeconfig, *args],
            check=check,
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )


def _last_line(command: list[str]) -> str:
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed with exit code {proc.returncode}:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"{' '.join(command)} printed nothing")
    return lines[-1].strip()


@pytest.fixture(scope="session")
def bin_dir() -> str:
    """Directory of the Kubernetes binaries and helm (hack/build.sh builds them if needed)."""
    return _last_line([str(REPO / "hack/build.sh")])


@pytest.fixture(scope="session")
def helm() -> str:
    """Path of helm alone (``hack/build.sh helm``: no Kubernetes binaries needed)."""
    return str(Path(_last_line([str(REPO / "hack/build.sh"), "helm"])) / "helm")


@pytest.fixture(scope="session")
def cluster(bin_dir: str) -> Cluster:
    """The session's local cluster; started on first use and stopped at the end."""
    kubeconfig = _last_line(
        [str(REPO / "hack/cluster.sh"), "up", "--name", CLUSTER_NAME, "--nodes", str(CLUSTER_NODES)]
    )
    if not Path(kubeconfig).is_file():
        raise RuntimeError(f"hack/cluster.sh up printed {kubeconfig!r}, which is not a kubeconfig file")
    yield Cluster(name=CLUSTER_NAME, kubeconfig=kubeconfig, bin_dir=bin_dir)
    if os.environ.get("THRIFTY_KEEP_CLUSTER") != "1":
        subprocess.run([str(REPO / "hack/cluster.sh"), "down", "--name", CLUSTER_NAME], cwd=REPO)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/cluster/ as a cluster test."""
    for item in items:
        if "tests/cluster/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.cluster)
