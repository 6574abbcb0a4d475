# simarch: two commands on a fresh machine.
#   make demo   set up .venv and simulate the example design
#   make test   set up .venv with the dev extras and run the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/simarch run architectures/cached_sharded.yaml --duration 60s

test: lint
	$(BIN)/python -m pytest -q --nbmake tests notebooks

# the edit-run loop: everything but the long statistical runs and the notebooks
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check simarch tests experiments
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python experiments/bench_engine.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
