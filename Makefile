# tripclick-orchestration: every entry point a developer or CI uses.
# `make` alone lists the targets. Each test layer has its own target; `make test` runs them all.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

# `make help` prints the targets under these headings, in this order; a `##@ <heading>` line puts the
# targets after it under that heading, so a target keeps its place in this file.
HELP_SECTIONS := Set up|Run|Test|Deploy|Operate

##@ Set up
.PHONY: help
help: ## List the targets, grouped
	@awk -v sections='$(HELP_SECTIONS)' 'BEGIN {FS = ":.*## "; n = split(sections, order, "|")} \
	  /^##@ / {section = substr($$0, 5); next} \
	  /^[a-zA-Z0-9_-]+:.*## / {listed[section] = listed[section] sprintf("  \033[36m%-16s\033[0m %s\n", $$1, $$2)} \
	  END {for (i = 1; i <= n; i++) printf "%s\033[1m%s\033[0m\n%s", (i > 1 ? "\n" : ""), order[i], listed[order[i]]; \
	       for (s in listed) if (index("|" sections "|", "|" s "|") == 0) {print "no heading " s " in HELP_SECTIONS" > "/dev/stderr"; exit 1}}' \
	  $(MAKEFILE_LIST)

# The venv is rebuilt whenever a requirements file changes, so a fresh clone needs no set-up step.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

.PHONY: venv
venv: $(STAMP) ## Create the virtual environment from the pinned requirements

##@ Test
.PHONY: lint
lint: $(STAMP) ## Lint Python code with ruff (Airflow rules included)
	$(VENV)/bin/ruff check dags tests scripts demo workloads tripclick_ops cluster
	$(VENV)/bin/ruff format --check dags tests scripts demo workloads tripclick_ops cluster

.PHONY: test-dags
test-dags: $(STAMP) ## DAG layer: integrity, policy, structure, golden files, bad configuration
	$(PY) -m pytest tests/dags

# The clock moved years ahead: a test that depends on today's date fails here.
FUTURE_CLOCK ?= +5y

.PHONY: test-dags-future
test-dags-future: $(STAMP) ## DAG layer again under faketime, the clock $(FUTURE_CLOCK) ahead
	@command -v faketime >/dev/null || { echo "faketime is missing: run 'make system-deps'" >&2; exit 1; }
	faketime -f '$(FUTURE_CLOCK)' $(PY) -m pytest tests/dags

.PHONY: test-monitoring
test-monitoring: $(STAMP) ## Monitoring layer: statsd mappings in the real exporter against Airflow's own lines, promtool rule tests, amtool route tests, dashboard queries
	@command -v promtool >/dev/null || { echo "promtool is missing: run 'make system-deps'" >&2; exit 1; }
	@command -v amtool >/dev/null || { echo "amtool is missing: run 'make system-deps'" >&2; exit 1; }
	@command -v go >/dev/null || { echo "go is missing (the statsd exporter is built from its Go module): run 'make system-deps'" >&2; exit 1; }
	$(PY) -m pytest tests/monitoring

# Every layer `make test` runs, fastest first; CHECK_LAYERS are linters (passed or failed, no test counts).
TEST_LAYERS := lint test-dags test-dags-future test-monitoring test-chart test-kind lint-image test-image test-e2e
CHECK_LAYERS := lint lint-image
TEST_RESULTS := .state/test-results

# Every layer runs even after one fails, so the summary is complete; tests/conftest.py writes each pytest
# session's counts and skip reasons under TEST_RESULTS, the loop each layer's exit code and its start and
# end (epoch seconds), and the summary's exit code is make's.
.PHONY: test
test: $(STAMP) ## Run every test layer, fastest first, then one line per layer: wall time, passed, failed, skipped and why
	@rm -rf $(TEST_RESULTS) && mkdir -p $(TEST_RESULTS)
	@for layer in $(TEST_LAYERS); do \
	  echo "== make $$layer"; \
	  date +%s > $(TEST_RESULTS)/$$layer.start; \
	  TEST_LAYER=$$layer TEST_RESULTS="$(CURDIR)/$(TEST_RESULTS)" $(MAKE) --no-print-directory $$layer; \
	  echo $$? > $(TEST_RESULTS)/$$layer.rc; \
	  date +%s > $(TEST_RESULTS)/$$layer.end; \
	done
	@$(PY) scripts/layer_summary.py --results $(TEST_RESULTS) --checks "$(CHECK_LAYERS)" $(TEST_LAYERS)

.PHONY: bench
bench: bench-dag bench-e2e bench-footprint ## Print every benchmark: DAG parse cost, orchestration overhead, control-plane memory, idle cost and API load

.PHONY: bench-dag
bench-dag: $(STAMP) ## DAG cold import time against a trivial airflow.sdk DAG (medians, ratio)
	$(PY) tests/bench/dag_import.py

##@ Set up
.PHONY: docs
docs: $(STAMP) ## Regenerate docs/configuration.md's reference from dags/tripclick/config.py
	$(PY) scripts/config_reference.py --write

.PHONY: clean
clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache

# --- chart ---
##@ Operate
.PHONY: secrets
secrets: $(STAMP) ## Create/update the Kubernetes Secrets from secrets/<ENV>.yaml (ENV=<name>; DRY_RUN=1 previews, redacted)
	$(PY) scripts/make_secrets.py --env "$(ENV)" $(if $(DRY_RUN),--dry-run)

# checkov's dependencies clash with Airflow's pins: it gets a venv of its own, called as a program.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp

$(CHECKOV_STAMP): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

##@ Set up
.PHONY: checkov-venv
checkov-venv: $(CHECKOV_STAMP) ## Create .venv-checkov (checkov for the chart layer) from requirements-checkov.txt

##@ Test
.PHONY: test-chart
test-chart: $(STAMP) $(CHECKOV_STAMP) ## Chart layer: overlay schemas, wrapper templates, flows, checkov, full render (needs AIRFLOW_CHART_SOURCE), budget, executor view
	$(PY) -m pytest tests/chart

# --- image and kind ---
# The Airflow version comes from requirements.txt only; tests/image fails if image/Dockerfile's default differs.
IMAGE_AIRFLOW_VERSION = $(shell sed -n 's/^apache-airflow==\([^ ;#]*\).*/\1/p' requirements.txt)
# -dirty marks a build from uncommitted changes to what goes into the image.
IMAGE_REVISION = $(shell git rev-parse --short HEAD 2>/dev/null || echo nogit)$(if $(shell git status --porcelain -- image requirements.txt .dockerignore 2>/dev/null),-dirty)
AIRFLOW_IMAGE_NAME ?= tripclick-airflow
AIRFLOW_IMAGE_TAG ?= $(IMAGE_AIRFLOW_VERSION)-$(IMAGE_REVISION)
AIRFLOW_IMAGE ?= $(AIRFLOW_IMAGE_NAME):$(AIRFLOW_IMAGE_TAG)
IMAGE_SOURCE ?= $(or $(shell git config --get remote.origin.url 2>/dev/null),unknown)
# Empty: the Dockerfile's own default, apache/airflow:<version>-python3.12. tests/image sets a stand-in.
AIRFLOW_BASE_IMAGE ?=
IMAGE_DOCKER ?= docker
IMAGE_BUILD_FLAGS ?=

##@ Deploy
.PHONY: image
image: ## Build the Airflow image tripclick-airflow:<airflow version>-<git short rev> (image/Dockerfile)
	@test -n "$(IMAGE_AIRFLOW_VERSION)" || { echo "requirements.txt has no apache-airflow==<version> line; add it" >&2; exit 1; }
	DOCKER_BUILDKIT=1 $(IMAGE_DOCKER) build --file image/Dockerfile \
	  --build-arg AIRFLOW_VERSION=$(IMAGE_AIRFLOW_VERSION) \
	  $(if $(AIRFLOW_BASE_IMAGE),--build-arg BASE_IMAGE=$(AIRFLOW_BASE_IMAGE)) \
	  --build-arg IMAGE_REVISION=$(IMAGE_REVISION) --build-arg IMAGE_SOURCE=$(IMAGE_SOURCE) \
	  $(IMAGE_BUILD_FLAGS) --tag $(AIRFLOW_IMAGE) .

.PHONY: image-ref
image-ref: ## Print the image reference `make image` builds
	@echo $(AIRFLOW_IMAGE)

##@ Test
.PHONY: lint-image
lint-image: $(STAMP) ## Lint image/Dockerfile with hadolint (rules and ignores in image/.hadolint.yaml)
	$(VENV)/bin/hadolint --config image/.hadolint.yaml image/Dockerfile

.PHONY: test-image
test-image: $(STAMP) ## Image layer: version agreement, hadolint, build on a Debian stand-in base and run it (root; about 3 min cold)
	$(PY) -m pytest tests/image

.PHONY: test-kind
test-kind: $(STAMP) ## Kind layer offline: kind-test preflight, manifests (strict), overlay, step-4 values, step-11 checks, shellcheck
	$(PY) -m pytest tests/kind

.PHONY: kind-test
kind-test: ## Deploy to a local kind cluster and run the pipeline there (needs docker, kind, kubectl, helm)
	scripts/kind-test.sh

.PHONY: kind-down
kind-down: ## Delete the kind cluster made by kind-test
	scripts/kind-down.sh

# --- demo ---
# The local stack (PostgreSQL, two Docker daemons with mutual TLS, Spark standalone, a Slack webhook
# stand-in, Airflow 3) runs as root on loopback; all its state is under .state/demo/ (git-ignored).
DEMO_DATE ?= 2020-10-01
DEMO_EVENTS ?= 4000

##@ Set up
.PHONY: system-deps
system-deps: ## Check the system packages the demo stack needs; install them on Debian/Ubuntu as root
	bash scripts/system_deps.sh

##@ Run
.PHONY: demo-up
demo-up: system-deps $(STAMP) ## Start the local stack and load the producer image (reuses what is already up)
	$(PY) -m demo.stack up

.PHONY: demo
demo: demo-up ## Run tripclick_daily_pipeline end to end on the local stack (DEMO_DATE=YYYY-MM-DD)
	$(PY) -m demo.run --date $(DEMO_DATE) --events $(DEMO_EVENTS)

.PHONY: demo-status
demo-status: ## One line per local-stack service: healthy, unhealthy or down
	@if [ -x $(PY) ]; then $(PY) -m demo.stack status; else echo "no venv: nothing was started"; fi

.PHONY: demo-down
demo-down: ## Stop every process the local stack started (by PID); data stays in .state/demo
	@if [ -x $(PY) ]; then $(PY) -m demo.stack down; else echo "no venv: nothing was started"; fi

##@ Operate
# --- operations (docs/operations.md): production through `kubectl port-forward svc/<release>-api-server 8080:8080`
# with AIRFLOW_URL=http://127.0.0.1:8080 and AIRFLOW_USER and AIRFLOW_PASSWORD_FILE (a file with the key password
# of Secret tripclick-admin) or AIRFLOW_PASSWORD. Without AIRFLOW_URL the local stack hands the client the same
# variables (python -m demo.stack ops-env); a failure to get them stops the target.
AIRFLOW_URL ?=
OPS = $(if $(AIRFLOW_URL),,ops_env="$$($(PY) -m demo.stack ops-env)" && eval "$$ops_env" &&) \
  $(PY) -m tripclick_ops$(if $(AIRFLOW_URL), --url $(AIRFLOW_URL)$(if $(AIRFLOW_PASSWORD_FILE), --password-file $(AIRFLOW_PASSWORD_FILE)))

.PHONY: rerun-stage
rerun-stage: $(STAMP) ## Run one stage of a day again with what depends on it (DATE=YYYY-MM-DD STAGE=<stage>)
	$(OPS) rerun-stage --date "$(DATE)" --stage "$(STAGE)" --wait

.PHONY: backfill
backfill: $(STAMP) ## Run the days FROM..TO through Airflow's backfill, one at a time (FROM= TO= [MAX_ACTIVE_RUNS=1])
	$(OPS) backfill --from "$(FROM)" --to "$(TO)" --max-active-runs "$(or $(MAX_ACTIVE_RUNS),1)" --wait

.PHONY: pause
pause: $(STAMP) ## Pause tripclick_daily_pipeline: no new run starts, running tasks finish
	$(OPS) pause

.PHONY: resume
resume: $(STAMP) ## Resume tripclick_daily_pipeline: the scheduler starts due runs again
	$(OPS) resume

##@ Test
.PHONY: test-e2e
# Each test's setup, run and teardown times are printed at the end: runs are what the layer's time is made of.
test-e2e: system-deps $(STAMP) ## End-to-end layer: the pipeline on the real local stack, faults included; stops the stack after
	$(PY) -m pytest tests/e2e --durations=0 --durations-min=1

.PHONY: bench-e2e
bench-e2e: system-deps $(STAMP) ## Orchestration overhead and control-plane memory over real demo runs (medians)
	$(PY) -m demo.bench

# The idle window defaults to five minutes with no run; IDLE_SECONDS shortens it.
IDLE_SECONDS ?= 300
LOAD_SECONDS ?= 120

.PHONY: bench-footprint
bench-footprint: system-deps $(STAMP) ## Idle CPU and memory per Airflow component, then 20 REST clients: latency, errors, api-server peak memory
	$(PY) -m demo.bench_footprint --idle-seconds $(IDLE_SECONDS) --load-seconds $(LOAD_SECONDS)


# --- local Kubernetes (docs/cluster.md): one node built from the Go modules pinned in cluster/versions.env, run as
# host processes under .state/cluster. Needs root. Not part of `make test`: a cold build takes about 15 minutes.
CLUSTER_PACKAGES := gcc libc6-dev pkg-config libseccomp-dev docker.io containernetworking-plugins iptables ipset conntrack iproute2 tcpdump

##@ Set up
.PHONY: cluster-deps
cluster-deps: ## Install the Debian packages the local cluster needs (root)
	@missing=$$(for p in $(CLUSTER_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

.PHONY: cluster-build
cluster-build: $(STAMP) ## Build the local cluster's programs into .state/cluster/bin (only what changed; about 15 min cold)
	$(PY) -m cluster build

##@ Run
.PHONY: cluster-up
cluster-up: cluster-deps $(STAMP) ## Start the local one-node Kubernetes (builds first); done when the node is Ready and DNS answers
	$(PY) -m cluster up

.PHONY: cluster-status
cluster-status: ## One line per local-cluster process: its PID or stopped
	@if [ -x $(PY) ]; then $(PY) -m cluster status; else echo "no venv: nothing was started"; fi

.PHONY: cluster-down
cluster-down: ## Stop the local cluster and remove every process, mount, rule, route and interface it made
	$(PY) -m cluster down

##@ Test
.PHONY: test-cluster
test-cluster: cluster-deps $(STAMP) ## Cluster layer (root, not in `make test`): up, a Service by DNS name, no packet out, nothing left after down
	$(PY) -m pytest tests/cluster --durations=0 --durations-min=1
