# One command sets up and tests; one sets up and runs the tour.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test run lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check raftsim tests
	$(BIN)/mypy
	$(BIN)/python -m pytest

run: $(STAMP)
	$(BIN)/raftsim run scenarios/tour.toml

lint: $(STAMP)
	$(BIN)/ruff check raftsim tests

bench: $(STAMP)
	$(BIN)/raftsim bench sim

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
