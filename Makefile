# The two set-up commands of the README:
#   make demo   installs everything and runs the main job on the local stack, end to end
#   make test   installs everything and runs the whole test suite (what .ci/run calls)
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: setup demo test test-unit stack-down clean

setup: $(VENV)/.installed
	@command -v redis-server >/dev/null 2>&1 || { echo "installing redis-server (Debian)"; \
	  (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null) || \
	  { echo "cannot install redis-server: run 'apt-get install redis-server' as root"; exit 1; }; }
	@command -v mvn >/dev/null 2>&1 || { echo "installing maven (Debian)"; \
	  (apt-get update -qq && apt-get install -y -qq maven >/dev/null) || \
	  { echo "cannot install maven: run 'apt-get install maven' as root"; exit 1; }; }
	@command -v promtool >/dev/null 2>&1 || { echo "installing prometheus/promtool (Debian; its packaged service is stopped)"; \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null) || \
	  { echo "cannot install prometheus: run 'apt-get install prometheus' as root"; exit 1; }; \
	  service prometheus stop >/dev/null 2>&1; systemctl disable prometheus >/dev/null 2>&1; true; }
	@command -v java >/dev/null 2>&1 || { echo "Java 17+ is required (apt-get install openjdk-17-jdk)"; exit 1; }

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=python3.x (>= 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(VENV)/bin/streamscore demo

test: setup
	@$(PY) -m pytest -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; fi; exit $$rc

test-unit: setup
	$(PY) -m pytest -q tests/unit

stack-down:
	$(VENV)/bin/streamscore stack down

clean: stack-down
	rm -rf .streamscore
