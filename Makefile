# textback: `make run` starts the development server, `make test` runs every check.
# Both set up what they need first, in a virtualenv in .venv: `run` only what running needs,
# `test` the test tools as well (and Prism from npm for the API tests).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000
ARGS ?=

# Stamps: each set of packages is installed once, and again when pyproject.toml changes.
RUN_DEPS := $(VENV)/.installed-run
TEST_DEPS := $(VENV)/.installed-test

# uv (PyPI's `uv`, installed into the venv from its wheel) installs in seconds what pip takes
# half a minute for; plain pip does the same job when uv cannot be had (offline, an unusual
# platform). Either way nothing is needed beforehand but Python and make.
define install
	@if [ -x $(BIN)/uv ] || $(BIN)/python -m pip install --quiet uv; then \
		$(BIN)/uv pip install --quiet --python $(BIN)/python $(1) \
		|| $(BIN)/python -m pip install --quiet $(1); \
	else \
		echo "uv is not available: installing with pip (slower)"; \
		$(BIN)/python -m pip install --quiet $(1); \
	fi
endef

.PHONY: run test lint setup bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_DEPS): pyproject.toml | $(BIN)/python
	$(call install,-e .)
	touch $@

$(TEST_DEPS): pyproject.toml | $(BIN)/python
	$(call install,-e '.[test]')
	touch $@ $(RUN_DEPS)

setup: $(TEST_DEPS)
	@if command -v npm >/dev/null 2>&1; then \
		[ -x node_modules/.bin/prism ] || npm install --no-audit --no-fund --silent; \
	else echo "npm not found: the tests against Twilio's API description will be skipped"; fi

run: $(RUN_DEPS)
	$(BIN)/textback run --port $(PORT) $(ARGS)

lint: $(TEST_DEPS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/pytest $(ARGS)

bench: $(TEST_DEPS)
	$(BIN)/python -m bench.run $(ARGS)

clean:
	rm -rf $(VENV) node_modules instance artifacts
