# Plinth developer entry points. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup binaries lint test test-unit demo crds clean-cluster

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,devcluster,torch,plot,serving]'
	touch $@

# Kubernetes, etcd, kwok and helm, built from Go modules once and cached under ~/.cache/plinth.
binaries: setup
	$(BIN)/plinth build

lint: setup
	$(BIN)/ruff check operator tests bench images
	$(BIN)/ruff format --check operator tests bench images
	$(BIN)/mypy
	$(BIN)/lint-imports

crds: setup
	$(BIN)/plinth crds --output crds
	cp crds/*.plinth.dev.yaml charts/plinth/crds/

test-unit: setup
	$(BIN)/pytest tests/unit

# Test modules run on TEST_WORKERS pytest-xdist workers, each with its own emulated cluster
# (a module's tests stay on one worker, beside its module-scoped operator).
TEST_WORKERS ?= 2
test: lint binaries
	$(BIN)/pytest -ra -n $(TEST_WORKERS) --dist loadfile

demo: binaries
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh

clean-cluster: setup
	$(BIN)/plinth down
