# Thrifty developer entry points. Every target installs what it needs itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Expensive builds (Go modules, Kubernetes binaries) live outside the checkout, keyed by version.
export THRIFTY_CACHE ?= $(HOME)/.cache/thrifty
NODES ?= 4
CLUSTER ?= thrifty

.PHONY: help venv binaries cluster cluster-down lint test test-unit test-cluster demo perf perf-cluster bench bench-long clean

help:
	@echo "make demo          run Thrifty on a local cluster and print a summary"
	@echo "make test          the whole test suite (lint, types, unit, cluster, end-to-end)"
	@echo "make lint          ruff and mypy only"
	@echo "make cluster NODES=N / make cluster-down"
	@echo "make perf          performance benchmarks (name: value unit)"
	@echo "make perf-cluster  the operator at cluster scale on kwok (name: value unit)"
	@echo "make bench         Thrifty against the calibrated peers, loaded regime, held-out traces (about 5 minutes of CPU)"
	@echo "make bench-long    512 nodes, one simulated day (about 90 s of CPU per policy and seed; LONG_POLICIES=\"a b\" picks)"

# The environment is cached outside the checkout by the hash of pyproject.toml (hack/venv.sh);
# .venv links to it and this checkout is installed into it in editable mode.
venv:
	@PYTHON=$(PYTHON) hack/venv.sh

binaries:
	@hack/build.sh

cluster: binaries
	@hack/cluster.sh up --name $(CLUSTER) --nodes $(NODES)

cluster-down:
	@hack/cluster.sh down --name $(CLUSTER)

# A few minutes of Thrifty on a local cluster, then a summary (hack/demo.py; DEMO_SECONDS,
# DEMO_NODES, DEMO_SPEEDUP, KEEP=1).
demo: venv binaries
	$(PY) hack/demo.py

# Thrifty's policies against the calibrated baselines in the simulator, on the held-out trace
# slices (docs/evaluation.md). Results, table and plots go to $(BENCH_OUT)/quick or /long.
HELDOUT_TRACES := $(sort $(wildcard traces/*/*-heldout.*)) traces/alibaba-openb/nodes.csv.gz
BENCH_OUT ?= build/bench

# Every calibrated baseline, Thrifty's heuristic and the shipped trained policy.
BENCH_POLICIES ?= thrifty-heuristic rl:policies/default k8s-stack kube-default+static kube-default+hpa \
	kube-default+vpa most-allocated+stack trimaran+stack network-aware+stack random+stack trimaran+vpa \
	most-allocated+vpa most-allocated+stack+descheduler-hnu kube-default+stack+karpenter-underutilized

# BLAS single-threaded: the policies multiply small matrices, where threads only contend (6x
# slower on a loaded 2-core machine).
bench: venv
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(VENV)/bin/thrifty bench $(foreach f,$(HELDOUT_TRACES),--trace $(f)) --out $(BENCH_OUT)/quick --quick \
		--policies $(BENCH_POLICIES)

# Every policy by default; LONG_POLICIES="a b" runs only those (docs/evaluation.md §4 says which ran).
LONG_POLICIES ?= $(BENCH_POLICIES)

bench-long: venv
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(VENV)/bin/thrifty bench $(foreach f,$(HELDOUT_TRACES),--trace $(f)) --out $(BENCH_OUT)/long \
		--policies $(LONG_POLICIES)

# The package ships py.typed: ruff and mypy (settings in pyproject.toml) hold it to that.
lint: venv
	$(VENV)/bin/ruff check operator tests hack
	$(VENV)/bin/mypy

test: venv binaries lint
	$(PY) -m pytest tests

# Performance figures, one `name: value unit` line each. BLAS single-threaded so the figures
# measure this code rather than the machine's spare cores.
perf: venv
	@OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(PY) hack/perf/sim_bench.py
	@OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(PY) hack/perf/features_bench.py
	@OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(PY) hack/perf/policy_bench.py
	@OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(PY) hack/perf/baselines_bench.py 2>/dev/null
	@$(PY) hack/perf/train_bench.py 2>/dev/null | grep -E '^[a-z_]+: '

# The real `thrifty run` on 1,000 kwok nodes with 500 RLWorkloads of 20 pods (hack/perf/cluster_bench.py).
perf-cluster: venv binaries
	@$(PY) hack/perf/cluster_bench.py

test-unit: venv
	$(PY) -m pytest tests/unit

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
