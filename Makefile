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
# Node 20 is end-of-life for jsii; the value lists the major versions to stay quiet about.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# The SageMaker SDK creates a boto3 client at import time; synth and tests need no real account.
export AWS_DEFAULT_REGION ?= eu-west-1

.PHONY: install install-demo install-azure lock image-check bench-images demo test lint format synth aws-summary azure-dry-run bench bench-spark bench-serve bench-threads bench-batch calibrate clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Every install reads a lock (lock/, written by `make lock`): the whole dependency tree at fixed
# versions with the hash of each file, checked by pip (--require-hashes), so CI, the images and
# the Azure ML environments install the very same packages. mlcore itself is then installed
# editable, without dependencies and without build isolation (lock/build.txt holds setuptools).
PIP_LOCKED := $(BIN)/pip install --quiet --require-hashes
PIP_MLCORE := $(BIN)/pip install --quiet --no-deps --no-build-isolation -e .

# The demo needs only mlcore's runtime dependencies and MLflow, its tracking extra: a quick
# first run that leaves browsable runs in out/mlflow.
$(VENV)/.demo-installed: pyproject.toml lock/runtime.txt lock/extra-tracking.txt lock/build.txt | $(BIN)/activate
	$(PIP_LOCKED) -r lock/runtime.txt -r lock/extra-tracking.txt -r lock/build.txt
	$(PIP_MLCORE)
	touch $@

# Tests, synth and the cloud tooling need the full set, cloud SDKs included.
$(VENV)/.dev-installed: pyproject.toml lock/ci.txt lock/build.txt | $(BIN)/activate
	$(PIP_LOCKED) -r lock/ci.txt -r lock/build.txt
	$(PIP_MLCORE)
	touch $@ $(VENV)/.demo-installed $(VENV)/.azure-installed

# The Azure stages of pipelines/azure-pipelines.yml: mlcore and the Azure SDKs only
# (azure/requirements-control.txt, locked in lock/azure-control.txt; no CDK, SageMaker SDK or moto).
$(VENV)/.azure-installed: pyproject.toml lock/azure-control.txt lock/build.txt | $(BIN)/activate
	$(PIP_LOCKED) -r lock/azure-control.txt -r lock/build.txt
	$(PIP_MLCORE)
	touch $@ $(VENV)/.demo-installed

install-demo: $(VENV)/.demo-installed
install-azure: $(VENV)/.azure-installed
install: $(VENV)/.dev-installed

# Builds both images with buildah on local stand-ins for their bases (cached in buildah's storage
# and ~/.cache/mlops-images), then runs every job in them as the synthesised pipeline definition
# and the monitor requests call them (tools/image_check.py; README, "Checking the images").
# Needs root, buildah and debootstrap (.ci/run installs them).
image-check: $(VENV)/.dev-installed
	$(PY) -m tools.image_check

# Image sizes and cold start (container start to a 200 on /ping), medians of several runs, for
# the image as built now and as built before the layer and bytecode changes (tools/bench_images.py).
bench-images: $(VENV)/.dev-installed
	$(PY) -m tools.bench_images

# Re-resolve every lock in lock/ from requirements.txt, pyproject.toml and
# azure/requirements-*.txt (tools/locks.py says why uv, and which lock serves what). Run it after
# editing any of them and commit lock/; tests/test_locks.py fails while a lock is out of date.
lock: $(VENV)/.dev-installed
	$(PY) -m tools.locks

# The ML loop runs as soon as mlcore's small runtime set is installed; only then does the
# full toolchain (CDK, cdk-nag, cfn-lint, SageMaker SDK) install for the AWS summary.
demo: $(VENV)/.demo-installed
	$(BIN)/mlcore demo --output out/demo
	$(MAKE) --no-print-directory aws-summary

# Two test workers on two cores: one OpenMP thread each, or HistGradientBoosting's thread teams
# spin against each other and training in tests gets several times slower.
test: $(VENV)/.dev-installed node_modules/.package-lock.json
	OMP_NUM_THREADS=1 $(BIN)/pytest -n 2 --dist loadgroup

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
azure-dry-run: $(VENV)/.azure-installed
	PYTHONPATH=azure $(PY) -m mlops_azure apply --env $(ENV) --dry-run --output out/azure/$(ENV)

# The CDK CLI and asl-validator (tests) are pinned in package.json; npm ci reruns only when the lock file changes.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

# Templates for the CI/CD stack and dev, staging, prod in cdk.out/ without AWS credentials.
# Fails on any unsuppressed cdk-nag error; ends with the one-screen summary.
synth: $(VENV)/.dev-installed node_modules/.package-lock.json
	npx cdk synth --quiet
	$(PY) -m cdk.summary --no-synth

# What `cdk deploy` would create, synthesised in-process (no credentials, no network, no npm).
aws-summary: $(VENV)/.dev-installed
	$(PY) -m cdk.summary --outdir out/cdk.out

# The drift benchmark (bench/README.md): generates its data once, creates the competitor
# venvs under bench/.venvs/ from bench/requirements-*.txt, prints and saves the table.
bench: $(VENV)/.dev-installed
	$(PY) bench/run_bench.py
	$(MAKE) --no-print-directory bench-spark

# The Spark engine in local mode against the streaming engine on the same Parquet files (10M
# and 50M current rows, generated once; about 13 GB under bench/data/): rows per second, peak
# driver memory, and the scaling from 1 to 2 cores. Saves bench/data/spark_bench.md and .json.
bench-spark: $(VENV)/.dev-installed
	$(PY) bench/run_spark_bench.py

# The serving benchmark (bench/README.md): mlcore serve against Seldon MLServer and Microsoft's
# azureml-inference-server-http on the same model and rows; their venvs live under bench/.venvs/.
bench-serve: $(VENV)/.dev-installed
	$(PY) bench/run_serve_bench.py

# mlcore batch against the trained pipeline's own predict_proba on the same Parquet chunks, at 1M
# and 10M rows of the demo's live period (generated once under bench/data/batch/): rows per
# second and peak memory, medians of several runs. Saves bench/data/batch_bench.md and .json.
bench-batch: $(VENV)/.dev-installed
	$(PY) bench/run_batch_bench.py

# Training time by OpenMP thread count and wait policy (bench/run_thread_bench.py), the figures
# behind training.threads: auto (README, "Training threads"). Saves bench/data/threads.md and .json.
bench-threads: $(VENV)/.dev-installed
	$(PY) bench/run_thread_bench.py

# False-alarm and detection rates of the default drift rules by sample size (bench/calibrate.py;
# the table is in the README, "Drift verdicts"). Saves bench/data/calibration.md and .json.
calibrate: $(VENV)/.dev-installed
	$(PY) bench/calibrate.py
