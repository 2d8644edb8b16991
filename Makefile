# Every target sets up what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-peers dashboards e2e system-deps clean typecheck stack stack-bins

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[otel,dev]'
	touch $(STAMP)

# Debian's Prometheus and Alertmanager for the integration tests (only when root).
system-deps:
	@bash .ci/system-deps.sh

demo: $(STAMP)
	$(VENV)/bin/graphai

test: $(STAMP) system-deps stack-bins
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

typecheck: lint

bench: $(STAMP)
	$(PY) benchmarks/run.py

# The same work in LangGraph, LlamaIndex Workflows, pydantic-graph and graphai-lib 0.0.12, each in
# a venv of its own built on first use from pinned lock files (benchmarks/peers/requirements/);
# about 8 min on 2 cores, 30 s more the first time. Options: make bench-peers PEERS_ARGS="--quick".
bench-peers: $(STAMP)
	$(PY) benchmarks/peers/run.py $(PEERS_ARGS)

dashboards: $(STAMP)
	$(PY) dashboards/generate.py

# Opt-in: Arize Phoenix (own venv) as a real trace viewer + a headless Chromium screenshot.
e2e: $(STAMP)
	$(PY) -m pytest e2e -q -p no:cacheprovider

# The real Collector (ocb) and Jaeger v2, built from pinned Go modules into
# .cache/stack/<versions-hash>/ (cold: about 5 min on 2 cores; warm: nothing rebuilt). `make test`
# builds them first; if the build cannot be had (no Go, no module proxy), tests/stack skip with
# one line saying why and everything else runs.
stack-bins:
	@command -v go >/dev/null && bash deploy/build-stack.sh || echo "stack: build failed or Go missing; tests/stack will skip"

stack: $(STAMP) stack-bins
	$(PY) -m pytest tests/stack -q -p no:cacheprovider

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
