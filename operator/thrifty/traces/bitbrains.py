"""Bitbrains GWA-T-12 (``fastStorage`` / ``Rnd``): per-VM CPU and memory, with provisioned size.

One file per VM, fields separated by ``;`` plus a tab, with a header::

    Timestamp [ms];  CPU cores;  CPU capacity provisioned [MHZ];  CPU usage [MHZ];
    CPU usage [%];  Memory capacity provisioned [KB];  Memory usage [KB];  (disk, network...)

Conversions (per sample, because a VM can be resized during the trace):

- timestamps are Unix **seconds**, despite the ``[ms]`` in the header;
- CPU: ``usage_MHz / (capacity_MHz / cores) * 1000`` millicores, i.e. busy cores. Usage is
  capped at ``cores * 1000``: about 3 % of samples exceed the provisioned MHz by up to 26 % (clock
  boost above the nominal frequency), and a VM cannot keep more cores busy than it has;
- memory: KB x 1024 bytes, capped at the provisioned memory (a handful of samples exceed it,
  up to 512-fold, which are measurement glitches);
- a sample whose provisioned CPU (cores or MHz) or memory is 0 is NaN for that resource: the VM
  was not running or not measured (57 of the 250 ``Rnd`` VMs have such samples, with usage 0).

The VM's ``cpu_capacity_millicores`` and ``memory_capacity_bytes`` are the largest provisioned
size seen in the trace.

Resampling: each VM is put on a regular grid of ``step_seconds`` (by default the most common
interval in the input, 300 s for GWA-T-12) starting at its first sample, with
:func:`~thrifty.traces.timegrid.anchored_bins`: duplicated samples (about 4 % of rows) are
averaged, a drifting sampler clock stays aligned, and a gap in the samples becomes NaN bins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from thrifty.traces.model import ContainerUsage, Trace, TraceFormatError
from thrifty.traces.sources import Member, members
from thrifty.traces.table import numbers, read_table
from thrifty.traces.timegrid import anchored_bins, bin_means, typical_step

TIMESTAMP = "Timestamp [ms]"
CORES = "CPU cores"
CPU_CAPACITY = "CPU capacity provisioned [MHZ]"
CPU_USAGE = "CPU usage [MHZ]"
MEMORY_CAPACITY = "Memory capacity provisioned [KB]"
MEMORY_USAGE = "Memory usage [KB]"
COLUMNS = (TIMESTAMP, CORES, CPU_CAPACITY, CPU_USAGE, MEMORY_CAPACITY, MEMORY_USAGE)

NOMINAL_STEP_SECONDS = 300.0
"""GWA-T-12's sampling interval, used when a file has too few samples to infer it."""

_KB = 1024


@dataclass(frozen=True)
class _VmSamples:
    """One VM's samples, sorted by time, already in millicores and bytes."""

    name: str
    times: np.ndarray
    cpu_millicores: np.ndarray
    cpu_capacity_millicores: np.ndarray
    memory_bytes: np.ndarray
    memory_capacity_bytes: np.ndarray


def _read_vm(member: Member) -> _VmSamples:
    table = read_table(member, COLUMNS, delimiter=";")
    times = numbers(table, TIMESTAMP)
    cores = numbers(table, CORES, gaps=True)
    cpu_capacity_mhz = numbers(table, CPU_CAPACITY, gaps=True)
    cpu_usage_mhz = numbers(table, CPU_USAGE, gaps=True)
    memory_capacity = numbers(table, MEMORY_CAPACITY, gaps=True) * _KB
    memory_usage = numbers(table, MEMORY_USAGE, gaps=True) * _KB

    # Zero provisioned means "not running or not measured": NaN, not a division by zero.
    cpu_known = (cores > 0) & (cpu_capacity_mhz > 0)
    cpu_capacity = np.where(cpu_known, cores * 1000.0, np.nan)
    # usage / (capacity / cores): MHz used over MHz per core gives busy cores.
    busy_cores = np.full(len(times), np.nan)
    np.divide(cpu_usage_mhz * cores, cpu_capacity_mhz, out=busy_cores, where=cpu_known)
    memory_known = memory_capacity > 0
    memory_capacity = np.where(memory_known, memory_capacity, np.nan)

    order = np.argsort(times, kind="stable")
    return _VmSamples(
        name=member.stem,
        times=times[order],
        cpu_millicores=np.minimum(busy_cores * 1000.0, cpu_capacity)[order],
        cpu_capacity_millicores=cpu_capacity[order],
        memory_bytes=np.minimum(memory_usage, memory_capacity)[order],
        memory_capacity_bytes=memory_capacity[order],
    )


def _largest(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else float("nan")


def _on_grid(vm: _VmSamples, step: float) -> ContainerUsage:
    bins = anchored_bins(vm.times, step)
    length = int(bins[-1]) + 1 if len(bins) else 0
    return ContainerUsage(
        name=vm.name,
        step_seconds=step,
        start_seconds=float(vm.times[0]) if len(vm.times) else 0.0,
        cpu_usage_millicores=bin_means(bins, vm.cpu_millicores, length),
        memory_usage_bytes=bin_means(bins, vm.memory_bytes, length),
        request_rate_per_second=np.full(length, np.nan),
        cpu_capacity_millicores=_largest(vm.cpu_capacity_millicores),
        memory_capacity_bytes=_largest(vm.memory_capacity_bytes),
    )


def load_bitbrains(path: str | os.PathLike[str], *, step_seconds: float | None = None) -> Trace:
    """Load Bitbrains VM files into ``Trace.containers``, one per VM, named by file stem.

    ``path`` is one VM's CSV (optionally gzip), a directory of them, or a tar archive
    (``.tar``, ``.tar.gz``, ``.tar.xz``) of them. ``step_seconds`` sets the grid step; by
    default it is inferred from all VMs together, so that they share one step.
    """
    vms = [_read_vm(member) for member in members(path, suffixes=(".csv",))]
    if not vms:
        raise TraceFormatError(str(path), None, "no VM CSV files found")
    step = step_seconds or typical_step((vm.times for vm in vms), NOMINAL_STEP_SECONDS)
    return Trace(
        source="bitbrains", path=str(path), containers=tuple(_on_grid(vm, step) for vm in vms)
    )
