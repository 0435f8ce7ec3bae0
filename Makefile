# The two front-door commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installed, not editable: the tests run against what a user would install.
$(VENV)/.installed: $(BIN)/python pyproject.toml $(shell find securityhandler -type f -not -path "*/__pycache__/*")
	$(BIN)/python -m pip install --quiet ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/securityhandler demo

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# The peer libraries of the token benchmarks; wrk itself is a system package
# (apt-get install -y wrk), which the wrk section asks for when it is missing.
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet ".[test,bench]"
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info
