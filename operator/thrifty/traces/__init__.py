"""Trace loaders: real workload traces in many formats, loaded into one common model.

``load(path)`` recognises the format from the content and returns a :class:`Trace`; each format
also has its own loader with format-specific options (units, assumed capacities, grid step).
Every loader accepts a plain or gzip-compressed file, and, where a trace is several files, a tar
archive or a directory of them. A malformed file raises :class:`TraceFormatError` naming the file,
the line and the problem.

=============  ===========================  ===============================================
format         loader                        source
=============  ===========================  ===============================================
openb-nodes    :func:`load_openb_nodes`      Alibaba cluster-trace-gpu-v2023 node list
openb-pods     :func:`load_openb_pods`       Alibaba cluster-trace-gpu-v2023 pod list
bitbrains      :func:`load_bitbrains`        Bitbrains GWA-T-12 per-VM CSV files
vasim          :func:`load_vasim`            microsoft/vasim container CPU (Alibaba 2018)
genai          :func:`load_genai`            Alibaba cluster-trace-v2026-GenAI qps + memory
azure-llm      :func:`load_azure_llm`        Azure LLM inference arrivals (Splitwise)
callgraphs     :func:`load_callgraphs`       Alibaba 2021 microservice call graphs (DGG)
=============  ===========================  ===============================================
"""

from __future__ import annotations

import os
from collections.abc import Callable

from thrifty.traces.azure_llm import load_azure_llm
from thrifty.traces.bitbrains import load_bitbrains
from thrifty.traces.callgraphs import load_callgraphs
from thrifty.traces.detect import detect_format
from thrifty.traces.genai import load_genai
from thrifty.traces.model import (
    Arrivals,
    CallGraph,
    ContainerUsage,
    NodeInventory,
    PodStream,
    Trace,
    TraceFormatError,
)
from thrifty.traces.openb import load_openb_nodes, load_openb_pods
from thrifty.traces.vasim import load_vasim

LOADERS: dict[str, Callable[[str | os.PathLike[str]], Trace]] = {
    "openb-nodes": load_openb_nodes,
    "openb-pods": load_openb_pods,
    "bitbrains": load_bitbrains,
    "vasim": load_vasim,
    "genai": load_genai,
    "azure-llm": load_azure_llm,
    "callgraphs": load_callgraphs,
}

FORMATS: tuple[str, ...] = tuple(LOADERS)
"""The format names that :func:`load` accepts (and ``Trace.source`` takes)."""


def load(path: str | os.PathLike[str], format: str | None = None) -> Trace:
    """Load the trace at ``path``; detect its format from the content when ``format`` is None.

    Uses each loader's defaults; call the format's loader directly to change them.
    """
    if format is None:
        format = detect_format(path)
    if format not in LOADERS:
        raise ValueError(f"unknown trace format {format!r}; known: {', '.join(FORMATS)}")
    return LOADERS[format](path)


__all__ = [
    "FORMATS",
    "LOADERS",
    "Arrivals",
    "CallGraph",
    "ContainerUsage",
    "NodeInventory",
    "PodStream",
    "Trace",
    "TraceFormatError",
    "detect_format",
    "load",
    "load_azure_llm",
    "load_bitbrains",
    "load_callgraphs",
    "load_genai",
    "load_openb_nodes",
    "load_openb_pods",
    "load_vasim",
]
