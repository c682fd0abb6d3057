"""Recognise a trace's format from its content (header line or first JSON object).

Content, not file name, because held-out and re-packaged copies are often renamed.
"""

from __future__ import annotations

import os

from thrifty.traces.model import TraceFormatError
from thrifty.traces.sources import members

_SIGNATURES: tuple[tuple[str, frozenset[str]], ...] = (
    ("bitbrains", frozenset({"timestamp [ms]", "cpu usage [mhz]"})),
    ("openb-nodes", frozenset({"sn", "cpu_milli", "memory_mib"})),
    ("openb-pods", frozenset({"name", "cpu_milli", "memory_mib", "creation_time"})),
    ("vasim", frozenset({"timestamp", "cpu_usage_actual"})),
    ("azure-llm", frozenset({"timestamp", "contexttokens", "generatedtokens"})),
    ("genai", frozenset({"timestamp_anon", "value", "container_ip"})),
)
"""Format name and the column names (lower case) whose presence identifies it."""

_DATA_SUFFIXES = (".csv", ".jsonl", ".json")
_SNIFF_BYTES = 65536


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format name of the trace at ``path`` (a file, archive or directory)."""
    first = next(members(path, suffixes=_DATA_SUFFIXES), None)
    if first is None:
        raise TraceFormatError(str(path), None, "no trace file found")
    head = first.data[:_SNIFF_BYTES].decode("utf-8-sig", errors="replace")
    line = next((text.strip() for text in head.splitlines() if text.strip()), "")
    if line.startswith("{"):
        return "callgraphs"
    columns = {name.strip().lower() for name in line.replace(";", ",").split(",")}
    for name, signature in _SIGNATURES:
        if signature <= columns:
            return name
    raise TraceFormatError(first.name, 1, f"unrecognised trace format (first line: {line[:120]!r})")
