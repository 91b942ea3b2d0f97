# One command sets up and tests; one sets up and runs the tour.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
#: `make run` needs only raftsim itself (aiohttp, msgpack, rich): a fresh machine shows the
#: tour in seconds instead of installing the browser, API-fuzzing and type-checking tools
RUN_STAMP := $(VENV)/.installed-run

#: the compiled core, network and server runtime (raftsim/compiled.py): rebuilt when a
#: source changes; without a C compiler raftsim runs as plain Python and says so
COMPILED := $(VENV)/raftsim-compiled/manifest.json
COMPILED_FROM := $(shell find raftsim -name '*.py')

.PHONY: test run lint typecheck bench clean compile

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP) $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(COMPILED): $(STAMP) $(COMPILED_FROM)
	$(BIN)/raftsim compile || true

compile: $(COMPILED)

test: $(STAMP) $(COMPILED)
	$(BIN)/ruff check raftsim tests
	$(BIN)/mypy
	$(BIN)/python -m pytest

run: $(RUN_STAMP)
	$(BIN)/raftsim run scenarios/tour.toml

lint: $(STAMP)
	$(BIN)/ruff check raftsim tests

bench: $(STAMP) $(COMPILED)
	$(BIN)/raftsim bench sim

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
