# OllamaStack: `make run` starts the app, `make test` runs the checks. Each sets up what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
APP_STAMP  := $(VENV)/.app-installed
TEST_STAMP := $(VENV)/.test-installed
JS_STAMP   := tests/js/node_modules/.installed
CHROMIUM   := /usr/bin/chromium
SUDO       := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help run test lint clean

help:  ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)

$(APP_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(TEST_STAMP): $(APP_STAMP) requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(CHROMIUM):  # the browser test drives Debian's Chromium (Playwright's download is not used)
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund
	touch $@

run: $(APP_STAMP)  ## Set up and start the app (http://127.0.0.1:7860)
	$(PY) app.py

lint: $(TEST_STAMP)  ## Static checks (ruff)
	$(VENV)/bin/ruff check .

test: lint $(CHROMIUM) $(JS_STAMP)  ## Set up and run the whole test suite
	$(PY) -m pytest

clean:  ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
