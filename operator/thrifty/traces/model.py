"""The common workload model that every trace loader produces.

Each source format fills the parts it has and leaves the rest empty:

=====================  ===========================================================
source                 fills
=====================  ===========================================================
Alibaba openb nodes    ``nodes``
Alibaba openb pods     ``pods`` (the placement stream)
Bitbrains VM usage     ``containers`` (CPU and memory, with provisioned capacity)
vasim container CPU    ``containers`` (CPU only)
Alibaba GenAI          ``containers`` (request rate and memory)
Azure LLM arrivals     ``containers`` (one series: request rate) and ``arrivals``
Alibaba call graphs    ``call_graphs``
=====================  ===========================================================

Units follow the project's convention: millicores, bytes, seconds. A sample that the source
does not have is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class TraceFormatError(ValueError):
    """A trace file is malformed. The message names the file, the line and the problem."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class ContainerUsage:
    """Usage of one container (or VM) sampled at a fixed step."""

    name: str
    """Identifier within its trace (VM id, container ip, ...)."""
    step_seconds: float
    """Seconds between two samples."""
    start_seconds: float
    """Time of the first sample, relative to the trace's own epoch."""
    cpu_usage_millicores: np.ndarray
    """(T,) CPU usage; all NaN when the source has no CPU series."""
    memory_usage_bytes: np.ndarray
    """(T,) memory usage; all NaN when the source has none."""
    request_rate_per_second: np.ndarray
    """(T,) request arrival rate; all NaN when the source has none."""
    cpu_capacity_millicores: float = float("nan")
    """Provisioned CPU (the VM size, or the request), NaN when unknown."""
    memory_capacity_bytes: float = float("nan")
    """Provisioned memory, NaN when unknown."""

    def __len__(self) -> int:
        return int(self.cpu_usage_millicores.shape[0])


@dataclass(frozen=True)
class NodeInventory:
    """Real nodes with their capacities."""

    names: tuple[str, ...]
    cpu_capacity_millicores: np.ndarray
    memory_capacity_bytes: np.ndarray
    gpus: np.ndarray
    """int64 GPU count (informational: Thrifty does not place GPUs)."""
    models: tuple[str, ...]
    """Hardware model label (GPU model in openb, or empty)."""


@dataclass(frozen=True)
class PodStream:
    """Pods that arrive, run and leave: the placement stream."""

    names: tuple[str, ...]
    cpu_request_millicores: np.ndarray
    memory_request_bytes: np.ndarray
    creation_seconds: np.ndarray
    """Arrival time of each pod."""
    deletion_seconds: np.ndarray
    """Departure time; NaN when the pod never left within the trace. (openb instead gives the
    pods still running at the end the trace's last timestamp.)"""
    qos: tuple[str, ...]
    """QoS class as recorded in the trace (e.g. LS, BE, Burstable)."""
    scheduled_seconds: np.ndarray | None = None
    """When the original scheduler bound each pod; NaN for a pod it never placed (openb's
    ``Pending`` pods). None when the source does not record it."""
    phases: tuple[str, ...] = ()
    """Final pod phase as recorded (Running, Succeeded, Failed, Pending); empty if unknown."""
    gpus: np.ndarray | None = None
    """int64 GPUs requested per pod (informational, like ``NodeInventory.gpus``)."""


@dataclass(frozen=True)
class Arrivals:
    """Individual request arrivals (for the response-time model)."""

    time_seconds: np.ndarray
    """Arrival times, sorted, relative to the first arrival."""
    input_tokens: np.ndarray
    output_tokens: np.ndarray


@dataclass(frozen=True)
class CallGraph:
    """One microservice call graph: services are nodes, calls are weighted edges."""

    service: str
    """The entry service the graph belongs to."""
    nodes: tuple[str, ...]
    """Microservice ids. In the Alibaba/DGG data they are renamed per graph: the same id in two
    graphs is not the same microservice."""
    source: np.ndarray
    """int64 edge sources (index into ``nodes``)."""
    target: np.ndarray
    """int64 edge targets."""
    weight: np.ndarray
    """Calls per invocation of the graph along the edge."""
    rpc_type: tuple[str, ...]
    """``rpc``, ``mc`` (memcached), ``db``, ``http`` or ``mq`` for each edge."""
    occurrences: int
    """How often this graph was observed in the trace."""
    node_labels: tuple[str, ...] = ()
    """Kind of each node (``normal``, ``Memcached``, ``database``, ``blackhole``, ``relay``...),
    aligned with ``nodes``; empty if the source has none."""
    graph: str = ""
    """The graph's identifier within its service (e.g. ``graph12``)."""
    category: str = ""
    """The source's class for the graph (``type0``, ``type1``, ...), empty if none."""


@dataclass(frozen=True)
class Trace:
    """Everything loaded from one trace file, in the common model."""

    source: str
    """Format name, e.g. ``bitbrains``."""
    path: str
    """The file it was loaded from."""
    containers: tuple[ContainerUsage, ...] = ()
    nodes: NodeInventory | None = None
    pods: PodStream | None = None
    arrivals: Arrivals | None = None
    call_graphs: tuple[CallGraph, ...] = field(default=())
