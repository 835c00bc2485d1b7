# Loopline: the two commands are `make demo` and `make test`; everything else
# is here for people working on the platform.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV = $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN = $(UV) run --frozen
RUN_DIR ?= .run
PYTEST_ARGS ?=

.PHONY: help bootstrap demo test test-unit test-integration protos check-protos up down status logs bench bench-gateway bench-gateway-scale bench-feedback bench-drift bench-registry bench-producer clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

bootstrap: ## install what is missing (Debian packages, uv, the Python environment)
	@scripts/bootstrap.sh

demo: bootstrap ## start the whole platform locally and run the closed loop
	@$(RUN) loopline --run-dir $(RUN_DIR) demo

test: bootstrap ## run every test: unit, then integration against real Kafka, PostgreSQL and Triton
	@$(RUN) pytest $(PYTEST_ARGS)

test-unit: bootstrap ## unit tests only (seconds)
	@$(RUN) pytest -m "not integration" $(PYTEST_ARGS)

test-integration: bootstrap ## integration tests only
	@$(RUN) pytest -m integration $(PYTEST_ARGS)

protos: ## regenerate libs/contracts from protos/
	@$(RUN) bash scripts/gen_protos.sh

up: bootstrap ## start the local stack (Kafka, PostgreSQL, Triton, the five services)
	@$(RUN) loopline --run-dir $(RUN_DIR) stack up

down: ## stop everything the local stack started
	@if [ -x .venv/bin/loopline ]; then .venv/bin/loopline --run-dir $(RUN_DIR) stack down; fi

status: ## show each part of the local stack
	@.venv/bin/loopline --run-dir $(RUN_DIR) stack status

logs: ## show the stack's logs (make logs NAME=registry)
	@.venv/bin/loopline --run-dir $(RUN_DIR) stack logs $(NAME)

bench: bootstrap ## run the benchmarks in loadtests/ against a baseline in the same run
	@$(RUN) python -m loadtests

bench-gateway: bootstrap ## Triton directly against through the gateway (gRPC, REST; concurrency 1/4/16)
	@$(RUN) python -m loadtests.bench_gateway

bench-gateway-scale: bootstrap ## throughput at saturation, Triton directly against through 1, 2, ... gateway workers
	@$(RUN) python -m loadtests.bench_gateway_scale

bench-feedback: bootstrap ## sustained joins/s of the feedback collector, label-to-topic p50/p99
	@$(RUN) python -m loadtests.bench_feedback

bench-drift: bootstrap ## detection delay, false alarms and events/s of the drift detector
	@$(RUN) python -m loadtests.bench_drift

bench-registry: bootstrap ## registry gRPC/REST throughput and latency
	@$(RUN) python -m loadtests.bench_registry

bench-producer: bootstrap ## CPU per record of EventProducer.send_batch against one send() per record
	@$(RUN) python -m loadtests.bench_producer

clean: down ## stop the stack and remove its run directory
	rm -rf $(RUN_DIR)
