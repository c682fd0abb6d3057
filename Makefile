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

.PHONY: help venv binaries cluster cluster-down test test-unit test-cluster demo perf bench clean

help:
	@echo "make demo          run Thrifty on a local cluster and print a summary"
	@echo "make test          the whole test suite (unit + cluster + end-to-end)"
	@echo "make cluster NODES=N / make cluster-down"
	@echo "make perf          performance benchmarks (name: value unit)"

$(VENV)/.stamp: pyproject.toml
	@start=$$(date +%s); \
	test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	$(PY) -m pip install -q --upgrade pip; \
	$(PY) -m pip install -q -e '.[test]'; \
	echo "python environment ready in $$(( $$(date +%s) - start )) s"
	@touch $@

venv: $(VENV)/.stamp

binaries:
	@hack/build.sh

cluster: binaries
	@hack/cluster.sh up --name $(CLUSTER) --nodes $(NODES)

cluster-down:
	@hack/cluster.sh down --name $(CLUSTER)

test: venv binaries
	$(PY) -m pytest tests

test-unit: venv
	$(PY) -m pytest tests/unit

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
