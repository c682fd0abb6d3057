#!/usr/bin/env python3
"""Write N simulated kwok Node objects, sized from a real node inventory, as one v1 List (JSON).

Usage: gen_nodes.py N [--csv PATH] > nodes.json
       gen_nodes.py N --skip NAMES_FILE --chunks K --outdir DIR   (DIR/nodes-0.json ...)

The inventory is a CSV with the columns sn,cpu_milli,memory_mib,gpu,model (the Alibaba OpenB
node list format; plain or gzipped). Any file of that format works; the default is the copy
shipped beside this script (see PROVENANCE.md). Node i takes row i; when N exceeds the rows, the
rows are reused in order (the names stay unique).

Standard library only, so that it runs before any virtual environment exists.
"""

import argparse
import csv
import gzip
import io
import json
import os
import re
import sys

DEFAULT_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openb-nodes.csv.gz")
REQUIRED = ("sn", "cpu_milli", "memory_mib", "gpu", "model")


def read_inventory(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        raw = gzip.decompress(raw)
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
    if not rows:
        sys.exit(f"gen_nodes: {path} has no rows")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        sys.exit(f"gen_nodes: {path} lacks columns {missing} (need {','.join(REQUIRED)})")
    return rows


def power_class(cpu_milli):
    """A coarse energy class from the CPU size: bigger boxes draw more idle power."""
    cores = cpu_milli / 1000
    if cores <= 32:
        return "small"
    if cores <= 96:
        return "medium"
    return "large"


def label_value(s):
    """Make s a valid label value (alphanumerics, '-', '_', '.', at most 63, alnum at both ends)."""
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", s.strip().lower())[:63]
    return s.strip("-_.") or "unknown"


def node(i, row):
    cpu_milli = int(float(row["cpu_milli"]))
    memory_mib = int(float(row["memory_mib"]))
    gpus = int(float(row["gpu"] or 0))
    model = (row["model"] or "").strip()
    cores = cpu_milli // 1000
    if gpus and model:
        instance_type = label_value(f"gpu-{model}-{cores}c")
    else:
        instance_type = label_value(f"cpu-{cores}c-{memory_mib // 1024}g")
    name = f"node-{i:04d}"
    pod_cidr = f"10.{1 + i // 256}.{i % 256}.0/24"  # 10.0/16 is left to Services
    resources = {"cpu": f"{cpu_milli}m", "memory": f"{memory_mib}Mi", "pods": "110"}
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": instance_type,
        "thrifty.dev/power-class": power_class(cpu_milli),
        "thrifty.dev/trace-node": label_value(row["sn"]),
    }
    if gpus:
        resources["nvidia.com/gpu"] = str(gpus)
        if model:
            labels["thrifty.dev/gpu-model"] = label_value(model)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                # kwok-controller simulates the nodes that carry this annotation.
                "kwok.x-k8s.io/node": "fake",
                "node.alpha.kubernetes.io/ttl": "0",
                # All kwok nodes share one address and port (the kwok-controller), so
                # metrics-server must ask for each node's own path of kwok's simulated
                # kubelet /metrics/resource endpoint.
                "metrics.k8s.io/resource-metrics-path": f"/metrics/nodes/{name}/metrics/resource",
            },
        },
        # No taints: pods land on these nodes without tolerations, like on real workers.
        # A /24 per node, as kube-controller-manager would allocate: kwok gives pods IPs from
        # it (without one, all pods share a single /24 and run out of IPs past 254 pods).
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        # Capacity is accepted on create; kwok then fills in conditions, addresses and nodeInfo,
        # and keeps the node Ready and heartbeating.
        "status": {"capacity": resources, "allocatable": dict(resources)},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, help="number of nodes")
    ap.add_argument("--csv", default=os.environ.get("THRIFTY_NODES_CSV", DEFAULT_CSV),
                    help="node inventory (default: %(default)s; env THRIFTY_NODES_CSV)")
    ap.add_argument("--skip", help="file of node names (one a line) to leave out: they exist")
    ap.add_argument("--chunks", type=int, default=1,
                    help="split into this many Lists, for parallel creation (needs --outdir)")
    ap.add_argument("--outdir", help="write DIR/nodes-<i>.json instead of stdout")
    args = ap.parse_args()
    if not 0 <= args.n <= 254 * 256:
        sys.exit("gen_nodes: N must be between 0 and 65024 (one 10.x.y.0/24 pod range per node)")
    rows = read_inventory(args.csv)
    skip = set()
    if args.skip:
        with open(args.skip) as f:
            skip = {line.strip() for line in f if line.strip()}
    items = [node(i, rows[i % len(rows)]) for i in range(args.n) if f"node-{i:04d}" not in skip]
    if not args.outdir:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout, separators=(",", ":"))
        sys.stdout.write("\n")
        return
    os.makedirs(args.outdir, exist_ok=True)
    chunks = max(1, min(args.chunks, len(items)))
    for k in range(chunks if items else 0):
        with open(os.path.join(args.outdir, f"nodes-{k}.json"), "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": items[k::chunks]}, f,
                      separators=(",", ":"))


if __name__ == "__main__":
    main()
