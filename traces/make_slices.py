#!/usr/bin/env python3
"""Cut the small trace slices in this folder from the full traces in ``../shared/data``.

For developers only: tests and the demo read the slices, never ``../shared``. Run from the
repository root::

    python3 traces/make_slices.py [--source ../shared/data]

The output is byte-for-byte reproducible (fixed seeds, fixed archive and gzip timestamps). Rows are
copied verbatim, never reformatted, so a slice is a valid file of its source's format. Sources
with many units get a training slice and a disjoint held-out slice (different VMs, containers,
services, or a later time range); see each folder's PROVENANCE.md.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import lzma
import random
import shutil
import tarfile
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data"

SEED = 20240601
"""Seed of every random choice below, so that the slices can be cut again identically."""

BITBRAINS_TRAIN_VMS, BITBRAINS_HELDOUT_VMS = 12, 6
BITBRAINS_MIN_SAMPLES = 7 * 24 * 12  # a week of 5-minute samples: enough for daily patterns
GENAI_TRAIN_CONTAINERS, GENAI_HELDOUT_CONTAINERS = 24, 12
TRAIN_FRACTION = 0.7
"""Share of pods (by creation order), services, or time that goes to the training slice."""


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def tar_of(files: Iterable[tuple[str, bytes]]) -> bytes:
    """An uncompressed tar with fixed metadata, so that its bytes depend only on the files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    print(f"{path.relative_to(HERE)}: {len(data) / 1024:.0f} KiB")


def split_lines(text: str) -> tuple[str, list[str]]:
    """Header line and non-blank data lines, line ends kept as they are."""
    lines = text.splitlines(keepends=True)
    return lines[0], [line for line in lines[1:] if line.strip()]


def column(header: str, name: str) -> int:
    return next(csv.reader([header])).index(name)


def keep_rows(header: str, rows: list[str], wanted: Callable[[list[str]], bool]) -> bytes:
    kept = [row for row, fields in zip(rows, csv.reader(rows)) if wanted(fields)]
    return (header + "".join(kept)).encode()


def openb(source: Path, out: Path) -> None:
    nodes = (source / "openb_node_list_all_node.csv").read_bytes()
    write(out / "nodes.csv.gz", gzipped(nodes))
    header, rows = split_lines((source / "openb_pod_list_default.csv").read_bytes().decode())
    created = column(header, "creation_time")
    times = sorted(int(fields[created]) for fields in csv.reader(rows))
    cut = times[int(len(times) * TRAIN_FRACTION)]
    print(f"openb pods: train created < {cut} s, held-out created >= {cut} s")
    write(
        out / "pods-train.csv.gz", gzipped(keep_rows(header, rows, lambda f: int(f[created]) < cut))
    )
    write(
        out / "pods-heldout.csv.gz",
        gzipped(keep_rows(header, rows, lambda f: int(f[created]) >= cut)),
    )


def bitbrains(source: Path, out: Path) -> None:
    with tarfile.open(source / "rnd-2013-7-vm001-250.tar.xz") as archive:
        vms = {
            Path(entry.name).name: archive.extractfile(entry).read()
            for entry in archive
            if entry.isfile() and entry.name.endswith(".csv")
        }
    long_enough = sorted(
        (name for name, data in vms.items() if data.count(b"\n") - 1 >= BITBRAINS_MIN_SAMPLES),
        key=lambda name: int(Path(name).stem),
    )
    chosen = random.Random(SEED).sample(long_enough, BITBRAINS_TRAIN_VMS + BITBRAINS_HELDOUT_VMS)
    train, heldout = chosen[:BITBRAINS_TRAIN_VMS], chosen[BITBRAINS_TRAIN_VMS:]
    print(f"bitbrains: {len(long_enough)} VMs with >= {BITBRAINS_MIN_SAMPLES} samples")
    for part, names in (("train", train), ("heldout", heldout)):
        names = sorted(names, key=lambda name: int(Path(name).stem))
        print(f"bitbrains {part}: VMs {', '.join(names)}")
        tar = tar_of((name, vms[name]) for name in names)
        write(out / f"vms-{part}.tar.xz", lzma.compress(tar, preset=9 | lzma.PRESET_EXTREME))


def vasim(source: Path, out: Path) -> None:
    header, rows = split_lines((source / "c_12104_cpu.csv").read_bytes().decode())
    cut = rows[int(len(rows) * TRAIN_FRACTION)].split(",")[0]
    print(f"vasim: train before {cut}, held-out from {cut}")
    # The timestamp format YYYY.MM.DD-HH:MM:SS:fff sorts as text.
    write(out / "c_12104_cpu-train.csv.gz", gzipped(keep_rows(header, rows, lambda f: f[0] < cut)))
    write(
        out / "c_12104_cpu-heldout.csv.gz", gzipped(keep_rows(header, rows, lambda f: f[0] >= cut))
    )
    shutil.copyfile(source / "LICENSE", out / "LICENSE")


def genai(source: Path, out: Path) -> None:
    texts = {}
    for archive_name in ("qps.tar.gz", "pod_memory_util_anon.tar.gz"):
        with tarfile.open(source / archive_name) as archive:
            for entry in archive:
                if entry.isfile() and not Path(entry.name).name.startswith("."):
                    texts[Path(entry.name).name] = archive.extractfile(entry).read().decode()
    qps_header, qps_rows = split_lines(texts["qps.csv"])
    memory_header, memory_rows = split_lines(texts["pod_memory_util_anon.csv"])
    qps_ip, memory_ip = column(qps_header, "container_ip"), column(memory_header, "container_ip")
    serving = sorted({fields[qps_ip] for fields in csv.reader(qps_rows)} - {""})
    chosen = random.Random(SEED).sample(serving, GENAI_TRAIN_CONTAINERS + GENAI_HELDOUT_CONTAINERS)
    parts = {
        "train": set(chosen[:GENAI_TRAIN_CONTAINERS]),
        "heldout": set(chosen[GENAI_TRAIN_CONTAINERS:]),
    }
    print(f"genai: {len(serving)} containers with QPS rows")
    for part, ips in parts.items():
        print(f"genai {part}: containers {', '.join(sorted(ips))}")
        tar = tar_of(
            [
                ("qps.csv", keep_rows(qps_header, qps_rows, lambda f, ips=ips: f[qps_ip] in ips)),
                (
                    "pod_memory_util_anon.csv",
                    keep_rows(memory_header, memory_rows, lambda f, ips=ips: f[memory_ip] in ips),
                ),
            ]
        )
        write(out / f"genai-{part}.tar.gz", gzipped(tar))


def azure_llm(source: Path, out: Path) -> None:
    header, rows = split_lines((source / "AzureLLMInferenceTrace_conv.csv").read_bytes().decode())
    # Python parses at most 6 fraction digits; the trace has 7, irrelevant for a cut point.
    times = [datetime.fromisoformat(row.split(",")[0][:26]) for row in rows]
    cut = times[0] + (times[-1] - times[0]) * TRAIN_FRACTION
    print(f"azure-llm: {times[0]} .. {times[-1]}; train before {cut}, held-out from {cut}")
    train = [row for row, time in zip(rows, times) if time < cut]
    heldout = [row for row, time in zip(rows, times) if time >= cut]
    write(out / "conv-train.csv.gz", gzipped((header + "".join(train)).encode()))
    write(out / "conv-heldout.csv.gz", gzipped((header + "".join(heldout)).encode()))


def callgraphs(source: Path, out: Path) -> None:
    with gzip.open(source / "callgraphs-type0-2.jsonl.gz") as handle:
        lines = [line for line in handle.read().decode().splitlines(keepends=True) if line.strip()]
    services = sorted({json.loads(line)["service"] for line in lines})
    shuffled = random.Random(SEED).sample(services, len(services))
    train = set(shuffled[: int(len(services) * TRAIN_FRACTION)])
    print(f"callgraphs: {len(train)} train services, {len(services) - len(train)} held-out")
    for part, in_part in (("train", train.__contains__), ("heldout", lambda s: s not in train)):
        kept = [line for line in lines if in_part(json.loads(line)["service"])]
        write(out / f"callgraphs-{part}.jsonl.gz", gzipped("".join(kept).encode()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the full traces")
    source = parser.parse_args().source
    openb(source / "alibaba-openb", HERE / "alibaba-openb")
    bitbrains(source / "bitbrains-rnd", HERE / "bitbrains-rnd")
    vasim(source / "vasim-alibaba", HERE / "vasim-alibaba")
    genai(source / "alibaba-genai", HERE / "alibaba-genai")
    azure_llm(source / "azure-llm", HERE / "azure-llm")
    callgraphs(source / "alibaba-callgraphs", HERE / "alibaba-callgraphs")


if __name__ == "__main__":
    main()
