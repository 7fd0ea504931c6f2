# Commands for a fresh machine: `make pilot`, `make pilot-crafter` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: venv pilot pilot-crafter test lint dry-run clean-pilot

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,crafter]'
	touch $@

pilot: venv
	$(BIN)/snakemake --profile profiles/local --configfile config/pilot.yaml

pilot-crafter: venv
	$(BIN)/snakemake --profile profiles/local --configfile config/pilot-crafter.yaml

test: venv
	$(BIN)/pytest -q -rs

lint: venv
	$(BIN)/snakemake --lint --configfile config/pilot.yaml

dry-run: venv
	$(BIN)/snakemake -n --configfile config/pilot.yaml
