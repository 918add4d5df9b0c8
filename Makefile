# One task runner for everything: `make run`, `make test`, `make lint`, `make bench`.
# Each target creates .venv and installs the project into it first (once per pyproject change).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run sim test lint bench clean

$(STAMP): pyproject.toml setup.py $(wildcard protocol/*.proto)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job. Until the runtime lands it is the simulator: 2,000 seeds under every fault.
run: $(STAMP)
	$(BIN)/mca sim --seeds 2000 --faults all

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check protocol sim mca tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/sim_throughput.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
