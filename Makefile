# One task runner for everything: `make run`, `make test`, `make lint`, `make bench`.
# Each target creates .venv and installs the project into it first (once per pyproject change).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run sim test lint bench clean

$(STAMP): pyproject.toml setup.py $(wildcard protocol/*.proto)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev,runtime,knowledge,planning]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default: local Ray, three MCA replicas and the agents of
# cluster.yaml on 127.0.0.1; twenty two-agent tasks go through the whole protocol, then it stops.
run: $(STAMP)
	$(BIN)/mca demo --tasks 20

# The simulator: the coordination core under every fault, 2,000 seeds.
sim: $(STAMP)
	$(BIN)/mca sim --seeds 2000 --faults all

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check protocol sim mca knowledge npa wpa wellness tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/sim_throughput.py
	$(BIN)/python bench/e2e.py
	$(BIN)/python bench/knowledge.py
	$(BIN)/python bench/planning.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
