# Everything a fresh machine needs is installed by these targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CACHE ?= $(HOME)/.cache/millrace
export MILLRACE_CACHE := $(CACHE)

.PHONY: setup demo test test-unit test-local test-cluster bench tools crds clean

$(BIN)/millrace: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/millrace tools

# TypeScript runtimes (bun, deno) from the npm registry, cached outside the repository.
tools:
	@$(PYTHON) scripts/install_node_tools.py

demo: setup
	$(BIN)/millrace run examples/hello-flow.yaml --arg name=world

test: setup
	$(BIN)/pytest -q

test-unit: $(BIN)/millrace
	$(BIN)/pytest -q tests/unit

test-local: setup
	$(BIN)/pytest -q tests/local

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .millrace
