"""The simulator's pods, stored column-wise in preallocated slots.

A pod lives in a slot (a row of every column) from creation to deletion; a freed slot is reused
by the next pod. Columns cover every slot, alive or not, so a step is a few vector operations
over fixed arrays; ``alive`` says which rows mean something. When every slot is taken the
columns double.

Usage history is a ring buffer of shape ``(2 * window, slots)``. Each step writes one sample
into two contiguous rows, ``r`` and ``r + window``, so that the last ``window`` samples, oldest
first, are always the single slice ``[head, head + window)``: a snapshot gathers them in one copy
instead of reordering a wrapped buffer. ``head`` is the row written next (the oldest sample).
"""

from __future__ import annotations

import numpy as np

from thrifty.snapshot import NO_WORKLOAD, UNBOUND

_SCALAR_COLUMNS: dict[str, tuple[type, float]] = {
    "alive": (bool, False),
    "workload": (np.int64, NO_WORKLOAD),
    "node": (np.int64, UNBOUND),
    "cpu_request_millicores": (float, 0.0),
    "cpu_limit_millicores": (float, np.inf),
    "memory_request_bytes": (float, 0.0),
    "memory_limit_bytes": (float, np.inf),
    "background_cpu_millicores": (float, 0.0),
    "background_memory_bytes": (float, 0.0),
    "created_seconds": (float, 0.0),
    "serial": (np.int64, -1),
    "restart_remaining_seconds": (float, 0.0),
    "consecutive_ooms": (np.int64, 0),
    "phase_steps": (np.int64, 0),
    "cpu_weight": (float, 1.0),
    "cpu_usage_millicores": (float, np.nan),
    "memory_usage_bytes": (float, np.nan),
    "throttled_periods_in_window": (float, 0.0),
    "oom_kills_in_window": (float, 0.0),
    "warmup_remaining_seconds": (float, 0.0),
}
"""Per-pod columns with their dtype and the value of an empty slot."""

_HISTORY_COLUMNS: dict[str, tuple[type, float]] = {
    "cpu_history_millicores": (float, np.nan),
    "memory_history_bytes": (float, np.nan),
    "throttled_periods_history": (float, 0.0),
    "oom_kills_history": (float, 0.0),
}
"""Ring-buffer columns (2 * window, slots) with their dtype and empty value."""


class PodStore:
    """Columns of pod attributes by slot, plus names and a name -> slot index."""

    alive: np.ndarray
    workload: np.ndarray
    """Workload index, or ``NO_WORKLOAD`` for a background pod."""
    node: np.ndarray
    """Node index, or ``UNBOUND`` while Pending."""
    cpu_request_millicores: np.ndarray
    cpu_limit_millicores: np.ndarray
    memory_request_bytes: np.ndarray
    memory_limit_bytes: np.ndarray
    background_cpu_millicores: np.ndarray
    """CPU a background pod uses while running (workload pods follow their workload's series)."""
    background_memory_bytes: np.ndarray
    created_seconds: np.ndarray
    serial: np.ndarray
    """Creation order, cluster-wide; breaks ties between pods created at the same time."""
    restart_remaining_seconds: np.ndarray
    """Time until an OOM-killed container runs again (0: it runs)."""
    consecutive_ooms: np.ndarray
    """OOM kills since the pod last ran a whole step: sets the restart backoff."""
    phase_steps: np.ndarray
    """Offset, in steps, at which a workload pod reads its workload's memory series (and
    baseline CPU series, when the scenario gives replicas their own CPU phases)."""
    cpu_weight: np.ndarray
    """A workload pod's weight in the split of its workload's request-driven and shared CPU
    over the running replicas (1: an equal share)."""
    cpu_usage_millicores: np.ndarray
    """CPU used in the last step (NaN if the pod did not run)."""
    memory_usage_bytes: np.ndarray
    throttled_periods_in_window: np.ndarray
    """Sum of ``throttled_periods_history`` over the window, kept up to date by :meth:`record`."""
    oom_kills_in_window: np.ndarray
    """Sum of ``oom_kills_history`` over the window."""
    warmup_remaining_seconds: np.ndarray
    """Time until a migrated pod has its warm state back (0: warm); its start-up is
    ``restart_remaining_seconds`` (:mod:`thrifty.sim.migration`)."""
    cpu_history_millicores: np.ndarray
    memory_history_bytes: np.ndarray
    throttled_periods_history: np.ndarray
    oom_kills_history: np.ndarray

    def __init__(self, capacity: int, window: int) -> None:
        self.window = window
        self.head = 0
        self.names: list[str | None] = [None] * capacity
        self.slot_of: dict[str, int] = {}
        self._next_serial = 0
        for name, (dtype, empty) in _SCALAR_COLUMNS.items():
            setattr(self, name, np.full(capacity, empty, dtype=dtype))
        for name, (dtype, empty) in _HISTORY_COLUMNS.items():
            setattr(self, name, np.full((2 * window, capacity), empty, dtype=dtype))

    @property
    def capacity(self) -> int:
        return len(self.names)

    def _grow(self, needed: int) -> None:
        old = self.capacity
        new = max(2 * old, old + needed, 16)
        for name, (dtype, empty) in _SCALAR_COLUMNS.items():
            column: np.ndarray = np.full(new, empty, dtype=dtype)
            column[:old] = getattr(self, name)
            setattr(self, name, column)
        for name, (dtype, empty) in _HISTORY_COLUMNS.items():
            column = np.full((2 * self.window, new), empty, dtype=dtype)
            column[:, :old] = getattr(self, name)
            setattr(self, name, column)
        self.names.extend([None] * (new - old))

    def add(
        self,
        names: list[str],
        *,
        workload: np.ndarray | int,
        cpu_request_millicores: np.ndarray | float,
        cpu_limit_millicores: np.ndarray | float,
        memory_request_bytes: np.ndarray | float,
        memory_limit_bytes: np.ndarray | float,
        created_seconds: float,
        background_cpu_millicores: np.ndarray | float = 0.0,
        background_memory_bytes: np.ndarray | float = 0.0,
        phase_steps: np.ndarray | int = 0,
        cpu_weight: np.ndarray | float = 1.0,
    ) -> np.ndarray:
        """Create Pending pods; returns their slots (in the order of ``names``)."""
        count = len(names)
        duplicate = next((n for n in names if n in self.slot_of), None)
        if duplicate is not None or len(set(names)) != count:
            raise ValueError(f"pod name already in use: {duplicate or names}")
        free = np.flatnonzero(~self.alive)
        if len(free) < count:
            self._grow(count - len(free))
            free = np.flatnonzero(~self.alive)
        slots = free[:count]
        for name, (_dtype, empty) in _SCALAR_COLUMNS.items():
            getattr(self, name)[slots] = empty
        for name, (_dtype, empty) in _HISTORY_COLUMNS.items():
            getattr(self, name)[:, slots] = empty
        self.alive[slots] = True
        self.workload[slots] = workload
        self.cpu_request_millicores[slots] = cpu_request_millicores
        self.cpu_limit_millicores[slots] = cpu_limit_millicores
        self.memory_request_bytes[slots] = memory_request_bytes
        self.memory_limit_bytes[slots] = memory_limit_bytes
        self.background_cpu_millicores[slots] = background_cpu_millicores
        self.background_memory_bytes[slots] = background_memory_bytes
        self.phase_steps[slots] = phase_steps
        self.cpu_weight[slots] = cpu_weight
        self.created_seconds[slots] = created_seconds
        self.serial[slots] = np.arange(self._next_serial, self._next_serial + count)
        self._next_serial += count
        for slot, name in zip(slots.tolist(), names, strict=True):
            self.names[slot] = name
            self.slot_of[name] = slot
        return slots

    def remove(self, slots: np.ndarray) -> None:
        """Delete the pods in ``slots``; their slots become free."""
        for slot in np.asarray(slots, dtype=np.int64).tolist():
            name = self.names[slot]
            if name is not None:
                del self.slot_of[name]
            self.names[slot] = None
        self.alive[slots] = False
        self.node[slots] = UNBOUND
        self.workload[slots] = NO_WORKLOAD

    def record(self, running: np.ndarray, cpu: np.ndarray, memory: np.ndarray,
               throttled_periods: np.ndarray, oom_killed: np.ndarray) -> None:
        """Write one step of history: usage of the ``running`` slots, OOM kills of ``oom_killed``.

        Pods that did not run get NaN usage, as a metrics pipeline has no sample for them.
        """
        rows = [self.head, self.head + self.window]
        # Counts leaving the window (the oldest row, about to be overwritten) leave the totals.
        self.throttled_periods_in_window -= self.throttled_periods_history[self.head]
        self.oom_kills_in_window -= self.oom_kills_history[self.head]
        for column, value, missing, selected in (
            (self.cpu_history_millicores, cpu, np.nan, running),
            (self.memory_history_bytes, memory, np.nan, running),
            (self.throttled_periods_history, throttled_periods, 0.0, running),
            (self.oom_kills_history, 1.0, 0.0, oom_killed),
        ):
            for row in rows:
                column[row] = missing
                column[row, selected] = value
        self.throttled_periods_in_window += self.throttled_periods_history[self.head]
        self.oom_kills_in_window += self.oom_kills_history[self.head]
        self.cpu_usage_millicores[:] = np.nan
        self.cpu_usage_millicores[running] = cpu
        self.memory_usage_bytes[:] = np.nan
        self.memory_usage_bytes[running] = memory
        self.head = (self.head + 1) % self.window

    def history_rows(self) -> slice:
        """History rows from the oldest to the newest sample."""
        return slice(self.head, self.head + self.window)
