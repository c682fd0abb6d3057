"""Features: the one module that turns a snapshot into what the policy networks read.

Pure numpy; the gym environments and the live operator both call it, so training and serving
see identical numbers. Every matrix is float64, finite (no NaN, no inf) and comes with a tuple
of column names; ``docs/features.md`` defines each column, its unit and its default.

==============================  ==================================  ===========================
function                        shape                               columns
==============================  ==================================  ===========================
``container_features(...)``     (containers, F)                     ``FEATURE_NAMES``
``from_snapshot(snapshot)``     ContainerFeatures (containers, ...)  ``CONTAINER_OBSERVATION_NAMES``
``pod_features(snapshot)``      ContainerFeatures (pods, ...)        ``CONTAINER_OBSERVATION_NAMES``
``node_features(snapshot)``     (nodes, F_node)                     ``NODE_FEATURE_NAMES``
``placement_observation(...)``  dict, ``node_rows`` (nodes, ...)    ``PLACEMENT_ROW_NAMES``
``workload_features(snapshot)`` (workloads, F_w)                    ``WORKLOAD_FEATURE_NAMES``
==============================  ==================================  ===========================

:class:`RunningNormaliser` standardises any of them for a network and is saved with the
policy, together with :data:`SCHEMA_VERSION`.
"""

from thrifty.features.container import FEATURE_NAMES, container_features
from thrifty.features.context import (
    CONTAINER_OBSERVATION_NAMES,
    CONTEXT_FEATURE_NAMES,
    ContainerFeatures,
    PodFeatureCache,
    from_snapshot,
    pod_features,
)
from thrifty.features.normaliser import RunningNormaliser
from thrifty.features.placement import (
    NODE_FEATURE_NAMES,
    PAIR_FEATURE_NAMES,
    PLACEMENT_ROW_NAMES,
    POD_FEATURE_NAMES,
    node_features,
    placement_observation,
)
from thrifty.features.schema import SCHEMA_VERSION, fingerprint
from thrifty.features.workload import WORKLOAD_FEATURE_NAMES, workload_features

SCHEMA_NAMES: tuple[tuple[str, ...], ...] = (
    FEATURE_NAMES,
    CONTEXT_FEATURE_NAMES,
    NODE_FEATURE_NAMES,
    POD_FEATURE_NAMES,
    PAIR_FEATURE_NAMES,
    WORKLOAD_FEATURE_NAMES,
)
"""Every column tuple that :data:`SCHEMA_VERSION` versions."""


def schema_fingerprint() -> str:
    """Fingerprint of the current column names (compare with ``schema.SCHEMA_FINGERPRINTS``)."""
    return fingerprint(SCHEMA_NAMES)


__all__ = [
    "CONTAINER_OBSERVATION_NAMES",
    "CONTEXT_FEATURE_NAMES",
    "FEATURE_NAMES",
    "NODE_FEATURE_NAMES",
    "PAIR_FEATURE_NAMES",
    "PLACEMENT_ROW_NAMES",
    "POD_FEATURE_NAMES",
    "SCHEMA_NAMES",
    "SCHEMA_VERSION",
    "WORKLOAD_FEATURE_NAMES",
    "ContainerFeatures",
    "PodFeatureCache",
    "RunningNormaliser",
    "container_features",
    "from_snapshot",
    "node_features",
    "placement_observation",
    "pod_features",
    "schema_fingerprint",
    "workload_features",
]
