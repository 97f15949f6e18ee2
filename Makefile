# Everything a fresh machine needs is installed by these targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CACHE ?= $(HOME)/.cache/millrace
export MILLRACE_CACHE := $(CACHE)

.PHONY: setup demo test test-unit test-local test-cluster bench tools databases lua crds chart-golden clean

$(BIN)/millrace: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/millrace tools databases lua

# TypeScript runtimes (bun, deno) from the npm registry, cached outside the repository.
tools:
	@$(PYTHON) scripts/install_node_tools.py

# PostgreSQL and MariaDB servers for the SQL step tests, from Debian's packages when missing.
databases:
	@sh scripts/install_databases.sh

# The Lua interpreter that runs the Argo CD health checks in the tests, from Debian's packages when missing.
lua:
	@sh scripts/install_lua.sh

demo: setup
	$(BIN)/millrace run examples/hello-flow.yaml --arg name=world

test: setup cluster-binaries
	$(BIN)/pytest -q

test-unit: $(BIN)/millrace
	$(BIN)/pytest -q tests/unit

test-local: setup
	$(BIN)/pytest -q -m "not cluster" tests/local tests/conformance

# ---- Local Kubernetes control plane (cluster tests) -------------------------
# etcd, kube-apiserver, kube-controller-manager, kubectl and helm are built
# from the Go module proxy once, into $(MILLRACE_CACHE)/k8s/<version>/bin;
# pods are run by the test node agent (tests/cluster/node_agent.py).
# See docs/testing.md.
CLUSTER := $(BIN)/python scripts/cluster/cluster.py

.PHONY: cluster cluster-down cluster-purge cluster-status cluster-binaries cluster-demo cluster-demo-down

cluster-binaries:
	bash scripts/cluster/build.sh

cluster: $(BIN)/millrace cluster-binaries
	$(CLUSTER) up

cluster-down: $(BIN)/millrace
	$(CLUSTER) down

cluster-purge: $(BIN)/millrace
	$(CLUSTER) down --purge

cluster-status: $(BIN)/millrace
	$(CLUSTER) status

# The operator installed with its chart on the local control plane, the example flow run and shown live.
cluster-demo: setup cluster-binaries
	$(BIN)/python scripts/cluster/demo.py up

cluster-demo-down: $(BIN)/millrace
	$(BIN)/python scripts/cluster/demo.py down

test-cluster: $(BIN)/millrace cluster-binaries
	$(BIN)/pytest -q -m cluster tests/cluster tests/conformance
# ---- end of local control plane ---------------------------------------------

# CRDs generated from the pydantic models, for crds/ and the chart (tests/unit/test_crds.py checks them).
crds: $(BIN)/millrace
	$(BIN)/millrace crds

# Rewrite the chart's golden files (tests/cluster/golden/chart) from `helm template`; review the diff.
chart-golden: $(BIN)/millrace cluster-binaries
	MILLRACE_UPDATE_GOLDEN=1 $(BIN)/pytest -q -m cluster tests/cluster/test_chart.py -k golden

# All benchmarks into docs/benchmarks.md; a subset: make bench BENCH_ARGS="--only local --rounds 2".
BENCH_ARGS ?=
bench: setup cluster-binaries
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	-@[ -x $(BIN)/python ] && $(CLUSTER) down
	rm -rf $(VENV) .millrace
