# `make test` is the project's one test command: the README and CI call it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: test lint typecheck pytest venv constraints demo clean

test: venv lint typecheck pytest

venv: $(VENV)/.installed

# The runtime dependencies at the versions of constraints.txt, the ones the image ships.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt -e '.[test]'
	touch $@

# Freeze the runtime dependencies (and theirs) of .venv, which `make test` tests, into
# constraints.txt. To upgrade one: .venv/bin/pip install -U NAME; make constraints; make test,
# and commit the new constraints.txt only if that passes.
constraints: venv
	$(BIN)/pip freeze --exclude-editable | $(BIN)/python deploy/make_constraints.py

lint: venv
	$(BIN)/ruff check exporter tests
	$(BIN)/ruff format --check exporter

typecheck: venv
	$(BIN)/mypy --strict exporter

pytest: venv
	$(BIN)/pytest -q $(PYTEST_ARGS)

demo: venv
	$(BIN)/greenapi-exporter --demo

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
