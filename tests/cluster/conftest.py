"""Fixtures shared by the cluster tests."""

from __future__ import annotations

import pytest
from kubernetes import client, config

from tests.conftest import Cluster


@pytest.fixture(scope="module")
def core(cluster: Cluster) -> client.CoreV1Api:
    """The core/v1 API of the session's cluster, through the synchronous Python client."""
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    yield client.CoreV1Api(api)
    api.close()
