# Gridfleet: `make demo` starts a working server with a demo fleet; `make test` runs the whole suite.
# Both create/refresh the virtualenv in .venv first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_AGENTS ?= 6

# Local services for tests: used when they answer on their default ports (CI has them).
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
REDIS_TEST_URL ?= redis://127.0.0.1:6379/15

.PHONY: demo test test-sqlite lint venv browser clean

venv: $(STAMP)

$(STAMP): pyproject.toml agent/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]" -e "./agent[field]"
	touch $(STAMP)

demo: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_fleet --agents $(DEMO_AGENTS) --host $(HOST) --port $(PORT)

# Debian's chromium for the Playwright browser tests (Playwright's own download does not work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium could not be installed: browser tests will be skipped"

test: venv browser
	@if $(PY) -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" 2>/dev/null; then \
		echo "make test: using PostgreSQL at $(PG_URL)"; db="$(PG_URL)"; \
	else echo "make test: PostgreSQL not answering on 127.0.0.1:5432, using SQLite"; db=""; fi; \
	if $(PY) -c "import socket; socket.create_connection(('127.0.0.1', 6379), 1)" 2>/dev/null; then \
		echo "make test: using Redis at $(REDIS_TEST_URL)"; redis="$(REDIS_TEST_URL)"; \
	else echo "make test: Redis not answering on 127.0.0.1:6379, using in-memory channel layer and cache"; redis=""; fi; \
	DATABASE_URL="$$db" REDIS_URL="$$redis" $(MAKE) --no-print-directory _pytest

test-sqlite: venv browser
	DATABASE_URL= REDIS_URL= $(MAKE) --no-print-directory _pytest

_pytest:
	@CELERY_TASK_ALWAYS_EAGER=1 GRIDFLEET_INPROCESS_SCHEDULER=0 GRIDFLEET_VAR_DIR=$(CURDIR)/var/test \
		$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$status

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy fleet pki firmware
	cd agent && ../$(VENV)/bin/mypy src

clean:
	rm -rf $(VENV) var .pytest_cache
