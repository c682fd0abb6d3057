"""Rolling usage windows per container, the memory the live operator keeps between steps.

metrics.k8s.io answers with one usage sample per container, "now". The feature module and the
sizing actions need a window of samples (percentiles, trend, period), which the simulator has
from its trace. :class:`UsageHistory` fills that gap: every observation is recorded in a time
bucket of ``step_seconds``, and :meth:`UsageHistory.window` returns the last ``window_samples``
buckets, oldest first, NaN where nothing was observed (the operator was down, the metrics source
was down, the pod did not exist yet). Equally spaced buckets are what
:class:`thrifty.snapshot.ContainerTable` promises its readers.

The history lives in memory only. After a restart the windows refill; until then the features
see fewer valid samples (``*_valid_fraction``) rather than made-up ones.

This module does no I/O; time is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

ContainerKey = tuple[str, str]
"""``(pod UID, container)``: by UID, not name, so that a pod re-created under a deleted pod's
name (Thrifty reuses the lowest free name) starts with an empty window instead of the old pod's
peaks."""


class UsageHistory:
    """CPU and memory usage of each container in fixed time buckets."""

    def __init__(self, *, window_samples: int, step_seconds: float) -> None:
        if window_samples < 1:
            raise ValueError(f"UsageHistory.window_samples: must be >= 1, got {window_samples}")
        if not (math.isfinite(step_seconds) and step_seconds > 0):
            raise ValueError(f"UsageHistory.step_seconds: must be finite and > 0, got {step_seconds}")
        self.window_samples = window_samples
        self.step_seconds = step_seconds
        self._samples: dict[ContainerKey, dict[int, tuple[float, float]]] = {}

    def _bucket(self, time_seconds: float) -> int:
        return math.floor(time_seconds / self.step_seconds)

    def record(self, time_seconds: float, usage: Mapping[ContainerKey, tuple[float, float]]) -> None:
        """Store ``(cpu millicores, memory bytes)`` per container observed at ``time_seconds``.

        A later observation in the same bucket replaces an earlier one (the newest wins). Buckets
        that fell out of the window, and containers with nothing left in it, are dropped, so the
        memory stays bounded by the containers alive in the last window.
        """
        bucket = self._bucket(time_seconds)
        for key, sample in usage.items():
            self._samples.setdefault(key, {})[bucket] = (float(sample[0]), float(sample[1]))
        oldest = bucket - self.window_samples + 1
        for key in list(self._samples):
            kept = {b: s for b, s in self._samples[key].items() if b >= oldest}
            if kept:
                self._samples[key] = kept
            else:
                del self._samples[key]

    def window(self, key: ContainerKey, time_seconds: float) -> tuple[np.ndarray, np.ndarray]:
        """``(cpu, memory)`` arrays of ``window_samples`` buckets ending at ``time_seconds``."""
        cpu = np.full(self.window_samples, np.nan)
        memory = np.full(self.window_samples, np.nan)
        oldest = self._bucket(time_seconds) - self.window_samples + 1
        for bucket, (cpu_sample, memory_sample) in self._samples.get(key, {}).items():
            position = bucket - oldest
            if 0 <= position < self.window_samples:
                cpu[position], memory[position] = cpu_sample, memory_sample
        return cpu, memory

    def __len__(self) -> int:
        """Containers with at least one sample in the window."""
        return len(self._samples)
