# Set-up is incremental: each target installs only what is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

NODE_STAMP := node_modules/.package-lock.json

DEMO := build/demo

.PHONY: setup setup-python setup-browser test soak check lint typecheck demo clean

setup: setup-python setup-browser

setup-python: $(STAMP)

# The page's JavaScript dependencies (onnxruntime-web, pyodide), pinned by package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
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

soak: setup
	SOAK=full $(PY) -m pytest -q tests/runtime/test_soak.py tests/browser -k soak

lint: setup-python
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup-python
	$(PY) -m mypy

check: lint typecheck test

# Until the trained tiny model lands, the demo's default is a seeded tiny random checkpoint (the page says so).
demo: setup
	test -f $(DEMO)/tiny-random-checkpoint/config.json || $(PY) -m export.random_checkpoint $(DEMO)/tiny-random-checkpoint
	mkdir -p $(DEMO)/bundles
	$(PY) -m export $(DEMO)/tiny-random-checkpoint $(DEMO)/bundles/tiny-random --force
	$(PY) -m web build $(DEMO)/site --bundle tiny-random=$(DEMO)/bundles/tiny-random \
	  --note "tiny-random=Seeded tiny random checkpoint: no trained model exists yet, so the text is gibberish."
	$(PY) -m web serve $(DEMO)/site --port 8000

clean:
	rm -rf build site .pytest_cache .mypy_cache .ruff_cache
