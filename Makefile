# CheckoutPlatform — the verbs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= uv
RUN := $(UV) run --frozen --quiet
STACK := $(RUN) checkout-stack
PYTEST_ARGS ?=

.PHONY: help bootstrap setup up down status env demo trace test lint e2e bench chaos proto proto-baseline services operator

help: ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

bootstrap: ## check toolchains, install uv, sync the Python workspace
	@bash stack/scripts/bootstrap.sh

setup: bootstrap ## install every component of the local stack (cached by version)
	@$(STACK) setup

up: bootstrap ## start the local stack and show its status
	@$(STACK) up

down: ## stop the platform's processes (node agent), then the local stack (data stays in .run/)
	@$(STACK) down

status: ## each component's version, address and health
	@$(STACK) status

services: bootstrap ## start the six services against the stack (`checkout-stack services down|status` too)
	@$(STACK) services up

operator: bootstrap ## run the operator against the local stack (CRD applied, every namespace, standalone)
	@eval "$$(uv run checkout-stack env)" && kubectl apply --server-side --force-conflicts -f crds/ >/dev/null && \
	  PEERING__STANDALONE=true WORKLOADS__HELM_BINARY="$$(command -v helm)" METRICS_PORT=18080 HEALTH_PORT=18081 \
	  uv run python -m checkout_operator

env: ## print export lines that reach the running stack (and BFF_URL of the demo's platform): eval "$$(make -s env)"
	@$(STACK) env

demo: setup ## the main job: stack up, helm install + kubectl apply of the platform, one real checkout and its trace
	@$(STACK) demo

trace: ## the latest checkout's trace as a waterfall + SVG in .run/traces/ (SAGA=<id> or TRACE_ID=<id> to pick one)
	@$(STACK) trace $(if $(SAGA),--saga-id '$(SAGA)') $(if $(TRACE_ID),--trace-id '$(TRACE_ID)')

test: setup lint ## the whole suite (starts the stack, stops what it started)
	@$(STACK) test -- $(PYTEST_ARGS)

lint: bootstrap ## ruff, mypy (strict), import-linter
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) mypy
	@set -o pipefail; $(RUN) lint-imports | tail -n 1

e2e: setup ## the end-to-end suites on the local control plane (e2e/: platform, saga, traces, observability, kind files)
	@$(STACK) test -- e2e $(PYTEST_ARGS)

bench: setup ## saga engines (platform, floor, DBOS) and operator scale, ~10 min; FULL=1 for the long form
	@$(STACK) up
	@$(RUN) --group bench python bench/all.py $(if $(FULL),--full)

# The suites that write to the reliability ledger: the platform's fault matrix, hostile input, the operator's
# fault rows and the privilege checks on the deployed platform, the CRD's invalid specs, RBAC and DB roles.
CHAOS_PATHS ?= e2e/chaos e2e/hostile e2e/platform/test_01_install.py e2e/platform/test_06b_operator_faults.py \
  e2e/platform/test_06c_operator_offline.py e2e/platform/test_07b_secrets_and_privilege.py crds charts/tests \
  checkout-operator/tests/integration/test_database_privilege.py services/gateway-bff/tests

chaos: setup ## every fault-matrix row under load, hostile input, privilege checks (~40 min); writes RELIABILITY.md
	@ledger="$(CURDIR)/.run/chaos/$$(date -u +%Y%m%dT%H%M%SZ).jsonl"; mkdir -p .run/chaos; \
	  CHAOS_FULL=1 CHAOS_LEDGER="$$ledger" $(STACK) test -- $(CHAOS_PATHS) $(PYTEST_ARGS); rc=$$?; \
	  $(RUN) python e2e/chaos/reliability.py "$$ledger"; exit $$rc

proto: bootstrap ## regenerate the Python contracts from proto/ (and lint them with buf)
	@$(RUN) python proto/generate.py
	@$(STACK) setup buf >/dev/null
	@cd proto && $(CURDIR)/.run/bin/buf lint

proto-baseline: bootstrap ## accept the current contracts as the breaking-change baseline (on purpose only)
	@$(STACK) setup buf >/dev/null
	@mkdir -p proto/baseline && cd proto && $(CURDIR)/.run/bin/buf build --exclude-source-info -o baseline/checkout-v1.binpb
	@echo "proto/baseline/checkout-v1.binpb updated: commit it with the contract change it accepts"
