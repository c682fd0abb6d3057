"""Trace loaders: the shipped slices, tiny hand-written files, variants and malformed files.

Only ``traces/`` is read, never ``../shared``.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from thrifty.traces import (
    FORMATS,
    Trace,
    TraceFormatError,
    detect_format,
    load,
    load_azure_llm,
    load_bitbrains,
    load_genai,
    load_vasim,
)

TRACES = Path(__file__).resolve().parents[2] / "traces"

# --- the shipped slices ----------------------------------------------------------------------

SLICES = [
    ("alibaba-openb/nodes.csv.gz", "openb-nodes"),
    ("alibaba-openb/pods-train.csv.gz", "openb-pods"),
    ("alibaba-openb/pods-heldout.csv.gz", "openb-pods"),
    ("bitbrains-rnd/vms-train.tar.xz", "bitbrains"),
    ("bitbrains-rnd/vms-heldout.tar.xz", "bitbrains"),
    ("vasim-alibaba/c_12104_cpu-train.csv.gz", "vasim"),
    ("vasim-alibaba/c_12104_cpu-heldout.csv.gz", "vasim"),
    ("alibaba-genai/genai-train.tar.gz", "genai"),
    ("alibaba-genai/genai-heldout.tar.gz", "genai"),
    ("azure-llm/conv-train.csv.gz", "azure-llm"),
    ("azure-llm/conv-heldout.csv.gz", "azure-llm"),
    ("alibaba-callgraphs/callgraphs-train.jsonl.gz", "callgraphs"),
    ("alibaba-callgraphs/callgraphs-heldout.jsonl.gz", "callgraphs"),
]

TRAIN_HELDOUT = [
    (train, heldout)
    for train, _ in SLICES
    if "-train" in train
    for heldout, _ in SLICES
    if heldout == train.replace("-train", "-heldout")
]


def check_invariants(trace: Trace) -> None:
    """Units and shapes that every trace must satisfy, whatever its source."""
    for c in trace.containers:
        n = len(c)
        assert c.step_seconds > 0
        for series in (c.cpu_usage_millicores, c.memory_usage_bytes, c.request_rate_per_second):
            assert series.shape == (n,) and series.dtype == np.float64
            assert not np.any(series[np.isfinite(series)] < 0)
            assert not np.any(np.isinf(series))
        if np.isfinite(c.cpu_capacity_millicores):
            assert not np.any(c.cpu_usage_millicores > c.cpu_capacity_millicores)
        if np.isfinite(c.memory_capacity_bytes):
            assert not np.any(c.memory_usage_bytes > c.memory_capacity_bytes)
    if trace.nodes is not None:
        nodes = trace.nodes
        assert len(nodes.names) == len(nodes.cpu_capacity_millicores) == len(nodes.models)
        assert np.all(nodes.cpu_capacity_millicores > 0)
        assert np.all(nodes.memory_capacity_bytes > 0) and np.all(nodes.gpus >= 0)
    if trace.pods is not None:
        pods = trace.pods
        assert len(pods.names) == len(pods.creation_seconds) == len(pods.qos) == len(pods.phases)
        assert np.all(pods.cpu_request_millicores >= 0) and np.all(pods.memory_request_bytes >= 0)
        left = np.isfinite(pods.deletion_seconds)
        assert np.all(pods.deletion_seconds[left] >= pods.creation_seconds[left])
    if trace.arrivals is not None:
        arrivals = trace.arrivals
        assert np.all(np.diff(arrivals.time_seconds) >= 0)
        assert len(arrivals.time_seconds) == 0 or arrivals.time_seconds[0] == 0
        assert np.all(arrivals.input_tokens >= 0) and np.all(arrivals.output_tokens >= 0)
    for graph in trace.call_graphs:
        assert len(graph.node_labels) == len(graph.nodes) == len(set(graph.nodes))
        assert len(graph.source) == len(graph.target) == len(graph.weight) == len(graph.rpc_type)
        assert np.all((graph.source >= 0) & (graph.source < len(graph.nodes)))
        assert np.all((graph.target >= 0) & (graph.target < len(graph.nodes)))
        assert np.all(graph.weight >= 0) and graph.occurrences >= 0


def data_rows(path: Path) -> int:
    """Non-blank lines after the header of a gzip CSV, counted without the loaders."""
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    return sum(1 for line in lines[1:] if line.strip())


@pytest.mark.parametrize(("name", "fmt"), SLICES)
def test_shipped_slice_is_detected_and_loads_quickly(name: str, fmt: str) -> None:
    path = TRACES / name
    assert detect_format(path) == fmt
    start = time.process_time()
    trace = load(path)
    cpu_seconds = time.process_time() - start
    assert trace.source == fmt and trace.path == str(path)
    check_invariants(trace)
    # Each slice loads in well under a second. CPU time, not wall time, so that other work on a
    # shared machine does not make this fail; the bound is still loose for slow machines.
    assert cpu_seconds < 2.0


@pytest.mark.parametrize(("train", "heldout"), TRAIN_HELDOUT)
def test_train_and_heldout_slices_are_disjoint(train: str, heldout: str) -> None:
    a, b = load(TRACES / train), load(TRACES / heldout)
    if a.pods is not None:
        assert not set(a.pods.names) & set(b.pods.names)
        assert a.pods.creation_seconds.max() < b.pods.creation_seconds.min()
    elif a.source == "vasim":  # one container, split in time
        first, second = a.containers[0], b.containers[0]
        assert first.start_seconds + len(first) * first.step_seconds <= second.start_seconds
    elif a.source == "azure-llm":  # arrival times are relative to each slice's first arrival
        last_train = gzip.decompress((TRACES / train).read_bytes()).decode().split("\n")[-2]
        first_heldout = gzip.decompress((TRACES / heldout).read_bytes()).decode().split("\n")[1]
        # Compare the raw timestamps: "YYYY-MM-DD HH:MM:SS.fffffff" sorts as text.
        assert last_train.split(",")[0] < first_heldout.split(",")[0]
    elif a.call_graphs:
        assert not {g.service for g in a.call_graphs} & {g.service for g in b.call_graphs}
    else:
        assert a.containers and b.containers
        assert not {c.name for c in a.containers} & {c.name for c in b.containers}


def test_openb_slices_match_their_rows() -> None:
    nodes = load(TRACES / "alibaba-openb/nodes.csv.gz").nodes
    assert len(nodes.names) == data_rows(TRACES / "alibaba-openb/nodes.csv.gz")
    # Memory is MiB in the file: bytes are whole MiB.
    assert np.all(nodes.memory_capacity_bytes % 2**20 == 0)
    assert set(nodes.models) >= {""}  # CPU-only nodes have no GPU model
    pods = load(TRACES / "alibaba-openb/pods-train.csv.gz").pods
    assert len(pods.names) == data_rows(TRACES / "alibaba-openb/pods-train.csv.gz")
    never_placed = np.isnan(pods.scheduled_seconds)
    assert never_placed.any()
    assert {pods.phases[i] for i in np.flatnonzero(never_placed)} == {"Pending"}


@pytest.mark.parametrize(
    "name", ["bitbrains-rnd/vms-train.tar.xz", "bitbrains-rnd/vms-heldout.tar.xz"]
)
def test_bitbrains_slice_units(name: str) -> None:
    trace = load(TRACES / name)
    for vm in trace.containers:
        assert vm.step_seconds == 300
        assert vm.cpu_capacity_millicores % 1000 == 0  # whole cores
        assert vm.memory_capacity_bytes % 1024 == 0  # whole KB
        assert len(vm) >= 7 * 24 * 12  # the slices keep VMs with a week of samples or more
        assert np.isfinite(vm.cpu_usage_millicores).mean() > 0.5
        assert 1.3e9 < vm.start_seconds < 1.4e9  # Unix seconds in 2013, not milliseconds


def test_genai_slice_joins_qps_and_memory() -> None:
    trace = load(TRACES / "alibaba-genai/genai-train.tar.gz")
    for container in trace.containers:
        assert container.step_seconds == 57
        assert np.isfinite(container.request_rate_per_second).all()  # QPS rows for every one
        assert np.isfinite(container.memory_usage_bytes).any()
        assert np.isnan(container.cpu_usage_millicores).all()
    # All containers sit on one grid.
    starts = np.array([c.start_seconds for c in trace.containers])
    assert np.allclose((starts - starts.min()) % 57, 0)


def test_azure_slice_rate_counts_every_arrival() -> None:
    trace = load(TRACES / "azure-llm/conv-train.csv.gz")
    (series,) = trace.containers
    arrivals = trace.arrivals.time_seconds
    assert len(arrivals) == data_rows(TRACES / "azure-llm/conv-train.csv.gz")
    assert round(series.request_rate_per_second.sum() * series.step_seconds) == len(arrivals)


# --- tiny hand-written files -----------------------------------------------------------------

NODES = """\
sn,cpu_milli,memory_mib,gpu,model
node-a,32000,262144,0,
node-b,96000,786432,8,V100M32
"""

PODS = """\
name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
pod-0,12000,16384,1,1000,,LS,Running,0,100,0
pod-1,6000,12288,0,0,,BE,Pending,10,20,
pod-2,3152,5600,1,590,,BE,Succeeded,30,,31
"""

BITBRAINS_HEADER = ";\t".join(
    [
        "Timestamp [ms]",
        "CPU cores",
        "CPU capacity provisioned [MHZ]",
        "CPU usage [MHZ]",
        "CPU usage [%]",
        "Memory capacity provisioned [KB]",
        "Memory usage [KB]",
        "Disk read throughput [KB/s]",
    ]
)
BITBRAINS = (
    BITBRAINS_HEADER
    + """
1000;\t2;\t5000;\t1250;\t25;\t1048576;\t524288;\t0.0
1300;\t2;\t5000;\t2500;\t50;\t1048576;\t262144;\t0.0
1600;\t2;\t5000;\t6000;\t120;\t1048576;\t2097152;\t0.0
2200;\t0;\t0;\t0;\t0;\t0;\t0;\t0.0
"""
)

VASIM = """\
TIMESTAMP,CPU_USAGE_ACTUAL
2023.04.02-00:00:00:000,10
2023.04.02-00:01:00:000,20
2023.04.02-00:03:00:000,30
"""

QPS = """\
timestamp_anon,value,container_ip,request_type
1000.0,0.5,aaa,Generative Requests
1000.0,0.25,aaa,API Requests
1114.0,1.0,aaa,Generative Requests
1057.0,2.0,,API Requests
"""

MEMORY = """\
value,timestamp_anon,container_ip
0.5,1000.0,aaa
0.25,1057.0,aaa
,1114.0,aaa
0.1,1000.0,bbb
-0.00001,1057.0,bbb
"""

AZURE = """\
TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:40.0000000,100,10
2023-11-16 18:15:52.2500000,300,30
2023-11-16 18:15:40.5000000,200,20
"""

CALLGRAPHS = (
    '{"type":"type0","service":"S_1","graph":"graph1","nodes":[{"node":"USER","label":"relay"},'
    '{"node":"MS_a","label":"normal"},{"node":"MS_a","label":"normal"},'
    '{"node":"MS_db","label":"database"}],"edges":['
    '{"source":"USER","target":"MS_a","weight":1,"rpctype":"http"},'
    '{"source":"MS_a","target":"MS_db","weight":2,"rpctype":"db"},'
    '{"source":"MS_a","target":"MS_db","weight":1,"rpctype":"db"}],"num":7}\n'
    '{"type":"type1","service":"S_2","graph":"graph1","nodes":[{"node":"USER","label":"relay"}],'
    '"edges":[],"num":1}\n'
)

# format -> (file name, content, field delimiter or None for JSON lines)
TINY: dict[str, tuple[str, str, str | None]] = {
    "openb-nodes": ("nodes.csv", NODES, ","),
    "openb-pods": ("pods.csv", PODS, ","),
    "bitbrains": ("vm1.csv", BITBRAINS, ";\t"),
    "vasim": ("c_1_cpu.csv", VASIM, ","),
    "genai": ("qps.csv", QPS, ","),
    "azure-llm": ("conv.csv", AZURE, ","),
    "callgraphs": ("graphs.jsonl", CALLGRAPHS, None),
}


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def tiny(directory: Path, fmt: str) -> Path:
    """Write the tiny file of format ``fmt`` into ``directory``."""
    name, content, _ = TINY[fmt]
    return write(directory, name, content)


def comparable(trace: Trace) -> dict:
    """The trace as nested plain data, without its path, for equality checks."""
    fields = dataclasses.asdict(trace)
    del fields["path"]
    return fields


def test_every_format_has_a_tiny_file() -> None:
    assert set(TINY) == set(FORMATS)


def test_openb_tiny_files(tmp_path: Path) -> None:
    nodes = load(tiny(tmp_path, "openb-nodes")).nodes
    assert nodes.names == ("node-a", "node-b") and nodes.models == ("", "V100M32")
    np.testing.assert_array_equal(nodes.memory_capacity_bytes, [262144 * 2**20, 786432 * 2**20])
    np.testing.assert_array_equal(nodes.gpus, [0, 8])
    pods = load(tiny(tmp_path, "openb-pods")).pods
    np.testing.assert_array_equal(pods.creation_seconds, [0, 10, 30])
    np.testing.assert_array_equal(pods.deletion_seconds, [100, 20, np.nan])  # empty: never left
    np.testing.assert_array_equal(pods.scheduled_seconds, [0, np.nan, 31])  # empty: never placed
    assert pods.qos == ("LS", "BE", "BE") and pods.phases[1] == "Pending"
    np.testing.assert_array_equal(pods.memory_request_bytes, np.array([16384, 12288, 5600]) * 2**20)


def test_bitbrains_tiny_file_converts_units_and_marks_gaps(tmp_path: Path) -> None:
    (vm,) = load(tiny(tmp_path, "bitbrains")).containers
    assert vm.name == "vm1" and vm.step_seconds == 300 and vm.start_seconds == 1000
    # 1250 MHz of 2 x 2500 MHz cores = half a core; usage above capacity (boost) is capped;
    # 1900 s has no sample; 2200 s has zero provisioned (VM off): both NaN.
    np.testing.assert_allclose(vm.cpu_usage_millicores, [500, 1000, 2000, np.nan, np.nan])
    np.testing.assert_allclose(
        vm.memory_usage_bytes, [512 * 2**20, 256 * 2**20, 2**30, np.nan, np.nan]
    )
    assert vm.cpu_capacity_millicores == 2000 and vm.memory_capacity_bytes == 2**30
    assert np.isnan(vm.request_rate_per_second).all()


def test_bitbrains_averages_duplicates_and_follows_a_drifting_clock(tmp_path: Path) -> None:
    # Mostly 300 s apart, but every third interval is 340 s: after 12 samples the clock is
    # 160 s off a fixed 300 s grid. A duplicated first sample averages into one bin.
    times = np.concatenate([[0], np.cumsum([0] + [300, 300, 340] * 5)])
    usage = [1000, 3000] + [500] * 15
    rows = [f"{t};\t4;\t4000;\t{u};\t0;\t1024;\t512;\t0" for t, u in zip(times, usage, strict=True)]
    path = write(tmp_path, "drift.csv", "\n".join([BITBRAINS_HEADER, *rows]) + "\n")
    (vm,) = load_bitbrains(path).containers
    assert vm.step_seconds == 300
    np.testing.assert_allclose(vm.cpu_usage_millicores, [2000] + [500] * 15)


def test_bitbrains_accepts_file_directory_and_archives(tmp_path: Path) -> None:
    vms = tmp_path / "vms"
    vms.mkdir()
    for vm in ("1", "2"):
        write(vms, f"{vm}.csv", BITBRAINS)
    write(vms, "README.md", "not a VM")
    for mode, suffix in (("w:xz", ".tar.xz"), ("w:gz", ".tar.gz"), ("w", ".tar")):
        archive = tmp_path / f"vms{suffix}"
        with tarfile.open(archive, mode) as tar:
            tar.add(vms, arcname="vms")
        assert sorted(c.name for c in load(archive).containers) == ["1", "2"]
    assert [c.name for c in load(vms).containers] == ["1", "2"]
    assert [c.name for c in load(vms / "1.csv").containers] == ["1"]


def test_vasim_tiny_file_percent_and_cores(tmp_path: Path) -> None:
    path = tiny(tmp_path, "vasim")
    (c,) = load(path).containers
    assert c.start_seconds == 1680393600  # 2023-04-02 00:00 UTC
    assert c.step_seconds == 60 and c.cpu_capacity_millicores == 4000
    np.testing.assert_allclose(c.cpu_usage_millicores, [400, 800, np.nan, 1200])  # % of 4 cores
    (c,) = load_vasim(path, cpu_request_millicores=2000).containers
    np.testing.assert_allclose(c.cpu_usage_millicores, [200, 400, np.nan, 600])
    (c,) = load_vasim(path, cpu_unit="cores").containers
    np.testing.assert_allclose(c.cpu_usage_millicores, [10000, 20000, np.nan, 30000])


def test_vasim_constant_series_and_empty_values(tmp_path: Path) -> None:
    rows = [f"2023.04.02-00:{m:02d}:00:000,{'' if m == 2 else 5}" for m in range(5)]
    path = write(tmp_path, "flat.csv", "TIMESTAMP,CPU_USAGE_ACTUAL\n" + "\n".join(rows) + "\n")
    (c,) = load(path).containers
    np.testing.assert_allclose(c.cpu_usage_millicores, [200, 200, np.nan, 200, 200])


def test_genai_joins_qps_and_memory_in_an_archive(tmp_path: Path) -> None:
    archive = tmp_path / "genai.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in (("qps.csv", QPS), ("pod_memory_util_anon.csv", MEMORY)):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    trace = load(archive)
    capacity = 32 * 2**30
    aaa, bbb = trace.containers
    assert (aaa.name, bbb.name) == ("aaa", "bbb")  # the row without container_ip is skipped
    assert aaa.step_seconds == 57 and aaa.start_seconds == 1000
    # Request types summed; a tick without a QPS row is 0 for a container that reports QPS.
    np.testing.assert_allclose(aaa.request_rate_per_second, [0.75, 0.0, 1.0])
    np.testing.assert_allclose(aaa.memory_usage_bytes, np.array([0.5, 0.25, np.nan]) * capacity)
    # No QPS rows at all: rate unknown. Tiny negative utilisation (noise) reads as 0.
    assert np.isnan(bbb.request_rate_per_second).all()
    np.testing.assert_allclose(bbb.memory_usage_bytes, [0.1 * capacity, 0.0])
    assert bbb.memory_capacity_bytes == capacity
    memory_only = write(tmp_path, "mem.csv", "value,timestamp_anon,container_ip\n0.5,1000,aaa\n")
    (aaa,) = load_genai(memory_only, memory_capacity_bytes=2.0).containers
    np.testing.assert_allclose(aaa.memory_usage_bytes, [1.0])
    assert np.isnan(aaa.request_rate_per_second).all()


def test_genai_accepts_a_directory_of_archives(tmp_path: Path) -> None:
    for name, text in (("qps", QPS), ("pod_memory_util_anon", MEMORY)):
        with tarfile.open(tmp_path / f"{name}.tar.gz", "w:gz") as tar:
            info = tarfile.TarInfo(f"{name}.csv")
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    assert [c.name for c in load(tmp_path).containers] == ["aaa", "bbb"]


def test_azure_tiny_file_arrivals_and_rate(tmp_path: Path) -> None:
    trace = load(tiny(tmp_path, "azure-llm"))
    np.testing.assert_allclose(trace.arrivals.time_seconds, [0, 0.5, 12.25])  # sorted
    np.testing.assert_array_equal(trace.arrivals.input_tokens, [100, 200, 300])
    (series,) = trace.containers
    np.testing.assert_allclose(series.request_rate_per_second, [0.2, 0.1])  # 2 then 1 per 10 s
    (fine,) = load_azure_llm(tiny(tmp_path, "azure-llm"), step_seconds=1.0).containers
    assert len(fine) == 13 and fine.request_rate_per_second.sum() == 3


def test_azure_2024_timestamps_with_utc_offsets(tmp_path: Path) -> None:
    rows = [
        "2024-05-10 00:00:00.5+00:00,1,1",
        "2024-05-10 01:00:02+01:00,1,1",
        "2024-05-10T00:00:03Z,1,1",
    ]
    path = write(
        tmp_path, "week.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows)
    )
    np.testing.assert_allclose(load(path).arrivals.time_seconds, [0, 1.5, 2.5])


def test_callgraphs_tiny_file_dedupes_nodes_and_merges_parallel_edges(tmp_path: Path) -> None:
    first, second = load(tiny(tmp_path, "callgraphs")).call_graphs
    assert first.service == "S_1" and first.graph == "graph1" and first.category == "type0"
    assert first.nodes == ("USER", "MS_a", "MS_db")
    assert first.node_labels == ("relay", "normal", "database")
    np.testing.assert_array_equal(first.source, [0, 1])
    np.testing.assert_array_equal(first.target, [1, 2])
    np.testing.assert_array_equal(first.weight, [1, 3])
    assert first.rpc_type == ("http", "db") and first.occurrences == 7
    assert second.nodes == ("USER",) and len(second.source) == 0


# --- variants of the same content load the same ----------------------------------------------


def _rewrite_fields(text: str, delimiter: str, change: Callable[[list[str]], list[str]]) -> str:
    return "".join(
        delimiter.join(change(line.split(delimiter))) + "\n" for line in text.splitlines()
    )


TEXT_VARIANTS: dict[str, Callable[[str], str]] = {
    "crlf": lambda text: text.replace("\n", "\r\n"),
    "trailing blank lines": lambda text: text + "\n\n  \n",
    "byte-order mark": lambda text: "\ufeff" + text,
}

COLUMN_VARIANTS: dict[str, Callable[[str, str], str]] = {
    "extra column": lambda text, d: _rewrite_fields(text, d, lambda f: [*f[:1], "x", *f[1:]]),
    "reordered columns": lambda text, d: _rewrite_fields(text, d, lambda f: f[::-1]),
}

VARIANT_CASES = [
    (fmt, variant)
    for fmt, (_, _, delimiter) in TINY.items()
    for variant in [*TEXT_VARIANTS, *(COLUMN_VARIANTS if delimiter else ()), "gzip"]
]


@pytest.mark.parametrize(("fmt", "variant"), VARIANT_CASES)
def test_variant_loads_like_the_plain_file(fmt: str, variant: str, tmp_path: Path) -> None:
    name, content, delimiter = TINY[fmt]
    expected = comparable(load(write(tmp_path, name, content)))
    (tmp_path / "variant").mkdir()
    if variant == "gzip":
        path = write(tmp_path / "variant", name + ".gz", gzip.compress(content.encode()))
    elif variant in TEXT_VARIANTS:
        path = write(tmp_path / "variant", name, TEXT_VARIANTS[variant](content))
    else:
        assert delimiter is not None
        path = write(tmp_path / "variant", name, COLUMN_VARIANTS[variant](content, delimiter))
    assert detect_format(path) == fmt
    np.testing.assert_equal(comparable(load(path)), expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_header_only_file_loads_empty(fmt: str, tmp_path: Path) -> None:
    name, content, delimiter = TINY[fmt]
    header_only = "" if delimiter is None else content.splitlines()[0] + "\n"
    trace = load(write(tmp_path, name, header_only), format=fmt)
    check_invariants(trace)
    assert sum(len(c) for c in trace.containers) == 0
    assert trace.nodes is None or len(trace.nodes.names) == 0
    assert trace.pods is None or len(trace.pods.names) == 0
    assert trace.arrivals is None or len(trace.arrivals.time_seconds) == 0
    assert trace.call_graphs == ()


# --- malformed files -------------------------------------------------------------------------


def _replace_line(text: str, number: int, line: str) -> str:
    lines = text.splitlines()
    lines[number - 1] = line
    return "\n".join(lines) + "\n"


def _drop_column(text: str, delimiter: str, index: int) -> str:
    return _rewrite_fields(text, delimiter, lambda f: f[:index] + f[index + 1 :])


MALFORMED = [
    # (format, content, line, problem)
    (
        "openb-nodes",
        _replace_line(NODES, 3, "node-b,9x6000,786432,8,V100M32"),
        3,
        "bad number '9x6000' in column 'cpu_milli'",
    ),
    ("openb-nodes", _drop_column(NODES, ",", 2), 1, "missing column 'memory_mib'"),
    (
        "openb-nodes",
        _replace_line(NODES, 2, "node-a,-32000,262144,0,"),
        2,
        "negative value -32000 in column 'cpu_milli'",
    ),
    (
        "openb-nodes",
        _replace_line(NODES, 2, "node-a,32000,262144,1.5,"),
        2,
        "bad count '1.5' in column 'gpu'",
    ),
    (
        "openb-pods",
        _replace_line(PODS, 3, "pod-1,6000,12288,0,0,,BE,Pending,10,20"),
        3,
        "wrong column count: expected 11 fields, found 10",
    ),
    (
        "openb-pods",
        _replace_line(PODS, 2, "pod-0,12000,16384,1,1000,,LS,Running,,100,0"),
        2,
        "missing value in column 'creation_time'",
    ),
    (
        "openb-pods",
        _replace_line(PODS, 4, "pod-2,3152,5600,1,590,,BE,Succeeded,30,29,31"),
        4,
        "deletion_time before creation_time",
    ),
    (
        "bitbrains",
        _replace_line(BITBRAINS, 3, "1300;\t2;\t5000;\tlots;\t50;\t1048576;\t262144;\t0.0"),
        3,
        "bad number 'lots' in column 'CPU usage [MHZ]'",
    ),
    ("bitbrains", _drop_column(BITBRAINS, ";\t", 6), 1, "missing column 'Memory usage [KB]'"),
    (
        "bitbrains",
        _replace_line(BITBRAINS, 2, ";\t2;\t5000;\t1250;\t25;\t1048576;\t524288;\t0.0"),
        2,
        "missing value in column 'Timestamp [ms]'",
    ),
    (
        "bitbrains",
        _replace_line(BITBRAINS, 4, "1600;\t2;\t5000;\t-6;\t120;\t1048576;\t2097152;\t0.0"),
        4,
        "negative value -6",
    ),
    (
        "vasim",
        _replace_line(VASIM, 3, "2023-04-02 00:01:00,20"),
        3,
        "bad timestamp '2023-04-02 00:01:00'",
    ),
    ("vasim", _replace_line(VASIM, 2, "2023.02.30-00:00:00:000,10"), 2, "no such date"),
    ("vasim", _replace_line(VASIM, 4, "2023.04.02-00:03:00:000,3O"), 4, "bad number '3O'"),
    ("vasim", _drop_column(VASIM, ",", 1), 1, "missing column 'CPU_USAGE_ACTUAL'"),
    (
        "genai",
        _replace_line(QPS, 4, "1114.0,-1.0,aaa,Generative Requests"),
        4,
        "negative value -1.0 in column 'value'",
    ),
    (
        "genai",
        _replace_line(QPS, 2, "soon,0.5,aaa,Generative Requests"),
        2,
        "bad number 'soon' in column 'timestamp_anon'",
    ),
    (
        "genai",
        _replace_line(QPS, 3, "1000.0,0.25,aaa,API Requests,surplus"),
        3,
        "wrong column count",
    ),
    (
        "azure-llm",
        _replace_line(AZURE, 2, "16/11/2023 18:15:40,100,10"),
        2,
        "bad timestamp '16/11/2023 18:15:40'",
    ),
    (
        "azure-llm",
        _replace_line(AZURE, 3, "2023-11-16 18:15:52.25,3.5,30"),
        3,
        "bad count '3.5' in column 'ContextTokens'",
    ),
    (
        "azure-llm",
        _replace_line(AZURE, 4, "2023-11-16 25:15:40.5,200,20"),
        4,
        "time of day out of range",
    ),
    ("azure-llm", _drop_column(AZURE, ",", 2), 1, "missing column 'GeneratedTokens'"),
    ("callgraphs", CALLGRAPHS + '{"service": "S_3", "nodes": [\n', 3, "invalid JSON"),
    ("callgraphs", '\n{"service":"S_1","nodes":[],"edges":[]}\n', 2, "missing key 'num' in graph"),
    (
        "callgraphs",
        '{"service":"S_1","nodes":[{"node":"A"}],"edges":[{"source":"A","target":"B","weight":1,"rpctype":"rpc"}],"num":1}\n',
        1,
        "edge target 'B' is not among the graph's nodes",
    ),
    (
        "callgraphs",
        '{"service":"S_1","nodes":[{"node":"A"}],"edges":[{"source":"A","target":"A","weight":-2,"rpctype":"rpc"}],"num":1}\n',
        1,
        "edge weight must be a non-negative number",
    ),
    (
        "callgraphs",
        '{"service":"S_1","nodes":[],"edges":[],"num":"many"}\n',
        1,
        "'num' must be int",
    ),
    ("callgraphs", "[1, 2]\n", 1, "expected a JSON object per line"),
]


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(("fmt", "content", "line", "problem"), MALFORMED)
def test_malformed_file_error_names_file_line_and_problem(
    fmt: str, content: str, line: int, problem: str, compressed: bool, tmp_path: Path
) -> None:
    name = TINY[fmt][0] + (".gz" if compressed else "")
    data = gzip.compress(content.encode()) if compressed else content.encode()
    path = write(tmp_path, name, data)
    with pytest.raises(TraceFormatError) as caught:
        load(path, format=fmt)
    message = str(caught.value)
    assert f"{path}:{line}: " in message
    assert problem in message
    assert caught.value.path == str(path) and caught.value.line == line


def test_error_inside_an_archive_names_the_member(tmp_path: Path) -> None:
    archive = tmp_path / "genai.tar.gz"
    bad = _replace_line(MEMORY, 3, "-0.5,1057.0,aaa")
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("data/pod_memory_util_anon.csv")
        info.size = len(bad)
        tar.addfile(info, io.BytesIO(bad.encode()))
    with pytest.raises(
        TraceFormatError,
        match=r"genai\.tar\.gz\[data/pod_memory_util_anon\.csv\]:3: negative value -0\.5",
    ):
        load(archive)


def test_unrecognised_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="unrecognised trace format"):
        load(write(tmp_path, "x.csv", "a,b,c\n1,2,3\n"))
    with pytest.raises(TraceFormatError, match="empty file: no header line"):
        load(write(tmp_path, "empty.csv", ""), format="vasim")
    with pytest.raises(TraceFormatError, match="no such file"):
        load(tmp_path / "absent.csv", format="vasim")
    with pytest.raises(TraceFormatError, match="corrupt gzip data"):
        load(write(tmp_path, "cut.csv.gz", gzip.compress(VASIM.encode())[:30]), format="vasim")
    with pytest.raises(ValueError, match="unknown trace format"):
        load(tiny(tmp_path, "vasim"), format="parquet")
