# `make test` is the project's one test command: the README and CI call it. `make test-fast`
# runs the unit tests alone (no program started: see tests/conftest.py), in seconds.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# What ruff and mypy --strict check: the package, its tests and every script of the repository.
PY_SOURCES := exporter tests grafana benchmarks $(wildcard prometheus/*.py) deploy
# pytest-xdist workers. The suite mostly waits (for processes to start, for polls, for
# Prometheus to scrape), so more workers than the machine's 2 cores pay: 6 measured fastest.
# Tests sharing a module's exporter or Prometheus run on one worker (--dist loadgroup). The
# unit tests wait too (deadlines and timeouts on loopback): 4 for them.
WORKERS      ?= 6
FAST_WORKERS ?= 4
# pytest caches the test modules it rewrites for assertions (4 s of CPU per worker otherwise),
# in the virtualenv rather than the work tree, even where the environment says not to write
# bytecode. WARM collects once, so that the workers find that cache filled (best effort: the
# run itself reports a collection error).
PYTEST := env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$(abspath $(VENV))/pycache $(BIN)/pytest
WARM    = $(PYTEST) -q --collect-only $(PYTEST_ARGS) >/dev/null 2>&1 || true

.PHONY: test test-fast lint typecheck pytest venv constraints demo clean

test: venv lint typecheck pytest

test-fast: venv
	@$(WARM)
	$(PYTEST) -q -m "not process" -n $(FAST_WORKERS) $(PYTEST_ARGS)

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
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)

typecheck: venv
	$(BIN)/mypy --strict $(PY_SOURCES)

# -rs lists any skipped test with its reason: none is expected where CI runs.
pytest: venv
	@$(WARM)
	$(PYTEST) -q -rs -n $(WORKERS) --dist loadgroup $(PYTEST_ARGS)

demo: venv
	$(BIN)/greenapi-exporter --demo

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
