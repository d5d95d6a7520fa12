# Set-up is incremental: each target installs only what is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

NODE_STAMP := node_modules/.package-lock.json

.PHONY: setup setup-python setup-browser test check lint typecheck clean

setup: setup-python setup-browser

setup-python: $(STAMP)

# The page's JavaScript dependencies (onnxruntime-web, pyodide), pinned by package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Debian's Chromium for the Playwright tests (Playwright cannot download its own browsers here).
setup-browser: $(NODE_STAMP)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch is pinned to the CPU build that lies on this machine's disk (see shared/notes/platform.md).
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

test: setup
	$(PY) -m pytest -q

lint: setup-python
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup-python
	$(PY) -m mypy

check: lint typecheck test

clean:
	rm -rf build site .pytest_cache .mypy_cache .ruff_cache
