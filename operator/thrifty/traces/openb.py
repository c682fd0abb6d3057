"""Alibaba ``cluster-trace-gpu-v2023`` ("openb"): node inventory and pod placement stream.

Nodes (``openb_node_list_*.csv``)::

    sn,cpu_milli,memory_mib,gpu,model

``cpu_milli`` is millicores, ``memory_mib`` MiB (converted to bytes, x 2**20), ``gpu`` a GPU
count, ``model`` the GPU model (empty for CPU-only nodes).

Pods (``openb_pod_list_*.csv``)::

    name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,
    creation_time,deletion_time,scheduled_time

Times are seconds from the trace start. Empty fields in the real data, and what they mean:

- ``scheduled_time`` is empty exactly for the ``Pending`` pods: the original scheduler never
  placed them. It becomes NaN.
- ``gpu_spec`` is empty when the pod accepts any GPU model (it is not loaded).
- ``deletion_time``, if ever empty, means the pod had not left when the trace ended: NaN.
  (Pods still running at the end carry the trace's last timestamp instead, kept as is.)
"""

from __future__ import annotations

import os

import numpy as np

from thrifty.traces.model import NodeInventory, PodStream, Trace
from thrifty.traces.sources import single_member
from thrifty.traces.table import integers, numbers, read_table, texts

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = (
    "name",
    "cpu_milli",
    "memory_mib",
    "num_gpu",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
_MIB = 2**20


def load_openb_nodes(path: str | os.PathLike[str]) -> Trace:
    """Load an openb node list (CSV, optionally gzip) into ``Trace.nodes``."""
    member = single_member(path)
    table = read_table(member, NODE_COLUMNS)
    nodes = NodeInventory(
        names=texts(table, "sn", allow_empty=False),
        cpu_capacity_millicores=numbers(table, "cpu_milli"),
        memory_capacity_bytes=numbers(table, "memory_mib") * _MIB,
        gpus=integers(table, "gpu"),
        models=texts(table, "model"),
    )
    return Trace(source="openb-nodes", path=str(path), nodes=nodes)


def load_openb_pods(path: str | os.PathLike[str]) -> Trace:
    """Load an openb pod list (CSV, optionally gzip) into ``Trace.pods``, in file order."""
    member = single_member(path)
    table = read_table(member, POD_COLUMNS)
    creation = numbers(table, "creation_time", minimum=None)
    deletion = numbers(table, "deletion_time", gaps=True, minimum=None)
    early = deletion < creation
    if early.any():
        raise table.error(int(np.argmax(early)), "deletion_time before creation_time")
    pods = PodStream(
        names=texts(table, "name", allow_empty=False),
        cpu_request_millicores=numbers(table, "cpu_milli"),
        memory_request_bytes=numbers(table, "memory_mib") * _MIB,
        creation_seconds=creation,
        deletion_seconds=deletion,
        qos=texts(table, "qos"),
        scheduled_seconds=numbers(table, "scheduled_time", gaps=True, minimum=None),
        phases=texts(table, "pod_phase"),
        gpus=integers(table, "num_gpu"),
    )
    return Trace(source="openb-pods", path=str(path), pods=pods)
