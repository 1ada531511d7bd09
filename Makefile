# `make test` is the project's one test command: the README and CI call it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: test lint typecheck pytest venv demo clean

test: venv lint typecheck pytest

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

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
