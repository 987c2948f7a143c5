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

# uv (PyPI's `uv`, a wheel holding one binary) installs in seconds what pip takes half a minute
# for. The venv is made without pip (ensurepip alone takes seconds). uv is, in this order: the
# venv's own; the `uv` on PATH; the copy kept in $(UV_COPY) by an earlier checkout (if younger
# than 30 days); else it comes into the venv through the pip of $(PYTHON) (or the venv's own pip
# when that pip is too old for --python) and a copy is kept for next time, as pip keeps wheels.
# uv then installs pip into the venv as well, so `.venv/bin/pip` works as usual. Without uv
# (offline, an unusual platform) plain pip does the whole job: nothing is needed beforehand but
# Python and make.
UV_COPY ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/textback/uv
ENSURE_PIP := $(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --default-pip >/dev/null
define install
	@uv=$(BIN)/uv; \
	if [ ! -x $$uv ]; then \
		uv=$$(command -v uv) \
		|| { [ -n "$$(find "$(UV_COPY)" -mtime -30 2>/dev/null)" ] && cp "$(UV_COPY)" $(BIN)/uv && uv=$(BIN)/uv; } \
		|| { { $(PYTHON) -m pip --python $(BIN)/python install --quiet uv 2>/dev/null \
			|| { $(ENSURE_PIP) && $(BIN)/python -m pip install --quiet uv 2>/dev/null; }; } \
			&& uv=$(BIN)/uv && { mkdir -p "$(dir $(UV_COPY))" && cp $$uv "$(UV_COPY).new" \
			&& mv "$(UV_COPY).new" "$(UV_COPY)" || true; }; } \
		|| uv=; \
	fi; \
	if [ -n "$$uv" ]; then $$uv pip install --quiet --python $(BIN)/python pip $(1) && exit 0; fi; \
	echo "uv is not available: installing with pip (slower)"; \
	$(ENSURE_PIP); \
	$(BIN)/python -m pip install --quiet $(1)
endef

.PHONY: run test lint setup bench clean

$(BIN)/python:
	$(PYTHON) -m venv --without-pip $(VENV)

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
