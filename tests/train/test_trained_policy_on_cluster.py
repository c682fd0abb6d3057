"""The artefact of the smoke training run, served by the operator on the real cluster."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Cluster
from tests.support.operator import (
    Kubectl,
    Operator,
    create_namespace,
    delete_namespace,
    install_crds,
    rlworkload,
    wait_for,
)
from thrifty.metrics import FALLBACK_KINDS


@pytest.fixture
def namespace(cluster: Cluster):
    install_crds(cluster)
    name = create_namespace(cluster, "thrifty-trained")
    yield name
    delete_namespace(cluster, name)


def test_operator_serves_the_trained_artefact(cluster: Cluster, namespace: str, trained_policy, tmp_path) -> None:
    version = json.loads((trained_policy / "policy.json").read_text())["version"]
    operator = Operator(cluster, namespace=namespace, log_path=tmp_path / "thrifty-run.log",
                        policy=str(trained_policy)).start()
    try:
        k = Kubectl(cluster, namespace)
        k.apply(rlworkload("trained", replicas={"min": 2, "max": 3}))

        def served() -> dict | None:
            status = k.get("rlworkload", "trained").get("status", {})
            bound = [p for p in k.pods_of("trained") if p["spec"].get("nodeName")]
            return status if status.get("policy") and len(bound) >= 2 else None

        status = wait_for("the trained policy to place the workload's pods", served, diagnose=operator.log_tail)
        assert status["policy"]["name"] == "smoke"
        assert status["policy"]["backend"] == "numpy"
        assert status["policy"]["version"] == version
        assert status["policy"]["fallback"] is False, operator.log_tail()
        info = operator.sample("thrifty_policy_info", name="smoke", backend="numpy")
        assert info == 1.0
        for kind in FALLBACK_KINDS:
            assert operator.sample("thrifty_policy_fallbacks", "thrifty_policy_fallbacks_total", kind=kind) == 0.0, (
                f"the heuristic stood in for the trained policy ({kind}): {operator.log_tail()}")
    finally:
        operator.stop()
