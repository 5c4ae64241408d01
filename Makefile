# Two commands on a fresh clone:
#   make run   — the whole stack: embedded Temporal dev server + Web UI, worker, HTTP service
#   make test  — lint, format check, strict typing and the whole test suite

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit install test-peers bench bench-flap bench-keys bench-metrics bench-faults bench-new-incidents bench-first-notification clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m workers.stack

test: $(STAMP) test-peers lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

# Real peers some tests talk to (headless Chromium, Prometheus Alertmanager), from Debian.
test-peers:
	@bash scripts/ensure-test-peers.sh

bench: $(STAMP)
	$(BIN)/python -m benchmarks.webhook_throughput

# Issue 7's storms against a private stack; exit 1 when a target is missed.
bench-flap: $(STAMP)
	$(BIN)/python -m benchmarks.flap_storm

bench-keys: $(STAMP)
	$(BIN)/python -m benchmarks.key_storm

# Issue 10: incident metrics over 10,000 closed incidents (METRICS_ARGS="--incidents 2000").
bench-metrics: $(STAMP)
	$(BIN)/python -m benchmarks.metrics_scale $(METRICS_ARGS)

# Issue 11: fault proofs against 2 workers and 2 HTTP processes (FAULTS_ARGS="--slack-outage 30"),
# new incidents per second and alert → first notification on the embedded WAL dev server.
bench-faults: $(STAMP)
	$(BIN)/python -m benchmarks.faults $(FAULTS_ARGS)

bench-new-incidents: $(STAMP)
	$(BIN)/python -m benchmarks.new_incidents

bench-first-notification: $(STAMP)
	$(BIN)/python -m benchmarks.first_notification

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
