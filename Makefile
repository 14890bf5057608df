# Two commands for a fresh machine (see README.md):
#   make demo   set everything up, build the example Gemma 3 image, list and show it
#   make test   set everything up, run ruff, mypy and the whole pytest suite
# Both install ocillm with every extra ('.[serve,test]') into .venv; the CLI is .venv/bin/ocillm.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# CMake flags for the llama-cpp-python wheel, in this one place. Empty: llama.cpp's native build
# (the fastest kernels this CPU has). CPUs with AMX, whose kernels crash that build, are handled
# by the runtime (ocillm/runner/llama_loader.py loads without extra buffer types), not by flags.
# pip's wheel cache ignores CMAKE_ARGS: changing them needs `pip cache remove llama_cpp_python`.
LLAMA_CMAKE_ARGS ?=
# The serve extra's llama-cpp-python requirement, read from pyproject.toml (tested versions).
LLAMA_REQUIREMENT := $(shell grep -o '"llama-cpp-python[^"]*"' pyproject.toml | tr -d '"')
NPROC := $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup system-deps demo test lint typecheck pytest bench clean

setup: system-deps $(VENV)/.installed

system-deps:
	@bash .ci/system-deps.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# First and on its own, so the long compile shows progress (a cached wheel takes seconds).
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(NPROC) \
	  bash .ci/install-llama-cpp.sh $(BIN)/pip "$(LLAMA_REQUIREMENT)" $(VENV)/llama-cpp-install.log
	$(BIN)/pip install --quiet -e '.[serve,test]'
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
