# `make run` and `make test` each bootstrap .venv on a fresh machine (Python, Node, npm).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8888

.PHONY: run run-supervisor test test-python bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Start the headless supervisor (`jupyter session-ext`) on $(HOST):$(PORT); it prints the URL and token.
run-supervisor: $(STAMP)
	$(BIN)/jupyter session-ext --ip=$(HOST) --port=$(PORT) --allow-root --no-browser

run: run-supervisor

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) build dist *.egg-info
