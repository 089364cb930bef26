# Two commands do everything on a fresh machine with only Python:
#   make demo   - create the environment, bring up examples/hello, show it answering
#   make test   - create the environment, run every test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pytest-xdist workers: the suite mostly waits on real processes, so 3 beat 2 on 2 cores
# (4 were slower still: 18.9 min, with the default scheduling). Work stealing, because a few
# end-to-end tests take 30-70 s: with the default scheduling they queued on one worker at
# the end (pytest 16.4 min against 15.2).
# (Not --dist loadgroup: it runs one of schemathesis's per-operation tests of a function.)
PYTEST_WORKERS ?= 3
PYTEST := $(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal
# Azurite (npm) for the Azure Blob tests, installed into .cache/emulators (git-ignored).
AZURITE := .cache/emulators/node_modules/.bin/azurite-blob

.PHONY: env demo demo-spot test test-fast lint typecheck clean

env: $(STAMP) $(AZURITE)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Without npm or network this prints why and goes on: the Azure Blob tests then skip, or fail
# where SERVE_TEST_REQUIRE_EMULATORS=1 (CI).
$(AZURITE): tests/support/azurite.py | $(STAMP)
	$(PY) -m tests.support.azurite

demo: $(STAMP)
	$(PY) examples/demo.py

demo-spot: $(STAMP)
	$(PY) examples/demo_spot.py

test: $(STAMP) $(AZURITE)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy --strict common policies provisioners load_balancer
	$(PY) -m mypy controller replica_manager autoscaler
	$(PYTEST)

test-fast: $(STAMP) $(AZURITE)
	$(PYTEST) -m "not slow"

typecheck: $(STAMP)
	$(PY) -m mypy --strict common policies provisioners load_balancer
	$(PY) -m mypy controller replica_manager autoscaler

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache
