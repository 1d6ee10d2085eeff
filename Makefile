# jaklapor: `make run` starts the whole system locally, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test demo setup system-deps lint clean

# the product (jaklapor, with its test tools) and the development tools beside it (devtools/: local stores, demo)
$(BIN)/.installed: pyproject.toml devtools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -e ./devtools
	touch $@

setup: $(BIN)/.installed

## start intake, routing, notify and stats in one process with local defaults (Ctrl-C stops)
run: setup
	scripts/ensure-rabbitmq
	$(BIN)/jaklapor run

## run the test suite (unit, end-to-end on the local RabbitMQ, deployment checks)
test: setup system-deps
	scripts/ensure-rabbitmq
	$(BIN)/python -m pytest

## submit sample reports to a running system (`make run` in another terminal) and walk them through
demo: setup
	$(BIN)/jaklapor demo

## delete the local mode's reports and photos (stop `make run` first); report numbers go on, never repeating
.PHONY: reset
reset: setup
	$(BIN)/jaklapor reset

## write .env for docker compose with fresh random secrets (refuses to overwrite one)
.PHONY: env
env:
	scripts/generate-env

system-deps:
	scripts/install-system-deps

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info devtools/*.egg-info
