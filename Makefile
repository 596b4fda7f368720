# Gridfleet: `make demo` starts a working server with a demo fleet; `make test` runs the whole suite.
# Both create/refresh the virtualenv in .venv first. `make test-agent` runs the agent's own tests in a
# virtualenv holding only the agent (`pip install ./agent[test]`), the way a gateway vendor would.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
AGENT_VENV := .venv-agent
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_AGENTS ?= 6

# Local services for tests: used when they answer on their default ports (CI has them).
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
REDIS_TEST_URL ?= redis://127.0.0.1:6379/15

.PHONY: demo test test-sqlite test-agent test-clock lint venv browser clean

venv: $(STAMP)

$(STAMP): pyproject.toml agent/pyproject.toml agent/simulators/pyproject.toml tunnel/pyproject.toml cli/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]" -e ./tunnel -e "./agent[field,csip,scada,cloud]" -e ./agent/simulators -e ./cli
	touch $(STAMP)

demo: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_fleet --agents $(DEMO_AGENTS) --host $(HOST) --port $(PORT)

# Debian's chromium for the Playwright browser tests (Playwright's own download does not work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium could not be installed: browser tests will be skipped"

# Debian's nginx for the tests that run deploy/nginx in front of the server (the package's own
# service is not started: tests run nginx as their own process on loopback ports).
nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; } \
		|| echo "nginx could not be installed: tests of deploy/nginx will be skipped"

test: venv browser nginx
	@if $(PY) -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" 2>/dev/null; then \
		echo "make test: using PostgreSQL at $(PG_URL)"; db="$(PG_URL)"; \
	else echo "make test: PostgreSQL not answering on 127.0.0.1:5432, using SQLite"; db=""; fi; \
	if $(PY) -c "import socket; socket.create_connection(('127.0.0.1', 6379), 1)" 2>/dev/null; then \
		echo "make test: using Redis at $(REDIS_TEST_URL)"; redis="$(REDIS_TEST_URL)"; \
	else echo "make test: Redis not answering on 127.0.0.1:6379, using in-memory channel layer and cache"; redis=""; fi; \
	DATABASE_URL="$$db" REDIS_URL="$$redis" $(MAKE) --no-print-directory _pytest

test-sqlite: venv browser nginx
	DATABASE_URL= REDIS_URL= $(MAKE) --no-print-directory _pytest

# The whole suite again with the clock of every process it starts moved by libfaketime: a year ahead,
# then half a year ahead (the other season). The library comes built from the `libfaketime` package on
# PyPI (test extra): Debian's 0.9.10 makes Python 3.11's time.sleep fail with EINVAL once the monotonic
# clock is left alone, and hangs every timed lock wait when it is not. PostgreSQL and Redis keep the real
# clock, as servers with a drifting clock would.
CLOCK_SHIFTS ?= +365d +182d
test-clock: venv browser
	@preload=$$($(PY) -c "import libfaketime; print(libfaketime.get_reload_information()[1]['LD_LIBRARY_PATH'])")/libfaketime.so.1; \
	for shift in $(CLOCK_SHIFTS); do echo "make test-clock: the suite with the clock at now $$shift"; \
		FAKETIME="$$shift" FAKETIME_DONT_FAKE_MONOTONIC=1 LD_PRELOAD="$$preload" $(MAKE) --no-print-directory test \
			|| exit $$?; done

# The server's suite (tests/), then the agent's own (agent/tests, its own pytest configuration).
_pytest:
	@CELERY_TASK_ALWAYS_EAGER=1 GRIDFLEET_INPROCESS_SCHEDULER=0 GRIDFLEET_VAR_DIR=$(CURDIR)/var/test \
		$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests"; elif [ $$status -ne 0 ]; then exit $$status; fi; \
	cd agent && ../$(PY) -m pytest $(AGENT_PYTEST_ARGS)

# The agent alone: a virtualenv with nothing but `pip install ./agent[test]` (no Django, no server code).
# The dependencies are installed once per agent/pyproject.toml; the agent itself is reinstalled (not
# editable) on every run, so what is tested is the built package.
# gridfleet-tunnel (./tunnel, the maintenance tunnel wire format) is the agent's one sibling package.
$(AGENT_VENV)/.installed: agent/pyproject.toml tunnel/pyproject.toml
	test -x $(AGENT_VENV)/bin/python || $(PYTHON) -m venv $(AGENT_VENV)
	$(AGENT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AGENT_VENV)/bin/python -m pip install --quiet ./tunnel "./agent[test]"
	touch $@

test-agent: $(AGENT_VENV)/.installed
	$(AGENT_VENV)/bin/python -m pip install --quiet --no-deps --force-reinstall ./tunnel ./agent
	@! $(AGENT_VENV)/bin/python -c "import django" 2>/dev/null || { echo "test-agent: django must not be installed"; exit 1; }
	@! $(AGENT_VENV)/bin/python -c "import gridfleet_agent_simulators" 2>/dev/null \
		|| { echo "test-agent: the agent must not install the simulators"; exit 1; }
	cd agent && ../$(AGENT_VENV)/bin/python -m pytest $(AGENT_PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit -c pyproject.toml -r fleet pki firmware agent/src agent/simulators/src tunnel/src cli/src -ll -q
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy fleet pki firmware
	cd agent && ../$(VENV)/bin/mypy src simulators/src
	cd tunnel && ../$(VENV)/bin/mypy src
	cd cli && ../$(VENV)/bin/mypy src

clean:
	rm -rf $(VENV) $(AGENT_VENV) var .pytest_cache agent/build
