"""Fixtures shared by the cluster tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client, config

from tests.conftest import Cluster
from tests.support import image_env


@pytest.fixture(scope="module")
def core(cluster: Cluster) -> client.CoreV1Api:
    """The core/v1 API of the session's cluster, through the synchronous Python client."""
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    yield client.CoreV1Api(api)
    api.close()


@pytest.fixture(scope="session")
def image_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``bin/`` of an environment built by the Dockerfile's own command (tests.support.image_env),
    once per session: the operator of the install and monitoring tests runs from it."""
    return image_env.build(tmp_path_factory.mktemp("image"))
