# tripclick-orchestration: every entry point a developer or CI uses.
# `make` alone lists the targets. Each test layer has its own target; `make test` runs them all.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The venv is rebuilt whenever a requirements file changes, so a fresh clone needs no set-up step.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

.PHONY: venv
venv: $(STAMP) ## Create the virtual environment from the pinned requirements

.PHONY: lint
lint: $(STAMP) ## Lint Python code with ruff (Airflow rules included)
	$(VENV)/bin/ruff check dags tests
	$(VENV)/bin/ruff format --check dags tests

.PHONY: test-dags
test-dags: $(STAMP) ## DAG layer: integrity, policy, structure, golden files, bad configuration
	$(PY) -m pytest tests/dags

.PHONY: test
test: lint test-dags ## Run every test layer, fastest first

.PHONY: bench
bench: $(STAMP) ## Print benchmark figures (DAG cold import vs a trivial DAG)
	$(PY) tests/bench/dag_import.py

.PHONY: clean
clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache

# --- chart (issue 4) ---
.PHONY: secrets
secrets: $(STAMP) ## Create/update the Kubernetes Secrets from secrets/<ENV>.yaml (ENV=<name>; DRY_RUN=1 previews, redacted)
	$(PY) scripts/make_secrets.py --env "$(ENV)" $(if $(DRY_RUN),--dry-run)

.PHONY: test-chart
test-chart: $(STAMP) ## Chart layer: overlay schemas, wrapper templates, full render (needs AIRFLOW_CHART_SOURCE), budget, executor view
	$(PY) -m pytest tests/chart
# --- end chart (issue 4) ---
