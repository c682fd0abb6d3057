"""Alibaba microservice call graphs (DGG's ``real_call_graph_renamed``, from cluster-trace-v2021).

JSON lines (usually gzip), one graph per line::

    {"type": "type0", "service": "S_100315674", "graph": "graph1",
     "nodes": [{"node": "MS_normal+2.1", "label": "normal"}, {"node": "USER", "label": "relay"}],
     "edges": [{"source": "USER", "target": "MS_normal+2.1", "weight": 1, "rpctype": "http"}],
     "num": 1757}

What the fields mean, from the data:

- ``service`` is the online service the graph belongs to; ``graph`` names one of its distinct
  call-graph shapes and ``num`` counts how many traced requests had that shape.
- Node ids are renamed per graph: ``MS_<label>+<n>.<instance>[_func<k>]``, plus ``USER`` (the
  caller, label ``relay``). The same id in two graphs is not the same microservice, so ids are
  only meaningful inside their graph. ``label`` is the node's kind: ``normal`` (a stateless
  service), ``Memcached``, ``database``, ``blackhole`` (a callee that calls nothing further),
  ``relay``.
- ``weight`` is how many calls go along the edge in one request (a positive integer in the
  shipped data). ``rpctype`` is ``rpc``, ``mc`` (memcached), ``db``, ``http`` or ``mq``.

Cleaning: a node listed twice (41 graphs do) is kept once; parallel edges with the same source,
target and rpctype (9 graphs) are merged, their weights summed, because they are one dependency.
Edges to nodes that are not listed, and negative weights, are errors.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from thrifty.traces.model import CallGraph, Trace, TraceFormatError
from thrifty.traces.sources import Member, members


class _Line:
    """One JSON line being validated: knows where it is, for error messages."""

    def __init__(self, member: Member, number: int) -> None:
        self.member, self.number = member, number

    def error(self, problem: str) -> TraceFormatError:
        return TraceFormatError(self.member.name, self.number, problem)

    def field(
        self,
        obj: dict[str, Any],
        key: str,
        kind: type | tuple[type, ...],
        where: str,
        default: Any = None,
    ) -> Any:
        """``obj[key]``, checked to be of type ``kind``; ``default`` if absent and not None."""
        if key not in obj:
            if default is not None:
                return default
            raise self.error(f"missing key {key!r} in {where}")
        value = obj[key]
        # bool is an int subclass in Python, but true/false is never a count or a weight.
        if not isinstance(value, kind) or isinstance(value, bool):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            expected = " or ".join(k.__name__ for k in kinds)
            raise self.error(f"{where}: {key!r} must be {expected}, not {value!r}")
        return value


def _graph(line: _Line, obj: dict[str, Any]) -> CallGraph:
    service = line.field(obj, "service", str, "graph")
    names: dict[str, int] = {}
    labels: list[str] = []
    for entry in line.field(obj, "nodes", list, "graph"):
        if not isinstance(entry, dict):
            raise line.error(f"node entries must be objects, not {entry!r}")
        node = line.field(entry, "node", str, "node")
        label = line.field(entry, "label", str, f"node {node!r}", default="")
        if node in names:
            if labels[names[node]] != label:
                raise line.error(f"node {node!r} listed twice with different labels")
            continue
        names[node] = len(labels)
        labels.append(label)

    merged: dict[tuple[int, int, str], float] = {}
    for entry in line.field(obj, "edges", list, "graph"):
        if not isinstance(entry, dict):
            raise line.error(f"edge entries must be objects, not {entry!r}")
        ends = []
        for end in ("source", "target"):
            node = line.field(entry, end, str, "edge")
            if node not in names:
                raise line.error(f"edge {end} {node!r} is not among the graph's nodes")
            ends.append(names[node])
        weight = float(line.field(entry, "weight", (int, float), "edge"))
        if not math.isfinite(weight) or weight < 0:
            raise line.error(f"edge weight must be a non-negative number, not {weight}")
        dependency = (ends[0], ends[1], line.field(entry, "rpctype", str, "edge"))
        merged[dependency] = merged.get(dependency, 0.0) + weight

    occurrences = line.field(obj, "num", int, "graph")
    if occurrences < 0:
        raise line.error(f"negative 'num' {occurrences}")
    return CallGraph(
        service=service,
        nodes=tuple(names),
        source=np.array([s for s, _, _ in merged], dtype=np.int64),
        target=np.array([t for _, t, _ in merged], dtype=np.int64),
        weight=np.array(list(merged.values()), dtype=np.float64),
        rpc_type=tuple(rpc for _, _, rpc in merged),
        occurrences=occurrences,
        node_labels=tuple(labels),
        graph=line.field(obj, "graph", str, "graph", default=""),
        category=line.field(obj, "type", str, "graph", default=""),
    )


def _graphs(member: Member) -> list[CallGraph]:
    graphs = []
    for number, text in enumerate(member.text().splitlines(), start=1):
        if not text.strip():
            continue
        line = _Line(member, number)
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise line.error(f"invalid JSON: {err.msg} at column {err.colno}") from None
        if not isinstance(obj, dict):
            raise line.error("expected a JSON object per line")
        graphs.append(_graph(line, obj))
    return graphs


def load_callgraphs(path: str | os.PathLike[str]) -> Trace:
    """Load call graphs (JSON lines, optionally gzip; or a tar/directory of such files)."""
    found = list(members(path, suffixes=(".jsonl", ".json")))
    if not found:
        raise TraceFormatError(str(path), None, "no JSON lines files found")
    graphs = tuple(graph for member in found for graph in _graphs(member))
    return Trace(source="callgraphs", path=str(path), call_graphs=graphs)
