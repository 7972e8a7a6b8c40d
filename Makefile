# Every target here is exactly what the README and CI run.
# Set-up is idempotent: a stamp file records what was installed and is
# rebuilt only when requirements.txt or pyproject.toml change.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
ENV ?= dev
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# The SageMaker SDK creates a boto3 client at import time; synth and tests need no real account.
export AWS_DEFAULT_REGION ?= eu-west-1

.PHONY: install install-demo demo test lint format typecheck synth azure-dry-run bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The demo needs only mlcore's runtime dependencies (pinned by requirements.txt): a quick first run.
# pip refuses extras in a constraints file, so the pins are copied without them.
$(VENV)/.demo-installed: pyproject.toml requirements.txt | $(BIN)/activate
	sed -E 's/\[[^]]*\]//' requirements.txt > $(VENV)/constraints.txt
	$(BIN)/pip install --quiet -c $(VENV)/constraints.txt -e .
	touch $@

# Tests, synth and the cloud tooling need the full set, cloud SDKs included.
$(VENV)/.dev-installed: pyproject.toml requirements.txt | $(BIN)/activate
	$(BIN)/pip install --quiet -r requirements.txt -e .
	touch $@ $(VENV)/.demo-installed

install-demo: $(VENV)/.demo-installed
install: $(VENV)/.dev-installed

demo: $(VENV)/.demo-installed
	$(BIN)/mlcore demo --output out/demo

test: $(VENV)/.dev-installed
	$(BIN)/pytest -n 2 --dist loadgroup

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.dev-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf out cdk.out .pytest_cache .mypy_cache .ruff_cache

# Every Azure ML definition of one environment as YAML, one file per entity, offline:
# no credentials, no network. `make azure-dry-run ENV=prod` for the prod set.
azure-dry-run: $(VENV)/.dev-installed
	PYTHONPATH=azure $(PY) -m mlops_azure apply --env $(ENV) --dry-run --output out/azure/$(ENV)
