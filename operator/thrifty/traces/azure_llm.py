"""Azure LLM inference traces (AzurePublicDataset, Splitwise): one row per request arrival.

Format::

    TIMESTAMP,ContextTokens,GeneratedTokens
    2023-11-16 18:15:46.6805900,374,44

The timestamp is ``YYYY-MM-DD HH:MM:SS`` with an optional fraction of any length (the 2023
files have 7 digits, more than Python's ``datetime`` parses) and an optional UTC offset (the
2024 files end in ``+00:00``). Token counts are non-negative integers.

The trace becomes ``Trace.arrivals`` (times relative to the first arrival, sorted) and one
ContainerUsage (named by the file stem) whose ``request_rate_per_second`` is the number of
arrivals per bin of ``step_seconds`` divided by the bin width. The default bin,
:data:`DEFAULT_STEP_SECONDS` = 10 s, is finer than the Kubernetes HPA's 15 s sync period, so a
scaling policy sees every burst it could react to, yet coarse enough that a rate of a few requests
per second is not mostly zeros. Bins run from the first arrival; the last bin ends at or after the
last arrival and is divided by the full bin width too.
"""

from __future__ import annotations

import os
import re

import numpy as np

from thrifty.traces.model import Arrivals, ContainerUsage, Trace
from thrifty.traces.sources import single_member
from thrifty.traces.table import integers, read_table, timestamps

TIMESTAMP, CONTEXT_TOKENS, GENERATED_TOKENS = "TIMESTAMP", "ContextTokens", "GeneratedTokens"

DEFAULT_STEP_SECONDS = 10.0

_TIME = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?"
    r"(Z|[+-]\d{2}:?\d{2})?"
)


def load_azure_llm(
    path: str | os.PathLike[str], *, step_seconds: float = DEFAULT_STEP_SECONDS
) -> Trace:
    """Load an Azure LLM arrival trace (CSV, optionally gzip): ``arrivals`` and a rate series."""
    if step_seconds <= 0:
        raise ValueError(f"step_seconds must be positive, not {step_seconds}")
    member = single_member(path)
    table = read_table(member, (TIMESTAMP, CONTEXT_TOKENS, GENERATED_TOKENS))
    times = timestamps(table, TIMESTAMP, _TIME, "expected YYYY-MM-DD HH:MM:SS.fffffff")
    context = integers(table, CONTEXT_TOKENS)
    generated = integers(table, GENERATED_TOKENS)

    order = np.argsort(times, kind="stable")
    relative = times[order] - times[order[0]] if len(times) else times
    length = int(relative[-1] // step_seconds) + 1 if len(relative) else 0
    counts = np.bincount((relative // step_seconds).astype(np.int64), minlength=length)
    rate = ContainerUsage(
        name=member.stem,
        step_seconds=step_seconds,
        start_seconds=0.0,
        cpu_usage_millicores=np.full(length, np.nan),
        memory_usage_bytes=np.full(length, np.nan),
        request_rate_per_second=counts / step_seconds,
    )
    arrivals = Arrivals(
        time_seconds=relative,
        input_tokens=context[order],
        output_tokens=generated[order],
    )
    return Trace(source="azure-llm", path=str(path), containers=(rate,), arrivals=arrivals)
