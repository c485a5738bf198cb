# Two commands for a new user:  `make run` (the whole pipeline) and `make test` (the test suite).
# Each creates .venv and installs the pinned dependencies first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DVC_NO_ANALYTICS := 1
export BENTOML_DO_NOT_TRACK := True
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test lint serve readme install clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/ruff check src stages tests benchmarks examples
	$(BIN)/pytest -q

readme: $(STAMP)  # the README's results tables, from reports/metrics.json
	$(BIN)/python -m rnnad.report README.md

serve: $(STAMP)
	$(BIN)/bentoml serve rnnad.service:Detector --host 127.0.0.1 --port $${PORT:-3000}

lint: $(STAMP)
	$(BIN)/ruff check src stages tests benchmarks examples

clean-venv:
	rm -rf $(VENV)
