# Two commands for a fresh machine (see README.md):
#   make demo   set everything up, build the example Gemma 3 image, list and show it
#   make test   set everything up, run ruff, mypy and the whole pytest suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup system-deps demo test lint typecheck pytest bench clean

setup: system-deps $(VENV)/.installed

system-deps:
	@bash .ci/system-deps.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: setup
	bash examples/demo.sh

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy

pytest: $(VENV)/.installed
	$(BIN)/python -m pytest

test: setup lint typecheck pytest

bench: setup
	$(BIN)/python bench/bench_build.py

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache .pytest_cache
