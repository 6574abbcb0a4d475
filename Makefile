# simarch: two commands on a fresh machine.
#   make demo   set up .venv with the runtime dependencies and simulate the example design
#   make test   set up .venv with the dev extras, lint, and run the whole suite (two workers;
#               an idle worker takes tests from the other's share, so no long file sets the pace)
# For the edit-run loop: make test-fast (no long statistical runs, no docs examples, no
# notebooks, on every core); make fuzz runs the fuzzing harness with a larger budget than
# make test does.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME := $(VENV)/.installed
DEV     := $(VENV)/.installed-dev

.PHONY: demo test test-fast fuzz lint bench bench-full clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m compileall -q simarch
	touch $(RUNTIME)

$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q simarch
	touch $(RUNTIME) $(DEV)

demo: $(RUNTIME)
	$(BIN)/simarch run architectures/cached_sharded.yaml --duration 60s

test: lint
	$(BIN)/python -m pytest -q --nbmake -n 2 --dist worksteal tests notebooks

test-fast: $(DEV)
	$(BIN)/python -m pytest -q -m "not slow" -n auto --dist loadfile tests

fuzz: $(DEV)
	SIMARCH_FUZZ_EXAMPLES=2000 $(BIN)/python -m pytest -q tests/test_fuzz.py

lint: $(DEV)
	$(BIN)/ruff check simarch tests experiments
	$(BIN)/lint-imports

bench: $(RUNTIME)
	$(BIN)/python experiments/bench_engine.py --quick

bench-full: $(RUNTIME)
	$(BIN)/python experiments/bench_engine.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
