# Set-up is incremental: each target installs only what is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

NODE_STAMP := node_modules/.package-lock.json
NODE_DEV_STAMP := node_modules/.dev-tools-installed
TJS_DIR := tests/transformers_js
TJS_STAMP := $(TJS_DIR)/node_modules/.package-lock.json

DEMO := build/demo

.PHONY: setup setup-python setup-browser setup-transformers-js setup-js-dev test bench fidelity soak check lint typecheck lint-js typecheck-js demo train-tiny clean

setup: setup-python setup-browser setup-transformers-js

setup-python: $(STAMP)

# The page's JavaScript dependencies (onnxruntime-web, pyodide), pinned by package-lock.json. Only
# `dependencies` (what the site and the wheel vendor): the devDependencies are the JS checks' tools.
$(NODE_STAMP): package.json package-lock.json
	npm ci --omit=dev --ignore-scripts --no-audit --no-fund
	touch $@

# TypeScript and ESLint for `make lint-js` / `make typecheck-js` (package.json's devDependencies, pinned by
# the same lock; never vendored: the site and the wheel take only `dependencies`).
$(NODE_DEV_STAMP): package.json package-lock.json
	npm ci --include=dev --ignore-scripts --no-audit --no-fund
	touch $@ $(NODE_STAMP)

setup-js-dev: $(NODE_DEV_STAMP)

# transformers.js and onnxruntime-node for tests/export/test_transformers_js.py, pinned by their own lock file.
# onnxruntime-node's package bundles the CPU binary; its install script only fetches what it does not
# bundle (the CUDA provider), so it is skipped, both ways; no other package needs its scripts either.
$(TJS_STAMP): $(TJS_DIR)/package.json $(TJS_DIR)/package-lock.json
	cd $(TJS_DIR) && ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund
	touch $@

setup-transformers-js: $(TJS_STAMP)

# Debian's Chromium for the Playwright tests (Playwright cannot download its own browsers here),
# and tmux for the test that drives `qwen35web chat` in a real terminal.
setup-browser: $(NODE_STAMP)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@command -v tmux >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux; }

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch is pinned to the CPU build that lies on this machine's disk.
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

test: setup
	$(PY) -m pytest -q

# Speed and memory against the onnxruntime-genai builder (not part of make test; ~25 min, ~15 GB in build/bench).
bench: setup
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench peers --web-0.8b

# Held-out perplexity and top-1 agreement of every path against PyTorch and the onnxruntime-genai
# builder's int4 (tiny trained model), the per-size q4/q4f16/q8 defaults, 0.8B decode vs the builder.
# Native rows ~10 min on an idle machine the first time (exports, 0.8B checkpoints), the browser rows ~15 more.
fidelity: setup
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench fidelity

soak: setup
	SOAK=full $(PY) -m pytest -q tests/runtime/native/test_soak.py tests/browser -k soak

lint: setup-python
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup-python
	$(PY) -m mypy

# The site's JavaScript, served as it is (no build step): ESLint, and TypeScript over its JSDoc types: the
# page against qwen35web.d.mts, the module's own code against it, the worker side with worker globals.
lint-js: $(NODE_DEV_STAMP)
	node_modules/.bin/eslint qwen35web/web/static

typecheck-js: $(NODE_DEV_STAMP)
	node_modules/.bin/tsc -p tsconfig.json
	node_modules/.bin/tsc -p tsconfig.module.json
	node_modules/.bin/tsc -p tsconfig.worker.json

check: lint typecheck lint-js typecheck-js test

# The demo's default is the tiny model this project trains (models/tiny-qwen35, `make train-tiny`).
demo: setup
	mkdir -p $(DEMO)/bundles
	$(VENV)/bin/qwen35web export models/tiny-qwen35 $(DEMO)/bundles/tiny-qwen35 --force
	$(VENV)/bin/qwen35web site build $(DEMO)/site --bundle tiny-qwen35=$(DEMO)/bundles/tiny-qwen35 \
	  --note "tiny-qwen35=A 3.6M-parameter Qwen3.5-architecture model trained here on Python's documentation and a small synthetic chat and tool-call set (see models/tiny-qwen35/MODEL_CARD.md): readable, repetitive, not knowledgeable; with the demo tools listed (models/tiny-qwen35/tools.json: calculator, current_time) it calls them for arithmetic and time questions."
	$(VENV)/bin/qwen35web site serve $(DEMO)/site --port 8000

# Retrain the demo model from scratch (46.5 min at load ~14 on the shared 2 cores; less when idle; seeded,
# reproducible), then measure its tool calls through the runtime on a held-out synthetic set and write the
# figures into its card.
train-tiny: setup-python
	$(PY) -m devtools.train_tiny models/tiny-qwen35 --force
	$(VENV)/bin/qwen35web export models/tiny-qwen35 build/tiny-qwen35-fp32 --force
	$(PY) -m devtools.train_tiny.tool_eval build/tiny-qwen35-fp32 --json models/tiny-qwen35/tool_eval.json
	$(PY) -m devtools.train_tiny.card models/tiny-qwen35

clean:
	rm -rf build site .pytest_cache .mypy_cache .ruff_cache
