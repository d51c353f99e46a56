# Two commands do everything from a fresh clone: `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PORT ?= 8000
# Every recipe sees the project's venv first: `dvc`, `python`, `pytest`, `gunicorn` are ours.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup system-deps repro run serve test image image-test report gate bench-pipeline bench-api

help:
	@echo "make run    - install, reproduce the pipeline, serve the model on http://127.0.0.1:$(PORT)"
	@echo "make test   - install, reproduce the pipeline, run the whole test suite"
	@echo "make setup | repro | serve | remote-up | remote-down | push | pull | image | image-test | report | gate | bench-pipeline | bench-api"

setup: $(VENV)/.installed node_modules/.installed

# Pinned direct dependencies, and every transitive version pinned by constraints.txt.
$(VENV)/.installed: requirements.txt requirements_serve.txt requirements_dvc.txt requirements_test.txt constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip==26.3
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements_test.txt -c constraints.txt
	touch $@

# The raw data: vega-datasets at the version and integrity hash in package-lock.json.
node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

repro: setup
	dvc repro

run: repro serve

serve: setup
	HOST=127.0.0.1 PORT=$(PORT) ./initializer.sh

test: repro system-deps
	pytest
	$(MAKE) image-test

# Debian/Ubuntu packages: the image tools (podman, buildah, runc, debootstrap), promtool, wrk, and
# shellcheck (actionlint checks the workflows' scripts with it).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@for tool in podman buildah runc debootstrap promtool wrk shellcheck; do command -v $$tool >/dev/null || missing=1; done; \
	if [ -n "$${missing:-}" ]; then \
	  $(SUDO) apt-get update -qq \
	  && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc debootstrap >/dev/null \
	  && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus wrk shellcheck >/dev/null; \
	fi

# The serving image, its model pulled from the DVC remote with the credentials in .dvc/config.local.
# BASE_IMAGE=python:3.11-slim where it can be pulled; the default builds one from Debian packages.
image: setup system-deps
	python -m utilities.image build

# Build against a throwaway S3 server, run the container, check /ready, a prediction and the md5.
image-test: setup system-deps
	python -m utilities.image test

# The CML report, locally: metric and param differences against GATE_BASE, the gate, the plots.
GATE_BASE ?= main
report: setup
	python -m utilities.report --base $(GATE_BASE) --out report.md

# Fails, with a table, when a test metric regressed against GATE_BASE beyond params.yaml gate.tolerance.
gate: setup
	python -m utilities.gate --base $(GATE_BASE)

bench-pipeline: setup
	python -m benchmarks.pipeline

bench-api: repro system-deps
	python -m benchmarks.api

# A real S3 server (SeaweedFS) on 127.0.0.1:9000 for the DVC remote of .dvc/config; credentials are
# generated once and written to .dvc/config.local (git-ignored).
.PHONY: remote-up remote-down push pull
remote-up: setup
	python -m utilities.s3_server up

remote-down: setup
	python -m utilities.s3_server down

push: setup
	dvc push

pull: setup
	dvc pull
