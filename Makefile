# textback: `make run` starts the development server, `make test` runs every check.
# Both set up what they need first (a virtualenv in .venv; Prism from npm for the API tests).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint setup bench clean

$(BIN)/textback: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/textback
	@if command -v npm >/dev/null 2>&1; then \
		[ -x node_modules/.bin/prism ] || npm install --no-audit --no-fund --silent; \
	else echo "npm not found: the tests against Twilio's API description will be skipped"; fi

run: $(BIN)/textback
	$(BIN)/textback run

lint: $(BIN)/textback
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/pytest

bench: $(BIN)/textback
	$(BIN)/python -m bench.run $(ARGS)

clean:
	rm -rf $(VENV) node_modules instance artifacts
