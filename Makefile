# `make run` and `make test` each set everything up on a fresh machine (Python, Node, npm).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8888

.PHONY: run supervisor kcserver test test-ts test-python test-upstream bench chromium sshd tmux clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The editable install also builds the labextension (hatch-jupyter-builder runs jlpm).
$(STAMP): $(BIN)/python pyproject.toml labextension/package.json labextension/yarn.lock
	$(BIN)/pip install -q -e '.[lab,test,bench]'
	touch $(STAMP)

install: $(STAMP)

## JupyterLab with the supervisor and its Kernel Sessions panel, on $(HOST):$(PORT).
run: $(STAMP)
	$(BIN)/jupyter lab --ip=$(HOST) --port=$(PORT) --no-browser --allow-root

## The headless supervisor alone (`jupyter session-ext`, durable mode on).
supervisor: $(STAMP)
	$(BIN)/jupyter session-ext --ip=$(HOST) --port=$(PORT) --allow-root

## The supervisor with kcserver's command line, as Positron runs it (here: TCP, a connection file).
kcserver: $(STAMP)
	$(BIN)/session-ext-kcserver --transport tcp --port $(PORT) --connection-file supervisor.json

# Browser tests drive Debian's chromium (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# The remote-kernel tests run a private sshd (tests/support/sshd.py): Debian's openssh-server binary.
sshd:
	@command -v /usr/sbin/sshd >/dev/null || (apt-get update -qq && apt-get install -y -qq openssh-server >/dev/null)

# The command line's tests run `session-ext` in a real terminal (tests/support/terminal.py).
tmux:
	@command -v tmux >/dev/null || (apt-get update -qq && apt-get install -y -qq tmux >/dev/null)

test-ts: $(STAMP)
	cd labextension && ../$(BIN)/jlpm install --immutable >/dev/null && ../$(BIN)/jlpm test

# axios, ws and typescript for tests/kallichore/test_positron_client.py (Positron's generated client).
POSITRON_NODE := tests/positron/node_modules/.package-lock.json
$(POSITRON_NODE): tests/positron/package.json tests/positron/package-lock.json
	cd tests/positron && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test-python: $(STAMP) chromium sshd tmux $(POSITRON_NODE)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# jupyter_server's own tests (the installed version's sdist), run without and with session_ext:
# any test that passes without it and fails with it fails this target.
test-upstream: $(STAMP)
	$(BIN)/python tests/upstream/run_upstream.py .upstream

test: test-ts test-python test-upstream

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.client_overhead

clean:
	rm -rf $(VENV) .upstream build dist *.egg-info session_ext/labextension labextension/node_modules labextension/lib tests/positron/node_modules
